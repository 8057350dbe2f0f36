//! Streaming Merkle tree construction.
//!
//! Data is read in chunks and hashed block by block (on several threads for large
//! files); each level keeps only the one tree block it is filling, and every
//! completed tree block goes straight to a [`TreeSink`] at its final offset
//! (root level first, as the kernel lays it out). Memory stays bounded by the chunk
//! buffers, whatever the file size. Holes of sparse files are recognised and hashed
//! as the zero blocks they read as, without reading them.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::source::{DataSource, read_full};
use crate::format::{BlockHasher, Descriptor, HashValue, TreeGeometry, TreeParams};

/// Bytes of data each work item reads and hashes.
const CHUNK_SIZE: usize = 1 << 20;
/// Upper bound on hashing threads.
const MAX_THREADS: usize = 64;
/// Files smaller than this are hashed on the calling thread only.
const PARALLEL_THRESHOLD: u64 = 4 * CHUNK_SIZE as u64;

/// Receives each completed tree block at its offset in the serialized tree.
pub trait TreeSink {
    /// Stores `block` at byte `offset` of the serialized tree.
    fn write_block(&mut self, offset: u64, block: &[u8]) -> io::Result<()>;
}

/// A sink that discards the tree (when only the digest is wanted).
#[derive(Debug, Default)]
pub struct NullSink;

impl TreeSink for NullSink {
    fn write_block(&mut self, _offset: u64, _block: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that collects the whole tree in memory (tests and small files).
#[derive(Debug, Default)]
pub struct VecSink(pub Vec<u8>);

impl TreeSink for VecSink {
    fn write_block(&mut self, offset: u64, block: &[u8]) -> io::Result<()> {
        let end = offset as usize + block.len();
        if self.0.len() < end {
            self.0.resize(end, 0);
        }
        self.0[offset as usize..end].copy_from_slice(block);
        Ok(())
    }
}

impl TreeSink for std::fs::File {
    fn write_block(&mut self, offset: u64, block: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, block, offset)
    }
}

/// How a build went wrong.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading the data or writing the tree failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// No tree can be built over data of this size with these parameters.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    /// The data ended before the size the build started with.
    #[error("file shrank while it was being hashed (expected {expected} bytes, read {found})")]
    Shrank {
        /// Size at the start.
        expected: u64,
        /// Bytes actually available.
        found: u64,
    },
}

/// Options of a build.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildOptions {
    /// Worker threads for hashing data; 0 means every core.
    pub threads: usize,
}

/// Builds the tree over `source` (its whole current length), streaming tree
/// blocks into `sink`, and returns the descriptor.
pub fn build_tree(
    source: &dyn DataSource, params: &TreeParams, sink: &mut dyn TreeSink, options: BuildOptions,
) -> Result<Descriptor, BuildError> {
    let data_size = source.size()?;
    let geometry = TreeGeometry::new(
        data_size,
        params.log_block_size(),
        params.algorithm().digest_size(),
    )?;
    let hasher = BlockHasher::new(params.algorithm(), params.salt());
    let mut levels = LevelWriter::new(&geometry, &hasher, sink);

    let bs = geometry.block_size();
    let zero_hash = hasher.hash(&vec![0u8; bs]);
    let chunks = data_size.div_ceil(CHUNK_SIZE as u64);
    let read = AtomicU64::new(0);
    let hash_chunk = |index: u64, buf: &mut Vec<u8>| -> Result<Vec<u8>, BuildError> {
        let start = index * CHUNK_SIZE as u64;
        let len = (data_size - start).min(CHUNK_SIZE as u64) as usize;
        let blocks = len.div_ceil(bs);
        let mut hashes = vec![0u8; blocks * geometry.digest_size()];
        if source.is_hole(start, start + len as u64) {
            for h in hashes.chunks_exact_mut(geometry.digest_size()) {
                h.copy_from_slice(zero_hash.as_bytes());
            }
        } else {
            buf.resize(blocks * bs, 0);
            let got = read_full(source, &mut buf[..len], start)?;
            if got < len {
                return Err(BuildError::Shrank {
                    expected: data_size,
                    found: start + got as u64,
                });
            }
            buf[len..].fill(0);
            hasher.hash_blocks(&buf[..blocks * bs], bs, &mut hashes);
        }
        read.fetch_add(len as u64, Ordering::Relaxed);
        Ok(hashes)
    };

    if data_size < PARALLEL_THRESHOLD || options.threads == 1 {
        let mut buf = Vec::with_capacity(CHUNK_SIZE);
        for index in 0..chunks {
            levels.push_leaf_hashes(&hash_chunk(index, &mut buf)?)?;
        }
    } else {
        // More threads than chunks (or than is ever useful) only costs.
        let threads = match options.threads {
            0 => 0,
            n => n.min(chunks as usize).min(MAX_THREADS),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("fsverity-hash-{i}"))
            .build()
            .map_err(|e| io::Error::other(e.to_string()))?;
        // Batches bound the memory in flight: a few chunks per thread.
        let batch = (pool.current_num_threads() * 4) as u64;
        let mut first = 0;
        while first < chunks {
            let last = (first + batch).min(chunks);
            let results: Vec<Result<Vec<u8>, BuildError>> = pool.install(|| {
                (first..last)
                    .into_par_iter()
                    .map_init(
                        || Vec::with_capacity(CHUNK_SIZE),
                        |buf, i| hash_chunk(i, buf),
                    )
                    .collect()
            });
            for hashes in results {
                levels.push_leaf_hashes(&hashes?)?;
            }
            first = last;
        }
    }
    let root = levels.finish()?;
    Ok(Descriptor::new(params.clone(), data_size, root))
}

