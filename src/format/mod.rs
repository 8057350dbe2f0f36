//! The fs-verity on-disk format, byte-exact with the Linux kernel and
//! fsverity-utils: hash algorithms, tree parameters and geometry, the descriptor,
//! the file digest and the formatted digest. Pure code: no I/O.

mod descriptor;
mod digest;
mod geometry;
mod hash;
mod params;

pub use descriptor::{COMPACT_TAG, DESCRIPTOR_SIZE, Descriptor};
pub use digest::{FORMATTED_DIGEST_MAGIC, formatted_digest};
pub use geometry::TreeGeometry;
pub use hash::{BlockHasher, HashAlgorithm, HashValue, MAX_DIGEST_SIZE, MAX_SALT_SIZE};

/// Largest signature the kernel accepts (`FS_VERITY_MAX_SIGNATURE_SIZE`).
pub const MAX_SIGNATURE_SIZE: usize = 16128;
pub use params::{
    DEFAULT_BLOCK_SIZE, MAX_LOG_BLOCK_SIZE, MIN_LOG_BLOCK_SIZE, TreeParams, log_block_size,
};

/// A value that does not fit the fs-verity format.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Numeric algorithm id that is not supported.
    #[error("unknown hash algorithm {0} (supported: 1 = sha256, 2 = sha512, 0xb3 = blake3)")]
    UnknownAlgorithm(u32),
    /// Algorithm name that is not supported.
    #[error("unknown hash algorithm '{0}' (supported: sha256, sha512, blake3)")]
    UnknownAlgorithmName(String),
    /// Block size that is not a power of two in 1024..=65536.
    #[error("unsupported block size {0}: must be a power of two from 1024 to 65536")]
    BadBlockSize(u64),
    /// Descriptor's log2 block size outside 10..=16.
    #[error("unsupported block size 2^{0} in descriptor: must be 2^10 to 2^16")]
    BadLogBlockSize(u8),
    /// Salt over 32 bytes.
    #[error("salt of {0} bytes is too long: at most 32 bytes")]
    SaltTooLong(usize),
    /// Descriptor of the wrong length.
    #[error("descriptor is {0} bytes: expected exactly 256")]
    DescriptorLength(usize),
    /// Descriptor version other than 1.
    #[error("unsupported descriptor version {0}: only version 1 exists")]
    DescriptorVersion(u8),
    /// A reserved or padding byte of the descriptor is not zero.
    #[error("reserved descriptor byte at offset {0} is not zero")]
    NonZeroReserved(usize),
    /// The tree for this size cannot be represented.
    #[error("file of {0} bytes is too large for a Merkle tree")]
    FileTooLarge(u64),
    /// A compact descriptor that does not start with its tag.
    #[error("compact descriptor starts with {0:#04x}, not 0x81")]
    CompactTag(u8),
    /// A compact descriptor cut short.
    #[error("compact descriptor cut short: {0} bytes")]
    CompactLength(usize),
    /// The tree would need more levels than the kernel allows.
    #[error(
        "file of {0} bytes needs more than {max} Merkle tree levels with this block size and hash (the kernel's limit)",
        max = geometry::MAX_LEVELS
    )]
    TooManyLevels(u64),
}
