//! Mount policy through real mounts: under `--require-signatures` every verity
//! file whose signature does not verify under a trusted key fails to open with
//! EACCES — wrong key, tampered bytes, a signature moved from another file, a
//! signature of content since replaced, no signature — with a log line naming
//! the file, its digest and the reason, and the status counters counting it;
//! `--require-verity` refuses files without verity.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::Path;

use super::{
    counter, descriptor_len, enable_offline, keydir, metadata_xattr, openssl_sign, require_signed,
    set_metadata_xattr, signature_arg, strip_ansi, strs, trusted_arg,
};
use crate::ioctl::tools::{Fsverity, errno, fsverity_and_openssl, scratch};
use crate::mount::harness::{Mount, require_fuse};
use crate::util::random_bytes;

/// Opening `name` in `m` fails with EACCES.
#[track_caller]
pub(super) fn refused(m: &Mount, name: &str) {
    match File::open(m.p(name)) {
        Ok(_) => panic!("{name} opened, but its signature is not valid"),
        Err(e) => assert_eq!(errno(&e), libc::EACCES, "{name}: {e}"),
    }
}

/// `name` in `m` reads back as `data`.
#[track_caller]
pub(super) fn served(m: &Mount, name: &str, data: &[u8]) {
    let got = fs::read(m.p(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(got == data, "{name}: wrong bytes");
}

/// The counters a refusal moves, read from `fsverity-fuse status --json`.
fn rejections(m: &Mount) -> (u64, u64) {
    let root = m.p("");
    (
        counter(&root, "signature_rejections"),
        counter(&root, "policy_denials"),
    )
}

/// A log line of `m` says the open of `name` was denied, with `digest` and `reason`.
#[track_caller]
pub(super) fn logged(m: &Mount, name: &str, digest: &str, reason: &str) {
    let log = strip_ansi(&m.log());
    let hit = log.lines().any(|l| {
        l.contains("open denied")
            && l.contains(&format!("/{name} "))
            && l.contains(digest)
            && l.contains(reason)
    });
    assert!(
        hit,
        "no log line denying {name} ({digest}, {reason}):\n{log}"
    );
}

#[test]
fn wrong_key_is_refused_logged_and_counted() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let (signer, _) = openssl.keypair(&keys, "signer");
    let (_, trusted) = openssl.keypair(&keys, "trusted");
    s.write("f", &random_bytes(20_000, 300));
    let sig = keys.join("f.sig");
    openssl_sign(&fsv, &openssl, &signer, &s.b("f"), &[], &sig);
    enable_offline(&s.b("f"), &signature_arg(&sig)).expect_success();
    let m = s.mount(&strs(&require_signed(&trusted)));
    assert_eq!(rejections(&m), (0, 0));
    refused(&m, "f");
    let (sig_rejections, denials) = rejections(&m);
    assert!(
        sig_rejections >= 1 && denials >= 1,
        "counters: {sig_rejections}, {denials}"
    );
    logged(&m, "f", &fsv.digest(&[], &s.b("f")), "does not verify");
    // Each further refusal counts.
    refused(&m, "f");
    let (r2, d2) = rejections(&m);
    assert!(
        r2 > sig_rejections && d2 > denials,
        "counters did not grow: {r2}, {d2}"
    );
}

/// Signs `names` (backing files) with OpenSSL and enables them offline with
/// their signatures; returns their contents.
fn signed_files(
    fsv: &Fsverity, openssl: &crate::ioctl::tools::Openssl, s: &crate::mount::harness::Scratch,
    private: &Path, names: &[&str],
) -> Vec<Vec<u8>> {
    let keys = keydir(s.dir.path());
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let data = random_bytes(30_000 + i, 310 + i as u64);
            s.write(name, &data);
            let sig = keys.join(format!("{name}.sig"));
            openssl_sign(fsv, openssl, private, &s.b(name), &[], &sig);
            enable_offline(&s.b(name), &signature_arg(&sig)).expect_success();
            data
        })
        .collect()
}

/// A bit flipped in the signature part of the stored xattr (after the descriptor)
/// makes the file unopenable; its untouched neighbour still opens.
#[test]
fn tampered_signature_is_refused() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let (private, public) = openssl.keypair(&keys, "k");
    let data = signed_files(&fsv, &openssl, &s, &private, &["a", "b", "c"]);
    let m = s.mount(&strs(&require_signed(&public)));
    for (name, d) in ["a", "b", "c"].iter().zip(&data) {
        served(&m, name, d);
    }
    drop(m);
    // Flip a bit in R (first half) of a's signature and in S (second half) of b's.
    for (name, at) in [("a", 5), ("b", 40)] {
        let mut x = metadata_xattr(&s.b(name));
        let d = descriptor_len(&x);
        assert_eq!(d, 44, "{name}: a compact SHA-256 descriptor");
        assert_eq!(x.len(), d + 64, "{name}: descriptor + signature");
        x[d + at] ^= 0x01;
        set_metadata_xattr(&s.b(name), &x);
    }
    let m = s.mount(&strs(&require_signed(&public)));
    refused(&m, "a");
    refused(&m, "b");
    served(&m, "c", &data[2]);
    assert!(rejections(&m).0 >= 2);
}

