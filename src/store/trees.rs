//! The tree store: Merkle trees are derived data, kept in files addressed by the
//! file digest (`<store>/<xx>/<alg>-<digest hex>`), by default in a directory
//! inside the backing directory that the mount hides.
//!
//! A tree is installed atomically (temporary file, fsync, rename, fsync of the
//! directory), so a tree file that exists is complete. Its content is still
//! untrusted: every block read from it is verified up to the descriptor's root.
//! Every file of the store is opened without blocking and without following
//! symlinks, and refused unless it is a regular file.

use std::fs::{self, File};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::format::{Descriptor, HashAlgorithm, HashValue, TreeParams};
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
        expected: Box<HashValue>,
        /// Root of the rebuilt tree.
        found: Box<HashValue>,
    },
    /// The data cannot be hashed: unreadable, changed while it was hashed, or
    /// too large for a tree.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// A rebuilt tree: installed in the store, or, when the store cannot be
/// written, held in memory.
#[derive(Debug)]
pub enum RebuiltTree {
    /// The tree file in the store, open.
    Stored(File),
    /// The tree in memory.
    Memory(Vec<u8>),
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
        let store = Self {
            root: display.to_path_buf(),
            dir,
        };
        store.remove_stale_temps();
        Ok(store)
    }

    /// A store at `root` that must already exist.
    pub fn existing(root: &Path) -> io::Result<Self> {
        let dir = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let store = Self {
            root: root.to_path_buf(),
            dir,
        };
        store.remove_stale_temps();
        Ok(store)
    }

    /// The store's directory, as it was named when opened.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the tree of `descriptor` lives, relative to the store: (fan-out
    /// directory, file name).
    fn tree_name(descriptor: &Descriptor) -> (String, String) {
        Self::name_of(descriptor.algorithm(), &descriptor.digest())
    }

    /// The (fan-out directory, file name) of the tree of the file with `digest`.
    fn name_of(algorithm: HashAlgorithm, digest: &HashValue) -> (String, String) {
        let hex = digest.to_hex();
        (hex[..2].to_owned(), format!("{algorithm}-{hex}"))
    }

    fn subdir(&self, name: &str, create: bool) -> io::Result<OwnedFd> {
        if create {
            match rustix::fs::mkdirat(&self.dir, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let flags = OFlags::DIRECTORY
            | OFlags::NOFOLLOW
            | OFlags::RDONLY
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(&self.dir, name, flags, Mode::empty())?)
    }

    /// Opens the stored tree if it exists with the expected size.
    pub fn open_tree(&self, descriptor: &Descriptor) -> Result<Option<File>, TreeError> {
        let size = descriptor.geometry().tree_size();
        self.open_tree_of(descriptor.algorithm(), &descriptor.digest(), size)
    }

    /// Opens the stored tree of the file with `digest`, if it exists with
    /// `size` bytes (a file known only by its digest: the tree's root block
    /// then gives the rest of its descriptor, which the digest vouches for).
    pub fn open_tree_of(
        &self, algorithm: HashAlgorithm, digest: &HashValue, size: u64,
    ) -> Result<Option<File>, TreeError> {
        let (dir, name) = Self::name_of(algorithm, digest);
        let path = || self.root.join(&dir).join(&name);
        let context = || format!("open {}", path().display());
        let dir = match self.subdir(&dir, false) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(e) => return Err(io_err(context())(e)),
        };
        match open_regular(&dir, &name) {
            Ok(f) => {
                let meta = f.metadata().map_err(io_err(context()))?;
                Ok((meta.len() == size).then_some(f))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // Something else planted under the tree's name (a FIFO, a device, a
            // symlink): no tree; a rebuild replaces it.
            Err(e) if is_not_regular(&e) => {
                tracing::warn!(path = %path().display(), error = %e, "ignoring a tree store entry that is not a regular file");
                Ok(None)
            }
            Err(e) => Err(io_err(context())(e)),
        }
    }

    /// A temporary file in the store for a tree being built: unnamed
    /// (`O_TMPFILE`) where the filesystem allows it, so a killed build leaves
    /// nothing behind; else under an unpredictable name, created exclusively.
    pub fn temp_file(&self) -> io::Result<TempTree<'_>> {
        let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.dir, ".", flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => {
                return Ok(TempTree {
                    file: File::from(fd),
                    name: None,
                    store: self,
                    installed: false,
                });
            }
            Err(
                rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::ISDIR
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::NOENT,
            ) => {}
            Err(e) => return Err(e.into()),
        }
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
        for _ in 0..16 {
            let name = temp_name()?;
            match rustix::fs::openat(&self.dir, name.as_str(), flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    return Ok(TempTree {
                        file: File::from(fd),
                        name: Some(name),
                        store: self,
                        installed: false,
                    });
                }
                Err(rustix::io::Errno::EXIST) => last = io::ErrorKind::AlreadyExists.into(),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last)
    }

    /// Removes temporary files that builds of processes no longer running
    /// left behind (named temporaries only exist where `O_TMPFILE` does not).
    fn remove_stale_temps(&self) {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let Ok(dir) = rustix::fs::openat(&self.dir, ".", flags, Mode::empty()) else {
            return;
        };
        let Ok(entries) = rustix::fs::Dir::read_from(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = temp_owner(&name) else {
                continue;
            };
            let alive = pid == std::process::id()
                || rustix::process::Pid::from_raw(pid as i32).is_some_and(|p| {
                    !matches!(
                        rustix::process::test_kill_process(p),
                        Err(rustix::io::Errno::SRCH)
                    )
                });
            if !alive && entry.file_type() == rustix::fs::FileType::RegularFile {
                match rustix::fs::unlinkat(&self.dir, name.as_str(), rustix::fs::AtFlags::empty()) {
                    Ok(()) => {
                        tracing::info!(store = %self.root.display(), name, "removed a stale temporary tree")
                    }
                    Err(e) => {
                        tracing::debug!(name, error = %e, "cannot remove a stale temporary tree")
                    }
                }
            }
        }
    }

    /// Builds the tree of `data` with `params` into the store, returns the
    /// descriptor. The tree is durable when this returns.
    pub fn build_and_install(
        &self, data: &dyn DataSource, params: &TreeParams, options: BuildOptions,
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
    /// Its name in the store; `None` for an unnamed (`O_TMPFILE`) file.
    name: Option<String>,
    store: &'a TreeStore,
    installed: bool,
}

