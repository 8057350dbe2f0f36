//! `fsverity-fuse enable-rpm` on a real package: built by `rpmbuild`, signed by
//! `rpmsign --addsign --signverity` (a throwaway GPG key for the package
//! signature, an OpenSSL certificate for the verity signatures), extracted with
//! `rpm2cpio | cpio -idm`. The expected signatures are what `rpm -qp --qf
//! %{VERITYSIGNATURES}` prints, the expected digests what `fsverity digest`
//! computes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

use super::METADATA_XATTR;
use crate::ioctl::tools::{Openssl, fsverity_and_openssl, program, run_raw};
use crate::util::{Outcome, XorShift64, bin, random_bytes, read, run, run_bin, temp_dir, write};

/// The package's files: (path, content) of the regular ones; the spec adds a
/// directory, a symbolic link and a %config file.
const SPEC: &str = r#"Name: vtest
Version: 1.0
Release: 1
Summary: fsverity-fuse enable-rpm test package
License: MIT
BuildArch: noarch
%description
Test package.
%install
cp -a %{_sourcedir}/payload/. %{buildroot}/
%files
/usr/bin/hello
/usr/bin/hello-link
%dir /usr/lib/vtest
/usr/lib/vtest/data.bin
/usr/lib/vtest/empty
%config /etc/vtest.conf
"#;

/// The tools this test drives, and a GNUPGHOME whose agent is stopped on drop.
pub(super) struct RpmTools {
    rpmbuild: PathBuf,
    rpmsign: PathBuf,
    rpm: PathBuf,
    gnupg: PathBuf,
}

impl RpmTools {
    #[track_caller]
    pub(super) fn find(dir: &Path) -> Option<Self> {
        let rpmbuild = program("/usr/bin/rpmbuild", "rpm")?;
        let rpmsign = program("/usr/bin/rpmsign", "rpm")?;
        let rpm = program("/usr/bin/rpm", "rpm")?;
        program("/usr/bin/rpm2cpio", "rpm")?;
        program("/usr/bin/cpio", "cpio")?;
        program("/usr/bin/gpg", "gnupg")?;
        let gnupg = dir.join("gnupg");
        std::fs::create_dir(&gnupg).expect("mkdir gnupg");
        std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod gnupg");
        Some(Self {
            rpmbuild,
            rpmsign,
            rpm,
            gnupg,
        })
    }

