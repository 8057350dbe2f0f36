//! A bounded, sharded LRU cache of *verified* Merkle tree blocks.
//!
//! Only [`super::verify`] inserts, and only blocks whose hash it has checked up to
//! the root, so a hit can be trusted without re-hashing. Keys include the file
//! digest: files with the same digest have the same tree and share entries.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::format::HashValue;

const SHARDS: usize = 16;

/// Identifies one tree block: file digest, tree level, block index in the level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BlockKey {
    pub(crate) digest: HashValue,
    pub(crate) level: u8,
    pub(crate) index: u64,
}

/// Counters of cache behaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to read and verify the block.
    pub misses: u64,
    /// Blocks dropped to stay within the budget.
    pub evictions: u64,
    /// Bytes currently held.
    pub bytes: u64,
}

/// The verified tree block cache shared by every file of a mount.
#[derive(Debug)]
pub struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
    hasher: std::collections::hash_map::RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

#[derive(Debug)]
struct Shard {
    lru: LruCache<BlockKey, Arc<[u8]>>,
    bytes: usize,
}

impl BlockCache {
    /// A cache holding at most about `budget` bytes of tree blocks.
    pub fn new(budget: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        lru: LruCache::unbounded(),
                        bytes: 0,
                    })
                })
                .collect(),
            shard_budget: budget / SHARDS,
            hasher: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &BlockKey) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    pub(crate) fn get(&self, key: &BlockKey) -> Option<Arc<[u8]>> {
        let found = lock(self.shard(key)).lru.get(key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Inserts a block that the caller has verified.
    pub(crate) fn insert_verified(&self, key: BlockKey, block: Arc<[u8]>) {
        if block.len() > self.shard_budget {
            return;
        }
        let mut shard = lock(self.shard(&key));
        shard.bytes += block.len();
        if let Some(old) = shard.lru.put(key, block) {
            shard.bytes -= old.len();
        }
        while shard.bytes > self.shard_budget {
            match shard.lru.pop_lru() {
                Some((_, old)) => {
                    shard.bytes -= old.len();
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                None => break,
            }
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes: self.shards.iter().map(|s| lock(s).bytes as u64).sum(),
        }
    }
}

/// A poisoned shard only means another thread panicked mid-update of an LRU
/// whose entries are all independently verified: keep using it.
fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u64) -> BlockKey {
        BlockKey {
            digest: HashValue::zeroed(32),
            level: 0,
            index,
        }
    }

    #[test]
    fn evicts_to_stay_within_budget() {
        let cache = BlockCache::new(SHARDS * 4096 * 2);
        for i in 0..1000 {
            cache.insert_verified(key(i), Arc::from(vec![0u8; 4096]));
        }
        let stats = cache.stats();
        assert!(stats.bytes <= (SHARDS * 4096 * 2) as u64, "{stats:?}");
        assert!(stats.evictions >= 1000 - (SHARDS as u64 * 2));
        assert!(cache.get(&key(999)).is_some());
        assert_eq!(cache.stats().hits, 1);
        assert!(cache.get(&key(0)).is_none());
        assert_eq!(cache.stats().misses, 1);
    }
}
