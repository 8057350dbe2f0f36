//! Our reader against images it did not write, with the kernel as the judge:
//! a composefs image written by the `composefs` crate (composefs-rs, whose
//! writer is byte-compatible with C `mkcomposefs`) from a dump file, mounted as
//! composefs; and plain EROFS images written by `mkfs.erofs` (erofs-utils),
//! mounted as EROFS. The kernel's view must equal our reader's. Then both kinds
//! of foreign image are fuzzed: the reader never panics and stays fast.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use composefs::fsverity::{FsVerityHashValue, Sha256HashValue, compute_verity};
use fsverity_fuse::image::{Content, FileType, Image, Ino, makedev};
use rustix::fs::FileType as RFileType;

use super::kernel::{KernelMount, require_kernel_mounts};
use super::mkimage::mknod;
use super::view;
use crate::util::{self, XorShift64, random_bytes};

/// Writes `data` into `objects` under its digest (computed by the composefs
/// crate, not by us); returns the dump file's payload and digest fields.
fn put_object(objects: &Path, data: &[u8]) -> (String, String) {
    let digest: Sha256HashValue = compute_verity(data);
    let hex = digest.to_hex();
    let rel = format!("{}/{}", &hex[..2], &hex[2..]);
    fs::create_dir_all(objects.join(&hex[..2])).expect("mkdir object dir");
    util::write(&objects.join(&rel), data);
    (rel, hex)
}

/// A composefs dump file (composefs-dump(5)) covering what composefs writes:
/// compact and extended inodes, external files, inline files up to several
/// blocks, long symlinks, devices, hard links, escaped xattrs, a whiteout, a
/// directory of several blocks.
fn dump_file(objects: &Path) -> String {
    let (p1, d1) = put_object(objects, &random_bytes(100, 11));
    let (p2, d2) = put_object(objects, &random_bytes(70_000, 12));
    let (p3, d3) = put_object(objects, &random_bytes(3 << 20, 13));
    let t = "1700000000.0";
    let mut lines = vec![
        format!("/ 4096 40755 4 0 0 0 {t} - - - trusted.root=1 user.shared=v"),
        format!(
            "/blockdev 0 60640 1 0 6 {} {t} - - - trusted.b=1 user.shared=v",
            makedev(8, 1)
        ),
        format!(
            "/chardev 0 20600 1 5 0 {} 1600000000.5 - - -",
            makedev(136, 70_000)
        ),
        format!("/dir 4096 40750 3 10 20 0 1700000001.123456789 - - - user.d=1"),
        format!("/dir/inner 5 100600 1 70000 0 0 {t} - hello - user.shared=v"),
        format!("/dir/wh 0 20644 1 0 0 0 {t} - - -"),
        format!("/dir/sub 4096 40700 2 0 0 0 {t} - - -"),
        format!(
            "/escaped 0 100644 1 0 0 0 {t} - - - trusted.overlay.redirect=/foo user.overlay.x=1"
        ),
        format!("/external-1 100 100755 2 0 0 0 {t} {p1} - {d1}"),
        format!("/external-2 70000 104755 1 1 2 0 1650000000.999999999 {p2} - {d2}"),
        format!("/external-3 {} 100644 1 0 0 0 {t} {p3} - {d3}", 3 << 20),
        format!("/fifo 0 10644 1 0 0 0 {t} - - -"),
        format!("/inline-300 300 100644 1 0 0 0 {t} - {} -", "A".repeat(300)),
        format!("/inline-512 512 100644 1 0 0 0 {t} - {} -", "B".repeat(512)),
        format!("/link-1 0 @120000 - - - - 0.0 /external-1 - -"),
        format!(
            "/long-link 1024 120777 1 0 0 0 {t} {} - -",
            "l".repeat(1024)
        ),
        format!("/many 4096 40755 2 0 0 0 {t} - - -"),
        format!("/short-link 5 120777 1 0 0 0 {t} inner - - trusted.s=2 user.s=1"),
        format!("/socket 0 140755 1 0 0 0 {t} - - -"),
    ];
    for i in 0..300 {
        lines.push(format!(
            "/many/a-rather-long-entry-name-{i:04} 1 100644 1 0 0 0 {t} - x -"
        ));
    }
    lines.sort_by(|a, b| {
        let key = |l: &str| l.split(' ').next().map(str::to_owned);
        key(a).cmp(&key(b))
    });
    lines.join("\n") + "\n"
}

