//! The kernel's PKCS#7 signatures through a live mount, made and used by the
//! stock tools only: keys and certificates from `openssl req`, signatures from
//! `fsverity sign`, verity enabled by `fsverity enable --signature` with the
//! kernel's errnos (fsverity.rst, "FS_IOC_ENABLE_VERITY" and "Built-in
//! signature verification"), opens checked under `--require-signatures`, a
//! trust directory mixing Ed25519 keys and certificates, the mount(8) helper
//! form, and a package signed by `rpmsign --signverity` served end to end.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::pkcs7::{KINDS, keypair};
use super::policy::{logged, refused, served};
use super::rpm::{
    REGULAR, RpmTools, build_signed_package, enable_rpm, extract, has_xattr, rsa_cert,
};
use super::{
    counter, enable_offline, fsverity_sign, keydir, openssl_sign, require_signed, signature_arg,
    strs,
};
use crate::hardening::support::{alive, pids_mentioning, wait_until};
use crate::ioctl::tools::{
    Openssl, errno, expect_tool_errno, fsverity_and_openssl, is_verity, run_raw, scratch,
};
use crate::mount::harness::{Mount, Scratch, is_mounted, require_fuse};
use crate::mount::support::flip_byte;
use crate::util::{bin, random_bytes, read, run_bin, temp_dir, write};

const ENABLE: &str = "FS_IOC_ENABLE_VERITY";

/// `FS_VERITY_MAX_SIGNATURE_SIZE` (fs/verity/fsverity_private.h): the largest
/// signature the enable ioctl takes.
const MAX_SIGNATURE: usize = 16128;

/// The `--signature=SIG` option of `fsverity enable`.
fn sig_opt(sig: &Path) -> String {
    format!("--signature={}", sig.display())
}

/// The signature stored for `file` (in a mount or a backing directory), as
/// `fsverity-fuse dump-metadata signature` prints it.
#[track_caller]
fn stored_signature(file: &Path) -> Vec<u8> {
    let out = run_raw(
        bin(),
        [
            OsStr::new("dump-metadata"),
            OsStr::new("signature"),
            file.as_os_str(),
        ],
    );
    assert_eq!(
        out.code,
        0,
        "dump-metadata {}: {}",
        file.display(),
        out.stderr
    );
    out.stdout
}

/// `openssl x509 -outform DER`: the certificate `pem` in DER, written to `out`.
#[track_caller]
fn cert_to_der(openssl: &Openssl, pem: &Path, out: &Path) {
    openssl
        .run([
            OsStr::new("x509"),
            OsStr::new("-in"),
            pem.as_os_str(),
            OsStr::new("-outform"),
            OsStr::new("DER"),
            OsStr::new("-out"),
            out.as_os_str(),
        ])
        .expect_success();
}

