//! The inode table: every inode the kernel knows about holds an `O_PATH` descriptor
//! of its backing object, so all access is relative to descriptors under the
//! backing root and never re-resolves a path.
//!
//! Node ids are the backing inode numbers where that is unambiguous (same device as
//! the backing root), so `st_ino` and hard-link detection match the backing
//! filesystem; other objects get synthetic ids.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rustix::fs::{FileType, Stat};

use super::verity::InodeVerity;

/// The FUSE node id of the root.
pub const ROOT_ID: u64 = 1;
const SYNTHETIC_BASE: u64 = 1 << 63;

/// One backing object known to the kernel.
#[derive(Debug)]
pub struct Inode {
    /// FUSE node id.
    pub id: u64,
    /// `O_PATH | O_NOFOLLOW` descriptor of the backing object.
    pub fd: OwnedFd,
    /// Backing (device, inode).
    pub key: (u64, u64),
    /// File type (never changes for an inode).
    pub kind: FileType,
    nlookup: AtomicU64,
    /// Verity state and open-file accounting.
    pub verity: Mutex<InodeVerity>,
}

impl AsFd for Inode {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Inode {
    /// The path through /proc that reaches this inode (for calls that need a path).
    pub fn proc_path(&self) -> String {
        use std::os::fd::AsRawFd;
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }
}

/// All inodes the kernel holds references to.
#[derive(Debug)]
pub struct InodeTable {
    inner: RwLock<Tables>,
    next_synthetic: AtomicU64,
    root_dev: u64,
}

#[derive(Debug, Default)]
struct Tables {
    by_id: HashMap<u64, Arc<Inode>>,
    by_key: HashMap<(u64, u64), u64>,
}

impl InodeTable {
    /// A table holding the root.
    pub fn new(root_fd: OwnedFd, root_stat: &Stat) -> Self {
        let key = (root_stat.st_dev, root_stat.st_ino);
        let root = Arc::new(Inode {
            id: ROOT_ID,
            fd: root_fd,
            key,
            kind: FileType::Directory,
            nlookup: AtomicU64::new(1),
            verity: Mutex::new(InodeVerity::default()),
        });
        let mut tables = Tables::default();
        tables.by_id.insert(ROOT_ID, root);
        tables.by_key.insert(key, ROOT_ID);
        Self {
            inner: RwLock::new(tables),
            next_synthetic: AtomicU64::new(SYNTHETIC_BASE),
            root_dev: root_stat.st_dev,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The inode with node id `id`.
    pub fn get(&self, id: u64) -> Option<Arc<Inode>> {
        self.read().by_id.get(&id).cloned()
    }

    /// Records one more kernel reference to the object `fd`/`stat` describes,
    /// reusing the existing inode if the object is already known.
    pub fn remember(&self, fd: OwnedFd, stat: &Stat) -> Arc<Inode> {
        let key = (stat.st_dev, stat.st_ino);
        let mut t = self.write();
        if let Some(inode) = t.by_key.get(&key).and_then(|id| t.by_id.get(id)) {
            inode.nlookup.fetch_add(1, Ordering::Relaxed);
            return inode.clone();
        }
        let natural =
            stat.st_dev == self.root_dev && stat.st_ino > ROOT_ID && stat.st_ino < SYNTHETIC_BASE;
        let id = if natural && !t.by_id.contains_key(&stat.st_ino) {
            stat.st_ino
        } else {
            self.next_synthetic.fetch_add(1, Ordering::Relaxed)
        };
        let inode = Arc::new(Inode {
            id,
            fd,
            key,
            kind: FileType::from_raw_mode(stat.st_mode),
            nlookup: AtomicU64::new(1),
            verity: Mutex::new(InodeVerity::default()),
        });
        t.by_id.insert(id, inode.clone());
        t.by_key.insert(key, id);
        inode
    }

    /// Drops `n` kernel references; forgets the inode when none remain.
    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT_ID {
            return;
        }
        let mut t = self.write();
        let Some(inode) = t.by_id.get(&id) else {
            return;
        };
        let remaining = inode.nlookup.load(Ordering::Relaxed).saturating_sub(n);
        inode.nlookup.store(remaining, Ordering::Relaxed);
        if remaining == 0 {
            let key = inode.key;
            t.by_id.remove(&id);
            if t.by_key.get(&key) == Some(&id) {
                t.by_key.remove(&key);
            }
        }
    }

    /// Number of inodes held (for status).
    pub fn count(&self) -> usize {
        self.read().by_id.len()
    }
}
