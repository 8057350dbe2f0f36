//! The backing-directory namespace: a faithful passthrough of a directory.
//!
//! Every inode the kernel knows is reached through an `O_PATH | O_NOFOLLOW`
//! descriptor of its backing object (`inode`), so all access is relative to
//! descriptors under the backing root (`openat`-style), names must be single
//! components, and no symlink or `..` leads outside the backing directory.
//! Names and attributes (`names`), listings (`dir`), extended attributes
//! (`xattr`, with the verity metadata xattr hidden) and the write permission
//! the enable ioctl needs (`access`, POSIX ACLs included) live in their files.
//! The tree store directory at the top of the backing directory is hidden.

mod access;
mod dir;
mod inode;
mod names;
mod xattr;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use super::{Attr, Caller, DirEntry, Namespace, ROOT_ID, SetAttr, StatFs, XattrReply};
use crate::error::{Error, Result};
use crate::store::read_metadata_at;
use crate::verity::{Claim, Damage, DataOpener, NodeVerity};
use inode::{InodeRef, InodeTable};

/// A backing directory presented as it is.
#[derive(Debug)]
pub(crate) struct Passthrough {
    backing: PathBuf,
    inodes: Arc<InodeTable>,
    /// Name hidden at the top (the tree store inside the backing directory).
    hidden_name: Option<OsString>,
    /// The daemon runs as root: objects it creates for others are given to them.
    is_root: bool,
}

