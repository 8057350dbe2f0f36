//! What the ioctl and signature tests share: the outside programs they drive
//! (fsverity-utils' `fsverity` as the stock ioctl client and the digest oracle,
//! OpenSSL, `setpriv`), raw ioctls (`raw`), and reading a
//! tool's errno back from its message.
//!
//! Expected errnos are those of the kernel's fs-verity documentation
//! (Documentation/filesystems/fsverity.rst, "FS_IOC_ENABLE_VERITY" and
//! "FS_IOC_MEASURE_VERITY"); expected digests, trees and descriptors always come
//! from `fsverity digest` run on the same bytes, never from the crate under test.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::raw::{EnableCall, enable_verity, measure_verity};

use crate::mount::harness::Scratch;
use crate::util::{self, Outcome};

/// `FS_VERITY_FL` of include/uapi/linux/fs.h: the inode flag of verity files.
pub(crate) const FS_VERITY_FL: u32 = 0x0010_0000;

/// Where OpenSSL's command line tool is installed (Debian package `openssl`).
pub(crate) const OPENSSL: &str = "/usr/bin/openssl";

/// `path` if that program is installed. When it is not, the calling test should
/// return early: outside CI with a notice, while under `CI=true` a missing tool
/// fails the test (a silently skipped comparison proves nothing).
#[track_caller]
pub(crate) fn program(path: &str, package: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{path} is missing: install the Debian package {package} (CI=true forbids skipping)"
    );
    eprintln!(
        "NOTICE: {path} not found, skipping this test (install the Debian package {package})"
    );
    None
}

/// Both fsverity-utils and OpenSSL, for the signature tests.
#[track_caller]
pub(crate) fn fsverity_and_openssl() -> Option<(Fsverity, Openssl)> {
    let fsverity = Fsverity::find()?;
    let openssl = program(OPENSSL, "openssl")?;
    Some((fsverity, Openssl(openssl)))
}

/// A scratch directory whose backing directory has a tree store, so that trees
/// made by an offline `fsverity-fuse enable` are stored, not rebuilt on open.
pub(crate) fn scratch() -> Scratch {
    let s = Scratch::new();
    std::fs::create_dir(s.b(".fsverity-fuse")).expect("create the tree store");
    s
}

/// The message the C library gives `errno` (what `fsverity` prints after the
/// failing ioctl's name), e.g. "Text file busy" for ETXTBSY.
pub(crate) fn strerror(errno: i32) -> String {
    let full = io::Error::from_raw_os_error(errno).to_string();
    match full.rsplit_once(" (os error") {
        Some((msg, _)) => msg.to_owned(),
        None => full,
    }
}

/// The errno of an I/O error (0 if it has none).
pub(crate) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Fails unless the fsverity-utils command in `out` failed with exit code 1 and
/// printed the message of `errno` for the ioctl `ioctl` (e.g. "FS_IOC_ENABLE_VERITY").
#[track_caller]
pub(crate) fn expect_tool_errno(out: &Outcome, ioctl: &str, errno: i32) {
    let want = format!("{ioctl} failed on");
    let msg = strerror(errno);
    assert!(
        out.code == 1 && out.stderr.contains(&want) && out.stderr.trim_end().ends_with(&msg),
        "`{}` should fail with {ioctl} {errno} ({msg}), got exit {}\nstdout: {}\nstderr: {}",
        out.command,
        out.code,
        out.stdout,
        out.stderr
    );
}

/// fsverity-utils' `fsverity`: the stock client of the kernel's ioctls, and the
/// independent oracle for digests, trees and descriptors (`fsverity digest`).
#[derive(Debug)]
pub(crate) struct Fsverity(PathBuf);

impl Fsverity {
    /// The installed tool (see [`program`] for what happens when it is missing).
    #[track_caller]
    pub(crate) fn find() -> Option<Self> {
        util::fsverity_oracle().map(Self)
    }

    /// Where the tool is installed.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Runs `fsverity ARGS`.
    #[track_caller]
    pub(crate) fn run<I, S>(&self, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        util::run(&self.0, args)
    }

    /// `fsverity enable [OPTS] FILE` (not checked: callers look at the outcome).
    #[track_caller]
    pub(crate) fn enable(&self, file: &Path, opts: &[&str]) -> Outcome {
        let mut args: Vec<&OsStr> = vec![OsStr::new("enable")];
        args.extend(opts.iter().map(OsStr::new));
        args.push(file.as_os_str());
        self.run(args)
    }

