//! Passthrough fidelity and a forged descriptor: times before 1970 survive
//! `touch`, a listing's `..` names the parent, `chattr +a/+i` work through the
//! mount, and bytes past a verity file's recorded size are never trusted.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use sha2::Digest as _;

use crate::mount::harness::{Scratch, require_fuse};
use crate::util::random_bytes;

#[test]
fn times_before_the_epoch_survive_setattr() {
    require_fuse!();
    let s = Scratch::new();
    s.write("old", b"x");
    let m = s.mount(&[]);
    let status = Command::new("touch")
        .args(["-m", "-d", "1960-01-01 00:00:00.25 UTC"])
        .arg(m.p("old"))
        .status()
        .expect("touch");
    assert!(status.success());
    // 1960-01-01T00:00:00.25Z = -315619200 s + 0.25 s.
    for path in [m.p("old"), s.b("old")] {
        let meta = fs::metadata(&path).expect("stat");
        assert_eq!(
            (meta.mtime(), meta.mtime_nsec()),
            (-315_619_200, 250_000_000),
            "{}",
            path.display()
        );
    }
}

/// `(name, d_ino)` of every entry of `dir`, from getdents.
fn dirents(dir: &std::path::Path) -> Vec<(String, u64)> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .expect("open dir");
    rustix::fs::Dir::read_from(&fd)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().into_owned(), e.ino())
        })
        .collect()
}

#[test]
fn dot_dot_in_a_listing_is_the_parent() {
    require_fuse!();
    let s = Scratch::new();
    s.write("a/b/f", b"x");
    let m = s.mount(&[]);
    let ino = |p: &std::path::Path| fs::metadata(p).expect("stat").ino();
    for (dir, parent) in [
        (m.p("a/b"), m.p("a")),
        (m.p("a"), m.p("")),
        (m.p(""), m.p("")),
    ] {
        // Both listing forms: readdirplus (the first read of a directory) and
        // plain readdir (cached entries).
        for _ in 0..2 {
            let entries = dirents(&dir);
            let find = |n: &str| entries.iter().find(|(name, _)| name == n).map(|e| e.1);
            assert_eq!(find("."), Some(ino(&dir)), "{}/.", dir.display());
            assert_eq!(find(".."), Some(ino(&parent)), "{}/..", dir.display());
        }
    }
}

/// Removes the append-only and immutable flags, so the scratch directory can go.
struct Unflag(std::path::PathBuf);

impl Drop for Unflag {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-ia").arg(&self.0).status();
    }
}

fn lsattr(path: &std::path::Path) -> String {
    let out = Command::new("lsattr").arg(path).output().expect("lsattr");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn chattr_append_only_and_immutable_pass_through() {
    require_fuse!();
    let s = Scratch::new();
    s.write("log", b"one\n");
    let _unflag = Unflag(s.b("log"));
    let m = s.mount(&[]);
    let chattr = |flags: &str| {
        let out = Command::new("chattr")
            .arg(flags)
            .arg(m.p("log"))
            .output()
            .expect("chattr");
        assert!(
            out.status.success(),
            "chattr {flags}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    chattr("+a");
    assert!(
        lsattr(&s.b("log")).contains('a'),
        "backing: {}",
        lsattr(&s.b("log"))
    );
    assert!(
        lsattr(&m.p("log")).contains('a'),
        "mount: {}",
        lsattr(&m.p("log"))
    );
    OpenOptions::new()
        .append(true)
        .open(m.p("log"))
        .and_then(|mut f| f.write_all(b"two\n"))
        .expect("appending is allowed");
    let err = fs::write(m.p("log"), b"over").expect_err("overwriting is not");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    chattr("-a");
    chattr("+i");
    assert!(lsattr(&m.p("log")).contains('i'));
    let err = OpenOptions::new()
        .append(true)
        .open(m.p("log"))
        .expect_err("immutable");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    chattr("-i");
    assert_eq!(fs::read(m.p("log")).expect("read"), b"one\ntwo\n");
}

#[test]
fn a_forged_descriptor_cannot_claim_fewer_bytes_than_its_root_covers() {
    require_fuse!();
    let s = Scratch::new();
    let block = random_bytes(4096, 71);
    s.write("f", &block);
    // A descriptor (kernel layout, Documentation/filesystems/fsverity.rst)
    // saying the file holds 1 byte, with the root hash of the whole 4 KiB block
    // as the backing file holds it (sha256 computed here, independently).
    let mut d = vec![0u8; 256];
    d[0] = 1; // version
    d[1] = 1; // SHA-256
    d[2] = 12; // log2(4096)
    d[8..16].copy_from_slice(&1u64.to_le_bytes());
    d[16..48].copy_from_slice(&sha2::Sha256::digest(&block));
    let status = Command::new("setfattr")
        .args(["-n", "user.fsverity-fuse", "-v"])
        .arg(format!("0x{}", hex::encode(&d)))
        .arg(s.b("f"))
        .status()
        .expect("setfattr");
    assert!(status.success());
    let m = s.mount(&[]);
    assert_eq!(fs::metadata(m.p("f")).expect("stat").len(), 1);
    let err = fs::read(m.p("f")).expect_err("the padding is not zeros");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
}
