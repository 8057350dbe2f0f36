//! The live status of a mount, readable through the mount itself: a `getxattr`
//! of [`STATUS_XATTR`] on the mount's root returns it as JSON (no socket, works
//! from any namespace that sees the mount).

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::VerityFs;

/// The virtual xattr on the mount root that carries the status.
pub const STATUS_XATTR: &str = "user.fsverity-fuse.status";

/// A snapshot of a mount's state and counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountStatus {
    /// fsverity-fuse version of the daemon.
    pub version: String,
    /// Backing directory.
    pub backing: String,
    /// Seconds since the mount started.
    pub uptime_seconds: u64,
    /// Read-only mount.
    pub read_only: bool,
    /// `--require-verity`.
    pub require_verity: bool,
    /// `--require-signatures`.
    pub require_signatures: bool,
    /// Number of trusted keys.
    pub trusted_keys: usize,
    /// `--on-corruption` mode.
    pub on_corruption: String,
    /// The mount stopped serving (`--on-corruption=abort`).
    pub aborted: bool,
    /// Inodes the kernel holds.
    pub inodes: u64,
    /// Open file and directory handles.
    pub open_handles: u64,
    /// Inode descriptors currently open (the rest are reopened by handle).
    #[serde(default)]
    pub open_descriptors: u64,
    /// Counters, by name.
    pub counters: std::collections::BTreeMap<String, u64>,
    /// The image of an image mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageStatus>,
}

/// The image an image mount serves, and how it was verified.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageStatus {
    /// The image's fs-verity digest (`alg:hex`).
    pub digest: String,
    /// How it was verified: `digest`, `signature by SIGNER`, or insecure.
    pub verified: String,
    /// The object directories.
    pub objects: Vec<String>,
}

/// The values of [`MountStatus::counters`] that can go down, or are
/// maxima, rather than counts that only grow (Prometheus gauges).
pub(crate) const GAUGES: &[&str] = &[
    "tree_cache_bytes",
    "read_ahead_bytes",
    "reads_in_flight",
    "read_request_max",
    "reads_in_flight_max",
];

impl VerityFs {
    /// The current status.
    pub(crate) fn status(&self) -> MountStatus {
        let mut counters: std::collections::BTreeMap<String, u64> = self
            .stats
            .snapshot()
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let cache = self.trees.cache().stats();
        counters.insert("tree_cache_hits".into(), cache.hits);
        counters.insert("tree_cache_misses".into(), cache.misses);
        counters.insert("tree_cache_evictions".into(), cache.evictions);
        counters.insert("tree_cache_bytes".into(), cache.bytes);
        counters.insert("read_ahead_bytes".into(), self.read_ahead.used() as u64);
        let policy = &self.options.policy;
        MountStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            backing: self.ns.source().display().to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            read_only: self.read_only.load(std::sync::atomic::Ordering::Relaxed),
            require_verity: policy.require_verity,
            require_signatures: policy.require_signatures,
            trusted_keys: policy.trusted_keys.len(),
            on_corruption: policy.on_corruption.to_string(),
            aborted: self.aborted.load(Ordering::Relaxed),
            inodes: self.ns.node_count() as u64,
            open_handles: self.handles.count() as u64,
            open_descriptors: self.ns.open_descriptors() as u64,
            counters,
            image: self.image.clone(),
        }
    }
}
