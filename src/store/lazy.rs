//! A tree that is looked for — and if missing rebuilt and stored — once, when a
//! verity file is first opened (`prepare`) or when a verifier first needs one of
//! its blocks; the outcome, success or failure, is kept.

use std::io;
use std::sync::{Arc, Mutex};

use super::trees::{TreeData, TreeStore, rebuild_tree};
use crate::format::Descriptor;
use crate::merkle::{BuildOptions, DataSource, TreeSource};

/// Called when a tree had to be rebuilt.
pub type OnRebuild = Arc<dyn Fn(&Descriptor) + Send + Sync>;

/// The tree of one descriptor, found or rebuilt on first use.
pub struct LazyTree {
    store: Option<Arc<TreeStore>>,
    descriptor: Descriptor,
    options: BuildOptions,
    on_rebuild: OnRebuild,
    /// The tree once known, or why it cannot be had (kept: a rebuild from data
    /// that does not match would otherwise be retried on every read).
    state: Mutex<Option<Result<Arc<dyn TreeSource>, String>>>,
}

impl std::fmt::Debug for LazyTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyTree")
            .field("digest", &self.descriptor.digest())
            .finish_non_exhaustive()
    }
}

impl LazyTree {
    /// The tree of `descriptor`, to be found in `store` or rebuilt there (in
    /// memory without a store).
    pub fn new(
        store: Option<Arc<TreeStore>>,
        descriptor: Descriptor,
        options: BuildOptions,
        on_rebuild: OnRebuild,
    ) -> Self {
        Self {
            store,
            descriptor,
            options,
            on_rebuild,
            state: Mutex::new(None),
        }
    }

    fn tree(&self, data: &dyn DataSource) -> io::Result<Arc<dyn TreeSource>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = state.as_ref() {
            return known.clone().map_err(io::Error::other);
        }
        let found = match &self.store {
            Some(store) => store
                .tree_reader(&self.descriptor)
                .map_err(|e| io::Error::other(e.to_string()))?,
            None => None,
        };
        let result = match found {
            Some(reader) => Ok(Arc::new(reader) as Arc<dyn TreeSource>),
            None => {
                tracing::info!(digest = %self.descriptor.digest(), "Merkle tree missing: rebuilding it from the data");
                match rebuild_tree(self.store.as_ref(), data, &self.descriptor, self.options) {
                    Ok(tree) => {
                        (self.on_rebuild)(&self.descriptor);
                        Ok(match tree {
                            TreeData::Stored(r) => Arc::new(r) as Arc<dyn TreeSource>,
                            TreeData::Memory(v) => Arc::new(v) as Arc<dyn TreeSource>,
                        })
                    }
                    Err(e) => Err(format!("Merkle tree missing and cannot be rebuilt: {e}")),
                }
            }
        };
        *state = Some(result.clone());
        result.map_err(io::Error::other)
    }
}

impl TreeSource for LazyTree {
    fn read_tree(&self, buf: &mut [u8], offset: u64, data: &dyn DataSource) -> io::Result<usize> {
        self.tree(data)?.read_tree(buf, offset, data)
    }

    fn prepare(&self, data: &dyn DataSource) {
        let _ = self.tree(data);
    }
}
