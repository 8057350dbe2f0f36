//! What the operations tests share: a scratch directory with verity fixtures,
//! guards that leave no mount and no daemon behind (also for mounts made by
//! mount(8) and helpers, whose daemons are not our children), a foreground
//! daemon with an sd_notify socket, and shell scripts run in other namespaces
//! that report through [`super::probe`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::mount::harness::Scratch;
use crate::mount::support::{data, flip_byte, scratch_with_store};

pub(super) use super::probe::{Answer, Op};

pub(super) use crate::mount::harness::PATIENCE;
pub(super) use crate::util::bin;

/// The repository root (for docs/systemd and scripts/install.sh).
pub(super) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where `program` is installed (PATH, then /usr/sbin and /sbin). Missing, it
/// fails the test under CI=true (nothing may be skipped there) and otherwise
/// prints why the test is skipped.
#[track_caller]
pub(super) fn tool(program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    let found = dirs.map(|d| d.join(program)).find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is missing (Debian package {package}); CI=true forbids skipping"
        );
        eprintln!("skipping: {program} is missing (Debian package {package})");
    }
    found
}

/// The mount tests' scratch directory, canonical (so it matches /proc paths)
/// and open to other users (0755) for the tests that read as `nobody`.
pub(super) fn scratch() -> Scratch {
    let s = scratch_with_store();
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod scratch");
    assert_eq!(
        s.dir.path().canonicalize().expect("canonicalize scratch"),
        s.dir.path(),
        "scratch paths must be canonical to match /proc/self/mountinfo"
    );
    s
}

/// The verity fixtures of a scratch directory.
#[derive(Debug)]
pub(super) struct Fixtures {
    /// `good`: a verity file, intact.
    pub(super) good: Vec<u8>,
    /// `bad`: a verity file with one data byte flipped after enabling.
    pub(super) bad: Vec<u8>,
    /// `plain`: not a verity file.
    pub(super) plain: Vec<u8>,
    /// Offset of the flipped byte of `bad`.
    pub(super) bad_offset: u64,
}

/// Size of the verity fixtures: ten 4 KiB blocks and a partial one.
pub(super) const FIXTURE_SIZE: usize = 10 * 4096 + 100;

/// Writes `good`, `bad` (corrupted in its second block) and `plain`, all 0644.
pub(super) fn fixtures(s: &Scratch, extra_enable: &[&str]) -> Fixtures {
    let f = Fixtures {
        good: data(FIXTURE_SIZE, 1),
        bad: data(FIXTURE_SIZE, 2),
        plain: b"not a verity file\n".to_vec(),
        bad_offset: 4096 + 1000,
    };
    for (name, content) in [("good", &f.good), ("bad", &f.bad), ("plain", &f.plain)] {
        let p = s.write(name, content);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod fixture");
    }
    s.enable(&["good", "bad"], extra_enable);
    flip_byte(&s.b("bad"), f.bad_offset);
    f
}

/// The backing bytes of `bad` (what `--on-corruption=log` serves).
pub(super) fn tampered(f: &Fixtures) -> Vec<u8> {
    let mut b = f.bad.clone();
    b[f.bad_offset as usize] ^= 1;
    b
}

/// Generates a key pair: the private key at `dir/private.pem`, the public key
/// alone in `dir/keys/` (a trusted-key directory, like /etc/fsverity-fuse/keys).
pub(super) fn keys(dir: &Path) -> (PathBuf, PathBuf) {
    let (private, keydir) = (dir.join("private.pem"), dir.join("keys"));
    fs::create_dir(&keydir).expect("mkdir keys");
    let out = Command::new(bin())
        .arg("keygen")
        .arg("--private")
        .arg(&private)
        .arg("--public")
        .arg(keydir.join("trusted.pem"))
        .output()
        .expect("run keygen");
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (private, keydir)
}

/// Every mount whose mount point is exactly `path` (any filesystem type).
pub(super) fn mounts_at(path: &Path) -> usize {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    info.lines()
        .filter(|l| l.split(' ').nth(4).map(Path::new) == Some(path))
        .count()
}

/// The `/proc/mounts` line of the mount at `mnt`: (source, type, options).
pub(super) fn proc_mounts_entry(mnt: &Path) -> Option<(String, String, String)> {
    let mounts = fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    mounts.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() >= 4 && Path::new(f[1]) == mnt).then(|| (f[0].into(), f[2].into(), f[3].into()))
    })
}