impl TempTree<'_> {
    /// Durably moves the completely written tree into place, replacing
    /// whatever had its name.
    pub fn install(&mut self, descriptor: &Descriptor) -> io::Result<()> {
        self.file.sync_all()?;
        if self.name.is_none() {
            // Give the unnamed file a name, then rename it over the final one
            // (which may exist: a damaged tree, or something planted there).
            let name = temp_name()?;
            let proc = format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&self.file)
            );
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc.as_str(),
                &self.store.dir,
                name.as_str(),
                rustix::fs::AtFlags::SYMLINK_FOLLOW,
            )?;
            self.name = Some(name);
        }
        let (dir_name, name) = TreeStore::tree_name(descriptor);
        let dir = self.store.subdir(&dir_name, true)?;
        let temp = self.name.as_deref().unwrap_or_default();
        rustix::fs::renameat(&self.store.dir, temp, &dir, name.as_str())?;
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
        if let (false, Some(name)) = (self.installed, &self.name) {
            let _ =
                rustix::fs::unlinkat(&self.store.dir, name.as_str(), rustix::fs::AtFlags::empty());
        }
    }
}

const TEMP_PREFIX: &str = ".tmp-";

/// `.tmp-<pid>-<random hex>`: unpredictable, and saying whose it is.
fn temp_name() -> io::Result<String> {
    let mut random = [0u8; 8];
    let mut filled = 0;
    while filled < random.len() {
        filled +=
            rustix::rand::getrandom(&mut random[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        hex::encode(random)
    ))
}

/// The process that made a temporary file, from its name.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok().filter(|&p| p > 0)
}

/// Opens a file of the store for reading, never blocking (a FIFO planted in
/// the store must not hang the daemon) and never following a symlink; refuses
/// anything but a regular file before a single byte is read.
pub(crate) fn open_regular(dir: &impl std::os::fd::AsFd, name: &str) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP => not_regular("a symlink"),
        e => e.into(),
    })?;
    let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode);
    if kind != rustix::fs::FileType::RegularFile {
        return Err(not_regular(&format!("{kind:?}")));
    }
    Ok(File::from(fd))
}

fn not_regular(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a regular file ({what})"),
    )
}

fn is_not_regular(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
        || matches!(
            e.raw_os_error(),
            Some(libc::ENXIO | libc::ELOOP | libc::EISDIR)
        )
}

/// Rebuilds the tree of `data` for `descriptor`, into `store` when it can be
/// written, else in memory. Accepts it only if its root matches the descriptor.
pub fn rebuild_tree(
    store: Option<&TreeStore>, data: &dyn DataSource, descriptor: &Descriptor,
    options: BuildOptions,
) -> Result<RebuiltTree, TreeError> {
    let check = |built: &Descriptor| {
        if built == descriptor {
            Ok(())
        } else {
            Err(TreeError::RootMismatch {
                expected: Box::new(*descriptor.root_hash()),
                found: Box::new(*built.root_hash()),
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
                return match store.open_tree(descriptor)? {
                    Some(f) => Ok(RebuiltTree::Stored(f)),
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
    Ok(RebuiltTree::Memory(sink.0))
}
