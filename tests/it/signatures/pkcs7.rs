//! The kernel's PKCS#7 signature format against the stock tools: keys and
//! certificates from `openssl req`, signatures from `fsverity sign` (the
//! oracle), formatted digests from `fsverity digest --for-builtin-sig`, our
//! ECDSA signatures checked by `openssl smime -verify`, signed attributes and
//! key identifiers from `openssl cms -sign`. Offline: `fsverity-fuse enable`,
//! `sign`, `verify` and the library itself.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use fsverity_fuse::format::{HashAlgorithm, HashValue};
use fsverity_fuse::signature::{SignatureError, TrustedKeys};

use super::fsverity_sign;
use crate::ioctl::tools::{Fsverity, Openssl, fsverity_and_openssl};
use crate::util::{Outcome, XorShift64, random_bytes, read, run_bin, temp_dir, write};

/// The key kinds of the kernel's PKCS#7 signatures, as `openssl req -newkey`
/// arguments.
pub(super) const KINDS: [(&str, &[&str]); 4] = [
    ("rsa2048", &["-newkey", "rsa:2048"]),
    ("rsa4096", &["-newkey", "rsa:4096"]),
    (
        "p256",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ),
    (
        "p384",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    ),
];

/// `openssl req -x509 ARGS -nodes`: a private key `NAME.key` and its
/// self-signed certificate `NAME.crt` (PEM) in `dir`.
#[track_caller]
pub(super) fn keypair(
    openssl: &Openssl, dir: &Path, name: &str, newkey: &[&str],
) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let mut args: Vec<&OsStr> = vec![OsStr::new("req"), OsStr::new("-x509")];
    args.extend(newkey.iter().map(OsStr::new));
    args.extend([
        OsStr::new("-nodes"),
        OsStr::new("-days"),
        OsStr::new("1"),
        OsStr::new("-subj"),
    ]);
    let subject = format!("/CN=fsverity-fuse {name}");
    args.push(OsStr::new(&subject));
    args.extend([
        OsStr::new("-keyout"),
        key.as_os_str(),
        OsStr::new("-out"),
        cert.as_os_str(),
    ]);
    openssl.run(args).expect_success();
    (key, cert)
}

/// `fsverity sign FILE SIG --key KEY --cert CERT OPTS`: the signature's bytes.
#[track_caller]
fn stock_sign(fsv: &Fsverity, file: &Path, key: &Path, cert: &Path, opts: &[&str]) -> PathBuf {
    let sig = file.with_extension(format!("{}.p7s", cert_stem(cert)));
    fsverity_sign(fsv, file, &sig, key, cert, opts);
    sig
}

