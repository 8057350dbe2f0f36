//! The inode table. Each inode the kernel knows is reached through an `O_PATH |
//! O_NOFOLLOW` descriptor of its backing object, so all access is relative to
//! descriptors under the backing root and never re-resolves a path.
//!
//! The kernel may hold more inodes than the process may hold descriptors, so
//! descriptors are a cache: each inode also keeps its kernel file handle
//! (`name_to_handle_at`), descriptors of idle inodes are closed when there are too
//! many, and reopened by handle (`open_by_handle_at`, checked against the backing
//! device and inode number) when needed. Objects whose filesystem gives no handles
//! keep their descriptor.
//!
//! Node ids are the backing inode numbers where that is unambiguous (same device as
//! the backing root), so `st_ino` and hard-link detection match the backing
//! filesystem; other objects get synthetic ids.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rustix::fs::{FileType, Mode, OFlags, Stat};

use crate::error::{Error, Result};
use crate::namespace::ROOT_ID;
use crate::sys::FileHandle;
use crate::verity::NodeVerity;

const SYNTHETIC_BASE: u64 = 1 << 63;

/// One backing object known to the kernel.
#[derive(Debug)]
pub(crate) struct Inode {
    /// FUSE node id.
    pub(crate) id: u64,
    /// Backing (device, inode).
    pub(crate) key: (u64, u64),
    /// File type (never changes for an inode).
    pub(crate) kind: FileType,
    nlookup: AtomicU64,
    /// Verity state and open-file accounting.
    pub(crate) verity: Arc<NodeVerity>,
    /// The cached `O_PATH` descriptor.
    fd: Mutex<Option<Arc<OwnedFd>>>,
    /// How to reopen it; `None`: the descriptor is never closed.
    handle: Option<FileHandle>,
    last_used: AtomicU64,
}

/// An inode with its descriptor open for the duration of an operation.
#[derive(Debug, Clone)]
pub(crate) struct InodeRef {
    /// The inode.
    pub(crate) inode: Arc<Inode>,
    /// Its `O_PATH` descriptor.
    pub(crate) fd: Arc<OwnedFd>,
}

impl std::ops::Deref for InodeRef {
    type Target = Inode;
    fn deref(&self) -> &Inode {
        &self.inode
    }
}

impl AsFd for InodeRef {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl InodeRef {
    /// The path through /proc that reaches this inode (for calls that need a path).
    pub(crate) fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", self.fd.as_raw_fd())
    }
}

/// All inodes the kernel holds references to.
#[derive(Debug)]
pub(crate) struct InodeTable {
    inner: RwLock<Tables>,
    next_synthetic: AtomicU64,
    root_dev: u64,
    /// Descriptors (readable, not O_PATH) of each mount, for `open_by_handle_at`.
    mounts: Mutex<HashMap<i32, Arc<OwnedFd>>>,
    cached: AtomicUsize,
    budget: usize,
    clock: AtomicU64,
    /// Descriptors can be reopened by file handle (the daemon runs as root).
    can_reopen: bool,
}

#[derive(Debug, Default)]
struct Tables {
    by_id: HashMap<u64, Arc<Inode>>,
    by_key: HashMap<(u64, u64), u64>,
}

