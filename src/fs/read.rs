//! The verified read path. A read of a verity file is answered only with
//! bytes the verifier checked in the very buffer that is returned
//! ([`VerifiedBytes`]); a block that does not verify fails the whole request
//! with EIO, never a short read (which the kernel would take for the end of
//! the file). `--on-corruption` decides what a failure does.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::handles::{FileHandle, Handle, HandleKind};
use super::readahead::Miss;
use super::{Stats, VerityFs};
use crate::error::{Error, Result};
use crate::merkle::{VerifiedBytes, Verifier, VerifyError, read_full};
use crate::verity::OnCorruption;

/// Bytes returned by a read: verified for verity files.
#[derive(Debug)]
pub(crate) enum ReadData {
    /// From a verity file: checked against the tree in this very buffer.
    Verified(VerifiedBytes),
    /// From any other file (or served despite a failure under
    /// `--on-corruption=log`).
    Plain(Vec<u8>),
}

impl ReadData {
    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            ReadData::Verified(v) => v.as_slice(),
            ReadData::Plain(v) => v,
        }
    }
}

impl VerityFs {
    /// Reads `size` bytes at `offset` of the file open as `fh`.
    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> Result<ReadData> {
        let handle = self.handles.get(fh)?;
        let f = handle.as_file()?;
        if let Some(verifier) = self.current_verifier(f)? {
            let (_in_flight, concurrent) = self.stats.begin_read(size);
            tracing::trace!(fh, offset, size, concurrent, "verified read");
            // Read-ahead is off by default: its per-handle bookkeeping then
            // stays off the read path.
            if self.read_ahead.enabled() && matches!(f.kind, HandleKind::Verity(_)) {
                return self.read_verified_ahead(&handle, f, &verifier, offset, size);
            }
            return self.read_verified(f, &verifier, offset, size);
        }
        let mut buf = vec![0u8; size as usize];
        let n = read_full(&f.file, &mut buf, offset)?;
        buf.truncate(n);
        Ok(ReadData::Plain(buf))
    }

    /// The verifier reads through `f` must use: its own, or, when the file
    /// became verity after `f` was opened, the file's (from then on).
    pub(super) fn current_verifier(&self, f: &FileHandle) -> Result<Option<Arc<Verifier>>> {
        match &f.kind {
            HandleKind::Verity(v) => Ok(Some(v.clone())),
            HandleKind::Plain { .. } => {
                if let Some(v) = f.late_verifier.get() {
                    return Ok(Some(v.clone()));
                }
                match f.verity.known() {
                    Some(vf) => {
                        let v = self.verifier(f.id, &vf, &f.file)?;
                        Ok(Some(f.late_verifier.get_or_init(|| v).clone()))
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// A read of a verity handle: from what it verified ahead if that is
    /// exactly this read, else verified now; then, if it continues a large
    /// sequential run, the next reads are verified ahead on the thread pool
    /// (`readahead.rs`: per handle, within the mount's budget).
    fn read_verified_ahead(
        &self, handle: &Arc<Handle>, f: &FileHandle, verifier: &Arc<Verifier>, offset: u64,
        size: u32,
    ) -> Result<ReadData> {
        let data = match f.read_ahead.take(offset, size) {
            Ok(bytes) => {
                self.check_not_aborted()?;
                Stats::add(&self.stats.read_ahead_hits, 1);
                Stats::add(&self.stats.bytes_verified, bytes.len() as u64);
                ReadData::Verified(bytes)
            }
            Err(miss) => {
                if miss == Miss::Failed {
                    Stats::add(&self.stats.read_ahead_failed, 1);
                }
                let _reading = f.read_ahead.reading(offset);
                self.read_verified(f, verifier, offset, size)?
            }
        };
        let size_limit = verifier.descriptor().data_size();
        for (at, len) in f
            .read_ahead
            .plan(offset, size, size_limit, &self.read_ahead)
        {
            let (handle, verifier) = (handle.clone(), verifier.clone());
            Stats::add(&self.stats.read_ahead_started, 1);
            rayon::spawn(move || prefetch(&handle, &verifier, at, len));
        }
        Ok(data)
    }

    fn read_verified(
        &self, f: &FileHandle, verifier: &Verifier, offset: u64, size: u32,
    ) -> Result<ReadData> {
        self.check_not_aborted()?;
        match verifier.read_verified(&f.file, offset, size as usize) {
            Ok((bytes, stats)) => {
                Stats::add(&self.stats.read_parts, stats.parts);
                Stats::add(&self.stats.blocks_verified, stats.blocks_verified);
                Stats::add(&self.stats.bytes_verified, bytes.len() as u64);
                Ok(ReadData::Verified(bytes))
            }
            Err(e) => {
                let path = self.ns.describe(f.id);
                let err = match e {
                    VerifyError::Mismatch(corruption) => Error::Corrupted { path, corruption },
                    other => Error::VerityDamaged {
                        path,
                        reason: other.to_string(),
                    },
                };
                self.report_corruption(&err);
                self.on_corruption(err, f, verifier, offset, size)
            }
        }
    }

    /// Applies `--on-corruption` to a failed verified read.
    fn on_corruption(
        &self, err: Error, f: &FileHandle, verifier: &Verifier, offset: u64, size: u32,
    ) -> Result<ReadData> {
        match self.options.policy.on_corruption {
            OnCorruption::Eio => Err(err),
            OnCorruption::Abort => {
                if !self.aborted.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "--on-corruption=abort: the mount stops serving: every lookup, stat, listing, open and read now fails with EIO (only the mount root and its status stay reachable)"
                    );
                }
                Err(err)
            }
            OnCorruption::Log => {
                // Serve the backing bytes as they are, within the recorded size.
                let size_limit = verifier.descriptor().data_size();
                let end = offset.saturating_add(size.into()).min(size_limit);
                let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
                let n = read_full(&f.file, &mut buf, offset)?;
                buf.truncate(n);
                Ok(ReadData::Plain(buf))
            }
        }
    }
}

/// Verifies `len` bytes at `at` of `handle` ahead of the kernel's read, and
/// hands them (or the failure) to its read-ahead slot: always, even if the
/// verifier panics, so no read waits for a slot forever.
fn prefetch(handle: &Handle, verifier: &Verifier, at: u64, len: u32) {
    let Ok(f) = handle.as_file() else {
        return;
    };
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        verifier.read_verified(&f.file, at, len as usize).ok()
    }));
    let bytes = run.ok().flatten().map(|(bytes, _)| bytes);
    f.read_ahead.complete(at, len, bytes);
}
