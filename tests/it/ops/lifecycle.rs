//! The foreground daemon's lifecycle as a service manager sees it: sd_notify
//! READY=1 only once the mount is live and STOPPING=1 when it stops; SIGTERM
//! and SIGINT unmount and exit 0 leaving nothing behind; a busy mount is
//! detached and the daemon serves open files until the last one closes.

use std::fs::{self, File};
use std::io::Read;
use std::process::Command;

use rustix::process::Signal;

use super::support::{
    Foreground, PATIENCE, bin, fixtures, mounts_at, scratch, wait_for_no_process,
};
use crate::mount::harness::{is_mounted, require_fuse};

fn mount_cmd(s: &crate::mount::harness::Scratch, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("mount").args(extra).arg(s.backing()).arg(s.mnt());
    cmd
}

#[test]
fn sd_notify_ready_arrives_only_once_the_mount_is_live_and_stopping_on_sigterm() {
    require_fuse!();
    let s = scratch();
    let f = fixtures(&s, &[]);
    let mut fg = Foreground::spawn(mount_cmd(&s, &["--ro"]), &s.mnt(), s.dir.path());
    // The first message, read as soon as it is sent: the mount must already be
    // in mountinfo and answering requests.
    assert_eq!(fg.next_notification(), "READY=1");
    assert!(
        is_mounted(&s.mnt()),
        "READY=1 before the mount was in /proc/self/mountinfo"
    );
    assert_eq!(
        fs::read(s.mnt().join("good")).expect("read after READY=1"),
        f.good
    );

    fg.signal(Signal::TERM);
    assert_eq!(fg.next_notification(), "STOPPING=1");
    let status = fg.wait();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        fg.log()
    );
    assert_eq!(mounts_at(&s.mnt()), 0, "mount left after SIGTERM");
}

#[test]
fn sigterm_and_sigint_unmount_exit_zero_and_leave_no_daemon() {
    require_fuse!();
    let s = scratch();
    fixtures(&s, &[]);
    for sig in [Signal::TERM, Signal::INT] {
        let mut fg = Foreground::start(mount_cmd(&s, &["--ro"]), &s.mnt(), s.dir.path());
        fg.signal(sig);
        let status = fg.wait();
        assert!(status.success(), "{sig:?}: exit {status}\n{}", fg.log());
        assert_eq!(mounts_at(&s.mnt()), 0, "{sig:?}: mount left");
        let left = wait_for_no_process(s.dir.path(), PATIENCE);
        assert!(left.is_empty(), "{sig:?}: processes left: {left:?}");
    }
}

#[test]
fn sigterm_on_a_busy_mount_detaches_it_and_the_daemon_exits_when_the_last_file_closes() {
    require_fuse!();
    let s = scratch();
    let f = fixtures(&s, &[]);
    let mut fg = Foreground::start(mount_cmd(&s, &["--ro"]), &s.mnt(), s.dir.path());
    let mut open = File::open(s.mnt().join("good")).expect("open through the mount");
    fg.signal(Signal::TERM);
    let deadline = std::time::Instant::now() + PATIENCE;
    while mounts_at(&s.mnt()) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "busy mount not detached: {}",
            fg.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Detached but still served: the open file reads back, verified.
    let mut content = Vec::new();
    open.read_to_end(&mut content)
        .expect("read the open file after detaching");
    assert!(
        content == f.good,
        "the open file's bytes changed after detaching"
    );
    drop(open);
    let status = fg.wait();
    assert!(
        status.success(),
        "exit after the last close: {status}\n{}",
        fg.log()
    );
    assert!(
        fg.log().contains("busy"),
        "the log should say why the mount was detached: {}",
        fg.log()
    );
}