/// Live processes other than this one whose command line mentions the path
/// `tag` (itself or below it): each test's paths are unique, so these are the
/// daemons (and tools) it started.
/// Zombies have an empty command line and do not count: they hold nothing.
pub(super) fn processes_mentioning(tag: &Path) -> Vec<(u32, Vec<String>)> {
    let tag = tag.to_string_lossy();
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let mentions = |a: &String| {
            a.match_indices(tag.as_ref())
                .any(|(i, m)| match a[i + m.len()..].chars().next() {
                    None => true,
                    Some(c) => c == '/' || c.is_whitespace() || "',:\"".contains(c),
                })
        };
        if pid != me && argv.iter().any(mentions) {
            found.push((pid, argv));
        }
    }
    found
}

/// Waits until no process mentions `tag`; returns those left after `timeout`.
pub(super) fn wait_for_no_process(tag: &Path, timeout: Duration) -> Vec<(u32, Vec<String>)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = processes_mentioning(tag);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Unmounts `mounts` (in order) and ends every process that mentions `tag`, in
/// `Drop`: the cleanup for daemons this test did not spawn itself (mount(8),
/// mount helpers, daemons inside private namespaces).
#[derive(Debug)]
pub(super) struct Cleanup {
    tag: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Cleanup {
    /// Guards the processes mentioning `tag` and the mounts at `mounts`.
    pub(super) fn new(tag: &Path, mounts: &[PathBuf]) -> Self {
        Self {
            tag: tag.to_path_buf(),
            mounts: mounts.to_vec(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for mnt in &self.mounts {
            for attempt in 0..50 {
                if mounts_at(mnt) == 0 {
                    break;
                }
                let mut umount = Command::new("umount");
                if attempt >= 40 {
                    umount.arg("--lazy");
                }
                let _ = umount.arg(mnt).stderr(Stdio::null()).status();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for sig in [rustix::process::Signal::TERM, rustix::process::Signal::KILL] {
            let left = wait_for_no_process(&self.tag, Duration::from_secs(5));
            for (pid, _) in &left {
                signal(*pid, sig);
            }
        }
    }
}

/// A foreground `fsverity-fuse mount` (or a wrapper around one), its log, and
/// the notification socket it was given.
#[derive(Debug)]
pub(super) struct Foreground {
    child: Option<Child>,
    mnt: PathBuf,
    log: PathBuf,
    notify: UnixDatagram,
}

impl Foreground {
    /// Runs `cmd` (which must mount at `mnt`) with `NOTIFY_SOCKET` set to a
    /// datagram socket in `dir`, and returns once the mount is live.
    pub(super) fn start(cmd: Command, mnt: &Path, dir: &Path) -> Self {
        let mut fg = Self::spawn(cmd, mnt, dir);
        fg.wait_live();
        fg
    }

    /// Runs `cmd` like [`Foreground::start`] but returns at once.
    pub(super) fn spawn(mut cmd: Command, mnt: &Path, dir: &Path) -> Self {
        let socket = dir.join("notify.sock");
        let _ = fs::remove_file(&socket);
        let notify = UnixDatagram::bind(&socket).expect("bind notification socket");
        notify
            .set_read_timeout(Some(PATIENCE))
            .expect("socket timeout");
        let log = dir.join("daemon.log");
        let child = cmd
            .env("NOTIFY_SOCKET", &socket)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create daemon log"))
            .spawn()
            .expect("spawn the daemon");
        Self {
            child: Some(child),
            mnt: mnt.to_path_buf(),
            log,
            notify,
        }
    }

    /// Waits until the mount is in /proc/self/mountinfo.
    pub(super) fn wait_live(&mut self) {
        let mnt = self.mnt.clone();
        let log = self.log.clone();
        let child = self.child_mut();
        crate::mount::harness::wait_mounted(&mnt, child, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the daemon was already reaped")
    }

    /// The daemon's pid.
    pub(super) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The next sd_notify datagram (fails the test after [`PATIENCE`]).
    pub(super) fn next_notification(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.notify.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no sd_notify message within {PATIENCE:?} ({e}): {}",
                self.log()
            )
        });
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Sends `sig` to the daemon.
    pub(super) fn signal(&self, sig: rustix::process::Signal) {
        signal(self.pid(), sig);
    }

    /// Waits for the daemon to exit.
    pub(super) fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child_mut().try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon still running: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's standard error so far.
    pub(super) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            for attempt in 0..50 {
                if mounts_at(&self.mnt) == 0 {
                    break;
                }
                let mut umount = Command::new("umount");
                if attempt >= 40 {
                    umount.arg("--lazy");
                }
                let _ = umount.arg(&self.mnt).stderr(Stdio::null()).status();
                std::thread::sleep(Duration::from_millis(20));
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if mounts_at(&self.mnt) > 0 {
            let _ = Command::new("umount").arg("--lazy").arg(&self.mnt).status();
        }
    }
}

/// Fails the test, saying why, unless every directory above `exe` is
/// searchable by other users (the probe runs as nobody).
#[track_caller]
fn assert_reachable_by_others(exe: &Path) {
    for dir in exe.ancestors().skip(1) {
        let mode = fs::metadata(dir).map_or(0, |m| m.permissions().mode());
        assert!(
            mode & 0o001 != 0,
            "{} is not searchable by other users, so the probe ({}) cannot run as nobody: \
             use a CARGO_TARGET_DIR outside it",
            dir.display(),
            exe.display()
        );
    }
}

/// Reads a pipe to its end on a thread (so a full pipe cannot block the child).
fn read_all<R: std::io::Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Quotes `s` for sh.
pub(super) fn sh_quote(s: impl AsRef<std::ffi::OsStr>) -> String {
    format!("'{}'", s.as_ref().to_string_lossy().replace('\'', r"'\''"))
}

/// A shell script run under a wrapper (`unshare ...`, `setpriv ...`), with
/// cleanup commands run on exit whatever happens, and probes whose answers are
/// collected by label.
#[derive(Debug, Default)]
pub(super) struct Script {
    wrapper: Vec<String>,
    body: String,
    on_exit: Vec<String>,
}

/// What a script did.
#[derive(Debug)]
pub(super) struct ScriptRun {
    /// Exit code of the wrapper (the script's, unless the wrapper failed).
    pub(super) code: Option<i32>,
    /// Standard error, for messages.
    pub(super) stderr: String,
    /// Standard output lines that are not probe answers.
    pub(super) stdout: String,
    answers: HashMap<String, Answer>,
}

impl ScriptRun {
    /// The answer of the probe operation labelled `label`.
    #[track_caller]
    pub(super) fn answer(&self, label: &str) -> &Answer {
        self.answers.get(label).unwrap_or_else(|| {
            panic!(
                "no answer for '{label}' (exit {:?})\nstdout: {}\nstderr: {}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    /// Fails the test unless the script succeeded.
    #[track_caller]
    pub(super) fn expect_success(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "script failed\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Script {
    /// A script run as `wrapper... sh -c SCRIPT`.
    pub(super) fn new(wrapper: &[&str]) -> Self {
        Self {
            wrapper: wrapper.iter().map(|s| (*s).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// Appends a shell command (the script stops at the first failure).
    pub(super) fn run(&mut self, line: impl AsRef<str>) -> &mut Self {
        let _ = writeln!(self.body, "{}", line.as_ref());
        self
    }

    /// Runs `line` when the script exits, failures ignored (the last added first).
    pub(super) fn on_exit(&mut self, line: impl AsRef<str>) -> &mut Self {
        self.on_exit
            .insert(0, format!("{} >/dev/null 2>&1 || true", line.as_ref()));
        self
    }

    /// Runs the probe with `ops`, as `prefix` (e.g. `setpriv --reuid=65534 ...`).
    pub(super) fn probe<L: AsRef<str>>(&mut self, prefix: &str, ops: &[(L, Op)]) -> &mut Self {
        if ops.is_empty() {
            return self;
        }
        if self.wrapper.iter().any(|w| w.starts_with("--reuid")) || prefix.contains("--reuid") {
            assert_reachable_by_others(&std::env::current_exe().expect("current_exe"));
        }
        let spec = super::probe::spec(ops);
        let _ = writeln!(
            self.body,
            "{prefix} env {}={} \"$PROBE\" --exact ops::probe::run_probe_from_env --nocapture --test-threads=1 -q",
            super::probe::SPEC_VAR,
            sh_quote(spec)
        );
        self
    }

    /// Runs the script and collects the probes' answers. A script still
    /// running after a minute is killed (its daemons are left to the caller's
    /// [`Cleanup`]) and fails the test.
    pub(super) fn execute(&self) -> ScriptRun {
        let mut child = self.spawn();
        let readers = [
            child.stdout.take().map(read_all),
            child.stderr.take().map(read_all),
        ];
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("script still running after 60 s:\n{}", self.body);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let [stdout, stderr] = readers.map(|r| {
            r.map(|h| h.join().expect("reader thread"))
                .unwrap_or_default()
        });
        Self::collect(std::process::Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Starts the script; [`Script::collect`] its output.
    pub(super) fn spawn(&self) -> Child {
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().expect("start the script")
    }

    /// The answers of a finished script.
    pub(super) fn collect(out: std::process::Output) -> ScriptRun {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (answers, rest) = super::probe::parse(&stdout);
        ScriptRun {
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout: rest,
            answers,
        }
    }

    fn command(&self) -> Command {
        let script = format!(
            "set -eux\ntrap '{}' EXIT\n{}",
            self.on_exit.join("; ").replace('\'', r"'\''"),
            self.body
        );
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg("sh");
                cmd
            }
            None => Command::new("sh"),
        };
        cmd.arg("-c")
            .arg(script)
            .env("PROBE", std::env::current_exe().expect("current_exe"))
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        cmd
    }
}
