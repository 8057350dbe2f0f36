//! Verified read-ahead (`--verified-readahead`, off by default): while the
//! kernel consumes one large sequential read of a verity file, the daemon
//! already reads and verifies the next ones on the thread pool, so the cores
//! do not wait for the kernel's next request.
//!
//! What makes it safe to serve later (docs/SEMANTICS.md, "Verified
//! read-ahead"):
//! - only [`VerifiedBytes`] are kept, verified against the handle's own
//!   verifier, in the daemon's memory: they never go back to the backing file,
//!   so changing the backing file afterwards cannot change them (as with the
//!   kernel's page cache of verified pages);
//! - they belong to one open handle ([`ReadAhead`] lives in the handle): they
//!   cannot be served for another file, another version of it, or after the
//!   handle is released (the slots go with it);
//! - a read is served only from a slot of exactly its offset and length; a
//!   prefetch that failed to verify is dropped, and the read takes the
//!   ordinary path, which fails it with EIO as a whole;
//! - memory is bounded by one budget per mount ([`Budget`]), reserved before
//!   a prefetch starts and given back when its slot is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::merkle::VerifiedBytes;

/// Reads smaller than this are not read ahead (random and small-file reads).
pub(crate) const MIN_READ: u32 = 128 * 1024;

/// Reads verified ahead of the furthest one the kernel asked for, per handle.
pub(crate) const DEPTH: u64 = 2;

/// The bytes all handles of a mount may hold verified ahead.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes (0 turns read-ahead off).
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Whether reads may be verified ahead at all (a budget above 0).
    pub(crate) fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used + bytes > self.limit {
                return None;
            }
            match self.used.compare_exchange_weak(
                used,
                used + bytes,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Reservation {
                        budget: self.clone(),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }
}

/// Bytes of the budget held by one slot, given back when it is dropped.
#[derive(Debug)]
struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// One range being verified ahead, or verified.
#[derive(Debug)]
struct Slot {
    offset: u64,
    len: u32,
    /// `None` while the prefetch runs; `Some(None)` when it failed.
    bytes: Option<Option<VerifiedBytes>>,
    _reservation: Reservation,
}

#[derive(Debug, Default)]
struct State {
    /// The end of the furthest read of the current sequential run.
    frontier: u64,
    slots: Vec<Slot>,
    /// Offsets the kernel's own requests are reading now (not from a slot):
    /// never read ahead, which would do their work twice.
    reading: Vec<u64>,
}

/// What one open verity file handle has verified ahead.
#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    state: Mutex<State>,
    done: Condvar,
}

/// Why [`ReadAhead::take`] found no bytes for a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No slot of that offset and length.
    NotAhead,
    /// It was read ahead but did not verify: the ordinary read reports it.
    Failed,
}

