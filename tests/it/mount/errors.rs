//! A mount that cannot start says why, naming the path, exits non-zero, and
//! leaves no mount behind.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{Scratch, bin, is_mounted, require_fuse};

/// Runs `fsverity-fuse mount` and returns (exit code, stderr). If the daemon is
/// still running after 20 s it has mounted: unmount, stop it, fail.
#[track_caller]
fn mount_must_fail(args: &[&Path], extra: &[&str], mnt_to_clean: &Path) -> (i32, String) {
    let mut child = Command::new(bin())
        .arg("mount")
        .args(args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("umount").arg(mnt_to_clean).status();
            let _ = child.kill();
            let _ = child.wait();
            panic!("mount {args:?} did not fail");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().expect("exit code, not a signal"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mounts_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn unusable_paths_fail_with_a_message_naming_them() {
    require_fuse!();
    let s = Scratch::new();
    let root = s.dir.path();
    let file = root.join("a-file");
    fs::write(&file, b"x").expect("write");
    let missing = root.join("missing");
    let (backing, mnt) = (s.backing(), s.mnt());
    let inside = s.b("inner-mnt");
    fs::create_dir(&inside).expect("mkdir");
    let cases: [(&str, &Path, &Path, &Path, &str); 4] = [
        (
            "missing mount point",
            &backing,
            &missing,
            &missing,
            "does not exist",
        ),
        (
            "mount point is a file",
            &backing,
            &file,
            &file,
            "not a directory",
        ),
        (
            "missing backing directory",
            &missing,
            &mnt,
            &missing,
            "No such file",
        ),
        (
            "mount point inside the backing directory",
            &backing,
            &inside,
            &inside,
            "inside the backing directory",
        ),
    ];
    for (what, b, m, named, reason) in cases {
        let (code, stderr) = mount_must_fail(&[b, m], &[], m);
        assert_eq!(code, 1, "{what}: exit code; stderr: {stderr}");
        assert!(
            stderr.contains(&*named.to_string_lossy()),
            "{what}: message does not name {}: {stderr}",
            named.display()
        );
        assert!(
            stderr.contains(reason),
            "{what}: message does not say '{reason}': {stderr}"
        );
        assert!(!is_mounted(m), "{what}: left a mount");
        assert!(
            mounts_mentioning(root).is_empty(),
            "{what}: left a mount: {:?}",
            mounts_mentioning(root)
        );
    }
    // A file as the backing is an image (image mounts): without --objects,
    // a usage error.
    let (code, stderr) = mount_must_fail(&[&file, &mnt], &[], &mnt);
    assert_eq!(code, 2, "image without --objects: {stderr}");
    assert!(stderr.contains("--objects"), "{stderr}");
    assert!(mounts_mentioning(root).is_empty(), "left a mount");
}

#[test]
fn bad_options_are_usage_errors() {
    require_fuse!();
    let s = Scratch::new();
    let (backing, mnt) = (s.backing(), s.mnt());
    for (extra, named) in [
        (&["--threads", "0"][..], "--threads"),
        (&["--attr-timeout=-1"][..], "--attr-timeout"),
        (&["--cache-size", "12Q"][..], "--cache-size"),
        (&["--on-corruption", "ignore"][..], "--on-corruption"),
    ] {
        let (code, stderr) = mount_must_fail(&[&backing, &mnt], extra, &mnt);
        assert_eq!(code, 2, "{extra:?}: exit code; stderr: {stderr}");
        assert!(stderr.contains(named), "{extra:?}: {stderr}");
        assert!(!is_mounted(&mnt));
    }
}