#[test]
fn reader_matches_kernel_on_a_composefs_crate_image() {
    require_kernel_mounts!();
    let dir = util::temp_dir("image-composefs-crate");
    let objects = dir.path().join("objects");
    let dump = dump_file(&objects);
    let fs = composefs::dumpfile::dumpfile_to_validated_filesystem::<Sha256HashValue>(&dump)
        .expect("composefs parses the dump file");
    let bytes = composefs::erofs::writer::mkfs_erofs(&fs);
    let image = dir.path().join("image");
    util::write(&image, &bytes);

    let img = Image::parse(bytes.to_vec()).expect("our reader parses composefs-rs output");
    assert!(img.is_composefs());
    let reader = view::of_image(&img, &objects);
    let mount = KernelMount::composefs(&image, &objects);
    let kernel = view::of_dir(mount.root(), true);
    view::assert_same(
        &kernel,
        &reader,
        "kernel vs our reader (composefs-rs image)",
    );
    mount.finish();

    // Served by fsverity-fuse: the same view, every object verified (their
    // trees are not stored: each is built from the object at its first open
    // and must hash to the digest composefs-rs recorded).
    if crate::mount::harness::fuse_available() {
        let out = util::run_bin([std::ffi::OsStr::new("digest"), image.as_os_str()]);
        out.expect_success();
        let digest = out
            .stdout
            .split_whitespace()
            .next()
            .expect("digest")
            .to_owned();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir");
        let objects_arg = objects.to_str().expect("utf-8");
        let fuse = crate::mount::harness::Mount::start(
            &image,
            &mnt,
            &["--objects", objects_arg, "--digest", &digest],
            dir.path(),
        );
        // (The kernel's view was found equal to the reader's above; its
        // files are gone with its mount, so the bytes are compared with the
        // reader's.)
        view::assert_same(
            &reader,
            &view::of_dir(&mnt, true),
            "kernel (= our reader) vs fsverity-fuse (composefs-rs image)",
        );
        drop(fuse);
    }

    // A few facts straight from the dump file, so the comparison above is not
    // between two equally wrong views.
    let root = img.root();
    let names: Vec<Vec<u8>> = img
        .readdir(root)
        .expect("readdir")
        .map(|e| e.name.to_vec())
        .collect();
    assert_eq!(
        names.len(),
        2 + 15,
        "the 256 whiteout stubs of the root are hidden"
    );
    let ext = img
        .lookup(root, b"external-3")
        .expect("lookup")
        .expect("external-3");
    match img.content(ext).expect("content") {
        Content::External(e) => assert_eq!(e.size, 3 << 20),
        other => panic!("external-3: {other:?}"),
    }
    let link = img.lookup(root, b"link-1").expect("lookup");
    assert_eq!(link, img.lookup(root, b"external-1").expect("lookup"));
    let chr = img
        .lookup(root, b"chardev")
        .expect("lookup")
        .expect("chardev");
    let a = img.attr(chr).expect("attr");
    assert_eq!(
        (a.rdev, a.uid, a.mtime, a.mtime_nsec),
        (makedev(136, 70_000), 5, 1_600_000_000, 5)
    );
    let inline = img
        .lookup(root, b"inline-512")
        .expect("lookup")
        .expect("inline");
    match img.content(inline).expect("content") {
        Content::Inline(d) => assert_eq!(d.to_vec(), Some(vec![b'B'; 512])),
        other => panic!("inline-512: {other:?}"),
    }
    let dirino = img.lookup(root, b"dir").expect("lookup").expect("dir");
    let wh = img.lookup(dirino, b"wh").expect("lookup").expect("wh");
    assert_eq!(
        img.attr(wh).expect("attr").kind,
        FileType::Regular,
        "escaped whiteout"
    );
}

