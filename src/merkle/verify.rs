//! Block verification: data blocks against the tree, tree blocks up to the root.
//!
//! Kernel: fs/verity/verify.c. A data block is hashed and compared with its slot in
//! a level-0 tree block; that tree block must itself be verified, through its
//! ancestors, up to the root hash in the descriptor. Verified tree blocks are kept
//! in a [`BlockCache`], so the walk usually stops at the first level.
//!
//! The read path can only hand out [`VerifiedBytes`], which only
//! [`Verifier::read_verified`] constructs, after checking the very buffer it wraps.

use std::io;
use std::sync::Arc;

use super::cache::{BlockCache, BlockKey};
use super::source::{DataSource, TreeSource, read_full};

use crate::format::{BlockHasher, Descriptor, HashValue, TreeGeometry};

/// Bytes of a verity file that were checked against the tree in this very buffer.
#[derive(Debug)]
pub struct VerifiedBytes {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl VerifiedBytes {
    /// The verified bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Number of verified bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True if empty (a read at or past the end of the file).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl Drop for VerifiedBytes {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.buf));
    }
}

/// Reads of at least this many blocks are read and hashed on several cores
/// (128 KiB of 4 KiB blocks: the kernel's default request size).
const PARALLEL_MIN_BLOCKS: usize = 32;

/// Smallest part of a parallel read, in blocks: one group of the multi-buffer
/// hash (`crate::sys`), so each part keeps its lanes full.
const PARALLEL_MIN_PART: usize = 16;

fn data_err(source: io::Error) -> VerifyError {
    VerifyError::Io {
        what: "data",
        source,
    }
}

/// Largest read buffer kept for reuse (the largest FUSE read is 1 MiB, plus a
/// partial block on each side).
const MAX_SPARE: usize = (1 << 20) + 2 * (1 << 16);

thread_local! {
    /// Read buffers of this request thread, kept between requests: a fresh
    /// megabyte per read costs page faults and zeroing on every request.
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer of at least `len` bytes; its content is stale and must be overwritten.
fn take_buffer(len: usize) -> Vec<u8> {
    let mut buf = SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0);
    }
    buf
}

fn give_back(buf: Vec<u8>) {
    if (1..=MAX_SPARE).contains(&buf.len()) {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < 2 {
                s.push(buf);
            }
        });
    }
}

impl std::ops::Deref for VerifiedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Why a read could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading data or tree failed.
    #[error("I/O error reading {what}: {source}")]
    Io {
        /// "data" or "Merkle tree".
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A data or tree block does not hash to the value its parent holds.
    #[error("{0}")]
    Mismatch(Box<Corruption>),
    /// The backing data ends before the size the descriptor records.
    #[error("data truncated: block at pos={pos} is missing bytes (descriptor size {data_size})")]
    Truncated {
        /// Offset of the incomplete block.
        pos: u64,
        /// Size the descriptor records.
        data_size: u64,
    },
    /// The backing file holds non-zero bytes past the recorded size, where the
    /// last block must be zero padding.
    #[error("data past the recorded size (descriptor size {data_size}) is not zero padding")]
    TrailingData {
        /// Size the descriptor records.
        data_size: u64,
    },
    /// The Merkle tree ends early.
    #[error("Merkle tree truncated at offset {offset}")]
    TreeTruncated {
        /// Offset in the tree.
        offset: u64,
    },
}

/// Where and how a block failed to verify (the kernel's "FILE CORRUPTED!" line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "FILE CORRUPTED! pos={pos}, level={level}, want_hash={algorithm}:{expected}, real_hash={algorithm}:{actual}"
)]
pub struct Corruption {
    /// Offset in the file of the data block being read.
    pub pos: u64,
    /// -1 for a data block, else the tree level of the bad block (0 = lowest).
    pub level: i32,
    /// Algorithm name.
    pub algorithm: &'static str,
    /// Hash the parent (or the descriptor) holds.
    pub expected: HashValue,
    /// Hash of the block as read.
    pub actual: HashValue,
}

/// Counters of one [`Verifier::read_verified`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Data blocks hashed and checked.
    pub blocks_verified: u64,
    /// Parts the read was split into, each read and hashed on its own core
    /// (1: read and hashed on the calling thread).
    pub parts: u64,
}

/// Verifies reads of one file against its descriptor and tree.
pub struct Verifier {
    descriptor: Descriptor,
    geometry: TreeGeometry,
    hasher: BlockHasher,
    digest: HashValue,
    tree: Arc<dyn TreeSource>,
    cache: Arc<BlockCache>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for a file with `descriptor` whose serialized tree is `tree`.
    pub fn new(descriptor: Descriptor, tree: Arc<dyn TreeSource>, cache: Arc<BlockCache>) -> Self {
        let geometry = descriptor.geometry();
        let hasher = BlockHasher::new(descriptor.algorithm(), descriptor.params().salt());
        let digest = descriptor.digest();
        Self {
            descriptor,
            geometry,
            hasher,
            digest,
            tree,
            cache,
        }
    }