/// A valid signature copied from one verity file onto another (the other's
/// descriptor kept) does not make the other file trusted.
#[test]
fn signature_moved_to_another_file_is_refused() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let (private, public) = openssl.keypair(&keys, "k");
    let data = signed_files(&fsv, &openssl, &s, &private, &["donor"]);
    s.write("unsigned", &random_bytes(30_000, 320));
    s.write("signed", &random_bytes(30_000, 321));
    enable_offline(&s.b("unsigned"), &[]).expect_success();
    let own = keys.join("signed.sig");
    openssl_sign(&fsv, &openssl, &private, &s.b("signed"), &[], &own);
    enable_offline(&s.b("signed"), &signature_arg(&own)).expect_success();

    let donor = metadata_xattr(&s.b("donor"));
    let moved = &donor[descriptor_len(&donor)..];
    assert_eq!(moved.len(), 64, "the donor's signature");
    for name in ["unsigned", "signed"] {
        let mut x = metadata_xattr(&s.b(name));
        x.truncate(descriptor_len(&x));
        x.extend_from_slice(moved);
        set_metadata_xattr(&s.b(name), &x);
    }
    let m = s.mount(&strs(&require_signed(&public)));
    served(&m, "donor", &data[0]);
    refused(&m, "unsigned");
    refused(&m, "signed");
    logged(
        &m,
        "signed",
        &fsv.digest(&[], &s.b("signed")),
        "does not verify",
    );
}

/// A file signed, then replaced by other content: enabling the new content with
/// the old signature is refused by `enable --trusted-key`; enabled without the
/// check, the file is refused at open by the mount.
#[test]
fn signature_of_replaced_content_is_refused() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let (private, public) = openssl.keypair(&keys, "k");
    let old = signed_files(&fsv, &openssl, &s, &private, &["f"]).remove(0);
    let sig = keys.join("f.sig");
    {
        let m = s.mount(&strs(&require_signed(&public)));
        served(&m, "f", &old);
    }
    fs::remove_file(s.b("f")).expect("rm");
    let new = random_bytes(old.len(), 330);
    s.write("f", &new);
    let mut args = signature_arg(&sig).to_vec();
    args.extend(trusted_arg(&public));
    let out = enable_offline(&s.b("f"), &args);
    assert_eq!(
        out.code, 1,
        "old signature accepted for new content: {out:?}"
    );
    assert!(out.stderr.contains("does not verify"), "{}", out.stderr);
    let measured = crate::util::run_bin([OsStr::new("measure"), s.b("f").as_os_str()]);
    assert_eq!(
        measured.code, 1,
        "a refused enable left the file verity: {measured:?}"
    );

    enable_offline(&s.b("f"), &signature_arg(&sig)).expect_success();
    let m = s.mount(&strs(&require_signed(&public)));
    refused(&m, "f");
    logged(&m, "f", &fsv.digest(&[], &s.b("f")), "does not verify");
}

/// Under `--require-signatures` a verity file without a signature is refused;
/// a plain file is not a verity file and is governed by `--require-verity`.
#[test]
fn missing_signature_is_refused() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let (private, public) = openssl.keypair(&keys, "k");
    let data = signed_files(&fsv, &openssl, &s, &private, &["signed"]);
    s.write("unsigned", &random_bytes(10_000, 340));
    enable_offline(&s.b("unsigned"), &[]).expect_success();
    let m = s.mount(&strs(&require_signed(&public)));
    served(&m, "signed", &data[0]);
    refused(&m, "unsigned");
    logged(
        &m,
        "unsigned",
        &fsv.digest(&[], &s.b("unsigned")),
        "no signature",
    );
    let (r, d) = rejections(&m);
    assert!(r >= 1 && d >= 1, "counters: {r}, {d}");
}

#[test]
fn require_verity_refuses_plain_files_only() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    let verity = random_bytes(50_000, 350);
    s.write("verity", &verity);
    s.write("plain", b"no verity here");
    enable_offline(&s.b("verity"), &[]).expect_success();
    let m = s.mount(&["--require-verity"]);
    assert_eq!(rejections(&m).1, 0);
    served(&m, "verity", &verity);
    refused(&m, "plain");
    assert!(rejections(&m).1 >= 1, "policy_denials did not count");
    assert_eq!(fsv.measure(&m.p("verity")), fsv.digest(&[], &s.b("verity")));
}
