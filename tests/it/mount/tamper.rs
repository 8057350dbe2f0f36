//! The tamper matrix: one byte flipped in a data block, in a block of each tree
//! level, in the descriptor xattr; the backing file truncated or extended; the
//! tree lost. Each case gets a fresh mount (nothing cached), reads every 4 KiB
//! page with its own pread, and checks that exactly the affected pages fail with
//! EIO while every other page returns the original bytes.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use super::harness::{Scratch, require_fuse};
use super::support::{
    Geometry, PAGE, data, errno, failing_pages, flip_byte, only_tree_file, scratch_with_store,
    strip_ansi,
};
use crate::ioctl::tools::Fsverity;

/// One verity file `f` in its own scratch directory, with what the tests need to
/// know about it.
struct Subject {
    s: Scratch,
    content: Vec<u8>,
    g: Geometry,
    tree: Option<PathBuf>,
    label: String,
}

impl Subject {
    fn new(size: u64, alg: &str, digest: u64, block: u64) -> Self {
        let s = scratch_with_store();
        let content = data(size as usize, size ^ block);
        s.write("f", &content);
        s.enable(
            &["f"],
            &["--hash-alg", alg, "--block-size", &block.to_string()],
        );
        let g = Geometry::new(size, block, digest);
        let tree = (g.tree_size() > 0).then(|| only_tree_file(&s, g.tree_size()));
        let label = format!("{alg}/{block}/{size}");
        Self {
            s,
            content,
            g,
            tree,
            label,
        }
    }

    fn tree(&self) -> &PathBuf {
        self.tree.as_ref().expect("file has a tree")
    }

    /// Mounts afresh and checks that exactly `bad` pages fail. Returns the log.
    #[track_caller]
    fn expect_bad(&self, case: &str, bad: &BTreeSet<u64>) -> String {
        let m = self.s.mount(&[]);
        let failed = failing_pages(&m.p("f"), &self.content);
        assert_eq!(
            &failed, bad,
            "{} {case}: pages failing with EIO (left) vs affected pages (right)",
            self.label
        );
        m.log()
    }
}

fn pages(range: std::ops::Range<u64>) -> BTreeSet<u64> {
    range.collect()
}

#[test]
fn a_flipped_data_byte_fails_exactly_the_pages_of_its_block() {
    require_fuse!();
    // 4 KiB blocks: one page per block; the last block is partial.
    let t = Subject::new(300 * 4096 + 1000, "sha256", 32, 4096);
    let last = t.g.size - 1;
    for (what, offset, bad) in [
        ("first block", 0, pages(0..1)),
        ("middle block", 150 * 4096 + 1234, pages(150..151)),
        ("last, partial block", last, pages(300..301)),
    ] {
        flip_byte(&t.s.b("f"), offset);
        let log = strip_ansi(&t.expect_bad(what, &bad));
        assert!(log.contains("FILE CORRUPTED"), "{what}: log: {log}");
        let pos = format!("offset={} ", offset / 4096 * 4096);
        assert!(
            log.contains(&pos) && log.contains("level=-1 "),
            "{what}: log names {pos}, level -1: {log}"
        );
        flip_byte(&t.s.b("f"), offset);
    }
    // Nothing damaged: nothing fails (the flips were undone).
    t.expect_bad("restored", &BTreeSet::new());

    // 1 KiB blocks: a bad block poisons only the page that holds it.
    let t = Subject::new(100 * 1024 + 10, "sha512", 64, 1024);
    flip_byte(&t.s.b("f"), 13 * 1024 + 5);
    t.expect_bad("1 KiB block 13", &pages(3..4));
    flip_byte(&t.s.b("f"), 13 * 1024 + 5);
    flip_byte(&t.s.b("f"), t.g.size - 1);
    t.expect_bad("1 KiB last block", &pages(25..26));

    // 64 KiB blocks: a bad block fails all 16 pages it spans, and only those.
    let t = Subject::new(5 * 65536 + 100, "blake3", 32, 65536);
    flip_byte(&t.s.b("f"), 2 * 65536 + 40_000);
    t.expect_bad("64 KiB block 2", &pages(32..48));
    flip_byte(&t.s.b("f"), 2 * 65536 + 40_000);
    flip_byte(&t.s.b("f"), 5 * 65536 + 99);
    t.expect_bad("64 KiB last block", &pages(80..81));

    // Files of one block have no tree: the root hash is the block's hash.
    let t = Subject::new(1, "sha256", 32, 4096);
    flip_byte(&t.s.b("f"), 0);
    t.expect_bad("one-byte file", &pages(0..1));
    // An empty file has nothing to damage, and bytes appended to it stay invisible.
    let t = Subject::new(0, "sha256", 32, 4096);
    fs::write(t.s.b("f"), b"appended").expect("append to empty");
    t.expect_bad("empty file with bytes appended", &BTreeSet::new());
    let m = t.s.mount(&[]);
    assert_eq!(fs::metadata(m.p("f")).expect("stat").len(), 0);
    assert!(fs::read(m.p("f")).expect("read").is_empty());
}

