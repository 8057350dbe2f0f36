//! Progress bars: `enable` of a large file, `mkimage` of many files and
//! `verify`, run piped (as scripts and CI run them), write no bar and no
//! control characters to standard error. (`enable-rpm` piped is checked in
//! signatures/rpm.rs, which builds a signed package. The terminal case is
//! unit-tested through the helper that decides, src/cli/progress.rs.)

use crate::util::{random_bytes, run_bin, temp_dir, write};

/// Fails the test if `stderr` holds anything a progress bar draws: carriage
/// returns, escape sequences, block elements or spinner (braille) characters.
#[track_caller]
pub(crate) fn assert_no_progress_bar(what: &str, stderr: &str) {
    let drawn = stderr.chars().find(|&c| {
        c == '\r'
            || c == '\x1b'
            || ('\u{2580}'..='\u{259f}').contains(&c)
            || ('\u{2800}'..='\u{28ff}').contains(&c)
    });
    assert!(
        drawn.is_none(),
        "{what}: progress output on a pipe ({drawn:?}):\n{stderr:?}"
    );
}

#[test]
fn enable_mkimage_and_verify_draw_no_progress_bar_when_piped() {
    let dir = temp_dir("progress");
    let backing = dir.path().join("backing");
    std::fs::create_dir_all(backing.join(".fsverity-fuse")).expect("mkdir backing");
    // 24 MiB: several hashing chunks on several threads.
    let big = backing.join("big");
    write(&big, &random_bytes(24 << 20, 7));
    let out = run_bin(["enable".as_ref(), big.as_os_str()]);
    out.expect_success();
    assert!(out.stdout.starts_with("sha256:"), "{}", out.stdout);
    assert_eq!(out.stderr, "", "enable wrote to stderr");

    let out = run_bin(["verify".as_ref(), big.as_os_str()]);
    out.expect_success();
    assert_no_progress_bar("verify", &out.stderr);

    let src = dir.path().join("src");
    for i in 0..300 {
        write(
            &src.join(format!("d{}/f{i}", i % 10)),
            &random_bytes(100 + i, i as u64),
        );
    }
    let (image, objects) = (dir.path().join("image.cfs"), dir.path().join("objects"));
    let out = run_bin([
        "mkimage".as_ref(),
        src.as_os_str(),
        image.as_os_str(),
        "--objects".as_ref(),
        objects.as_os_str(),
    ]);
    out.expect_success();
    assert_no_progress_bar("mkimage", &out.stderr);
    assert_eq!(out.stderr, "", "mkimage wrote to stderr");
}
