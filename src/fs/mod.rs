//! The filesystem logic of a mount, independent of the fuser bindings: any
//! [`Namespace`] served with fs-verity's guarantees. Verity files are verified
//! block by block (`read`), are immutable (`open`, `write`, `names`), answer
//! the kernel's ioctls (`ioctl`, with enables on a bounded worker pool,
//! `enable`), and follow the mount's policy; everything else passes through to
//! the namespace.
//!
//! Every operation returns `Result<T, Error>`; `crate::fuse` turns calls into
//! replies.

mod enable;
mod handles;
mod ioctl;
mod names;
mod open;
mod ratelimit;
mod read;
mod readahead;
mod readdir;
mod stats;
mod status;
#[cfg(test)]
mod tests;
mod write;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub(crate) use handles::Opened;
pub(crate) use readdir::OpenedDir;
pub(crate) use stats::Stats;
pub(crate) use status::GAUGES;
pub use status::{MountStatus, STATUS_XATTR};

use crate::error::{Error, Result};
use crate::format::{HashAlgorithm, HashValue};
use crate::merkle::{BlockCache, BuildOptions};
use crate::namespace::passthrough::Passthrough;
use crate::namespace::{Attr, Namespace};
use crate::store::{STORE_DIR_NAME, TreeStore};
use crate::verity::{Policy, TreeResolver, VerityState};
use enable::EnablePool;
use handles::Handles;
use ratelimit::RateLimiter;

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
    /// Bytes of large sequential reads the mount may verify ahead, across
    /// all open files (0: no read-ahead in the daemon).
    pub read_ahead: usize,
}

impl Default for FsOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            cache_size: 64 << 20,
            tree_dir: None,
            build_threads: 0,
            policy: Policy::default(),
            read_ahead: 0,
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

/// How an image mount verifies its image before going live.
#[derive(Clone, Debug, Default)]
pub struct ImageOptions {
    /// The object directories, searched in order.
    pub objects: Vec<PathBuf>,
    /// The image's expected fs-verity digest (`--digest`).
    pub digest: Option<(HashAlgorithm, HashValue)>,
    /// A signature over the image's digest, checked against the policy's
    /// trusted keys (`--signature`).
    pub signature: Option<Vec<u8>>,
    /// Mount without verifying the image (`--insecure`).
    pub insecure: bool,
}

/// Largest image read into memory.
const MAX_IMAGE: u64 = 4 << 30;

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
    /// The image cannot be used: unreadable, not verified, or malformed.
    #[error("image {path}: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
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