#[test]
fn a_damaged_tree_block_fails_only_the_data_it_covers() {
    require_fuse!();
    let subjects = [
        // Two levels: 3 level-0 blocks under one root block.
        Subject::new(300 * 4096 + 1000, "sha256", 32, 4096),
        // Three levels: 35 + 2 + 1 blocks.
        Subject::new(1100 * 1024, "sha256", 32, 1024),
        // Three levels with 16 hashes per block: 19 + 2 + 1 blocks.
        Subject::new(300 * 1024 + 7, "sha512", 64, 1024),
        // One level of one block over 5 data blocks of 64 KiB.
        Subject::new(5 * 65536 + 100, "blake3", 32, 65536),
    ];
    for t in &subjects {
        for level in 0..t.g.levels.len() {
            let count = t.g.levels[level];
            let mut indices = vec![0, count - 1];
            indices.dedup();
            for index in indices {
                // A byte inside the first hash of the block.
                let offset = t.g.tree_offset(level, index) + 5;
                flip_byte(t.tree(), offset);
                let bad = t.g.pages_of(t.g.covered(level, index));
                let case = format!("level {level} block {index} (hash bytes)");
                let log = strip_ansi(&t.expect_bad(&case, &bad));
                assert!(log.contains("FILE CORRUPTED"), "{case}: log: {log}");
                assert!(
                    log.contains(&format!("level={level} ")),
                    "{case}: log names the level: {log}"
                );
                flip_byte(t.tree(), offset);
            }
        }
        // The zero padding after the last hash of the last level-0 block is
        // hashed too: damage there fails the data that block covers.
        let last = t.g.levels[0] - 1;
        let used = (t.g.data_blocks() - last * t.g.fanout()) * t.g.digest;
        if used < t.g.block {
            let offset = t.g.tree_offset(0, last) + t.g.block - 1;
            flip_byte(t.tree(), offset);
            let bad = t.g.pages_of(t.g.covered(0, last));
            t.expect_bad("padding of the last level-0 block", &bad);
            flip_byte(t.tree(), offset);
        }
        t.expect_bad("tree restored", &BTreeSet::new());
    }
}

#[test]
fn the_root_level_covers_everything() {
    require_fuse!();
    let t = Subject::new(1100 * 1024, "sha256", 32, 1024);
    let root_level = t.g.levels.len() - 1;
    assert_eq!(
        t.g.tree_offset(root_level, 0),
        0,
        "root level is stored first"
    );
    flip_byte(t.tree(), 100);
    t.expect_bad("root block", &t.g.all_pages());
}

/// Writes `value` as the backing file's verity metadata.
fn set_metadata(t: &Subject, value: &[u8]) {
    rustix::fs::setxattr(
        t.s.b("f"),
        "user.fsverity-fuse",
        value,
        rustix::fs::XattrFlags::REPLACE,
    )
    .expect("set metadata xattr");
}

/// Opens a file and reads all of it.
fn open_and_read(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut File::open(path)?, &mut v)?;
    Ok(v)
}

fn metadata(t: &Subject) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::getxattr(t.s.b("f"), "user.fsverity-fuse", &mut buf[..])
        .expect("get metadata xattr");
    buf.truncate(n);
    buf
}

/// Sets `value` as the metadata of `t`'s file and checks that reading the file
/// through a fresh mount fails with EIO: an invalid descriptor fails the open;
/// a valid one that does not match the data (size, root hash) fails the reads
/// (its tree cannot be found, and one rebuilt from the data is refused).
#[track_caller]
fn expect_eio_with_metadata(t: &Subject, what: &str, value: &[u8]) {
    set_metadata(t, value);
    let m = t.s.mount(&[]);
    let err = open_and_read(&m.p("f")).expect_err(what);
    assert_eq!(errno(&err), libc::EIO, "{what}: {err}");
}

/// [`expect_eio_with_metadata`] for `good` with each (what, offset, value)
/// edit of `edits` applied.
#[track_caller]
fn expect_eio_with_each_edit(t: &Subject, form: &str, good: &[u8], edits: &[(&str, usize, u8)]) {
    for &(what, offset, value) in edits {
        let mut bad = good.to_vec();
        bad[offset] = value;
        expect_eio_with_metadata(t, &format!("{form} {what}"), &bad);
    }
}