    /// The descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The file digest.
    pub fn digest(&self) -> &HashValue {
        &self.digest
    }

    /// Reads `len` bytes at `offset` from `data`, verifying every block that covers
    /// them in the buffer that is returned. Reads past the end are shortened.
    pub fn read_verified(
        &self, data: &dyn DataSource, offset: u64, len: usize,
    ) -> Result<(VerifiedBytes, ReadStats), VerifyError> {
        let size = self.geometry.data_size();
        let end = offset.saturating_add(len as u64).min(size);
        if offset >= end {
            let empty = VerifiedBytes {
                buf: Vec::new(),
                start: 0,
                end: 0,
            };
            return Ok((empty, ReadStats::default()));
        }
        let bs = self.geometry.block_size();
        let first = offset / bs as u64;
        let last = end.div_ceil(bs as u64);
        let base = first * bs as u64;
        let want = ((last - first) as usize) * bs;
        let mut buf = take_buffer(want);
        let ds = self.geometry.digest_size();
        let mut hashes = vec![0u8; (last - first) as usize * ds];
        let parts = match self.parallel_part(want, base) {
            Some(part) => {
                self.read_hash_parallel(data, &mut buf[..want], base, &mut hashes, part)?;
                want.div_ceil(part * bs)
            }
            None => {
                self.read_blocks(data, &mut buf[..want], base, end)?;
                self.hasher.hash_blocks(&buf[..want], bs, &mut hashes);
                1
            }
        };
        if !self.covers_single_tree_block(first, last, &hashes) {
            self.check_hashes(first, &hashes)?;
        }
        let start = (offset - base) as usize;
        let stop = (end - base) as usize;
        let stats = ReadStats {
            blocks_verified: last - first,
            parts: parts as u64,
        };
        Ok((
            VerifiedBytes {
                buf,
                start,
                end: stop,
            },
            stats,
        ))
    }

    /// Reads the whole blocks of `region` at `base`, past the recorded size
    /// too, for a read that ends at `end`: bytes beyond the recorded size in
    /// the last block must be the zero padding.
    fn read_blocks(
        &self, data: &dyn DataSource, region: &mut [u8], base: u64, end: u64,
    ) -> Result<(), VerifyError> {
        let size = self.geometry.data_size();
        // One pread usually does: a short count at a regular file means its end,
        // and the rest of the blocks is then the zero padding. Only a count that
        // stops before the recorded size needs more reads to tell.
        let mut got = data.read_at(region, base).map_err(data_err)?;
        if base + (got as u64) < end {
            got += read_full(data, &mut region[got..], base + got as u64).map_err(data_err)?;
        }
        if base + (got as u64) < end {
            return Err(VerifyError::Truncated {
                pos: base + got as u64,
                data_size: size,
            });
        }
        // Past the recorded size the last block is zero padding (the kernel
        // hashes it so: reads past i_size are zeros). Bytes there in the
        // backing file are damage, whatever the tree says: a forged descriptor
        // with a smaller size must not pass with a root over the whole block.
        let valid = usize::try_from(size - base).unwrap_or(usize::MAX).min(got);
        if region[valid..got].iter().any(|&b| b != 0) {
            return Err(VerifyError::TrailingData { data_size: size });
        }
        // The buffer may hold an earlier read: what the file did not fill is
        // the zero padding.
        region[got..].fill(0);
        Ok(())
    }

    /// Blocks per part when a read of `want` bytes at `base` is worth
    /// splitting over several cores: a large read (at least
    /// [`PARALLEL_MIN_BLOCKS`]) that lies wholly within the recorded size (the
    /// last block of a file, with its padding, takes the sequential path).
    /// Parts are whole groups of the multi-buffer hash.
    fn parallel_part(&self, want: usize, base: u64) -> Option<usize> {
        let blocks = want / self.geometry.block_size();
        let threads = rayon::current_num_threads().min(blocks / PARALLEL_MIN_PART);
        if blocks < PARALLEL_MIN_BLOCKS
            || threads < 2
            || base + want as u64 > self.geometry.data_size()
        {
            return None;
        }
        Some(blocks.div_ceil(threads).next_multiple_of(PARALLEL_MIN_PART))
    }

