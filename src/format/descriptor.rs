//! The 256-byte `struct fsverity_descriptor` and the file digest.
//!
//! Kernel: "fs-verity descriptor" in Documentation/filesystems/fsverity.rst and
//! `struct fsverity_descriptor` in include/uapi/linux/fsverity.h. The file digest
//! (what `FS_IOC_MEASURE_VERITY` and `fsverity digest` report) is the plain,
//! unsalted hash of these 256 bytes.

use super::{FormatError, HashAlgorithm, HashValue, MAX_SALT_SIZE, TreeGeometry, TreeParams};

/// Size of the encoded descriptor.
pub const DESCRIPTOR_SIZE: usize = 256;

const OFF_VERSION: usize = 0;
const OFF_ALGORITHM: usize = 1;
const OFF_LOG_BLOCKSIZE: usize = 2;
const OFF_SALT_SIZE: usize = 3;
const OFF_RESERVED_0X04: usize = 4;
const OFF_DATA_SIZE: usize = 8;
const OFF_ROOT_HASH: usize = 16;
const OFF_SALT: usize = 80;
const OFF_RESERVED: usize = 112;

/// First byte of the compact encoding (the full one starts with version 1).
pub const COMPACT_TAG: u8 = 0x81;

/// Bytes of the compact encoding before the root hash: tag, algorithm,
/// log2(block size), salt size, then the data size (le64).
const COMPACT_HEADER: usize = 12;

/// A validated fs-verity descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Descriptor {
    params: TreeParams,
    data_size: u64,
    root_hash: HashValue,
}

impl Descriptor {
    /// A descriptor for a tree built with `params` over `data_size` bytes.
    pub fn new(params: TreeParams, data_size: u64, root_hash: HashValue) -> Self {
        assert_eq!(root_hash.as_bytes().len(), params.algorithm().digest_size());
        Self {
            params,
            data_size,
            root_hash,
        }
    }

    /// The tree parameters.
    pub fn params(&self) -> &TreeParams {
        &self.params
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.params.algorithm()
    }

    /// Size of the file's data.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// Root hash of the Merkle tree.
    pub fn root_hash(&self) -> &HashValue {
        &self.root_hash
    }

    /// The tree's geometry.
    pub fn geometry(&self) -> TreeGeometry {
        TreeGeometry::new(
            self.data_size,
            self.params.log_block_size(),
            self.algorithm().digest_size(),
        )
        .expect("a decoded descriptor always has a representable geometry")
    }

    /// The 256 bytes, reserved fields zero.
    pub fn encode(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut out = [0u8; DESCRIPTOR_SIZE];
        out[OFF_VERSION] = 1;
        out[OFF_ALGORITHM] = self.algorithm().id();
        out[OFF_LOG_BLOCKSIZE] = self.params.log_block_size();
        out[OFF_SALT_SIZE] = self.params.salt().len() as u8;
        out[OFF_DATA_SIZE..OFF_DATA_SIZE + 8].copy_from_slice(&self.data_size.to_le_bytes());
        let root = self.root_hash.as_bytes();
        out[OFF_ROOT_HASH..OFF_ROOT_HASH + root.len()].copy_from_slice(root);
        let salt = self.params.salt();
        out[OFF_SALT..OFF_SALT + salt.len()].copy_from_slice(salt);
        out
    }