    /// `fsverity enable [OPTS] FILE`, which must succeed.
    #[track_caller]
    pub(crate) fn enable_ok(&self, file: &Path, opts: &[&str]) {
        self.enable(file, opts).expect_success();
    }

    /// `fsverity digest [OPTS] FILES...`: `alg:hex` of every file, in order.
    #[track_caller]
    pub(crate) fn digests(&self, opts: &[&str], files: &[PathBuf]) -> Vec<String> {
        let mut args: Vec<&OsStr> = vec![OsStr::new("digest")];
        args.extend(opts.iter().map(OsStr::new));
        args.extend(files.iter().map(|f| f.as_os_str()));
        first_words(&self.run(args), files.len())
    }

    /// `fsverity digest [OPTS] FILE`: `alg:hex`.
    #[track_caller]
    pub(crate) fn digest(&self, opts: &[&str], file: &Path) -> String {
        self.digests(opts, &[file.to_path_buf()]).remove(0)
    }

    /// `fsverity measure FILES...` (through the ioctl): `alg:hex` of every file.
    #[track_caller]
    pub(crate) fn measures(&self, files: &[PathBuf]) -> Vec<String> {
        let mut args: Vec<&OsStr> = vec![OsStr::new("measure")];
        args.extend(files.iter().map(|f| f.as_os_str()));
        first_words(&self.run(args), files.len())
    }

    /// `fsverity measure FILE`: `alg:hex`.
    #[track_caller]
    pub(crate) fn measure(&self, file: &Path) -> String {
        self.measures(&[file.to_path_buf()]).remove(0)
    }

    /// The formatted digest that signatures sign ("FSVerity", le16 algorithm,
    /// le16 size, digest), from `fsverity digest --for-builtin-sig --compact`.
    #[track_caller]
    pub(crate) fn formatted_digest(&self, opts: &[&str], file: &Path) -> Vec<u8> {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("digest"),
            OsStr::new("--for-builtin-sig"),
            OsStr::new("--compact"),
        ];
        args.extend(opts.iter().map(OsStr::new));
        args.push(file.as_os_str());
        let out = self.run(args);
        out.expect_success();
        let bytes = hex::decode(out.stdout.trim()).expect("fsverity prints hex");
        assert!(
            bytes.starts_with(b"FSVerity"),
            "not a formatted digest: {}",
            out.stdout
        );
        bytes
    }

    /// `fsverity digest [OPTS] --out-merkle-tree --out-descriptor FILE`: the
    /// serialized tree and the 256-byte descriptor fsverity-utils computes.
    #[track_caller]
    pub(crate) fn tree_and_descriptor(
        &self, opts: &[&str], file: &Path, workdir: &Path,
    ) -> (Vec<u8>, Vec<u8>) {
        let tree = workdir.join("oracle.tree");
        let desc = workdir.join("oracle.desc");
        let mut args: Vec<std::ffi::OsString> = vec!["digest".into()];
        args.extend(opts.iter().map(Into::into));
        args.push(format!("--out-merkle-tree={}", tree.display()).into());
        args.push(format!("--out-descriptor={}", desc.display()).into());
        args.push(file.into());
        self.run(args).expect_success();
        (util::read(&tree), util::read(&desc))
    }
}

/// The first word (`alg:hex`) of each of the `n` lines a successful
/// `fsverity digest`/`measure` printed.
#[track_caller]
fn first_words(out: &Outcome, n: usize) -> Vec<String> {
    out.expect_success();
    let words: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(words.len(), n, "`{}` printed {}", out.command, out.stdout);
    words
}

/// OpenSSL's command line tool.
#[derive(Debug)]
pub(crate) struct Openssl(PathBuf);

impl Openssl {
    /// Runs `openssl ARGS`.
    #[track_caller]
    pub(crate) fn run<I, S>(&self, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        util::run(&self.0, args)
    }

    /// An Ed25519 key pair made by OpenSSL in `dir`: (`NAME.key` PKCS#8 private
    /// key from `genpkey`, `NAME.pem` public key from `pkey -pubout`).
    #[track_caller]
    pub(crate) fn keypair(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let private = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pem"));
        self.run([
            OsStr::new("genpkey"),
            OsStr::new("-algorithm"),
            OsStr::new("ed25519"),
            OsStr::new("-out"),
            private.as_os_str(),
        ])
        .expect_success();
        self.run([
            OsStr::new("pkey"),
            OsStr::new("-in"),
            private.as_os_str(),
            OsStr::new("-pubout"),
            OsStr::new("-out"),
            public.as_os_str(),
        ])
        .expect_success();
        (private, public)
    }

