//! Image mounts through FUSE: `fsverity-fuse mount IMAGE MNT --objects DIR`
//! shows exactly the tree the kernel's composefs mount of the same image
//! shows, verifies every object block against the digest the image records,
//! and refuses to go live unless the image itself verifies.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use super::kernel::{KernelMount, require_kernel_mounts};
use super::mkimage::{build_source, mkimage};
use super::view;
use crate::mount::harness::{Mount, is_mounted, require_fuse};
use crate::util::{self, random_bytes, run_bin};

/// A source tree turned into an image and an object store, in a temp dir.
struct Built {
    dir: tempfile::TempDir,
    /// `sha256:HEX` of the image.
    digest: String,
}

impl Built {
    fn new(name: &str, fill: impl FnOnce(&Path)) -> Self {
        let dir = util::temp_dir(name);
        fs::create_dir(dir.path().join("src")).expect("mkdir src");
        fs::create_dir(dir.path().join("mnt")).expect("mkdir mnt");
        fill(&dir.path().join("src"));
        let line = mkimage(
            &dir.path().join("src"),
            &dir.path().join("image"),
            &dir.path().join("objects"),
        );
        let digest = line.split_whitespace().next().expect("digest").to_owned();
        Self { dir, digest }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mount(&self, extra: &[&str]) -> Mount {
        let objects = self.p("objects");
        let mut args = vec!["--objects", objects.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        Mount::start(&self.p("image"), &self.p("mnt"), &args, self.dir.path())
    }

    fn mount_verified(&self) -> Mount {
        self.mount(&["--digest", &self.digest])
    }

    /// `mount` that must fail before going live: its stderr.
    fn refused(&self, extra: &[&str]) -> String {
        let mut args: Vec<std::ffi::OsString> = vec![
            "mount".into(),
            self.p("image").into_os_string(),
            self.p("mnt").into_os_string(),
            "--objects".into(),
            self.p("objects").into_os_string(),
        ];
        args.extend(extra.iter().map(|a| a.into()));
        let out = run_bin(args);
        assert_eq!(out.code, 1, "mount should fail: {}", out.stderr);
        assert!(!is_mounted(&self.p("mnt")), "a refused mount went live");
        out.stderr
    }

    /// The object holding `rel` of the source (its path in the store).
    fn object_of(&self, rel: &str) -> PathBuf {
        let out = run_bin([
            OsStr::new("digest"),
            OsStr::new("--compact"),
            self.p("src").join(rel).as_os_str(),
        ]);
        out.expect_success();
        let hex = out.stdout.trim();
        self.p("objects").join(&hex[..2]).join(&hex[2..])
    }
}

/// `fsverity-fuse status --json` of one mount.
fn mount_status(m: &Mount) -> serde_json::Value {
    let status = run_bin([
        OsStr::new("status"),
        OsStr::new("--json"),
        m.p("").as_os_str(),
    ]);
    status.expect_success();
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    let v = doc.as_object().and_then(|o| o.values().next());
    v.expect("one mount").clone()
}

fn small_tree(src: &Path) {
    util::write(&src.join("big"), &random_bytes(300_000, 1));
    util::write(&src.join("other"), &random_bytes(200_000, 2));
    util::write(&src.join("small"), b"hello\n");
    fs::create_dir(src.join("d")).expect("mkdir");
    util::write(&src.join("d/f"), &random_bytes(50_000, 3));
}

#[test]
fn an_image_mount_shows_exactly_what_the_kernels_composefs_mount_shows() {
    require_fuse!();
    require_kernel_mounts!();
    let b = Built::new("image-view", build_source);
    let kernel = KernelMount::composefs(&b.p("image"), &b.p("objects"));
    let expected = view::of_dir(kernel.root(), true);
    let m = b.mount_verified();
    let ours = view::of_dir(&b.p("mnt"), true);
    view::assert_same(&expected, &ours, "kernel composefs vs fsverity-fuse");
    kernel.finish();
    // And the source, as mkimage promised.
    let source = view::of_dir(&b.p("src"), false);
    let ours_no_dir_sizes = view::of_dir(&b.p("mnt"), false);
    view::assert_same(
        &super::mkimage::expected_from_source(&source),
        &ours_no_dir_sizes,
        "source vs fsverity-fuse",
    );
    drop(m);
}

#[test]
fn objects_are_verified_against_the_digests_the_image_records() {
    require_fuse!();
    let b = Built::new("image-objects", small_tree);
    let (big, other, small) = (
        b.object_of("big"),
        b.object_of("other"),
        random_bytes(300_000, 1),
    );
    let m = b.mount_verified();
    assert!(fs::read(m.p("big")).expect("read") == small);
    // measure through the mount: the digest the image records.
    let out = run_bin([OsStr::new("measure"), m.p("big").as_os_str()]);
    out.expect_success();
    assert!(
        out.stdout.contains(
            big.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .expect("xx")
        )
    );
    drop(m);

    // A changed byte: that block fails, the others read.
    crate::mount::support::flip_byte(&big, 200_000);
    let m = b.mount_verified();
    let err = fs::read(m.p("big")).expect_err("tampered");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    let f = fs::File::open(m.p("big")).expect("open");
    let mut first = vec![0u8; 4096];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut first, 0).expect("block 0 reads");
    assert_eq!(first, small[..4096]);
    drop(f);
    drop(m);
    crate::mount::support::flip_byte(&big, 200_000);

    // Another file's object in its place, a missing object, a truncated one:
    // the file cannot be opened.
    let saved = fs::read(&big).expect("read object");
    fs::copy(&other, &big).expect("swap");
    let m = b.mount_verified();
    assert_eq!(
        fs::read(m.p("big")).expect_err("swapped").raw_os_error(),
        Some(libc::EIO)
    );
    drop(m);
    fs::remove_file(&big).expect("rm");
    let m = b.mount_verified();
    assert_eq!(
        fs::read(m.p("big")).expect_err("missing").raw_os_error(),
        Some(libc::EIO)
    );
    assert_eq!(
        fs::read(m.p("small")).expect("inline files live in the image"),
        b"hello\n"
    );
    drop(m);
    util::write(&big, &saved[..100_000]);
    let m = b.mount_verified();
    assert_eq!(
        fs::read(m.p("big")).expect_err("truncated").raw_os_error(),
        Some(libc::EIO)
    );
    drop(m);
}

#[test]
fn a_lost_object_tree_is_rebuilt_and_checked_against_the_digest() {
    require_fuse!();
    let b = Built::new("image-trees", small_tree);
    fs::remove_dir_all(b.p("objects/.fsverity-fuse")).expect("drop the trees");
    let m = b.mount_verified();
    assert!(fs::read(m.p("big")).expect("read") == random_bytes(300_000, 1));
    assert!(fs::read(m.p("d/f")).expect("read") == random_bytes(50_000, 3));
    let v = mount_status(&m);
    assert!(
        v["counters"]["trees_built"].as_u64().expect("counter") >= 1,
        "{v}"
    );
    assert_eq!(v["image"]["digest"], b.digest.as_str());
    assert_eq!(v["image"]["verified"], "digest");
}

#[test]
fn the_image_must_verify_before_the_mount_goes_live() {
    require_fuse!();
    let b = Built::new("image-trust", small_tree);
    let wrong = format!("sha256:{}", "0".repeat(64));
    assert!(
        b.refused(&["--digest", &wrong])
            .contains("not the expected")
    );
    assert!(
        b.refused(&[])
            .contains("refusing to mount an unverified image")
    );
    // A changed image no longer has the digest.
    let saved = fs::read(b.p("image")).expect("read");
    crate::mount::support::flip_byte(&b.p("image"), 1500);
    assert!(
        b.refused(&["--digest", &b.digest])
            .contains("not the expected")
    );
    fs::write(b.p("image"), &saved).expect("restore");

    // --insecure mounts, and says so.
    let m = b.mount(&["--insecure"]);
    let status = run_bin([
        OsStr::new("status"),
        OsStr::new("--json"),
        m.p("").as_os_str(),
    ]);
    assert!(status.stdout.contains("insecure"), "{}", status.stdout);
    drop(m);

    // A signature over the image's digest, by a trusted key.
    let (key, public) = (b.p("key.pem"), b.p("pub.pem"));
    util::keygen(&key, &public);
    let sig = b.p("image.sig");
    run_bin([
        OsStr::new("sign"),
        b.p("image").as_os_str(),
        sig.as_os_str(),
        OsStr::new("--key"),
        key.as_os_str(),
    ])
    .expect_success();
    let (sig_s, pub_s) = (
        sig.to_str().expect("utf-8"),
        public.to_str().expect("utf-8"),
    );
    let m = b.mount(&["--signature", sig_s, "--trusted-key", pub_s]);
    let status = run_bin([
        OsStr::new("status"),
        OsStr::new("--json"),
        m.p("").as_os_str(),
    ]);
    assert!(status.stdout.contains("signature by"), "{}", status.stdout);
    // The image is held verified in memory: replacing the file changes nothing.
    let before: Vec<_> = fs::read_dir(m.p(""))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    fs::write(b.p("image"), b"garbage").expect("overwrite the image");
    let after: Vec<_> = fs::read_dir(m.p(""))
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after);
    assert_eq!(fs::read(m.p("small")).expect("read"), b"hello\n");
    drop(m);
    // Another key's trust does not do.
    let (k2, p2) = (b.p("k2.pem"), b.p("p2.pem"));
    util::keygen(&k2, &p2);
    fs::write(b.p("image"), &saved).expect("restore");
    assert!(
        b.refused(&[
            "--signature",
            sig_s,
            "--trusted-key",
            p2.to_str().expect("utf-8")
        ])
        .contains("signature")
    );
}

