//! Names and attributes of the backing directory: lookup, setattr, and the
//! creation, removal, renaming and linking of entries. Objects created for
//! another user are given to that user (the daemon creates them as itself).

use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, RenameFlags, Timestamps, Uid};

use super::Passthrough;
use super::inode::InodeRef;
use crate::error::{Error, Result};
use crate::namespace::{Attr, Caller, SetAttr, SetTime};

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

impl Passthrough {
    /// Looks `name` up in `parent`, taking one kernel reference on the result.
    pub(super) fn lookup_in(&self, parent: &InodeRef, name: &OsStr) -> Result<Attr> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self
            .inodes
            .opening(|| rustix::fs::openat(&parent.fd, name, flags, Mode::empty()))?;
        let st = rustix::fs::fstat(&fd)?;
        let inode = self.inodes.remember(fd, &st);
        Ok(Attr::from_stat(inode.id, &st))
    }

    /// Changes attributes, through `file` when the change comes through an
    /// open file. (The caller checked that a truncated file is plain and
    /// registered the truncate as a writer.)
    pub(super) fn set_attr(&self, id: u64, change: &SetAttr, file: Option<&File>) -> Result<Attr> {
        let inode = self.inode(id)?;
        if let Some(size) = change.size {
            match file {
                Some(f) => rustix::fs::ftruncate(f, size)?,
                None => rustix::fs::ftruncate(&self.reopen(&inode, OFlags::WRONLY)?, size)?,
            }
        }
        if let Some(mode) = change.mode {
            let mode = Mode::from_raw_mode(mode & 0o7777);
            match file {
                Some(f) => rustix::fs::fchmod(f, mode)?,
                None if inode.kind == FileType::Symlink => {
                    return Err(Error::NotSupported);
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
                    return Err(Error::NotSupported);
                }
                None => rustix::fs::utimensat(
                    rustix::fs::CWD,
                    inode.proc_path().as_str(),
                    &times,
                    AtFlags::empty(),
                )?,
            }
        }
        Ok(Attr::from_stat(inode.id, &Self::stat(&inode)?))
    }

    /// Makes objects created for `caller` theirs (the daemon creates them as itself).
    fn give_to_caller(&self, parent: &InodeRef, name: &OsStr, caller: Caller) -> Result<()> {
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

    /// Gives a just created entry to its caller and looks it up; removes it
    /// when it cannot be given.
    fn finish_create(
        &self, parent: &InodeRef, name: &OsStr, caller: Caller, remove: AtFlags,
    ) -> Result<Attr> {
        if let Err(e) = self.give_to_caller(parent, name, caller) {
            let _ = rustix::fs::unlinkat(&parent.fd, name, remove);
            return Err(e);
        }
        self.lookup_in(parent, name)
    }

    /// Creates a regular file exclusively and opens it with `flags`.
    pub(super) fn create_file(
        &self, parent: u64, name: &OsStr, mode: u32, flags: OFlags, caller: Caller,
    ) -> Result<(Attr, File)> {
        let parent = self.inode(parent)?;
        self.check_mutable_name(&parent, name)?;
        let create_flags = (flags - OFlags::DIRECT)
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC;
        let fd = self.inodes.opening(|| {
            rustix::fs::openat(
                &parent.fd,
                name,
                create_flags,
                Mode::from_raw_mode(mode & 0o7777),
            )
        })?;
        let attr = self.finish_create(&parent, name, caller, AtFlags::empty())?;
        Ok((attr, File::from(fd)))
    }

    /// Creates a device node, FIFO, socket or regular file.
    pub(super) fn make_node(
        &self, parent: u64, name: &OsStr, mode: u32, rdev: u32, caller: Caller,
    ) -> Result<Attr> {
        let parent = self.inode(parent)?;
        self.check_mutable_name(&parent, name)?;
        rustix::fs::mknodat(
            &parent.fd,
            name,
            FileType::from_raw_mode(mode),
            Mode::from_raw_mode(mode & 0o7777),
            rdev.into(),
        )?;
        self.finish_create(&parent, name, caller, AtFlags::empty())
    }

    /// Creates a directory.
    pub(super) fn make_dir(
        &self, parent: u64, name: &OsStr, mode: u32, caller: Caller,
    ) -> Result<Attr> {
        let parent = self.inode(parent)?;
        self.check_mutable_name(&parent, name)?;
        rustix::fs::mkdirat(&parent.fd, name, Mode::from_raw_mode(mode & 0o7777))?;
        self.finish_create(&parent, name, caller, AtFlags::REMOVEDIR)
    }

    /// Creates a symbolic link (its target is stored as given, never resolved here).
    pub(super) fn make_symlink(
        &self, parent: u64, name: &OsStr, target: &Path, caller: Caller,
    ) -> Result<Attr> {
        let parent = self.inode(parent)?;
        self.check_mutable_name(&parent, name)?;
        rustix::fs::symlinkat(target, &parent.fd, name)?;
        self.finish_create(&parent, name, caller, AtFlags::empty())
    }

    /// Removes an entry (`AtFlags::REMOVEDIR` for a directory).
    pub(super) fn remove(&self, parent: u64, name: &OsStr, flags: AtFlags) -> Result<()> {
        let parent = self.inode(parent)?;
        self.check_mutable_name(&parent, name)?;
        Ok(rustix::fs::unlinkat(&parent.fd, name, flags)?)
    }

    /// Renames, honouring RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT.
    pub(super) fn rename_entry(
        &self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: u32,
    ) -> Result<()> {
        let parent = self.inode(parent)?;
        let newparent = self.inode(newparent)?;
        self.check_mutable_name(&parent, name)?;
        self.check_mutable_name(&newparent, newname)?;
        let flags = RenameFlags::from_bits(flags)
            .ok_or_else(|| Error::InvalidArgument("unknown rename flags".into()))?;
        Ok(rustix::fs::renameat_with(
            &parent.fd,
            name,
            &newparent.fd,
            newname,
            flags,
        )?)
    }

    /// Creates a hard link to `id`.
    pub(super) fn hard_link(&self, id: u64, newparent: u64, newname: &OsStr) -> Result<Attr> {
        let inode = self.inode(id)?;
        let newparent = self.inode(newparent)?;
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
}
