//! Open file and directory handles.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::dir::DirSnapshot;
use super::inode::{Inode, InodeRef};
use crate::error::{Error, Result};
use crate::merkle::Verifier;

/// What kind of file a handle reads.
#[derive(Debug, Clone)]
pub enum HandleKind {
    /// A file served as is.
    Plain {
        /// Opened with write access.
        writable: bool,
    },
    /// A verity file: every read is verified.
    Verity(Arc<Verifier>),
}

/// An open regular file. It keeps its inode but not the inode's `O_PATH`
/// descriptor: the open file is the one descriptor it costs.
#[derive(Debug)]
pub struct FileHandle {
    /// The inode.
    pub inode: Arc<Inode>,
    /// The backing file.
    pub file: File,
    /// Plain or verity.
    pub kind: HandleKind,
    /// Opened with read access (the enable ioctl needs it: EBADF otherwise).
    pub readable: bool,
}

/// An open directory.
#[derive(Debug)]
pub struct DirHandle {
    /// The inode.
    pub inode: InodeRef,
    /// The backing directory.
    pub file: File,
    /// Entries read at the last rewind.
    pub snapshot: Mutex<Option<Arc<DirSnapshot>>>,
}

/// A handle of either kind.
#[derive(Debug)]
pub enum Handle {
    /// A regular file.
    File(FileHandle),
    /// A directory.
    Dir(DirHandle),
}

/// All open handles of the mount.
#[derive(Debug)]
pub struct Handles {
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
    pub fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Arc::new(handle));
        fh
    }

    /// Looks a handle up.
    pub fn get(&self, fh: u64) -> Result<Arc<Handle>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
            .ok_or(Error::UnknownHandle(fh))
    }

    /// Removes a handle.
    pub fn remove(&self, fh: u64) -> Result<Arc<Handle>> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh)
            .ok_or(Error::UnknownHandle(fh))
    }

    /// A regular-file handle.
    pub fn file(&self, fh: u64) -> Result<Arc<Handle>> {
        let h = self.get(fh)?;
        match &*h {
            Handle::File(_) => Ok(h),
            Handle::Dir(_) => Err(Error::from_errno(libc::EISDIR)),
        }
    }

    /// Number of open handles.
    pub fn count(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Handle {
    /// The file handle inside (callers checked the kind with [`Handles::file`]).
    pub fn as_file(&self) -> Result<&FileHandle> {
        match self {
            Handle::File(f) => Ok(f),
            Handle::Dir(_) => Err(Error::from_errno(libc::EISDIR)),
        }
    }

    /// The open backing file or directory.
    pub fn file(&self) -> &File {
        match self {
            Handle::File(f) => &f.file,
            Handle::Dir(d) => &d.file,
        }
    }

    /// The directory handle inside.
    pub fn as_dir(&self) -> Result<&DirHandle> {
        match self {
            Handle::Dir(d) => Ok(d),
            Handle::File(_) => Err(Error::from_errno(libc::ENOTDIR)),
        }
    }
}
