//! What the mount tests share besides the mount itself: deterministic data,
//! reads that name their errno, a block-by-block (4 KiB page) scan of a file, the
//! Merkle tree geometry derived here from the kernel documentation (not from the
//! crate under test), and small tampering helpers for backing files.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::harness::Scratch;

/// The kernel's page size on this machine: the unit of FUSE reads and of EIO.
pub const PAGE: u64 = 4096;

/// `len` deterministic bytes (see [`crate::util::random_bytes`]), so every
/// block of a test file is distinct (a misplaced block cannot compare equal).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    crate::util::random_bytes(len, seed)
}

/// The errno of an I/O error (0 if it has none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Reads up to `len` bytes at `offset` with pread, looping over short reads until
/// `len` bytes or end of file.
pub fn pread(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// The bytes of `expected` that a read of `len` at `offset` must return.
pub fn slice_at(expected: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = (offset as usize).min(expected.len());
    let end = start.saturating_add(len).min(expected.len());
    &expected[start..end]
}

/// Reads every 4 KiB page of `path` with its own pread and returns the pages that
/// failed. Every page that succeeds must equal `expected`, every failure must be
/// EIO, and a read at the end must return nothing.
#[track_caller]
pub fn failing_pages(path: &Path, expected: &[u8]) -> BTreeSet<u64> {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let pages = (expected.len() as u64).div_ceil(PAGE);
    let mut bad = BTreeSet::new();
    for page in 0..pages {
        let offset = page * PAGE;
        match pread(&file, offset, PAGE as usize) {
            Ok(got) => assert!(
                got == slice_at(expected, offset, PAGE as usize),
                "{}: page {page} read without error but with wrong bytes ({} bytes)",
                path.display(),
                got.len()
            ),
            Err(e) => {
                assert_eq!(errno(&e), libc::EIO, "{}: page {page}: {e}", path.display());
                bad.insert(page);
            }
        }
    }
    let tail = pread(&file, expected.len() as u64, 100).expect("read at end of file");
    assert!(tail.is_empty(), "{}: bytes past the end", path.display());
    bad
}

/// Shape of an fs-verity Merkle tree, from the kernel's
/// Documentation/filesystems/fsverity.rst ("Merkle tree"): data cut into blocks,
/// each level the hashes of the level below packed into blocks, until one block;
/// serialized root level first. Written here independently of `src/format`.
#[derive(Clone, Debug)]
pub struct Geometry {
    /// Data size.
    pub size: u64,
    /// Merkle tree block size.
    pub block: u64,
    /// Digest size of the hash algorithm.
    pub digest: u64,
    /// Blocks per level, level 0 (hashes of data blocks) first.
    pub levels: Vec<u64>,
}

impl Geometry {
    /// The tree over `size` bytes.
    pub fn new(size: u64, block: u64, digest: u64) -> Self {
        let mut levels = Vec::new();
        let mut n = size.div_ceil(block);
        while n > 1 {
            n = n.div_ceil(block / digest);
            levels.push(n);
        }
        Self {
            size,
            block,
            digest,
            levels,
        }
    }

    /// Hashes per tree block.
    pub fn fanout(&self) -> u64 {
        self.block / self.digest
    }

    /// Number of data blocks.
    pub fn data_blocks(&self) -> u64 {
        self.size.div_ceil(self.block)
    }

    /// Size of the serialized tree.
    pub fn tree_size(&self) -> u64 {
        self.levels.iter().sum::<u64>() * self.block
    }

    /// Offset in the serialized tree of block `index` of `level` (root level first).
    pub fn tree_offset(&self, level: usize, index: u64) -> u64 {
        assert!(
            index < self.levels[level],
            "level {level} has no block {index}"
        );
        let before: u64 = self.levels[level + 1..].iter().sum();
        (before + index) * self.block
    }

    /// The data blocks whose verification goes through block `index` of `level`.
    pub fn covered(&self, level: usize, index: u64) -> Range<u64> {
        let span = self.fanout().pow(level as u32 + 1);
        index * span..((index + 1) * span).min(self.data_blocks())
    }

    /// The 4 KiB pages that hold bytes of data blocks `blocks`.
    pub fn pages_of(&self, blocks: Range<u64>) -> BTreeSet<u64> {
        let start = blocks.start * self.block;
        let end = (blocks.end * self.block).min(self.size);
        (start / PAGE..end.div_ceil(PAGE)).collect()
    }

    /// Every page of the file.
    pub fn all_pages(&self) -> BTreeSet<u64> {
        (0..self.size.div_ceil(PAGE)).collect()
    }
}

/// Every tree file in the scratch's default store (`backing/.fsverity-fuse`).
pub fn tree_files(s: &Scratch) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(fanout) = fs::read_dir(s.b(".fsverity-fuse")) else {
        return out;
    };
    for dir in fanout.flatten() {
        if dir.path().is_dir() {
            for f in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// The one tree file of the scratch's store, which must be `size` bytes long.
#[track_caller]
pub fn only_tree_file(s: &Scratch, size: u64) -> PathBuf {
    let trees = tree_files(s);
    assert_eq!(trees.len(), 1, "expected one tree in the store: {trees:?}");
    let len = fs::metadata(&trees[0]).expect("stat tree").len();
    assert_eq!(len, size, "tree file {} size", trees[0].display());
    trees[0].clone()
}

/// Flips the low bit of the byte at `offset` of `path` (which must exist).
#[track_caller]
pub fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for tampering: {e}", path.display()));
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset)
        .unwrap_or_else(|e| panic!("read {} at {offset}: {e}", path.display()));
    f.write_all_at(&[b[0] ^ 1], offset).expect("tamper");
}

/// A scratch directory whose backing directory has a tree store, so `enable`
/// writes trees there (instead of looking further up the directory tree).
pub fn scratch_with_store() -> Scratch {
    let s = Scratch::new();
    fs::create_dir(s.b(".fsverity-fuse")).expect("create tree store");
    s
}

/// `log` without ANSI colour sequences (`ESC [ ... m`), so fields can be matched.
pub fn strip_ansi(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
