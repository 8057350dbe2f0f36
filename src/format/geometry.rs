//! Shape of a Merkle tree: how many levels, how many blocks each, where each
//! level lives in the serialized tree.
//!
//! Kernel: `fsverity_init_merkle_tree_params()` in fs/verity/open.c and the
//! "Merkle tree" section of Documentation/filesystems/fsverity.rst. Level 0 holds
//! the hashes of the data blocks; the last level has exactly one block, whose hash
//! is the root hash. The serialized tree stores the levels root first.

use super::FormatError;

/// The kernel's `FS_VERITY_MAX_LEVELS`: a file whose tree would be deeper cannot
/// be a verity file (the kernel's enable and open fail with EFBIG).
pub const MAX_LEVELS: usize = 8;

/// The geometry of the tree over `data_size` bytes with given block and digest sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeGeometry {
    data_size: u64,
    log_block_size: u8,
    digest_size: usize,
    /// Per level (0 = hashes of data blocks): number of blocks, first block in the tree.
    levels: Vec<Level>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Level {
    blocks: u64,
    start: u64,
}

impl TreeGeometry {
    /// Computes the geometry. Fails for sizes whose tree would need more than
    /// [`MAX_LEVELS`] levels or would not fit in a u64.
    pub fn new(
        data_size: u64, log_block_size: u8, digest_size: usize,
    ) -> Result<Self, FormatError> {
        let block_size = 1u64 << log_block_size;
        let hashes_per_block = block_size / digest_size as u64;
        let mut counts = Vec::new();
        let mut blocks = data_size.div_ceil(block_size);
        while blocks > 1 {
            if counts.len() == MAX_LEVELS {
                return Err(FormatError::TooManyLevels(data_size));
            }
            blocks = blocks.div_ceil(hashes_per_block);
            counts.push(blocks);
        }
        // Root level first in the serialized tree.
        let mut levels = vec![
            Level {
                blocks: 0,
                start: 0
            };
            counts.len()
        ];
        let mut start = 0u64;
        for (level, &blocks) in counts.iter().enumerate().rev() {
            levels[level] = Level { blocks, start };
            start = start
                .checked_add(blocks)
                .ok_or(FormatError::FileTooLarge(data_size))?;
        }
        start
            .checked_mul(block_size)
            .ok_or(FormatError::FileTooLarge(data_size))?;
        Ok(Self {
            data_size,
            log_block_size,
            digest_size,
            levels,
        })
    }

    /// Size of the data the tree covers.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        1 << self.log_block_size
    }

    /// log2 of the block size.
    pub fn log_block_size(&self) -> u8 {
        self.log_block_size
    }

    /// Digest size in bytes.
    pub fn digest_size(&self) -> usize {
        self.digest_size
    }

    /// How many digests one tree block holds.
    pub fn hashes_per_block(&self) -> usize {
        self.block_size() / self.digest_size
    }

    /// Number of data blocks (the last one possibly partial).
    pub fn data_blocks(&self) -> u64 {
        self.data_size.div_ceil(self.block_size() as u64)
    }

    /// Number of tree levels (0 for files of at most one block).
    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// Number of blocks in `level`.
    pub fn level_blocks(&self, level: usize) -> u64 {
        self.levels[level].blocks
    }

    /// Total size of the serialized tree in bytes.
    pub fn tree_size(&self) -> u64 {
        self.tree_blocks() << self.log_block_size
    }

    /// Total number of tree blocks.
    pub fn tree_blocks(&self) -> u64 {
        self.levels.iter().map(|l| l.blocks).sum()
    }

    /// Byte offset in the serialized tree of block `index` of `level`.
    pub fn tree_offset(&self, level: usize, index: u64) -> u64 {
        debug_assert!(index < self.levels[level].blocks);
        (self.levels[level].start + index) << self.log_block_size
    }

    /// Where the hash of block `index` of `level - 1` (or of data block `index` for
    /// level 0) is stored: (index of the block in `level`, byte offset within it).
    pub fn hash_location(&self, index: u64) -> (u64, usize) {
        let hpb = self.hashes_per_block() as u64;
        (index / hpb, (index % hpb) as usize * self.digest_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_files_have_no_tree() {
        for size in [0, 1, 4096] {
            let g = TreeGeometry::new(size, 12, 32).expect("geometry");
            assert_eq!(g.num_levels(), 0);
            assert_eq!(g.tree_size(), 0);
        }
    }

    #[test]
    fn level_boundaries_sha256_4k() {
        // 128 hashes per block: 128 data blocks need one level, 129 need two.
        let g = TreeGeometry::new(128 * 4096, 12, 32).expect("geometry");
        assert_eq!((g.num_levels(), g.tree_blocks()), (1, 1));
        let g = TreeGeometry::new(128 * 4096 + 1, 12, 32).expect("geometry");
        assert_eq!(
            (g.num_levels(), g.level_blocks(0), g.level_blocks(1)),
            (2, 2, 1)
        );
        let g = TreeGeometry::new(16384 * 4096, 12, 32).expect("geometry");
        assert_eq!((g.num_levels(), g.level_blocks(0)), (2, 128));
        let g = TreeGeometry::new(16384 * 4096 + 1, 12, 32).expect("geometry");
        assert_eq!(g.num_levels(), 3);
        // Root level first: level 2 at block 0, level 1 at 1, level 0 at 3.
        assert_eq!(g.tree_offset(2, 0), 0);
        assert_eq!(g.tree_offset(1, 0), 4096);
        assert_eq!(g.tree_offset(0, 0), 3 * 4096);
        assert_eq!(g.tree_size(), (1 + 2 + 129) * 4096);
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        // 64 KiB blocks and SHA-256: 2048 hashes per block, 5 levels over 2^48 blocks.
        assert_eq!(
            TreeGeometry::new(u64::MAX, 16, 32)
                .expect("fits")
                .num_levels(),
            5
        );
        // 4 KiB blocks and SHA-256: 128 per block, 8 levels over 2^52 blocks.
        assert_eq!(
            TreeGeometry::new(u64::MAX, 12, 32)
                .expect("fits")
                .num_levels(),
            8
        );
    }

    #[test]
    fn more_than_eight_levels_are_refused_like_the_kernel() {
        // 1 KiB blocks and SHA-512: 16 hashes per block, so 8 levels cover
        // 16^8 blocks = 4 TiB; one block more needs a ninth level.
        let limit = 16u64.pow(8) * 1024;
        assert_eq!(
            TreeGeometry::new(limit, 10, 64)
                .expect("8 levels")
                .num_levels(),
            8
        );
        assert_eq!(
            TreeGeometry::new(limit + 1, 10, 64),
            Err(FormatError::TooManyLevels(limit + 1))
        );
        assert_eq!(
            TreeGeometry::new(u64::MAX, 10, 64),
            Err(FormatError::TooManyLevels(u64::MAX))
        );
    }
}