    /// Runs `program ARGS` with GNUPGHOME set; fails the test unless it succeeds.
    #[track_caller]
    fn run<I, S>(&self, program: &Path, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = Command::new(program)
            .args(args)
            .env("GNUPGHOME", &self.gnupg)
            .output()
            .unwrap_or_else(|e| panic!("can't run {}: {e}", program.display()));
        assert!(
            out.status.success(),
            "{} failed: {}\n{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RpmTools {
    fn drop(&mut self) {
        // gpg starts an agent for this GNUPGHOME: stop it.
        let _ = Command::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", &self.gnupg)
            .output();
    }
}

/// Builds the package from `payload` files and signs it with `key`/`cert`.
pub(super) fn build_signed_package(
    tools: &RpmTools, dir: &Path, key: &Path, cert: &Path,
) -> PathBuf {
    let top = dir.join("rpmbuild");
    let payload = top.join("SOURCES/payload");
    let files: [(&str, Vec<u8>); 4] = [
        ("usr/bin/hello", b"#!/bin/sh\necho hello\n".to_vec()),
        ("usr/lib/vtest/data.bin", random_bytes(200_000, 42)),
        ("usr/lib/vtest/empty", Vec::new()),
        ("etc/vtest.conf", b"setting = 1\n".to_vec()),
    ];
    for (path, data) in &files {
        let p = payload.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        write(&p, data);
    }
    std::os::unix::fs::symlink("hello", payload.join("usr/bin/hello-link")).expect("symlink");
    let spec = top.join("vtest.spec");
    write(&spec, SPEC.as_bytes());
    let topdir = format!("_topdir {}", top.display());
    tools.run(
        &tools.rpmbuild,
        [
            OsStr::new("--define"),
            OsStr::new(&topdir),
            OsStr::new("--quiet"),
            OsStr::new("-bb"),
            spec.as_os_str(),
        ],
    );
    let pkg = top.join("RPMS/noarch/vtest-1.0-1.noarch.rpm");
    assert!(pkg.is_file(), "rpmbuild made no {}", pkg.display());
    tools.run(
        "/usr/bin/gpg".as_ref(),
        [
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "fsverity-fuse test <test@example.invalid>",
            "default",
            "default",
            "never",
        ],
    );
    tools.run(
        &tools.rpmsign,
        [
            OsStr::new("--addsign"),
            OsStr::new("--signverity"),
            OsStr::new("--fskpath"),
            key.as_os_str(),
            OsStr::new("--certpath"),
            cert.as_os_str(),
            OsStr::new("--define"),
            OsStr::new("_gpg_name fsverity-fuse test"),
            OsStr::new("--define"),
            OsStr::new("__gpg /usr/bin/gpg"),
            pkg.as_os_str(),
        ],
    );
    pkg
}

/// `rpm -qp`: each file's decoded verity signature (None when empty), by path.
fn package_signatures(tools: &RpmTools, pkg: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let out = tools.run(
        &tools.rpm,
        [
            OsStr::new("-qp"),
            OsStr::new("--qf"),
            OsStr::new("[%{FILENAMES} %{VERITYSIGNATURES}@@\n]"),
            pkg.as_os_str(),
        ],
    );
    out.split("@@\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let (path, b64) = e.split_once(' ').expect("path and signature");
            let b64: String = b64.split_whitespace().collect();
            let sig = (!b64.is_empty()).then(|| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("base64")
            });
            (path.to_owned(), sig)
        })
        .collect()
}

