//! `fsverity-fuse verify`, offline: a clean tree passes; a flipped data byte is
//! reported with its Merkle block number and the leaf hashes (expected from
//! fsverity-utils' own tree, found from SHA-256 of the damaged block); a
//! signature that no trusted key verifies is reported; `--json` says the same;
//! the exit code is non-zero when anything is wrong.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{enable_offline, keydir, openssl_sign, signature_arg};
use crate::ioctl::tools::{fsverity_and_openssl, scratch};
use crate::util::{Outcome, random_bytes, run_bin, sha256_hex};

/// `fsverity-fuse verify -r DIR --trusted-key KEY [--json]`.
fn verify(dir: &Path, key: &Path, json: bool) -> Outcome {
    let mut args = vec![
        OsStr::new("verify"),
        OsStr::new("-r"),
        dir.as_os_str(),
        OsStr::new("--trusted-key"),
        key.as_os_str(),
    ];
    if json {
        args.push(OsStr::new("--json"));
    }
    run_bin(args)
}

/// The problems `--json` lists for the file named `name`.
#[track_caller]
fn problems<'a>(doc: &'a serde_json::Value, name: &str) -> &'a Vec<serde_json::Value> {
    let files = doc["files"].as_array().expect("files array");
    let file = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("/{name}")))
        })
        .unwrap_or_else(|| panic!("{name} not in the report: {doc}"));
    file["problems"].as_array().expect("problems array")
}

#[test]
fn verify_reports_flipped_bytes_and_bad_signatures() {
    let Some((fsv, openssl)) = fsverity_and_openssl() else {
        return;
    };
    let s = scratch();
    let keys = keydir(s.dir.path());
    let (private, public) = openssl.keypair(&keys, "trusted");
    let (stranger, _) = openssl.keypair(&keys, "stranger");
    // 41 blocks of 4096: a one-block tree whose level 0 holds block n's hash at n * 32.
    let f4k = random_bytes(40 * 4096 + 100, 500);
    let f1k = random_bytes(200 * 1024 + 1, 501);
    for (name, data, opts) in [
        ("clean", random_bytes(70_000, 502), &[][..]),
        ("f4k", f4k.clone(), &[]),
        ("f1k", f1k.clone(), &["--block-size=1024"]),
    ] {
        s.write(name, &data);
        let sig = keys.join(format!("{name}.sig"));
        openssl_sign(&fsv, &openssl, &private, &s.b(name), opts, &sig);
        let mut args: Vec<&OsStr> = opts.iter().map(OsStr::new).collect();
        args.extend(signature_arg(&sig));
        enable_offline(&s.b(name), &args).expect_success();
    }
    s.write("plain", b"not verity");

    let out = verify(&s.backing(), &public, false);
    out.expect_success();
    let out = verify(&s.backing(), &public, true);
    out.expect_success();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON report");
    assert_eq!(doc["summary"]["problems"], 0, "{doc}");
    assert_eq!(doc["summary"]["files"], 4, "{doc}");
    assert_eq!(doc["summary"]["verity_files"], 3, "{doc}");

    // Damage: a byte of 4 KiB block 5, a byte of 1 KiB block 37, a stranger's signature.
    let (at4k, at1k) = (5 * 4096 + 17, 37 * 1024 + 3);
    for (name, at, data) in [("f4k", at4k, &f4k), ("f1k", at1k, &f1k)] {
        let f = OpenOptions::new()
            .write(true)
            .open(s.b(name))
            .expect("open");
        f.write_all_at(&[data[at] ^ 0x80], at as u64).expect("flip");
    }
    s.write("badsig", &random_bytes(9000, 503));
    let sig = keys.join("badsig.sig");
    openssl_sign(&fsv, &openssl, &stranger, &s.b("badsig"), &[], &sig);
    enable_offline(&s.b("badsig"), &signature_arg(&sig)).expect_success();

    // The leaf hashes, from fsverity-utils' tree of the intact bytes and from
    // SHA-256 of the damaged block.
    let intact = s.dir.path().join("intact");
    crate::util::write(&intact, &f4k);
    let (tree, _) = fsv.tree_and_descriptor(&[], &intact, s.dir.path());
    let expected_leaf = hex::encode(&tree[5 * 32..6 * 32]);
    let mut damaged = f4k[5 * 4096..6 * 4096].to_vec();
    damaged[17] ^= 0x80;
    let found_leaf = sha256_hex(&damaged);

    let out = verify(&s.backing(), &public, false);
    out.expect_code(1);
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(&format!("/{name}:")))
            .unwrap_or_else(|| panic!("{name} not reported:\n{}", out.stdout))
            .to_owned()
    };
    let l4k = line("f4k");
    assert!(l4k.contains("block 5 (offset 20480)"), "{l4k}");
    assert!(
        l4k.contains(&expected_leaf) && l4k.contains(&found_leaf),
        "{l4k}"
    );
    let l1k = line("f1k");
    assert!(
        l1k.contains(&format!("block 37 (offset {})", 37 * 1024)),
        "{l1k}"
    );
    assert!(line("badsig").contains("signature"));
    for fine in ["clean", "plain"] {
        assert!(
            !out.stdout.contains(&format!("/{fine}:")),
            "{fine} reported:\n{}",
            out.stdout
        );
    }

    let out = verify(&s.backing(), &public, true);
    out.expect_code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON report");
    assert_eq!(doc["summary"]["problems"], 3, "{doc}");
    assert_eq!(doc["summary"]["files_with_problems"], 3, "{doc}");
    for (name, block, offset) in [("f4k", 5, at4k / 4096 * 4096), ("f1k", 37, 37 * 1024)] {
        let p = problems(&doc, name);
        assert_eq!(p.len(), 1, "{name}: {p:?}");
        assert_eq!(p[0]["block"], block, "{name}: {p:?}");
        assert_eq!(p[0]["offset"], offset, "{name}: {p:?}");
    }
    let p = problems(&doc, "badsig");
    assert!(
        p.len() == 1
            && p[0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("signature")),
        "{p:?}"
    );
    let files = doc["files"].as_array().expect("files");
    let state = |name: &str| {
        files
            .iter()
            .find(|f| {
                f["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("/{name}")))
            })
            .map(|f| f["signature"].clone())
    };
    assert_eq!(state("badsig"), Some(serde_json::json!("invalid")));
    assert_eq!(state("clean"), Some(serde_json::json!("valid")));
    assert!(problems(&doc, "clean").is_empty() && problems(&doc, "plain").is_empty());
}
