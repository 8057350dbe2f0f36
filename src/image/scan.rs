//! Building an image's [`Tree`] from a directory, and filling the object
//! store with the contents of its regular files (I/O at the edge: the writer
//! itself is pure).
//!
//! Each regular file over [`INLINE_MAX`] bytes is copied into the store (a
//! reflink with `FICLONE` where the filesystem offers it, else a copy that
//! keeps holes), the copy is hashed with our own Merkle tree builder, and the
//! copy is renamed to `xx/rest-of-hex` of its fs-verity SHA-256 digest. Hashing
//! the copy rather than the source means an object's name is always the digest
//! of its bytes, even if the source changes meanwhile. Nothing else is left in
//! the store: a temporary copy is removed on any failure.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::model::FileType;
use super::writer::{Body, INLINE_MAX, Node, Tree};
use crate::format::{HashValue, TreeParams};
use crate::merkle::{BuildError, BuildOptions, NullSink, build_tree};

/// Why a directory could not be scanned or its objects stored.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A file of the source tree could not be read.
    #[error("can't read '{path}': {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The source is not a directory.
    #[error("'{0}' is not a directory")]
    NotDirectory(PathBuf),
    /// A file type an image cannot hold.
    #[error("'{0}': unknown file type")]
    FileType(PathBuf),
    /// Writing to the object store failed.
    #[error("object store '{path}': {source}")]
    Store {
        /// The store path involved.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Hashing an object failed.
    #[error("can't compute the fs-verity digest of '{path}': {source}")]
    Hash {
        /// The source file.
        path: PathBuf,
        /// The cause.
        source: BuildError,
    },
}

/// What a scan did, for reporting.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    /// Inodes in the tree (hard links counted once).
    pub inodes: u64,
    /// Directories.
    pub directories: u64,
    /// Regular files kept inside the image (including empty ones).
    pub inline_files: u64,
    /// Regular files whose bytes are objects.
    pub external_files: u64,
    /// Objects newly added to the store.
    pub objects_added: u64,
    /// Objects that were already in the store.
    pub objects_present: u64,
    /// Bytes of the objects newly added.
    pub bytes_added: u64,
    /// Objects added by reflink rather than copy.
    pub reflinked: u64,
}

/// The object store: a directory of `xx/rest-of-hex` files, and the objects'
/// Merkle trees in its tree store (`.fsverity-fuse`, the layout of
/// `crate::store`), so that a mount finds them instead of hashing each object
/// when it is first opened.
#[derive(Debug)]
pub struct ObjectStore {
    dir: PathBuf,
    counter: AtomicU64,
    trees: Option<crate::store::TreeStore>,
}

