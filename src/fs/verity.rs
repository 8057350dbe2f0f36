//! Per-inode verity state: whether a backing file is a verity file, its metadata
//! and verifier, and the open-file accounting that enable and the page cache
//! decisions need.

use std::sync::{Arc, Mutex, OnceLock};

use crate::format::HashValue;
use crate::merkle::Verifier;
use crate::store::VerityMetadata;

/// A verity file as this mount knows it.
#[derive(Debug)]
pub struct VerityFile {
    /// Descriptor and signature from the backing file's xattr.
    pub metadata: VerityMetadata,
    /// The file digest.
    pub digest: HashValue,
    /// Built on first open (needs the tree), then shared by every handle.
    pub verifier: Mutex<Option<Arc<Verifier>>>,
    /// Whether the signature verifies under a trusted key (name of the key, or
    /// why not); computed on first need.
    pub signature_verdict: OnceLock<Result<String, String>>,
}

impl VerityFile {
    /// Wraps decoded metadata.
    pub fn new(metadata: VerityMetadata) -> Self {
        let digest = metadata.descriptor.digest();
        Self {
            metadata,
            digest,
            verifier: Mutex::new(None),
            signature_verdict: OnceLock::new(),
        }
    }
}

/// What the backing file's metadata said when last read.
#[derive(Debug, Clone, Default)]
pub enum VerityState {
    /// Not read yet.
    #[default]
    Unknown,
    /// Not a verity file.
    Plain,
    /// A verity file.
    Verity(Arc<VerityFile>),
    /// Metadata present but unusable (or removed/replaced while mounted).
    Damaged(String),
}

/// Verity bookkeeping of one inode.
#[derive(Debug, Default)]
pub struct InodeVerity {
    /// Backing ctime (s, ns) when `state` was read: metadata changes bump ctime.
    pub checked_ctime: Option<(i64, u64)>,
    /// Last known state.
    pub state: VerityState,
    /// Digest of the first metadata seen: once verity, an inode stays verity with
    /// the same digest for the life of the mount, as with the kernel.
    /// (Boxed: most inodes are never verity, and this keeps every inode 64
    /// bytes smaller.)
    pub sticky_digest: Option<Box<HashValue>>,
    /// Handles open for writing.
    pub writers: u32,
    /// An enable through the mount is running.
    pub enabling: bool,
    /// The kernel's page cache of this inode holds only verified pages, so opens
    /// may keep it.
    pub cache_verified: bool,
}

impl InodeVerity {
    /// Registers a writer (an open for writing, a truncate): refused while an
    /// enable runs (ETXTBSY) and once the file is verity (EPERM) — checked under
    /// the same lock the enable takes, so neither can slip past the other.
    pub fn begin_write(&mut self) -> Result<(), crate::error::Error> {
        if self.enabling {
            return Err(crate::error::Error::TextBusy);
        }
        if self.sticky_digest.is_some()
            || matches!(self.state, VerityState::Verity(_) | VerityState::Damaged(_))
        {
            return Err(crate::error::Error::VerityImmutable);
        }
        self.writers += 1;
        Ok(())
    }

    /// Unregisters a writer.
    pub fn end_write(&mut self) {
        self.writers = self.writers.saturating_sub(1);
    }

    /// Applies newly read metadata, enforcing that verity is sticky.
    pub fn update(&mut self, ctime: (i64, u64), read: VerityState) -> VerityState {
        let state = match (&self.sticky_digest, read) {
            (Some(_), VerityState::Plain) => {
                VerityState::Damaged("verity metadata was removed from the backing file".into())
            }
            (Some(d), VerityState::Verity(v)) if v.digest != **d => VerityState::Damaged(format!(
                "verity metadata was replaced (digest {} became {})",
                d, v.digest
            )),
            (Some(_), VerityState::Verity(v)) => match &self.state {
                // Same digest as before: keep the existing verifier.
                VerityState::Verity(old) => VerityState::Verity(old.clone()),
                // The same metadata is back (e.g. a tool that rewrites xattrs).
                _ => VerityState::Verity(v),
            },
            (_, other) => other,
        };
        if let VerityState::Verity(v) = &state {
            self.sticky_digest.get_or_insert_with(|| Box::new(v.digest));
        }
        self.checked_ctime = Some(ctime);
        self.state = state.clone();
        state
    }
}
