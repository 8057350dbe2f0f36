//! The filesystem logic driven in-process, without a kernel: the calls the
//! FUSE adapter makes, on a backing directory in a temporary directory. The
//! mount tests (tests/it) then only prove the kernel-facing part.

use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::format::TreeParams;
use crate::ioctl::EnableRequest;
use crate::namespace::{Caller, ROOT_ID, SetAttr, XattrReply};
use crate::signature::{PrivateKey, TrustedKeys};
use crate::store::{METADATA_XATTR, enable_file};
use crate::testing::pseudo_random as data;
use crate::verity::OnCorruption;

/// Root, calling from this process (whose /proc entry says it is alive: an
/// enable stops when its caller is being killed).
fn root() -> Caller {
    Caller {
        uid: 0,
        gid: 0,
        pid: std::process::id(),
    }
}

/// A backing directory with a tree store, and a filesystem over it.
struct Fixture {
    dir: tempfile::TempDir,
    fs: Arc<VerityFs>,
}

impl Fixture {
    fn new() -> Self {
        Self::with(FsOptions::default(), |_| {})
    }

    /// Files are written by `setup` before the filesystem opens the directory.
    fn with(options: FsOptions, setup: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(crate::store::STORE_DIR_NAME)).expect("store");
        setup(dir.path());
        let fs = Arc::new(VerityFs::new(dir.path(), options).expect("filesystem"));
        Self { dir, fs }
    }

    fn b(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ino(&self, name: &str) -> u64 {
        self.fs
            .lookup(ROOT_ID, OsStr::new(name))
            .expect("lookup")
            .ino
    }

    fn open(&self, name: &str, flags: i32) -> Result<Opened> {
        self.fs.open(self.ino(name), flags, root())
    }

    fn read_all(&self, name: &str) -> Result<Vec<u8>> {
        let o = self.open(name, libc::O_RDONLY)?;
        let mut out = Vec::new();
        loop {
            let chunk = self.fs.read(o.fh, out.len() as u64, 128 * 1024)?;
            if chunk.as_slice().is_empty() {
                break;
            }
            out.extend_from_slice(chunk.as_slice());
        }
        self.fs.release(o.fh)?;
        Ok(out)
    }

    /// Writes `name` and enables verity on it offline, returning its content.
    fn verity(&self, name: &str, len: usize, seed: u64) -> Vec<u8> {
        let content = data(len, seed);
        std::fs::write(self.b(name), &content).expect("write");
        enable(&self.b(name), None);
        content
    }

    fn store(&self) -> PathBuf {
        self.b(crate::store::STORE_DIR_NAME)
    }

    fn tree_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for sub in std::fs::read_dir(self.store()).expect("store").flatten() {
            if sub.path().is_dir() {
                out.extend(
                    std::fs::read_dir(sub.path())
                        .expect("sub")
                        .flatten()
                        .map(|e| e.path()),
                );
            }
        }
        out
    }
}

/// Enables verity on `path` offline, with the store next to it.
fn enable(path: &Path, signature: Option<Vec<u8>>) {
    let store = crate::store::TreeStore::existing(
        &path
            .parent()
            .expect("parent")
            .join(crate::store::STORE_DIR_NAME),
    )
    .expect("store");
    let file = std::fs::File::open(path).expect("open");
    enable_file::<std::convert::Infallible>(
        &file,
        Some(&store),
        &TreeParams::default(),
        crate::merkle::BuildOptions { threads: 1 },
        &|_| Ok(signature.clone()),
        &|| false,
        &|_| {},
    )
    .expect("enable");
}

fn flip(path: &Path, offset: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open for tampering");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read");
    f.write_all_at(&[b[0] ^ 1], offset).expect("write");
}

fn errno<T: std::fmt::Debug>(r: Result<T>) -> i32 {
    r.expect_err("should fail").errno()
}

fn enable_request(signature: Option<Vec<u8>>) -> EnableRequest {
    EnableRequest {
        algorithm: 1,
        block_size: 4096,
        salt: Vec::new(),
        signature,
    }
}

#[test]
fn verity_files_read_back_verified_at_every_size() {
    let f = Fixture::new();
    for (i, len) in [0usize, 1, 4096, 4097, 40_000, 130_000, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let name = format!("f{i}");
        let content = f.verity(&name, len, i as u64);
        assert!(f.read_all(&name).expect("read") == content, "{len} bytes");
        let attr = f.fs.getattr(f.ino(&name)).expect("getattr");
        assert_eq!(attr.size, len as u64);
    }
    let snap = f.fs.stats.snapshot();
    assert!(snap.blocks_verified > 256, "{snap:?}");
    assert_eq!(snap.verification_failures, 0);
}

