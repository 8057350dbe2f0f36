//! A real mount per test: a temp dir with `backing/` and `mnt/`, the daemon as a
//! child process, readiness by polling /proc/self/mountinfo, and an unmount in
//! `Drop` that always runs, even when the test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub(crate) use crate::util::bin;

/// True if FUSE mounts can run here. Under CI=true a missing FUSE is a failure,
/// never a skip.
pub fn fuse_available() -> bool {
    let ok = Path::new("/dev/fuse").exists() && rustix::process::geteuid().is_root();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "FUSE tests need root and /dev/fuse, and CI=true forbids skipping them"
        );
        eprintln!("skipping: FUSE tests need root and /dev/fuse");
    }
    ok
}

/// Skips the calling test (outside CI) when FUSE is unavailable.
macro_rules! require_fuse {
    () => {
        if !$crate::mount::harness::fuse_available() {
            return;
        }
    };
}
pub(crate) use require_fuse;

/// A scratch directory with `backing/` and `mnt/`.
#[derive(Debug)]
pub struct Scratch {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates `backing/` (with an empty tree store) and `mnt/`.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fsverity-fuse-it-")
            .tempdir()
            .expect("tempdir");
        fs::create_dir(dir.path().join("backing")).expect("mkdir backing");
        fs::create_dir(dir.path().join("mnt")).expect("mkdir mnt");
        Self { dir }
    }

    /// The backing directory.
    pub fn backing(&self) -> PathBuf {
        self.dir.path().join("backing")
    }

    /// The mount point.
    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// A path in the backing directory.
    pub fn b(&self, rel: &str) -> PathBuf {
        self.backing().join(rel)
    }

    /// Writes a backing file.
    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.b(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, data).expect("write backing file");
        p
    }

    /// Runs `fsverity-fuse enable` on backing files, asserting success.
    pub fn enable(&self, rels: &[&str], extra: &[&str]) {
        let out = Command::new(bin())
            .arg("enable")
            .args(rels.iter().map(|r| self.b(r)))
            .args(extra)
            .output()
            .expect("run enable");
        assert!(
            out.status.success(),
            "enable failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Mounts `backing/` on `mnt/` with extra arguments.
    pub fn mount(&self, extra: &[&str]) -> Mount {
        Mount::start(&self.backing(), &self.mnt(), extra, self.dir.path())
    }

    /// Mounts with the daemon run under `wrapper` (e.g. `prlimit --nofile=N:N`).
    pub fn mount_wrapped(&self, wrapper: &[&str], extra: &[&str]) -> Mount {
        Mount::start_wrapped(
            wrapper,
            &self.backing(),
            &self.mnt(),
            extra,
            self.dir.path(),
        )
    }
}

/// A running mount; unmounted in `Drop`.
#[derive(Debug)]
pub struct Mount {
    mnt: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

/// How long a daemon may take to mount.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `mnt` shows a fuse.fsverity-fuse mount, failing the test (with
/// the daemon's `log`) when `child` exits first or it takes longer than
/// [`PATIENCE`]. Polls /proc/self/mountinfo; never sleeps blindly.
pub fn wait_mounted(mnt: &Path, child: &mut Child, log: impl Fn() -> String) {
    let deadline = Instant::now() + PATIENCE;
    while !is_mounted(mnt) {
        if let Some(status) = child.try_wait().ok().flatten() {
            panic!("daemon exited before mounting ({status}): {}", log());
        }
        assert!(
            Instant::now() < deadline,
            "no mount within {PATIENCE:?}: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `mnt` is a mount point of type fuse.fsverity-fuse.
pub fn is_mounted(mnt: &Path) -> bool {
    let mnt = mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf());
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-");
        fields.get(4).map(Path::new) == Some(mnt.as_path())
            && sep.and_then(|i| fields.get(i + 1)) == Some(&"fuse.fsverity-fuse")
    })
}

impl Mount {
    /// Starts the daemon and waits until the mount is live.
    pub fn start(backing: &Path, mnt: &Path, extra: &[&str], logdir: &Path) -> Self {
        Self::start_wrapped(&[], backing, mnt, extra, logdir)
    }

    /// Starts the daemon under a wrapper command and waits until the mount is live.
    pub fn start_wrapped(
        wrapper: &[&str], backing: &Path, mnt: &Path, extra: &[&str], logdir: &Path,
    ) -> Self {
        let log = logdir.join(format!("daemon-{}.log", std::process::id()));
        let logfile = fs::File::create(&log).expect("log file");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let child = cmd
            .arg("mount")
            .arg(backing)
            .arg(mnt)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()
            .expect("spawn daemon");
        let mut m = Self {
            mnt: mnt.to_path_buf(),
            child: Some(child),
            log,
        };
        let child = m.child.as_mut().expect("just spawned");
        let log = m.log.clone();
        wait_mounted(mnt, child, || fs::read_to_string(&log).unwrap_or_default());
        m
    }

    /// A path inside the mount.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmounts with umount(8) and returns the daemon's exit status.
    pub fn unmount(mut self) -> ExitStatus {
        self.shutdown().expect("daemon status")
    }

    /// Sends SIGTERM and returns the daemon's exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let status = self.sigterm();
        assert!(!is_mounted(&self.mnt), "mount still present after SIGTERM");
        status
    }

    /// Sends SIGTERM and returns the daemon's exit status, leaving whatever
    /// stays mounted at the mount point to the caller (who must unmount it).
    pub fn terminate_keeping_mounts(mut self) -> ExitStatus {
        let status = self.sigterm();
        // No unmount by path in Drop: it would take the topmost mount.
        std::mem::forget(self);
        status
    }

    /// SIGTERM, then the daemon's exit status.
    fn sigterm(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        rustix::process::kill_process(
            rustix::process::Pid::from_child(child),
            rustix::process::Signal::TERM,
        )
        .expect("kill");
        let status = wait_timeout(child, Duration::from_secs(20))
            .expect("daemon did not exit after SIGTERM");
        self.child = None;
        status
    }

    /// Unmounts (even when the daemon is already gone, so that a dead mount is
    /// not left behind) and reaps the daemon if it is still ours.
    fn shutdown(&mut self) -> Option<ExitStatus> {
        for attempt in 0..50 {
            if !is_mounted(&self.mnt) {
                break;
            }
            let lazy = attempt >= 40;
            let mut cmd = Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            let _ = cmd.arg(&self.mnt).stderr(Stdio::null()).status();
            if is_mounted(&self.mnt) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mut child = self.child.take()?;
        match wait_timeout(&mut child, Duration::from_secs(20)) {
            Some(status) => Some(status),
            None => {
                let _ = child.kill();
                child.wait().ok()
            }
        }
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.shutdown();
    }
}
