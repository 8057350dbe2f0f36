//! Directories: listing (a snapshot taken at each rewind, so offsets stay stable
//! while entries change) with the tree store hidden at the top.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use rustix::fs::{Dir, FileType, OFlags};

use super::handle::{DirHandle, Handle};
use super::{Attr, LOOKUP_THREADS, VerityFs};
use crate::error::{Error, Result};

/// Fewest lookups worth a thread of their own.
const LOOKUP_PER_THREAD: usize = 4;

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Name.
    pub name: OsString,
    /// Backing inode number.
    pub ino: u64,
    /// Type.
    pub kind: FileType,
}

impl DirEntry {
    /// "." or "..".
    pub fn is_dot(&self) -> bool {
        matches!(self.name.as_bytes(), b"." | b"..")
    }
}

/// The entries of a directory at one moment.
#[derive(Debug, Default)]
pub struct DirSnapshot {
    /// Entries in backing order.
    pub entries: Vec<DirEntry>,
}

impl VerityFs {
    /// Opens a directory.
    pub fn opendir(&self, ino: u64) -> Result<u64> {
        self.check_not_aborted()?;
        let inode = self.inode(ino)?;
        if inode.kind != FileType::Directory {
            return Err(Error::from_errno(libc::ENOTDIR));
        }
        let file = self.reopen(&inode, OFlags::RDONLY | OFlags::DIRECTORY)?;
        Ok(self.handles.insert(Handle::Dir(DirHandle {
            inode,
            file,
            snapshot: Mutex::new(None),
        })))
    }

    /// The entries of an open directory; offset 0 takes a fresh snapshot.
    pub fn readdir(&self, fh: u64, offset: u64) -> Result<Arc<DirSnapshot>> {
        let handle = self.handles.get(fh)?;
        let dir = handle.as_dir()?;
        let mut slot = dir.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if offset == 0 || slot.is_none() {
            *slot = Some(Arc::new(self.snapshot(dir)?));
        }
        Ok(slot.clone().unwrap_or_default())
    }

    fn snapshot(&self, dir: &DirHandle) -> Result<DirSnapshot> {
        let mut entries = Vec::new();
        let at_top = dir.inode.id == super::ROOT_ID;
        for entry in Dir::read_from(&dir.file)? {
            let entry = entry?;
            let name = OsString::from(std::ffi::OsStr::from_bytes(entry.file_name().to_bytes()));
            if at_top && self.is_hidden(&dir.inode, &name) {
                continue;
            }
            let ino = match name.as_bytes() {
                b"." => dir.inode.id,
                b".." => self.parent_id(dir),
                _ => entry.ino(),
            };
            entries.push(DirEntry {
                name,
                ino,
                kind: entry.file_type(),
            });
        }
        Ok(DirSnapshot { entries })
    }

    /// The node id of a directory's parent, as `stat(dir/..)` through the mount
    /// reports it: the root's parent is the root itself.
    fn parent_id(&self, dir: &DirHandle) -> u64 {
        if dir.inode.id == super::ROOT_ID {
            return super::ROOT_ID;
        }
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::openat(&dir.file, "..", flags, rustix::fs::Mode::empty())
            .and_then(|fd| rustix::fs::fstat(&fd))
            .ok()
            .and_then(|st| self.inodes.id_of((st.st_dev, st.st_ino)))
            .unwrap_or(super::ROOT_ID)
    }

    /// Looks an entry of an open directory up for readdirplus (one kernel
    /// reference on success, to be dropped with [`VerityFs::forget`] if unused).
    pub fn readdirplus_entry(&self, fh: u64, entry: &DirEntry) -> Result<Attr> {
        let handle = self.handles.get(fh)?;
        let dir = handle.as_dir()?;
        if entry.is_dot() {
            // The kernel does not link "." and ".." from readdirplus; it reports
            // their inode numbers (the directory's and its parent's node ids).
            let st = Self::stat(&dir.inode)?;
            return Ok(Attr::from_stat(entry.ino, &st));
        }
        self.lookup_in(&dir.inode, &entry.name)
    }

    /// [`VerityFs::readdirplus_entry`] for several entries at once, on up to
    /// [`LOOKUP_THREADS`] threads: a cold listing waits on one inode and one
    /// xattr read per entry, which a disk serves far faster in parallel than
    /// one by one. (Threads of the call's own, not a pool: a pool's idle
    /// workers spin, and would take the CPU from the request threads.)
    pub fn readdirplus_entries(&self, fh: u64, entries: &[DirEntry]) -> Vec<Result<Attr>> {
        let one_by_one = |part: &[DirEntry]| -> Vec<Result<Attr>> {
            part.iter().map(|e| self.readdirplus_entry(fh, e)).collect()
        };
        if entries.len() < 2 * LOOKUP_PER_THREAD {
            return one_by_one(entries);
        }
        let per_thread = entries
            .len()
            .div_ceil(LOOKUP_THREADS)
            .max(LOOKUP_PER_THREAD);
        std::thread::scope(|scope| {
            let mut parts = entries.chunks(per_thread);
            let first = parts.next().unwrap_or_default();
            let others: Vec<_> = parts
                .map(|part| {
                    (
                        part,
                        std::thread::Builder::new().spawn_scoped(scope, || one_by_one(part)),
                    )
                })
                .collect();
            let mut attrs = one_by_one(first);
            for (part, thread) in others {
                match thread {
                    Ok(thread) => match thread.join() {
                        Ok(done) => attrs.extend(done),
                        // Reported like a panic of this thread (the adapter
                        // answers EIO); redoing the part could take twice the
                        // references its lookups took before the panic.
                        Err(panic) => std::panic::resume_unwind(panic),
                    },
                    // A thread that cannot be started: this one does its part.
                    Err(_) => attrs.extend(one_by_one(part)),
                }
            }
            attrs
        })
    }

    /// Closes a directory handle.
    pub fn releasedir(&self, fh: u64) -> Result<()> {
        self.handles.remove(fh).map(drop)
    }
}
