//! The verity metadata attached to a backing file: one user xattr holding the
//! descriptor followed by the optional signature. The descriptor is written in
//! its compact encoding (44 bytes for SHA-256 without salt, so on ext4 the
//! whole xattr stays inside the inode and costs no extra read); the kernel's
//! full 256-byte form is read too.
//!
//! One xattr, so setting it is atomic: a file is either not verity (no xattr) or
//! fully verity. Being an xattr, it travels with the file through rename, hard
//! links, `cp -a`, `tar --xattrs` and `rsync -X`.

use crate::format::{COMPACT_TAG, DESCRIPTOR_SIZE, Descriptor, FormatError};

/// Name of the xattr that marks a backing file as verity.
pub const METADATA_XATTR: &str = "user.fsverity-fuse";

pub use crate::format::MAX_SIGNATURE_SIZE;

/// A verity file's descriptor and signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityMetadata {
    /// The fs-verity descriptor.
    pub descriptor: Descriptor,
    /// The signature over the formatted digest, if any.
    pub signature: Option<Vec<u8>>,
}

/// Why stored metadata could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// Shorter than a descriptor.
    #[error("verity metadata is {0} bytes, shorter than its descriptor")]
    TooShort(usize),
    /// The signature part is larger than allowed.
    #[error("verity metadata carries a {0}-byte signature (at most {MAX_SIGNATURE_SIZE})")]
    SignatureTooLarge(usize),
    /// The descriptor is invalid.
    #[error("invalid descriptor in verity metadata: {0}")]
    Descriptor(#[from] FormatError),
}

impl VerityMetadata {
    /// The xattr value: the compact descriptor, then the signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.descriptor.encode_compact();
        if let Some(sig) = &self.signature {
            out.extend_from_slice(sig);
        }
        out
    }

    /// Parses an xattr value: a compact or a full descriptor (told apart by
    /// the first byte: the full one's is its version, 1), then the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        let (descriptor, len) = if bytes.first() == Some(&COMPACT_TAG) {
            Descriptor::decode_compact(bytes).map_err(|e| match e {
                FormatError::CompactLength(n) => MetadataError::TooShort(n),
                other => other.into(),
            })?
        } else {
            let full = bytes
                .get(..DESCRIPTOR_SIZE)
                .ok_or(MetadataError::TooShort(bytes.len()))?;
            (Descriptor::decode(full)?, DESCRIPTOR_SIZE)
        };
        let sig = &bytes[len..];
        if sig.len() > MAX_SIGNATURE_SIZE {
            return Err(MetadataError::SignatureTooLarge(sig.len()));
        }
        Ok(Self {
            descriptor,
            signature: (!sig.is_empty()).then(|| sig.to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{HashValue, TreeParams};

    #[test]
    fn round_trip_and_rejects_garbage() {
        let d = Descriptor::new(TreeParams::default(), 5, HashValue::from_slice(&[1; 32]));
        for signature in [None, Some(vec![7u8; 64])] {
            let m = VerityMetadata {
                descriptor: d.clone(),
                signature,
            };
            let compact = m.encode();
            assert_eq!(compact[0], COMPACT_TAG);
            assert_eq!(VerityMetadata::decode(&compact), Ok(m.clone()));
            // The kernel's full 256-byte descriptor is read as well.
            let mut full = d.encode().to_vec();
            full.extend_from_slice(m.signature.as_deref().unwrap_or_default());
            assert_eq!(VerityMetadata::decode(&full), Ok(m));
        }
        assert_eq!(d.encode_compact().len(), 44);
        assert_eq!(
            VerityMetadata::decode(&d.encode_compact()[..30]),
            Err(MetadataError::TooShort(30))
        );
        assert_eq!(
            VerityMetadata::decode(&[1; 10]),
            Err(MetadataError::TooShort(10))
        );
        let mut bad = d.encode().to_vec();
        bad[1] = 77;
        assert!(matches!(
            VerityMetadata::decode(&bad),
            Err(MetadataError::Descriptor(FormatError::UnknownAlgorithm(77)))
        ));
    }

    /// The metadata xattr (compact or full descriptor, then a signature) is
    /// untrusted input: its decoder never panics, and whatever it accepts
    /// encodes back to a value that decodes to the same metadata.
    #[test]
    fn decode_never_panics_and_what_it_accepts_round_trips() {
        use crate::format::HashAlgorithm;
        let mut rng = crate::testing::Rng::new(0x5eed_0fad);
        let mut accepted = 0;
        for i in 0..20_000 {
            let algorithm = HashAlgorithm::ALL[rng.below(3) as usize];
            let salt_len = rng.below(33) as usize;
            let salt = rng.bytes(salt_len);
            let block = 1u64 << (10 + rng.below(7));
            let params = TreeParams::new(algorithm, block, &salt).expect("valid parameters");
            let size = match rng.below(3) {
                0 => rng.below(1 << 20),
                1 => rng.next() >> rng.below(64),
                _ => rng.next(),
            };
            let root = rng.bytes(algorithm.digest_size());
            let d = Descriptor::new(params, size, HashValue::from_slice(&root));
            let mut bytes = match rng.below(2) {
                0 => d.encode_compact(),
                _ => d.encode().to_vec(),
            };
            if rng.below(3) == 0 {
                let extra_len = rng.below(100) as usize;
                let extra = rng.bytes(extra_len);
                bytes.extend_from_slice(&extra);
            }
            match rng.below(3) {
                0 => {
                    for _ in 0..=rng.below(3) {
                        let at = rng.below(bytes.len() as u64) as usize;
                        bytes[at] = rng.next() as u8;
                    }
                }
                1 => bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize),
                _ => {}
            }
            let what = format!("value {i}: {}", hex::encode(&bytes));
            let decoded = std::panic::catch_unwind(|| VerityMetadata::decode(&bytes))
                .unwrap_or_else(|_| panic!("{what}: decode panicked"));
            if let Ok(m) = decoded {
                accepted += 1;
                assert_eq!(
                    VerityMetadata::decode(&m.encode()).as_ref(),
                    Ok(&m),
                    "{what}: re-encoding changed it"
                );
            }
        }
        assert!(
            accepted > 1_000,
            "the loop rarely produced valid metadata: {accepted}"
        );
    }
}
