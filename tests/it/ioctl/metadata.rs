//! Reading verity metadata: FS_IOC_READ_VERITY_METADATA cannot work through FUSE
//! (the kernel forwards no output buffer), so it answers ENOTTY and the stock
//! `fsverity dump_metadata` fails; `fsverity-fuse dump-metadata` fills the gap and
//! must print exactly what `fsverity digest --out-merkle-tree/--out-descriptor`
//! computes, whole or sliced, from a mount path or a backing path. And
//! `fsverity-fuse measure` prints what `fsverity measure` prints.

use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;

use super::raw::read_verity_metadata;

use super::tools::{Fsverity, errno, run_raw, scratch};
use crate::mount::harness::require_fuse;
use crate::util::{self, bin, random_bytes, run_bin};

/// `FS_VERITY_METADATA_TYPE_*` of include/uapi/linux/fsverity.h.
const METADATA_TYPES: [(u64, &str); 3] = [(1, "merkle_tree"), (2, "descriptor"), (3, "signature")];

/// `fsverity-fuse dump-metadata KIND FILE [ARGS]`, which must succeed: its bytes.
#[track_caller]
fn dump(kind: &str, file: &Path, args: &[&str]) -> Vec<u8> {
    let mut all: Vec<&OsStr> = vec![
        OsStr::new("dump-metadata"),
        OsStr::new(kind),
        file.as_os_str(),
    ];
    all.extend(args.iter().map(OsStr::new));
    let out = run_raw(bin(), all);
    assert_eq!(
        out.code,
        0,
        "dump-metadata {kind} {} {args:?}: {}",
        file.display(),
        out.stderr
    );
    out.stdout
}

/// `bytes[offset..offset + length]`, clamped to the end, as the kernel's
/// FS_IOC_READ_VERITY_METADATA defines a slice.
fn slice(bytes: &[u8], offset: usize, length: usize) -> &[u8] {
    let start = offset.min(bytes.len());
    &bytes[start..start.saturating_add(length).min(bytes.len())]
}

#[test]
fn read_verity_metadata_is_enotty_and_fsverity_dump_metadata_fails() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    s.write("f", &random_bytes(100_000, 30));
    let m = s.mount(&[]);
    fsv.enable_ok(&m.p("f"), &[]);
    let f = File::open(m.p("f")).expect("open");
    for (kind, name) in METADATA_TYPES {
        let mut buf = vec![0u8; 8192];
        let err = read_verity_metadata(&f, kind, 0, &mut buf).expect_err(name);
        assert_eq!(errno(&err), libc::ENOTTY, "{name}: {err}");
        let out = fsv.run([
            OsStr::new("dump_metadata"),
            OsStr::new(name),
            m.p("f").as_os_str(),
        ]);
        assert_eq!(out.code, 1, "fsverity dump_metadata {name}: {out:?}");
        assert!(
            out.stderr.contains("FS_IOC_READ_VERITY_METADATA")
                && out.stderr.contains(&super::tools::strerror(libc::ENOTTY)),
            "fsverity dump_metadata {name}: {}",
            out.stderr
        );
    }
}

/// One file per (options, size): the tree and descriptor `fsverity-fuse
/// dump-metadata` prints for the mount path and the backing path equal
/// fsverity-utils' own, whole and in slices.
#[test]
fn dump_metadata_equals_fsverity_digest_outputs() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    let m = s.mount(&[]);
    let salt = format!("--salt={}", "9e".repeat(19));
    let cases: [(&[&str], usize, usize); 6] = [
        (&[], 4096, 0),
        (&[], 4096, 4096),
        (&[], 4096, 3 * 128 * 4096 + 7),
        (&["--hash-alg=sha512"], 4096, 300_000),
        (&["--block-size=1024", &salt], 1024, 1024 * 32 * 32 + 1),
        (&["--block-size=65536", "--hash-alg=sha512"], 65536, 1 << 20),
    ];
    for (i, (opts, block, size)) in cases.into_iter().enumerate() {
        let name = format!("f{i}");
        s.write(&name, &random_bytes(size, 31 + i as u64));
        fsv.enable_ok(&m.p(&name), opts);
        let (tree, desc) = fsv.tree_and_descriptor(opts, &s.b(&name), s.dir.path());
        assert_eq!(desc.len(), 256, "fsverity-utils descriptor size");
        for file in [m.p(&name), s.b(&name)] {
            let at = |what: &str| format!("{} {opts:?} size {size}: {what}", file.display());
            assert!(dump("merkle_tree", &file, &[]) == tree, "{}", at("tree"));
            assert!(
                dump("descriptor", &file, &[]) == desc,
                "{}",
                at("descriptor")
            );
            let slices = [
                (0, 1),
                (block - 1, 2),
                (block, block),
                (tree.len().saturating_sub(10), 100),
                (tree.len() + 5, 10),
            ];
            for (offset, length) in slices {
                let args = [format!("--offset={offset}"), format!("--length={length}")];
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                assert!(
                    dump("merkle_tree", &file, &args) == slice(&tree, offset, length),
                    "{}",
                    at(&format!("tree slice {offset}+{length}"))
                );
            }
            for (offset, length) in [(0, 8), (8, 8), (16, 64), (250, 100), (300, 1)] {
                let args = [format!("--offset={offset}"), format!("--length={length}")];
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                assert!(
                    dump("descriptor", &file, &args) == slice(&desc, offset, length),
                    "{}",
                    at(&format!("descriptor slice {offset}+{length}"))
                );
            }
        }
    }
}

