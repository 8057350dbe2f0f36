//! OpenSSL and fsverity-fuse speak the same keys and signatures, both ways.

use std::ffi::OsStr;
use std::fs;

use super::{
    enable_offline, keydir, openssl_sign, require_signed, signature_arg, strs, trusted_arg,
};
use crate::ioctl::tools::{errno, fsverity_and_openssl, scratch};
use crate::mount::harness::require_fuse;
use crate::util::{self, random_bytes, read, run_bin};

/// OpenSSL makes the key pair and signs the formatted digest fsverity-utils
/// computes; `fsverity-fuse enable --signature` takes the signature (checked by
/// --trusted-key), and a `--require-signatures` mount trusting OpenSSL's public
/// key serves the file. Also for SHA-512 with a salt, whose formatted digest
/// differs in algorithm id and length.
#[test]
fn openssl_signatures_are_accepted_by_enable_and_mount() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let (private, public) = openssl.keypair(&keys, "openssl");
    let cases: [(&str, &[&str]); 3] = [
        ("sha256", &[]),
        ("sha512", &["--hash-alg=sha512", "--salt=0102030405"]),
        ("small-blocks", &["--block-size=1024"]),
    ];
    let mut expected = Vec::new();
    for (i, (name, opts)) in cases.iter().enumerate() {
        let data = random_bytes(100_000 + i * 1000, 200 + i as u64);
        s.write(name, &data);
        let sig = keys.join(format!("{name}.sig"));
        let signature = openssl_sign(&fsv, &openssl, &private, &s.b(name), opts, &sig);
        let mut args: Vec<&OsStr> = opts.iter().map(OsStr::new).collect();
        args.extend(signature_arg(&sig));
        args.extend(trusted_arg(&public));
        enable_offline(&s.b(name), &args).expect_success();
        expected.push((name, data, signature, fsv.digest(opts, &s.b(name))));
    }
    let m = s.mount(&strs(&require_signed(&public)));
    for (name, data, signature, digest) in &expected {
        assert!(
            fs::read(m.p(name)).expect("read signed file") == *data,
            "{name}"
        );
        assert_eq!(fsv.measure(&m.p(name)), *digest, "{name}");
        let dumped = crate::ioctl::tools::run_raw(
            crate::util::bin(),
            [
                OsStr::new("dump-metadata"),
                OsStr::new("signature"),
                m.p(name).as_os_str(),
            ],
        );
        assert!(
            dumped.code == 0 && dumped.stdout == *signature,
            "{name}: stored signature"
        );
    }
    // The same file under a mount that trusts another key is refused, so the
    // reads above did check the signature.
    let (_, other) = openssl.keypair(&keys, "other");
    drop(m);
    let m = s.mount(&strs(&require_signed(&other)));
    let err = fs::read(m.p("sha256")).expect_err("signed by an untrusted key");
    assert_eq!(errno(&err), libc::EACCES, "{err}");
}

/// `fsverity-fuse keygen` writes keys OpenSSL reads (it derives the same public
/// key from the private one), and `fsverity-fuse sign` makes the signature
/// OpenSSL verifies — and, Ed25519 being deterministic, the very bytes OpenSSL
/// makes with that key.
#[test]
fn keygen_and_sign_interoperate_with_openssl() {
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let dir = crate::util::temp_dir("keygen-openssl");
    let (private, public) = (dir.path().join("ours.key"), dir.path().join("ours.pem"));
    util::keygen(&private, &public);
    let derived = openssl.run([
        OsStr::new("pkey"),
        OsStr::new("-in"),
        private.as_os_str(),
        OsStr::new("-pubout"),
    ]);
    derived.expect_success();
    assert_eq!(
        derived.stdout,
        fs::read_to_string(&public).expect("public key")
    );

    let file = dir.path().join("f");
    crate::util::write(&file, &random_bytes(300_000, 210));
    let other = dir.path().join("other");
    crate::util::write(&other, &random_bytes(300_000, 211));
    for (i, opts) in [
        &[][..],
        &["--hash-alg=sha512", "--block-size=2048", "--salt=ff00"],
    ]
    .into_iter()
    .enumerate()
    {
        let sig = dir.path().join(format!("ours{i}.sig"));
        let mut args = vec![
            OsStr::new("sign"),
            file.as_os_str(),
            sig.as_os_str(),
            OsStr::new("--key"),
            private.as_os_str(),
        ];
        args.extend(opts.iter().map(OsStr::new));
        run_bin(args).expect_success();
        let message = fsv.formatted_digest(opts, &file);
        assert!(
            openssl.verifies(&public, &message, &sig),
            "{opts:?}: OpenSSL rejects our signature"
        );
        assert!(
            !openssl.verifies(&public, &fsv.formatted_digest(opts, &other), &sig),
            "{opts:?}: OpenSSL accepts our signature for another file"
        );
        let theirs = openssl.sign(
            &private,
            &message,
            &dir.path().join(format!("openssl{i}.sig")),
        );
        assert_eq!(
            read(&sig),
            theirs,
            "{opts:?}: Ed25519 signatures are deterministic"
        );
    }
}

/// `--trusted-key DIR` trusts every .pem file in DIR (and nothing else): files
/// signed by any of them open, a file signed by a key outside does not.
#[test]
fn trusted_key_directory_of_pem_files() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let trusted = s.dir.path().join("trusted");
    fs::create_dir(&trusted).expect("mkdir trusted");
    let mut signers = Vec::new();
    for name in ["alice", "bob", "mallory"] {
        let (private, public) = openssl.keypair(&keys, name);
        if name != "mallory" {
            fs::copy(&public, trusted.join(format!("{name}.pem"))).expect("copy key");
        }
        signers.push((name, private, public));
    }
    // Not a .pem file: ignored, although it holds mallory's key.
    fs::copy(&signers[2].2, trusted.join("mallory.pem.disabled")).expect("copy key");
    for (name, private, _) in &signers {
        s.write(name, &random_bytes(40_000, name.len() as u64));
        let sig = keys.join(format!("{name}.sig"));
        openssl_sign(&fsv, &openssl, private, &s.b(name), &[], &sig);
        enable_offline(&s.b(name), &signature_arg(&sig)).expect_success();
    }
    // Enable checks against the directory too.
    s.write("late", &random_bytes(1000, 220));
    let late_sig = keys.join("late.sig");
    openssl_sign(&fsv, &openssl, &signers[2].1, &s.b("late"), &[], &late_sig);
    let mut args = signature_arg(&late_sig).to_vec();
    args.extend(trusted_arg(&trusted));
    let refused = enable_offline(&s.b("late"), &args);
    assert_eq!(
        refused.code, 1,
        "enable with an untrusted signature: {refused:?}"
    );

    let m = s.mount(&strs(&require_signed(&trusted)));
    for name in ["alice", "bob"] {
        assert!(
            fs::read(m.p(name)).is_ok(),
            "{name}: signed by a trusted key"
        );
    }
    let err = fs::read(m.p("mallory")).expect_err("mallory is not trusted");
    assert_eq!(errno(&err), libc::EACCES, "{err}");
    let status = run_bin([
        OsStr::new("status"),
        m.p("").as_os_str(),
        OsStr::new("--json"),
    ]);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let n = doc
        .as_object()
        .and_then(|o| o.values().next())
        .map(|v| v["trusted_keys"].clone());
    assert_eq!(n, Some(serde_json::json!(2)), "{}", status.stdout);
}
