//! Ed25519 signatures and the trust policy, checked against OpenSSL: keys and
//! signatures made by either side work on the other, mounts with
//! `--require-signatures` refuse every file whose signature is missing, wrong,
//! tampered with, borrowed from another file or stale, the stock `fsverity
//! enable --signature` gets the kernel's errors, and `fsverity-fuse verify`
//! reports the same problems offline.
//!
//! A signature is OpenSSL's `pkeyutl -sign -rawin` of the formatted digest that
//! `fsverity digest --for-builtin-sig` prints, or the kernel's PKCS#7 format from
//! `fsverity sign`, `openssl cms` or `rpmsign --signverity`, so neither side of a
//! comparison comes from the crate under test.

mod interop;
mod pkcs7;
mod pkcs7_mount;
mod policy;
mod rpm;
mod stock_enable;
mod verify;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::ioctl::tools::{Fsverity, Openssl};
use crate::util::run_bin;

/// Name of the backing file xattr holding the descriptor followed by the
/// signature.
const METADATA_XATTR: &str = "user.fsverity-fuse";

/// Length of the descriptor at the start of a [`METADATA_XATTR`] value: the
/// compact encoding (docs/FORMAT.md: tag 0x81, algorithm, log2 block size,
/// salt size, le64 data size, root hash, salt) or the kernel's 256 bytes.
#[track_caller]
fn descriptor_len(x: &[u8]) -> usize {
    match x {
        [0x81, alg, _, salt, ..] => {
            let digest = match alg {
                1 | 0xB3 => 32,
                2 => 64,
                other => panic!("unknown algorithm {other}"),
            };
            12 + digest + usize::from(*salt)
        }
        [1, ..] => 256,
        _ => panic!("not verity metadata: {x:02x?}"),
    }
}

/// Signs `file`'s fs-verity digest (with `opts`, as for `fsverity digest`) with
/// OpenSSL and `private`; the 64-byte signature is written to `out` and returned.
#[track_caller]
fn openssl_sign(
    fsv: &Fsverity, openssl: &Openssl, private: &Path, file: &Path, opts: &[&str], out: &Path,
) -> Vec<u8> {
    let message = fsv.formatted_digest(opts, file);
    openssl.sign(private, &message, out)
}

/// `fsverity-fuse enable FILE ARGS...` on a backing file (not checked).
#[track_caller]
fn enable_offline(file: &Path, args: &[&OsStr]) -> crate::util::Outcome {
    let mut all = vec![OsStr::new("enable"), file.as_os_str()];
    all.extend_from_slice(args);
    run_bin(all)
}

/// `--signature SIG` arguments.
fn signature_arg(sig: &Path) -> [&OsStr; 2] {
    [OsStr::new("--signature"), sig.as_os_str()]
}

/// `--trusted-key KEY` arguments.
fn trusted_arg(key: &Path) -> [&OsStr; 2] {
    [OsStr::new("--trusted-key"), key.as_os_str()]
}

/// The mount arguments `--require-signatures --trusted-key KEY`.
fn require_signed(key: &Path) -> Vec<String> {
    vec![
        "--require-signatures".into(),
        "--trusted-key".into(),
        key.to_str().expect("utf-8 key path").into(),
    ]
}

/// Borrows a list of owned arguments.
fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The raw verity xattr of a backing file.
#[track_caller]
fn metadata_xattr(file: &Path) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::getxattr(file, METADATA_XATTR, &mut buf[..])
        .unwrap_or_else(|e| panic!("getxattr {}: {e}", file.display()));
    buf.truncate(n);
    buf
}

/// `fsverity sign FILE SIG --key KEY --cert CERT OPTS` (fsverity-utils): the
/// signature written to `sig`.
#[track_caller]
fn fsverity_sign(fsv: &Fsverity, file: &Path, sig: &Path, key: &Path, cert: &Path, opts: &[&str]) {
    let mut args = vec![
        OsStr::new("sign"),
        file.as_os_str(),
        sig.as_os_str(),
        OsStr::new("--key"),
        key.as_os_str(),
        OsStr::new("--cert"),
        cert.as_os_str(),
    ];
    args.extend(opts.iter().map(OsStr::new));
    fsv.run(args).expect_success();
}

/// Replaces the verity xattr of a backing file.
#[track_caller]
fn set_metadata_xattr(file: &Path, value: &[u8]) {
    rustix::fs::setxattr(file, METADATA_XATTR, value, rustix::fs::XattrFlags::REPLACE)
        .unwrap_or_else(|e| panic!("setxattr {}: {e}", file.display()));
}

/// A counter of `fsverity-fuse status MNT --json`.
#[track_caller]
fn counter(mnt: &Path, name: &str) -> u64 {
    let out = run_bin([OsStr::new("status"), mnt.as_os_str(), OsStr::new("--json")]);
    out.expect_success();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("status JSON");
    let status = doc
        .as_object()
        .and_then(|o| o.values().next())
        .unwrap_or_else(|| panic!("no mount in {}", out.stdout));
    status["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {}", out.stdout))
}

pub(crate) use crate::mount::support::strip_ansi;

/// A directory for keys and signatures inside the test's scratch directory.
fn keydir(root: &Path) -> PathBuf {
    let dir = root.join("keys");
    std::fs::create_dir_all(&dir).expect("mkdir keys");
    dir
}
