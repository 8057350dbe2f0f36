//! The tree store: Merkle trees are derived data, kept in files addressed by the
//! file digest (`<store>/<xx>/<alg>-<digest hex>`), by default in a directory
//! inside the backing directory that the mount hides.
//!
//! A tree is installed atomically (temporary file, fsync, rename, fsync of the
//! directory), so a tree file that exists is complete. Its content is still
//! untrusted: every block read from it is verified up to the descriptor's root.

use std::fs::{self, File};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use lru::LruCache;
use rustix::fs::{Mode, OFlags};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::format::{Descriptor, TreeParams};
use crate::merkle::{BuildError, BuildOptions, DataSource, TreeSink, VecSink, build_tree};

/// Name of the default store directory at the top of a backing directory.
pub const STORE_DIR_NAME: &str = ".fsverity-fuse";

/// Where trees live. All access is relative to a descriptor of the store
/// directory, never following symlinks, so the store works even when a mount
/// covers the path it was opened by, and cannot be redirected elsewhere.
#[derive(Debug)]
pub struct TreeStore {
    root: PathBuf,
    dir: OwnedFd,
    /// Tree files kept open, bounded: a mount may know far more verity files
    /// than it may hold descriptors.
    open_files: Mutex<LruCache<String, Arc<File>>>,
}

/// How many tree files a store keeps open at once: up to 128, and no more than
/// an eighth of the open-file limit.
fn open_files_cache() -> Mutex<LruCache<String, Arc<File>>> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let n = (limit.current.unwrap_or(1024) / 8).clamp(4, 128) as usize;
    Mutex::new(LruCache::new(NonZeroUsize::new(n).expect("at least 4")))
}

/// Why a tree could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Reading the data or the store failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// Rebuilding from the data gave a different root: the data does not match
    /// the descriptor.
    #[error("data does not match its descriptor: rebuilt root {found}, descriptor root {expected}")]
    RootMismatch {
        /// Root in the descriptor.
        expected: String,
        /// Root of the rebuilt tree.
        found: String,
    },
    /// The data cannot be hashed: unreadable, changed while it was hashed, or
    /// too large for a tree.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A tree ready for verification: in the store or, when the store cannot be
/// written, held in memory.
#[derive(Debug)]
pub enum TreeData {
    /// A tree file in the store.
    Stored(TreeReader),
    /// A tree built in memory.
    Memory(Vec<u8>),
}

impl TreeData {
    /// As a source of tree bytes.
    pub fn into_source(self) -> Box<dyn DataSource + Send> {
        match self {
            TreeData::Stored(r) => Box::new(r),
            TreeData::Memory(v) => Box::new(v),
        }
    }
}

/// Reads a stored tree through the store's bounded set of open tree files,
/// reopening the file when it was closed to make room.
#[derive(Debug)]
pub struct TreeReader {
    store: Arc<TreeStore>,
    dir: String,
    name: String,
}

impl TreeReader {
    fn file(&self) -> io::Result<Arc<File>> {
        self.store.cached_file(&self.dir, &self.name)
    }
}

impl DataSource for TreeReader {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file()?.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&*self.file()?, buf, offset)
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> TreeError {
    let context = context.into();
    move |source| TreeError::Io { context, source }
}