/// Through a mount trusting an RSA and a P-256 certificate under
/// `--require-signatures`, `fsverity enable --signature` with `fsverity sign`'s
/// output enables (SHA-256 and SHA-512 trees), stores the signature byte for
/// byte, and `fsverity measure` agrees with `fsverity digest`. Every refusal
/// has the kernel's errno and leaves the file plain and still enableable.
#[test]
fn stock_enable_with_fsverity_sign_signatures() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let rsa = keypair(&openssl, &keys, "rsa2048", KINDS[0].1);
    let p256 = keypair(&openssl, &keys, "p256", KINDS[2].1);
    let stranger = keypair(&openssl, &keys, "stranger", KINDS[0].1);

    let mut signed = Vec::new();
    for (i, (name, pair)) in [("rsa2048", &rsa), ("p256", &p256)].into_iter().enumerate() {
        for (j, opts) in [&[][..], &["--hash-alg=sha512"]].into_iter().enumerate() {
            let file = format!("{name}-{j}");
            let data = random_bytes(40_000 + 4096 * (i + 2 * j), (10 * i + j) as u64 + 500);
            s.write(&file, &data);
            let sig = keys.join(format!("{file}.p7s"));
            fsverity_sign(&fsv, &s.b(&file), &sig, &pair.0, &pair.1, opts);
            signed.push((file, opts, data, sig));
        }
    }
    let target = random_bytes(70_000, 520);
    s.write("target", &target);
    let own = keys.join("target.p7s");
    fsverity_sign(&fsv, &s.b("target"), &own, &rsa.0, &rsa.1, &[]);

    let mut args = require_signed(&rsa.1);
    args.extend(["--trusted-key".into(), p256.1.display().to_string()]);
    let m = s.mount(&strs(&args));
    for (file, opts, data, sig) in &signed {
        let mut enable_opts = opts.to_vec();
        let opt = sig_opt(sig);
        enable_opts.push(&opt);
        fsv.enable_ok(&m.p(file), &enable_opts);
        assert_eq!(
            fsv.measure(&m.p(file)),
            fsv.digest(opts, &s.b(file)),
            "{file}: measure through the mount"
        );
        assert!(
            stored_signature(&m.p(file)) == read(sig),
            "{file}: stored signature is not fsverity sign's bytes"
        );
        served(&m, file, data);
    }

    // Refusals, each on the same plain file.
    let bad = |name: &str, bytes: &[u8]| {
        let p = keys.join(name);
        write(&p, bytes);
        p
    };
    let own_bytes = read(&own);
    let truncated = bad("truncated.p7s", &own_bytes[..own_bytes.len() / 2]);
    let der_cert = keys.join("rsa2048.der");
    cert_to_der(&openssl, &rsa.1, &der_cert);
    let mut garbage = random_bytes(MAX_SIGNATURE, 530);
    garbage[..4].copy_from_slice(&[0x30, 0x82, 0x3e, 0xfc]); // a DER SEQUENCE of the rest
    let garbage = bad("garbage.p7s", &garbage);
    let untrusted = keys.join("untrusted.p7s");
    fsverity_sign(
        &fsv,
        &s.b("target"),
        &untrusted,
        &stranger.0,
        &stranger.1,
        &[],
    );
    let other_file = &signed[0].3;
    let mut padded = own_bytes.clone();
    padded.resize(MAX_SIGNATURE + 1, 0);
    let oversized = bad("oversized.p7s", &padded);
    let cases: [(&str, &Path, i32); 6] = [
        ("truncated DER", &truncated, libc::EBADMSG),
        ("a certificate, not a signature", &der_cert, libc::EBADMSG),
        (
            "16128 bytes of garbage in a DER SEQUENCE",
            &garbage,
            libc::EBADMSG,
        ),
        ("signer's certificate not trusted", &untrusted, libc::ENOKEY),
        (
            "a trusted signature of another file",
            other_file,
            libc::EKEYREJECTED,
        ),
        (
            "a valid signature padded to 16129 bytes",
            &oversized,
            libc::EMSGSIZE,
        ),
    ];
    let root = m.p("");
    let rejections = counter(&root, "signature_rejections");
    for (what, sig, want) in cases {
        let out = fsv.enable(&m.p("target"), &[&sig_opt(sig)]);
        expect_tool_errno(&out, ENABLE, want);
        assert!(!is_verity(&m.p("target")), "{what}: left verity on");
        assert!(!has_xattr(&s.b("target")), "{what}: metadata written");
    }
    assert!(
        counter(&root, "signature_rejections") >= rejections + 2,
        "the untrusted and the rejected signature were not counted"
    );
    // Nothing of the refusals stuck: the right signature still enables it.
    fsv.enable_ok(&m.p("target"), &[&sig_opt(&own)]);
    assert_eq!(fsv.measure(&m.p("target")), fsv.digest(&[], &s.b("target")));
    assert!(stored_signature(&s.b("target")) == own_bytes);
    served(&m, "target", &target);
}