    /// `openssl pkeyutl -sign -rawin`: the Ed25519 signature of `message` by
    /// `private`, written to `out` and returned.
    #[track_caller]
    pub(crate) fn sign(&self, private: &Path, message: &[u8], out: &Path) -> Vec<u8> {
        let msg = out.with_extension("msg");
        util::write(&msg, message);
        self.run([
            OsStr::new("pkeyutl"),
            OsStr::new("-sign"),
            OsStr::new("-rawin"),
            OsStr::new("-inkey"),
            private.as_os_str(),
            OsStr::new("-in"),
            msg.as_os_str(),
            OsStr::new("-out"),
            out.as_os_str(),
        ])
        .expect_success();
        let sig = util::read(out);
        assert_eq!(sig.len(), 64, "an Ed25519 signature has 64 bytes");
        sig
    }

    /// `openssl pkeyutl -verify -rawin -pubin`: whether `sig` is `public`'s
    /// signature of `message`.
    #[track_caller]
    pub(crate) fn verifies(&self, public: &Path, message: &[u8], sig: &Path) -> bool {
        let msg = sig.with_extension("verify-msg");
        util::write(&msg, message);
        let out = self.run([
            OsStr::new("pkeyutl"),
            OsStr::new("-verify"),
            OsStr::new("-rawin"),
            OsStr::new("-pubin"),
            OsStr::new("-inkey"),
            public.as_os_str(),
            OsStr::new("-in"),
            msg.as_os_str(),
            OsStr::new("-sigfile"),
            sig.as_os_str(),
        ]);
        match out.code {
            0 => {
                assert!(
                    out.stdout.contains("Signature Verified Successfully"),
                    "{out:?}"
                );
                true
            }
            _ => false,
        }
    }
}

/// What a command printed, as bytes (for binary output such as dump-metadata).
#[derive(Debug)]
pub(crate) struct RawOutcome {
    /// Exit code.
    pub(crate) code: i32,
    /// Standard output.
    pub(crate) stdout: Vec<u8>,
    /// Standard error, lossily decoded.
    pub(crate) stderr: String,
}

/// Runs `program ARGS`, keeping standard output as bytes.
#[track_caller]
pub(crate) fn run_raw<I, S>(program: &Path, args: I) -> RawOutcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("can't run {}: {e}", program.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("{} was killed: {stderr}", program.display()));
    assert!(
        !stderr.contains("panicked"),
        "{} panicked: {stderr}",
        program.display()
    );
    RawOutcome {
        code,
        stdout: out.stdout,
        stderr,
    }
}

/// A valid `FS_IOC_ENABLE_VERITY` request: version 1, SHA-256, 4096-byte blocks.
pub(crate) fn sha256_call<'a>() -> EnableCall<'a> {
    EnableCall {
        version: 1,
        hash_algorithm: 1,
        block_size: 4096,
        ..EnableCall::default()
    }
}

/// Opens `path` read-only (as `fsverity enable` does) and enables verity with `call`.
pub(crate) fn ioctl_enable(path: &Path, call: &EnableCall<'_>) -> io::Result<()> {
    let f = File::open(path)?;
    enable_verity(&f, call)
}

/// `FS_IOC_MEASURE_VERITY` on `path` with room for 64 digest bytes: `alg:hex`
/// in fsverity-utils' spelling.
pub(crate) fn ioctl_measure(path: &Path) -> io::Result<String> {
    let f = File::open(path)?;
    let (alg, digest) = measure_verity(&f, 64)?;
    let name = match alg {
        1 => "sha256".to_owned(),
        2 => "sha512".to_owned(),
        other => format!("alg{other}"),
    };
    Ok(format!("{name}:{}", hex::encode(digest)))
}

/// `FS_IOC_GETFLAGS` on `path`.
#[track_caller]
pub(crate) fn inode_flags(path: &Path) -> u32 {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    rustix::fs::ioctl_getflags(&f)
        .unwrap_or_else(|e| panic!("FS_IOC_GETFLAGS on {}: {e}", path.display()))
        .bits()
}

/// Whether the mount answers `path` as a verity file (measure succeeds), or
/// not (ENODATA); any other answer fails the test.
#[track_caller]
pub(crate) fn is_verity(path: &Path) -> bool {
    match ioctl_measure(path) {
        Ok(_) => true,
        Err(e) if errno(&e) == libc::ENODATA => false,
        Err(e) => panic!("FS_IOC_MEASURE_VERITY on {}: {e}", path.display()),
    }
}