impl Passthrough {
    /// Opens `backing`; `hidden_name` at its top is invisible through the mount.
    pub(crate) fn open(backing: &Path, hidden_name: Option<OsString>) -> io::Result<Self> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root_fd = rustix::fs::open(backing, flags, Mode::empty())?;
        let root_stat = rustix::fs::fstat(&root_fd)?;
        let canonical = backing.canonicalize()?;
        let inodes = InodeTable::new(root_fd, &root_stat, descriptor_budget());
        inodes.register_root_mount();
        Ok(Self {
            backing: canonical,
            inodes: Arc::new(inodes),
            hidden_name,
            is_root: rustix::process::geteuid().is_root(),
        })
    }

    /// The root's descriptor (for opening the tree store inside it).
    pub(crate) fn with_root<T>(&self, f: impl FnOnce(BorrowedFd<'_>) -> T) -> Result<T> {
        let root = self.inode(ROOT_ID)?;
        Ok(f(root.fd.as_fd()))
    }

    fn inode(&self, id: u64) -> Result<InodeRef> {
        self.inodes.get(id)
    }

    /// A single, ordinary path component.
    fn check_name(name: &OsStr) -> Result<()> {
        let b = name.as_bytes();
        if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
            return Err(Error::InvalidName);
        }
        Ok(())
    }

    fn is_hidden(&self, parent: &InodeRef, name: &OsStr) -> bool {
        parent.id == ROOT_ID && self.hidden_name.as_deref() == Some(name)
    }

    /// Validates a name that a change will create or remove.
    fn check_mutable_name(&self, parent: &InodeRef, name: &OsStr) -> Result<()> {
        Self::check_name(name)?;
        if self.is_hidden(parent, name) {
            return Err(Error::ReservedChange(name.to_string_lossy().into_owned()));
        }
        Ok(())
    }

    fn stat(inode: &InodeRef) -> Result<Stat> {
        Ok(rustix::fs::statat(
            &inode.fd,
            "",
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Opens the backing object of `inode` with `flags` (regular files through
    /// their `O_PATH` descriptor, never following a symlink out of it).
    fn reopen(&self, inode: &InodeRef, flags: OFlags) -> Result<File> {
        reopen(&self.inodes, inode, flags)
    }
}

/// See [`Passthrough::reopen`] (shared with the data opener).
fn reopen(inodes: &InodeTable, inode: &InodeRef, flags: OFlags) -> Result<File> {
    let strip = OFlags::CREATE
        | OFlags::EXCL
        | OFlags::NOCTTY
        | OFlags::TRUNC
        | OFlags::DIRECT
        | OFlags::NOFOLLOW;
    let flags = (flags - strip) | OFlags::CLOEXEC;
    let fd = inodes.opening(|| {
        if inode.kind == FileType::Directory {
            return rustix::fs::openat(&inode.fd, ".", flags | OFlags::DIRECTORY, Mode::empty());
        }
        match rustix::fs::open(inode.proc_path().as_str(), flags, Mode::empty()) {
            // O_NOATIME is refused for files the daemon does not own without CAP_FOWNER.
            Err(rustix::io::Errno::PERM) if flags.contains(OFlags::NOATIME) => rustix::fs::open(
                inode.proc_path().as_str(),
                flags - OFlags::NOATIME,
                Mode::empty(),
            ),
            other => other,
        }
    })?;
    Ok(File::from(fd))
}

/// Reopens a file's data through its inode (by kernel file handle when its
/// descriptor was closed meanwhile).
struct Reopener {
    inodes: Arc<InodeTable>,
    id: u64,
}

impl DataOpener for Reopener {
    fn open_data(&self) -> io::Result<File> {
        let inode = self.inodes.get(self.id).map_err(io::Error::other)?;
        reopen(&self.inodes, &inode, OFlags::RDONLY).map_err(io::Error::other)
    }
}

/// How many inode descriptors to keep open: half the open file limit, leaving
/// the rest for open files, trees and the kernel connection.
fn descriptor_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let n = limit.current.unwrap_or(1 << 20).min(1 << 20) as usize;
    n / 2
}

impl Namespace for Passthrough {
    fn source(&self) -> &Path {
        &self.backing
    }

    fn writable(&self) -> bool {
        true
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        let parent = self.inode(parent)?;
        Self::check_name(name)?;
        if self.is_hidden(&parent, name) {
            return Err(Error::Reserved(name.to_string_lossy().into_owned()));
        }
        self.lookup_in(&parent, name)
    }

    fn forget(&self, id: u64, n: u64) {
        self.inodes.forget(id, n);
    }

    fn getattr(&self, id: u64) -> Result<Attr> {
        let inode = self.inode(id)?;
        Ok(Attr::from_stat(inode.id, &Self::stat(&inode)?))
    }

    fn readlink(&self, id: u64) -> Result<Vec<u8>> {
        let inode = self.inode(id)?;
        Ok(rustix::fs::readlinkat(&inode.fd, "", Vec::new())?.into_bytes())
    }

    fn opendir(&self, id: u64) -> Result<Option<File>> {
        let inode = self.inode(id)?;
        if inode.kind != FileType::Directory {
            return Err(Error::NotDirectory);
        }
        Ok(Some(
            self.reopen(&inode, OFlags::RDONLY | OFlags::DIRECTORY)?,
        ))
    }

    fn list(&self, id: u64, dir: Option<&File>) -> Result<Vec<DirEntry>> {
        let inode = self.inode(id)?;
        match dir {
            Some(f) => self.list_dir(&inode, f),
            None => self.list_dir(&inode, &self.reopen(&inode, OFlags::RDONLY)?),
        }
    }

    fn statfs(&self) -> Result<StatFs> {
        let root = self.inode(ROOT_ID)?;
        let s = rustix::fs::fstatvfs(&root.fd)?;
        Ok(StatFs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: s.f_namemax as u32,
            frsize: s.f_frsize as u32,
        })
    }

    fn verity(&self, id: u64) -> Result<Arc<NodeVerity>> {
        Ok(self.inode(id)?.verity.clone())
    }

    fn verity_claim(&self, id: u64) -> Claim {
        let Ok(inode) = self.inode(id) else {
            return Claim::Damaged(Damage::Unreadable(libc::ESTALE));
        };
        match read_metadata_at(&inode.proc_path()) {
            Ok(None) => Claim::Plain,
            Ok(Some(Ok(m))) => Claim::Metadata(m),
            Ok(Some(Err(e))) => Claim::Damaged(Damage::Metadata(e)),
            // A filesystem without xattrs has no verity files.
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Claim::Plain,
            // Metadata that cannot be read must not make a file look unprotected.
            Err(e) => Claim::Damaged(Damage::Unreadable(e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }

    fn open(&self, id: u64, flags: OFlags) -> Result<File> {
        let inode = self.inode(id)?;
        self.reopen(&inode, flags)
    }

    fn data_opener(&self, id: u64) -> Result<Arc<dyn DataOpener>> {
        Ok(Arc::new(Reopener {
            inodes: self.inodes.clone(),
            id,
        }))
    }

    fn describe(&self, id: u64) -> String {
        match self.inode(id) {
            Ok(inode) => std::fs::read_link(inode.proc_path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| format!("inode {id}")),
            Err(_) => format!("inode {id}"),
        }
    }

    fn may_write(&self, id: u64, caller: Caller) -> Result<bool> {
        let inode = self.inode(id)?;
        let st = Self::stat(&inode)?;
        Ok(access::may_write_inode(&inode, &st, caller))
    }

    fn getxattr(&self, id: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
        self.get_xattr(id, name, size)
    }

    fn listxattr(&self, id: u64, size: u32) -> Result<XattrReply> {
        self.list_xattrs(id, size)
    }

    fn setxattr(&self, id: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        self.set_xattr(id, name, value, flags)
    }

    fn removexattr(&self, id: u64, name: &OsStr) -> Result<()> {
        self.remove_xattr(id, name)
    }

    fn setattr(&self, id: u64, change: &SetAttr, file: Option<&File>) -> Result<Attr> {
        self.set_attr(id, change, file)
    }

    fn create(
        &self, parent: u64, name: &OsStr, mode: u32, flags: OFlags, caller: Caller,
    ) -> Result<(Attr, File)> {
        self.create_file(parent, name, mode, flags, caller)
    }

    fn mknod(
        &self, parent: u64, name: &OsStr, mode: u32, rdev: u32, caller: Caller,
    ) -> Result<Attr> {
        self.make_node(parent, name, mode, rdev, caller)
    }

    fn mkdir(&self, parent: u64, name: &OsStr, mode: u32, caller: Caller) -> Result<Attr> {
        self.make_dir(parent, name, mode, caller)
    }

    fn symlink(&self, parent: u64, name: &OsStr, target: &Path, caller: Caller) -> Result<Attr> {
        self.make_symlink(parent, name, target, caller)
    }

    fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.remove(parent, name, AtFlags::empty())
    }

    fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.remove(parent, name, AtFlags::REMOVEDIR)
    }

    fn rename(
        &self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: u32,
    ) -> Result<()> {
        self.rename_entry(parent, name, newparent, newname, flags)
    }

    fn link(&self, id: u64, newparent: u64, newname: &OsStr) -> Result<Attr> {
        self.hard_link(id, newparent, newname)
    }

    fn node_count(&self) -> usize {
        self.inodes.count()
    }

    fn open_descriptors(&self) -> usize {
        self.inodes.open_descriptors()
    }
}
