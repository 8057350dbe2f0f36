//! The per-inode verity state machine. An inode is plain, verity or damaged;
//! once verity it stays verity with the same digest for the life of the mount
//! (as with the kernel): metadata that later disappears or changes makes it
//! damaged, never plain. Writers and an enable in progress exclude each other,
//! checked under one lock: [`NodeVerity::begin_write`] and
//! [`NodeVerity::begin_enable`] return guards whose `Drop` ends them, so no
//! path can forget to.

use std::sync::{Arc, Mutex, MutexGuard};

use super::file::VerityFile;
use crate::format::HashValue;
use crate::store::{MetadataError, VerityMetadata};

/// When the metadata was last read: the backing ctime (seconds, nanoseconds),
/// which every xattr change bumps.
pub(crate) type Stamp = (i64, u64);

/// Why a file that claims verity cannot be served (EIO).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Damage {
    /// The metadata does not decode.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The metadata cannot be read (the errno of the failed read).
    #[error("cannot read verity metadata: {}", std::io::Error::from_raw_os_error(*.0))]
    Unreadable(i32),
    /// A file seen as verity lost its metadata.
    #[error("verity metadata was removed from the backing file")]
    Removed,
    /// A file seen as verity got metadata with another digest.
    #[error("verity metadata was replaced (digest {was} became {now})")]
    Replaced {
        /// The digest first seen.
        was: HashValue,
        /// The digest now claimed.
        now: HashValue,
    },
}

/// What a namespace says about a file's verity metadata.
#[derive(Debug)]
pub(crate) enum Claim {
    /// No metadata: a plain file.
    Plain,
    /// Decoded metadata.
    Metadata(VerityMetadata),
    /// Only the digest and size of the file (recorded in a verified image).
    Digest {
        /// Hash algorithm of the digest.
        algorithm: crate::format::HashAlgorithm,
        /// The file digest.
        digest: HashValue,
        /// The file's size.
        size: u64,
    },
    /// Metadata that cannot be used.
    Damaged(Damage),
}

/// What a file is, as last read.
#[derive(Debug, Clone)]
pub(crate) enum VerityState {
    /// Not a verity file.
    Plain,
    /// A verity file.
    Verity(Arc<VerityFile>),
    /// Claims verity but cannot be served.
    Damaged(Damage),
}

/// Why a write (an open for writing, a truncate) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteRefused {
    /// An enable is running (ETXTBSY).
    #[error("verity is being enabled on this file")]
    Enabling,
    /// The file is (or was) a verity file: immutable (EPERM).
    #[error("verity files are immutable")]
    Verity,
}

/// Why an enable cannot start (the kernel's order: writers, then the
/// caller's argument checks, then existing verity, then a running enable).
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnableRefused<E: std::error::Error + 'static> {
    /// Open for writing (ETXTBSY).
    #[error("file is open for writing")]
    Writers,
    /// The arguments are refused.
    #[error(transparent)]
    Invalid(E),
    /// Already verity (EEXIST).
    #[error("already a verity file")]
    AlreadyVerity,
    /// Another enable is running (EBUSY).
    #[error("verity is being enabled on this file")]
    Busy,
}

#[derive(Debug, Default)]
struct Inner {
    stamp: Option<Stamp>,
    state: Option<VerityState>,
    /// Digest of the first metadata seen (boxed: most inodes are never verity).
    sticky: Option<Box<HashValue>>,
    writers: u32,
    enabling: bool,
    cache_verified: bool,
}

/// The verity state of one inode.
#[derive(Debug, Default)]
pub(crate) struct NodeVerity {
    inner: Mutex<Inner>,
}

