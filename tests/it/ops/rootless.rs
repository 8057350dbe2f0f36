//! Rootless mounts: a directory mount and an image mount made by an
//! unprivileged user through the setuid `fusermount3`, with no root and no
//! capabilities, and unmounted by that user. `/dev/fuse` is 0600 on these
//! machines (distributions ship 0666): the test makes it 0666, as a stock
//! system has it, and restores it afterwards.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::hardening::support::{NOBODY, open_up, wait_until};
use crate::mount::harness::{is_mounted, require_fuse, wait_mounted};
use crate::util::{bin, random_bytes};

/// `/dev/fuse` opened to everyone while it lives; its mode restored on drop.
struct DevFuseOpen(u32);

impl DevFuseOpen {
    fn new() -> Self {
        let mode = fs::metadata("/dev/fuse")
            .expect("stat /dev/fuse")
            .permissions()
            .mode();
        fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(0o666))
            .expect("chmod /dev/fuse");
        Self(mode & 0o7777)
    }
}

impl Drop for DevFuseOpen {
    fn drop(&mut self) {
        // Other tests may run concurrently: leave it open to all if that is
        // how it was, else restore.
        let _ = fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(self.0));
    }
}

/// A command run as the unprivileged user.
fn nobody(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    c
}

/// A daemon run by the unprivileged user; unmounted (by that user, else by
/// root) and reaped on drop.
struct UserMount {
    mnt: PathBuf,
    child: Child,
}

impl UserMount {
    fn start(args: &[&OsStr], mnt: &Path, log: &Path) -> Self {
        let logfile = fs::File::create(log).expect("log");
        let mut child = nobody(bin())
            .arg("mount")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()
            .expect("spawn the daemon");
        let log = log.to_path_buf();
        wait_mounted(mnt, &mut child, || {
            fs::read_to_string(&log).unwrap_or_default()
        });
        Self {
            mnt: mnt.to_path_buf(),
            child,
        }
    }

    /// `fusermount3 -u` as the user; the daemon must then exit 0.
    fn unmount(mut self) {
        let status = nobody(Path::new("/usr/bin/fusermount3"))
            .arg("-u")
            .arg(&self.mnt)
            .status()
            .expect("fusermount3 -u");
        assert!(status.success(), "the user could not unmount");
        wait_until("the daemon to exit", Duration::from_secs(20), || {
            self.child.try_wait().ok().flatten().is_some()
        });
        let status = self.child.wait().expect("reap");
        assert!(status.success(), "daemon exit: {status}");
    }
}

impl Drop for UserMount {
    fn drop(&mut self) {
        for _ in 0..50 {
            if !is_mounted(&self.mnt) {
                break;
            }
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cat PATH` as the user.
fn read_as_nobody(path: &Path) -> std::process::Output {
    nobody(Path::new("/bin/cat"))
        .arg(path)
        .output()
        .expect("cat")
}

/// A scratch directory owned by the unprivileged user.
fn user_dir(name: &str) -> tempfile::TempDir {
    let dir = crate::util::temp_dir(name);
    open_up(dir.path());
    rustix::fs::chown(
        dir.path(),
        Some(rustix::fs::Uid::from_raw(NOBODY)),
        Some(rustix::fs::Gid::from_raw(NOBODY)),
    )
    .expect("chown");
    dir
}

fn run_as_nobody(args: &[&OsStr]) {
    let out = nobody(bin()).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unprivileged_user_mounts_a_directory_and_an_image() {
    require_fuse!();
    assert!(
        Path::new("/usr/bin/fusermount3").exists(),
        "fusermount3 is missing: install the Debian package fuse3"
    );
    let _dev = DevFuseOpen::new();
    let dir = user_dir("rootless");
    let d = dir.path();
    let data = random_bytes(200_000, 77);
    // Everything made by the user, with the user's own tools.
    let mk = |rel: &str| {
        let p = d.join(rel);
        let status = nobody(Path::new("/bin/mkdir"))
            .arg("-p")
            .arg(&p)
            .status()
            .expect("mkdir");
        assert!(status.success());
        p
    };
    let (backing, mnt, src, mnt2) = (mk("backing"), mk("mnt"), mk("src"), mk("mnt2"));
    let write = |path: &Path, bytes: &[u8]| {
        fs::write(path, bytes).expect("write");
        rustix::fs::chown(
            path,
            Some(rustix::fs::Uid::from_raw(NOBODY)),
            Some(rustix::fs::Gid::from_raw(NOBODY)),
        )
        .expect("chown");
    };
    write(&backing.join("f"), &data);
    write(&src.join("g"), &data);
    run_as_nobody(&[OsStr::new("enable"), backing.join("f").as_os_str()]);

    // A directory mount.
    let m = UserMount::start(
        &[backing.as_os_str(), mnt.as_os_str()],
        &mnt,
        &d.join("log1"),
    );
    let out = read_as_nobody(&mnt.join("f"));
    assert!(
        out.status.success() && out.stdout == data,
        "read as the user"
    );
    crate::mount::support::flip_byte(&backing.join("f"), 150_000);
    let out = read_as_nobody(&mnt.join("f"));
    assert!(!out.status.success(), "a tampered block must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Input/output error"));
    m.unmount();

    // An image mount.
    let image = d.join("image");
    let objects = d.join("objects");
    let out = nobody(bin())
        .args([
            OsStr::new("mkimage"),
            src.as_os_str(),
            image.as_os_str(),
            OsStr::new("--objects"),
            objects.as_os_str(),
        ])
        .output()
        .expect("mkimage");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned();
    let m = UserMount::start(
        &[
            image.as_os_str(),
            mnt2.as_os_str(),
            OsStr::new("--objects"),
            objects.as_os_str(),
            OsStr::new("--digest"),
            OsStr::new(&digest),
        ],
        &mnt2,
        &d.join("log2"),
    );
    let out = read_as_nobody(&mnt2.join("g"));
    assert!(
        out.status.success() && out.stdout == data,
        "read the image as the user"
    );
    m.unmount();
}
