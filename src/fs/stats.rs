//! Per-mount counters, readable while mounted (`fsverity-fuse status`).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters of one mount.
        #[derive(Debug, Default)]
        pub(crate) struct Stats {
            $($(#[$doc])* pub(crate) $name: AtomicU64,)*
        }

        /// A snapshot of [`Stats`].
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct StatsSnapshot {
            $($(#[$doc])* pub(crate) $name: u64,)*
        }

        impl Stats {
            /// Reads every counter.
            pub(crate) fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl StatsSnapshot {
            /// (name, value) pairs in a stable order.
            pub(crate) fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    /// Data blocks hashed and checked.
    blocks_verified,
    /// Bytes returned from verity files.
    bytes_verified,
    /// Reads failed because a data or tree block did not verify.
    verification_failures,
    /// Opens of verity files.
    files_opened_verity,
    /// Opens of other regular files.
    files_opened_plain,
    /// Opens refused because a signature was missing or did not verify.
    signature_rejections,
    /// Opens refused by policy (require-verity, require-signatures).
    policy_denials,
    /// Merkle trees built (enable or rebuild).
    trees_built,
    /// Verity enables completed through the mount.
    verity_enabled,
    /// Requests answered with an error (any errno).
    request_failures,
    /// READ requests of verity files.
    read_requests,
    /// Bytes those requests asked for (the kernel's request sizes: divide
    /// by `read_requests` for the mean).
    read_bytes_requested,
    /// Largest READ request seen, in bytes.
    read_request_max,
    /// Parts those reads were split into, each read and hashed on its own
    /// core (equals `read_requests` when no read was split).
    read_parts,
    /// Gauge: verified reads being served right now.
    reads_in_flight,
    /// Most verified reads served at the same time (the concurrency the
    /// kernel and the request threads allowed).
    reads_in_flight_max,
    /// LOOKUP requests: names the kernel had no entry for (readdirplus
    /// answers the others with their listing).
    lookups,
    /// Directory listings taken (readdir from the start; a kernel that
    /// caches an image's listings asks once per directory).
    listings,
    /// Reads verified ahead (started).
    read_ahead_started,
    /// Reads served from what was verified ahead.
    read_ahead_hits,
    /// Reads verified ahead that did not verify (the read itself then
    /// failed, or succeeded if the data was repaired meanwhile).
    read_ahead_failed,
}

impl Stats {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Raises a maximum to `n`.
    pub(crate) fn max(counter: &AtomicU64, n: u64) {
        counter.fetch_max(n, Ordering::Relaxed);
    }

    /// Counts a verified read of `size` bytes as started; the guard counts
    /// it as finished. Returns the guard and the reads now in flight.
    pub(crate) fn begin_read(&self, size: u32) -> (InFlight<'_>, u64) {
        Self::add(&self.read_requests, 1);
        Self::add(&self.read_bytes_requested, size.into());
        Self::max(&self.read_request_max, size.into());
        let now = self.reads_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        Self::max(&self.reads_in_flight_max, now);
        (InFlight(&self.reads_in_flight), now)
    }
}

/// A verified read in flight (see [`Stats::begin_read`]).
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
