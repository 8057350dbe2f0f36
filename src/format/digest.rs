//! The formatted digest that signatures sign.
//!
//! Kernel: `struct fsverity_formatted_digest` ("Built-in signature verification"
//! in Documentation/filesystems/fsverity.rst): the magic "FSVerity", le16 algorithm,
//! le16 digest size, then the digest. `fsverity digest --for-builtin-sig` prints it.

use super::{HashAlgorithm, HashValue};

/// Magic that starts the formatted digest.
pub const FORMATTED_DIGEST_MAGIC: &[u8; 8] = b"FSVerity";

/// `"FSVerity" + le16 algorithm + le16 size + digest`.
pub fn formatted_digest(algorithm: HashAlgorithm, digest: &HashValue) -> Vec<u8> {
    let d = digest.as_bytes();
    let mut out = Vec::with_capacity(12 + d.len());
    out.extend_from_slice(FORMATTED_DIGEST_MAGIC);
    out.extend_from_slice(&u16::from(algorithm.id()).to_le_bytes());
    out.extend_from_slice(&(d.len() as u16).to_le_bytes());
    out.extend_from_slice(d);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let d = HashValue::from_slice(&[0x11; 32]);
        let f = formatted_digest(HashAlgorithm::Sha256, &d);
        assert_eq!(&f[..12], b"FSVerity\x01\x00\x20\x00");
        assert_eq!(&f[12..], d.as_bytes());
    }
}
