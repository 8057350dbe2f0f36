//! FS_IOC_ENABLE_VERITY through the mount answers as the kernel does
//! (fs/verity/enable.c): backing errnos such as ENOSPC pass through, the
//! checks come in the kernel's order, and an enable whose caller is killed
//! stops and leaves the file plain. (EBADF for a write-only descriptor is in
//! ioctl::errors; EROFS after a remount in hardening::remount.)

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{Tmpfs, as_nobody, metadata_xattr, open_up, temporaries, wait_until};
use crate::ioctl::tools::{Fsverity, expect_tool_errno, ioctl_enable, sha256_call, strerror};
use crate::mount::harness::{Scratch, require_fuse};
use crate::mount::support::scratch_with_store;
use crate::util::random_bytes;

const ENABLE: &str = "FS_IOC_ENABLE_VERITY";

#[test]
fn a_full_backing_filesystem_is_enospc_and_the_file_stays_plain() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = Scratch::new();
    let _tmpfs = Tmpfs::mount(&s.backing(), "4m");
    fs::create_dir(s.b(".fsverity-fuse")).expect("tree store");
    s.write("f", &random_bytes(2 << 20, 51));
    // Fill what is left.
    let filler = fs::File::create(s.b("filler")).expect("create filler");
    let chunk = vec![0x5a; 4096];
    while std::io::Write::write_all(&mut &filler, &chunk).is_ok() {}
    drop(filler);
    let m = s.mount(&[]);
    expect_tool_errno(&fsv.enable(&m.p("f"), &[]), ENABLE, libc::ENOSPC);
    assert!(metadata_xattr(&s.b("f")).is_none(), "the file stays plain");
    assert_eq!(temporaries(&s.b(".fsverity-fuse")), Vec::<String>::new());
    // With room again, the same enable succeeds.
    fs::remove_file(s.b("filler")).expect("rm filler");
    fsv.enable_ok(&m.p("f"), &[]);
    drop(m);
}

#[test]
fn permission_comes_before_the_algorithm_and_block_size_checks() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = Scratch::new();
    open_up(&s.backing());
    open_up(&s.mnt());
    s.write("f", &random_bytes(20_000, 52)); // 0644, root's
    let m = s.mount(&["--allow-other"]);
    // fsverity-utils accepts block size 512, which no kernel supports (EINVAL);
    // a caller without write access hears EACCES first, as from the kernel.
    let out = as_nobody(
        fsv.path().to_str().expect("utf-8"),
        &[
            OsStr::new("enable"),
            OsStr::new("--block-size=512"),
            m.p("f").as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.trim_end().ends_with(&strerror(libc::EACCES)),
        "{stderr}"
    );
    // Root, with write access, hears about the block size.
    expect_tool_errno(
        &fsv.enable(&m.p("f"), &["--block-size=512"]),
        ENABLE,
        libc::EINVAL,
    );
}

#[test]
fn writers_are_refused_before_an_existing_verity_is_reported() {
    require_fuse!();
    let s = scratch_with_store();
    s.write("f", &random_bytes(20_000, 53));
    let m = s.mount(&[]);
    let writer = OpenOptions::new()
        .write(true)
        .open(m.p("f"))
        .expect("open for writing");
    // Verity set on the backing file behind the mount's back.
    s.enable(&["f"], &[]);
    let err = ioctl_enable(&m.p("f"), &sha256_call()).expect_err("refused");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ETXTBSY),
        "deny_write_access comes before the EEXIST check: {err}"
    );
    drop(writer);
}

#[test]
fn an_enable_whose_caller_is_killed_stops_and_leaves_the_file_plain() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch_with_store();
    // Real data (no holes): hashing it takes long enough to be interrupted.
    let f = fs::File::create(s.b("big")).expect("create");
    let chunk = random_bytes(1 << 20, 54);
    for _ in 0..512 {
        std::io::Write::write_all(&mut &f, &chunk).expect("write");
    }
    drop(f);
    let m = s.mount(&[]);
    let started = Instant::now();
    let mut child = Command::new(fsv.path())
        .arg("enable")
        .arg(m.p("big"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fsverity enable");
    let pid = child.id();
    // Inside the ioctl (syscall 16 on x86_64, 29 on aarch64).
    let ioctl_nr = if cfg!(target_arch = "aarch64") {
        "29"
    } else {
        "16"
    };
    wait_until(
        "fsverity to enter the ioctl",
        Duration::from_secs(30),
        || {
            fs::read_to_string(format!("/proc/{pid}/syscall"))
                .is_ok_and(|s| s.split_whitespace().next() == Some(ioctl_nr))
        },
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let waited = started.elapsed();
    // The daemon has answered (the killed caller waited for it): the file
    // must still be plain, and stay so.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        metadata_xattr(&s.b("big")).is_none(),
        "the enable went on after its caller was killed ({waited:?})"
    );
    assert!(
        m.log().contains("caller is being killed"),
        "the daemon says why it stopped: {}",
        m.log()
    );
    // Nothing is stuck: a new enable works.
    fsv.enable_ok(&m.p("big"), &[]);
}
