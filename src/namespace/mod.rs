//! Where names, attributes, extended attributes and data come from.
//!
//! The filesystem core (`crate::fs`) serves any [`Namespace`]: it asks the
//! namespace for names, attributes and the data of regular files, and does the
//! verity part itself (policy, the verified read path, the ioctls), so every
//! namespace gets the same verified reads. [`passthrough`] presents a backing
//! directory; a verified image is the second kind.
//!
//! Namespaces answer with the filesystem's [`Error`]; a read-only namespace
//! answers EROFS to every change (the defaults below).

pub(crate) mod attr;
mod caller;
pub(crate) mod image;
pub(crate) mod passthrough;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

pub(crate) use attr::{Attr, Timespec};

use crate::error::{Error, Result};
use crate::verity::{Claim, DataOpener, NodeVerity};

/// The node id of the root.
pub(crate) const ROOT_ID: u64 = 1;

/// Who is making a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Process id (the calling thread's).
    pub pid: u32,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DirEntry {
    /// Name.
    pub(crate) name: OsString,
    /// Inode number as a listing reports it (`.` and `..`: node ids).
    pub(crate) ino: u64,
    /// Type.
    pub(crate) kind: rustix::fs::FileType,
}

impl DirEntry {
    /// "." or "..".
    pub(crate) fn is_dot(&self) -> bool {
        matches!(self.name.as_bytes(), b"." | b"..")
    }
}

/// A new time for setattr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetTime {
    /// The current time.
    Now,
    /// A given time.
    At(Timespec),
}

/// The attribute changes of one setattr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SetAttr {
    /// New permission bits.
    pub(crate) mode: Option<u32>,
    /// New owner.
    pub(crate) uid: Option<u32>,
    /// New group.
    pub(crate) gid: Option<u32>,
    /// New size (truncate).
    pub(crate) size: Option<u64>,
    /// New access time.
    pub(crate) atime: Option<SetTime>,
    /// New modification time.
    pub(crate) mtime: Option<SetTime>,
    /// The handle the change comes through, if any.
    pub(crate) fh: Option<u64>,
}

/// File system statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StatFs {
    pub(crate) blocks: u64,
    pub(crate) bfree: u64,
    pub(crate) bavail: u64,
    pub(crate) files: u64,
    pub(crate) ffree: u64,
    pub(crate) bsize: u32,
    pub(crate) namelen: u32,
    pub(crate) frsize: u32,
}

/// An answer to getxattr/listxattr: a size query's answer, or the bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum XattrReply {
    /// The size the value (or list) needs.
    Size(u32),
    /// The value (or list).
    Data(Vec<u8>),
}

impl XattrReply {
    /// Answers a request for `bytes` with room for `size` bytes (0: the size).
    pub(crate) fn sized(bytes: Vec<u8>, size: u32) -> Result<Self> {
        match size {
            0 => Ok(Self::Size(bytes.len() as u32)),
            n if (n as usize) < bytes.len() => Err(Error::Range),
            _ => Ok(Self::Data(bytes)),
        }
    }
}

/// A source of names, attributes and data. Node ids are the namespace's;
/// [`ROOT_ID`] is the root. `lookup` (and `create`, `mknod`, `mkdir`,
/// `symlink`, `link`) take one kernel reference on the node they return,
/// `forget` drops them.
pub(crate) trait Namespace: Send + Sync + std::fmt::Debug {
    /// Where the names come from (for status and messages).
    fn source(&self) -> &Path;

    /// Whether changes are possible at all.
    fn writable(&self) -> bool {
        false
    }

    /// Looks `name` up in directory `parent`.
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr>;

    /// Drops `n` kernel references to `id`.
    fn forget(&self, id: u64, n: u64);

    /// Attributes (sizes as stored: the core reports verity files' verified size).
    fn getattr(&self, id: u64) -> Result<Attr>;

    /// Target of a symlink.
    fn readlink(&self, id: u64) -> Result<Vec<u8>>;

    /// Opens a directory for listing (`Ok(None)`: nothing to keep open).
    fn opendir(&self, id: u64) -> Result<Option<File>>;