fn cert_stem(cert: &Path) -> String {
    cert.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `fsverity-fuse enable FILE --signature SIG --trusted-key CERT OPTS`.
fn enable_with(file: &Path, sig: &Path, trusted: &Path, opts: &[&str]) -> Outcome {
    let mut args = vec![
        OsStr::new("enable"),
        file.as_os_str(),
        OsStr::new("--signature"),
        sig.as_os_str(),
        OsStr::new("--trusted-key"),
        trusted.as_os_str(),
    ];
    args.extend(opts.iter().map(OsStr::new));
    run_bin(args)
}

/// Fails unless `out` failed (exit 1) naming `what` in its message.
#[track_caller]
fn refused_with(out: &Outcome, what: &str) {
    assert!(
        out.code == 1 && out.stderr.contains(what),
        "`{}` should fail with '{what}': exit {}\n{}",
        out.command,
        out.code,
        out.stderr
    );
}

/// Signatures by `fsverity sign` with RSA 2048/4096 and ECDSA P-256/P-384 keys,
/// over SHA-256 and SHA-512 file digests: `enable --signature` stores them when
/// the signer's certificate is trusted, `verify` finds them valid, dump-metadata
/// returns them as given. Another signer's certificate: not trusted (the
/// kernel's ENOKEY); another file's signature: rejected (EKEYREJECTED).
#[test]
fn fsverity_sign_signatures_are_accepted_and_checked() {
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let dir = temp_dir("pkcs7-stock");
    let d = dir.path();
    let keys: Vec<_> = KINDS
        .iter()
        .map(|(name, newkey)| (*name, keypair(&openssl, d, name, newkey)))
        .collect();
    for (i, (name, (key, cert))) in keys.iter().enumerate() {
        for (j, opts) in [&[][..], &["--hash-alg=sha512"]].into_iter().enumerate() {
            let case = format!("{name}-{j}");
            let file = d.join(&case);
            write(
                &file,
                &random_bytes(50_000 + i * 7 + j, (i * 10 + j) as u64),
            );
            let sig = stock_sign(&fsv, &file, key, cert, opts);

            // Another signer's certificate only: not trusted.
            let (_, other_cert) = &keys[(i + 1) % keys.len()].1;
            refused_with(
                &enable_with(&file, &sig, other_cert, opts),
                "signer not trusted",
            );
            // Another file's signature: the signer is trusted, the digest wrong.
            let other = d.join(format!("{case}.other"));
            write(&other, &random_bytes(4096, 99));
            refused_with(&enable_with(&other, &sig, cert, opts), "signature rejected");

            enable_with(&file, &sig, cert, opts).expect_success();
            let dumped = crate::ioctl::tools::run_raw(
                crate::util::bin(),
                [
                    OsStr::new("dump-metadata"),
                    OsStr::new("signature"),
                    file.as_os_str(),
                ],
            );
            assert!(dumped.code == 0 && dumped.stdout == read(&sig), "{case}");
            let out = run_bin([
                OsStr::new("verify"),
                file.as_os_str(),
                OsStr::new("--trusted-key"),
                cert.as_os_str(),
                OsStr::new("--require-signatures"),
                OsStr::new("--json"),
            ]);
            out.expect_success();
            let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
            assert_eq!(doc["files"][0]["signature"], "valid", "{case}: {doc}");
            assert_eq!(
                doc["files"][0]["digest"].as_str(),
                Some(fsv.digest(opts, &file).as_str()),
                "{case}"
            );
            // Verified offline under a certificate that did not sign it: a problem.
            let out = run_bin([
                OsStr::new("verify"),
                file.as_os_str(),
                OsStr::new("--trusted-key"),
                other_cert.as_os_str(),
            ]);
            assert!(
                out.code == 1 && out.stdout.contains("signer not trusted"),
                "{case}: {out:?}"
            );
        }
    }
}

/// `fsverity-fuse sign --key --cert` writes what `fsverity sign` writes, byte
/// for byte, with RSA keys (PKCS#1 v1.5 is deterministic), for several tree
/// parameters. With ECDSA keys the signature differs each time: OpenSSL
/// verifies it over the formatted digest `fsverity digest --for-builtin-sig`
/// prints, and refuses it over another file's.
#[test]
fn sign_matches_fsverity_sign() {
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let dir = temp_dir("pkcs7-sign");
    let d = dir.path();
    let file = d.join("file");
    write(&file, &random_bytes(300_000, 7));
    let other = d.join("other");
    write(&other, &random_bytes(300_000, 8));
    let params: [&[&str]; 3] = [
        &[],
        &["--hash-alg=sha512"],
        &["--block-size=1024", "--salt=00ff11ee"],
    ];
    for (name, newkey) in KINDS {
        let (key, cert) = keypair(&openssl, d, name, newkey);
        for (j, opts) in params.into_iter().enumerate() {
            let ours = d.join(format!("ours-{name}-{j}.p7s"));
            let mut args = vec![
                OsStr::new("sign"),
                file.as_os_str(),
                ours.as_os_str(),
                OsStr::new("--key"),
                key.as_os_str(),
                OsStr::new("--cert"),
                cert.as_os_str(),
            ];
            args.extend(opts.iter().map(OsStr::new));
            run_bin(args).expect_success();
            if name.starts_with("rsa") {
                let theirs = stock_sign(&fsv, &file, &key, &cert, opts);
                assert!(
                    read(&ours) == read(&theirs),
                    "{name} {opts:?}: not fsverity sign's bytes"
                );
            }
            let smime = |content: &Path| {
                let fmt = d.join("content.fmt");
                write(&fmt, &fsv.formatted_digest(opts, content));
                openssl.run([
                    OsStr::new("smime"),
                    OsStr::new("-verify"),
                    OsStr::new("-binary"),
                    OsStr::new("-inform"),
                    OsStr::new("DER"),
                    OsStr::new("-in"),
                    ours.as_os_str(),
                    OsStr::new("-content"),
                    fmt.as_os_str(),
                    OsStr::new("-certfile"),
                    cert.as_os_str(),
                    OsStr::new("-nointern"),
                    OsStr::new("-noverify"),
                    OsStr::new("-out"),
                    OsStr::new("/dev/null"),
                ])
            };
            smime(&file).expect_success();
            assert_ne!(
                smime(&other).code,
                0,
                "{name} {opts:?}: verifies for another file"
            );
        }
    }
    // An Ed25519 key makes raw signatures and takes no certificate.
    let ed = d.join("ed.key");
    openssl
        .run([
            OsStr::new("genpkey"),
            OsStr::new("-algorithm"),
            OsStr::new("ed25519"),
            OsStr::new("-out"),
            ed.as_os_str(),
        ])
        .expect_success();
    let (_, cert) = keypair(&openssl, d, "rsa-for-ed", &["-newkey", "rsa:2048"]);
    let out = run_bin([
        OsStr::new("sign"),
        file.as_os_str(),
        d.join("ed.sig").as_os_str(),
        OsStr::new("--key"),
        ed.as_os_str(),
        OsStr::new("--cert"),
        cert.as_os_str(),
    ]);
    refused_with(&out, "Ed25519 key");
}

/// Signatures with signed attributes (contentType, signingTime, messageDigest,
/// ...; the signature is over their DER SET) and signers named by
/// subjectKeyIdentifier, as `openssl cms -sign` makes them.
#[test]
fn signed_attributes_and_key_identifiers() {
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let dir = temp_dir("pkcs7-cms");
    let d = dir.path();
    let file = d.join("file");
    write(&file, &random_bytes(70_000, 17));
    let fmt = d.join("file.fmt");
    write(&fmt, &fsv.formatted_digest(&[], &file));
    for (name, newkey) in [KINDS[0], KINDS[2], KINDS[3]] {
        let (key, cert) = keypair(&openssl, d, name, newkey);
        for (variant, extra) in [
            ("attrs", &["-md", "sha512"][..]),
            ("keyid", &["-keyid", "-noattr"]),
            ("keyid-attrs", &["-keyid", "-md", "sha384"]),
        ] {
            let sig = d.join(format!("{name}-{variant}.p7s"));
            let mut args = vec![
                OsStr::new("cms"),
                OsStr::new("-sign"),
                OsStr::new("-binary"),
                OsStr::new("-nocerts"),
                OsStr::new("-outform"),
                OsStr::new("DER"),
                OsStr::new("-in"),
                fmt.as_os_str(),
                OsStr::new("-signer"),
                cert.as_os_str(),
                OsStr::new("-inkey"),
                key.as_os_str(),
                OsStr::new("-out"),
                sig.as_os_str(),
            ];
            args.extend(extra.iter().map(OsStr::new));
            openssl.run(args).expect_success();
            let copy = d.join(format!("{name}-{variant}"));
            std::fs::copy(&file, &copy).expect("copy");
            let other = d.join(format!("{name}-{variant}.other"));
            write(&other, b"another file");
            refused_with(&enable_with(&other, &sig, &cert, &[]), "signature rejected");
            enable_with(&copy, &sig, &cert, &[]).expect_success();
        }
    }
}

/// A trust directory may mix Ed25519 public keys and certificates in PEM (also
/// bundles) and DER, under `.pem`, `.crt` and `.der`; other names are ignored.
/// Every file signed by a trusted key or certificate verifies, a stranger's
/// does not.
#[test]
fn trust_directory_mixes_keys_and_certificates() {
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let dir = temp_dir("pkcs7-trustdir");
    let d = dir.path();
    let keys = d.join("keys");
    let trusted = d.join("trusted");
    let files = d.join("files");
    for p in [&keys, &trusted, &files] {
        std::fs::create_dir(p).expect("mkdir");
    }
    let mut signed = Vec::new();
    // Ed25519, raw: trusted as a public key.
    let (ed_key, ed_pub) = openssl.keypair(&keys, "ed");
    std::fs::copy(&ed_pub, trusted.join("ed.pem")).expect("copy");
    let f = files.join("ed");
    write(&f, &random_bytes(10_000, 1));
    let sig = keys.join("ed.sig");
    openssl.sign(&ed_key, &fsv.formatted_digest(&[], &f), &sig);
    signed.push((f, sig));
    // Ed25519, raw: trusted through an Ed25519 certificate.
    let (edc_key, edc_cert) = keypair(&openssl, &keys, "edcert", &["-newkey", "ed25519"]);
    std::fs::copy(&edc_cert, trusted.join("edcert.crt")).expect("copy");
    let f = files.join("edcert");
    write(&f, &random_bytes(10_000, 2));
    let sig = keys.join("edcert.sig");
    openssl.sign(&edc_key, &fsv.formatted_digest(&[], &f), &sig);
    signed.push((f, sig));
    // PKCS#7: RSA as PEM .crt, P-256 as DER, P-384 and RSA 4096 in one PEM bundle.
    let mut bundle = Vec::new();
    for (name, newkey) in KINDS {
        let (key, cert) = keypair(&openssl, &keys, name, newkey);
        match name {
            "rsa2048" => {
                std::fs::copy(&cert, trusted.join("rsa.crt")).expect("copy");
            }
            "p256" => {
                openssl
                    .run([
                        OsStr::new("x509"),
                        OsStr::new("-in"),
                        cert.as_os_str(),
                        OsStr::new("-outform"),
                        OsStr::new("DER"),
                        OsStr::new("-out"),
                        trusted.join("p256.der").as_os_str(),
                    ])
                    .expect_success();
            }
            _ => bundle.extend(read(&cert)),
        }
        let f = files.join(name);
        write(&f, &random_bytes(20_000, name.len() as u64));
        let sig = stock_sign(&fsv, &f, &key, &cert, &[]);
        signed.push((f, sig));
    }
    write(&trusted.join("bundle.pem"), &bundle);
    // A stranger's certificate under an ignored name.
    let (s_key, s_cert) = keypair(&openssl, &keys, "stranger", &["-newkey", "rsa:2048"]);
    std::fs::copy(&s_cert, trusted.join("stranger.crt.disabled")).expect("copy");
    let stranger = files.join("stranger");
    write(&stranger, &random_bytes(5000, 3));
    let stranger_sig = stock_sign(&fsv, &stranger, &s_key, &s_cert, &[]);

    for (f, sig) in &signed {
        enable_with(f, sig, &trusted, &[]).expect_success();
    }
    refused_with(
        &enable_with(&stranger, &stranger_sig, &trusted, &[]),
        "signer not trusted",
    );
    run_bin([
        OsStr::new("enable"),
        stranger.as_os_str(),
        OsStr::new("--signature"),
        stranger_sig.as_os_str(),
    ])
    .expect_success();
    let out = run_bin([
        OsStr::new("verify"),
        OsStr::new("-r"),
        files.as_os_str(),
        OsStr::new("--trusted-key"),
        trusted.as_os_str(),
        OsStr::new("--json"),
    ]);
    out.expect_code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let states: Vec<(String, String)> = doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["verity"] == true)
        .map(|f| {
            (
                f["path"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                f["signature"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (path, state) in &states {
        let want = if path == "stranger" {
            "invalid"
        } else {
            "valid"
        };
        assert_eq!(state, want, "{path}: {doc}");
    }
    assert_eq!(states.len(), signed.len() + 1, "{doc}");
    let set = TrustedKeys::load(std::slice::from_ref(&trusted)).expect("load");
    assert_eq!(
        set.len(),
        6,
        "ed.pem, edcert.crt, rsa.crt, p256.der, 2 in bundle.pem"
    );
}

/// Fresh `fsverity sign` output, cut, extended and mutated thousands of times,
/// through the library's trust set: never a panic, always Malformed, NoKey or
/// Rejected (or acceptance of bytes no check depends on); and through the
/// command line, a cut signature is a malformed one, not a crash.
#[test]
fn damaged_signatures_never_panic() {
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let dir = temp_dir("pkcs7-fuzz");
    let d = dir.path();
    let file = d.join("file");
    write(&file, &random_bytes(12_345, 5));
    let fmt = fsv.formatted_digest(&[], &file);
    let digest = HashValue::from_slice(&fmt[12..]);
    let mut rng = XorShift64::new(77);
    for (name, newkey) in [KINDS[0], KINDS[2]] {
        let (key, cert) = keypair(&openssl, d, name, newkey);
        let sig = read(&stock_sign(&fsv, &file, &key, &cert, &[]));
        let trusted = TrustedKeys::load(&[cert]).expect("load");
        let verdict = |bytes: &[u8]| trusted.verify(HashAlgorithm::Sha256, &digest, bytes);
        verdict(&sig).expect("the original verifies");
        for n in (0..sig.len()).filter(|&n| n != 64) {
            assert!(
                matches!(verdict(&sig[..n]), Err(SignatureError::Malformed(_))),
                "{name}: cut at {n}"
            );
        }
        let mut accepted = 0;
        for _ in 0..3000 {
            let mut bad = sig.clone();
            for _ in 0..rng.in_range(1..=3) {
                let at = rng.below(bad.len() as u64) as usize;
                bad[at] = rng.next_u64() as u8;
            }
            if rng.one_in(10) {
                bad.truncate(rng.below(bad.len() as u64) as usize);
            } else if rng.one_in(10) {
                bad.extend(random_bytes(rng.in_range(1..=40) as usize, rng.next_u64()));
            }
            match verdict(&bad) {
                Ok(_) => accepted += 1,
                Err(
                    SignatureError::Malformed(_)
                    | SignatureError::NoKey(_)
                    | SignatureError::Rejected(_),
                ) => {}
                Err(e) => panic!("{name}: unexpected {e:?}"),
            }
        }
        // Only bytes nothing checks (the unused digestAlgorithms SET, a changed
        // byte written back unchanged) can be mutated and still verify.
        assert!(
            accepted < 150,
            "{name}: {accepted} of 3000 mutants verified"
        );
        let cut = d.join(format!("{name}.cut"));
        write(&cut, &sig[..sig.len() / 2]);
        let copy = d.join(format!("{name}.copy"));
        std::fs::copy(&file, &copy).expect("copy");
        refused_with(
            &run_bin([
                OsStr::new("enable"),
                copy.as_os_str(),
                OsStr::new("--signature"),
                cut.as_os_str(),
            ]),
            "malformed signature",
        );
    }
}