/// The signature given to `fsverity enable --signature` comes back unchanged
/// from `dump-metadata signature`; an unsigned file has none to dump.
#[test]
fn dump_metadata_signature_is_the_one_given() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    let keys = s.dir.path();
    let (private, public) = (keys.join("k.key"), keys.join("k.pem"));
    util::keygen(&private, &public);
    s.write("signed", &random_bytes(50_000, 40));
    s.write("unsigned", &random_bytes(50_000, 41));
    let sig = keys.join("signed.sig");
    run_bin([
        OsStr::new("sign"),
        s.b("signed").as_os_str(),
        sig.as_os_str(),
        OsStr::new("--key"),
        private.as_os_str(),
    ])
    .expect_success();
    let m = s.mount(&["--trusted-key", public.to_str().expect("utf-8 path")]);
    fsv.enable_ok(&m.p("signed"), &[&format!("--signature={}", sig.display())]);
    fsv.enable_ok(&m.p("unsigned"), &[]);
    let want = crate::util::read(&sig);
    for file in [m.p("signed"), s.b("signed")] {
        assert!(dump("signature", &file, &[]) == want, "{}", file.display());
        assert!(
            dump("signature", &file, &["--offset=60", "--length=100"]) == want[60..],
            "{}",
            file.display()
        );
    }
    for file in [m.p("unsigned"), s.b("unsigned")] {
        let out = run_raw(
            bin(),
            [
                OsStr::new("dump-metadata"),
                OsStr::new("signature"),
                file.as_os_str(),
            ],
        );
        assert_eq!(out.code, 1, "{}: {}", file.display(), out.stderr);
        assert!(out.stdout.is_empty());
    }
}

/// `fsverity-fuse measure` on files of a mount prints, byte for byte, the lines
/// of `fsverity measure`; both fail on a file without verity.
#[test]
fn measure_command_prints_what_fsverity_measure_prints() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    let m = s.mount(&[]);
    let opts: [&[&str]; 4] = [
        &[],
        &["--hash-alg=sha512"],
        &["--block-size=1024", "--salt=00ff"],
        &["--hash-alg=sha512", "--block-size=65536"],
    ];
    let mut files = Vec::new();
    for (i, o) in opts.iter().enumerate() {
        let name = format!("f{i}");
        s.write(&name, &random_bytes(10_000 * i, 50 + i as u64));
        fsv.enable_ok(&m.p(&name), o);
        files.push(m.p(&name));
    }
    let mut args = vec![OsStr::new("measure")];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let ours = run_bin(&args);
    let theirs = fsv.run(&args);
    ours.expect_success();
    theirs.expect_success();
    assert_eq!(ours.stdout, theirs.stdout);

    s.write("plain", b"plain");
    let plain = m.p("plain");
    let ours = run_bin([OsStr::new("measure"), plain.as_os_str()]);
    let theirs = fsv.run([OsStr::new("measure"), plain.as_os_str()]);
    assert_eq!((ours.code, theirs.code), (1, 1), "{ours:?}\n{theirs:?}");
    assert!(ours.stdout.is_empty() && theirs.stdout.is_empty());
}