    /// The entries of a directory now, `.` and `..` included.
    fn list(&self, id: u64, dir: Option<&File>) -> Result<Vec<DirEntry>>;

    /// Statistics of the filesystem.
    fn statfs(&self) -> Result<StatFs>;

    /// The verity state of a node.
    fn verity(&self, id: u64) -> Result<Arc<NodeVerity>>;

    /// What the node's verity metadata says now.
    fn verity_claim(&self, id: u64) -> Claim;

    /// Opens a regular file's data with `flags` (`O_RDONLY`, `O_WRONLY`...).
    fn open(&self, id: u64, flags: rustix::fs::OFlags) -> Result<File>;

    /// Something that reopens a regular file's data for reading later.
    fn data_opener(&self, id: u64) -> Result<Arc<dyn DataOpener>>;

    /// A name for the node in messages (its backing path, typically).
    fn describe(&self, id: u64) -> String;

    /// Whether `caller` may write the node (mode bits and ACL), for the enable
    /// ioctl, which the kernel does not check for FUSE.
    fn may_write(&self, id: u64, caller: Caller) -> Result<bool>;

    /// getxattr; `size` 0 asks for the size.
    fn getxattr(&self, id: u64, name: &OsStr, size: u32) -> Result<XattrReply>;

    /// listxattr; `size` 0 asks for the size.
    fn listxattr(&self, id: u64, size: u32) -> Result<XattrReply>;

    /// setxattr.
    fn setxattr(&self, _id: u64, _name: &OsStr, _value: &[u8], _flags: i32) -> Result<()> {
        Err(Error::ReadOnly)
    }

    /// removexattr.
    fn removexattr(&self, _id: u64, _name: &OsStr) -> Result<()> {
        Err(Error::ReadOnly)
    }

    /// Changes attributes; `file` is the open file the change comes through.
    fn setattr(&self, _id: u64, _change: &SetAttr, _file: Option<&File>) -> Result<Attr> {
        Err(Error::ReadOnly)
    }

    /// Creates (exclusively) and opens a regular file: its attributes and
    /// data; `Err(EEXIST)` when it exists.
    fn create(
        &self, _parent: u64, _name: &OsStr, _mode: u32, _flags: rustix::fs::OFlags, _caller: Caller,
    ) -> Result<(Attr, File)> {
        Err(Error::ReadOnly)
    }

    /// Creates a device node, FIFO, socket or regular file.
    fn mknod(
        &self, _parent: u64, _name: &OsStr, _mode: u32, _rdev: u32, _caller: Caller,
    ) -> Result<Attr> {
        Err(Error::ReadOnly)
    }

    /// Creates a directory.
    fn mkdir(&self, _parent: u64, _name: &OsStr, _mode: u32, _caller: Caller) -> Result<Attr> {
        Err(Error::ReadOnly)
    }

    /// Creates a symbolic link.
    fn symlink(
        &self, _parent: u64, _name: &OsStr, _target: &Path, _caller: Caller,
    ) -> Result<Attr> {
        Err(Error::ReadOnly)
    }

    /// Removes a non-directory entry.
    fn unlink(&self, _parent: u64, _name: &OsStr) -> Result<()> {
        Err(Error::ReadOnly)
    }

    /// Removes an empty directory.
    fn rmdir(&self, _parent: u64, _name: &OsStr) -> Result<()> {
        Err(Error::ReadOnly)
    }

    /// Renames (with `RENAME_*` flags).
    fn rename(
        &self, _parent: u64, _name: &OsStr, _newparent: u64, _newname: &OsStr, _flags: u32,
    ) -> Result<()> {
        Err(Error::ReadOnly)
    }

    /// Creates a hard link to `id`.
    fn link(&self, _id: u64, _newparent: u64, _newname: &OsStr) -> Result<Attr> {
        Err(Error::ReadOnly)
    }

    /// Inodes held for the kernel (status).
    fn node_count(&self) -> usize;

    /// Descriptors held open for nodes (status).
    fn open_descriptors(&self) -> usize {
        0
    }
}
