//! Finding a verity file's Merkle tree when it is opened: the opener's
//! business, so the verifier only ever reads an immutable tree object.
//!
//! - no tree (a file of at most one block): nothing to find;
//! - a small file (at most [`SMALL_FILE_MAX`] bytes, a one-block tree): no
//!   tree at open: a read of the whole file checks all its block hashes
//!   against the root directly; a read of only part of it builds the tree
//!   block from the data, in memory, taken only if its root matches (else the
//!   stored tree is used, so that exactly the changed blocks fail);
//! - otherwise the tree file in the store, kept open by the tree object; when
//!   it is missing, the tree is rebuilt from the data now, while the data
//!   still matches the descriptor (into the store, or memory when the store
//!   cannot be written). When it cannot be had, the object remembers why and
//!   every read that needs it fails (EIO), as with the kernel.

use std::fs::File;
use std::io;
use std::sync::{Arc, OnceLock};

use super::file::VerityFile;
use crate::format::{Descriptor, HashValue, TreeParams};
use crate::merkle::{
    BlockCache, BuildOptions, DataSource, TreeSource, VecSink, Verifier, build_tree,
};
use crate::store::{RebuiltTree, TreeError, TreeStore, rebuild_tree};

/// Files up to this size whose tree is a single block get it from their data.
pub(crate) const SMALL_FILE_MAX: u64 = 128 * 1024;

/// Opens a verity file's data anew (a small file's tree is built from its
/// data only when a partial read first needs it, long after the open).
pub(crate) trait DataOpener: Send + Sync {
    /// The file's data, open for reading.
    fn open_data(&self) -> io::Result<File>;
}