#[test]
fn a_damaged_descriptor_makes_open_fail_with_eio() {
    require_fuse!();
    let Some(fsv) = Fsverity::find() else { return };
    let t = Subject::new(300 * 4096 + 1000, "sha256", 32, 4096);

    // What `enable` writes: the compact descriptor (docs/FORMAT.md), 44 bytes.
    let compact = metadata(&t);
    assert_eq!(
        compact.len(),
        44,
        "compact SHA-256 descriptor, no signature"
    );
    let edits: [(&str, usize, u8); 7] = [
        ("tag (compact -> full version 1)", 0, 1),
        ("tag (unknown)", 0, 0x82),
        ("hash algorithm (sha256 -> sha512)", 1, 2),
        ("log block size (4096 -> 1024)", 2, 10),
        ("salt size", 3, 1),
        ("data size", 4, compact[4] ^ 1),
        ("root hash", 12, compact[12] ^ 0x80),
    ];
    expect_eio_with_each_edit(&t, "compact", &compact, &edits);
    for (what, value) in [("truncated", &compact[..30]), ("empty", &compact[..0])] {
        expect_eio_with_metadata(&t, &format!("compact {what}"), value);
    }

    // The kernel's full 256-byte descriptor, as fsverity-utils writes it
    // (`fsverity digest --out-descriptor`), is read as well.
    let out = t.s.dir.path().join("descriptor");
    let opt = format!("--out-descriptor={}", out.display());
    fsv.digest(&[&opt], &t.s.b("f"));
    let full = fs::read(&out).expect("read the descriptor fsverity-utils wrote");
    assert_eq!(full.len(), 256);
    set_metadata(&t, &full);
    t.expect_bad("full descriptor from fsverity-utils", &BTreeSet::new());
    // Offsets from struct fsverity_descriptor: version, hash_algorithm,
    // log_blocksize, salt_size, reserved, data_size, root_hash, reserved.
    let edits: [(&str, usize, u8); 8] = [
        ("version", 0, 2),
        ("hash algorithm (sha256 -> sha512)", 1, 2),
        ("log block size (4096 -> 1024)", 2, 10),
        ("salt size", 3, 1),
        ("reserved word", 4, 1),
        ("data size", 8, full[8] ^ 1),
        ("root hash", 16, full[16] ^ 0x80),
        ("reserved tail", 255, 1),
    ];
    expect_eio_with_each_edit(&t, "full", &full, &edits);
    expect_eio_with_metadata(&t, "full truncated", &full[..100]);
    set_metadata(&t, &compact);
    t.expect_bad("descriptor restored", &BTreeSet::new());
}

#[test]
fn without_its_xattr_a_file_is_plain_again() {
    // Expected, documented behaviour: the xattr is what makes a file verity.
    // Removing it is a change to the backing directory a verifier cannot see
    // from inside; protection against it needs --require-verity or a digest
    // checked by the consumer.
    require_fuse!();
    let t = Subject::new(20_000, "sha256", 32, 4096);
    flip_byte(&t.s.b("f"), 10);
    rustix::fs::removexattr(t.s.b("f"), "user.fsverity-fuse").expect("remove xattr");
    let m = t.s.mount(&[]);
    let mut expected = t.content.clone();
    expected[10] ^= 1;
    assert!(fs::read(m.p("f")).expect("plain read") == expected);
    OpenOptions::new()
        .write(true)
        .open(m.p("f"))
        .expect("plain files open for writing");
}

#[test]
fn a_truncated_or_extended_backing_file_fails_only_where_the_data_changed() {
    require_fuse!();
    let size: u64 = 300 * 4096 + 1000;
    let t = Subject::new(size, "sha256", 32, 4096);
    let all = t.g.all_pages();
    let cases: [(&str, u64, BTreeSet<u64>); 4] = [
        ("cut inside page 299", size - 5000, pages(299..301)),
        ("cut at page 100", 100 * PAGE, pages(100..301)),
        ("cut to empty", 0, all.clone()),
        ("extended with zeros", size + 10_000, BTreeSet::new()),
    ];
    for (what, new_len, bad) in cases {
        fs::write(t.s.b("f"), &t.content).expect("restore content");
        OpenOptions::new()
            .write(true)
            .open(t.s.b("f"))
            .and_then(|f| f.set_len(new_len))
            .expect("resize");
        let m = t.s.mount(&[]);
        assert_eq!(
            fs::metadata(m.p("f")).expect("stat").len(),
            size,
            "{what}: size is the verified size"
        );
        drop(m);
        t.expect_bad(what, &bad);
    }
    // Bytes appended after a partial last block land in its zero padding, which is
    // hashed: that block fails, nothing else does, and the extra bytes are
    // never visible.
    fs::write(t.s.b("f"), &t.content).expect("restore content");
    OpenOptions::new()
        .append(true)
        .open(t.s.b("f"))
        .and_then(|mut f| f.write_all(b"appended"))
        .expect("append");
    t.expect_bad("garbage appended after a partial block", &pages(300..301));

    // After a file that ends on a block boundary, appended bytes touch no block.
    let t = Subject::new(64 * 4096, "sha256", 32, 4096);
    OpenOptions::new()
        .append(true)
        .open(t.s.b("f"))
        .and_then(|mut f| f.write_all(&[0xff; 5000]))
        .expect("append");
    t.expect_bad("garbage appended after the last block", &BTreeSet::new());
}

