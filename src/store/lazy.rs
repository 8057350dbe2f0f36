//! A tree that is looked for — and if missing rebuilt and stored — once, when a
//! verity file is first opened (`prepare`) or when a verifier first needs one of
//! its blocks; the outcome, success or failure, is kept. A small file's tree is
//! built from its data, in memory, only if a read needs it.

use std::io;
use std::sync::{Arc, Mutex};

use super::trees::{TreeData, TreeStore, rebuild_tree};
use crate::format::Descriptor;
use crate::merkle::{BuildOptions, DataSource, TreeSource, VecSink, build_tree};

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
        let found: Option<Arc<dyn TreeSource>> =
            match (self.small_tree_from_data(data), &self.store) {
                (Some(small), _) => Some(Arc::new(small)),
                (None, Some(store)) => store
                    .tree_reader(&self.descriptor)
                    .map_err(|e| io::Error::other(e.to_string()))?
                    .map(|reader| Arc::new(reader) as Arc<dyn TreeSource>),
                (None, None) => None,
            };
        let result = match found {
            Some(tree) => Ok(tree),
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

    /// A file of at most [`SMALL_FILE_MAX`] bytes whose tree is one block.
    fn is_small(&self) -> bool {
        let g = self.descriptor.geometry();
        g.tree_size() == g.block_size() as u64 && self.descriptor.data_size() <= SMALL_FILE_MAX
    }

    /// The tree of a small file, built from its data in memory when a read
    /// that does not cover the whole file first needs it — cheaper than looking
    /// up and reading its tree file (one more inode and block). Taken only when
    /// its root matches the descriptor; otherwise `None`, and the stored tree is
    /// used so that only the blocks that changed fail, as with the kernel.
    fn small_tree_from_data(&self, data: &dyn DataSource) -> Option<SmallTree> {
        if !self.is_small() {
            return None;
        }
        let g = self.descriptor.geometry();
        let mut sink = VecSink::default();
        let built = build_tree(
            data,
            self.descriptor.params(),
            &mut sink,
            BuildOptions { threads: 1 },
        );
        match built {
            Ok(d) if d == self.descriptor => {
                // Only the block's used hashes are kept; the rest is zero padding.
                let mut bytes = sink.0;
                bytes.truncate(g.data_blocks() as usize * g.digest_size());
                bytes.shrink_to_fit();
                Some(SmallTree {
                    bytes,
                    size: g.tree_size(),
                })
            }
            _ => None,
        }
    }
}

/// Files up to this size whose tree is a single block get it from their data.
pub const SMALL_FILE_MAX: u64 = 128 * 1024;

/// A one-block tree held in memory without its zero padding.
#[derive(Debug)]
struct SmallTree {
    bytes: Vec<u8>,
    size: u64,
}

impl TreeSource for SmallTree {
    fn read_tree(&self, buf: &mut [u8], offset: u64, _data: &dyn DataSource) -> io::Result<usize> {
        let Some(n) = self.size.checked_sub(offset) else {
            return Ok(0);
        };
        let n = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        buf[..n].fill(0);
        if let Ok(start) = usize::try_from(offset) {
            if start < self.bytes.len() {
                let m = n.min(self.bytes.len() - start);
                buf[..m].copy_from_slice(&self.bytes[start..start + m]);
            }
        }
        Ok(n)
    }
}

impl TreeSource for LazyTree {
    fn read_tree(&self, buf: &mut [u8], offset: u64, data: &dyn DataSource) -> io::Result<usize> {
        self.tree(data)?.read_tree(buf, offset, data)
    }

    fn prepare(&self, data: &dyn DataSource) {
        // A small file read whole needs no tree at all (the verifier checks the
        // hashes of all its blocks against the root); one read in part gets its
        // tree from the data then.
        if self.is_small() {
            return;
        }
        let _ = self.tree(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{HashAlgorithm, TreeParams};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn descriptor_and_tree(data: &[u8], salt: &[u8]) -> (Descriptor, Vec<u8>) {
        let params = TreeParams::new(HashAlgorithm::Sha256, 4096, salt).expect("params");
        let mut sink = VecSink::default();
        let d = build_tree(&data, &params, &mut sink, BuildOptions { threads: 1 }).expect("build");
        (d, sink.0)
    }

    fn lazy(d: &Descriptor) -> (LazyTree, Arc<AtomicUsize>) {
        let rebuilt = Arc::new(AtomicUsize::new(0));
        let r = rebuilt.clone();
        let on_rebuild: OnRebuild = Arc::new(move |_| {
            r.fetch_add(1, Ordering::Relaxed);
        });
        let t = LazyTree::new(None, d.clone(), BuildOptions { threads: 1 }, on_rebuild);
        (t, rebuilt)
    }

    #[test]
    fn a_small_files_tree_comes_from_its_data_byte_for_byte() {
        // 10 blocks and a bit, salted: one tree block holding 11 hashes.
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
        let (d, tree) = descriptor_and_tree(&data, b"salt");
        assert_eq!(tree.len(), 4096);
        let (t, rebuilt) = lazy(&d);
        let mut whole = vec![0xAA; 4096];
        assert_eq!(
            t.read_tree(&mut whole, 0, &data.as_slice()).expect("read"),
            4096
        );
        assert!(
            whole == tree,
            "the in-memory tree differs from the built one"
        );
        // Reads past the used hashes see the zero padding; past the end, nothing.
        let mut tail = vec![0xAA; 100];
        assert_eq!(
            t.read_tree(&mut tail, 4000, &data.as_slice())
                .expect("read"),
            96
        );
        assert!(tail[..96].iter().all(|&b| b == 0));
        assert_eq!(
            t.read_tree(&mut tail, 4096, &data.as_slice())
                .expect("read"),
            0
        );
        assert_eq!(
            rebuilt.load(Ordering::Relaxed),
            0,
            "not a rebuild of a lost tree"
        );
    }

    #[test]
    fn changed_small_data_is_never_taken_as_its_tree() {
        let data = vec![5u8; 20_000];
        let (d, _) = descriptor_and_tree(&data, b"");
        let mut changed = data.clone();
        changed[12_345] ^= 1;
        let (t, rebuilt) = lazy(&d);
        let mut block = vec![0; 4096];
        let err = t
            .read_tree(&mut block, 0, &changed.as_slice())
            .expect_err("no store and data that does not match: no tree");
        assert!(err.to_string().contains("cannot be rebuilt"), "{err}");
        assert_eq!(rebuilt.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn larger_files_do_not_take_the_small_path() {
        // 200 blocks: two tree levels.
        let data = vec![9u8; 200 * 4096];
        let (d, _) = descriptor_and_tree(&data, b"");
        let (t, rebuilt) = lazy(&d);
        assert!(t.small_tree_from_data(&data.as_slice()).is_none());
        // Without a store the ordinary rebuild still serves it, and counts.
        let mut block = vec![0; 4096];
        t.read_tree(&mut block, 0, &data.as_slice())
            .expect("rebuilt in memory");
        assert_eq!(rebuilt.load(Ordering::Relaxed), 1);
    }
}