/// Files enabled offline with `fsverity sign` signatures, then mounted with
/// `--require-signatures --trusted-key CERT`: the trusted signer's file opens
/// and reads; one signed by an untrusted certificate, one carrying another
/// file's signature and one without a signature get EACCES at open, each with
/// a log line naming the file, its digest and the reason.
#[test]
fn pkcs7_signed_files_open_only_when_trusted() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let signer = keypair(&openssl, &keys, "signer", KINDS[0].1);
    let stranger = keypair(&openssl, &keys, "stranger", KINDS[2].1);
    let mut data = Vec::new();
    for (i, name) in ["signed", "stranger", "borrowed", "unsigned", "plain"]
        .into_iter()
        .enumerate()
    {
        data.push(random_bytes(25_000 + 999 * i, 600 + i as u64));
        s.write(name, &data[i]);
    }
    let sig = keys.join("signed.p7s");
    fsverity_sign(&fsv, &s.b("signed"), &sig, &signer.0, &signer.1, &[]);
    let stranger_sig = keys.join("stranger.p7s");
    fsverity_sign(
        &fsv,
        &s.b("stranger"),
        &stranger_sig,
        &stranger.0,
        &stranger.1,
        &[],
    );
    // Without --trusted-key, `enable` stores whatever signature it is given.
    enable_offline(&s.b("signed"), &signature_arg(&sig)).expect_success();
    enable_offline(&s.b("stranger"), &signature_arg(&stranger_sig)).expect_success();
    enable_offline(&s.b("borrowed"), &signature_arg(&sig)).expect_success();
    enable_offline(&s.b("unsigned"), &[]).expect_success();

    let m = s.mount(&strs(&require_signed(&signer.1)));
    served(&m, "signed", &data[0]);
    assert_eq!(fsv.measure(&m.p("signed")), fsv.digest(&[], &s.b("signed")));
    for name in ["stranger", "borrowed", "unsigned"] {
        refused(&m, name);
    }
    served(&m, "plain", &data[4]);
    for (name, reason) in [
        ("stranger", "signer not trusted"),
        ("borrowed", "does not verify"),
        ("unsigned", "no signature"),
    ] {
        logged(&m, name, &fsv.digest(&[], &s.b(name)), reason);
    }
    assert!(counter(&m.p(""), "policy_denials") >= 3);
}

/// A trust directory holding an Ed25519 public key (`.pem`) and certificates
/// as PEM (`.pem`, `.crt`) and DER (`.der`) serves files signed either way
/// under `--require-signatures`, takes `fsverity enable --signature` through
/// the mount, and refuses a stranger's signature (EACCES at open, ENOKEY at
/// enable).
#[test]
fn trust_directory_serves_ed25519_and_pkcs7_files() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let trusted = s.dir.path().join("trusted");
    fs::create_dir(&trusted).expect("mkdir trusted");
    let (ed_key, ed_pub) = openssl.keypair(&keys, "ed");
    fs::copy(&ed_pub, trusted.join("ed.pem")).expect("copy");
    let rsa = keypair(&openssl, &keys, "rsa2048", KINDS[0].1);
    fs::copy(&rsa.1, trusted.join("rsa2048.pem")).expect("copy");
    let p256 = keypair(&openssl, &keys, "p256", KINDS[2].1);
    fs::copy(&p256.1, trusted.join("p256.crt")).expect("copy");
    let p384 = keypair(&openssl, &keys, "p384", KINDS[3].1);
    cert_to_der(&openssl, &p384.1, &trusted.join("p384.der"));
    let stranger = keypair(&openssl, &keys, "stranger", KINDS[0].1);
    fs::copy(&stranger.1, trusted.join("stranger.pem.disabled")).expect("copy");

    let mut files = Vec::new();
    for (i, name) in [
        "ed",
        "rsa2048",
        "p256",
        "p384",
        "late",
        "stranger",
        "late-stranger",
    ]
    .into_iter()
    .enumerate()
    {
        files.push((name, random_bytes(15_000 + 777 * i, 700 + i as u64)));
        s.write(name, &files[i].1);
    }
    let sig = |name: &str| keys.join(format!("{name}.sig"));
    openssl_sign(&fsv, &openssl, &ed_key, &s.b("ed"), &[], &sig("ed"));
    for (name, pair) in [
        ("rsa2048", &rsa),
        ("p256", &p256),
        ("p384", &p384),
        ("late", &p384),
        ("stranger", &stranger),
        ("late-stranger", &stranger),
    ] {
        fsverity_sign(&fsv, &s.b(name), &sig(name), &pair.0, &pair.1, &[]);
    }
    for name in ["ed", "rsa2048", "p256", "p384", "stranger"] {
        enable_offline(&s.b(name), &signature_arg(&sig(name))).expect_success();
    }

    let m = s.mount(&strs(&require_signed(&trusted)));
    fsv.enable_ok(&m.p("late"), &[&sig_opt(&sig("late"))]);
    expect_tool_errno(
        &fsv.enable(&m.p("late-stranger"), &[&sig_opt(&sig("late-stranger"))]),
        ENABLE,
        libc::ENOKEY,
    );
    assert!(!is_verity(&m.p("late-stranger")));
    for (name, data) in &files[..5] {
        served(&m, name, data);
        assert_eq!(
            fsv.measure(&m.p(name)),
            fsv.digest(&[], &s.b(name)),
            "{name}"
        );
    }
    refused(&m, "stranger");
    logged(
        &m,
        "stranger",
        &fsv.digest(&[], &s.b("stranger")),
        "signer not trusted",
    );
}

