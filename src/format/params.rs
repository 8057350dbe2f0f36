//! The parameters a Merkle tree is built with: algorithm, block size, salt.

use super::{FormatError, HashAlgorithm, MAX_SALT_SIZE};

/// Smallest supported Merkle tree block size (log2 10).
pub const MIN_LOG_BLOCK_SIZE: u8 = 10;
/// Largest supported Merkle tree block size (log2 16).
pub const MAX_LOG_BLOCK_SIZE: u8 = 16;
/// The kernel's and fsverity-utils' default block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;

/// Validated tree parameters (kernel: the `fsverity_enable_arg` fields that shape the tree).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TreeParams {
    algorithm: HashAlgorithm,
    log_block_size: u8,
    salt: Vec<u8>,
}

impl Default for TreeParams {
    fn default() -> Self {
        Self {
            algorithm: HashAlgorithm::Sha256,
            log_block_size: 12,
            salt: Vec::new(),
        }
    }
}

impl TreeParams {
    /// Validates and builds parameters. The block size must be a power of two from
    /// 1024 to 65536, the salt at most 32 bytes.
    pub fn new(
        algorithm: HashAlgorithm, block_size: u64, salt: &[u8],
    ) -> Result<Self, FormatError> {
        let log_block_size = log_block_size(block_size)?;
        if salt.len() > MAX_SALT_SIZE {
            return Err(FormatError::SaltTooLong(salt.len()));
        }
        Ok(Self {
            algorithm,
            log_block_size,
            salt: salt.to_vec(),
        })
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// log2 of the block size.
    pub fn log_block_size(&self) -> u8 {
        self.log_block_size
    }

    /// The block size in bytes.
    pub fn block_size(&self) -> usize {
        1 << self.log_block_size
    }

    /// The salt (empty if none).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }
}

/// log2 of a block size, if it is a supported power of two.
pub fn log_block_size(block_size: u64) -> Result<u8, FormatError> {
    if !block_size.is_power_of_two() {
        return Err(FormatError::BadBlockSize(block_size));
    }
    let log = block_size.trailing_zeros() as u8;
    if !(MIN_LOG_BLOCK_SIZE..=MAX_LOG_BLOCK_SIZE).contains(&log) {
        return Err(FormatError::BadBlockSize(block_size));
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes() {
        for log in 10..=16 {
            assert_eq!(log_block_size(1 << log).ok(), Some(log));
        }
        for bad in [0, 1, 512, 4095, 4097, 1 << 17, u64::MAX] {
            assert!(matches!(log_block_size(bad), Err(FormatError::BadBlockSize(b)) if b == bad));
        }
    }

    #[test]
    fn salt_limit() {
        assert!(TreeParams::new(HashAlgorithm::Sha256, 4096, &[0; 32]).is_ok());
        assert!(matches!(
            TreeParams::new(HashAlgorithm::Sha256, 4096, &[0; 33]),
            Err(FormatError::SaltTooLong(33))
        ));
    }
}
