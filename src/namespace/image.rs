//! The image namespace: a composefs image, verified against its digest (or
//! signature) before the mount goes live and held in the daemon's memory, so
//! names, types, modes, owners, times, link counts, sizes and xattrs come
//! from verified bytes and can never change under a live mount.
//!
//! Regular files are verity files for the core: a file stored in the image is
//! served from a sealed memory file with a descriptor computed from those
//! verified bytes; any other file is an object of the object store, known by
//! the fs-verity digest the image records, and verified block by block
//! against it (its descriptor is found at open from its stored tree or its
//! data, and must hash to that digest: a missing object, one of the wrong
//! size, or another file's object fails with EIO). Objects are reached only
//! by the names the image gives, beneath the object directories, never
//! following a symlink. Everything is read-only.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::{Attr, Caller, DirEntry, Namespace, StatFs, Timespec, XattrReply};
use crate::error::{Error, Result};
use crate::format::{HashAlgorithm, TreeParams};
use crate::image::{Content, Image, Ino, QueryError};
use crate::merkle::{BuildOptions, NullSink, build_tree};
use crate::store::VerityMetadata;
use crate::verity::{Claim, Damage, DataOpener, NodeVerity};

/// The object directories, searched in order (like `basedir=a:b`).
#[derive(Debug)]
pub(crate) struct Objects {
    dirs: Vec<(PathBuf, OwnedFd)>,
}

impl Objects {
    /// Opens the object directories.
    pub(crate) fn open(dirs: &[PathBuf]) -> io::Result<Self> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dirs = dirs
            .iter()
            .map(|d| {
                let fd = rustix::fs::open(d, flags, Mode::empty())
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", d.display())))?;
                Ok((d.clone(), fd))
            })
            .collect::<io::Result<_>>()?;
        Ok(Self { dirs })
    }

    /// The first object directory (for its tree store).
    pub(crate) fn first(&self) -> Option<&(PathBuf, OwnedFd)> {
        self.dirs.first()
    }

    /// Opens object `rel` (`xx/rest`) in the first directory holding it:
    /// beneath it, without symlinks, without blocking, a regular file only.
    fn object(&self, rel: &str) -> io::Result<File> {
        let mut missing = io::Error::from(io::ErrorKind::NotFound);
        for (_, dir) in &self.dirs {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve) {
                Ok(fd) => {
                    let st = rustix::fs::fstat(&fd)?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("object {rel} is not a regular file"),
                        ));
                    }
                    return Ok(File::from(fd));
                }
                Err(rustix::io::Errno::NOENT) => {
                    missing = io::Error::from_raw_os_error(libc::ENOENT)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            missing.kind(),
            format!("object {rel} is missing from the object store"),
        ))
    }
}

/// How the image was verified before the mount went live.
#[derive(Debug, Clone)]
pub(crate) enum Trust {
    /// Its digest equals the one given (`--digest`).
    Digest,
    /// A trusted signature over its digest (`--signature`); the signer.
    Signature(String),
    /// Not verified (`--insecure`).
    Insecure,
}

/// A mounted composefs image.
#[derive(Debug)]
pub(crate) struct ImageNs {
    path: PathBuf,
    image: Image,
    objects: Arc<Objects>,
    nodes: Mutex<HashMap<u64, Arc<NodeVerity>>>,
}

impl ImageNs {
    /// Serves `image` (already verified), read from `path`, with its objects
    /// in `objects`.
    pub(crate) fn new(path: &Path, image: Image, objects: Objects) -> Self {
        Self {
            path: path.to_path_buf(),
            image,
            objects: Arc::new(objects),
            nodes: Mutex::default(),
        }
    }

    fn attr(&self, id: u64) -> Result<Attr> {
        let a = self.image.attr(Ino(id)).map_err(query)?;
        let t = Timespec {
            sec: a.mtime,
            nsec: a.mtime_nsec,
        };
        Ok(Attr {
            ino: id,
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            mode: a.mode,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: a.rdev as u32,
            blksize: 4096,
            verity: false,
        })
    }

    /// A sealed memory file holding `bytes` (a file stored in the image).
    fn memory_file(bytes: &[u8]) -> Result<File> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let fd = rustix::fs::memfd_create(
            "image-file",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let file = File::from(fd);
        std::os::unix::fs::FileExt::write_all_at(&file, bytes, 0)?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )?;
        Ok(file)
    }

    fn inline_bytes(&self, id: u64) -> Result<Vec<u8>> {
        match self.image.content(Ino(id)).map_err(query)? {
            Content::Inline(data) => data.to_vec().ok_or_else(|| Error::VerityDamaged {
                path: self.describe(id),
                reason: "the file is larger than the image".into(),
            }),
            _ => Ok(Vec::new()),
        }
    }
}

fn query(e: QueryError) -> Error {
    match e {
        QueryError::NoInode(id) => Error::UnknownInode(id),
        QueryError::NotDirectory(_) => Error::NotDirectory,
        QueryError::NotSymlink(_) | QueryError::NotRegular(_) => {
            Error::InvalidArgument(e.to_string())
        }
    }
}

/// Reopens an object for a tree built from its data.
struct ObjectOpener {
    objects: Arc<Objects>,
    rel: String,
}

impl DataOpener for ObjectOpener {
    fn open_data(&self) -> io::Result<File> {
        self.objects.object(&self.rel)
    }
}

