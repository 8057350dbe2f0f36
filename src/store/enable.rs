//! Turning a backing file into a verity file, crash-safely: the tree is durable
//! in the store before the metadata xattr is set, and the xattr is created
//! atomically (XATTR_CREATE), so at every instant the file is either not verity or
//! fully verity.

use std::fs::File;
use std::io;

use rustix::fs::XattrFlags;

use super::meta::{METADATA_XATTR, MetadataError, VerityMetadata};
use super::trees::{TreeError, TreeStore};
use crate::format::{Descriptor, TreeParams};
use crate::merkle::{BuildError, BuildOptions, DataSource, NullSink, build_tree};

/// Why a file could not be enabled. `R` is why the caller's check of the new
/// descriptor (its signature, typically) refused it.
#[derive(Debug, thiserror::Error)]
pub enum EnableError<R: std::error::Error + 'static = std::convert::Infallible> {
    /// The file already has verity metadata.
    #[error("file is already a verity file")]
    AlreadyVerity,
    /// Not a regular file.
    #[error("not a regular file")]
    NotRegular,
    /// The file's size or modification time changed while hashing.
    #[error("file was modified while its Merkle tree was being built")]
    Changed,
    /// The filesystem does not support user xattrs.
    #[error(
        "the backing filesystem does not support user extended attributes (user_xattr), which hold the verity metadata: {0}"
    )]
    NoUserXattrs(io::Error),
    /// Building or storing the tree failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The caller asked to stop (the process that asked for the enable is
    /// being killed); the file is left as it was.
    #[error("interrupted")]
    Interrupted,
    /// The caller's check of the descriptor (e.g. its signature) refused it.
    #[error(transparent)]
    Rejected(R),
    /// Another I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Reads the verity metadata of an open file: `Ok(None)` if it is not verity.
pub fn read_metadata(
    file: &impl std::os::fd::AsFd,
) -> io::Result<Option<Result<VerityMetadata, MetadataError>>> {
    read_metadata_with(|buf| rustix::fs::fgetxattr(file, METADATA_XATTR, buf))
}

/// Reads the verity metadata of the file at `path` (e.g. an `O_PATH` descriptor
/// reached through /proc/self/fd).
pub fn read_metadata_at(path: &str) -> io::Result<Option<Result<VerityMetadata, MetadataError>>> {
    read_metadata_with(|buf| rustix::fs::getxattr(path, METADATA_XATTR, buf))
}

fn read_metadata_with(
    get: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Option<Result<VerityMetadata, MetadataError>>> {
    let mut buf = vec![0u8; 512];
    loop {
        match get(&mut buf[..]) {
            Ok(n) => return Ok(Some(VerityMetadata::decode(&buf[..n]))),
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if buf.len() < 65536 => buf.resize(65536, 0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Decides, from the freshly built descriptor, which signature (if any) to
/// store with it — by signing, or by checking a given one — or refuses it.
pub type SignFn<'a, R> = &'a dyn Fn(&Descriptor) -> Result<Option<Vec<u8>>, R>;

/// Asked while hashing: true stops the enable, leaving the file as it was.
pub type InterruptFn<'a> = &'a (dyn Fn() -> bool + Sync);

/// Told the bytes of the file hashed so far, chunk by chunk (holes included).
pub type ProgressFn<'a> = &'a (dyn Fn(u64) + Sync);

/// The data of a file being enabled, read through a check of the caller's
/// wish to stop (every few chunks: a check costs a /proc read), reporting the
/// bytes read (or skipped as holes) to `progress`.
struct Interruptible<'a> {
    file: &'a File,
    interrupted: InterruptFn<'a>,
    progress: ProgressFn<'a>,
    reads: std::sync::atomic::AtomicU32,
}

impl DataSource for Interruptible<'_> {
    fn size(&self) -> io::Result<u64> {
        self.file.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = self
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(4) && (self.interrupted)() {
            return Err(io::Error::from_raw_os_error(libc::ECANCELED));
        }
        let n = self.file.read_at(buf, offset)?;
        (self.progress)(n as u64);
        Ok(n)
    }

    fn is_hole(&self, start: u64, end: u64) -> bool {
        let hole = self.file.is_hole(start, end);
        if hole {
            (self.progress)(end - start);
        }
        hole
    }
}

fn was_interrupted(e: &TreeError) -> bool {
    let io = match e {
        TreeError::Build(BuildError::Io(e)) => e,
        TreeError::Io { source, .. } => source,
        _ => return false,
    };
    io.raw_os_error() == Some(libc::ECANCELED)
}

/// Enables verity on `file` (open for reading) with `params`, storing the tree in
/// `store` if given (else it is rebuilt when first needed) and
/// the signature `sign` returns for the descriptor, before the xattr is set.
/// `interrupted` is asked while hashing and before committing: when it says
/// so, the file stays as it was. `progress` is told the bytes hashed as the
/// hashing goes (from the hashing threads).
pub fn enable_file<R: std::error::Error + 'static>(
    file: &File, store: Option<&TreeStore>, params: &TreeParams, options: BuildOptions,
    sign: SignFn<'_, R>, interrupted: InterruptFn<'_>, progress: ProgressFn<'_>,
) -> Result<VerityMetadata, EnableError<R>> {
    let before = file.metadata().map_err(|source| EnableError::Io {
        context: "stat",
        source,
    })?;
    if !before.is_file() {
        return Err(EnableError::NotRegular);
    }
    match read_metadata(file) {
        Ok(Some(_)) => return Err(EnableError::AlreadyVerity),
        Ok(None) => {}
        Err(e) if is_unsupported(&e) => return Err(EnableError::NoUserXattrs(e)),
        Err(source) => {
            return Err(EnableError::Io {
                context: "read xattrs",
                source,
            });
        }
    }
    let data = Interruptible {
        file,
        interrupted,
        progress,
        reads: Default::default(),
    };
    let built = match store {
        Some(store) => store.build_and_install(&data, params, options),
        None => build_tree(&data, params, &mut NullSink, options).map_err(TreeError::from),
    };
    let descriptor: Descriptor = match built {
        Ok(d) => d,
        Err(e) if was_interrupted(&e) => return Err(EnableError::Interrupted),
        Err(e) => return Err(e.into()),
    };
    let after = file.metadata().map_err(|source| EnableError::Io {
        context: "stat",
        source,
    })?;
    if after.len() != before.len()
        || after.len() != descriptor.data_size()
        || after.modified().ok() != before.modified().ok()
    {
        return Err(EnableError::Changed);
    }
    let signature = sign(&descriptor).map_err(EnableError::Rejected)?;
    if interrupted() {
        return Err(EnableError::Interrupted);
    }
    let metadata = VerityMetadata {
        descriptor,
        signature,
    };
    match rustix::fs::fsetxattr(file, METADATA_XATTR, &metadata.encode(), XattrFlags::CREATE) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => return Err(EnableError::AlreadyVerity),
        Err(e) if is_unsupported(&e.into()) => return Err(EnableError::NoUserXattrs(e.into())),
        Err(e) => {
            return Err(EnableError::Io {
                context: "set the verity xattr",
                source: e.into(),
            });
        }
    }
    file.sync_all().map_err(|source| EnableError::Io {
        context: "fsync",
        source,
    })?;
    Ok(metadata)
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENOSYS))
}