impl ReadAhead {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The verified bytes of a read of `len` bytes at `offset`, if they were
    /// read ahead (waiting for a prefetch of exactly that range still
    /// running). Slots further behind `offset` than the window of a run
    /// are dropped: the reader has passed them.
    pub(crate) fn take(&self, offset: u64, len: u32) -> Result<VerifiedBytes, Miss> {
        let mut state = self.lock();
        // Concurrent requests arrive out of order: keep what lies within the
        // window behind this read, for the requests still to come.
        let window = (DEPTH + 2) * u64::from(len);
        state.slots.retain(|s| s.offset + window > offset);
        loop {
            let Some(i) = state
                .slots
                .iter()
                .position(|s| s.offset == offset && s.len == len)
            else {
                return Err(Miss::NotAhead);
            };
            if state.slots[i].bytes.is_some() {
                let slot = state.slots.swap_remove(i);
                return slot.bytes.flatten().ok_or(Miss::Failed);
            }
            state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Marks a read at `offset` that found nothing ahead as under way, until
    /// the guard is dropped.
    pub(crate) fn reading(&self, offset: u64) -> Reading<'_> {
        self.lock().reading.push(offset);
        Reading { ra: self, offset }
    }

    /// After a read of `len` bytes at `offset` of a file of `size` bytes:
    /// the ranges to verify ahead now, each with its slot reserved. Only a
    /// large read that continues the current run (at most `DEPTH + 2` reads
    /// behind its end, as concurrent requests complete out of order) reads
    /// ahead, skipping the ranges the kernel's requests are reading; any
    /// other read starts a new run, and drops what the old one read ahead.
    pub(crate) fn plan(
        &self, offset: u64, len: u32, size: u64, budget: &Arc<Budget>,
    ) -> Vec<(u64, u32)> {
        let mut state = self.lock();
        let step = u64::from(len);
        // Concurrent requests complete out of order, and reads served from
        // slots run ahead: a read within the window behind the frontier
        // still belongs to the run.
        let sequential = offset <= state.frontier && offset + (DEPTH + 2) * step >= state.frontier;
        if !sequential || len < MIN_READ {
            state.frontier = offset + step;
            state.slots.clear();
            return Vec::new();
        }
        state.frontier = state.frontier.max(offset + step);
        let mut planned = Vec::new();
        let mut next = state.frontier;
        while next < size && next < offset + (DEPTH + 1) * step {
            if !state.slots.iter().any(|s| s.offset == next) && !state.reading.contains(&next) {
                let Some(reservation) = budget.reserve(len as usize) else {
                    break;
                };
                state.slots.push(Slot {
                    offset: next,
                    len,
                    bytes: None,
                    _reservation: reservation,
                });
                planned.push((next, len));
            }
            next += step;
        }
        planned
    }

    /// Records the outcome of the prefetch of `offset` (`None`: it did not
    /// verify) and wakes reads waiting for it. A slot dropped meanwhile
    /// (the reader moved elsewhere) takes nothing.
    pub(crate) fn complete(&self, offset: u64, len: u32, bytes: Option<VerifiedBytes>) {
        let mut state = self.lock();
        if let Some(slot) = state
            .slots
            .iter_mut()
            .find(|s| s.offset == offset && s.len == len && s.bytes.is_none())
        {
            slot.bytes = Some(bytes);
        }
        drop(state);
        self.done.notify_all();
    }

    /// Waits until no prefetch of this handle is running (tests).
    #[cfg(test)]
    pub(crate) fn settle(&self) {
        let mut state = self.lock();
        while state.slots.iter().any(|s| s.bytes.is_none()) {
            state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A read of the kernel's under way (see [`ReadAhead::reading`]).
#[derive(Debug)]
pub(crate) struct Reading<'a> {
    ra: &'a ReadAhead,
    offset: u64,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut state = self.ra.lock();
        if let Some(i) = state.reading.iter().position(|&o| o == self.offset) {
            state.reading.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u32 = 1 << 20;

    #[test]
    fn only_large_sequential_runs_read_ahead_within_the_budget() {
        let budget = Budget::new(3 * MIB as usize);
        let ra = ReadAhead::default();
        let size = 100 << 20;
        // The first large read of a run plans the next DEPTH reads.
        assert_eq!(
            ra.plan(0, MIB, size, &budget),
            [(1 << 20, MIB), (2 << 20, MIB)]
        );
        assert_eq!(budget.used(), 2 * MIB as usize);
        // The next read plans one more; the budget stops the one after.
        assert_eq!(ra.plan(1 << 20, MIB, size, &budget), [(3 << 20, MIB)]);
        assert!(ra.plan(2 << 20, MIB, size, &budget).is_empty());
        // A range the kernel is reading itself is not read ahead.
        let ra2 = ReadAhead::default();
        let busy = ra2.reading(1 << 20);
        let other = Budget::new(8 * MIB as usize);
        assert_eq!(ra2.plan(0, MIB, size, &other), [(2 << 20, MIB)]);
        drop(busy);
        // A read elsewhere ends the run and gives the budget back.
        assert!(ra.plan(50 << 20, MIB, size, &budget).is_empty());
        assert_eq!(budget.used(), 0);
        // Small reads never read ahead, nor does a run past the end.
        assert!(ra.plan(50 << 20, 4096, size, &budget).is_empty());
        assert!(
            ra.plan(size - u64::from(MIB), MIB, size, &budget)
                .is_empty()
        );
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_failed_prefetch_is_a_miss_and_dropping_the_handle_frees_the_budget() {
        let budget = Budget::new(8 * MIB as usize);
        let ra = ReadAhead::default();
        let planned = ra.plan(0, MIB, 100 << 20, &budget);
        assert_eq!(planned.len(), 2);
        ra.complete(1 << 20, MIB, None);
        assert_eq!(ra.take(1 << 20, MIB).err(), Some(Miss::Failed));
        // A read of another length is not served from a slot.
        assert_eq!(ra.take(2 << 20, MIB / 2).err(), Some(Miss::NotAhead));
        assert_eq!(budget.used(), MIB as usize);
        drop(ra);
        assert_eq!(budget.used(), 0);
    }
}