#[test]
fn the_kernel_keeps_an_images_listings() {
    require_fuse!();
    let b = Built::new("image-listings", small_tree);
    let m = b.mount_verified();
    let listings = || {
        mount_status(&m)["counters"]["listings"]
            .as_u64()
            .expect("counter")
    };
    let names = |rel: &str| {
        let mut v: Vec<String> = fs::read_dir(m.p(rel))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listings();
    assert_eq!(names(""), ["big", "d", "other", "small"]);
    assert_eq!(names("d"), ["f"]);
    let listed = listings();
    assert!(listed >= before + 2, "{before} -> {listed}");
    // An image cannot change: listed again (new opens), the kernel answers
    // from its cache, with the same names.
    for _ in 0..3 {
        assert_eq!(names(""), ["big", "d", "other", "small"]);
        assert_eq!(names("d"), ["f"]);
    }
    assert_eq!(listings(), listed, "listings reached the daemon again");
    drop(m);
}

#[test]
fn an_images_listings_carry_attributes_so_stat_needs_no_lookup() {
    require_fuse!();
    // More entries than one readdirplus reply holds (about 200 in 32 KiB).
    let b = Built::new("image-rdplus", |src| {
        fs::create_dir(src.join("many")).expect("mkdir");
        for i in 0..600 {
            util::write(&src.join(format!("many/entry-{i:04}")), b"x");
        }
    });
    let m = b.mount_verified();
    let lookups = || {
        mount_status(&m)["counters"]["lookups"]
            .as_u64()
            .expect("counter")
    };
    let before = lookups();
    // As `ls -l` and `find -ls` do: the whole listing first, then an lstat
    // of each entry.
    let paths: Vec<PathBuf> = fs::read_dir(m.p("many"))
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(paths.len(), 600);
    for p in &paths {
        assert_eq!(fs::symlink_metadata(p).expect("lstat").len(), 1);
    }
    // One LOOKUP for "many" itself; the kernel had every entry from the
    // listing (a passthrough mount lets the kernel choose, and it then looks
    // up every entry past the first reply).
    let after = lookups();
    assert!(
        after - before <= 2,
        "{} lookups for 600 entries",
        after - before
    );
    drop(m);
}

#[test]
fn images_are_read_only_and_share_one_object_store() {
    require_fuse!();
    let b = Built::new("image-shared", small_tree);
    // A second image of a tree sharing a file, into the same store.
    let src2 = b.p("src2");
    fs::create_dir(&src2).expect("mkdir");
    util::write(&src2.join("same"), &random_bytes(300_000, 1));
    util::write(&src2.join("new"), &random_bytes(70_000, 9));
    let line = mkimage(&src2, &b.p("image2"), &b.p("objects"));
    let digest2 = line.split_whitespace().next().expect("digest").to_owned();
    fs::create_dir(b.p("mnt2")).expect("mkdir");
    let m1 = b.mount_verified();
    let objects = b.p("objects");
    let m2 = Mount::start(
        &b.p("image2"),
        &b.p("mnt2"),
        &[
            "--objects",
            objects.to_str().expect("utf-8"),
            "--digest",
            &digest2,
        ],
        b.dir.path(),
    );
    assert!(fs::read(m1.p("big")).expect("read") == fs::read(m2.p("same")).expect("read"));
    assert_eq!(
        fs::read(m2.p("new")).expect("read"),
        random_bytes(70_000, 9)
    );
    let err = fs::write(m1.p("new-file"), b"x").expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = fs::OpenOptions::new()
        .append(true)
        .open(m1.p("big"))
        .expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    drop(m2);
    drop(m1);
}

#[test]
fn the_mount_helper_form_mounts_images() {
    require_fuse!();
    let b = Built::new("image-helper", small_tree);
    let options = format!("objects={},digest={}", b.p("objects").display(), b.digest);
    run_bin([
        b.p("image").as_os_str(),
        b.p("mnt").as_os_str(),
        OsStr::new("-o"),
        OsStr::new(&options),
    ])
    .expect_success();
    let mnt = b.p("mnt");
    let read = fs::read(mnt.join("small"));
    let daemons = crate::hardening::support::pids_mentioning(&b.p("image"));
    let status = std::process::Command::new("umount")
        .arg(&mnt)
        .status()
        .expect("umount");
    crate::hardening::support::wait_until(
        "the daemon to exit",
        std::time::Duration::from_secs(20),
        || {
            daemons
                .iter()
                .all(|&p| !crate::hardening::support::alive(p))
        },
    );
    assert!(status.success());
    assert_eq!(read.expect("read through the helper's mount"), b"hello\n");
}