#[test]
fn a_changed_data_block_fails_that_block_only() {
    let f = Fixture::new();
    let content = f.verity("f", 1 << 20, 1);
    flip(&f.b("f"), 300_000);
    let o = f.open("f", libc::O_RDONLY).expect("open");
    let bad = 300_000 / 4096 * 4096;
    assert_eq!(errno(f.fs.read(o.fh, bad, 4096)), libc::EIO);
    // The whole request fails, never a short read.
    assert_eq!(errno(f.fs.read(o.fh, bad - 8192, 3 * 4096)), libc::EIO);
    let good = f.fs.read(o.fh, 0, 4096).expect("other blocks read");
    assert_eq!(good.as_slice(), &content[..4096]);
    assert_eq!(f.fs.stats.snapshot().verification_failures, 2);
}

#[test]
fn a_changed_tree_block_fails_the_blocks_it_covers() {
    let f = Fixture::new();
    let content = f.verity("f", 1 << 20, 2);
    let trees = f.tree_files();
    assert_eq!(trees.len(), 1);
    // Level 0 starts after the one root block; its first block covers data
    // blocks 0..128.
    flip(&trees[0], 4096 + 10);
    let o = f.open("f", libc::O_RDONLY).expect("open");
    assert_eq!(errno(f.fs.read(o.fh, 0, 4096)), libc::EIO);
    let far =
        f.fs.read(o.fh, 200 * 4096, 4096)
            .expect("covered by another block");
    assert_eq!(far.as_slice(), &content[200 * 4096..201 * 4096]);
}

#[test]
fn a_lost_tree_is_rebuilt_at_open_while_the_data_matches() {
    let f = Fixture::new();
    let content = f.verity("f", 1 << 20, 3);
    for t in f.tree_files() {
        std::fs::remove_file(t).expect("rm tree");
    }
    assert!(f.read_all("f").expect("read") == content);
    assert_eq!(f.fs.stats.snapshot().trees_built, 1);
    assert_eq!(f.tree_files().len(), 1, "the rebuilt tree is stored");
}

#[test]
fn a_lost_tree_is_not_rebuilt_from_changed_data() {
    let f = Fixture::new();
    f.verity("f", 1 << 20, 4);
    for t in f.tree_files() {
        std::fs::remove_file(t).expect("rm tree");
    }
    flip(&f.b("f"), 5);
    assert_eq!(errno(f.read_all("f")), libc::EIO);
    assert_eq!(f.tree_files().len(), 0);
}

#[test]
fn a_small_file_read_in_part_builds_its_tree_from_its_data() {
    let f = Fixture::new();
    let content = f.verity("small", 40_000, 5);
    for t in f.tree_files() {
        std::fs::remove_file(t).expect("rm tree");
    }
    let o = f.open("small", libc::O_RDONLY).expect("open");
    let part = f.fs.read(o.fh, 8192, 100).expect("partial read");
    assert_eq!(part.as_slice(), &content[8192..8292]);
    assert_eq!(f.fs.stats.snapshot().trees_built, 0, "not a rebuild");
    // A changed block of a small file fails alone, located through the stored
    // tree (rebuilt: missing here, so the whole file is unreadable instead).
    flip(&f.b("small"), 20_000);
    let o = f.open("small", libc::O_RDONLY).expect("open");
    assert_eq!(errno(f.fs.read(o.fh, 0, 40_000)), libc::EIO);
}

#[test]
fn bytes_past_the_recorded_size_are_damage() {
    let f = Fixture::new();
    f.verity("f", 5000, 6);
    let mut g = std::fs::OpenOptions::new()
        .append(true)
        .open(f.b("f"))
        .expect("open");
    std::io::Write::write_all(&mut g, b"x").expect("append");
    assert_eq!(errno(f.read_all("f")), libc::EIO);
}

#[test]
fn verity_files_are_immutable() {
    let f = Fixture::new();
    f.verity("f", 10_000, 7);
    for flags in [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_RDONLY | libc::O_APPEND,
        libc::O_RDONLY | libc::O_TRUNC,
    ] {
        assert_eq!(errno(f.open("f", flags)), libc::EPERM, "flags {flags:#x}");
    }
    let ino = f.ino("f");
    let truncate = SetAttr {
        size: Some(0),
        ..SetAttr::default()
    };
    assert_eq!(errno(f.fs.setattr(ino, truncate)), libc::EPERM);
    let o = f.open("f", libc::O_RDONLY).expect("open");
    assert_eq!(errno(f.fs.fallocate(o.fh, 0, 4096, 0)), libc::EPERM);
    assert_eq!(errno(f.fs.write(o.fh, 0, b"x")), libc::EPERM);
    // Metadata changes are allowed.
    let chmod = SetAttr {
        mode: Some(0o600),
        ..SetAttr::default()
    };
    assert_eq!(f.fs.setattr(ino, chmod).expect("chmod").mode & 0o777, 0o600);
}

