//! Names and attributes: lookup, getattr/setattr, create/remove/rename/link of
//! directory entries, statfs. Verity files may be renamed, linked, unlinked,
//! chmod'ed, chown'ed and touched, but never truncated.

use std::ffi::OsStr;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, RenameFlags, Timestamps, Uid};

use super::inode::InodeRef;
use super::verity::VerityState;
use super::{Attr, Caller, Timespec, VerityFs};
use crate::error::{Error, Result};

/// A new time for setattr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    /// The current time.
    Now,
    /// A given time.
    At(Timespec),
}

/// The attribute changes of one setattr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SetTime>,
    /// New modification time.
    pub mtime: Option<SetTime>,
    /// The handle the change comes through, if any.
    pub fh: Option<u64>,
}

/// File system statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks (of `frsize`).
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks for unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size.
    pub frsize: u32,
}

fn timestamp(t: Option<SetTime>) -> rustix::fs::Timespec {
    match t {
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        Some(SetTime::Now) => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(SetTime::At(t)) => rustix::fs::Timespec {
            tv_sec: t.sec,
            tv_nsec: t.nsec.into(),
        },
    }
}

impl VerityFs {
    /// Looks `name` up in `parent`, taking one kernel reference on the result.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        self.check_not_aborted()?;
        let parent = self.inode(parent)?;
        Self::check_name(name)?;
        if self.is_hidden(&parent, name) {
            return Err(Error::Reserved(name.to_string_lossy().into_owned()));
        }
        self.lookup_in(&parent, name)
    }

    pub(super) fn lookup_in(&self, parent: &InodeRef, name: &OsStr) -> Result<Attr> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self
            .inodes
            .opening(|| rustix::fs::openat(&parent.fd, name, flags, Mode::empty()))?;
        let st = rustix::fs::fstat(&fd)?;
        let inode = self.inodes.remember(fd, &st);
        Ok(self.attr(&inode, &st))
    }

    /// Drops `n` kernel references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        if ino != super::ROOT_ID {
            self.check_not_aborted()?;
        }
        let inode = self.inode(ino)?;
        let st = Self::stat(&inode)?;
        Ok(self.attr(&inode, &st))
    }

    /// Changes attributes. Truncating a verity file fails with EPERM.
    pub fn setattr(&self, ino: u64, change: SetAttr) -> Result<Attr> {
        let inode = self.inode(ino)?;
        self.check_writable()?;
        let handle = change.fh.and_then(|fh| self.handles.file(fh).ok());
        let file = handle
            .as_ref()
            .and_then(|h| h.as_file().ok())
            .map(|f| &f.file);
        if let Some(size) = change.size {
            let st = Self::stat(&inode)?;
            if !matches!(self.verity_state(&inode, &st, true), VerityState::Plain) {
                return Err(Error::VerityImmutable);
            }
            // A truncate is a writer for as long as it runs: ETXTBSY during an
            // enable, as with the kernel.
            inode
                .verity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .begin_write()?;
            let truncated = match file {
                Some(f) => rustix::fs::ftruncate(f, size).map_err(Error::from),
                None => self
                    .reopen(&inode, OFlags::WRONLY)
                    .and_then(|f| rustix::fs::ftruncate(&f, size).map_err(Error::from)),
            };
            inode
                .verity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .end_write();
            truncated?;
        }
        if let Some(mode) = change.mode {
            let mode = Mode::from_raw_mode(mode & 0o7777);
            match file {
                Some(f) => rustix::fs::fchmod(f, mode)?,
                None if inode.kind == FileType::Symlink => {
                    return Err(Error::from_errno(libc::EOPNOTSUPP));
                }
                None => rustix::fs::chmodat(
                    rustix::fs::CWD,
                    inode.proc_path().as_str(),
                    mode,
                    AtFlags::empty(),
                )?,
            }
        }
        if change.uid.is_some() || change.gid.is_some() {
            let uid = change.uid.map(Uid::from_raw);
            let gid = change.gid.map(Gid::from_raw);
            rustix::fs::chownat(
                &inode.fd,
                "",
                uid,
                gid,
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if change.atime.is_some() || change.mtime.is_some() {
            let times = Timestamps {
                last_access: timestamp(change.atime),
                last_modification: timestamp(change.mtime),
            };
            match file {
                Some(f) => rustix::fs::futimens(f, &times)?,
                None if inode.kind == FileType::Symlink => {
                    return Err(Error::from_errno(libc::EOPNOTSUPP));
                }
                None => rustix::fs::utimensat(
                    rustix::fs::CWD,
                    inode.proc_path().as_str(),
                    &times,
                    AtFlags::empty(),
                )?,
            }
        }
        let st = Self::stat(&inode)?;
        Ok(self.attr(&inode, &st))
    }

    /// Target of a symlink.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        self.check_not_aborted()?;
        let inode = self.inode(ino)?;
        Ok(rustix::fs::readlinkat(&inode.fd, "", Vec::new())?.into_bytes())
    }

    /// Makes objects created for `caller` theirs (the daemon creates them as itself).
    pub(super) fn give_to_caller(
        &self,
        parent: &InodeRef,
        name: &OsStr,
        caller: Caller,
    ) -> Result<()> {
        if !self.is_root || caller.uid == 0 && caller.gid == 0 {
            return Ok(());
        }
        let pst = Self::stat(parent)?;
        // In a set-group-ID directory, new entries take the directory's group.
        let gid = if pst.st_mode & libc::S_ISGID != 0 {
            pst.st_gid
        } else {
            caller.gid
        };
        rustix::fs::chownat(
            &parent.fd,
            name,
            Some(Uid::from_raw(caller.uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// Creates a device node, FIFO, socket or regular file.
    pub fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<Attr> {
        let parent = self.inode(parent)?;
        self.check_writable()?;
        self.check_mutable_name(&parent, name)?;
        let kind = FileType::from_raw_mode(mode);
        rustix::fs::mknodat(
            &parent.fd,
            name,
            kind,
            Mode::from_raw_mode(mode & 0o7777),
            rdev.into(),
        )?;
        self.finish_create(&parent, name, caller)
    }

    fn finish_create(&self, parent: &InodeRef, name: &OsStr, caller: Caller) -> Result<Attr> {
        if let Err(e) = self.give_to_caller(parent, name, caller) {
            let _ = rustix::fs::unlinkat(&parent.fd, name, AtFlags::empty());
            return Err(e);
        }
        self.lookup_in(parent, name)
    }

    /// Creates a directory.
    pub fn mkdir(&self, parent: u64, name: &OsStr, mode: u32, caller: Caller) -> Result<Attr> {
        let parent = self.inode(parent)?;
        self.check_writable()?;
        self.check_mutable_name(&parent, name)?;
        rustix::fs::mkdirat(&parent.fd, name, Mode::from_raw_mode(mode & 0o7777))?;
        if let Err(e) = self.give_to_caller(&parent, name, caller) {
            let _ = rustix::fs::unlinkat(&parent.fd, name, AtFlags::REMOVEDIR);
            return Err(e);
        }
        self.lookup_in(&parent, name)
    }

    /// Creates a symbolic link (its target is stored as given, never resolved here).
    pub fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<Attr> {
        let parent = self.inode(parent)?;
        self.check_writable()?;
        self.check_mutable_name(&parent, name)?;
        rustix::fs::symlinkat(target, &parent.fd, name)?;
        self.finish_create(&parent, name, caller)
    }

    /// Removes a non-directory entry.
    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let parent = self.inode(parent)?;
        self.check_writable()?;
        self.check_mutable_name(&parent, name)?;
        Ok(rustix::fs::unlinkat(&parent.fd, name, AtFlags::empty())?)
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let parent = self.inode(parent)?;
        self.check_writable()?;
        self.check_mutable_name(&parent, name)?;
        Ok(rustix::fs::unlinkat(&parent.fd, name, AtFlags::REMOVEDIR)?)
    }

    /// Renames, honouring RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT.
    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
        let parent = self.inode(parent)?;
        let newparent = self.inode(newparent)?;
        self.check_writable()?;
        self.check_mutable_name(&parent, name)?;
        self.check_mutable_name(&newparent, newname)?;
        let flags = RenameFlags::from_bits(flags).ok_or(Error::from_errno(libc::EINVAL))?;
        Ok(rustix::fs::renameat_with(
            &parent.fd,
            name,
            &newparent.fd,
            newname,
            flags,
        )?)
    }

    /// Creates a hard link to `ino`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &OsStr) -> Result<Attr> {
        let inode = self.inode(ino)?;
        let newparent = self.inode(newparent)?;
        self.check_writable()?;
        self.check_mutable_name(&newparent, newname)?;
        rustix::fs::linkat(
            rustix::fs::CWD,
            inode.proc_path().as_str(),
            &newparent.fd,
            newname,
            AtFlags::SYMLINK_FOLLOW,
        )?;
        self.lookup_in(&newparent, newname)
    }

    /// Statistics of the backing filesystem.
    pub fn statfs(&self) -> Result<StatFs> {
        let root = self.inode(super::ROOT_ID)?;
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
}
