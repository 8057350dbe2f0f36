//! Stopping a mount at any moment: a SIGTERM that arrives as soon as the mount
//! is visible must still unmount cleanly (exit 0, no mount left), since service
//! managers and scripts signal as soon as they see the mount.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{Scratch, bin, is_mounted, require_fuse};

/// Kills the daemon and lazily unmounts in `Drop`, whatever the test did.
struct Guard {
    mnt: PathBuf,
    child: Child,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Starts the daemon and returns once the mount is in /proc/self/mountinfo,
/// polling without pause (tighter than the harness, which sleeps 20 ms).
fn start_and_catch_the_mount(backing: &Path, mnt: &Path) -> Guard {
    let child = Command::new(bin())
        .arg("mount")
        .arg(backing)
        .arg(mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn daemon");
    let mut guard = Guard {
        mnt: mnt.to_path_buf(),
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(mnt) {
        assert!(
            guard.child.try_wait().expect("try_wait").is_none(),
            "daemon exited before mounting"
        );
        assert!(Instant::now() < deadline, "no mount within 20 s");
    }
    guard
}

#[test]
fn sigterm_as_soon_as_the_mount_appears_unmounts_cleanly() {
    require_fuse!();
    let s = Scratch::new();
    for attempt in 0..30 {
        let mut g = start_and_catch_the_mount(&s.backing(), &s.mnt());
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&g.child),
            rustix::process::Signal::TERM,
        )
        .expect("kill");
        let status = g.child.wait().expect("wait");
        let left = is_mounted(&s.mnt());
        drop(g);
        assert!(
            status.success() && !left,
            "attempt {attempt}: daemon exit {status}, mount left behind: {left}"
        );
    }
}

#[test]
fn the_log_has_no_colour_codes_when_stderr_is_not_a_terminal() {
    // Under systemd or with stderr redirected to a file, escape sequences end up
    // in the journal and in log files.
    require_fuse!();
    let s = Scratch::new();
    let m = s.mount(&[]);
    assert!(std::fs::read_dir(m.p("")).is_ok());
    let log = m.log();
    assert!(log.contains("mounted"), "log: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape sequences in the log: {log:?}"
    );
}