/// Reads an image file into memory: a regular file (opened without blocking)
/// of at most [`MAX_IMAGE`] bytes.
fn read_image(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_IMAGE {
        return Err(io::Error::other(format!("larger than {MAX_IMAGE} bytes")));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_IMAGE).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The filesystem of one mount.
#[derive(Debug)]
pub struct VerityFs {
    ns: Box<dyn Namespace>,
    options: FsOptions,
    handles: Handles,
    trees: Arc<TreeResolver>,
    stats: Arc<Stats>,
    corruption_log: RateLimiter,
    /// Set by `--on-corruption=abort` after a failure.
    aborted: AtomicBool,
    /// Refusing modifications (EROFS): `--ro`, until the mount says otherwise.
    read_only: AtomicBool,
    /// The mount serving this filesystem, once mounted.
    mount_state: OnceLock<Arc<dyn MountState>>,
    enables: EnablePool,
    /// What the open handles may hold verified ahead.
    read_ahead: Arc<readahead::Budget>,
    /// The image and how it was verified (image mounts).
    image: Option<status::ImageStatus>,
    started: std::time::Instant,
}

impl VerityFs {
    /// A filesystem presenting the directory `backing`, with its tree store
    /// (`--tree-dir`, else `BACKING/.fsverity-fuse`, hidden from the mount).
    pub fn new(backing: &Path, options: FsOptions) -> Result<Self, SetupError> {
        let backing_err = |source| SetupError::Backing {
            path: backing.to_path_buf(),
            source,
        };
        let canonical = backing.canonicalize().map_err(backing_err)?;
        let (store, hidden) = match &options.tree_dir {
            Some(dir) => {
                let store = TreeStore::open(dir).map_err(|source| SetupError::TreeDir {
                    path: dir.clone(),
                    source,
                })?;
                let hidden = dir
                    .canonicalize()
                    .ok()
                    .filter(|d| d.parent() == Some(canonical.as_path()))
                    .and_then(|d| d.file_name().map(|n| n.to_os_string()));
                (Some(store), hidden)
            }
            None => (None, Some(OsString::from(STORE_DIR_NAME))),
        };
        let ns = Passthrough::open(backing, hidden).map_err(backing_err)?;
        let store = match store {
            Some(s) => Some(s),
            None => {
                let dir = canonical.join(STORE_DIR_NAME);
                match ns.with_root(|root| TreeStore::open_child(root, STORE_DIR_NAME, &dir)) {
                    Ok(Ok(s)) => Some(s),
                    Ok(Err(e)) | Err(Error::Backing(e)) => {
                        tracing::warn!(
                            store = %dir.display(),
                            error = %e,
                            "no tree store (read-only backing directory?): trees will be rebuilt in memory; use --tree-dir to keep them"
                        );
                        None
                    }
                    Err(e) => return Err(backing_err(io::Error::other(e.to_string()))),
                }
            }
        };
        Ok(Self::with_namespace(Box::new(ns), store, options))
    }

    /// A filesystem serving the composefs image at `path`, read-only. The image
    /// is read into memory and verified first (its fs-verity digest against
    /// `--digest`, or a trusted signature over it); its objects' trees are
    /// kept in `--tree-dir`, else in the first object directory's
    /// `.fsverity-fuse`.
    pub fn new_image(
        path: &Path, mut options: FsOptions, image: ImageOptions,
    ) -> Result<Self, SetupError> {
        use crate::namespace::image::{ImageNs, Objects, Trust};
        let fail = |reason: String| SetupError::Image {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = read_image(path).map_err(|e| fail(e.to_string()))?;
        let algorithm = image.digest.map_or(HashAlgorithm::Sha256, |(a, _)| a);
        let params = crate::format::TreeParams::new(algorithm, 4096, &[])
            .map_err(|e| fail(e.to_string()))?;
        let descriptor = crate::merkle::build_tree(
            &&bytes[..],
            &params,
            &mut crate::merkle::NullSink,
            BuildOptions::default(),
        )
        .map_err(|e| fail(e.to_string()))?;
        let digest = descriptor.digest();
        let trust = match (&image.digest, &image.signature) {
            (Some((_, want)), _) if *want != digest => {
                return Err(fail(format!(
                    "its fs-verity digest is {algorithm}:{digest}, not the expected {algorithm}:{want}"
                )));
            }
            (Some(_), _) => Trust::Digest,
            (None, Some(sig)) => {
                let signer = options
                    .policy
                    .trusted_keys
                    .verify(algorithm, &digest, sig)
                    .map_err(|e| fail(format!("its signature does not verify: {e}")))?;
                Trust::Signature(signer.as_str().to_owned())
            }
            (None, None) if image.insecure => {
                tracing::warn!(image = %path.display(), digest = %format!("{algorithm}:{digest}"),
                    "--insecure: the image is mounted WITHOUT verifying it; its names and contents are whatever the file holds");
                Trust::Insecure
            }
            (None, None) => {
                return Err(fail(format!(
                    "refusing to mount an unverified image (its digest is {algorithm}:{digest}): give --digest, or --signature with --trusted-key, or --insecure"
                )));
            }
        };
        let parsed = crate::image::Image::parse(bytes).map_err(|e| fail(e.to_string()))?;
        if image.objects.is_empty() {
            return Err(fail("an image mount needs --objects DIR".into()));
        }
        let objects = Objects::open(&image.objects).map_err(|e| fail(e.to_string()))?;
        let store = match &options.tree_dir {
            Some(dir) => Some(TreeStore::open(dir).map_err(|source| SetupError::TreeDir {
                path: dir.clone(),
                source,
            })?),
            None => objects.first().and_then(|(dir, fd)| {
                use std::os::fd::AsFd;
                TreeStore::open_child(fd.as_fd(), STORE_DIR_NAME, &dir.join(STORE_DIR_NAME))
                    .inspect_err(|e| tracing::info!(error = %e, "no tree store for the objects: trees are rebuilt in memory"))
                    .ok()
            }),
        };
        options.read_only = true;
        let ns = ImageNs::new(
            &path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            parsed,
            objects,
        );
        let mut fs = Self::with_namespace(Box::new(ns), store, options);
        fs.image = Some(status::ImageStatus {
            digest: format!("{algorithm}:{digest}"),
            verified: match trust {
                Trust::Digest => "digest".into(),
                Trust::Signature(signer) => format!("signature by {signer}"),
                Trust::Insecure => "insecure (not verified)".into(),
            },
            objects: image
                .objects
                .iter()
                .map(|d| d.display().to_string())
                .collect(),
        });
        Ok(fs)
    }

    /// A filesystem serving `ns`, with trees kept in `store`.
    pub(crate) fn with_namespace(
        ns: Box<dyn Namespace>, store: Option<TreeStore>, options: FsOptions,
    ) -> Self {
        let stats = Arc::new(Stats::default());
        let counted = stats.clone();
        let trees = TreeResolver::new(
            store.map(Arc::new),
            Arc::new(BlockCache::new(options.cache_size)),
            BuildOptions {
                threads: options.build_threads,
            },
            Arc::new(move || Stats::add(&counted.trees_built, 1)),
        );
        Self {
            ns,
            handles: Handles::default(),
            trees: Arc::new(trees),
            stats,
            corruption_log: RateLimiter::new(10, Duration::from_secs(5)),
            aborted: AtomicBool::new(false),
            read_only: AtomicBool::new(options.read_only),
            mount_state: OnceLock::new(),
            enables: EnablePool::new(enable::WORKERS),
            read_ahead: readahead::Budget::new(options.read_ahead),
            image: None,
            started: std::time::Instant::now(),
            options,
        }
    }

    /// Where the names come from (canonical).
    pub fn source(&self) -> &Path {
        self.ns.source()
    }

    /// Tells the filesystem which mount serves it.
    pub fn set_mount_state(&self, state: Arc<dyn MountState>) {
        let _ = self.mount_state.set(state);
    }

    /// Refuses modifications on a read-only mount. The kernel itself refuses
    /// writes on a read-only mount before they reach the daemon, so a write
    /// that arrives while the daemon believes it is read-only means the mount
    /// was remounted read-write since: the mount table decides.
    fn check_writable(&self) -> Result<()> {
        if !self.ns.writable() {
            return Err(Error::ReadOnly);
        }
        if !self.read_only.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.mount_state.get().and_then(|m| m.flags()) {
            Some(flags) if !flags.read_only => {
                self.read_only.store(false, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(Error::ReadOnly),
        }
    }

    /// The mount's flags now, asking the mount table (the enable ioctl is
    /// forwarded by the kernel even on read-only mounts).
    fn mount_flags_now(&self) -> MountFlags {
        let configured = self.read_only.load(Ordering::Relaxed) || !self.ns.writable();
        match self.mount_state.get().and_then(|m| m.flags()) {
            Some(f) => MountFlags {
                read_only: f.read_only || !self.ns.writable(),
                super_read_only: f.super_read_only || !self.ns.writable(),
            },
            None => MountFlags {
                read_only: configured,
                super_read_only: configured,
            },
        }
    }

    /// Fails once the mount has stopped serving (`--on-corruption=abort`).
    fn check_not_aborted(&self) -> Result<()> {
        if self.aborted.load(Ordering::Relaxed) {
            Err(Error::Aborted)
        } else {
            Ok(())
        }
    }

    /// The verity state of regular file `id` with attributes `attr`: the
    /// metadata is re-read when the change time moved since the last read (an
    /// xattr change bumps it) or with `force`.
    fn verity_state(&self, id: u64, attr: &Attr, force: bool) -> Result<VerityState> {
        let node = self.ns.verity(id)?;
        let stamp = (attr.ctime.sec, u64::from(attr.ctime.nsec));
        Ok(node.state(stamp, force, || self.ns.verity_claim(id)))
    }

    /// Attributes as the mount reports them: verity files have their verified
    /// size, and are marked as such.
    fn report(&self, mut attr: Attr) -> Attr {
        if attr.is_regular()
            && let Ok(VerityState::Verity(v)) = self.verity_state(attr.ino, &attr, false)
        {
            attr.size = v.data_size();
            attr.verity = true;
        }
        attr
    }

    /// Logs and counts a failed request (`op` names it). Failures are the
    /// callers' business (ENOENT of a lookup...), so they log at trace level;
    /// EIO, which an integrity failure or a fault gives, at debug.
    pub(crate) fn note_failure(&self, op: &'static str, e: &Error) {
        Stats::add(&self.stats.request_failures, 1);
        match e.errno() {
            libc::EIO => tracing::debug!(op, error = %e, "request failed"),
            _ => tracing::trace!(op, error = %e, "request failed"),
        }
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
