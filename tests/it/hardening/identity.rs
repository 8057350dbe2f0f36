//! A daemon only ever unmounts its own mount. Before the fix, a daemon on its
//! way out after `umount` unmounted by path whatever was mounted there by then:
//! `mount; umount; mount` at one path lost the second mount about half the time.

use std::process::Command;
use std::time::Duration;

use super::support::{alive, pids_mentioning, wait_until};
use crate::mount::harness::{Scratch, is_mounted, require_fuse};
use crate::util::run_bin;

/// Unmounts what is left at `mnt` and waits for every daemon of `s` to end,
/// however the test ended.
struct Cleanup<'a>(&'a Scratch);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for _ in 0..100 {
            if !is_mounted(&self.0.mnt()) {
                break;
            }
            let _ = Command::new("umount").arg("-l").arg(self.0.mnt()).status();
        }
        for pid in pids_mentioning(&self.0.backing()) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

#[test]
fn remounting_at_once_keeps_the_new_mount_when_the_old_daemon_exits() {
    require_fuse!();
    let s = Scratch::new();
    s.write("f", b"still here");
    let _cleanup = Cleanup(&s);
    let helper = |s: &Scratch| {
        // The mount(8) form: returns once the mount is live, the daemon detached.
        run_bin([s.backing(), s.mnt()]).expect_success();
        assert!(
            is_mounted(&s.mnt()),
            "the helper returned before the mount was live"
        );
    };
    helper(&s);
    for round in 0..12 {
        let old = pids_mentioning(&s.backing());
        assert_eq!(old.len(), 1, "round {round}: one daemon expected: {old:?}");
        let status = Command::new("umount")
            .arg(s.mnt())
            .status()
            .expect("umount");
        assert!(status.success(), "round {round}: umount");
        // At once, while the old daemon is still on its way out.
        helper(&s);
        wait_until("the old daemon to exit", Duration::from_secs(20), || {
            !alive(old[0])
        });
        assert!(
            is_mounted(&s.mnt()),
            "round {round}: the exiting daemon took the new mount with it"
        );
        assert_eq!(
            std::fs::read(s.mnt().join("f")).expect("read through the new mount"),
            b"still here"
        );
    }
    let last = pids_mentioning(&s.backing());
    let status = Command::new("umount")
        .arg(s.mnt())
        .status()
        .expect("umount");
    assert!(status.success());
    wait_until("the last daemon to exit", Duration::from_secs(20), || {
        last.iter().all(|&p| !alive(p))
    });
}

#[test]
fn a_signalled_daemon_leaves_a_mount_stacked_on_top_of_its_own_alone() {
    require_fuse!();
    let s = Scratch::new();
    s.write("f", b"bottom");
    let top = crate::util::temp_dir("stacked-top");
    std::fs::write(top.path().join("f"), b"top").expect("write");
    let _cleanup = Cleanup(&s);
    let bottom = s.mount(&[]);
    // Another filesystem mounted over the same path (a bind mount of `top`).
    let status = Command::new("mount")
        .arg("--bind")
        .arg(top.path())
        .arg(s.mnt())
        .status()
        .expect("mount --bind");
    assert!(status.success());
    let status = bottom.terminate_keeping_mounts();
    assert!(status.success(), "daemon exit: {status}");
    assert_eq!(
        std::fs::read(s.mnt().join("f")).expect("the bind mount is still there"),
        b"top",
        "SIGTERM must not unmount a mount that is not the daemon's"
    );
    let status = Command::new("umount")
        .arg(s.mnt())
        .status()
        .expect("umount bind");
    assert!(status.success());
}
