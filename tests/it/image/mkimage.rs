//! `fsverity-fuse mkimage` against the kernel: a source tree with every file
//! type is turned into an image, the image is mounted as composefs mounts it,
//! and the kernel's view must equal the source (with the documented composefs
//! representation of whiteouts) and our reader's view of the same image. The
//! image's digest is checked with fsverity-utils, the object store file by file.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, PermissionsExt, symlink};
use std::path::Path;

use fsverity_fuse::image::{Content, Image, Ino};
use rustix::fs::{AtFlags, CWD, FileType as RFileType, Mode, Timespec, Timestamps};

use super::kernel::{KernelMount, require_kernel_mounts};
use super::view::{self, Data, View};
use crate::util::{self, random_bytes, run_bin};

/// Makes a device node, FIFO or socket at `path`.
pub(super) fn mknod(path: &Path, kind: RFileType, perm: u32, major: u32, minor: u32) {
    rustix::fs::mknodat(
        CWD,
        path,
        kind,
        Mode::from_raw_mode(perm),
        rustix::fs::makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

fn chown(path: &Path, uid: u32, gid: u32) {
    rustix::fs::chownat(
        CWD,
        path,
        Some(rustix::process::Uid::from_raw(uid)),
        Some(rustix::process::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A tree with every file type, layout and attribute mkimage must carry.
pub(crate) fn build_source(src: &Path) {
    for d in ["a/b/c", "empty-dir", "sticky"] {
        fs::create_dir_all(src.join(d)).expect("mkdir");
    }
    let w = |rel: &str, data: &[u8]| util::write(&src.join(rel), data);
    w("empty", b"");
    w("tiny", b"x");
    w("inline-64", &random_bytes(64, 1));
    w("external-65", &random_bytes(65, 2));
    w("medium", &random_bytes(100_000, 3));
    w("a/b/large", &random_bytes(5 << 20, 4));
    w("a/b/c/deep", b"deep down\n");
    w("dup-1", &random_bytes(10_000, 5)); // same content twice: one object
    w("a/dup-2", &random_bytes(10_000, 5));
    // Sparse: 1 GiB and a bit, with data at the start, middle and end.
    let sparse = File::create(src.join("sparse")).expect("create sparse");
    sparse.set_len((1 << 30) + 4096).expect("set_len");
    for (off, seed) in [(0u64, 6), (512 << 20, 7), ((1 << 30) + 100, 8)] {
        sparse
            .write_all_at(&random_bytes(3000, seed), off)
            .expect("write sparse");
    }
    drop(sparse);
    // Hard links: a large file, an inline one, three links to one inode.
    fs::hard_link(src.join("medium"), src.join("a/medium-link")).expect("link");
    fs::hard_link(src.join("tiny"), src.join("a/b/tiny-link")).expect("link");
    fs::hard_link(src.join("tiny"), src.join("tiny-link-2")).expect("link");
    symlink("tiny", src.join("sym")).expect("symlink");
    symlink("x".repeat(3000), src.join("a/sym-long")).expect("symlink");
    symlink("no/such/target", src.join("dangling")).expect("symlink");
    mknod(&src.join("fifo"), RFileType::Fifo, 0o640, 0, 0);
    mknod(&src.join("null"), RFileType::CharacterDevice, 0o666, 1, 3);
    mknod(
        &src.join("big-minor"),
        RFileType::CharacterDevice,
        0o600,
        136,
        70_000,
    );
    mknod(&src.join("disk"), RFileType::BlockDevice, 0o660, 8, 1);
    mknod(
        &src.join("a/whiteout"),
        RFileType::CharacterDevice,
        0o644,
        0,
        0,
    );
    drop(std::os::unix::net::UnixListener::bind(src.join("socket")).expect("socket"));

    setxattr(&src.join("tiny"), "user.note", b"hello");
    setxattr(&src.join("medium"), "trusted.t", b"\x00binary\xff");
    setxattr(&src.join("a/b"), "trusted.overlay.opaque", b"y"); // must be escaped
    setxattr(&src.join("external-65"), "trusted.overlay.metacopy", b"");
    setxattr(&src.join("empty"), "user.big", &random_bytes(4000, 9));
    for f in ["inline-64", "a/b/c/deep", "dup-1", "empty-dir"] {
        setxattr(&src.join(f), "user.shared", b"same"); // a shared xattr
    }
    setxattr(&src.join("sym"), "trusted.on-a-symlink", b"1");

    fs::set_permissions(src.join("medium"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    fs::set_permissions(src.join("sticky"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::set_permissions(src.join("inline-64"), fs::Permissions::from_mode(0o2600)).expect("chmod");
    chown(&src.join("a/b/large"), 1234, 5678);
    chown(&src.join("sym"), 100_000, 200_000);
    chown(&src.join("socket"), 7, 8);

    set_mtime(&src.join("tiny"), 1_000_000_000, 123_456_789);
    set_mtime(&src.join("sym"), 1_500_000_000, 999_999_999);
    set_mtime(&src.join("empty"), -1000, 5); // before 1970
    set_mtime(&src.join("a/b/c"), 2_000_000_000, 1);
    set_mtime(src, 1_234_567_890, 0);
}

/// Runs mkimage; returns the printed line.
pub(crate) fn mkimage(src: &Path, image: &Path, objects: &Path) -> String {
    let out = run_bin([
        OsStr::new("mkimage"),
        src.as_os_str(),
        image.as_os_str(),
        OsStr::new("--objects"),
        objects.as_os_str(),
    ]);
    out.expect_success();
    out.stdout.trim_end().to_owned()
}

/// What the kernel must show for the source tree: the source itself, except
/// that directory sizes belong to the filesystem, and whiteouts (character
/// devices 0:0) appear as composefs escapes them: empty regular files marked
/// `trusted.overlay.whiteout` / `user.overlay.whiteout`, their directory marked
/// `trusted.overlay.whiteouts`, `user.overlay.whiteouts` and opaque `x`.
pub(crate) fn expected_from_source(src: &View) -> View {
    let mut want = src.clone();
    let whiteouts: Vec<String> = src
        .iter()
        .filter(|(_, (e, _))| e.kind == 'c' && e.rdev == 0)
        .map(|(p, _)| p.clone())
        .collect();
    for path in whiteouts {
        let (e, data) = want.get_mut(&path).expect("whiteout");
        e.kind = 'f';
        e.mode = 0o100000 | (e.mode & 0o7777);
        e.size = Some(0);
        for name in ["trusted.overlay.whiteout", "user.overlay.whiteout"] {
            e.xattrs.insert(name.into(), Vec::new());
        }
        *data = Some(Data::Bytes(Vec::new()));
        let parent = path
            .rsplit_once('/')
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default();
        let (d, _) = want.get_mut(&parent).expect("parent");
        for (name, value) in [
            ("trusted.overlay.whiteouts", &b""[..]),
            ("user.overlay.whiteouts", b""),
            ("trusted.overlay.opaque", b"x"),
            ("user.overlay.opaque", b"x"),
        ] {
            d.xattrs.insert(name.into(), value.to_vec());
        }
    }
    want
}

#[test]
fn kernel_mount_of_mkimage_output_matches_source_and_reader() {
    require_kernel_mounts!();
    let dir = util::temp_dir("mkimage-kernel");
    let (src, objects, image) = (
        dir.path().join("src"),
        dir.path().join("objects"),
        dir.path().join("image"),
    );
    fs::create_dir(&src).expect("mkdir src");
    build_source(&src);
    let printed = mkimage(&src, &image, &objects);

    // The printed digest is the image's fs-verity digest, as fsverity-utils says.
    if let Some(fsverity) = util::fsverity_oracle() {
        let out = util::run(&fsverity, [OsStr::new("digest"), image.as_os_str()]);
        out.expect_success();
        assert_eq!(
            printed,
            out.stdout.trim_end(),
            "mkimage's line vs `fsverity digest`"
        );
    }

    // composefs-rs's reader, in its strict composefs mode (it checks `.` and
    // `..`, link counts, metacopy values), accepts the image and finds the tree.
    let fs = composefs::erofs::reader::erofs_to_filesystem::<composefs::fsverity::Sha256HashValue>(
        &util::read(&image),
    )
    .expect("composefs-rs reads mkimage's output");
    let mut dump = Vec::new();
    composefs::dumpfile::write_dumpfile(&mut dump, &fs).expect("dump");
    let dump = String::from_utf8_lossy(&dump);
    for path in ["/a/b/c/deep ", "/sparse ", "/a/whiteout ", "/disk "] {
        assert!(dump.contains(path), "composefs-rs misses {path}:\n{dump}");
    }

    let img = Image::parse(util::read(&image)).expect("our reader parses mkimage's output");
    let reader = view::of_image(&img, &objects);
    let source = view::of_dir(&src, false);

    let mount = KernelMount::composefs(&image, &objects);
    let kernel_no_dir_sizes = view::of_dir(mount.root(), false);
    let kernel = view::of_dir(mount.root(), true);
    view::assert_same(
        &expected_from_source(&source),
        &kernel_no_dir_sizes,
        "source vs kernel",
    );
    view::assert_same(&kernel, &reader, "kernel vs our reader");
    mount.finish();

    // The store holds exactly the objects the image names, each under its digest.
    let mut named = BTreeSet::new();
    for i in 1..=img.inode_count() {
        if let Ok(Content::External(e)) = img.content(Ino(i)) {
            named.insert(e.object_path());
        }
    }
    let stored = store_listing(&objects);
    assert_eq!(stored, named, "object store contents");
    // Trees are stored for the objects of more than one block (the others
    // have none), and only for them.
    let trees = tree_listing(&objects);
    assert!(
        !trees.is_empty() && trees.is_subset(&named),
        "trees {trees:?} of {named:?}"
    );
    assert_eq!(
        named.len(),
        5,
        "external-65, medium, large, dup (once), sparse"
    );
    if let Some(fsverity) = util::fsverity_oracle() {
        let mut args = vec![
            OsStr::new("digest").to_owned(),
            OsStr::new("--compact").to_owned(),
        ];
        args.extend(stored.iter().map(|p| objects.join(p).into_os_string()));
        let out = util::run(&fsverity, &args);
        out.expect_success();
        let digests: BTreeSet<String> = out
            .stdout
            .lines()
            .map(|h| format!("{}/{}", &h[..2], &h[2..]))
            .collect();
        assert_eq!(
            digests, stored,
            "each object's fs-verity digest is its name"
        );
    }
}

/// Every file of the store as `xx/rest`, failing on anything else (but the
/// objects' tree store, `.fsverity-fuse`, which mkimage fills too).
fn store_listing(objects: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in fs::read_dir(objects).expect("read store") {
        let d = d.expect("entry");
        let name = d.file_name().to_string_lossy().into_owned();
        if name == ".fsverity-fuse" {
            // The objects' Merkle trees (checked in tree_listing).
            continue;
        }
        assert!(
            name.len() == 2 && d.file_type().expect("type").is_dir(),
            "unexpected store entry {name}"
        );
        for f in fs::read_dir(d.path()).expect("read store dir") {
            let f = f.expect("entry");
            let rest = f.file_name().to_string_lossy().into_owned();
            assert!(
                f.file_type().expect("type").is_file(),
                "{name}/{rest} is not a file"
            );
            assert_eq!(rest.len(), 62, "{name}/{rest}");
            out.insert(format!("{name}/{rest}"));
        }
    }
    out
}

/// The objects whose Merkle trees mkimage stored (`.fsverity-fuse/xx/sha256-HEX`),
/// as `xx/rest` object paths.
fn tree_listing(objects: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let store = objects.join(".fsverity-fuse");
    for d in fs::read_dir(&store).expect("read the tree store").flatten() {
        if !d.file_type().expect("type").is_dir() {
            continue;
        }
        for f in fs::read_dir(d.path()).expect("read").flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix("sha256-").expect("a SHA-256 tree");
            out.insert(format!("{}/{}", &hex[..2], &hex[2..]));
        }
    }
    out
}

#[test]
fn mkimage_is_reproducible() {
    let dir = util::temp_dir("mkimage-repro");
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("mkdir src");
    for (i, name) in ["b", "a", "c/d", "c/e"].iter().enumerate() {
        let p = src.join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        util::write(&p, &random_bytes(100 + i * 1000, i as u64));
        setxattr(&p, "user.x", b"1");
    }
    symlink("a", src.join("link")).expect("symlink");
    let one = mkimage(&src, &dir.path().join("one"), &dir.path().join("objects-1"));
    let two = mkimage(&src, &dir.path().join("two"), &dir.path().join("objects-2"));
    // Into the same store again: nothing new is added.
    let again = run_bin([
        OsStr::new("mkimage"),
        src.as_os_str(),
        dir.path().join("three").as_os_str(),
        OsStr::new("--objects"),
        dir.path().join("objects-1").as_os_str(),
        OsStr::new("--json"),
    ]);
    again.expect_success();
    let json: serde_json::Value = serde_json::from_str(&again.stdout).expect("json summary");
    let digest = |line: &str| {
        line.split_once(' ')
            .map(|(d, _)| d.to_owned())
            .expect("digest line")
    };
    assert_eq!(digest(&one), digest(&two), "same tree, same image digest");
    assert_eq!(json["digest"].as_str(), Some(digest(&one).as_str()));
    assert_eq!(json["objects_added"], 0);
    assert_eq!(json["objects_present"], 4);
    assert!(util::read(&dir.path().join("one")) == util::read(&dir.path().join("three")));
    assert_eq!(
        store_listing(&dir.path().join("objects-1")),
        store_listing(&dir.path().join("objects-2"))
    );
}

#[test]
fn mkimage_refuses_bad_arguments() {
    let dir = util::temp_dir("mkimage-args");
    let file = dir.path().join("file");
    util::write(&file, b"x");
    let out = run_bin([
        OsStr::new("mkimage"),
        file.as_os_str(),
        dir.path().join("img").as_os_str(),
        OsStr::new("--objects"),
        dir.path().join("o").as_os_str(),
    ]);
    out.expect_code(1);
    assert!(out.stderr.contains("is not a directory"), "{}", out.stderr);
    assert!(!dir.path().join("img").exists());
    run_bin(["mkimage", "only-one-arg"]).expect_code(2);
    // The store or the image inside the tree being described: a usage error.
    let src = dir.path().join("src");
    fs::create_dir(&src).expect("mkdir src");
    for (image, objects) in [
        (dir.path().join("img"), src.join("objects")),
        (src.join("img"), dir.path().join("objects")),
    ] {
        let out = run_bin([
            OsStr::new("mkimage"),
            src.as_os_str(),
            image.as_os_str(),
            OsStr::new("--objects"),
            objects.as_os_str(),
        ]);
        out.expect_code(2);
        assert!(out.stderr.contains("is inside SRC"), "{}", out.stderr);
        assert!(!image.exists() && !objects.exists(), "nothing written");
    }
}
