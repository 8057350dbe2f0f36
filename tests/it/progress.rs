//! Progress bars: `enable` of a large file, `mkimage` of many files and
//! `verify`, run piped (as scripts and CI run them), write no bar and no
//! control characters to standard error; on a terminal (a pseudo-terminal
//! from script(1)) `enable` draws one. (`enable-rpm` piped is checked in
//! signatures/rpm.rs, which builds a signed package; the decision itself is
//! unit-tested in src/cli/progress.rs.)

use std::path::Path;
use std::process::Command;

use crate::util::{bin, random_bytes, run_bin, temp_dir, write};

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
        let sub = src.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&sub).expect("mkdir");
        write(&sub.join(format!("f{i}")), &random_bytes(100 + i, i as u64));
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

#[test]
fn enable_draws_a_progress_bar_on_a_terminal() {
    // script(1) (bsdutils, essential on Debian) runs the command on a
    // pseudo-terminal and copies what it drew to its standard output.
    let script = Path::new("/usr/bin/script");
    assert!(
        script.is_file(),
        "{} is missing (Debian package bsdutils)",
        script.display()
    );
    let dir = temp_dir("progress-tty");
    std::fs::create_dir(dir.path().join(".fsverity-fuse")).expect("mkdir store");
    let big = dir.path().join("big");
    write(&big, &random_bytes(24 << 20, 8));
    let command = format!("'{}' enable '{}'", bin().display(), big.display());
    let out = Command::new(script)
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .output()
        .expect("run script");
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "enable on a terminal failed: {drawn}");
    assert!(drawn.contains("sha256:"), "no digest line: {drawn:?}");
    // The bar: block elements and the byte counts of its template.
    assert!(
        drawn.contains('\u{2591}') && drawn.contains("24.00 MiB"),
        "no progress bar on a terminal: {drawn:?}"
    );
}
