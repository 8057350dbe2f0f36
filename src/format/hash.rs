//! Hash algorithms of the fs-verity format and the salted block hasher.
//!
//! Follows "Merkle tree" and "Hash algorithms" in the kernel's
//! `Documentation/filesystems/fsverity.rst`: the salt, zero-padded to the hash
//! function's input block size, is prepended to every hashed block (data and
//! tree blocks, not the descriptor).

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use super::FormatError;

/// Largest digest of any supported algorithm (SHA-512).
pub const MAX_DIGEST_SIZE: usize = 64;

/// Largest salt the format allows.
pub const MAX_SALT_SIZE: usize = 32;

/// A Merkle tree hash algorithm.
///
/// SHA-256 (1) and SHA-512 (2) are the kernel's `FS_VERITY_HASH_ALG_*` values.
/// BLAKE3 is an extension of fsverity-fuse: its id `0xB3` lies far outside the
/// kernel's sequentially allocated range (see docs/FORMAT.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HashAlgorithm {
    /// SHA-256, kernel id 1, the default.
    #[default]
    Sha256,
    /// SHA-512, kernel id 2.
    Sha512,
    /// BLAKE3 (32-byte output), fsverity-fuse extension id 0xB3.
    Blake3,
}

impl HashAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [HashAlgorithm; 3] = [Self::Sha256, Self::Sha512, Self::Blake3];

    /// The numeric id used in the descriptor, the enable ioctl and the formatted digest.
    pub const fn id(self) -> u8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
            Self::Blake3 => 0xB3,
        }
    }

    /// Looks an algorithm up by its numeric id.
    pub fn from_id(id: u32) -> Result<Self, FormatError> {
        match id {
            1 => Ok(Self::Sha256),
            2 => Ok(Self::Sha512),
            0xB3 => Ok(Self::Blake3),
            other => Err(FormatError::UnknownAlgorithm(other)),
        }
    }

    /// Size of a digest in bytes.
    pub const fn digest_size(self) -> usize {
        match self {
            Self::Sha256 | Self::Blake3 => 32,
            Self::Sha512 => 64,
        }
    }

    /// Input block size of the hash function: the salt is zero-padded to this.
    pub const fn input_block_size(self) -> usize {
        match self {
            Self::Sha256 | Self::Blake3 => 64,
            Self::Sha512 => 128,
        }
    }

    /// The name used on the command line and in digest output (`sha256`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
            Self::Blake3 => "blake3",
        }
    }

    /// Whether the Linux kernel implements this algorithm.
    pub const fn is_kernel_algorithm(self) -> bool {
        matches!(self, Self::Sha256 | Self::Sha512)
    }

    /// Plain (unsalted) hash of `data`, as used for the file digest.
    pub fn hash(self, data: &[u8]) -> HashValue {
        BlockHasher::new(self, &[]).hash(data)
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| FormatError::UnknownAlgorithmName(s.to_owned()))
    }
}

/// A digest of one of the supported algorithms: a fixed buffer and a length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashValue {
    len: u8,
    bytes: [u8; MAX_DIGEST_SIZE],
}

impl HashValue {
    /// Builds a value from raw digest bytes (at most 64).
    pub fn from_slice(bytes: &[u8]) -> Self {
        assert!(
            bytes.len() <= MAX_DIGEST_SIZE,
            "digest longer than 64 bytes"
        );
        let mut out = Self::zeroed(bytes.len());
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        out
    }