impl ObjectStore {
    /// Uses (and creates if needed) `dir` as the store.
    pub fn open(dir: &Path) -> Result<Self, ScanError> {
        fs::create_dir_all(dir).map_err(|source| ScanError::Store {
            path: dir.to_path_buf(),
            source,
        })?;
        let trees = crate::store::TreeStore::open(&dir.join(crate::store::STORE_DIR_NAME))
            .inspect_err(|e| tracing::warn!(error = %e, "objects' trees are not stored: a mount builds them at first open"))
            .ok();
        Ok(Self {
            dir: dir.to_path_buf(),
            counter: AtomicU64::new(0),
            trees,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds the content of `src` (at `path`) to the store. Returns its digest,
    /// its size, and whether it was new and whether reflinked.
    pub fn add(&self, src: &File, path: &Path) -> Result<(HashValue, u64, bool, bool), ScanError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self
            .dir
            .join(format!(".mkimage-{}-{n}.tmp", std::process::id()));
        let store_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| ScanError::Store { path: p, source }
        };
        let tmp = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp_path)
            .map_err(store_err(&tmp_path))?;
        let guard = RemoveOnDrop(Some(tmp_path.clone()));
        let reflinked = rustix::fs::ioctl_ficlone(&tmp, src).is_ok();
        if !reflinked {
            copy_sparse(src, &tmp).map_err(|source| ScanError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let size = tmp.metadata().map_err(store_err(&tmp_path))?.len();
        let hash_err = |source| ScanError::Hash {
            path: path.to_path_buf(),
            source,
        };
        let descriptor = match &self.trees {
            Some(trees) => trees
                .build_and_install(&tmp, &TreeParams::default(), BuildOptions::default())
                .map_err(|e| match e {
                    crate::store::TreeError::Build(b) => hash_err(b),
                    other => hash_err(crate::merkle::BuildError::Io(io::Error::other(
                        other.to_string(),
                    ))),
                })?,
            None => build_tree(
                &tmp,
                &TreeParams::default(),
                &mut NullSink,
                BuildOptions::default(),
            )
            .map_err(hash_err)?,
        };
        let digest = descriptor.digest();
        let rel = super::overlay::object_path(&digest);
        let target = self.dir.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(store_err(parent))?;
        }
        if target.exists() {
            return Ok((digest, size, false, reflinked)); // the guard removes the copy
        }
        fs::set_permissions(&tmp_path, fs::Permissions::from_mode(0o644))
            .map_err(store_err(&tmp_path))?;
        fs::rename(&tmp_path, &target).map_err(store_err(&target))?;
        std::mem::forget(guard);
        Ok((digest, size, true, reflinked))
    }
}

/// Where the Merkle tree of a new object goes.
///
/// Removes a path when dropped, unless taken.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Copies `src` into `dst`, keeping holes as holes.
fn copy_sparse(src: &File, dst: &File) -> io::Result<()> {
    use rustix::fs::{SeekFrom, seek};
    let size = src.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < size {
        let data = match seek(src, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break, // only a hole up to the end
            Err(e) => return Err(e.into()),
        };
        let hole = seek(src, SeekFrom::Hole(data))?.min(size);
        let mut off = data;
        while off < hole {
            let want = ((hole - off) as usize).min(buf.len());
            let n = src.read_at(&mut buf[..want], off)?;
            if n == 0 {
                break;
            }
            dst.write_all_at(&buf[..n], off)?;
            off += n as u64;
        }
        pos = hole;
    }
    dst.set_len(size)
}

/// Scans `src` into a tree, adding regular files' contents to `store`.
pub fn scan(src: &Path, store: &ObjectStore) -> Result<(Tree, ScanStats), ScanError> {
    let read_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ScanError::Read { path: p, source }
    };
    let meta = fs::symlink_metadata(src).map_err(read_err(src))?;
    if !meta.is_dir() {
        return Err(ScanError::NotDirectory(src.to_path_buf()));
    }
    let mut stats = ScanStats::default();
    let mut tree = Tree::default();
    tree.nodes
        .push(node_of(src, "/".into(), &meta, Body::Dir(BTreeMap::new()))?);
    stats.inodes += 1;
    stats.directories += 1;
    let mut links: HashMap<(u64, u64), usize> = HashMap::new();
    let mut queue = VecDeque::from([(0usize, src.to_path_buf(), String::new())]);
    while let Some((dir, dir_path, rel)) = queue.pop_front() {
        let mut names: Vec<_> = fs::read_dir(&dir_path)
            .map_err(read_err(&dir_path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(read_err(&dir_path))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir_path.join(&name);
            let child_rel = format!("{rel}/{}", name.to_string_lossy());
            let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
            let key = (meta.dev(), meta.ino());
            let index = match links.get(&key) {
                Some(&i) if !meta.is_dir() => i,
                _ => {
                    let body = body_of(&path, &meta, store, &mut stats)?;
                    let is_dir = matches!(body, Body::Dir(_));
                    tree.nodes
                        .push(node_of(&path, child_rel.clone(), &meta, body)?);
                    let i = tree.nodes.len() - 1;
                    stats.inodes += 1;
                    if is_dir {
                        stats.directories += 1;
                        queue.push_back((i, path.clone(), child_rel));
                    } else if meta.nlink() > 1 {
                        links.insert(key, i);
                    }
                    i
                }
            };
            if let Body::Dir(entries) = &mut tree.nodes[dir].body {
                entries.insert(name.as_bytes().to_vec(), index);
            }
        }
    }
    Ok((tree, stats))
}

/// The body of a non-root file: reads small files, stores large ones.
fn body_of(
    path: &Path, meta: &fs::Metadata, store: &ObjectStore, stats: &mut ScanStats,
) -> Result<Body, ScanError> {
    let read_err = |source| ScanError::Read {
        path: path.to_path_buf(),
        source,
    };
    let ft = meta.file_type();
    Ok(if ft.is_dir() {
        Body::Dir(BTreeMap::new())
    } else if ft.is_symlink() {
        Body::Symlink(
            fs::read_link(path)
                .map_err(read_err)?
                .as_os_str()
                .as_bytes()
                .to_vec(),
        )
    } else if ft.is_file() {
        let file = File::open(path).map_err(read_err)?;
        if meta.len() <= INLINE_MAX {
            let mut data = vec![0u8; INLINE_MAX as usize + 1];
            let n = crate::merkle::read_full(&file, &mut data, 0).map_err(read_err)?;
            if n as u64 <= INLINE_MAX {
                data.truncate(n);
                stats.inline_files += 1;
                return Ok(Body::Inline(data));
            }
        }
        let (digest, size, added, reflinked) = store.add(&file, path)?;
        stats.external_files += 1;
        if added {
            stats.objects_added += 1;
            stats.bytes_added += size;
            stats.reflinked += u64::from(reflinked);
        } else {
            stats.objects_present += 1;
        }
        Body::External { digest, size }
    } else {
        Body::Special(meta.rdev())
    })
}

/// A tree node with `path`'s attributes and xattrs.
fn node_of(path: &Path, rel: String, meta: &fs::Metadata, body: Body) -> Result<Node, ScanError> {
    let kind =
        FileType::from_mode(meta.mode()).ok_or_else(|| ScanError::FileType(path.to_path_buf()))?;
    let xattrs = read_xattrs(path).map_err(|source| ScanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Node {
        path: if rel.is_empty() { "/".into() } else { rel },
        kind,
        perm: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec() as u32,
        xattrs,
        body,
    })
}

/// Every xattr of `path` (not following a symlink) that the caller may read.
fn read_xattrs(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let names = loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(s) => s,
            Err(rustix::io::Errno::NOTSUP) => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            Err(rustix::io::Errno::RANGE) => continue, // grew meanwhile
            Err(e) => return Err(e.into()),
        }
    };
    for name in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
        let name_c = std::ffi::OsStr::from_bytes(name);
        let value = loop {
            let size = match rustix::fs::lgetxattr_query(path, name_c) {
                Ok(s) => s,
                Err(rustix::io::Errno::NODATA) => break None, // removed meanwhile
                Err(e) => return Err(e.into()),
            };
            let mut buf = vec![0u8; size];
            match rustix::fs::lgetxattr(path, name_c, &mut buf[..]) {
                Ok(n) => {
                    buf.truncate(n);
                    break Some(buf);
                }
                Err(rustix::io::Errno::RANGE) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(value) = value {
            out.insert(name.to_vec(), value);
        }
    }
    Ok(out)
}
