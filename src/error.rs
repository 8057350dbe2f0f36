//! The filesystem's error type and the one table that maps errors to errno.

use std::io;

use crate::merkle::Corruption;
use crate::signature::SignatureError;

/// Result of a filesystem operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call on the backing filesystem failed; its errno passes through unchanged.
    #[error("backing filesystem: {0}")]
    Backing(#[from] io::Error),
    /// The kernel named a node id this mount does not know (forgotten or never issued).
    #[error("unknown inode {0}")]
    UnknownInode(u64),
    /// The kernel named a file handle this mount does not know.
    #[error("unknown file handle {0}")]
    UnknownHandle(u64),
    /// A name reserved by fsverity-fuse (the tree store), hidden from the mount.
    #[error("'{0}' is reserved by fsverity-fuse")]
    Reserved(String),
    /// A name that is not a single path component.
    #[error("invalid file name")]
    InvalidName,
    /// Writing, truncating or allocating a verity file (immutable, like the kernel's).
    #[error("verity files are immutable")]
    VerityImmutable,
    /// A block of a verity file did not verify.
    #[error("{path}: {corruption}")]
    Corrupted {
        /// Backing path of the file.
        path: String,
        /// What mismatched.
        corruption: Box<Corruption>,
    },
    /// Verity metadata or tree is damaged, missing, or inconsistent with the data.
    #[error("{path}: {reason}")]
    VerityDamaged {
        /// Backing path of the file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The mount is read-only.
    #[error("read-only mount")]
    ReadOnly,
    /// Operation needs a verity file.
    #[error("not a verity file")]
    NotVerity,
    /// The file is already a verity file.
    #[error("already a verity file")]
    AlreadyVerity,
    /// The file is open for writing (enable refused).
    #[error("file is open for writing")]
    TextBusy,
    /// An enable of this file is already running.
    #[error("verity is being enabled on this file")]
    Busy,
    /// An argument is out of range or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A salt or signature exceeds its size limit.
    #[error("{0}")]
    MessageSize(String),
    /// The caller's buffer is too small for the result.
    #[error("buffer too small")]
    Overflow,
    /// A directory where a regular file is needed.
    #[error("is a directory")]
    IsDirectory,
    /// The caller may not do this (permission or policy).
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Not permitted (e.g. enabling without a signature when signatures are required).
    #[error("operation not permitted: {0}")]
    NotPermitted(String),
    /// A signature that does not verify under any trusted key.
    #[error("signature rejected: {0}")]
    KeyRejected(String),
    /// A malformed signature.
    #[error("malformed signature: {0}")]
    BadMessage(String),
    /// A signature whose signer is not trusted (no trusted certificate names it).
    #[error("{0}")]
    NoKey(String),
    /// The ioctl is not supported by this filesystem.
    #[error("inappropriate ioctl")]
    NotTty,
    /// The file handle was not opened for reading (enable needs it).
    #[error("file not open for reading")]
    NotReadable,
    /// The caller is being killed: the operation stopped (the kernel's EINTR).
    #[error("interrupted")]
    Interrupted,
    /// The mount stopped serving after a corruption (`--on-corruption=abort`).
    #[error("mount stopped serving after a verification failure")]
    Aborted,
}

impl Error {
    /// The errno reported to the kernel. Integrity failures are EIO, like the
    /// kernel's fs-verity.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Backing(e) => e.raw_os_error().filter(|&n| n > 0).unwrap_or(libc::EIO),
            // The kernel's own answer for a handle it no longer should use.
            Error::UnknownInode(_) => libc::ESTALE,
            Error::UnknownHandle(_) => libc::EBADF,
            // Lookups of the hidden store see nothing; changes to it are refused
            // by the callers with `NotPermitted` before this is reached.
            Error::Reserved(_) => libc::ENOENT,
            Error::InvalidName => libc::EINVAL,
            Error::VerityImmutable => libc::EPERM,
            Error::Corrupted { .. } => libc::EIO,
            Error::VerityDamaged { .. } => libc::EIO,
            Error::ReadOnly => libc::EROFS,
            Error::NotVerity => libc::ENODATA,
            Error::AlreadyVerity => libc::EEXIST,
            Error::TextBusy => libc::ETXTBSY,
            Error::Busy => libc::EBUSY,
            Error::InvalidArgument(_) => libc::EINVAL,
            Error::MessageSize(_) => libc::EMSGSIZE,
            Error::Overflow => libc::EOVERFLOW,
            Error::IsDirectory => libc::EISDIR,
            Error::AccessDenied(_) => libc::EACCES,
            Error::NotPermitted(_) => libc::EPERM,
            Error::KeyRejected(_) => libc::EKEYREJECTED,
            Error::BadMessage(_) => libc::EBADMSG,
            Error::NoKey(_) => libc::ENOKEY,
            // ENOSYS from a FUSE daemon reaches the caller as ENOTTY anyway.
            Error::NotTty => libc::ENOTTY,
            Error::Aborted => libc::EIO,
            // The kernel's answer to an enable on a descriptor without read access.
            Error::NotReadable => libc::EBADF,
            Error::Interrupted => libc::EINTR,
        }
    }

    /// Wraps a raw errno.
    pub fn from_errno(errno: i32) -> Self {
        Error::Backing(io::Error::from_raw_os_error(errno))
    }
}

/// A refused signature becomes the kernel's errno for it (fs/verity/signature.c):
/// EBADMSG malformed, ENOKEY signer not trusted, EKEYREJECTED not valid for the
/// digest, EMSGSIZE too large.
impl From<SignatureError> for Error {
    fn from(e: SignatureError) -> Self {
        match e {
            SignatureError::Malformed(m) => Error::BadMessage(m),
            SignatureError::NoKey(m) => Error::NoKey(m),
            SignatureError::Rejected(m) => Error::KeyRejected(m),
            SignatureError::TooLarge(_) => Error::MessageSize(e.to_string()),
            SignatureError::Key { .. } => Error::KeyRejected(e.to_string()),
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Backing(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_errno_passes_through() {
        assert_eq!(Error::from_errno(libc::ENOSPC).errno(), libc::ENOSPC);
        assert_eq!(
            Error::Backing(io::Error::other("no errno")).errno(),
            libc::EIO
        );
    }

    #[test]
    fn integrity_failures_are_eio() {
        let damaged = Error::VerityDamaged {
            path: "f".into(),
            reason: "x".into(),
        };
        assert_eq!(damaged.errno(), libc::EIO);
        assert_eq!(Error::VerityImmutable.errno(), libc::EPERM);
    }
}