/// A source tree for mkfs.erofs: data of every size around the block size,
/// a sparse file, hard links, symlinks, devices, xattrs, a large directory.
fn erofs_source(src: &Path) {
    fs::create_dir_all(src.join("d/e")).expect("mkdir");
    fs::create_dir_all(src.join("many")).expect("mkdir");
    for (i, size) in [0usize, 1, 100, 4095, 4096, 4097, 10_000, 100_000]
        .into_iter()
        .enumerate()
    {
        util::write(
            &src.join(format!("f{size}")),
            &random_bytes(size, 20 + i as u64),
        );
    }
    let sparse = File::create(src.join("sparse")).expect("create");
    sparse.set_len(10 << 20).expect("set_len");
    sparse
        .write_all_at(&random_bytes(5000, 30), 3 << 20)
        .expect("write");
    drop(sparse);
    fs::hard_link(src.join("f100"), src.join("d/f100-link")).expect("link");
    symlink("../f1", src.join("d/up")).expect("symlink");
    symlink("t".repeat(3000), src.join("long-link")).expect("symlink");
    mknod(&src.join("chr"), RFileType::CharacterDevice, 0o600, 1, 3);
    mknod(&src.join("blk"), RFileType::BlockDevice, 0o600, 259, 65_536);
    mknod(&src.join("fifo"), RFileType::Fifo, 0o644, 0, 0);
    drop(std::os::unix::net::UnixListener::bind(src.join("sock")).expect("socket"));
    for i in 0..200 {
        util::write(&src.join(format!("many/entry-{i:03}")), &[i as u8]);
    }
    for f in ["f1", "f4096", "d", "many/entry-007"] {
        rustix::fs::lsetxattr(
            src.join(f),
            "user.shared",
            b"same",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("setxattr");
    }
    rustix::fs::lsetxattr(
        src.join("f0"),
        "trusted.t",
        &random_bytes(300, 31),
        rustix::fs::XattrFlags::empty(),
    )
    .expect("setxattr");
}

#[test]
fn reader_matches_kernel_on_mkfs_erofs_images() {
    require_kernel_mounts!();
    let dir = util::temp_dir("image-mkfs-erofs");
    let src = dir.path().join("src");
    erofs_source(&src);
    let no_objects = dir.path().join("no-objects");
    for (n, options) in [
        &["--quiet"][..],
        &["--quiet", "--chunksize=4096"],
        &["--quiet", "-T", "1700000000"], // one mtime for all: compact inodes
    ]
    .into_iter()
    .enumerate()
    {
        let image = dir.path().join(format!("image-{n}"));
        let out = util::run(
            mkfs_erofs(),
            options
                .iter()
                .map(OsStr::new)
                .chain([image.as_os_str(), src.as_os_str()]),
        );
        out.expect_success();
        let img = Image::parse(util::read(&image))
            .unwrap_or_else(|e| panic!("mkfs.erofs {options:?}: our reader refuses it: {e}"));
        assert!(!img.is_composefs());
        let reader = view::of_image(&img, &no_objects);
        let mount = KernelMount::erofs(&image);
        let kernel = view::of_dir(mount.root(), true);
        view::assert_same(
            &kernel,
            &reader,
            &format!("kernel vs our reader (mkfs.erofs {options:?})"),
        );
        mount.finish();
    }
}

/// erofs-utils' `mkfs.erofs` (Debian package erofs-utils).
fn mkfs_erofs() -> &'static Path {
    let path = Path::new("/usr/bin/mkfs.erofs");
    assert!(
        path.exists(),
        "{} is missing: install the Debian package erofs-utils",
        path.display()
    );
    path
}