/// Reopens a file stored in the image (a fresh memory file).
struct InlineOpener(Vec<u8>);

impl DataOpener for InlineOpener {
    fn open_data(&self) -> io::Result<File> {
        ImageNs::memory_file(&self.0).map_err(io::Error::other)
    }
}

impl Namespace for ImageNs {
    fn source(&self) -> &Path {
        &self.path
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr> {
        match self
            .image
            .lookup(Ino(parent), name.as_bytes())
            .map_err(query)?
        {
            Some(ino) => self.attr(ino.0),
            None => Err(Error::Backing(io::Error::from_raw_os_error(libc::ENOENT))),
        }
    }

    /// Image inodes never go away; their verity state stays.
    fn forget(&self, _id: u64, _n: u64) {}

    fn getattr(&self, id: u64) -> Result<Attr> {
        self.attr(id)
    }

    fn readlink(&self, id: u64) -> Result<Vec<u8>> {
        Ok(self.image.readlink(Ino(id)).map_err(query)?.to_vec())
    }

    fn opendir(&self, id: u64) -> Result<Option<File>> {
        self.image.readdir(Ino(id)).map_err(query)?;
        Ok(None)
    }

    fn list(&self, id: u64, _dir: Option<&File>) -> Result<Vec<DirEntry>> {
        Ok(self
            .image
            .readdir(Ino(id))
            .map_err(query)?
            .map(|e| DirEntry {
                name: OsStr::from_bytes(e.name).to_os_string(),
                ino: e.ino.0,
                kind: FileType::from_raw_mode(e.kind.mode_bits()),
            })
            .collect())
    }

    fn statfs(&self) -> Result<StatFs> {
        let files = self.image.inode_count();
        Ok(StatFs {
            blocks: (self.image.bytes().len() as u64).div_ceil(4096),
            bfree: 0,
            bavail: 0,
            files,
            ffree: 0,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
        })
    }

    fn verity(&self, id: u64) -> Result<Arc<NodeVerity>> {
        self.image.attr(Ino(id)).map_err(query)?;
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        Ok(nodes.entry(id).or_default().clone())
    }

    fn verity_claim(&self, id: u64) -> Claim {
        match self.image.content(Ino(id)) {
            Ok(Content::External(e)) => Claim::Digest {
                algorithm: HashAlgorithm::Sha256,
                digest: e.digest,
                size: e.size,
            },
            Ok(Content::Inline(_)) => match self.inline_bytes(id) {
                // The bytes come from the verified image: their descriptor too.
                Ok(bytes) => {
                    let mut sink = NullSink;
                    match build_tree(
                        &bytes.as_slice(),
                        &TreeParams::default(),
                        &mut sink,
                        BuildOptions { threads: 1 },
                    ) {
                        Ok(descriptor) => Claim::Metadata(VerityMetadata {
                            descriptor,
                            signature: None,
                        }),
                        Err(_) => Claim::Damaged(Damage::Unreadable(libc::EIO)),
                    }
                }
                Err(_) => Claim::Damaged(Damage::Unreadable(libc::EIO)),
            },
            _ => Claim::Plain,
        }
    }

    fn open(&self, id: u64, flags: OFlags) -> Result<File> {
        if flags.intersects(OFlags::WRONLY | OFlags::RDWR | OFlags::TRUNC | OFlags::APPEND) {
            return Err(Error::ReadOnly);
        }
        match self.image.content(Ino(id)).map_err(query)? {
            Content::External(e) => {
                self.objects
                    .object(&e.object_path())
                    .map_err(|err| Error::VerityDamaged {
                        path: self.describe(id),
                        reason: err.to_string(),
                    })
            }
            Content::Inline(_) => Self::memory_file(&self.inline_bytes(id)?),
            Content::Empty => Self::memory_file(&[]),
        }
    }

    fn data_opener(&self, id: u64) -> Result<Arc<dyn DataOpener>> {
        Ok(match self.image.content(Ino(id)).map_err(query)? {
            Content::External(e) => Arc::new(ObjectOpener {
                objects: self.objects.clone(),
                rel: e.object_path(),
            }),
            _ => Arc::new(InlineOpener(self.inline_bytes(id)?)),
        })
    }

    fn describe(&self, id: u64) -> String {
        match self.image.content(Ino(id)) {
            Ok(Content::External(e)) => {
                format!(
                    "{} inode {id} (object {})",
                    self.path.display(),
                    e.object_path()
                )
            }
            _ => format!("{} inode {id}", self.path.display()),
        }
    }

    fn may_write(&self, _id: u64, _caller: Caller) -> Result<bool> {
        Ok(false)
    }

    fn getxattr(&self, id: u64, name: &OsStr, size: u32) -> Result<XattrReply> {
        match self.image.xattr(Ino(id), name.as_bytes()).map_err(query)? {
            Some(value) => XattrReply::sized(value.to_vec(), size),
            None => Err(Error::NoAttribute),
        }
    }

    fn listxattr(&self, id: u64, size: u32) -> Result<XattrReply> {
        let mut list = Vec::new();
        for (name, _) in self.image.xattrs(Ino(id)).map_err(query)? {
            list.extend_from_slice(name);
            list.push(0);
        }
        XattrReply::sized(list, size)
    }

    fn node_count(&self) -> usize {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