impl InodeTable {
    /// A table holding the root; at most about `budget` cached descriptors.
    pub(crate) fn new(root_fd: OwnedFd, root_stat: &Stat, budget: usize) -> Self {
        let key = (root_stat.st_dev, root_stat.st_ino);
        let root = Arc::new(Inode {
            id: ROOT_ID,
            key,
            kind: FileType::Directory,
            nlookup: AtomicU64::new(1),
            verity: Arc::default(),
            fd: Mutex::new(Some(Arc::new(root_fd))),
            handle: None,
            last_used: AtomicU64::new(0),
        });
        let mut tables = Tables::default();
        tables.by_id.insert(ROOT_ID, root);
        tables.by_key.insert(key, ROOT_ID);
        Self {
            inner: RwLock::new(tables),
            next_synthetic: AtomicU64::new(SYNTHETIC_BASE),
            root_dev: root_stat.st_dev,
            mounts: Mutex::new(HashMap::new()),
            cached: AtomicUsize::new(1),
            budget: budget.max(16),
            clock: AtomicU64::new(0),
            can_reopen: rustix::process::geteuid().is_root(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The inode with node id `id`, its descriptor open.
    pub(crate) fn get(&self, id: u64) -> Result<InodeRef> {
        let inode = self
            .read()
            .by_id
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownInode(id))?;
        self.open(inode)
    }

    /// Opens (or reuses) the descriptor of `inode`.
    pub(crate) fn open(&self, inode: Arc<Inode>) -> Result<InodeRef> {
        inode.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let mut slot = inode.fd.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fd) = slot.as_ref() {
            let fd = fd.clone();
            drop(slot);
            return Ok(InodeRef { inode, fd });
        }
        let handle = inode.handle.as_ref().ok_or(Error::UnknownInode(inode.id))?;
        let mount = self
            .mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&handle.mount_id)
            .cloned();
        let mount = mount.ok_or(Error::Stale)?;
        let fd = self.opening(|| {
            crate::sys::open_by_handle(
                mount.as_fd(),
                handle,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            )
            .map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))
        })?;
        let st = rustix::fs::fstat(&fd)?;
        if (st.st_dev, st.st_ino) != inode.key {
            return Err(Error::Stale);
        }
        let fd = Arc::new(fd);
        *slot = Some(fd.clone());
        drop(slot);
        self.cached.fetch_add(1, Ordering::Relaxed);
        self.trim();
        Ok(InodeRef { inode, fd })
    }

    /// The kernel file handle of `fd`, registering its mount for reopening.
    /// `None` when the daemon could not reopen it (`open_by_handle_at` needs
    /// CAP_DAC_READ_SEARCH: an unprivileged daemon keeps every descriptor).
    fn handle_of(&self, fd: &OwnedFd, kind: FileType) -> Option<FileHandle> {
        if !self.can_reopen {
            return None;
        }
        let handle = crate::sys::name_to_handle(fd.as_fd()).ok()?;
        let mut mounts = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        if let std::collections::hash_map::Entry::Vacant(slot) = mounts.entry(handle.mount_id) {
            // open_by_handle_at needs an ordinary descriptor on the mount; the
            // first object seen there is its root or a directory leading to it.
            if kind != FileType::Directory {
                return None;
            }
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let dir = rustix::fs::openat(fd, ".", flags, Mode::empty()).ok()?;
            slot.insert(Arc::new(dir));
        }
        Some(handle)
    }

    /// Registers the root's mount (called once at startup).
    pub(crate) fn register_root_mount(&self) {
        if let Ok(root) = self.get(ROOT_ID) {
            let _ = self.handle_of(&root.fd, FileType::Directory);
        }
    }

    /// Records one more kernel reference to the object `fd`/`stat` describes,
    /// reusing the existing inode if the object is already known.
    pub(crate) fn remember(&self, fd: OwnedFd, stat: &Stat) -> InodeRef {
        let key = (stat.st_dev, stat.st_ino);
        let existing = {
            let t = self.read();
            t.by_key.get(&key).and_then(|id| t.by_id.get(id)).cloned()
        };
        if let Some(inode) = existing {
            inode.nlookup.fetch_add(1, Ordering::Relaxed);
            return self.adopt(inode, fd);
        }
        let kind = FileType::from_raw_mode(stat.st_mode);
        let handle = self.handle_of(&fd, kind);
        let mut t = self.write();
        if let Some(inode) = t.by_key.get(&key).and_then(|id| t.by_id.get(id)).cloned() {
            // Raced with another lookup of the same object.
            inode.nlookup.fetch_add(1, Ordering::Relaxed);
            drop(t);
            return self.adopt(inode, fd);
        }
        let natural =
            stat.st_dev == self.root_dev && stat.st_ino > ROOT_ID && stat.st_ino < SYNTHETIC_BASE;
        let id = if natural && !t.by_id.contains_key(&stat.st_ino) {
            stat.st_ino
        } else {
            self.next_synthetic.fetch_add(1, Ordering::Relaxed)
        };
        let fd = Arc::new(fd);
        let inode = Arc::new(Inode {
            id,
            key,
            kind,
            nlookup: AtomicU64::new(1),
            verity: Arc::default(),
            fd: Mutex::new(Some(fd.clone())),
            handle,
            last_used: AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed)),
        });
        t.by_id.insert(id, inode.clone());
        t.by_key.insert(key, id);
        drop(t);
        self.cached.fetch_add(1, Ordering::Relaxed);
        self.trim();
        InodeRef { inode, fd }
    }

    /// Uses a freshly opened descriptor for a known inode (caching it if the
    /// inode has none).
    fn adopt(&self, inode: Arc<Inode>, fd: OwnedFd) -> InodeRef {
        inode.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let mut slot = inode.fd.lock().unwrap_or_else(|e| e.into_inner());
        let fd = match slot.as_ref() {
            Some(existing) => existing.clone(),
            None => {
                let fd = Arc::new(fd);
                *slot = Some(fd.clone());
                self.cached.fetch_add(1, Ordering::Relaxed);
                fd
            }
        };
        drop(slot);
        self.trim();
        InodeRef { inode, fd }
    }

    /// Closes the descriptors of the least recently used idle inodes when more
    /// than the budget are open.
    fn trim(&self) {
        if self.cached.load(Ordering::Relaxed) <= self.budget {
            return;
        }
        // Evict down to half the budget, so the scan below (linear in the
        // number of inodes) runs once per budget/2 new descriptors.
        self.close_idle(self.budget / 2);
    }

    /// Runs `open`, which makes a new descriptor; when the process is out of
    /// descriptors, closes the idle inode descriptors and tries once more.
    pub(crate) fn opening<T>(
        &self, open: impl Fn() -> rustix::io::Result<T>,
    ) -> rustix::io::Result<T> {
        match open() {
            Err(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE) => {
                tracing::debug!("out of descriptors: closing idle inode descriptors");
                self.close_all_idle();
                open()
            }
            other => other,
        }
    }

    /// Closes every idle descriptor it can: the process ran out of descriptors
    /// (EMFILE), and the caller will retry.
    pub(crate) fn close_all_idle(&self) {
        self.close_idle(0);
    }

    /// Closes the descriptors of the least recently used inodes until at most
    /// `target` remain. A descriptor is idle when nobody borrows it right now
    /// (an operation in flight holds a clone); open files do not need their
    /// inode's descriptor, so inodes with open files qualify too.
    fn close_idle(&self, target: usize) {
        let mut candidates: Vec<(u64, Arc<Inode>)> = self
            .read()
            .by_id
            .values()
            .filter(|i| i.handle.is_some() && i.fd.lock().is_ok_and(|fd| fd.is_some()))
            .map(|i| (i.last_used.load(Ordering::Relaxed), i.clone()))
            .collect();
        let excess = self.cached.load(Ordering::Relaxed).saturating_sub(target);
        if excess < candidates.len() {
            candidates.select_nth_unstable_by_key(excess, |(t, _)| *t);
            candidates.truncate(excess);
        }
        tracing::trace!(
            excess,
            budget = self.budget,
            "closing idle inode descriptors"
        );
        let mut closed = 0usize;
        for (_, inode) in candidates {
            let mut slot = inode.fd.lock().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_some_and(|fd| Arc::strong_count(fd) == 1) {
                *slot = None;
                closed += 1;
                self.cached.fetch_sub(1, Ordering::Relaxed);
            }
        }
        tracing::trace!(closed, "closed idle inode descriptors");
    }

    /// Drops `n` kernel references; forgets the inode when none remain.
    pub(crate) fn forget(&self, id: u64, n: u64) {
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
            if let Some(inode) = t.by_id.remove(&id) {
                let had_fd = inode
                    .fd
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .is_some();
                if had_fd {
                    self.cached.fetch_sub(1, Ordering::Relaxed);
                }
            }
            if t.by_key.get(&key) == Some(&id) {
                t.by_key.remove(&key);
            }
        }
    }

    /// The node id of the backing object `key` (device, inode), if the kernel
    /// knows it.
    pub(crate) fn id_of(&self, key: (u64, u64)) -> Option<u64> {
        self.read().by_key.get(&key).copied()
    }

    /// Number of inodes held (for status).
    pub(crate) fn count(&self) -> usize {
        self.read().by_id.len()
    }

    /// Number of descriptors currently cached.
    pub(crate) fn open_descriptors(&self) -> usize {
        self.cached.load(Ordering::Relaxed)
    }
}