#[test]
fn plain_files_pass_through() {
    let f = Fixture::new();
    let (attr, o) =
        f.fs.create(ROOT_ID, OsStr::new("new"), 0o644, libc::O_RDWR, root())
            .expect("create");
    assert!(o.flush_on_close && !o.verity);
    assert_eq!(f.fs.write(o.fh, 0, b"hello").expect("write"), 5);
    assert_eq!(f.fs.read(o.fh, 0, 100).expect("read").as_slice(), b"hello");
    f.fs.release(o.fh).expect("release");
    assert_eq!(std::fs::read(f.b("new")).expect("backing"), b"hello");
    assert_eq!(attr.size, 0);
    let truncate = SetAttr {
        size: Some(2),
        ..SetAttr::default()
    };
    assert_eq!(f.fs.setattr(attr.ino, truncate).expect("truncate").size, 2);
    // O_EXCL on an existing name fails; without it, the file opens.
    let excl = f.fs.create(
        ROOT_ID,
        OsStr::new("new"),
        0o644,
        libc::O_RDWR | libc::O_EXCL,
        root(),
    );
    assert_eq!(errno(excl), libc::EEXIST);
    let (_, again) =
        f.fs.create(ROOT_ID, OsStr::new("new"), 0o644, libc::O_RDONLY, root())
            .expect("opens the existing file");
    assert_eq!(f.fs.read(again.fh, 0, 10).expect("read").as_slice(), b"he");
}

#[test]
fn only_writable_plain_handles_ask_for_flush_on_close() {
    let f = Fixture::new();
    f.verity("verity", 10_000, 8);
    std::fs::write(f.b("plain"), b"x").expect("write");
    assert!(
        !f.open("verity", libc::O_RDONLY)
            .expect("open")
            .flush_on_close
    );
    assert!(
        !f.open("plain", libc::O_RDONLY)
            .expect("open")
            .flush_on_close
    );
    assert!(
        f.open("plain", libc::O_WRONLY)
            .expect("open")
            .flush_on_close
    );
    assert!(f.open("plain", libc::O_RDWR).expect("open").flush_on_close);
}

#[test]
fn the_page_cache_is_kept_only_once_it_holds_verified_pages() {
    let f = Fixture::new();
    f.verity("f", 10_000, 9);
    assert!(
        !f.open("f", libc::O_RDONLY).expect("open").keep_cache,
        "first open"
    );
    assert!(
        f.open("f", libc::O_RDONLY).expect("open").keep_cache,
        "second open"
    );
}

#[test]
fn verity_is_sticky_while_mounted() {
    let f = Fixture::new();
    f.verity("f", 10_000, 10);
    f.read_all("f").expect("read");
    rustix::fs::removexattr(f.b("f").as_path(), METADATA_XATTR).expect("strip the metadata");
    assert_eq!(errno(f.read_all("f")), libc::EIO);
    assert_eq!(
        errno(f.open("f", libc::O_WRONLY)),
        libc::EIO,
        "damaged, never writable"
    );
}

#[test]
fn damaged_metadata_is_eio_not_plain() {
    let f = Fixture::with(FsOptions::default(), |dir| {
        std::fs::write(dir.join("f"), b"data").expect("write");
        rustix::fs::setxattr(
            dir.join("f").as_path(),
            METADATA_XATTR,
            &[1, 2, 3],
            rustix::fs::XattrFlags::empty(),
        )
        .expect("setxattr");
    });
    assert_eq!(errno(f.open("f", libc::O_RDONLY)), libc::EIO);
    assert_eq!(errno(f.fs.measure(f.ino("f"))), libc::EIO);
}

#[test]
fn require_verity_refuses_plain_files() {
    let options = FsOptions {
        policy: Policy {
            require_verity: true,
            ..Policy::default()
        },
        ..FsOptions::default()
    };
    let f = Fixture::with(options, |dir| {
        std::fs::write(dir.join("plain"), b"x").expect("write")
    });
    f.verity("v", 5000, 11);
    assert_eq!(errno(f.open("plain", libc::O_RDONLY)), libc::EACCES);
    assert!(
        f.open("plain", libc::O_WRONLY).is_ok(),
        "writing is not reading"
    );
    assert!(f.read_all("v").is_ok());
    assert_eq!(f.fs.stats.snapshot().policy_denials, 1);
}

