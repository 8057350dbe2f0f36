//! Extended attributes of the backing directory, passed through except the
//! verity metadata xattr, which is invisible and untouchable through the
//! mount. (POSIX ACLs, `system.posix_acl_*`, pass through like the others.)

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{FileType, XattrFlags};

use super::Passthrough;
use crate::error::{Error, Result};
use crate::namespace::XattrReply;
use crate::store::METADATA_XATTR;

/// The metadata xattr and every name under it (`user.fsverity-fuse.*`).
fn is_reserved(name: &OsStr) -> bool {
    let n = name.as_bytes();
    n.strip_prefix(METADATA_XATTR.as_bytes())
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'.')
}

impl Passthrough {
    fn xattr_path(&self, ino: u64) -> Result<String> {
        let inode = self.inode(ino)?;
        // Through /proc the call reaches the inode itself; a symlink's own
        // xattrs cannot be reached that way, and user xattrs are not allowed on
        // symlinks anyway.
        if inode.kind == FileType::Symlink {
            return Err(Error::NotSupported);
        }
        Ok(inode.proc_path())
    }

    /// getxattr; `size` 0 asks for the size.
    pub(super) fn get_xattr(&self, ino: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
        if is_reserved(name) {
            return Err(Error::NoAttribute);
        }
        let path = self.xattr_path(ino)?;
        if size == 0 {
            let n = rustix::fs::getxattr_query(path.as_str(), name)?;
            return Ok(XattrReply::Size(n as u32));
        }
        let mut buf = vec![0u8; size as usize];
        let n = rustix::fs::getxattr(path.as_str(), name, &mut buf[..])?;
        buf.truncate(n);
        Ok(XattrReply::Data(buf))
    }

    /// listxattr without the reserved name; `size` 0 asks for the size.
    pub(super) fn list_xattrs(&self, ino: u64, size: u32) -> Result<XattrReply> {
        let path = match self.xattr_path(ino) {
            Ok(p) => p,
            Err(_) => {
                return Ok(if size == 0 {
                    XattrReply::Size(0)
                } else {
                    XattrReply::Data(Vec::new())
                });
            }
        };
        let n = rustix::fs::listxattr_query(path.as_str())?;
        let mut buf = vec![0u8; n];
        let n = rustix::fs::listxattr(path.as_str(), &mut buf[..])?;
        buf.truncate(n);
        let filtered: Vec<u8> = buf
            .split_inclusive(|&b| b == 0)
            .filter(|name| !is_reserved(OsStr::from_bytes(name.strip_suffix(&[0]).unwrap_or(name))))
            .flatten()
            .copied()
            .collect();
        if size == 0 {
            return Ok(XattrReply::Size(filtered.len() as u32));
        }
        if filtered.len() > size as usize {
            return Err(Error::Range);
        }
        Ok(XattrReply::Data(filtered))
    }

    /// setxattr; the reserved name is refused.
    pub(super) fn set_xattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> Result<()> {
        if is_reserved(name) {
            return Err(Error::ReservedXattr);
        }
        let path = self.xattr_path(ino)?;
        let flags = XattrFlags::from_bits(flags as u32)
            .ok_or_else(|| Error::InvalidArgument("unknown xattr flags".into()))?;
        Ok(rustix::fs::setxattr(path.as_str(), name, value, flags)?)
    }

    /// removexattr; the reserved name is refused.
    pub(super) fn remove_xattr(&self, ino: u64, name: &OsStr) -> Result<()> {
        if is_reserved(name) {
            return Err(Error::ReservedXattr);
        }
        let path = self.xattr_path(ino)?;
        Ok(rustix::fs::removexattr(path.as_str(), name)?)
    }
}
