//! `mount -o remount,...` through the helper (as mount.fuse3 or the
//! mount.fuse.fsverity-fuse link runs it): the flags that can change on a live
//! mount do, the daemon notices (the kernel does not tell it), and the enable
//! ioctl, which the kernel forwards even on a read-only mount, says EROFS.

use std::fs::OpenOptions;

use crate::ioctl::tools::{Fsverity, expect_tool_errno};
use crate::mount::harness::{Scratch, require_fuse};
use crate::util::{random_bytes, run_bin};

const ENABLE: &str = "FS_IOC_ENABLE_VERITY";

/// The per-mount options of the mount at `mnt`.
fn options(mnt: &std::path::Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mnt.to_str().expect("utf-8")))
        .and_then(|l| l.split(' ').nth(5))
        .expect("the mount is listed")
        .split(',')
        .map(str::to_owned)
        .collect()
}

fn remount(s: &Scratch, opts: &str) {
    run_bin([
        s.backing().into_os_string(),
        s.mnt().into_os_string(),
        "-o".into(),
        format!("remount,{opts}").into(),
    ])
    .expect_success();
}

#[test]
fn remount_read_only_and_back() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = Scratch::new();
    s.write("f", &random_bytes(30_000, 61));
    let m = s.mount(&[]);
    let mnt = s.mnt().canonicalize().expect("canonical");
    remount(&s, "ro");
    let opts = options(&mnt);
    for want in ["ro", "nosuid", "nodev"] {
        assert!(opts.iter().any(|o| o == want), "{want} missing: {opts:?}");
    }
    let err = OpenOptions::new()
        .append(true)
        .open(m.p("f"))
        .expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    expect_tool_errno(&fsv.enable(&m.p("f"), &[]), ENABLE, libc::EROFS);
    remount(&s, "rw,noexec");
    let opts = options(&mnt);
    assert!(
        opts.iter().any(|o| o == "rw") && opts.iter().any(|o| o == "noexec"),
        "{opts:?}"
    );
    fsv.enable_ok(&m.p("f"), &[]);
    // Flags not named keep their value.
    remount(&s, "ro");
    assert!(options(&mnt).iter().any(|o| o == "noexec"));
    drop(m);
}

#[test]
fn a_mount_started_read_only_becomes_writable_after_remount_rw() {
    require_fuse!();
    let s = Scratch::new();
    s.write("f", b"before");
    let m = s.mount(&["--ro"]);
    let err = std::fs::write(m.p("f"), b"after").expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    remount(&s, "rw");
    std::fs::write(m.p("f"), b"after").expect("writable after remount,rw");
    assert_eq!(std::fs::read(s.b("f")).expect("read"), b"after");
    drop(m);
}

#[test]
fn remount_refuses_what_is_not_an_fsverity_fuse_mount() {
    require_fuse!();
    let s = Scratch::new();
    let out = run_bin([
        s.backing().into_os_string(),
        s.mnt().into_os_string(),
        "-o".into(),
        "remount,ro".into(),
    ]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("not an fsverity-fuse mount"),
        "{}",
        out.stderr
    );
}
