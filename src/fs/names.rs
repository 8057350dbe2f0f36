//! Names, attributes and extended attributes through the mount: the
//! namespace's, with the mount's rules on top (read-only mounts, an aborted
//! mount, verity files' verified size, and their immutability: a verity file
//! may be renamed, linked, unlinked, chmod'ed, chown'ed and touched, never
//! truncated).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::{STATUS_XATTR, VerityFs};
use crate::error::{Error, Result};
use crate::namespace::{Attr, Caller, ROOT_ID, SetAttr, StatFs, XattrReply};
use crate::verity::VerityState;

impl VerityFs {
    /// Looks `name` up in `parent`, taking one kernel reference on the result.
    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        self.lookup_entry(parent, name)
    }

    /// [`VerityFs::lookup`] of an entry readdirplus returns (not counted as
    /// a LOOKUP request).
    pub(crate) fn lookup_entry(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        self.check_not_aborted()?;
        Ok(self.report(self.ns.lookup(parent, name)?))
    }

    /// Drops `n` kernel references to `id`.
    pub(crate) fn forget(&self, id: u64, n: u64) {
        self.ns.forget(id, n);
    }

    /// Attributes of `id`.
    pub(crate) fn getattr(&self, id: u64) -> Result<Attr> {
        if id != ROOT_ID {
            self.check_not_aborted()?;
        }
        Ok(self.report(self.ns.getattr(id)?))
    }

    /// Changes attributes. Truncating a verity file fails with EPERM; a
    /// truncate is a writer while it runs (ETXTBSY during an enable).
    pub(crate) fn setattr(&self, id: u64, change: SetAttr) -> Result<Attr> {
        self.check_writable()?;
        let handle = change.fh.and_then(|fh| self.handles.get(fh).ok());
        let file = handle
            .as_ref()
            .and_then(|h| h.as_file().ok())
            .map(|f| &f.file);
        let _writer = match change.size {
            Some(_) => {
                let attr = self.ns.getattr(id)?;
                if !matches!(self.verity_state(id, &attr, true)?, VerityState::Plain) {
                    return Err(Error::VerityImmutable);
                }
                Some(self.ns.verity(id)?.begin_write()?)
            }
            None => None,
        };
        Ok(self.report(self.ns.setattr(id, &change, file)?))
    }

    /// Target of a symlink.
    pub(crate) fn readlink(&self, id: u64) -> Result<Vec<u8>> {
        self.check_not_aborted()?;
        self.ns.readlink(id)
    }

    /// Creates a device node, FIFO, socket or regular file.
    pub(crate) fn mknod(
        &self, parent: u64, name: &OsStr, mode: u32, rdev: u32, caller: Caller,
    ) -> Result<Attr> {
        self.check_writable()?;
        self.ns.mknod(parent, name, mode, rdev, caller)
    }

    /// Creates a directory.
    pub(crate) fn mkdir(
        &self, parent: u64, name: &OsStr, mode: u32, caller: Caller,
    ) -> Result<Attr> {
        self.check_writable()?;
        self.ns.mkdir(parent, name, mode, caller)
    }

    /// Creates a symbolic link.
    pub(crate) fn symlink(
        &self, parent: u64, name: &OsStr, target: &Path, caller: Caller,
    ) -> Result<Attr> {
        self.check_writable()?;
        self.ns.symlink(parent, name, target, caller)
    }

    /// Removes a non-directory entry.
    pub(crate) fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        self.ns.unlink(parent, name)
    }

    /// Removes an empty directory.
    pub(crate) fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        self.ns.rmdir(parent, name)
    }

    /// Renames.
    pub(crate) fn rename(
        &self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: u32,
    ) -> Result<()> {
        self.check_writable()?;
        self.ns.rename(parent, name, newparent, newname, flags)
    }

    /// Creates a hard link to `id`.
    pub(crate) fn link(&self, id: u64, newparent: u64, newname: &OsStr) -> Result<Attr> {
        self.check_writable()?;
        Ok(self.report(self.ns.link(id, newparent, newname)?))
    }

    /// Statistics of the filesystem.
    pub(crate) fn statfs(&self) -> Result<StatFs> {
        self.ns.statfs()
    }

    /// getxattr; `size` 0 asks for the size. The mount root's
    /// [`STATUS_XATTR`] is the mount's status, as JSON.
    pub(crate) fn getxattr(&self, id: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
        if id == ROOT_ID && name.as_bytes() == STATUS_XATTR.as_bytes() {
            let json = serde_json::to_vec(&self.status()).map_err(|e| Error::Backing(e.into()))?;
            return XattrReply::sized(json, size);
        }
        self.check_not_aborted()?;
        self.ns.getxattr(id, name, size)
    }

    /// listxattr; `size` 0 asks for the size.
    pub(crate) fn listxattr(&self, id: u64, size: u32) -> Result<XattrReply> {
        self.check_not_aborted()?;
        self.ns.listxattr(id, size)
    }

    /// setxattr.
    pub(crate) fn setxattr(&self, id: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        self.check_writable()?;
        self.ns.setxattr(id, name, value, flags)
    }

    /// removexattr.
    pub(crate) fn removexattr(&self, id: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        self.ns.removexattr(id, name)
    }
}
