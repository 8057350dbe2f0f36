//! Listings of backing directories, with the tree store hidden at the top
//! and `.`/`..` carrying node ids.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Dir, OFlags};

use super::Passthrough;
use super::inode::InodeRef;
use crate::error::Result;
use crate::namespace::{DirEntry, ROOT_ID};

impl Passthrough {
    /// The entries of directory `inode`, read from its open descriptor `dir`.
    pub(super) fn list_dir(&self, inode: &InodeRef, dir: &File) -> Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in Dir::read_from(dir)? {
            let entry = entry?;
            let name = OsString::from(std::ffi::OsStr::from_bytes(entry.file_name().to_bytes()));
            if self.is_hidden(inode, &name) {
                continue;
            }
            let ino = match name.as_bytes() {
                b"." => inode.id,
                b".." => self.parent_id(inode, dir),
                _ => entry.ino(),
            };
            entries.push(DirEntry {
                name,
                ino,
                kind: entry.file_type(),
            });
        }
        Ok(entries)
    }

    /// The node id of a directory's parent, as `stat(dir/..)` through the mount
    /// reports it: the root's parent is the root itself.
    fn parent_id(&self, inode: &InodeRef, dir: &File) -> u64 {
        if inode.id == ROOT_ID {
            return ROOT_ID;
        }
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::openat(dir, "..", flags, rustix::fs::Mode::empty())
            .and_then(|fd| rustix::fs::fstat(&fd))
            .ok()
            .and_then(|st| self.inodes.id_of((st.st_dev, st.st_ino)))
            .unwrap_or(ROOT_ID)
    }
}
