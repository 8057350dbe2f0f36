//! Helpers of the hardening tests: running commands as another user, daemons
//! found by their command line, a tmpfs of a given size, waiting with a
//! deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The unprivileged user the tests act as.
pub(crate) const NOBODY: u32 = 65534;

/// Runs `program args` as uid/gid `NOBODY` (no supplementary groups).
pub(crate) fn as_nobody(program: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            program,
        ])
        .args(args)
        .output()
        .expect("run setpriv")
}

/// Makes every directory from `path` up to (not including) `/tmp` searchable
/// by others, so another user can reach a scratch directory.
pub(crate) fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for dir in path
        .ancestors()
        .take_while(|d| *d != Path::new("/tmp") && *d != Path::new("/"))
    {
        let mode = std::fs::metadata(dir).expect("stat").permissions().mode();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o755))
            .expect("chmod");
    }
}

/// Pids of the processes whose command line mentions `tag`.
pub(crate) fn pids_mentioning(tag: &Path) -> Vec<u32> {
    let tag = tag.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && cmdline.windows(tag.len()).any(|w| w == tag)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Whether process `pid` still exists (not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Waits until `done` holds, failing the test with `what` after `timeout`.
#[track_caller]
pub(crate) fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `f` on its own thread and fails the test if it does not finish within
/// `timeout` (a hung read through the mount must not hang the test run).
#[track_caller]
pub(crate) fn within<T: Send + 'static>(
    what: &str, timeout: Duration, f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("{what} did not finish within {timeout:?}"))
}

/// A tmpfs of `size` mounted at `path`, unmounted when dropped.
#[derive(Debug)]
pub(crate) struct Tmpfs(PathBuf);

impl Tmpfs {
    pub(crate) fn mount(path: &Path, size: &str) -> Self {
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs at {}", path.display());
        Self(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for _ in 0..50 {
            if Command::new("umount")
                .arg(&self.0)
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The verity metadata xattr of a backing file, if it has one.
pub(crate) fn metadata_xattr(path: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match rustix::fs::getxattr(path, "user.fsverity-fuse", &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("getxattr {}: {e}", path.display()),
    }
}

/// Names in the tree store's top directory that are temporary files.
pub(crate) fn temporaries(store: &Path) -> Vec<String> {
    std::fs::read_dir(store)
        .expect("read the tree store")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect()
}