    /// An all-zero value of `len` bytes (the root hash of an empty file).
    pub fn zeroed(len: usize) -> Self {
        assert!(len <= MAX_DIGEST_SIZE, "digest longer than 64 bytes");
        Self {
            len: len as u8,
            bytes: [0; MAX_DIGEST_SIZE],
        }
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

impl AsRef<[u8]> for HashValue {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for HashValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for HashValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Hashes blocks with the salt prefix already absorbed, as the kernel does: the
/// salted state is computed once and cloned for every block.
#[derive(Clone)]
pub struct BlockHasher {
    algorithm: HashAlgorithm,
    state: State,
}

#[derive(Clone)]
enum State {
    /// The salted state, and the padded salt itself (empty without a salt)
    /// for the multi-buffer code, which absorbs it in every lane.
    Sha256(sha2::Sha256, Prefix),
    Sha512(sha2::Sha512),
    /// `None` when there is no salt: `blake3::hash` is faster than cloning a hasher.
    Blake3(Option<Box<blake3::Hasher>>),
}

/// A salt padded to SHA-256's input block, or nothing.
#[derive(Clone, Copy)]
struct Prefix {
    bytes: [u8; 64],
    len: u8,
}

impl Prefix {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Whether `hash_blocks` may use multi-buffer SHA-256: yes unless the
/// environment sets `FSVERITY_FUSE_HASH=sha2` (one code path for every
/// block, to compare or to rule the SIMD code out).
fn multi_buffer_allowed() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var_os("FSVERITY_FUSE_HASH").is_none_or(|v| v != "sha2"))
}

impl fmt::Debug for BlockHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockHasher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl BlockHasher {
    /// A hasher for `algorithm` with `salt` (at most 32 bytes; empty means no salt).
    pub fn new(algorithm: HashAlgorithm, salt: &[u8]) -> Self {
        debug_assert!(salt.len() <= MAX_SALT_SIZE);
        let mut padded = [0u8; 128];
        let padded = if salt.is_empty() {
            &padded[..0]
        } else {
            padded[..salt.len()].copy_from_slice(salt);
            &padded[..algorithm.input_block_size()]
        };
        let state = match algorithm {
            HashAlgorithm::Sha256 => {
                let mut prefix = Prefix {
                    bytes: [0; 64],
                    len: padded.len() as u8,
                };
                prefix.bytes[..padded.len()].copy_from_slice(padded);
                State::Sha256(sha2::Sha256::new().chain_update(padded), prefix)
            }
            HashAlgorithm::Sha512 => State::Sha512(sha2::Sha512::new().chain_update(padded)),
            HashAlgorithm::Blake3 if padded.is_empty() => State::Blake3(None),
            HashAlgorithm::Blake3 => {
                let mut h = blake3::Hasher::new();
                h.update(padded);
                State::Blake3(Some(Box::new(h)))
            }
        };
        Self { algorithm, state }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// Salted hash of `data`.
    pub fn hash(&self, data: &[u8]) -> HashValue {
        let mut out = HashValue::zeroed(self.algorithm.digest_size());
        self.hash_into(data, &mut out.bytes[..self.algorithm.digest_size()]);
        out
    }

    /// Salted hash of `data` written to `out` (exactly `digest_size` bytes).
    pub fn hash_into(&self, data: &[u8], out: &mut [u8]) {
        match &self.state {
            State::Sha256(s, _) => out.copy_from_slice(&s.clone().chain_update(data).finalize()),
            State::Sha512(s) => out.copy_from_slice(&s.clone().chain_update(data).finalize()),
            State::Blake3(None) => out.copy_from_slice(blake3::hash(data).as_bytes()),
            State::Blake3(Some(h)) => {
                out.copy_from_slice(h.as_ref().clone().update(data).finalize().as_bytes())
            }
        }
    }

    /// Hashes consecutive `block_size` blocks of `data` into consecutive digests of `out`.
    ///
    /// SHA-256 blocks go sixteen at a time through multi-buffer SHA-256 on
    /// CPUs with AVX-512 (the same digests; `crate::sys`), the rest one by one.
    pub fn hash_blocks(&self, data: &[u8], block_size: usize, out: &mut [u8]) {
        let ds = self.algorithm.digest_size();
        debug_assert_eq!(data.len() % block_size, 0);
        debug_assert_eq!(out.len(), data.len() / block_size * ds);
        let done = match &self.state {
            State::Sha256(_, prefix) if multi_buffer_allowed() => {
                crate::sys::sha256_hash_blocks(prefix.as_slice(), data, block_size, out)
            }
            _ => 0,
        };
        let blocks = data.chunks_exact(block_size).zip(out.chunks_exact_mut(ds));
        for (block, digest) in blocks.skip(done) {
            self.hash_into(block, digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_do_not_collide() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(HashAlgorithm::from_id(alg.id().into()).ok(), Some(alg));
            assert_eq!(alg.name().parse::<HashAlgorithm>().ok(), Some(alg));
        }
        assert!(HashAlgorithm::from_id(0).is_err());
        assert!(HashAlgorithm::from_id(3).is_err());
        assert!("md5".parse::<HashAlgorithm>().is_err());
    }

    #[test]
    fn unsalted_hashes_match_reference_vectors() {
        // Standard test vectors for "abc" (FIPS 180-2 and the BLAKE3 reference).
        assert_eq!(
            HashAlgorithm::Sha256.hash(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(
            HashAlgorithm::Sha512
                .hash(b"abc")
                .to_hex()
                .starts_with("ddaf35a193617abacc417349ae2041")
        );
        assert_eq!(
            HashAlgorithm::Blake3.hash(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    /// `hash_blocks` (multi-buffer where the CPU has it) agrees with `hash`
    /// block by block, for every algorithm, salted or not, on request sizes
    /// around the multi-buffer group of sixteen.
    #[test]
    fn hash_blocks_agrees_with_hash() {
        let data: Vec<u8> = (0..40 * 1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for alg in HashAlgorithm::ALL {
            for salt in [&b""[..], b"salt", &[0xA5; 32]] {
                let hasher = BlockHasher::new(alg, salt);
                let ds = alg.digest_size();
                for (bs, blocks) in [(1024, 40), (1024, 23), (1024, 7), (4096, 10), (4096, 1)] {
                    let mut out = vec![0u8; blocks * ds];
                    hasher.hash_blocks(&data[..bs * blocks], bs, &mut out);
                    for (i, block) in data[..bs * blocks].chunks(bs).enumerate() {
                        assert_eq!(
                            &out[i * ds..(i + 1) * ds],
                            hasher.hash(block).as_bytes(),
                            "{alg} salt {salt:?} bs {bs} block {i}/{blocks}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn salt_is_padded_to_the_input_block() {
        for alg in HashAlgorithm::ALL {
            let salt = [7u8; 5];
            let mut padded = vec![0u8; alg.input_block_size()];
            padded[..5].copy_from_slice(&salt);
            padded.extend_from_slice(b"block");
            assert_eq!(
                BlockHasher::new(alg, &salt).hash(b"block"),
                alg.hash(&padded),
                "{alg}"
            );
        }
    }
}