/// The descriptor fs-verity gives `content` with the default parameters.
fn descriptor_of(content: &[u8]) -> crate::format::Descriptor {
    let mut sink = crate::merkle::NullSink;
    crate::merkle::build_tree(
        &content,
        &TreeParams::default(),
        &mut sink,
        Default::default(),
    )
    .expect("digest")
}

/// A filesystem that opens only files signed by `key`.
fn signed_only_fixture(key: &PrivateKey) -> Fixture {
    let options = FsOptions {
        policy: Policy {
            require_signatures: true,
            trusted_keys: Arc::new(TrustedKeys::from_keys(vec![key.public()])),
            ..Policy::default()
        },
        ..FsOptions::default()
    };
    Fixture::with(options, |_| {})
}

#[test]
fn require_signatures_opens_only_trusted_signed_files() {
    let key = PrivateKey::generate().expect("key");
    let stranger = PrivateKey::generate().expect("key");
    let f = signed_only_fixture(&key);
    let sign = |name: &str, k: Option<&PrivateKey>| {
        let content = data(9000, 12);
        std::fs::write(f.b(name), &content).expect("write");
        let params = TreeParams::default();
        let mut sink = crate::merkle::NullSink;
        let d =
            crate::merkle::build_tree(&content.as_slice(), &params, &mut sink, Default::default())
                .expect("digest");
        enable(
            &f.b(name),
            k.map(|k| k.sign(d.algorithm(), &d.digest()).to_vec()),
        );
    };
    sign("good", Some(&key));
    sign("stranger", Some(&stranger));
    sign("unsigned", None);
    assert!(f.read_all("good").is_ok());
    assert_eq!(errno(f.open("stranger", libc::O_RDONLY)), libc::EACCES);
    assert_eq!(errno(f.open("unsigned", libc::O_RDONLY)), libc::EACCES);
    assert_eq!(f.fs.stats.snapshot().signature_rejections, 2);
}

#[test]
fn on_corruption_log_serves_and_abort_stops_the_mount() {
    let fixture = |on_corruption| {
        let policy = Policy {
            on_corruption,
            ..Policy::default()
        };
        Fixture::with(
            FsOptions {
                policy,
                ..FsOptions::default()
            },
            |_| {},
        )
    };
    let f = fixture(OnCorruption::Log);
    let content = f.verity("f", 20_000, 13);
    flip(&f.b("f"), 100);
    let served = f.read_all("f").expect("served anyway");
    assert_eq!(served.len(), content.len());
    assert_ne!(served, content);

    let f = fixture(OnCorruption::Abort);
    f.verity("f", 20_000, 14);
    std::fs::write(f.b("plain"), b"x").expect("write");
    let plain = f.ino("plain");
    flip(&f.b("f"), 100);
    assert_eq!(errno(f.read_all("f")), libc::EIO);
    assert_eq!(errno(f.fs.lookup(ROOT_ID, OsStr::new("plain"))), libc::EIO);
    assert_eq!(errno(f.fs.getattr(plain)), libc::EIO);
    assert!(f.fs.getattr(ROOT_ID).is_ok(), "the root stays reachable");
    assert!(f.fs.status().aborted);
}

#[test]
fn enable_makes_a_verity_file_and_measure_reports_it() {
    let f = Fixture::new();
    let content = data(300_000, 15);
    std::fs::write(f.b("f"), &content).expect("write");
    let ino = f.ino("f");
    assert_eq!(errno(f.fs.measure(ino)), libc::ENODATA);
    let o = f.open("f", libc::O_RDONLY).expect("open");
    f.fs.enable_verity(ino, o.fh, enable_request(None), root())
        .expect("enable");
    let (alg, digest) = f.fs.measure(ino).expect("measure");
    let d = descriptor_of(&content);
    assert_eq!((alg, digest), (d.algorithm(), d.digest()));
    assert_eq!(
        errno(f.fs.enable_verity(ino, o.fh, enable_request(None), root())),
        libc::EEXIST
    );
    // The handle opened before the enable now reads verified.
    assert_eq!(
        f.fs.read(o.fh, 0, 10).expect("read").as_slice(),
        &content[..10]
    );
    let handle = f.fs.handles.get(o.fh).expect("handle");
    assert!(
        handle
            .as_file()
            .expect("file")
            .late_verifier
            .get()
            .is_some()
    );
    let flags = f.fs.get_flags(ino, o.fh).expect("flags");
    assert_ne!(flags & crate::ioctl::FS_VERITY_FL, 0);
    assert_eq!(f.fs.stats.snapshot().verity_enabled, 1);
}

