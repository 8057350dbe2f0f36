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
}

impl Stats {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
