//! Slow work off the request threads, on a small pool of worker threads owned
//! by the filesystem: enables through the mount, and opens that must rebuild a
//! lost Merkle tree. Hashing a large file takes seconds, and must neither hold
//! a request thread (other files' requests would wait behind it) nor start an
//! unbounded number of threads. Requests beyond the queue's bound are refused
//! (EBUSY).

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use super::VerityFs;
use crate::error::{Error, Result};
use crate::ioctl::EnableRequest;
use crate::namespace::Caller;

/// Enables hashing at once (each uses every core anyway).
pub(super) const WORKERS: usize = 2;
/// Enables waiting for a worker, beyond which new ones are refused.
const QUEUE: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads taking jobs from a bounded queue; the
/// workers start with the first job and end when the pool is dropped.
#[derive(Debug)]
pub(super) struct EnablePool {
    workers: usize,
    sender: Mutex<Option<SyncSender<Job>>>,
}

impl EnablePool {
    pub(super) fn new(workers: usize) -> Self {
        Self {
            workers,
            sender: Mutex::new(None),
        }
    }

    /// Queues `job`; refused when the queue is full or no worker can start.
    fn submit(&self, job: Job) -> Result<()> {
        let mut slot = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let (tx, rx) = sync_channel::<Job>(QUEUE);
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.workers {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("enable-{i}"))
                    .spawn(move || {
                        loop {
                            let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            match job {
                                Ok(job) => job(),
                                Err(_) => break,
                            }
                        }
                    })
                    .map_err(Error::Backing)?;
            }
            *slot = Some(tx);
        }
        match slot.as_ref().map(|tx| tx.try_send(job)) {
            Some(Ok(())) => Ok(()),
            Some(Err(TrySendError::Full(_))) => Err(Error::Busy),
            Some(Err(TrySendError::Disconnected(_))) | None => Err(Error::Busy),
        }
    }
}

impl VerityFs {
    /// Opens like [`VerityFs::open`] and hands the result to `done`: at once
    /// when that is quick, else (a verity file whose tree must be rebuilt from
    /// its data) from a worker of the pool, so that a file's tree never holds
    /// the request threads unrelated requests need.
    pub(crate) fn open_then(
        self: &Arc<Self>, id: u64, flags: i32, caller: Caller,
        done: impl FnOnce(Result<super::Opened>) + Send + 'static,
    ) {
        if !self.open_must_rebuild(id) {
            return done(self.open(id, flags, caller));
        }
        let fs = self.clone();
        self.later(move || fs.open(id, flags, caller), done);
    }

    /// Runs [`VerityFs::enable_verity`] on the enable pool and hands its
    /// result to `done` (from a worker thread).
    pub(crate) fn enable_verity_later(
        self: &Arc<Self>, id: u64, fh: u64, req: EnableRequest, caller: Caller,
        done: impl FnOnce(Result<()>) + Send + 'static,
    ) {
        let fs = self.clone();
        self.later(move || fs.enable_verity(id, fh, req, caller), done);
    }

    /// Runs `work` on the pool, then `done` with its result (an error when the
    /// pool refuses it, or when `work` panics).
    fn later<T: Send + 'static>(
        &self, work: impl FnOnce() -> Result<T> + Send + 'static,
        done: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        let done = Arc::new(Mutex::new(Some(done)));
        let finish = done.clone();
        let job: Job = Box::new(move || {
            // A panic must still answer the caller.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| {
                    tracing::error!("background work panicked; replied EIO");
                    Err(Error::Panicked)
                });
            if let Some(done) = finish.lock().unwrap_or_else(|e| e.into_inner()).take() {
                done(result);
            }
        });
        if let Err(e) = self.enables.submit(job)
            && let Some(done) = done.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            done(Err(e));
        }
    }
}