#[test]
fn enable_refusals_follow_the_kernels_order() {
    let f = Fixture::new();
    std::fs::write(f.b("f"), data(20_000, 16)).expect("write");
    let ino = f.ino("f");
    let w = f.open("f", libc::O_WRONLY).expect("open for writing");
    // A write-only descriptor: EBADF (before the writer check).
    assert_eq!(
        errno(f.fs.enable_verity(ino, w.fh, enable_request(None), root())),
        libc::EBADF
    );
    let r = f.open("f", libc::O_RDONLY).expect("open");
    // A writer exists: ETXTBSY, even with an unsupported algorithm.
    let bad_alg = EnableRequest {
        algorithm: 9,
        ..enable_request(None)
    };
    assert_eq!(
        errno(f.fs.enable_verity(ino, r.fh, bad_alg.clone(), root())),
        libc::ETXTBSY
    );
    f.fs.release(w.fh).expect("release the writer");
    assert_eq!(
        errno(f.fs.enable_verity(ino, r.fh, bad_alg, root())),
        libc::EINVAL
    );
    // A caller who may not write the file (0644, root's): EACCES first.
    let user = Caller {
        uid: 1000,
        gid: 1000,
        pid: std::process::id(),
    };
    let bad_block = EnableRequest {
        block_size: 512,
        ..enable_request(None)
    };
    assert_eq!(
        errno(f.fs.enable_verity(ino, r.fh, bad_block, user)),
        libc::EACCES
    );
    // A directory.
    std::fs::create_dir(f.b("d")).expect("mkdir");
    let d = f.fs.opendir(f.ino("d")).expect("opendir").fh;
    assert_eq!(
        errno(f.fs.enable_verity(f.ino("d"), d, enable_request(None), root())),
        libc::EISDIR
    );
    // While an enable is running, writers get ETXTBSY.
    let node = f.fs.ns.verity(ino).expect("node");
    let (guard, ()) = node
        .begin_enable(false, || Ok::<_, Error>(()))
        .expect("enable starts");
    assert_eq!(errno(f.open("f", libc::O_WRONLY)), libc::ETXTBSY);
    assert_eq!(
        errno(f.fs.enable_verity(ino, r.fh, enable_request(None), root())),
        libc::EBUSY
    );
    drop(guard);
}

#[test]
fn enable_checks_signatures_like_the_kernel() {
    let key = PrivateKey::generate().expect("key");
    let f = signed_only_fixture(&key);
    let content = data(50_000, 17);
    std::fs::write(f.b("f"), &content).expect("write");
    let ino = f.ino("f");
    let o = f.open("f", libc::O_WRONLY).expect("open");
    f.fs.release(o.fh).expect("release");
    let fh =
        f.fs.open(ino, libc::O_RDONLY | libc::O_NOATIME, root())
            .err();
    // Plain files cannot be opened under require-signatures only if
    // require-verity; here they can.
    assert!(fh.is_none());
    let r = f.fs.open(ino, libc::O_RDONLY, root()).expect("open");
    assert_eq!(
        errno(f.fs.enable_verity(ino, r.fh, enable_request(None), root())),
        libc::EPERM
    );
    let garbage = enable_request(Some(vec![0x30, 0x03, 1, 2, 3]));
    assert_eq!(
        errno(f.fs.enable_verity(ino, r.fh, garbage, root())),
        libc::EBADMSG
    );
    let wrong = key.sign(
        crate::format::HashAlgorithm::Sha256,
        &crate::format::HashValue::from_slice(&[1; 32]),
    );
    assert_eq!(
        errno(f.fs.enable_verity(ino, r.fh, enable_request(Some(wrong.to_vec())), root())),
        libc::EKEYREJECTED
    );
    assert_eq!(errno(f.fs.measure(ino)), libc::ENODATA, "still plain");
    let d = descriptor_of(&content);
    let good = key.sign(d.algorithm(), &d.digest());
    f.fs.enable_verity(ino, r.fh, enable_request(Some(good.to_vec())), root())
        .expect("a trusted signature");
    assert!(f.read_all("f").expect("opens under require-signatures") == content);
}

#[test]
fn enables_run_on_the_pool_and_answer_through_the_callback() {
    let f = Fixture::new();
    std::fs::write(f.b("f"), data(100_000, 18)).expect("write");
    let ino = f.ino("f");
    let o = f.open("f", libc::O_RDONLY).expect("open");
    let (tx, rx) = std::sync::mpsc::channel();
    f.fs.enable_verity_later(ino, o.fh, enable_request(None), root(), move |r| {
        tx.send((
            std::thread::current().name().map(str::to_owned),
            r.map_err(|e| e.errno()),
        ))
        .expect("send");
    });
    let (thread, result) = rx.recv().expect("answered");
    assert_eq!(result, Ok(()));
    assert!(
        thread.is_some_and(|n| n.starts_with("enable-")),
        "on a pool worker"
    );
}

