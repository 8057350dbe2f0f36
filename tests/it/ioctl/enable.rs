//! `fsverity enable` through the mount with each option fsverity-utils offers,
//! on sizes around block and tree-level boundaries: `fsverity measure` must then
//! equal `fsverity digest` (same options) of the same bytes, the file must read
//! back, be immutable and carry the verity flag, and all of that must survive a
//! remount — including verification: a byte flipped in the backing file while
//! unmounted makes reads fail with EIO.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;

use super::tools::{Fsverity, errno, scratch};
use crate::mount::harness::require_fuse;
use crate::util::{random_bytes, read};

/// The sizes to try for a tree of `block`-byte blocks and `digest`-byte hashes:
/// empty, one byte, around one block, around the point where a second tree level
/// appears (`block * fanout`) and a third (`block * fanout²`, when small), around
/// the kernel's default geometry's level boundary (128 × 4096), and a few MiB.
fn sizes(block: usize, digest: usize) -> Vec<usize> {
    let fanout = block / digest;
    let mut sizes = vec![
        0,
        1,
        4095,
        4096,
        4097,
        128 * 4096,
        128 * 4096 + 1,
        3 * 1024 * 1024 + 12_345,
        block - 1,
        block,
        block + 1,
        block * fanout,
        block * fanout + 1,
    ];
    if block * fanout * fanout <= 4 << 20 {
        sizes.extend([block * fanout * fanout, block * fanout * fanout + 1]);
    }
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// Enables every size through the mount with `opts` (spelled as for both
/// `fsverity enable` and `fsverity digest`) and checks it end to end.
fn enable_and_measure(opts: &[&str], block: usize, digest: usize, seed: u64) {
    let Some(fsv) = Fsverity::find() else { return };
    let s = scratch();
    let files: Vec<(String, Vec<u8>)> = sizes(block, digest)
        .into_iter()
        .map(|len| (format!("f{len}"), random_bytes(len, seed ^ len as u64)))
        .collect();
    for (name, data) in &files {
        s.write(name, data);
    }
    s.write("plain", b"not a verity file");
    let backing: Vec<PathBuf> = files.iter().map(|(n, _)| s.b(n)).collect();

    let m = s.mount(&[]);
    for (name, _) in &files {
        fsv.enable_ok(&m.p(name), opts);
    }
    let in_mount: Vec<PathBuf> = files.iter().map(|(n, _)| m.p(n)).collect();
    let expected = fsv.digests(opts, &backing);
    assert_eq!(
        fsv.measures(&in_mount),
        expected,
        "measure vs digest, {opts:?}"
    );
    for (name, data) in &files {
        assert!(
            fs::read(m.p(name)).expect("read through the mount") == *data,
            "{name}: wrong bytes read back ({opts:?})"
        );
        assert!(read(&s.b(name)) == *data, "{name}: backing file changed");
        let err = OpenOptions::new()
            .write(true)
            .open(m.p(name))
            .expect_err("a verity file cannot be opened for writing");
        assert_eq!(errno(&err), libc::EPERM, "{name}: {err}");
    }
    check_lsattr(&in_mount, &m.p("plain"));
    let status = m.unmount();
    assert!(status.success(), "daemon exit: {status}");

    // A new daemon knows the files from the backing directory alone.
    let m = s.mount(&[]);
    assert_eq!(fsv.measures(&in_mount), expected, "after remount, {opts:?}");
    for (name, data) in &files {
        assert!(
            fs::read(m.p(name)).expect("read after remount") == *data,
            "{name}: wrong bytes after remount"
        );
    }
    drop(m);

    // Reads stay verified: flip one byte of every non-empty file while unmounted.
    for (name, data) in files.iter().filter(|(_, d)| !d.is_empty()) {
        let at = (data.len() / 2) as u64;
        let f = OpenOptions::new()
            .write(true)
            .open(s.b(name))
            .expect("open backing file");
        f.write_all_at(&[data[at as usize] ^ 0x10], at)
            .expect("tamper");
    }
    let m = s.mount(&[]);
    assert_eq!(fsv.measures(&in_mount), expected, "digests after tampering");
    for (name, data) in &files {
        match fs::read(m.p(name)) {
            Ok(got) => assert!(
                data.is_empty() && got.is_empty(),
                "{name}: a tampered file read without error"
            ),
            Err(e) => assert_eq!(errno(&e), libc::EIO, "{name}: {e}"),
        }
    }
}

/// `lsattr` (e2fsprogs, through FS_IOC_GETFLAGS) shows 'V' on every verity file
/// and not on `plain`.
#[track_caller]
fn check_lsattr(verity: &[PathBuf], plain: &PathBuf) {
    let Some(lsattr) = super::tools::program("/usr/bin/lsattr", "e2fsprogs") else {
        return;
    };
    let out = Command::new(lsattr)
        .args(verity)
        .arg(plain)
        .output()
        .expect("run lsattr");
    assert!(out.status.success(), "lsattr: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), verity.len() + 1, "lsattr printed {text}");
    for line in lines {
        let (flags, path) = line.split_once(' ').expect("lsattr line: FLAGS PATH");
        let want = path != plain.to_string_lossy();
        assert_eq!(flags.contains('V'), want, "lsattr: {line}");
    }
}

#[test]
fn enable_default_sha256_4k() {
    require_fuse!();
    enable_and_measure(&[], 4096, 32, 1);
}

#[test]
fn enable_sha512() {
    require_fuse!();
    enable_and_measure(&["--hash-alg=sha512"], 4096, 64, 2);
}

#[test]
fn enable_block_size_1024() {
    require_fuse!();
    enable_and_measure(&["--block-size=1024"], 1024, 32, 3);
}

#[test]
fn enable_block_size_65536() {
    require_fuse!();
    enable_and_measure(&["--block-size=65536"], 65536, 32, 4);
}

#[test]
fn enable_salt() {
    require_fuse!();
    enable_and_measure(&["--salt=5a17ed"], 4096, 32, 5);
}

#[test]
fn enable_sha512_longest_salt_block_size_2048() {
    require_fuse!();
    let salt = format!("--salt={}", "c3".repeat(32));
    enable_and_measure(
        &["--hash-alg=sha512", "--block-size=2048", &salt],
        2048,
        64,
        6,
    );
}