/// Why a file's tree cannot be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeUnavailable {
    /// Not in the store, and rebuilding it from the data failed (the data no
    /// longer matches the descriptor, typically).
    #[error("Merkle tree missing and cannot be rebuilt: {0}")]
    Rebuild(#[source] TreeError),
    /// The store could not be read.
    #[error("Merkle tree store: {0}")]
    Store(#[source] TreeError),
    /// The data could not be reopened to build a small file's tree.
    #[error("cannot reopen the data to build its tree: {0}")]
    Reopen(#[source] io::Error),
    /// A file known by its digest has another size than recorded.
    #[error("the data is {found} bytes, {expected} expected")]
    Size {
        /// Recorded.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// A file known by its digest has other contents.
    #[error("the data's fs-verity digest is {found}, {expected} expected")]
    Digest {
        /// Recorded.
        expected: Box<HashValue>,
        /// Of the data.
        found: Box<HashValue>,
    },
    /// Reading or hashing the data failed.
    #[error("cannot hash the data: {0}")]
    Build(#[source] TreeError),
}

/// Makes verifiers: finds or rebuilds trees, with the mount's block cache.
pub(crate) struct TreeResolver {
    store: Option<Arc<TreeStore>>,
    cache: Arc<BlockCache>,
    options: BuildOptions,
    on_rebuild: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for TreeResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeResolver")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl TreeResolver {
    pub(crate) fn new(
        store: Option<Arc<TreeStore>>, cache: Arc<BlockCache>, options: BuildOptions,
        on_rebuild: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self {
            store,
            cache,
            options,
            on_rebuild,
        }
    }

    pub(crate) fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    pub(crate) fn store(&self) -> Option<&Arc<TreeStore>> {
        self.store.as_ref()
    }

    /// The verifier of `vf`, whose data `data` is open now (a missing tree is
    /// rebuilt from it) and can be reopened with `reopen` later. A file known
    /// only by its digest gets its descriptor here, from its stored tree or its
    /// data, and fails when that does not hash to the digest.
    pub(crate) fn verifier(
        self: &Arc<Self>, vf: &VerityFile, data: &File, reopen: Arc<dyn DataOpener>,
    ) -> Result<Verifier, TreeUnavailable> {
        match vf.descriptor() {
            Some(d) => Ok(self.verifier_for(d, data, reopen)),
            None => self.verifier_for_digest(vf, data),
        }
    }

    fn verifier_for(
        self: &Arc<Self>, descriptor: &Descriptor, data: &File, reopen: Arc<dyn DataOpener>,
    ) -> Verifier {
        let geometry = descriptor.geometry();
        let tree: Arc<dyn TreeSource> = if geometry.tree_size() == 0 {
            Arc::new(Vec::<u8>::new())
        } else if has_small_tree(descriptor) {
            Arc::new(SmallTree {
                resolver: self.clone(),
                descriptor: descriptor.clone(),
                reopen,
                tree: OnceLock::new(),
            })
        } else {
            self.find_or_rebuild(descriptor, data)
        };
        Verifier::new(descriptor.clone(), tree, self.cache.clone())
    }

    /// The verifier of a file known by its digest (an image's object): its
    /// descriptor is the default parameters (SHA-256 or the given algorithm,
    /// 4096-byte blocks, no salt, as composefs uses), the data's size, and the
    /// root from the stored tree's root block, or from hashing the data; it
    /// must hash to the digest, which vouches for all of it.
    fn verifier_for_digest(
        &self, vf: &VerityFile, data: &File,
    ) -> Result<Verifier, TreeUnavailable> {
        let found = data
            .metadata()
            .map_err(|e| {
                TreeUnavailable::Build(TreeError::Io {
                    context: "stat".into(),
                    source: e,
                })
            })?
            .len();
        if found != vf.data_size() {
            return Err(TreeUnavailable::Size {
                expected: vf.data_size(),
                found,
            });
        }
        let (params, geometry) = digest_params(vf.algorithm(), found)
            .map_err(|e| TreeUnavailable::Build(TreeError::Build(e.into())))?;
        let expected = *vf.digest();
        let check = |d: &Descriptor| match d.digest() == expected {
            true => Ok(()),
            false => Err(TreeUnavailable::Digest {
                expected: Box::new(expected),
                found: Box::new(d.digest()),
            }),
        };
        if let (true, Some(store)) = (geometry.tree_size() > 0, &self.store) {
            let stored = store
                .open_tree_of(params.algorithm(), &expected, geometry.tree_size())
                .map_err(TreeUnavailable::Store)?;
            if let Some(file) = stored {
                let mut top = vec![0u8; geometry.block_size()];
                if crate::merkle::read_full(&file, &mut top, 0).is_ok_and(|n| n == top.len()) {
                    let root = crate::format::BlockHasher::new(params.algorithm(), &[]).hash(&top);
                    let d = Descriptor::new(params.clone(), found, root);
                    if check(&d).is_ok() {
                        return Ok(Verifier::new(d, Arc::new(file), self.cache.clone()));
                    }
                }
                tracing::warn!(digest = %expected, "stored tree does not match its digest: rebuilding it");
            }
        }
        tracing::info!(digest = %expected, "Merkle tree missing: building it from the data");
        let (d, tree): (Descriptor, Arc<dyn TreeSource>) = match &self.store {
            Some(store) if geometry.tree_size() > 0 => {
                let d = store
                    .build_and_install(data, &params, self.options)
                    .map_err(TreeUnavailable::Build)?;
                check(&d)?;
                match store.open_tree(&d).map_err(TreeUnavailable::Store)? {
                    Some(f) => (d, Arc::new(f)),
                    None => {
                        return Err(TreeUnavailable::Build(TreeError::Io {
                            context: "reopen the installed tree".into(),
                            source: io::ErrorKind::NotFound.into(),
                        }));
                    }
                }
            }
            _ => {
                let mut sink = VecSink::default();
                let d = build_tree(data, &params, &mut sink, self.options)
                    .map_err(|e| TreeUnavailable::Build(e.into()))?;
                check(&d)?;
                (d, Arc::new(sink.0))
            }
        };
        if geometry.tree_size() > 0 {
            (self.on_rebuild)();
        }
        Ok(Verifier::new(d, tree, self.cache.clone()))
    }

    /// Whether a verifier for `vf` would have to build its tree from the data
    /// now (no tree in the store, and not a small file, whose tree waits for a
    /// partial read).
    pub(crate) fn must_rebuild(&self, vf: &VerityFile) -> bool {
        let (algorithm, digest) = (vf.algorithm(), vf.digest());
        let tree_size = match vf.descriptor() {
            Some(d) if has_small_tree(d) => return false,
            Some(d) => d.geometry().tree_size(),
            None => match digest_params(algorithm, vf.data_size()) {
                Ok((_, g)) => g.tree_size(),
                Err(_) => return false,
            },
        };
        tree_size > 0
            && self.store.as_ref().is_none_or(|s| {
                !matches!(s.open_tree_of(algorithm, digest, tree_size), Ok(Some(_)))
            })
    }

    /// The stored tree, else one rebuilt from `data`.
    fn find_or_rebuild(
        &self, descriptor: &Descriptor, data: &dyn DataSource,
    ) -> Arc<dyn TreeSource> {
        if let Some(store) = &self.store {
            match store.open_tree(descriptor) {
                Ok(Some(file)) => return Arc::new(file),
                Ok(None) => {}
                Err(e) => return Arc::new(Unavailable(TreeUnavailable::Store(e))),
            }
        }
        tracing::info!(digest = %descriptor.digest(), "Merkle tree missing: rebuilding it from the data");
        match rebuild_tree(self.store.as_deref(), data, descriptor, self.options) {
            Ok(tree) => {
                (self.on_rebuild)();
                match tree {
                    RebuiltTree::Stored(file) => Arc::new(file),
                    RebuiltTree::Memory(bytes) => Arc::new(bytes),
                }
            }
            Err(e) => Arc::new(Unavailable(TreeUnavailable::Rebuild(e))),
        }
    }
}

/// A tree that cannot be had: every read fails with the reason.
#[derive(Debug)]
struct Unavailable(TreeUnavailable);

impl TreeSource for Unavailable {
    fn read_tree(&self, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
        Err(io::Error::other(self.0.to_string()))
    }
}

/// Whether `descriptor`'s file gets its one-block tree from its data when a
/// partial read needs it ([`SmallTree`]) instead of from the store.
fn has_small_tree(descriptor: &Descriptor) -> bool {
    let g = descriptor.geometry();
    g.tree_size() == g.block_size() as u64 && descriptor.data_size() <= SMALL_FILE_MAX
}

/// The parameters and geometry of a file known only by its digest and size:
/// `algorithm`, 4096-byte blocks, no salt (as composefs uses).
fn digest_params(
    algorithm: crate::format::HashAlgorithm, size: u64,
) -> Result<(TreeParams, crate::format::TreeGeometry), crate::format::FormatError> {
    let params = TreeParams::new(algorithm, u64::from(crate::format::DEFAULT_BLOCK_SIZE), &[])?;
    let geometry = crate::format::TreeGeometry::new(
        size,
        params.log_block_size(),
        params.algorithm().digest_size(),
    )?;
    Ok((params, geometry))
}

/// The one-block tree of a small file, found when a partial read first needs
/// it.
struct SmallTree {
    resolver: Arc<TreeResolver>,
    descriptor: Descriptor,
    reopen: Arc<dyn DataOpener>,
    tree: OnceLock<Arc<dyn TreeSource>>,
}

impl SmallTree {
    fn resolve(&self) -> Arc<dyn TreeSource> {
        let data = match self.reopen.open_data() {
            Ok(f) => f,
            Err(e) => return Arc::new(Unavailable(TreeUnavailable::Reopen(e))),
        };
        let g = self.descriptor.geometry();
        let mut sink = VecSink::default();
        let built = build_tree(
            &data,
            self.descriptor.params(),
            &mut sink,
            BuildOptions { threads: 1 },
        );
        match built {
            // Only the block's used hashes are kept; the rest is zero padding.
            Ok(d) if d == self.descriptor => {
                let mut bytes = sink.0;
                bytes.truncate(g.data_blocks() as usize * g.digest_size());
                bytes.shrink_to_fit();
                Arc::new(PaddedTree {
                    bytes,
                    size: g.tree_size(),
                })
            }
            // The data changed: the stored tree tells which blocks.
            _ => self.resolver.find_or_rebuild(&self.descriptor, &data),
        }
    }
}

impl TreeSource for SmallTree {
    fn read_tree(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.tree
            .get_or_init(|| self.resolve())
            .read_tree(buf, offset)
    }
}

/// A one-block tree held in memory without its zero padding.
#[derive(Debug)]
struct PaddedTree {
    bytes: Vec<u8>,
    size: u64,
}

impl TreeSource for PaddedTree {
    fn read_tree(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(n) = self.size.checked_sub(offset) else {
            return Ok(0);
        };
        let n = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        buf[..n].fill(0);
        if let Ok(start) = usize::try_from(offset)
            && start < self.bytes.len()
        {
            let m = n.min(self.bytes.len() - start);
            buf[..m].copy_from_slice(&self.bytes[start..start + m]);
        }
        Ok(n)
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

    /// Reopens a temporary file holding the given bytes.
    struct TempData(tempfile::NamedTempFile);

    impl DataOpener for TempData {
        fn open_data(&self) -> io::Result<File> {
            File::open(self.0.path())
        }
    }

    fn temp_data(bytes: &[u8]) -> Arc<TempData> {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), bytes).expect("write");
        Arc::new(TempData(f))
    }

    fn resolver(store: Option<Arc<TreeStore>>) -> (Arc<TreeResolver>, Arc<AtomicUsize>) {
        let rebuilt = Arc::new(AtomicUsize::new(0));
        let r = rebuilt.clone();
        let resolver = TreeResolver::new(
            store,
            Arc::new(BlockCache::new(1 << 20)),
            BuildOptions { threads: 1 },
            Arc::new(move || {
                r.fetch_add(1, Ordering::Relaxed);
            }),
        );
        (Arc::new(resolver), rebuilt)
    }

    #[test]
    fn a_small_files_tree_comes_from_its_data_byte_for_byte() {
        // 10 blocks and a bit, salted: one tree block holding 11 hashes.
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
        let (d, tree) = descriptor_and_tree(&data, b"salt");
        assert_eq!(tree.len(), 4096);
        let file = temp_data(&data);
        let (r, rebuilt) = resolver(None);
        let small = SmallTree {
            resolver: r,
            descriptor: d,
            reopen: file,
            tree: OnceLock::new(),
        };
        let mut whole = vec![0xAA; 4096];
        assert_eq!(small.read_tree(&mut whole, 0).expect("read"), 4096);
        assert!(
            whole == tree,
            "the in-memory tree differs from the built one"
        );
        // Reads past the used hashes see the zero padding; past the end, nothing.
        let mut tail = vec![0xAA; 100];
        assert_eq!(small.read_tree(&mut tail, 4000).expect("read"), 96);
        assert!(tail[..96].iter().all(|&b| b == 0));
        assert_eq!(small.read_tree(&mut tail, 4096).expect("read"), 0);
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
        let (r, rebuilt) = resolver(None);
        let small = SmallTree {
            resolver: r,
            descriptor: d,
            reopen: temp_data(&changed),
            tree: OnceLock::new(),
        };
        let mut block = vec![0; 4096];
        let err = small
            .read_tree(&mut block, 0)
            .expect_err("no store and data that does not match: no tree");
        assert!(err.to_string().contains("cannot be rebuilt"), "{err}");
        assert_eq!(rebuilt.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn larger_files_find_their_tree_or_rebuild_it_at_open() {
        // 200 blocks: two tree levels.
        let data = vec![9u8; 200 * 4096];
        let (d, tree) = descriptor_and_tree(&data, b"");
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(TreeStore::open(&dir.path().join("store")).expect("store"));
        let (r, rebuilt) = resolver(Some(store.clone()));
        let file = temp_data(&data);
        let opened = file.open_data().expect("open");
        let vf = VerityFile::new(crate::store::VerityMetadata {
            descriptor: d.clone(),
            signature: None,
        });
        let v = r.verifier(&vf, &opened, file.clone()).expect("verifier");
        let (bytes, _) = v.read_verified(&opened, 4096 * 150, 10).expect("verified");
        assert_eq!(bytes.as_slice(), &data[4096 * 150..4096 * 150 + 10]);
        assert_eq!(rebuilt.load(Ordering::Relaxed), 1, "rebuilt at open");
        let stored = store.open_tree(&d).expect("store").expect("stored");
        assert_eq!(
            std::fs::read(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&stored)
            ))
            .expect("read"),
            tree
        );
        // The next verifier finds it.
        let _ = r.verifier(&vf, &opened, file);
        assert_eq!(rebuilt.load(Ordering::Relaxed), 1, "found in the store");
    }
}