#[test]
fn the_tree_store_is_hidden_and_reserved() {
    let f = Fixture::new();
    let store = OsStr::new(crate::store::STORE_DIR_NAME);
    assert_eq!(errno(f.fs.lookup(ROOT_ID, store)), libc::ENOENT);
    assert_eq!(
        errno(f.fs.mkdir(ROOT_ID, store, 0o755, root())),
        libc::EPERM
    );
    assert_eq!(errno(f.fs.unlink(ROOT_ID, store)), libc::EPERM);
    let fh = f.fs.opendir(ROOT_ID).expect("opendir").fh;
    let entries = f.fs.readdir(fh, 0).expect("readdir");
    assert!(entries.iter().all(|e| e.name != store));
    let dot = entries.iter().find(|e| e.name == ".").expect(".");
    let dotdot = entries.iter().find(|e| e.name == "..").expect("..");
    assert_eq!((dot.ino, dotdot.ino), (ROOT_ID, ROOT_ID));
}

#[test]
fn listings_name_the_parent_and_readdirplus_keeps_only_what_it_added() {
    let f = Fixture::new();
    std::fs::create_dir(f.b("d")).expect("mkdir");
    for i in 0..100 {
        std::fs::write(f.b(&format!("d/f{i:03}")), b"x").expect("write");
    }
    let d = f.ino("d");
    let fh = f.fs.opendir(d).expect("opendir").fh;
    let entries = f.fs.readdir(fh, 0).expect("readdir");
    assert_eq!(
        entries.iter().find(|e| e.name == "..").expect("..").ino,
        ROOT_ID
    );
    assert_eq!(entries.iter().find(|e| e.name == ".").expect(".").ino, d);
    let before = f.fs.status().inodes;
    let mut added = 0;
    f.fs.readdirplus(fh, 0, |_, _, _| {
        added += 1;
        added == 30
    })
    .expect("readdirplus");
    // 30 entries added (two of them "." and ".."): 28 new inodes, the rest
    // of the looked-up batch forgotten.
    assert_eq!(f.fs.status().inodes, before + 28);
}

#[test]
fn the_metadata_xattr_is_invisible_and_untouchable() {
    let f = Fixture::new();
    f.verity("f", 10_000, 19);
    let ino = f.ino("f");
    let name = OsStr::new(METADATA_XATTR);
    assert_eq!(errno(f.fs.getxattr(ino, name, 0)), libc::ENODATA);
    assert_eq!(errno(f.fs.setxattr(ino, name, b"x", 0)), libc::EPERM);
    assert_eq!(errno(f.fs.removexattr(ino, name)), libc::EPERM);
    f.fs.setxattr(ino, OsStr::new("user.other"), b"v", 0)
        .expect("other xattrs pass");
    let XattrReply::Data(list) = f.fs.listxattr(ino, 1024).expect("list") else {
        panic!("data expected")
    };
    let list = String::from_utf8_lossy(&list).into_owned();
    assert!(
        list.contains("user.other") && !list.contains(METADATA_XATTR),
        "{list}"
    );
}

#[test]
fn the_status_xattr_on_the_root_is_the_mounts_status() {
    let f = Fixture::new();
    let name = OsStr::new(STATUS_XATTR);
    let XattrReply::Size(n) = f.fs.getxattr(ROOT_ID, name, 0).expect("size") else {
        panic!("size expected")
    };
    let XattrReply::Data(json) = f.fs.getxattr(ROOT_ID, name, n).expect("data") else {
        panic!("data expected")
    };
    let status: MountStatus = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(
        Path::new(&status.backing),
        f.dir.path().canonicalize().expect("canonical")
    );
    assert_eq!(errno(f.fs.getxattr(ROOT_ID, name, n - 1)), libc::ERANGE);
}

#[test]
fn a_read_only_filesystem_refuses_every_change() {
    let options = FsOptions {
        read_only: true,
        ..FsOptions::default()
    };
    let f = Fixture::with(options, |dir| {
        std::fs::write(dir.join("p"), b"x").expect("write")
    });
    let p = f.ino("p");
    assert_eq!(
        errno(f.fs.create(ROOT_ID, OsStr::new("n"), 0o644, libc::O_WRONLY, root())),
        libc::EROFS
    );
    assert_eq!(errno(f.open("p", libc::O_WRONLY)), libc::EROFS);
    assert_eq!(
        errno(f.fs.mkdir(ROOT_ID, OsStr::new("d"), 0o755, root())),
        libc::EROFS
    );
    assert_eq!(errno(f.fs.unlink(ROOT_ID, OsStr::new("p"))), libc::EROFS);
    assert_eq!(errno(f.fs.setattr(p, SetAttr::default())), libc::EROFS);
    let r = f.open("p", libc::O_RDONLY).expect("reading is fine");
    assert_eq!(
        errno(f.fs.enable_verity(p, r.fh, enable_request(None), root())),
        libc::EROFS
    );
}

