//! `fsverity enable --signature=SIG` (fsverity-utils) through a mount with
//! `--trusted-key`: the kernel's signature errors (fsverity.rst,
//! "FS_IOC_ENABLE_VERITY"): EKEYREJECTED for a signature that does not match,
//! EBADMSG for a malformed one, EPERM for none under `--require-signatures`; a
//! valid one is stored as given.

use std::ffi::OsStr;
use std::fs;

use super::{counter, keydir, openssl_sign, require_signed, strs};
use crate::ioctl::tools::{expect_tool_errno, fsverity_and_openssl, is_verity, run_raw, scratch};
use crate::mount::harness::require_fuse;
use crate::util::{bin, random_bytes, read};

const ENABLE: &str = "FS_IOC_ENABLE_VERITY";

#[test]
fn stock_enable_with_signatures() {
    require_fuse!();
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let (private, public) = openssl.keypair(&keys, "trusted");
    let (stranger, _) = openssl.keypair(&keys, "stranger");
    for name in ["good", "sha512", "alg", "wrong", "malformed", "unsigned"] {
        s.write(name, &random_bytes(60_000 + name.len(), name.len() as u64));
    }
    let sign = |name: &str, key, opts: &[&str]| {
        let sig = keys.join(format!("{name}.sig"));
        openssl_sign(&fsv, &openssl, key, &s.b(name), opts, &sig);
        sig
    };
    let good = sign("good", &private, &[]);
    let sha512 = sign("sha512", &private, &["--hash-alg=sha512"]);
    let wrong = sign("wrong", &stranger, &[]);
    let sha256_of_alg = sign("alg", &private, &[]);
    let malformed = keys.join("malformed.sig");
    crate::util::write(&malformed, &random_bytes(10, 400));
    let sig_opt = |p: &std::path::Path| format!("--signature={}", p.display());

    let m = s.mount(&["--trusted-key", public.to_str().expect("utf-8 path")]);
    let root = m.p("");
    fsv.enable_ok(&m.p("good"), &[&sig_opt(&good)]);
    fsv.enable_ok(&m.p("sha512"), &["--hash-alg=sha512", &sig_opt(&sha512)]);
    for (name, sig) in [("good", &good), ("sha512", &sha512)] {
        let dumped = run_raw(
            bin(),
            [
                OsStr::new("dump-metadata"),
                OsStr::new("signature"),
                m.p(name).as_os_str(),
            ],
        );
        assert!(
            dumped.code == 0 && dumped.stdout == read(sig),
            "{name}: stored signature"
        );
    }
    assert_eq!(
        fsv.measure(&m.p("sha512")),
        fsv.digest(&["--hash-alg=sha512"], &s.b("sha512"))
    );

    let before = counter(&root, "signature_rejections");
    expect_tool_errno(
        &fsv.enable(&m.p("wrong"), &[&sig_opt(&wrong)]),
        ENABLE,
        libc::EKEYREJECTED,
    );
    assert!(
        counter(&root, "signature_rejections") > before,
        "rejection not counted"
    );
    // A valid signature of another file is just as wrong.
    expect_tool_errno(
        &fsv.enable(&m.p("wrong"), &[&sig_opt(&good)]),
        ENABLE,
        libc::EKEYREJECTED,
    );
    // The right key and file, but the digest of another algorithm.
    expect_tool_errno(
        &fsv.enable(
            &m.p("alg"),
            &["--hash-alg=sha512", &sig_opt(&sha256_of_alg)],
        ),
        ENABLE,
        libc::EKEYREJECTED,
    );
    expect_tool_errno(
        &fsv.enable(&m.p("malformed"), &[&sig_opt(&malformed)]),
        ENABLE,
        libc::EBADMSG,
    );
    for name in ["wrong", "alg", "malformed"] {
        assert!(
            !is_verity(&m.p(name)),
            "{name}: a refused enable left verity on"
        );
    }
    // Without --require-signatures, unsigned enables are fine.
    fsv.enable_ok(&m.p("unsigned"), &[]);
    drop(m);

    for name in ["wrong", "malformed"] {
        fs::remove_file(s.b(name)).expect("rm");
        s.write(name, &random_bytes(5000, 410));
    }
    let m = s.mount(&strs(&require_signed(&public)));
    let root = m.p("");
    let before = counter(&root, "policy_denials");
    expect_tool_errno(&fsv.enable(&m.p("wrong"), &[]), ENABLE, libc::EPERM);
    assert!(
        counter(&root, "policy_denials") > before,
        "denial not counted"
    );
    assert!(!is_verity(&m.p("wrong")));
    let sig = keys.join("late.sig");
    openssl_sign(&fsv, &openssl, &private, &s.b("malformed"), &[], &sig);
    fsv.enable_ok(&m.p("malformed"), &[&sig_opt(&sig)]);
    assert!(
        fs::read(m.p("malformed")).is_ok(),
        "a file signed at enable opens"
    );
}