    /// Reads and hashes `region` (whole blocks at `base`, all within the
    /// recorded size) in parts of `part` blocks on the shared thread pool;
    /// each part reads its own range and hashes it into its own slots.
    fn read_hash_parallel(
        &self, data: &dyn DataSource, region: &mut [u8], base: u64, hashes: &mut [u8], part: usize,
    ) -> Result<(), VerifyError> {
        use rayon::prelude::*;
        let bs = self.geometry.block_size();
        let ds = self.geometry.digest_size();
        let results: Vec<Result<(), VerifyError>> = region
            .par_chunks_mut(part * bs)
            .zip(hashes.par_chunks_mut(part * ds))
            .enumerate()
            .map(|(i, (buf, out))| {
                let pos = base + (i * part * bs) as u64;
                self.read_blocks(data, buf, pos, pos + buf.len() as u64)?;
                self.hasher.hash_blocks(buf, bs, out);
                Ok(())
            })
            .collect();
        results.into_iter().collect()
    }

    /// A read of every data block of a file whose tree is one block: that block
    /// is exactly these hashes, zero-padded, and its hash must be the root. No
    /// tree I/O at all (small files, read whole, are the common case). On
    /// success the block is cached as verified, without its zero padding (a
    /// small file's hashes are a few hundred bytes of the 4 KiB block: cached
    /// whole, 20,000 small files would push the trees of large files, whose
    /// misses cost tree I/O, out of the cache); `false` sends the caller to
    /// the block-by-block check, which locates a failure.
    fn covers_single_tree_block(&self, first: u64, last: u64, hashes: &[u8]) -> bool {
        if self.geometry.num_levels() != 1 || first != 0 || last != self.geometry.data_blocks() {
            return false;
        }
        let mut block = vec![0u8; self.geometry.block_size()];
        block[..hashes.len()].copy_from_slice(hashes);
        if self.hasher.hash(&block) != *self.descriptor.root_hash() {
            return false;
        }
        let key = BlockKey {
            digest: self.digest,
            level: 0,
            index: 0,
        };
        // Lookups index only the hashes of existing data blocks.
        self.cache
            .insert_verified(key, Arc::from(&block[..hashes.len()]));
        true
    }

    /// Compares the hashes of data blocks `first..` with the tree.
    fn check_hashes(&self, first: u64, hashes: &[u8]) -> Result<(), VerifyError> {
        let ds = self.geometry.digest_size();
        let bs = self.geometry.block_size() as u64;
        let mut leaf: Option<(u64, Arc<[u8]>)> = None;
        for (i, actual) in hashes.chunks_exact(ds).enumerate() {
            let index = first + i as u64;
            let pos = index * bs;
            let expected = if self.geometry.num_levels() == 0 {
                *self.descriptor.root_hash()
            } else {
                let (tree_index, slot) = self.geometry.hash_location(index);
                let tree_block = match &leaf {
                    Some((idx, b)) if *idx == tree_index => b.clone(),
                    _ => {
                        let b = self.tree_block(0, tree_index, pos)?;
                        leaf = Some((tree_index, b.clone()));
                        b
                    }
                };
                HashValue::from_slice(&tree_block[slot..slot + ds])
            };
            if expected.as_bytes() != actual {
                return Err(self.mismatch(pos, -1, expected, HashValue::from_slice(actual)));
            }
        }
        Ok(())
    }

    /// Block `index` of tree `level`, verified up to the root (or a cached ancestor).
    fn tree_block(&self, level: usize, index: u64, pos: u64) -> Result<Arc<[u8]>, VerifyError> {
        let key = BlockKey {
            digest: self.digest,
            level: level as u8,
            index,
        };
        if let Some(block) = self.cache.get(&key) {
            return Ok(block);
        }
        let expected = if level + 1 == self.geometry.num_levels() {
            *self.descriptor.root_hash()
        } else {
            let (parent_index, slot) = self.geometry.hash_location(index);
            let parent = self.tree_block(level + 1, parent_index, pos)?;
            HashValue::from_slice(&parent[slot..slot + self.geometry.digest_size()])
        };
        let offset = self.geometry.tree_offset(level, index);
        let mut block = vec![0u8; self.geometry.block_size()];
        let got = self
            .tree
            .read_tree(&mut block, offset)
            .map_err(|source| VerifyError::Io {
                what: "Merkle tree",
                source,
            })?;
        if got < block.len() {
            return Err(VerifyError::TreeTruncated {
                offset: offset + got as u64,
            });
        }
        let actual = self.hasher.hash(&block);
        if actual != expected {
            return Err(self.mismatch(pos, level as i32, expected, actual));
        }
        let block: Arc<[u8]> = Arc::from(block);
        self.cache.insert_verified(key, block.clone());
        Ok(block)
    }

    fn mismatch(
        &self, pos: u64, level: i32, expected: HashValue, actual: HashValue,
    ) -> VerifyError {
        VerifyError::Mismatch(Box::new(Corruption {
            pos,
            level,
            algorithm: self.descriptor.algorithm().name(),
            expected,
            actual,
        }))
    }
}
