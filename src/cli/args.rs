//! Option groups shared by several subcommands.

use clap::Args;

use crate::format::{FormatError, HashAlgorithm, TreeParams};

/// `--hash-alg`, `--block-size`, `--salt`: the spellings of `fsverity digest`.
#[derive(Args, Debug, Clone)]
pub(crate) struct TreeArgs {
    /// Hash algorithm of the Merkle tree: sha256, sha512, or blake3 (an
    /// fsverity-fuse extension the kernel does not know).
    #[arg(long = "hash-alg", value_name = "HASH_ALG", default_value = "sha256", value_parser = parse_algorithm)]
    pub(crate) hash_alg: HashAlgorithm,
    /// Merkle tree block size: a power of two from 1024 to 65536.
    #[arg(long = "block-size", value_name = "BLOCK_SIZE", default_value_t = 4096, value_parser = parse_block_size)]
    pub(crate) block_size: u64,
    /// Salt, in hex, prepended to every hashed block (at most 32 bytes).
    #[arg(long, value_name = "SALT", value_parser = parse_salt)]
    pub(crate) salt: Option<Salt>,
}

/// Salt bytes parsed from hex.
#[derive(Debug, Clone)]
pub(crate) struct Salt(pub(crate) Vec<u8>);

impl TreeArgs {
    /// The validated parameters.
    pub(crate) fn params(&self) -> TreeParams {
        let salt = self
            .salt
            .as_ref()
            .map(|s| s.0.as_slice())
            .unwrap_or_default();
        TreeParams::new(self.hash_alg, self.block_size, salt)
            .expect("every field was validated while parsing")
    }
}

fn parse_algorithm(s: &str) -> Result<HashAlgorithm, FormatError> {
    s.parse()
}

fn parse_block_size(s: &str) -> Result<u64, String> {
    let n: u64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    crate::format::log_block_size(n).map_err(|e| e.to_string())?;
    Ok(n)
}

fn parse_salt(s: &str) -> Result<Salt, String> {
    let bytes = hex::decode(s).map_err(|e| format!("salt is not a valid hex string: {e}"))?;
    if bytes.len() > crate::format::MAX_SALT_SIZE {
        return Err(FormatError::SaltTooLong(bytes.len()).to_string());
    }
    Ok(Salt(bytes))
}