    /// Decodes and validates 256 bytes: version 1, a known algorithm, a supported
    /// block size, salt of at most 32 bytes, and every reserved or padding byte zero.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() != DESCRIPTOR_SIZE {
            return Err(FormatError::DescriptorLength(bytes.len()));
        }
        if bytes[OFF_VERSION] != 1 {
            return Err(FormatError::DescriptorVersion(bytes[OFF_VERSION]));
        }
        let algorithm = HashAlgorithm::from_id(bytes[OFF_ALGORITHM].into())?;
        let log = bytes[OFF_LOG_BLOCKSIZE];
        let block_size = 1u64.checked_shl(log.into()).unwrap_or(0);
        let salt_size = usize::from(bytes[OFF_SALT_SIZE]);
        if salt_size > MAX_SALT_SIZE {
            return Err(FormatError::SaltTooLong(salt_size));
        }
        let ds = algorithm.digest_size();
        let zero_ranges = [
            (OFF_RESERVED_0X04, OFF_DATA_SIZE),
            (OFF_ROOT_HASH + ds, OFF_SALT),
            (OFF_SALT + salt_size, OFF_RESERVED),
            (OFF_RESERVED, DESCRIPTOR_SIZE),
        ];
        for (start, end) in zero_ranges {
            if let Some(pos) = bytes[start..end].iter().position(|&b| b != 0) {
                return Err(FormatError::NonZeroReserved(start + pos));
            }
        }
        let params = TreeParams::new(
            algorithm,
            block_size,
            &bytes[OFF_SALT..OFF_SALT + salt_size],
        )
        .map_err(|e| match e {
            FormatError::BadBlockSize(_) => FormatError::BadLogBlockSize(log),
            other => other,
        })?;
        let data_size = u64::from_le_bytes(
            bytes[OFF_DATA_SIZE..OFF_DATA_SIZE + 8]
                .try_into()
                .expect("8 bytes"),
        );
        TreeGeometry::new(data_size, log, ds)?;
        let root_hash = HashValue::from_slice(&bytes[OFF_ROOT_HASH..OFF_ROOT_HASH + ds]);
        Ok(Self {
            params,
            data_size,
            root_hash,
        })
    }

    /// The compact encoding (not a kernel format; what the metadata xattr
    /// stores): the descriptor's fields without its zero padding — tag
    /// [`COMPACT_TAG`], algorithm, log2(block size), salt size, data size
    /// (le64), root hash (the algorithm's digest size), salt. 44 bytes for
    /// SHA-256 without salt: small enough to live inside an ext4 inode.
    pub fn encode_compact(&self) -> Vec<u8> {
        let root = self.root_hash.as_bytes();
        let salt = self.params.salt();
        let mut out = Vec::with_capacity(COMPACT_HEADER + root.len() + salt.len());
        out.extend_from_slice(&[
            COMPACT_TAG,
            self.algorithm().id(),
            self.params.log_block_size(),
            salt.len() as u8,
        ]);
        out.extend_from_slice(&self.data_size.to_le_bytes());
        out.extend_from_slice(root);
        out.extend_from_slice(salt);
        out
    }

    /// Decodes a compact encoding at the start of `bytes`, validated exactly as
    /// the full one is (it is expanded to the 256 bytes and decoded); returns
    /// the descriptor and the number of bytes it took.
    pub fn decode_compact(bytes: &[u8]) -> Result<(Self, usize), FormatError> {
        let short = || FormatError::CompactLength(bytes.len());
        let header = bytes.get(..COMPACT_HEADER).ok_or_else(short)?;
        if header[0] != COMPACT_TAG {
            return Err(FormatError::CompactTag(header[0]));
        }
        let ds = HashAlgorithm::from_id(header[1].into())?.digest_size();
        let salt_size = usize::from(header[3]);
        if salt_size > MAX_SALT_SIZE {
            return Err(FormatError::SaltTooLong(salt_size));
        }
        let len = COMPACT_HEADER + ds + salt_size;
        let body = bytes.get(COMPACT_HEADER..len).ok_or_else(short)?;
        let mut full = [0u8; DESCRIPTOR_SIZE];
        full[OFF_VERSION] = 1;
        full[OFF_ALGORITHM..=OFF_SALT_SIZE].copy_from_slice(&header[1..4]);
        full[OFF_DATA_SIZE..OFF_DATA_SIZE + 8].copy_from_slice(&header[4..COMPACT_HEADER]);
        full[OFF_ROOT_HASH..OFF_ROOT_HASH + ds].copy_from_slice(&body[..ds]);
        full[OFF_SALT..OFF_SALT + salt_size].copy_from_slice(&body[ds..]);
        Ok((Self::decode(&full)?, len))
    }

    /// The file digest: the hash of the encoded descriptor.
    pub fn digest(&self) -> HashValue {
        self.algorithm().hash(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Descriptor {
        let params = TreeParams::new(HashAlgorithm::Sha512, 1024, b"salt").expect("params");
        Descriptor::new(params, 123_456, HashValue::from_slice(&[0xab; 64]))
    }

    /// For each (offset, value, what) of `cases`, `good` with that byte set
    /// fails to decode, with an error that mentions `what`.
    fn each_malformation_is_rejected<T: std::fmt::Debug>(
        good: &[u8], cases: &[(usize, u8, &str)], decode: impl Fn(&[u8]) -> Result<T, FormatError>,
    ) {
        for &(offset, value, what) in cases {
            let mut bad = good.to_vec();
            bad[offset] = value;
            let err = decode(&bad).expect_err(what).to_string();
            assert!(
                err.contains(what),
                "offset {offset}: {err:?} should mention {what}"
            );
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let d = sample();
        let bytes = d.encode();
        assert_eq!(bytes[..4], [1, 2, 10, 4]);
        assert_eq!(Descriptor::decode(&bytes).expect("decode"), d);
    }

    #[test]
    fn decode_rejects_each_malformation() {
        let good = sample().encode();
        let cases: &[(usize, u8, &str)] = &[
            (0, 2, "version"),
            (1, 9, "algorithm"),
            (2, 9, "block size"),
            (2, 17, "block size"),
            (2, 200, "block size"),
            (3, 33, "salt"),
            (4, 1, "reserved"),
            (7, 1, "reserved"),
            (80 + 4, 1, "reserved"), // salt padding
            (112, 1, "reserved"),
            (255, 1, "reserved"),
        ];
        each_malformation_is_rejected(&good, cases, Descriptor::decode);
        assert!(matches!(
            Descriptor::decode(&good[..255]),
            Err(FormatError::DescriptorLength(255))
        ));
    }

    #[test]
    fn compact_encoding_round_trips_and_is_short() {
        let unsalted = Descriptor::new(TreeParams::default(), 5, HashValue::from_slice(&[7; 32]));
        for d in [sample(), unsalted.clone()] {
            let mut bytes = d.encode_compact();
            let len = bytes.len();
            bytes.extend_from_slice(b"trailing signature");
            assert_eq!(Descriptor::decode_compact(&bytes), Ok((d, len)));
        }
        // SHA-256, no salt: 44 bytes, which fits the 56 bytes of value an ext4
        // inode of 256 bytes has room for next to this xattr's name.
        assert_eq!(unsalted.encode_compact().len(), 44);
        assert_eq!(sample().encode_compact().len(), 12 + 64 + 4);
    }

    #[test]
    fn compact_decode_rejects_each_malformation() {
        let good = sample().encode_compact();
        let cases: &[(usize, u8, &str)] = &[
            (0, 1, "compact"),
            (1, 9, "algorithm"),
            (2, 9, "block size"),
            (3, 33, "salt"),
        ];
        each_malformation_is_rejected(&good, cases, Descriptor::decode_compact);
        for len in 0..good.len() {
            assert_eq!(
                Descriptor::decode_compact(&good[..len]),
                Err(FormatError::CompactLength(len)),
                "cut to {len} bytes"
            );
        }
        // A size whose tree would be deeper than the kernel allows.
        let mut bad = good.clone();
        bad[4..12].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Descriptor::decode_compact(&bad),
            Err(FormatError::TooManyLevels(u64::MAX))
        );
    }

    #[test]
    fn digest_is_hash_of_encoding() {
        let d = sample();
        assert_eq!(d.digest(), HashAlgorithm::Sha512.hash(&d.encode()));
    }
}