/// `rpm2cpio PKG | cpio -idm` in a new `root` with a tree store.
pub(super) fn extract(pkg: &Path, root: &Path) {
    std::fs::create_dir_all(root.join(".fsverity-fuse")).expect("mkdir root");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"cd "$1" && rpm2cpio "$2" | cpio -idm --quiet"#)
        .args([
            "sh",
            root.to_str().expect("utf-8"),
            pkg.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run rpm2cpio | cpio");
    assert!(
        out.status.success(),
        "rpm2cpio | cpio: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `fsverity-fuse enable-rpm PKG --root ROOT --trusted-key CERT --json`.
pub(super) fn enable_rpm(pkg: &Path, root: &Path, cert: &Path) -> (Outcome, serde_json::Value) {
    let out = run_bin([
        OsStr::new("enable-rpm"),
        pkg.as_os_str(),
        OsStr::new("--root"),
        root.as_os_str(),
        OsStr::new("--trusted-key"),
        cert.as_os_str(),
        OsStr::new("--json"),
    ]);
    let doc =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: not JSON: {out:?}"));
    (out, doc)
}

/// The result of `path` in an enable-rpm report.
#[track_caller]
fn result<'a>(doc: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    doc["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == path))
        .unwrap_or_else(|| panic!("{path} not in {doc}"))
}

pub(super) fn has_xattr(file: &Path) -> bool {
    let mut buf = [0u8; 1];
    match rustix::fs::getxattr(file, METADATA_XATTR, &mut buf[..]) {
        Ok(_) | Err(rustix::io::Errno::RANGE) => true,
        Err(rustix::io::Errno::NODATA) => false,
        Err(e) => panic!("getxattr {}: {e}", file.display()),
    }
}

pub(super) const REGULAR: [&str; 3] = [
    "/usr/bin/hello",
    "/usr/lib/vtest/data.bin",
    "/usr/lib/vtest/empty",
];
const SKIPPED: [&str; 3] = ["/usr/bin/hello-link", "/usr/lib/vtest", "/etc/vtest.conf"];

#[test]
fn enable_rpm_uses_the_package_signatures() {
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let dir = temp_dir("enable-rpm");
    let d = dir.path();
    let Some(tools) = RpmTools::find(d) else {
        return;
    };
    let (key, cert) = rsa_cert(&openssl, d, "signer");
    let (_, stranger) = rsa_cert(&openssl, d, "stranger");
    let pkg = build_signed_package(&tools, d, &key, &cert);
    let expected = package_signatures(&tools, &pkg);
    assert_eq!(
        expected.len(),
        REGULAR.len() + SKIPPED.len(),
        "{expected:?}"
    );

    let root = d.join("root");
    extract(&pkg, &root);
    let (out, doc) = enable_rpm(&pkg, &root, &cert);
    out.expect_success();
    assert_eq!(doc["summary"]["enabled"], 3, "{doc}");
    assert_eq!(doc["summary"]["skipped"], 3, "{doc}");
    assert_eq!(doc["summary"]["failed"], 0, "{doc}");
    for path in REGULAR {
        let file = root.join(&path[1..]);
        let r = result(&doc, path);
        assert_eq!(r["result"], "enabled", "{path}: {doc}");
        assert_eq!(
            r["digest"].as_str(),
            Some(fsv.digest(&[], &file).as_str()),
            "{path}"
        );
        let dumped = run_raw(
            bin(),
            [
                OsStr::new("dump-metadata"),
                OsStr::new("signature"),
                file.as_os_str(),
            ],
        );
        let want = expected[path].as_ref().expect("rpmsign signed it");
        assert!(
            dumped.code == 0 && dumped.stdout == *want,
            "{path}: stored signature"
        );
    }
    for path in SKIPPED {
        assert_eq!(result(&doc, path)["result"], "skipped", "{path}: {doc}");
    }
    assert!(
        !has_xattr(&root.join("etc/vtest.conf")),
        "%config file enabled"
    );
    // Offline audit with the certificate: every verity file's signature is valid.
    let out = run_bin([
        OsStr::new("verify"),
        OsStr::new("-r"),
        root.as_os_str(),
        OsStr::new("--trusted-key"),
        cert.as_os_str(),
        OsStr::new("--require-signatures"),
        OsStr::new("--json"),
    ]);
    out.expect_success();
    let audit: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(audit["summary"]["verity_files"], 3, "{audit}");
    // A second run finds them done.
    let (out, doc) = enable_rpm(&pkg, &root, &cert);
    out.expect_success();
    assert_eq!(doc["summary"]["skipped"], 6, "{doc}");

    // Tampered with after extraction: reported, left plain; the rest proceed.
    let tampered = d.join("tampered");
    extract(&pkg, &tampered);
    let data = tampered.join("usr/lib/vtest/data.bin");
    let mut bytes = read(&data);
    bytes[150_000] ^= 1;
    write(&data, &bytes);
    let (out, doc) = enable_rpm(&pkg, &tampered, &cert);
    out.expect_code(1);
    assert_eq!(doc["summary"]["enabled"], 2, "{doc}");
    assert_eq!(doc["summary"]["failed"], 1, "{doc}");
    let r = result(&doc, "/usr/lib/vtest/data.bin");
    assert_eq!(r["result"], "failed", "{doc}");
    assert!(
        r["reason"]
            .as_str()
            .is_some_and(|s| s.contains("signature rejected")),
        "{doc}"
    );
    assert!(!has_xattr(&data), "a tampered file was enabled");
    assert!(has_xattr(&tampered.join("usr/bin/hello")));

    // A certificate that did not sign the package: nothing is enabled.
    let other = d.join("other");
    extract(&pkg, &other);
    let (out, doc) = enable_rpm(&pkg, &other, &stranger);
    out.expect_code(1);
    assert_eq!(doc["summary"]["failed"], 3, "{doc}");
    assert!(
        result(&doc, "/usr/bin/hello")["reason"]
            .as_str()
            .is_some_and(|s| s.contains("signer not trusted")),
        "{doc}"
    );

    // Text output names the failure and exits 1.
    let text = run_bin([
        OsStr::new("enable-rpm"),
        pkg.as_os_str(),
        OsStr::new("--root"),
        d.join("missing").as_os_str(),
        OsStr::new("--trusted-key"),
        cert.as_os_str(),
    ]);
    assert!(
        text.code == 1 && text.stderr.contains("missing"),
        "{text:?}"
    );
    damaged_packages_never_panic(&pkg, d);
}

/// The real package's headers cut and mutated, read by `enable-rpm`: errors,
/// never a panic or a crash. (The parser's own fuzz loop, over a header built
/// in the unit tests, is in src/cli/rpm/header.rs.)
fn damaged_packages_never_panic(pkg: &Path, d: &Path) {
    let good = read(pkg);
    let span = headers_end(&good);
    let root = d.join("fuzz-root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let bad_pkg = d.join("bad.rpm");
    let mut rng = XorShift64::new(4242);
    for i in 0..150 {
        let mut bad = good.clone();
        if i % 3 == 0 {
            bad.truncate(rng.below(span as u64) as usize);
        } else {
            for _ in 0..rng.in_range(1..=4) {
                let at = rng.below(span as u64) as usize;
                bad[at] = rng.next_u64() as u8;
            }
        }
        std::fs::write(&bad_pkg, &bad).expect("write");
        // `run` fails the test on a crash or a panic message.
        let out = run_bin([
            std::ffi::OsStr::new("enable-rpm"),
            bad_pkg.as_os_str(),
            std::ffi::OsStr::new("--root"),
            root.as_os_str(),
            std::ffi::OsStr::new("--trusted-key"),
            d.join("signer.crt").as_os_str(),
        ]);
        assert!(
            out.code <= 2,
            "mutant {i}: exit {}: {}",
            out.code,
            out.stderr
        );
    }
    let cut = d.join("cut.rpm");
    write(&cut, &good[..span / 3]);
    let out = run(
        bin(),
        [
            OsStr::new("enable-rpm"),
            cut.as_os_str(),
            OsStr::new("--root"),
            d.as_os_str(),
            OsStr::new("--trusted-key"),
            d.join("signer.crt").as_os_str(),
        ],
    );
    assert!(out.code == 1 && out.stderr.contains("cut.rpm"), "{out:?}");
}

/// Where the lead, the padded signature header and the main header end (rpm's
/// docs/manual/format.md: 96-byte lead; each header 16 bytes + be32 entry count
/// * 16 + be32 data size; the signature header padded to 8 bytes).
fn headers_end(rpm: &[u8]) -> usize {
    let header_len = |at: usize| {
        let be32 = |o: usize| {
            u32::from_be_bytes(rpm[at + o..at + o + 4].try_into().expect("4 bytes")) as usize
        };
        16 + 16 * be32(8) + be32(12)
    };
    let sig = header_len(96);
    let main_at = 96 + sig.div_ceil(8) * 8;
    main_at + header_len(main_at)
}

/// An RSA key and self-signed certificate from `openssl req` (NAME.key, NAME.crt).
pub(super) fn rsa_cert(openssl: &Openssl, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let subject = format!("/CN=fsverity-fuse rpm {name}");
    openssl
        .run([
            OsStr::new("req"),
            OsStr::new("-x509"),
            OsStr::new("-newkey"),
            OsStr::new("rsa:2048"),
            OsStr::new("-nodes"),
            OsStr::new("-days"),
            OsStr::new("1"),
            OsStr::new("-subj"),
            OsStr::new(&subject),
            OsStr::new("-keyout"),
            key.as_os_str(),
            OsStr::new("-out"),
            cert.as_os_str(),
        ])
        .expect_success();
    (key, cert)
}