#[test]
fn seek_data_and_copies_respect_verity() {
    let f = Fixture::new();
    f.verity("f", 10_000, 20);
    std::fs::write(f.b("out"), b"").expect("write");
    let v = f.open("f", libc::O_RDONLY).expect("open");
    assert_eq!(f.fs.lseek(v.fh, 0, libc::SEEK_DATA).expect("data"), 0);
    assert_eq!(
        f.fs.lseek(v.fh, 0, libc::SEEK_HOLE).expect("hole"),
        10_000,
        "clamped"
    );
    assert_eq!(
        errno(f.fs.lseek(v.fh, 10_000, libc::SEEK_DATA)),
        libc::ENXIO
    );
    let out = f.open("out", libc::O_WRONLY).expect("open");
    assert_eq!(
        errno(f.fs.copy_file_range(v.fh, 0, out.fh, 0, 100)),
        libc::EXDEV
    );
    assert_eq!(
        errno(f.fs.copy_file_range(out.fh, 0, v.fh, 0, 100)),
        libc::EPERM
    );
}

#[test]
fn names_are_single_components() {
    let f = Fixture::new();
    for bad in ["", ".", "..", "a/b"] {
        assert_eq!(
            errno(f.fs.lookup(ROOT_ID, OsStr::new(bad))),
            libc::EINVAL,
            "{bad:?}"
        );
    }
    assert_eq!(
        errno(f.fs.lookup(ROOT_ID, OsStr::new("missing"))),
        libc::ENOENT
    );
    assert_eq!(errno(f.fs.getattr(987_654_321)), libc::ESTALE);
    assert_eq!(errno(f.fs.read(424_242, 0, 1)), libc::EBADF);
}

#[test]
fn renames_links_and_removals_of_verity_files_are_allowed() {
    let f = Fixture::new();
    let content = f.verity("f", 10_000, 21);
    let ino = f.ino("f");
    f.fs.rename(ROOT_ID, OsStr::new("f"), ROOT_ID, OsStr::new("g"), 0)
        .expect("rename");
    assert!(f.read_all("g").expect("read") == content);
    let linked = f.fs.link(ino, ROOT_ID, OsStr::new("h")).expect("link");
    assert_eq!(linked.nlink, 2);
    assert_eq!(linked.size, 10_000);
    f.fs.unlink(ROOT_ID, OsStr::new("g")).expect("unlink");
    assert!(f.read_all("h").expect("read") == content);
}

#[test]
fn opens_that_rebuild_a_tree_run_off_the_request_thread() {
    let f = Fixture::new();
    let content = f.verity("big", 1 << 20, 22);
    f.verity("kept", 1 << 20, 23);
    f.verity("small", 20_000, 24);
    for t in f.tree_files() {
        std::fs::remove_file(t).expect("rm tree");
    }
    // "kept" gets its tree back from a plain open, so only "big" must rebuild.
    let kept = f.open("kept", libc::O_RDONLY).expect("open");
    f.fs.release(kept.fh).expect("release");
    let thread_of = |name: &str| {
        let (tx, rx) = std::sync::mpsc::channel();
        f.fs.open_then(f.ino(name), libc::O_RDONLY, root(), move |r| {
            let thread = std::thread::current().name().map(str::to_owned);
            tx.send((thread, r.map(|o| o.fh).map_err(|e| e.errno())))
                .expect("send");
        });
        rx.recv().expect("answered")
    };
    let here = std::thread::current().name().map(str::to_owned);
    let (thread, fh) = thread_of("big");
    assert!(
        thread.is_some_and(|n| n.starts_with("enable-")),
        "a rebuild runs on the pool"
    );
    let fh = fh.expect("opened");
    assert_eq!(
        f.fs.read(fh, 0, 100).expect("read").as_slice(),
        &content[..100]
    );
    for quick in ["kept", "small", "big"] {
        let (thread, fh) = thread_of(quick);
        assert_eq!(thread, here, "{quick}: answered at once");
        assert!(fh.is_ok());
    }
}

/// Reads `len` bytes at `offset` of handle `fh`, then waits for whatever
/// that read started verifying ahead.
fn read_settled(fx: &Fixture, fh: u64, offset: u64, len: u32) -> Result<Vec<u8>> {
    let bytes = fx.fs.read(fh, offset, len).map(|d| d.as_slice().to_vec());
    if let Ok(h) = fx.fs.handles.get(fh) {
        h.as_file().expect("file").read_ahead.settle();
    }
    bytes
}

const MIB: u32 = 1 << 20;

