//! Open file and directory handles. A file handle owns what its open implies:
//! a verity file's verifier, or a plain file's writer registration (released
//! when the handle is dropped, however it is closed).

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::error::{Error, Result};
use crate::merkle::Verifier;
use crate::namespace::DirEntry;
use crate::verity::{NodeVerity, WriteGuard};

/// What kind of file a handle reads.
#[derive(Debug)]
pub(crate) enum HandleKind {
    /// A file served as is; `writer` when opened for writing.
    Plain {
        /// The writer registration of a handle opened for writing.
        writer: Option<WriteGuard>,
    },
    /// A verity file: every read is verified.
    Verity(Arc<Verifier>),
}

/// An open regular file.
#[derive(Debug)]
pub(crate) struct FileHandle {
    /// The node.
    pub(crate) id: u64,
    /// Its verity state.
    pub(crate) verity: Arc<NodeVerity>,
    /// The open data.
    pub(crate) file: File,
    /// Plain or verity.
    pub(crate) kind: HandleKind,
    /// Opened with read access (the enable ioctl needs it: EBADF otherwise).
    pub(crate) readable: bool,
    /// The verifier of a plain handle whose file became verity since it was
    /// opened: its reads are verified from then on.
    pub(crate) late_verifier: OnceLock<Arc<Verifier>>,
    /// What this handle verified ahead of its reads (verity handles only).
    pub(crate) read_ahead: super::readahead::ReadAhead,
}

impl FileHandle {
    /// Opened for writing.
    pub(crate) fn writable(&self) -> bool {
        matches!(self.kind, HandleKind::Plain { writer: Some(_) })
    }
}

/// An open directory.
#[derive(Debug)]
pub(crate) struct DirHandle {
    /// The node.
    pub(crate) id: u64,
    /// The open directory, if the namespace keeps one.
    pub(crate) file: Option<File>,
    /// Entries read at the last rewind.
    pub(crate) snapshot: Mutex<Option<Arc<Vec<DirEntry>>>>,
}

/// A handle of either kind.
#[derive(Debug)]
pub(crate) enum Handle {
    /// A regular file.
    File(FileHandle),
    /// A directory.
    Dir(DirHandle),
}

impl Handle {
    /// The file handle inside.
    pub(crate) fn as_file(&self) -> Result<&FileHandle> {
        match self {
            Handle::File(f) => Ok(f),
            Handle::Dir(_) => Err(Error::IsDirectory),
        }
    }

    /// The directory handle inside.
    pub(crate) fn as_dir(&self) -> Result<&DirHandle> {
        match self {
            Handle::Dir(d) => Ok(d),
            Handle::File(_) => Err(Error::NotDirectory),
        }
    }

    /// The open file or directory, for calls on either (fsync, flags).
    pub(crate) fn file(&self) -> Result<&File> {
        match self {
            Handle::File(f) => Ok(&f.file),
            Handle::Dir(d) => d.file.as_ref().ok_or(Error::NotSupported),
        }
    }
}

/// The result of an open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Opened {
    /// Handle number.
    pub(crate) fh: u64,
    /// The kernel may keep its page cache: it holds only verified pages.
    pub(crate) keep_cache: bool,
    /// The file is a verity file.
    pub(crate) verity: bool,
    /// Closing it must reach the daemon (`flush`): only for writable plain
    /// files, whose close the backing filesystem should see.
    pub(crate) flush_on_close: bool,
}

/// All open handles of the mount.
#[derive(Debug)]
pub(crate) struct Handles {
    map: RwLock<HashMap<u64, Arc<Handle>>>,
    next: AtomicU64,
}

impl Default for Handles {
    fn default() -> Self {
        Self {
            map: RwLock::default(),
            next: AtomicU64::new(1),
        }
    }
}

impl Handles {
    /// Registers a handle, returning its number.
    pub(crate) fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Arc::new(handle));
        fh
    }

    /// Looks a handle up.
    pub(crate) fn get(&self, fh: u64) -> Result<Arc<Handle>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
            .ok_or(Error::UnknownHandle(fh))
    }

    /// Removes a handle.
    pub(crate) fn remove(&self, fh: u64) -> Result<Arc<Handle>> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh)
            .ok_or(Error::UnknownHandle(fh))
    }

    /// Number of open handles.
    pub(crate) fn count(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