/// Runs every query over every inode.
fn exercise(img: &Image) {
    for i in 1..=img.inode_count() {
        let ino = Ino(i);
        let a = img.attr(ino).expect("attr");
        let _ = img.xattrs(ino).expect("xattrs").count();
        match a.kind {
            FileType::Directory => {
                for e in img.readdir(ino).expect("readdir") {
                    assert_eq!(img.lookup(ino, e.name).expect("lookup"), Some(e.ino));
                }
            }
            FileType::Symlink => {
                img.readlink(ino).expect("readlink");
            }
            FileType::Regular => {
                if let Content::Inline(d) = img.content(ino).expect("content") {
                    let mut buf = vec![0u8; 8192];
                    let _ = d.read_at(d.len() / 2, &mut buf);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn foreign_images_survive_fuzzing() {
    let dir = util::temp_dir("image-fuzz-foreign");
    let objects = dir.path().join("objects");
    let dump = dump_file(&objects);
    let fs = composefs::dumpfile::dumpfile_to_validated_filesystem::<Sha256HashValue>(&dump)
        .expect("dump");
    let mut seeds = vec![composefs::erofs::writer::mkfs_erofs(&fs).to_vec()];
    let src = dir.path().join("src");
    erofs_source(&src);
    let image = dir.path().join("erofs");
    let mkfs = mkfs_erofs();
    util::run(
        mkfs,
        [
            OsStr::new("--quiet"),
            OsStr::new("--chunksize=4096"),
            image.as_os_str(),
            src.as_os_str(),
        ],
    )
    .expect_success();
    seeds.push(util::read(&image));
    let mut rng = XorShift64::new(0xF0F0_1234);
    let deadline = Instant::now() + Duration::from_secs(90);
    for seed in &seeds {
        exercise(&Image::parse(seed.clone()).expect("seed parses"));
        for round in 0..3000 {
            let mut img = seed.clone();
            let meta = img.len().min(64 << 10) as u64;
            match round % 4 {
                0 => {
                    for _ in 0..rng.in_range(1..=8) {
                        let at = rng.below(meta) as usize;
                        img[at] ^= 1 << rng.below(8);
                    }
                }
                1 => img.truncate(rng.below(img.len() as u64) as usize),
                2 => {
                    let at = rng.below(meta - 8) as usize;
                    let width = [2usize, 4, 8][rng.below(3) as usize];
                    let v = rng.next_u64().to_le_bytes();
                    img[at..at + width].copy_from_slice(&v[..width]);
                }
                _ => {
                    let len = rng.in_range(1..=512) as usize;
                    let from = rng.below((img.len() - len) as u64) as usize;
                    let to = rng.below(meta.min((img.len() - len) as u64)) as usize;
                    let chunk = img[from..from + len].to_vec();
                    img[to..to + len].copy_from_slice(&chunk);
                }
            }
            let started = Instant::now();
            if let Ok(parsed) = Image::parse(img) {
                exercise(&parsed);
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "round {round} was slow"
            );
            if Instant::now() > deadline {
                return;
            }
        }
    }
}

/// Compact inodes carry their mtime as seconds after the superblock's build
/// time (Linux 6.15 and later). An mkfs.erofs image with one timestamp for all
/// files has only compact inodes; one is given a non-zero offset (and the
/// superblock checksum, which the patch would break, is switched off), and the
/// kernel and our reader must agree on the result. The unpatched image with a
/// flipped superblock byte must fail its checksum, for us as for the kernel.
#[test]
fn compact_inode_mtimes_and_superblock_checksums_read_as_the_kernel_reads_them() {
    require_kernel_mounts!();
    let dir = util::temp_dir("image-compact-mtime");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    util::write(&src.join("f"), &random_bytes(12_345, 40));
    let image = dir.path().join("image");
    util::run(
        mkfs_erofs(),
        [
            OsStr::new("--quiet"),
            OsStr::new("-T"),
            OsStr::new("1700000000"),
            image.as_os_str(),
            src.as_os_str(),
        ],
    )
    .expect_success();
    let mut bytes = util::read(&image);

    let mut flipped = bytes.clone();
    flipped[1024 + 200] ^= 1; // inside the checksummed first block, past the fields
    assert!(matches!(
        Image::parse(flipped),
        Err(fsverity_fuse::image::ImageError::Checksum { .. })
    ));

    // Find the compact inode of f: mode 0100644, size 12345.
    let at = (1152..bytes.len() - 32)
        .step_by(32)
        .find(|&o| {
            bytes[o] & 1 == 0
                && bytes[o + 4..o + 6] == 0o100644u16.to_le_bytes()
                && bytes[o + 8..o + 12] == 12_345u32.to_le_bytes()
        })
        .expect("the compact inode of f");
    bytes[at + 12..at + 16].copy_from_slice(&1000u32.to_le_bytes());
    bytes[1024 + 8] &= !1; // no superblock checksum
    let patched = dir.path().join("patched");
    util::write(&patched, &bytes);

    let img = Image::parse(bytes).expect("parse");
    let f = img.lookup(img.root(), b"f").expect("lookup").expect("f");
    assert_eq!(img.attr(f).expect("attr").mtime, 1_700_001_000);
    let mount = KernelMount::erofs(&patched);
    let kernel = view::of_dir(mount.root(), true);
    view::assert_same(&kernel, &view::of_image(&img, dir.path()), "compact mtime");
    mount.finish();
}
