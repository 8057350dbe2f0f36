//! The filesystem logic, independent of the fuser bindings: a passthrough of the
//! backing directory in which verity files are verified block by block, are
//! immutable, and whose metadata and trees are hidden.
//!
//! Every operation returns `Result<T, Error>`; `crate::fuse` turns calls into
//! replies. Backing access goes through `O_PATH` descriptors held per inode
//! (`openat`-style, `O_NOFOLLOW`), so no symlink or `..` leads outside the backing
//! directory and renames in the backing directory are followed.

mod access;
mod attr;
mod dir;
mod files;
mod handle;
mod inode;
mod ioctl;
mod namespace;
mod policy;
mod ratelimit;
mod stats;
mod status;
mod verity;
mod xattr;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

pub use attr::{Attr, Timespec};
pub use dir::{DirEntry, DirSnapshot};
pub use files::Opened;
pub use files::ReadData;
pub use handle::HandleKind;
pub use inode::ROOT_ID;
pub use namespace::{SetAttr, SetTime, StatFs};
pub use policy::{OnCorruption, Policy};
pub use stats::{Stats, StatsSnapshot};
pub use status::{MountStatus, STATUS_XATTR};
pub use xattr::XattrReply;

use crate::error::{Error, Result};
use crate::merkle::{BlockCache, BuildOptions, TreeSource, Verifier};
use crate::store::{LazyTree, OnRebuild, STORE_DIR_NAME, TreeStore, read_metadata_at};
use handle::Handles;
use inode::{Inode, InodeRef, InodeTable};
use ratelimit::RateLimiter;
use verity::{VerityFile, VerityState};

/// Options of a mount's filesystem logic.
#[derive(Clone, Debug)]
pub struct FsOptions {
    /// Refuse every modification (EROFS).
    pub read_only: bool,
    /// Budget in bytes of the verified tree block cache.
    pub cache_size: usize,
    /// Tree store directory; default `<backing>/.fsverity-fuse`.
    pub tree_dir: Option<PathBuf>,
    /// Threads for (re)building trees; 0 = every core.
    pub build_threads: usize,
    /// What may be opened and what corruption does.
    pub policy: Policy,
}

impl Default for FsOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            cache_size: 64 << 20,
            tree_dir: None,
            build_threads: 0,
            policy: Policy::default(),
        }
    }
}

/// The mount's flags as the kernel sees them now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountFlags {
    /// The mount or its superblock is read-only.
    pub read_only: bool,
    /// The superblock itself is read-only (`mount -o remount,ro`, `--ro`).
    pub super_read_only: bool,
}

/// What the filesystem may ask about the mount serving it: the kernel does not
/// tell a FUSE daemon about `mount -o remount,ro|rw`, yet the enable ioctl,
/// which the kernel forwards whatever the flags, must answer EROFS on a
/// read-only mount.
pub trait MountState: Send + Sync + std::fmt::Debug {
    /// The flags now; `None` when they cannot be read (the mount is gone).
    fn flags(&self) -> Option<MountFlags>;
}

/// Who is making a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Process id.
    pub pid: u32,
}

/// The filesystem of one mount.
#[derive(Debug)]
pub struct VerityFs {
    backing: PathBuf,
    options: FsOptions,
    inodes: InodeTable,
    handles: Handles,
    cache: Arc<BlockCache>,
    store: Option<Arc<TreeStore>>,
    /// Name of the tree store at the top of the backing directory, hidden.
    hidden_name: Option<OsString>,
    stats: Arc<Stats>,
    corruption_log: RateLimiter,
    is_root: bool,
    /// Set by `--on-corruption=abort` after a failure.
    aborted: AtomicBool,
    /// Refusing modifications (EROFS): `--ro`, until the mount says otherwise.
    read_only: AtomicBool,
    /// The mount serving this filesystem, once mounted.
    mount_state: OnceLock<Arc<dyn MountState>>,
    started: std::time::Instant,
}

/// Lookups of one listing run at once (they mostly wait on the disk).
pub(crate) const LOOKUP_THREADS: usize = 8;