#[test]
fn a_lost_tree_is_rebuilt_only_from_matching_data() {
    require_fuse!();
    let t = Subject::new(300 * 4096 + 1000, "sha256", 32, 4096);
    let tree = t.tree().clone();
    // Missing tree: rebuilt from the data (which matches the descriptor).
    fs::remove_file(&tree).expect("remove tree");
    t.expect_bad("tree removed", &BTreeSet::new());
    assert_eq!(
        fs::metadata(&tree)
            .expect("rebuilt tree is stored again")
            .len(),
        t.g.tree_size()
    );
    // A tree of the wrong size is not used either.
    OpenOptions::new()
        .write(true)
        .open(&tree)
        .and_then(|f| f.set_len(4096))
        .expect("shorten tree");
    t.expect_bad("tree shortened", &BTreeSet::new());
    // Missing tree and tampered data: no tree can be trusted, the reads fail.
    fs::remove_file(&tree).expect("remove tree");
    flip_byte(&t.s.b("f"), 7);
    let m = t.s.mount(&[]);
    let err = open_and_read(&m.p("f")).expect_err("rebuilt root cannot match");
    assert_eq!(errno(&err), libc::EIO, "{err}");
    drop(m);
    assert!(
        !tree.exists(),
        "a tree that does not match must not be stored"
    );
}

#[test]
fn a_small_files_tree_comes_from_its_data_when_that_matches_else_from_the_store() {
    // A file of at most 128 KiB with a one-block tree gets that tree from its own
    // data at first open (cheaper than one more inode and block); only when the
    // data no longer matches is the stored tree read, so that exactly the
    // changed blocks fail, as with the kernel.
    require_fuse!();
    let t = Subject::new(10 * 4096 + 100, "sha256", 32, 4096);
    let stored = fs::read(t.tree()).expect("read the stored tree");
    flip_byte(t.tree(), 5);
    t.expect_bad("stored tree damaged, data intact", &BTreeSet::new());
    fs::remove_file(t.tree()).expect("remove tree");
    let log = t.expect_bad("stored tree missing, data intact", &BTreeSet::new());
    assert!(
        !t.tree().exists(),
        "nothing was lost, nothing is written back"
    );
    assert!(!log.contains("rebuilding"), "not a rebuild: {log}");
    fs::write(t.tree(), &stored).expect("restore tree");
    flip_byte(&t.s.b("f"), 4 * 4096 + 17);
    t.expect_bad("data block changed, stored tree intact", &pages(4..5));
    // Changed data and a damaged stored tree: the data that block covers fails.
    flip_byte(t.tree(), 5);
    t.expect_bad("data changed and tree damaged", &t.g.all_pages());
}

#[test]
fn metadata_removed_or_replaced_while_mounted_fails_with_eio() {
    // Once the mount has seen a file as verity it stays verity with the same
    // digest for the life of the mount, as with the kernel: stripping or swapping
    // the xattr behind its back does not turn verification off.
    require_fuse!();
    let t = Subject::new(50_000, "sha256", 32, 4096);
    let m = t.s.mount(&[]);
    assert!(fs::read(m.p("f")).expect("verified read") == t.content);
    let good = metadata(&t);
    rustix::fs::removexattr(t.s.b("f"), "user.fsverity-fuse").expect("remove xattr");
    let err = File::open(m.p("f")).expect_err("xattr removed while mounted");
    assert_eq!(errno(&err), libc::EIO, "{err}");
    // A different, valid descriptor (the file re-enabled with a salt).
    t.s.enable(&["f"], &["--salt", "01"]);
    assert_ne!(metadata(&t), good);
    let err = File::open(m.p("f")).expect_err("xattr replaced while mounted");
    assert_eq!(errno(&err), libc::EIO, "{err}");
}