impl TreeStore {
    /// A store rooted at `root`, which is created (mode 0700) if missing.
    pub fn open(root: &Path) -> io::Result<Self> {
        match fs::create_dir(root) {
            Ok(()) => fs::set_permissions(root, fs::Permissions::from_mode(0o700))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Self::existing(root)
    }

    /// The store directory `name` inside the directory `parent` (created mode
    /// 0700 if missing). A symlink there is refused, so a planted link cannot
    /// redirect the daemon's writes.
    pub fn open_child(parent: BorrowedFd<'_>, name: &str, display: &Path) -> io::Result<Self> {
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let flags = OFlags::DIRECTORY | OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(|e| match e {
            rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP => io::Error::other(format!(
                "{} is not a directory (a symlink is not accepted)",
                display.display()
            )),
            e => e.into(),
        })?;
        Ok(Self {
            root: display.to_path_buf(),
            dir,
            open_files: open_files_cache(),
        })
    }

    /// A store at `root` that must already exist.
    pub fn existing(root: &Path) -> io::Result<Self> {
        let dir = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            root: root.to_path_buf(),
            dir,
            open_files: open_files_cache(),
        })
    }

    /// The store's directory, as it was named when opened.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the tree of `descriptor` lives, relative to the store: (fan-out
    /// directory, file name).
    fn tree_name(descriptor: &Descriptor) -> (String, String) {
        let hex = descriptor.digest().to_hex();
        (
            hex[..2].to_owned(),
            format!("{}-{hex}", descriptor.algorithm()),
        )
    }

    /// Where the tree of `descriptor` lives (for messages).
    pub fn tree_path(&self, descriptor: &Descriptor) -> PathBuf {
        let (dir, name) = Self::tree_name(descriptor);
        self.root.join(dir).join(name)
    }

    fn subdir(&self, name: &str, create: bool) -> io::Result<OwnedFd> {
        if create {
            match rustix::fs::mkdirat(&self.dir, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(&self.dir, name, flags, Mode::empty())?)
    }

    /// Opens the stored tree if it exists with the expected size.
    pub fn open_tree(&self, descriptor: &Descriptor) -> Result<Option<File>, TreeError> {
        let (dir, name) = Self::tree_name(descriptor);
        let context = || format!("open {}", self.tree_path(descriptor).display());
        let dir = match self.subdir(&dir, false) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(context())(e)),
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty()) {
            Ok(fd) => {
                let f = File::from(fd);
                let meta = f.metadata().map_err(io_err(context()))?;
                Ok(
                    (meta.is_file() && meta.len() == descriptor.geometry().tree_size())
                        .then_some(f),
                )
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(io_err(context())(e.into())),
        }
    }

    /// A reader of the stored tree of `descriptor`, if it exists with the expected size.
    pub fn tree_reader(
        self: &Arc<Self>,
        descriptor: &Descriptor,
    ) -> Result<Option<TreeReader>, TreeError> {
        let Some(file) = self.open_tree(descriptor)? else {
            return Ok(None);
        };
        let (dir, name) = Self::tree_name(descriptor);
        lock(&self.open_files).put(name.clone(), Arc::new(file));
        Ok(Some(TreeReader {
            store: self.clone(),
            dir,
            name,
        }))
    }

    fn cached_file(&self, dir: &str, name: &str) -> io::Result<Arc<File>> {
        if let Some(f) = lock(&self.open_files).get(name) {
            return Ok(f.clone());
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.subdir(dir, false)?, name, flags, Mode::empty())?;
        let file = Arc::new(File::from(fd));
        lock(&self.open_files).put(name.to_owned(), file.clone());
        Ok(file)
    }

    /// A temporary file in the store for a tree being built.
    pub fn temp_file(&self) -> io::Result<TempTree<'_>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(".tmp-{}-{n}", std::process::id());
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.dir, name.as_str(), flags, Mode::from_raw_mode(0o600))?;
        Ok(TempTree {
            file: File::from(fd),
            name,
            store: self,
            installed: false,
        })
    }

    /// Builds the tree of `data` with `params` into the store, returns the
    /// descriptor. The tree is durable when this returns.
    pub fn build_and_install(
        &self,
        data: &dyn DataSource,
        params: &TreeParams,
        options: BuildOptions,
    ) -> Result<Descriptor, TreeError> {
        let mut temp = self
            .temp_file()
            .map_err(io_err(format!("create a file in {}", self.root.display())))?;
        let descriptor = build_tree(data, params, &mut temp.file as &mut dyn TreeSink, options)?;
        if descriptor.geometry().tree_size() > 0 {
            temp.install(&descriptor)
                .map_err(io_err(format!("install tree in {}", self.root.display())))?;
        }
        Ok(descriptor)
    }
}

/// A tree being written into the store; removed on drop unless installed.
#[derive(Debug)]
pub struct TempTree<'a> {
    /// The file being written.
    pub file: File,
    name: String,
    store: &'a TreeStore,
    installed: bool,
}

impl TempTree<'_> {
    /// Durably moves the completely written tree into place.
    pub fn install(&mut self, descriptor: &Descriptor) -> io::Result<()> {
        self.file.sync_all()?;
        let (dir_name, name) = TreeStore::tree_name(descriptor);
        let dir = self.store.subdir(&dir_name, true)?;
        rustix::fs::renameat(&self.store.dir, self.name.as_str(), &dir, name.as_str())?;
        self.installed = true;
        rustix::fs::fsync(&dir)?;
        let root = rustix::fs::openat(
            &self.store.dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::fs::fsync(&root)?;
        Ok(())
    }
}

impl Drop for TempTree<'_> {
    fn drop(&mut self) {
        if !self.installed {
            let _ = rustix::fs::unlinkat(
                &self.store.dir,
                self.name.as_str(),
                rustix::fs::AtFlags::empty(),
            );
        }
    }
}

/// Rebuilds the tree of `data` for `descriptor`, into `store` when it can be
/// written, else in memory. Accepts it only if its root matches the descriptor.
pub fn rebuild_tree(
    store: Option<&Arc<TreeStore>>,
    data: &dyn DataSource,
    descriptor: &Descriptor,
    options: BuildOptions,
) -> Result<TreeData, TreeError> {
    let check = |built: &Descriptor| {
        if built == descriptor {
            Ok(())
        } else {
            Err(TreeError::RootMismatch {
                expected: descriptor.root_hash().to_hex(),
                found: built.root_hash().to_hex(),
            })
        }
    };
    if let Some(store) = store {
        match store.temp_file() {
            Ok(mut temp) => {
                let built = build_tree(
                    data,
                    descriptor.params(),
                    &mut temp.file as &mut dyn TreeSink,
                    options,
                )?;
                check(&built)?;
                temp.install(descriptor).map_err(io_err(format!(
                    "install tree in {}",
                    store.root().display()
                )))?;
                drop(temp);
                return match store.tree_reader(descriptor)? {
                    Some(r) => Ok(TreeData::Stored(r)),
                    None => Err(io_err("reopen installed tree")(
                        io::ErrorKind::NotFound.into(),
                    )),
                };
            }
            Err(e) => tracing::warn!(
                store = %store.root().display(),
                error = %e,
                "tree store is not writable; keeping the rebuilt tree in memory"
            ),
        }
    }
    let mut sink = VecSink::default();
    let built = build_tree(data, descriptor.params(), &mut sink, options)?;
    check(&built)?;
    Ok(TreeData::Memory(sink.0))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
