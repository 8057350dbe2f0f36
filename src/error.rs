//! The filesystem's error type and the one table that maps errors to errno
//! ([`Error::errno`]). Every errno a mount answers is chosen here; the layers
//! below report typed errors (`VerifyError`, `TreeError`, `EnableError`,
//! `SignatureError`, the verity state machine's refusals) that are turned into
//! an [`Error`] by the `From` conversions at the bottom.

use std::io;

use crate::merkle::Corruption;
use crate::signature::SignatureError;
use crate::store::{EnableError, TreeError};
use crate::verity::policy::EnableDenial;
use crate::verity::state::EnableRefused;
use crate::verity::{EnableRefusal, PolicyDenial, WriteRefused};

/// Result of a filesystem operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call on the backing filesystem failed; its errno passes through.
    #[error("backing filesystem: {0}")]
    Backing(#[from] io::Error),
    /// The kernel named a node id this mount does not know.
    #[error("unknown inode {0}")]
    UnknownInode(u64),
    /// The kernel named a file handle this mount does not know.
    #[error("unknown file handle {0}")]
    UnknownHandle(u64),
    /// A node that can no longer be reached (its backing object is gone).
    #[error("stale file handle")]
    Stale,
    /// A name reserved by fsverity-fuse (the tree store), looked up.
    #[error("'{0}' is reserved by fsverity-fuse")]
    Reserved(String),
    /// A reserved name created, renamed or removed.
    #[error("'{0}' is reserved by fsverity-fuse")]
    ReservedChange(String),
    /// The verity metadata xattr set or removed through the mount.
    #[error("the verity metadata xattr is reserved")]
    ReservedXattr,
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
    /// The file is open for writing (enable refused), or being enabled (write refused).
    #[error("file is busy: open for writing, or being enabled")]
    TextBusy,
    /// An enable of this file is already running, or the file changed while hashed.
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
    /// An extended attribute value or list larger than the caller's buffer.
    #[error("buffer too small for the attribute")]
    Range,
    /// No such extended attribute.
    #[error("no such attribute")]
    NoAttribute,
    /// A directory where a regular file is needed.
    #[error("is a directory")]
    IsDirectory,
    /// Not a directory where one is needed.
    #[error("not a directory")]
    NotDirectory,
    /// Not supported on this kind of object (xattrs and times of symlinks...).
    #[error("operation not supported")]
    NotSupported,
    /// A write through a handle not opened for writing.
    #[error("file not open for writing")]
    NotOpenForWriting,
    /// `SEEK_DATA`/`SEEK_HOLE` past the end.
    #[error("no data at or after this offset")]
    NoSuchOffset,
    /// A copy that must not happen in the backing filesystem (from a verity file).
    #[error("cross-device copy")]
    CrossDevice,
    /// Refused by the mount's policy (`--require-verity`, `--require-signatures`).
    #[error("{path}: {denial}")]
    Denied {
        /// Backing path of the file.
        path: String,
        /// Why.
        denial: PolicyDenial,
    },
    /// The enable ioctl refused by one of the kernel's first checks.
    #[error("{0}")]
    Enable(#[from] EnableRefusal),
    /// Enabling without a signature when signatures are required.
    #[error("--require-signatures: rejecting unsigned file")]
    Unsigned,
    /// A signature refused (malformed, untrusted, invalid for the digest).
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// A file too large for a tree of at most 8 levels.
    #[error("file too large for a Merkle tree")]
    TooLarge,
    /// The backing filesystem has no user xattrs, which hold the metadata.
    #[error("the backing filesystem does not support user extended attributes")]
    NoXattrs,
    /// The ioctl is not supported by this filesystem.
    #[error("inappropriate ioctl")]
    NotTty,
    /// The caller is being killed: the operation stopped (the kernel's EINTR).
    #[error("interrupted")]
    Interrupted,
    /// A handler panicked (a bug): the request fails.
    #[error("internal error")]
    Panicked,
    /// The mount stopped serving after a corruption (`--on-corruption=abort`).
    #[error("mount stopped serving after a verification failure")]
    Aborted,
}

impl Error {
    /// The errno reported to the kernel: the one table. Integrity failures are
    /// EIO, like the kernel's fs-verity; the enable ioctl's errnos are the
    /// kernel's (fs/verity/enable.c, fs/verity/signature.c).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Backing(e) => e.raw_os_error().filter(|&n| n > 0).unwrap_or(libc::EIO),
            // The kernel's own answer for a node it should no longer use.
            Error::UnknownInode(_) | Error::Stale => libc::ESTALE,
            Error::UnknownHandle(_) => libc::EBADF,
            // Lookups of the hidden store see nothing; changes to it are refused.
            Error::Reserved(_) => libc::ENOENT,
            Error::ReservedChange(_) | Error::ReservedXattr => libc::EPERM,
            Error::InvalidName => libc::EINVAL,
            Error::VerityImmutable => libc::EPERM,
            Error::Corrupted { .. } | Error::VerityDamaged { .. } => libc::EIO,
            Error::ReadOnly => libc::EROFS,
            Error::NotVerity => libc::ENODATA,
            Error::AlreadyVerity => libc::EEXIST,
            Error::TextBusy => libc::ETXTBSY,
            Error::Busy => libc::EBUSY,
            Error::InvalidArgument(_) => libc::EINVAL,
            Error::MessageSize(_) => libc::EMSGSIZE,
            Error::Overflow => libc::EOVERFLOW,
            Error::Range => libc::ERANGE,
            Error::NoAttribute => libc::ENODATA,
            Error::IsDirectory => libc::EISDIR,
            Error::NotDirectory => libc::ENOTDIR,
            Error::NotSupported => libc::EOPNOTSUPP,
            Error::NotOpenForWriting => libc::EBADF,
            Error::NoSuchOffset => libc::ENXIO,
            // The kernel then falls back to reading through the mount (verified).
            Error::CrossDevice => libc::EXDEV,
            Error::Denied { .. } => libc::EACCES,
            Error::Enable(refusal) => match refusal {
                EnableRefusal::ReadOnly => libc::EROFS,
                EnableRefusal::Immutable | EnableRefusal::AppendOnly => libc::EPERM,
                EnableRefusal::NoWriteAccess => libc::EACCES,
                // The fd must be open for reading (rpm's plugin uses O_WRONLY).
                EnableRefusal::NotReadable => libc::EBADF,
                EnableRefusal::Directory => libc::EISDIR,
                EnableRefusal::NotRegular => libc::EINVAL,
            },
            // The kernel's require_signatures behaviour.
            Error::Unsigned => libc::EPERM,
            Error::Signature(e) => match e {
                SignatureError::Malformed(_) => libc::EBADMSG,
                SignatureError::NoKey(_) => libc::ENOKEY,
                SignatureError::Rejected(_) | SignatureError::Key { .. } => libc::EKEYREJECTED,
                SignatureError::TooLarge(_) => libc::EMSGSIZE,
                SignatureError::Unsigned => libc::EPERM,
            },
            // The kernel's answer for a file its tree cannot cover.
            Error::TooLarge => libc::EFBIG,
            Error::NoXattrs => libc::EOPNOTSUPP,
            // ENOSYS from a FUSE daemon reaches the caller as ENOTTY anyway.
            Error::NotTty => libc::ENOTTY,
            Error::Interrupted => libc::EINTR,
            Error::Panicked | Error::Aborted => libc::EIO,
        }
    }

    /// The error of a failed enable; `path` names the file in messages.
    pub(crate) fn from_enable(
        e: EnableError<SignatureError>, path: impl FnOnce() -> String,
    ) -> Self {
        use crate::format::FormatError;
        use crate::merkle::BuildError;
        match e {
            EnableError::AlreadyVerity => Error::AlreadyVerity,
            EnableError::NotRegular => Error::Enable(EnableRefusal::NotRegular),
            EnableError::Changed => Error::Busy,
            EnableError::Interrupted => Error::Interrupted,
            EnableError::NoUserXattrs(_) => Error::NoXattrs,
            EnableError::Rejected(e) => Error::Signature(e),
            EnableError::Tree(TreeError::Build(BuildError::Format(
                FormatError::TooManyLevels(_) | FormatError::FileTooLarge(_),
            ))) => Error::TooLarge,
            // Reading the data or writing the tree failed: the backing
            // filesystem's errno (ENOSPC, EDQUOT, EIO...) passes through.
            EnableError::Tree(
                TreeError::Io { source, .. } | TreeError::Build(BuildError::Io(source)),
            ) => Error::Backing(source),
            EnableError::Tree(TreeError::Build(BuildError::Shrank { .. })) => Error::Busy,
            EnableError::Tree(e) => Error::VerityDamaged {
                path: path(),
                reason: e.to_string(),
            },
            EnableError::Io { source, .. } => Error::Backing(source),
        }
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Backing(e.into())
    }
}