impl NodeVerity {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, re-read with `read` when the stamp changed since the last
    /// read (or with `force`), enforcing that verity is sticky.
    pub(crate) fn state(
        &self, stamp: Stamp, force: bool, read: impl FnOnce() -> Claim,
    ) -> VerityState {
        let mut inner = self.lock();
        if let (false, Some(state)) = (force, &inner.state)
            && inner.stamp == Some(stamp)
        {
            return state.clone();
        }
        let claimed = match read() {
            Claim::Plain => VerityState::Plain,
            Claim::Metadata(m) => VerityState::Verity(Arc::new(VerityFile::new(m))),
            Claim::Digest {
                algorithm,
                digest,
                size,
            } => VerityState::Verity(Arc::new(VerityFile::expected(algorithm, digest, size))),
            Claim::Damaged(d) => VerityState::Damaged(d),
        };
        let state = match (&inner.sticky, claimed) {
            (Some(_), VerityState::Plain) => VerityState::Damaged(Damage::Removed),
            (Some(was), VerityState::Verity(v)) if v.digest() != &**was => {
                VerityState::Damaged(Damage::Replaced {
                    was: **was,
                    now: *v.digest(),
                })
            }
            // The same digest as before: keep the existing file (and verifier).
            (Some(_), VerityState::Verity(v)) => match &inner.state {
                Some(VerityState::Verity(old)) => VerityState::Verity(old.clone()),
                _ => VerityState::Verity(v),
            },
            (_, other) => other,
        };
        if let VerityState::Verity(v) = &state
            && inner.sticky.is_none()
        {
            inner.sticky = Some(Box::new(*v.digest()));
        }
        inner.stamp = Some(stamp);
        inner.state = Some(state.clone());
        state
    }

    /// The last known verity file, without reading anything.
    pub(crate) fn known(&self) -> Option<Arc<VerityFile>> {
        match &self.lock().state {
            Some(VerityState::Verity(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// Registers a writer: refused while an enable runs and once the file is
    /// (or was) verity.
    pub(crate) fn begin_write(self: &Arc<Self>) -> Result<WriteGuard, WriteRefused> {
        let mut inner = self.lock();
        if inner.enabling {
            return Err(WriteRefused::Enabling);
        }
        if inner.sticky.is_some()
            || matches!(
                inner.state,
                Some(VerityState::Verity(_) | VerityState::Damaged(_))
            )
        {
            return Err(WriteRefused::Verity);
        }
        inner.writers += 1;
        inner.cache_verified = false;
        Ok(WriteGuard(self.clone()))
    }

    /// Starts an enable: refused while writers exist, when `validate` refuses
    /// the arguments, when the file is already verity, or while another enable
    /// runs — in that order, the kernel's.
    pub(crate) fn begin_enable<T, E: std::error::Error + 'static>(
        self: &Arc<Self>, already_verity: bool, validate: impl FnOnce() -> Result<T, E>,
    ) -> Result<(EnableGuard, T), EnableRefused<E>> {
        let mut inner = self.lock();
        if inner.writers > 0 {
            return Err(EnableRefused::Writers);
        }
        let value = validate().map_err(EnableRefused::Invalid)?;
        if already_verity {
            return Err(EnableRefused::AlreadyVerity);
        }
        if inner.enabling {
            return Err(EnableRefused::Busy);
        }
        inner.enabling = true;
        Ok((EnableGuard(self.clone()), value))
    }

    /// A verity open: whether the kernel's page cache of the inode holds only
    /// verified pages (then the open may keep it); from now on it does.
    pub(crate) fn open_verity(&self) -> bool {
        std::mem::replace(&mut self.lock().cache_verified, true)
    }

    /// A plain open: the page cache may now hold unverified pages.
    pub(crate) fn open_plain(&self) {
        self.lock().cache_verified = false;
    }

    /// Number of writers (for tests and status).
    #[cfg(test)]
    pub(crate) fn writers(&self) -> u32 {
        self.lock().writers
    }
}

/// A registered writer; dropping it unregisters.
#[derive(Debug)]
pub(crate) struct WriteGuard(Arc<NodeVerity>);

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.writers = inner.writers.saturating_sub(1);
    }
}

/// An enable in progress; dropping it ends it.
#[derive(Debug)]
pub(crate) struct EnableGuard(Arc<NodeVerity>);

impl Drop for EnableGuard {
    fn drop(&mut self) {
        self.0.lock().enabling = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Descriptor, TreeParams};

