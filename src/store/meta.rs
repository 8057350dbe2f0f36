//! The verity metadata attached to a backing file: one user xattr holding the
//! 256-byte descriptor followed by the optional signature.
//!
//! One xattr, so setting it is atomic: a file is either not verity (no xattr) or
//! fully verity. Being an xattr, it travels with the file through rename, hard
//! links, `cp -a`, `tar --xattrs` and `rsync -X`.

use crate::format::{DESCRIPTOR_SIZE, Descriptor, FormatError};

/// Name of the xattr that marks a backing file as verity.
pub const METADATA_XATTR: &str = "user.fsverity-fuse";

/// Largest signature accepted (the kernel's FS_VERITY_MAX_SIGNATURE_SIZE).
pub const MAX_SIGNATURE_SIZE: usize = 16128;

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
    #[error("verity metadata is {0} bytes, shorter than the 256-byte descriptor")]
    TooShort(usize),
    /// The signature part is larger than allowed.
    #[error("verity metadata carries a {0}-byte signature (at most {MAX_SIGNATURE_SIZE})")]
    SignatureTooLarge(usize),
    /// The descriptor is invalid.
    #[error("invalid descriptor in verity metadata: {0}")]
    Descriptor(#[from] FormatError),
}

impl VerityMetadata {
    /// The xattr value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.descriptor.encode().to_vec();
        if let Some(sig) = &self.signature {
            out.extend_from_slice(sig);
        }
        out
    }

    /// Parses an xattr value.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        if bytes.len() < DESCRIPTOR_SIZE {
            return Err(MetadataError::TooShort(bytes.len()));
        }
        let (desc, sig) = bytes.split_at(DESCRIPTOR_SIZE);
        if sig.len() > MAX_SIGNATURE_SIZE {
            return Err(MetadataError::SignatureTooLarge(sig.len()));
        }
        Ok(Self {
            descriptor: Descriptor::decode(desc)?,
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
            assert_eq!(VerityMetadata::decode(&m.encode()), Ok(m));
        }
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
}
