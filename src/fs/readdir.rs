//! Directory listings: a snapshot taken at each rewind (so offsets stay
//! stable while entries change), and readdirplus's lookups, made a batch at
//! a time on the call's own threads (a cold listing waits on one inode and
//! one xattr read per entry, which a disk serves far faster in parallel).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::VerityFs;
use super::handles::{DirHandle, Handle};
use crate::error::Result;
use crate::namespace::{Attr, DirEntry};

/// Lookups of one batch run on at most this many threads.
const LOOKUP_THREADS: usize = 8;
/// Fewest lookups worth a thread of their own.
const LOOKUP_PER_THREAD: usize = 4;
/// Entries looked up at once for readdirplus (a reply to a 32 KiB getdents
/// holds about 200; those of a batch that do not fit are forgotten again).
pub(crate) const READDIRPLUS_BATCH: usize = 64;

/// An open directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenedDir {
    pub(crate) fh: u64,
    /// The listing cannot change: the kernel may cache it across opens.
    pub(crate) keep_listing: bool,
}

impl VerityFs {
    /// Opens a directory.
    pub(crate) fn opendir(&self, id: u64) -> Result<OpenedDir> {
        self.check_not_aborted()?;
        let file = self.ns.opendir(id)?;
        let fh = self.handles.insert(Handle::Dir(DirHandle {
            id,
            file,
            snapshot: Mutex::new(None),
        }));
        // A namespace that cannot change (an image) lets the kernel keep
        // listings across opens; a backing directory changes behind our back.
        let keep_listing = self.is_immutable();
        Ok(OpenedDir { fh, keep_listing })
    }

    /// Whether nothing in the namespace can change (an image): the kernel
    /// may keep listings, and readdirplus always pays (its lookups are in
    /// memory).
    pub(crate) fn is_immutable(&self) -> bool {
        !self.ns.writable()
    }

    /// The entries of an open directory; offset 0 takes a fresh snapshot.
    pub(crate) fn readdir(&self, fh: u64, offset: u64) -> Result<Arc<Vec<DirEntry>>> {
        let handle = self.handles.get(fh)?;
        let dir = handle.as_dir()?;
        let mut slot = dir.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(snapshot) if offset != 0 => Ok(snapshot.clone()),
            _ => {
                let snapshot = Arc::new(self.ns.list(dir.id, dir.file.as_ref())?);
                self.stats.listings.fetch_add(1, Ordering::Relaxed);
                *slot = Some(snapshot.clone());
                Ok(snapshot)
            }
        }
    }

    /// Looks an entry of directory `dir` up for readdirplus (one kernel
    /// reference on success, to be dropped with [`VerityFs::forget`] if
    /// unused). `.` and `..` are not looked up: the kernel does not link them.
    fn readdirplus_entry(&self, dir: u64, entry: &DirEntry) -> Result<Attr> {
        if entry.is_dot() {
            let mut attr = self.ns.getattr(dir)?;
            attr.ino = entry.ino;
            return Ok(attr);
        }
        self.lookup_entry(dir, &entry.name)
    }

    /// [`VerityFs::readdirplus_entry`] for entries of the directory open as
    /// `fh`, on up to [`LOOKUP_THREADS`] threads of the call's own (a pool's
    /// idle workers spin, and would take the CPU from the request threads).
    pub(crate) fn readdirplus_entries(
        &self, fh: u64, entries: &[DirEntry],
    ) -> Result<Vec<Result<Attr>>> {
        let handle = self.handles.get(fh)?;
        let dir = handle.as_dir()?.id;
        let one_by_one = |part: &[DirEntry]| -> Vec<Result<Attr>> {
            part.iter()
                .map(|e| self.readdirplus_entry(dir, e))
                .collect()
        };
        if entries.len() < 2 * LOOKUP_PER_THREAD {
            return Ok(one_by_one(entries));
        }
        let per_thread = entries
            .len()
            .div_ceil(LOOKUP_THREADS)
            .max(LOOKUP_PER_THREAD);
        Ok(std::thread::scope(|scope| {
            let mut parts = entries.chunks(per_thread);
            let first = parts.next().unwrap_or_default();
            let others: Vec<_> = parts
                .map(|part| {
                    (
                        part,
                        std::thread::Builder::new().spawn_scoped(scope, || one_by_one(part)),
                    )
                })
                .collect();
            let mut attrs = one_by_one(first);
            for (part, thread) in others {
                match thread {
                    Ok(thread) => match thread.join() {
                        Ok(done) => attrs.extend(done),
                        // Reported like a panic of this thread (answered EIO);
                        // redoing the part could take twice the references
                        // its lookups took before the panic.
                        Err(panic) => std::panic::resume_unwind(panic),
                    },
                    // A thread that cannot be started: this one does its part.
                    Err(_) => attrs.extend(one_by_one(part)),
                }
            }
            attrs
        }))
    }

    /// readdirplus from `offset`: `add(entry, attributes, next offset)` is
    /// called for each entry in turn until it says the reply is full. Entries
    /// are looked up a batch at a time; the references of those looked up but
    /// not added are dropped again, and entries removed since the snapshot are
    /// skipped.
    pub(crate) fn readdirplus(
        &self, fh: u64, offset: u64, mut add: impl FnMut(&DirEntry, &Attr, u64) -> bool,
    ) -> Result<()> {
        let snapshot = self.readdir(fh, offset)?;
        let entries = snapshot.get(offset as usize..).unwrap_or_default();
        let mut next = offset;
        for batch in entries.chunks(READDIRPLUS_BATCH) {
            let attrs = self.readdirplus_entries(fh, batch)?;
            let mut looked_up = batch.iter().zip(attrs);
            while let Some((e, attr)) = looked_up.next() {
                next += 1;
                let Ok(attr) = attr else { continue };
                if add(e, &attr, next) {
                    let unused = std::iter::once((e, Ok(attr))).chain(looked_up);
                    for (e, attr) in unused {
                        if let (false, Ok(attr)) = (e.is_dot(), attr) {
                            self.forget(attr.ino, 1);
                        }
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Closes a directory handle.
    pub(crate) fn releasedir(&self, fh: u64) -> Result<()> {
        self.handles.remove(fh).map(drop)
    }
}