    fn metadata(root: u8) -> VerityMetadata {
        VerityMetadata {
            descriptor: Descriptor::new(
                TreeParams::default(),
                10,
                HashValue::from_slice(&[root; 32]),
            ),
            signature: None,
        }
    }

    #[test]
    fn verity_is_sticky() {
        let n = NodeVerity::default();
        assert!(matches!(
            n.state((1, 0), false, || Claim::Plain),
            VerityState::Plain
        ));
        let VerityState::Verity(first) = n.state((2, 0), false, || Claim::Metadata(metadata(1)))
        else {
            panic!("verity expected");
        };
        // Unchanged stamp: not re-read.
        assert!(matches!(
            n.state((2, 0), false, || panic!("must not re-read")),
            VerityState::Verity(_)
        ));
        // The same digest again keeps the same file object.
        let VerityState::Verity(again) = n.state((3, 0), false, || Claim::Metadata(metadata(1)))
        else {
            panic!("verity expected");
        };
        assert!(Arc::ptr_eq(&first, &again));
        assert!(matches!(
            n.state((4, 0), false, || Claim::Plain),
            VerityState::Damaged(Damage::Removed)
        ));
        assert!(matches!(
            n.state((5, 0), false, || Claim::Metadata(metadata(2))),
            VerityState::Damaged(Damage::Replaced { .. })
        ));
        // Back to the original metadata: verity again.
        assert!(matches!(
            n.state((6, 0), true, || Claim::Metadata(metadata(1))),
            VerityState::Verity(_)
        ));
    }

    #[test]
    fn writers_and_enables_exclude_each_other() {
        let n = Arc::new(NodeVerity::default());
        n.state((1, 0), false, || Claim::Plain);
        let w = n.begin_write().expect("writer");
        assert_eq!(n.writers(), 1);
        let refused = n.begin_enable(false, || Ok::<_, std::io::Error>(()));
        assert!(matches!(refused, Err(EnableRefused::Writers)));
        drop(w);
        assert_eq!(n.writers(), 0);
        let (guard, ()) = n
            .begin_enable(false, || Ok::<_, std::io::Error>(()))
            .expect("enable");
        assert_eq!(n.begin_write().err(), Some(WriteRefused::Enabling));
        assert!(matches!(
            n.begin_enable(false, || Ok::<_, std::io::Error>(())),
            Err(EnableRefused::Busy)
        ));
        drop(guard);
        assert!(n.begin_write().is_ok(), "the enable ended with its guard");
    }

    #[test]
    fn enable_refusals_come_in_the_kernels_order() {
        let n = Arc::new(NodeVerity::default());
        let _w = n.begin_write().expect("writer");
        // Writers first, even when the arguments are bad and the file verity.
        let bad = || Err::<(), _>(std::io::Error::other("bad argument"));
        assert!(matches!(
            n.begin_enable(true, bad),
            Err(EnableRefused::Writers)
        ));
        drop(_w);
        assert!(matches!(
            n.begin_enable(true, bad),
            Err(EnableRefused::Invalid(_))
        ));
        assert!(matches!(
            n.begin_enable(true, || Ok::<_, std::io::Error>(())),
            Err(EnableRefused::AlreadyVerity)
        ));
    }

    #[test]
    fn verity_files_refuse_writers() {
        let n = Arc::new(NodeVerity::default());
        n.state((1, 0), false, || Claim::Metadata(metadata(1)));
        assert_eq!(n.begin_write().err(), Some(WriteRefused::Verity));
        assert!(!n.open_verity(), "the page cache starts unverified");
        assert!(
            n.open_verity(),
            "and holds only verified pages after a verity open"
        );
        n.open_plain();
        assert!(!n.open_verity());
    }
}