impl From<WriteRefused> for Error {
    fn from(e: WriteRefused) -> Self {
        match e {
            WriteRefused::Enabling => Error::TextBusy,
            WriteRefused::Verity => Error::VerityImmutable,
        }
    }
}

impl From<EnableRefused<Error>> for Error {
    fn from(e: EnableRefused<Error>) -> Self {
        match e {
            EnableRefused::Writers => Error::TextBusy,
            EnableRefused::Invalid(e) => e,
            EnableRefused::AlreadyVerity => Error::AlreadyVerity,
            EnableRefused::Busy => Error::Busy,
        }
    }
}

impl From<EnableDenial> for Error {
    fn from(e: EnableDenial) -> Self {
        match e {
            EnableDenial::Unsigned => Error::Unsigned,
            EnableDenial::Signature(e) => Error::Signature(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_errno_passes_through() {
        let e = Error::Backing(io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.errno(), libc::ENOSPC);
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

    #[test]
    fn signature_verdicts_are_the_kernels_errnos() {
        let cases = [
            (SignatureError::Malformed("x".into()), libc::EBADMSG),
            (SignatureError::NoKey("x".into()), libc::ENOKEY),
            (SignatureError::Rejected("x".into()), libc::EKEYREJECTED),
            (SignatureError::TooLarge(20_000), libc::EMSGSIZE),
        ];
        for (e, errno) in cases {
            assert_eq!(Error::from(e).errno(), errno);
        }
        assert_eq!(Error::from(EnableDenial::Unsigned).errno(), libc::EPERM);
    }

    #[test]
    fn enable_refusals_are_the_kernels_errnos() {
        let cases = [
            (EnableRefusal::ReadOnly, libc::EROFS),
            (EnableRefusal::Immutable, libc::EPERM),
            (EnableRefusal::NoWriteAccess, libc::EACCES),
            (EnableRefusal::NotReadable, libc::EBADF),
            (EnableRefusal::AppendOnly, libc::EPERM),
            (EnableRefusal::Directory, libc::EISDIR),
            (EnableRefusal::NotRegular, libc::EINVAL),
        ];
        for (r, errno) in cases {
            assert_eq!(Error::from(r).errno(), errno, "{r:?}");
        }
        assert_eq!(Error::from(WriteRefused::Enabling).errno(), libc::ETXTBSY);
        assert_eq!(Error::from(WriteRefused::Verity).errno(), libc::EPERM);
        assert_eq!(
            Error::from(EnableRefused::<Error>::Writers).errno(),
            libc::ETXTBSY
        );
        assert_eq!(
            Error::from(EnableRefused::<Error>::AlreadyVerity).errno(),
            libc::EEXIST
        );
        assert_eq!(
            Error::from(EnableRefused::<Error>::Busy).errno(),
            libc::EBUSY
        );
    }

    #[test]
    fn enable_failures_keep_the_backing_errno() {
        let full = EnableError::Tree(TreeError::Io {
            context: "write".into(),
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        });
        assert_eq!(Error::from_enable(full, String::new).errno(), libc::ENOSPC);
        assert_eq!(
            Error::from_enable(EnableError::Interrupted, String::new).errno(),
            libc::EINTR
        );
    }
}