/// The partially filled block of every tree level.
struct LevelWriter<'a> {
    geometry: &'a TreeGeometry,
    hasher: &'a BlockHasher,
    sink: &'a mut dyn TreeSink,
    /// Per level: the block being filled, bytes used in it, blocks completed.
    pending: Vec<(Vec<u8>, usize, u64)>,
    /// The root hash, once the top block (or the single data block) is hashed.
    root: Option<HashValue>,
}

impl<'a> LevelWriter<'a> {
    fn new(
        geometry: &'a TreeGeometry, hasher: &'a BlockHasher, sink: &'a mut dyn TreeSink,
    ) -> Self {
        let pending = (0..geometry.num_levels())
            .map(|_| (vec![0u8; geometry.block_size()], 0, 0))
            .collect();
        Self {
            geometry,
            hasher,
            sink,
            pending,
            root: None,
        }
    }

    fn push_leaf_hashes(&mut self, hashes: &[u8]) -> io::Result<()> {
        if self.pending.is_empty() {
            // At most one data block: its hash is the root.
            self.root = Some(HashValue::from_slice(hashes));
            return Ok(());
        }
        for hash in hashes.chunks_exact(self.geometry.digest_size()) {
            self.push(0, hash)?;
        }
        Ok(())
    }

    fn push(&mut self, level: usize, hash: &[u8]) -> io::Result<()> {
        let (block, used, _) = &mut self.pending[level];
        block[*used..*used + hash.len()].copy_from_slice(hash);
        *used += hash.len();
        if *used + hash.len() > block.len() {
            self.complete(level)?;
        }
        Ok(())
    }

    /// Zero-pads, stores and hashes the pending block of `level` into `level + 1`
    /// (or into the root for the top level).
    fn complete(&mut self, level: usize) -> io::Result<()> {
        let (block, used, index) = &mut self.pending[level];
        block[*used..].fill(0);
        let offset = self.geometry.tree_offset(level, *index);
        self.sink.write_block(offset, block)?;
        let hash = self.hasher.hash(block);
        *used = 0;
        *index += 1;
        if level + 1 < self.pending.len() {
            self.push(level + 1, hash.as_bytes())
        } else {
            self.root = Some(hash);
            Ok(())
        }
    }

    fn finish(mut self) -> io::Result<HashValue> {
        if self.geometry.data_size() == 0 {
            return Ok(HashValue::zeroed(self.geometry.digest_size()));
        }
        for level in 0..self.pending.len() {
            if self.pending[level].1 > 0 {
                self.complete(level)?;
            }
            if self.pending[level].2 != self.geometry.level_blocks(level) {
                return Err(io::Error::other(format!(
                    "tree level {level} has {} blocks, expected {}",
                    self.pending[level].2,
                    self.geometry.level_blocks(level)
                )));
            }
        }
        self.root
            .ok_or_else(|| io::Error::other("no data block was hashed"))
    }
}
