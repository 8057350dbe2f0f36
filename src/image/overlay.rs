//! The overlayfs conventions a composefs image relies on, shared by the reader
//! and the writer: the `trusted.overlay.metacopy` value that carries a file's
//! fs-verity digest, the `trusted.overlay.redirect` path of its object, the
//! escaping of the original tree's own `trusted.overlay.*` xattrs, and which
//! xattrs an overlay mount shows.
//!
//! Follows the kernel's `Documentation/filesystems/overlayfs.rst` ("Metadata
//! only copy up", "Data-only lower layers", "fs-verity support", "Escaping
//! overlayfs xattrs") and `struct ovl_metacopy` in `fs/overlayfs/overlayfs.h`.

use crate::format::{HashAlgorithm, HashValue};

/// Prefix of overlayfs's private xattrs in the `trusted` namespace.
pub(crate) const PRIVATE_PREFIX: &[u8] = b"trusted.overlay.";
/// Prefix of an escaped xattr: shown as `trusted.overlay.` + the rest.
pub(crate) const ESCAPED_PREFIX: &[u8] = b"trusted.overlay.overlay.";
/// Marks a metadata-only file; its value may carry the data's fs-verity digest.
pub(crate) const METACOPY: &[u8] = b"trusted.overlay.metacopy";
/// Where a metadata-only file's data lives, absolute in the data-only layers.
pub(crate) const REDIRECT: &[u8] = b"trusted.overlay.redirect";

/// Size of a metacopy value that carries a SHA-256 digest (`ovl_metacopy`
/// header of 4 bytes + 32).
pub(crate) const METACOPY_SHA256_LEN: usize = 4 + 32;

/// The `trusted.overlay.metacopy` value for a SHA-256 fs-verity digest:
/// version 0, length, flags 0, algorithm, digest.
pub(crate) fn encode_metacopy(digest: &HashValue) -> Vec<u8> {
    let mut v = vec![
        0,
        (4 + digest.as_bytes().len()) as u8,
        0,
        HashAlgorithm::Sha256.id(),
    ];
    v.extend_from_slice(digest.as_bytes());
    v
}

/// How a metacopy value is unusable for a verified image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetacopyError {
    /// An empty value: overlay accepts it, but there is no digest to verify.
    #[error("carries no fs-verity digest")]
    NoDigest,
    /// Not the 36-byte version-0 SHA-256 form.
    #[error(
        "is not a version-0 SHA-256 digest record (length {len}, version {version}, flags {flags}, algorithm {algorithm})"
    )]
    Malformed {
        /// Bytes in the value.
        len: usize,
        /// Its version byte.
        version: u8,
        /// Its flags byte.
        flags: u8,
        /// Its algorithm byte.
        algorithm: u8,
    },
}

/// Decodes a metacopy value into its SHA-256 digest.
pub(crate) fn decode_metacopy(v: &[u8]) -> Result<HashValue, MetacopyError> {
    match v {
        [] => Err(MetacopyError::NoDigest),
        [0, len, 0, alg, digest @ ..]
            if v.len() == METACOPY_SHA256_LEN
                && usize::from(*len) == v.len()
                && *alg == HashAlgorithm::Sha256.id() =>
        {
            Ok(HashValue::from_slice(digest))
        }
        _ => Err(MetacopyError::Malformed {
            len: v.len(),
            version: v.first().copied().unwrap_or(0),
            flags: v.get(2).copied().unwrap_or(0),
            algorithm: v.get(3).copied().unwrap_or(0),
        }),
    }
}

/// The object store path of a digest: `xx/rest-of-hex`.
pub fn object_path(digest: &HashValue) -> String {
    let hex = digest.to_hex();
    format!("{}/{}", &hex[..2], &hex[2..])
}

/// The redirect value for a digest: `/xx/rest-of-hex`.
pub(crate) fn redirect_for(digest: &HashValue) -> Vec<u8> {
    format!("/{}", object_path(digest)).into_bytes()
}

/// The name under which the image stores an xattr of the original tree:
/// `trusted.overlay.X` becomes `trusted.overlay.overlay.X`, so that overlayfs
/// shows it as the original name and does not act on it.
pub(crate) fn escape(name: &[u8]) -> Vec<u8> {
    match name.strip_prefix(PRIVATE_PREFIX) {
        Some(rest) => [ESCAPED_PREFIX, rest].concat(),
        None => name.to_vec(),
    }
}

/// The name an overlay mount shows for an xattr stored in the image, or `None`
/// if overlayfs hides it (its own private `trusted.overlay.*` xattrs). As
/// `ovl_listxattr` does for a lower layer, for a caller with `CAP_SYS_ADMIN`.
pub(crate) fn visible_name(stored: &[u8]) -> Option<Vec<u8>> {
    if let Some(rest) = stored.strip_prefix(ESCAPED_PREFIX) {
        return Some([PRIVATE_PREFIX, rest].concat());
    }
    if stored.starts_with(PRIVATE_PREFIX) {
        return None;
    }
    Some(stored.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metacopy_round_trip_and_refusals() {
        let d = HashAlgorithm::Sha256.hash(b"object");
        let v = encode_metacopy(&d);
        assert_eq!(v.len(), METACOPY_SHA256_LEN);
        assert_eq!(&v[..4], &[0, 36, 0, 1]);
        assert_eq!(decode_metacopy(&v), Ok(d));
        assert_eq!(decode_metacopy(&[]), Err(MetacopyError::NoDigest));
        for bad in [
            {
                let mut b = v.clone();
                b[0] = 1; // version
                b
            },
            {
                let mut b = v.clone();
                b[2] = 1; // flags
                b
            },
            {
                let mut b = v.clone();
                b[3] = 2; // sha512
                b
            },
            v[..35].to_vec(),
            [v.clone(), vec![0]].concat(),
        ] {
            assert!(matches!(
                decode_metacopy(&bad),
                Err(MetacopyError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn escaping_and_visibility() {
        type Row = (&'static [u8], &'static [u8], Option<&'static [u8]>);
        let table: [Row; 5] = [
            (b"user.a", b"user.a", Some(b"user.a")),
            (b"trusted.a", b"trusted.a", Some(b"trusted.a")),
            (
                b"trusted.overlay.opaque",
                b"trusted.overlay.overlay.opaque",
                Some(b"trusted.overlay.opaque"),
            ),
            (
                b"trusted.overlay.overlay.x",
                b"trusted.overlay.overlay.overlay.x",
                Some(b"trusted.overlay.overlay.x"),
            ),
            (
                b"user.overlay.whiteout",
                b"user.overlay.whiteout",
                Some(b"user.overlay.whiteout"),
            ),
        ];
        for (original, stored, shown) in table {
            assert_eq!(escape(original), stored);
            assert_eq!(visible_name(stored).as_deref(), shown);
        }
        assert_eq!(visible_name(METACOPY), None);
        assert_eq!(visible_name(REDIRECT), None);
        let d = HashAlgorithm::Sha256.hash(b"x");
        let p = object_path(&d);
        assert_eq!(p.len(), 65);
        assert_eq!(&p[2..3], "/");
        assert_eq!(redirect_for(&d), format!("/{p}").into_bytes());
    }
}
