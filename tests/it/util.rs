//! Shared helpers for integration tests: a per-test temporary directory, the
//! binary under test, running a command and checking it did not crash, the
//! fsverity-utils oracle, and deterministic input data.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

/// Path of the `fsverity-fuse` binary Cargo built for this test run.
pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_fsverity-fuse"))
}

/// A fresh temporary directory for one test, removed when dropped. `name` (the
/// test's name) appears in the path so a leftover directory says whose it was.
pub(crate) fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("fsverity-fuse-it-{name}-"))
        .tempdir()
        .expect("create a temporary directory")
}

/// What a finished command did.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The command line, for messages.
    pub(crate) command: String,
    /// Exit code (the process always has one: [`run`] fails the test on a signal).
    pub(crate) code: i32,
    /// Standard output, lossily decoded.
    pub(crate) stdout: String,
    /// Standard error, lossily decoded.
    pub(crate) stderr: String,
}

impl Outcome {
    /// Fails the test unless the exit code is `code`.
    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "`{}` exited with {} instead of {code}\nstdout: {}\nstderr: {}",
            self.command, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Fails the test unless the command succeeded.
    #[track_caller]
    pub(crate) fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }
}

/// Runs `program` with `args`, captures its output, and fails the test if the
/// process was killed by a signal or panicked (a crash is never an acceptable
/// answer, whatever the input).
#[track_caller]
pub(crate) fn run<I, S>(program: &Path, args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    let command = format!(
        "{} {}",
        program.display(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("can't run `{command}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let Some(code) = out.status.code() else {
        panic!(
            "`{command}` was killed by signal {:?}\nstderr: {stderr}",
            out.status.signal()
        );
    };
    assert!(
        !stderr.contains("panicked"),
        "`{command}` panicked (exit {code}):\n{stderr}"
    );
    Outcome {
        command,
        code,
        stdout,
        stderr,
    }
}

/// `fsverity-fuse keygen --private PRIVATE --public PUBLIC`: an Ed25519 key
/// pair, written by the tool under test.
#[track_caller]
pub(crate) fn keygen(private: &Path, public: &Path) {
    run_bin([
        OsStr::new("keygen"),
        OsStr::new("--private"),
        private.as_os_str(),
        OsStr::new("--public"),
        public.as_os_str(),
    ])
    .expect_success();
}

/// Runs `fsverity-fuse` with `args`.
#[track_caller]
pub(crate) fn run_bin<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(bin(), args)
}

/// Where fsverity-utils' `fsverity` is installed (Debian package `fsverity`).
pub(crate) const FSVERITY: &str = "/usr/bin/fsverity";

/// The fsverity-utils oracle, if installed. When it is missing, a test that
/// needs it returns early with a notice, except under CI (`CI=true`), where the
/// missing oracle fails the test: a silently skipped comparison proves nothing.
#[track_caller]
pub(crate) fn fsverity_oracle() -> Option<PathBuf> {
    let path = PathBuf::from(FSVERITY);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{FSVERITY} is missing: install the Debian package fsverity (fsverity-utils)");
    }
    eprintln!(
        "NOTICE: {FSVERITY} not found, skipping the comparison with fsverity-utils \
         (install the Debian package fsverity)"
    );
    None
}

/// Lower-case hex SHA-256 of `bytes` (computed with the `sha2` crate directly,
/// not through the library under test).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Reads a whole file, naming it on failure.
#[track_caller]
pub(crate) fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("can't read '{}': {e}", path.display()))
}

/// Writes a whole file, naming it on failure.
#[track_caller]
pub(crate) fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("can't write '{}': {e}", path.display()))
}

/// Marsaglia's xorshift64 (shifts 13, 7, 17): tiny, seeded, reproducible in any
/// language, and good enough to make every block of a test file distinct.
#[derive(Debug, Clone)]
pub(crate) struct XorShift64(u64);

impl XorShift64 {
    /// A generator seeded with `seed` (0, a fixed point of xorshift, is replaced).
    pub(crate) fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (`n > 0`; the slight modulo bias does not matter here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A value in `range`.
    pub(crate) fn in_range(&mut self, range: std::ops::RangeInclusive<u64>) -> u64 {
        range.start() + self.below(range.end() - range.start() + 1)
    }

    /// True with probability 1/n.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// Fills `buf` with the little-endian bytes of successive outputs (the last
    /// output truncated if `buf.len()` is not a multiple of 8).
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let last = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&last[..rest.len()]);
        }
    }
}

/// `len` bytes from [`XorShift64`] seeded with `seed`. Reproduce in Python:
///
/// ```text
/// def gen(length, seed):
///     x, out, m = seed, bytearray(), (1 << 64) - 1
///     while len(out) < length:
///         x ^= (x << 13) & m; x ^= x >> 7; x ^= (x << 17) & m
///         out += x.to_bytes(8, "little")
///     return bytes(out[:length])
/// ```
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    XorShift64::new(seed).fill(&mut buf);
    buf
}