/// A filesystem that verifies ahead (off by default).
fn read_ahead_fixture() -> Fixture {
    let options = FsOptions {
        read_ahead: 16 << 20,
        ..FsOptions::default()
    };
    Fixture::with(options, |_| {})
}

#[test]
fn verified_read_ahead_serves_only_its_own_handle_what_it_verified() {
    let fx = read_ahead_fixture();
    let a = fx.verity("a", 6 << 20, 1);
    let b = fx.verity("b", 6 << 20, 2);
    let ha = fx.open("a", libc::O_RDONLY).expect("open a").fh;
    let hb = fx.open("b", libc::O_RDONLY).expect("open b").fh;
    let hits = || fx.fs.stats.snapshot().read_ahead_hits;
    assert_eq!(read_settled(&fx, ha, 0, MIB).expect("a0"), a[..1 << 20]);
    assert_eq!(fx.fs.stats.snapshot().read_ahead_started, 2);
    assert_eq!(fx.fs.read_ahead.used(), 2 << 20);
    // The same range of another file, and of another handle of the same
    // file, is read from its own data, never from a's slots.
    assert_eq!(
        read_settled(&fx, hb, 1 << 20, MIB).expect("b1"),
        b[1 << 20..2 << 20]
    );
    let ha2 = fx.open("a", libc::O_RDONLY).expect("open a again").fh;
    assert_eq!(
        fx.fs
            .read(ha2, 1 << 20, MIB)
            .expect("a1 other handle")
            .as_slice(),
        &a[1 << 20..2 << 20]
    );
    assert_eq!(hits(), 0);
    // a's next read is served from its read-ahead: the same bytes.
    assert_eq!(
        read_settled(&fx, ha, 1 << 20, MIB).expect("a1"),
        a[1 << 20..2 << 20]
    );
    assert_eq!(hits(), 1);
    // A read of another length at a read-ahead offset is verified afresh.
    assert_eq!(
        read_settled(&fx, ha, 2 << 20, 4096).expect("small"),
        a[2 << 20..(2 << 20) + 4096]
    );
    assert_eq!(hits(), 1);
    // Releasing the handles gives the memory back.
    for fh in [ha, hb, ha2] {
        fx.fs.release(fh).expect("release");
    }
    assert_eq!(fx.fs.read_ahead.used(), 0);
}

#[test]
fn verified_read_ahead_never_serves_a_block_that_did_not_verify() {
    let fx = read_ahead_fixture();
    let a = fx.verity("a", 8 << 20, 3);
    let h = fx.open("a", libc::O_RDONLY).expect("open").fh;
    // Tampered before it is read ahead: the prefetch fails, and the read of
    // that range fails as a whole with EIO (never a short read).
    flip(&fx.b("a"), (2 << 20) + 5000);
    read_settled(&fx, h, 0, MIB).expect("first MiB");
    read_settled(&fx, h, 1 << 20, MIB).expect("second MiB");
    assert_eq!(errno(fx.fs.read(h, 2 << 20, MIB)), libc::EIO);
    assert_eq!(fx.fs.stats.snapshot().read_ahead_failed, 1);
    // Tampered after it was verified ahead: the bytes served are the ones
    // verified, which the change of the backing file cannot reach.
    // (A run that starts mid-file reads ahead from its second read.)
    let h = fx.open("a", libc::O_RDONLY).expect("open again").fh;
    read_settled(&fx, h, 3 << 20, MIB).expect("3 MiB");
    read_settled(&fx, h, 4 << 20, MIB).expect("4 MiB");
    flip(&fx.b("a"), (5 << 20) + 7);
    let hits = fx.fs.stats.snapshot().read_ahead_hits;
    assert_eq!(
        read_settled(&fx, h, 5 << 20, MIB).expect("verified ahead"),
        a[5 << 20..6 << 20]
    );
    assert_eq!(fx.fs.stats.snapshot().read_ahead_hits, hits + 1);
    // What was not read ahead is verified now, and fails.
    assert_eq!(errno(fx.fs.read(h, 5 << 20, 4096)), libc::EIO);
}

#[test]
fn verity_files_are_reported_as_such_for_their_longer_cache_lifetime() {
    let fx = Fixture::new();
    fx.verity("v", 5000, 4);
    std::fs::write(fx.b("p"), b"plain").expect("write");
    let v = fx.fs.lookup(ROOT_ID, OsStr::new("v")).expect("lookup v");
    let p = fx.fs.lookup(ROOT_ID, OsStr::new("p")).expect("lookup p");
    assert!(v.verity && !p.verity);
    assert!(fx.fs.getattr(v.ino).expect("getattr").verity);
    assert!(!fx.fs.getattr(ROOT_ID).expect("root").verity);
}