/// A mount made by the helper form (`fsverity-fuse BACKING MNT -o OPTIONS`,
/// how mount(8) runs it), whose daemon is not our child: `Drop` unmounts and
/// waits for every process mentioning the test's directory to end (killing
/// them if they linger), so nothing is left behind even when the test fails.
struct HelperMount {
    mnt: PathBuf,
    tag: PathBuf,
}

impl HelperMount {
    /// Runs the helper form and checks the mount is live when it returns.
    #[track_caller]
    fn start(s: &Scratch, options: &str) -> Self {
        let guard = Self {
            mnt: s.mnt(),
            tag: s.dir.path().to_path_buf(),
        };
        run_bin([
            s.backing().as_os_str(),
            s.mnt().as_os_str(),
            OsStr::new("-o"),
            OsStr::new(options),
        ])
        .expect_success();
        assert!(
            is_mounted(&guard.mnt),
            "the helper returned before the mount was live"
        );
        guard
    }

    /// The daemons (processes other than this one) of this test.
    fn daemons(&self) -> Vec<u32> {
        pids_mentioning(&self.tag)
            .into_iter()
            .filter(|&p| alive(p))
            .collect()
    }

    /// Unmounts with umount(8), lazily after two seconds of EBUSY.
    fn unmount(&self) {
        for attempt in 0..50 {
            if !is_mounted(&self.mnt) {
                return;
            }
            let mut umount = std::process::Command::new("umount");
            if attempt >= 40 {
                umount.arg("--lazy");
            }
            let _ = umount
                .arg(&self.mnt)
                .stderr(std::process::Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HelperMount {
    fn drop(&mut self) {
        self.unmount();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.daemons().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in self.daemons() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// `fsverity-fuse BACKING MNT -o ro,trusted_key=CERT,require_signatures`, as
/// mount(8) or an fstab line runs it: returns once live, serves the file
/// `fsverity sign` signed, refuses the unsigned one, answers the enable ioctl
/// with EROFS; `umount` ends the daemon.
#[test]
fn helper_form_serves_pkcs7_signed_files() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let pair = keypair(&openssl, &keys, "p256", KINDS[2].1);
    let signed = random_bytes(90_000, 800);
    s.write("signed", &signed);
    s.write("unsigned", &random_bytes(9_000, 801));
    s.write("plain", b"plain");
    let sig = keys.join("signed.p7s");
    fsverity_sign(&fsv, &s.b("signed"), &sig, &pair.0, &pair.1, &[]);
    enable_offline(&s.b("signed"), &signature_arg(&sig)).expect_success();
    enable_offline(&s.b("unsigned"), &[]).expect_success();

    let options = format!("ro,trusted_key={},require_signatures", pair.1.display());
    let m = HelperMount::start(&s, &options);
    assert_eq!(m.daemons().len(), 1, "one daemon expected");
    let got = fs::read(s.mnt().join("signed")).expect("read the signed file");
    assert!(got == signed, "signed: wrong bytes");
    assert_eq!(
        fsv.measure(&s.mnt().join("signed")),
        fsv.digest(&[], &s.b("signed"))
    );
    let err = fs::File::open(s.mnt().join("unsigned")).expect_err("unsigned file opened");
    assert_eq!(errno(&err), libc::EACCES, "{err}");
    expect_tool_errno(
        &fsv.enable(&s.mnt().join("plain"), &[&sig_opt(&sig)]),
        ENABLE,
        libc::EROFS,
    );
    m.unmount();
    assert!(!is_mounted(&s.mnt()), "umount left the mount");
    wait_until(
        "the daemon exits after umount",
        Duration::from_secs(20),
        || m.daemons().is_empty(),
    );
}

/// An RPM built by `rpmbuild` and signed by `rpmsign --signverity`, extracted
/// with `rpm2cpio | cpio`, enabled with `fsverity-fuse enable-rpm`, served by
/// a mount with `--require-signatures --trusted-key cert`: every file of the
/// package reads back as packaged (verity files measure as `fsverity digest`
/// says), and a byte flipped in the backing store afterwards fails its block
/// with EIO while the rest stays readable.
#[test]
fn signed_rpm_is_served_through_the_mount() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let dir = temp_dir("rpm-mount");
    let d = dir.path();
    let Some(tools) = RpmTools::find(d) else {
        return;
    };
    let (key, cert) = rsa_cert(&openssl, d, "signer");
    let pkg = build_signed_package(&tools, d, &key, &cert);
    let payload = d.join("rpmbuild/SOURCES/payload");
    let root = d.join("root");
    extract(&pkg, &root);
    let (out, doc) = enable_rpm(&pkg, &root, &cert);
    out.expect_success();
    assert_eq!(doc["summary"]["enabled"], REGULAR.len(), "{doc}");
    let mnt = d.join("mnt");
    fs::create_dir(&mnt).expect("mkdir mnt");
    let args = require_signed(&cert);

    let m = Mount::start(&root, &mnt, &strs(&args), d);
    let entries = package_entries(&payload);
    assert_eq!(entries.len(), 5, "{entries:?}");
    for rel in &entries {
        let (ours, theirs) = (m.p(rel), payload.join(rel));
        if theirs.is_symlink() {
            assert_eq!(
                fs::read_link(&ours).expect("readlink"),
                fs::read_link(&theirs).expect("readlink"),
                "{rel}"
            );
        }
        let got = fs::read(&ours).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(got == read(&theirs), "{rel}: not the packaged bytes");
    }
    for path in REGULAR {
        let rel = &path[1..];
        assert_eq!(
            fsv.measure(&m.p(rel)),
            fsv.digest(&[], &payload.join(rel)),
            "{path}"
        );
    }
    assert!(!is_verity(&m.p("etc/vtest.conf")), "%config file is verity");
    drop(m);

    let data = "usr/lib/vtest/data.bin";
    flip_byte(&root.join(data), 150_000);
    let m = Mount::start(&root, &mnt, &strs(&args), d);
    let err = fs::read(m.p(data)).expect_err("tampered data served");
    assert_eq!(errno(&err), libc::EIO, "{err}");
    let f = fs::File::open(m.p(data)).expect("open");
    let mut block = vec![0u8; 4096];
    f.read_exact_at(&mut block, 0)
        .expect("an intact block reads");
    assert!(block[..] == read(&payload.join(data))[..4096]);
    let bad_block = 150_000 / 4096 * 4096;
    let err = f
        .read_exact_at(&mut block, bad_block)
        .expect_err("the tampered block read");
    assert_eq!(errno(&err), libc::EIO, "{err}");
    served(&m, "usr/bin/hello", &read(&payload.join("usr/bin/hello")));
}

/// The regular files and symbolic links under `dir`, relative, sorted.
fn package_entries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read_dir").flatten() {
            let p = entry.path();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir");
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}