/// Why a filesystem could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The backing directory cannot be used.
    #[error("backing directory {path}")]
    Backing {
        /// The path given.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The tree store cannot be used.
    #[error("tree directory {path}")]
    TreeDir {
        /// The path given.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl VerityFs {
    /// Opens `backing` and the tree store.
    pub fn new(backing: &Path, options: FsOptions) -> Result<Self, SetupError> {
        let backing_err = |source| SetupError::Backing {
            path: backing.to_path_buf(),
            source,
        };
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root_fd =
            rustix::fs::open(backing, flags, Mode::empty()).map_err(|e| backing_err(e.into()))?;
        let root_stat = rustix::fs::fstat(&root_fd).map_err(|e| backing_err(e.into()))?;
        let canonical = backing.canonicalize().map_err(backing_err)?;

        let (store, hidden_name) = match &options.tree_dir {
            Some(dir) => {
                let store = TreeStore::open(dir).map_err(|source| SetupError::TreeDir {
                    path: dir.clone(),
                    source,
                })?;
                let canonical_dir = dir.canonicalize().ok();
                let hidden = canonical_dir
                    .filter(|d| d.parent() == Some(canonical.as_path()))
                    .and_then(|d| d.file_name().map(OsStr::to_os_string));
                (Some(Arc::new(store)), hidden)
            }
            None => {
                let dir = canonical.join(STORE_DIR_NAME);
                let store = match TreeStore::open_child(root_fd.as_fd(), STORE_DIR_NAME, &dir) {
                    Ok(s) => Some(Arc::new(s)),
                    Err(e) => {
                        tracing::warn!(
                            store = %dir.display(),
                            error = %e,
                            "no tree store (read-only backing directory?): trees will be rebuilt in memory; use --tree-dir to keep them"
                        );
                        None
                    }
                };
                (store, Some(OsString::from(STORE_DIR_NAME)))
            }
        };
        let inodes = InodeTable::new(root_fd, &root_stat, descriptor_budget());
        inodes.register_root_mount();
        Ok(Self {
            backing: canonical,
            cache: Arc::new(BlockCache::new(options.cache_size)),
            read_only: AtomicBool::new(options.read_only),
            mount_state: OnceLock::new(),
            options,
            inodes,
            handles: Handles::default(),
            store,
            hidden_name,
            stats: Arc::new(Stats::default()),
            corruption_log: RateLimiter::new(10, Duration::from_secs(5)),
            is_root: rustix::process::geteuid().is_root(),
            aborted: AtomicBool::new(false),
            started: std::time::Instant::now(),
        })
    }

    /// The mount's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The verified tree block cache.
    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// The backing directory (canonical).
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// The tree store, if any.
    pub fn store(&self) -> Option<&TreeStore> {
        self.store.as_deref()
    }

    /// Number of inodes the kernel holds.
    pub fn inode_count(&self) -> usize {
        self.inodes.count()
    }

    /// Number of inode descriptors currently open.
    pub fn open_descriptors(&self) -> usize {
        self.inodes.open_descriptors()
    }

    /// Number of open file and directory handles.
    pub fn handle_count(&self) -> usize {
        self.handles.count()
    }

    fn inode(&self, id: u64) -> Result<InodeRef> {
        self.inodes.get(id)
    }

    /// Tells the filesystem which mount serves it.
    pub fn set_mount_state(&self, state: Arc<dyn MountState>) {
        let _ = self.mount_state.set(state);
    }

    /// The mount's flags now, if known.
    fn mount_flags(&self) -> Option<MountFlags> {
        self.mount_state.get().and_then(|m| m.flags())
    }

    /// Refuses modifications on a read-only mount. The kernel itself refuses
    /// writes on a read-only mount before they reach the daemon, so a write
    /// that arrives while the daemon believes it is read-only means the mount
    /// was remounted read-write since: the mount table decides.
    fn check_writable(&self) -> Result<()> {
        if !self.read_only.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.mount_flags() {
            Some(flags) if !flags.read_only => {
                self.read_only.store(false, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(Error::ReadOnly),
        }
    }

    /// Whether the mount is read-only now, asking the mount table (for the
    /// enable ioctl, which the kernel forwards even on read-only mounts).
    fn read_only_now(&self) -> MountFlags {
        let configured = self.read_only.load(Ordering::Relaxed);
        self.mount_flags().unwrap_or(MountFlags {
            read_only: configured,
            super_read_only: configured,
        })
    }

    /// A single, ordinary path component.
    fn check_name(name: &OsStr) -> Result<()> {
        let b = name.as_bytes();
        if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
            return Err(Error::InvalidName);
        }
        Ok(())
    }

    fn is_hidden(&self, parent: &Inode, name: &OsStr) -> bool {
        parent.id == ROOT_ID && self.hidden_name.as_deref() == Some(name)
    }

    /// Validates a name that a modification will create or remove.
    fn check_mutable_name(&self, parent: &Inode, name: &OsStr) -> Result<()> {
        Self::check_name(name)?;
        if self.is_hidden(parent, name) {
            return Err(Error::NotPermitted(format!(
                "'{}' is reserved by fsverity-fuse",
                name.to_string_lossy()
            )));
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

    /// Backing path of an inode, for messages.
    fn describe(&self, inode: &InodeRef) -> String {
        std::fs::read_link(inode.proc_path())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| format!("inode {}", inode.id))
    }

    /// Backing path of an open file, for messages.
    fn describe_handle(&self, f: &handle::FileHandle) -> String {
        std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&f.file)
        ))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| format!("inode {}", f.inode.id))
    }

    /// Attributes of an inode; verity files report their verified size.
    fn attr(&self, inode: &InodeRef, st: &Stat) -> Attr {
        let mut attr = Attr::from_stat(inode.id, st);
        if inode.kind == FileType::RegularFile {
            if let VerityState::Verity(v) = self.verity_state(inode, st, false) {
                attr.size = v.metadata.descriptor.data_size();
            }
        }
        attr
    }

    /// The verity state of a regular file. The metadata is re-read when the
    /// backing ctime changed since the last read (setting or removing an xattr
    /// changes it; with the kernel's fine-grained ctimes a change right after a
    /// query is still seen) or with `force`.
    fn verity_state(&self, inode: &InodeRef, st: &Stat, force: bool) -> VerityState {
        let ctime = attr::ctime_of(st);
        let mut v = inode.verity.lock().unwrap_or_else(|e| e.into_inner());
        if !force && v.checked_ctime == Some(ctime) {
            return v.state.clone();
        }
        let read = match read_metadata_at(&inode.proc_path()) {
            Ok(None) => VerityState::Plain,
            Ok(Some(Ok(m))) => VerityState::Verity(Arc::new(VerityFile::new(m))),
            Ok(Some(Err(e))) => VerityState::Damaged(e.to_string()),
            // Metadata that cannot be read must not make a file look unprotected.
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => VerityState::Plain,
            Err(e) => VerityState::Damaged(format!("cannot read verity metadata: {e}")),
        };
        v.update(ctime, read)
    }

    /// The verifier of a verity file (its tree is found or rebuilt when first needed).
    fn verifier(&self, vf: &VerityFile) -> Arc<Verifier> {
        let mut slot = vf.verifier.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = slot.as_ref() {
            return v.clone();
        }
        let descriptor = &vf.metadata.descriptor;
        let tree: Box<dyn TreeSource> = if descriptor.geometry().tree_size() == 0 {
            Box::new(Vec::<u8>::new())
        } else {
            let stats = self.stats.clone();
            let on_rebuild: OnRebuild = Arc::new(move |_| Stats::add(&stats.trees_built, 1));
            let options = BuildOptions {
                threads: self.options.build_threads,
            };
            Box::new(LazyTree::new(
                self.store.clone(),
                descriptor.clone(),
                options,
                on_rebuild,
            ))
        };
        let verifier = Arc::new(Verifier::new(descriptor.clone(), tree, self.cache.clone()));
        *slot = Some(verifier.clone());
        verifier
    }

    /// Opens the backing object of `inode` with `flags` (never following a symlink
    /// out of it: regular files are reached through their `O_PATH` descriptor).
    fn reopen(&self, inode: &InodeRef, flags: OFlags) -> Result<File> {
        let strip = OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOCTTY
            | OFlags::TRUNC
            | OFlags::DIRECT
            | OFlags::NOFOLLOW;
        let flags = (flags - strip) | OFlags::CLOEXEC;
        let fd = self.inodes.opening(|| {
            if inode.kind == FileType::Directory {
                return rustix::fs::openat(
                    &inode.fd,
                    ".",
                    flags | OFlags::DIRECTORY,
                    Mode::empty(),
                );
            }
            match rustix::fs::open(inode.proc_path().as_str(), flags, Mode::empty()) {
                // O_NOATIME is refused for files the daemon does not own without CAP_FOWNER.
                Err(rustix::io::Errno::PERM) if flags.contains(OFlags::NOATIME) => {
                    rustix::fs::open(
                        inode.proc_path().as_str(),
                        flags - OFlags::NOATIME,
                        Mode::empty(),
                    )
                }
                other => other,
            }
        })?;
        Ok(File::from(fd))
    }

    /// Logs a verification failure (rate-limited) and counts it.
    fn report_corruption(&self, err: &Error) {
        Stats::add(&self.stats.verification_failures, 1);
        if let Some(suppressed) = self.corruption_log.allow() {
            if let Error::Corrupted { path, corruption } = err {
                tracing::error!(
                    path = %path,
                    offset = corruption.pos,
                    level = corruption.level,
                    expected = %corruption.expected,
                    actual = %corruption.actual,
                    suppressed,
                    "FILE CORRUPTED: block does not match its Merkle tree"
                );
            } else {
                tracing::error!(error = %err, suppressed, "verity file unreadable");
            }
        }
    }
}

/// How many inode descriptors to keep open: half the open file limit, leaving
/// the rest for open files, trees and the kernel connection.
fn descriptor_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let n = limit.current.unwrap_or(1 << 20).min(1 << 20) as usize;
    n / 2
}
