//! [`Image`]: a parsed composefs image and the queries a filesystem needs,
//! answered from memory. Parsing validated everything, so queries only fail
//! for a wrong inode number or type.

use std::sync::Arc;

use super::error::{ImageError, QueryError};
use super::model::{Attr, Content, Data, DirEntry, External, FileType, Ino};
use super::reader::{self, Body, Node, Tables};

/// A parsed, validated composefs (EROFS) image.
///
/// Holds the image bytes (which the caller should have verified against the
/// image's fs-verity digest before parsing) and the tree walked from them.
/// Immutable: share it freely between threads (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct Image {
    bytes: Arc<[u8]>,
    tables: Arc<Tables>,
}

impl Image {
    /// Parses `bytes`, refusing anything malformed or beyond what composefs
    /// writes, with an error that names the inode and the fault.
    pub fn parse(bytes: impl Into<Arc<[u8]>>) -> Result<Image, ImageError> {
        let bytes = bytes.into();
        let tables = reader::parse(&bytes)?;
        Ok(Image {
            bytes,
            tables: Arc::new(tables),
        })
    }

    /// The image's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True if the image starts with a composefs header (plain EROFS images,
    /// e.g. from `mkfs.erofs`, parse too).
    pub fn is_composefs(&self) -> bool {
        self.tables.composefs
    }

    /// The root directory.
    pub fn root(&self) -> Ino {
        Ino::ROOT
    }

    /// How many inodes the tree has (inode numbers are `1..=count`).
    pub fn inode_count(&self) -> u64 {
        self.tables.nodes.len() as u64
    }

    fn node(&self, ino: Ino) -> Result<&Node, QueryError> {
        ino.0
            .checked_sub(1)
            .and_then(|i| self.tables.nodes.get(usize::try_from(i).ok()?))
            .ok_or(QueryError::NoInode(ino.0))
    }

    fn name(&self, range: (usize, usize)) -> &[u8] {
        self.bytes.get(range.0..range.1).unwrap_or_default()
    }

    /// The attributes of `ino`.
    pub fn attr(&self, ino: Ino) -> Result<Attr, QueryError> {
        let n = self.node(ino)?;
        Ok(Attr {
            ino,
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            mtime: n.mtime,
            mtime_nsec: n.mtime_nsec,
            nlink: n.nlink,
            size: n.size,
            rdev: n.rdev,
        })
    }

    /// The entry `name` of directory `dir`, if there is one. `.` and `..` are
    /// answered too.
    pub fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<Ino>, QueryError> {
        let Body::Dir { parent, entries } = &self.node(dir)?.body else {
            return Err(QueryError::NotDirectory(dir.0));
        };
        Ok(match name {
            b"." => Some(dir),
            b".." => Some(*parent),
            _ => entries
                .binary_search_by(|e| self.name(e.name).cmp(name))
                .ok()
                .map(|i| entries[i].ino),
        })
    }

    /// The entries of directory `dir`: `.` and `..` first, then the others in
    /// ascending byte order of their names. The iterator skips in O(1)
    /// (`nth`), so a listing can resume at an entry index.
    pub fn readdir(&self, dir: Ino) -> Result<ReadDir<'_>, QueryError> {
        let Body::Dir { parent, .. } = &self.node(dir)?.body else {
            return Err(QueryError::NotDirectory(dir.0));
        };
        Ok(ReadDir {
            image: self,
            dir,
            parent: *parent,
            next: 0,
        })
    }

    /// The xattrs of `ino` as the kernel's composefs mount lists them to a
    /// caller with `CAP_SYS_ADMIN`: overlayfs's own xattrs hidden, escaped ones
    /// under their original names, in the kernel's listing order. (The kernel
    /// hides `trusted.*` from other callers.)
    pub fn xattrs(&self, ino: Ino) -> Result<impl Iterator<Item = (&[u8], &[u8])>, QueryError> {
        Ok(self
            .node(ino)?
            .xattrs
            .iter()
            .map(|(name, value)| (&name[..], self.name(*value))))
    }

    /// The value of xattr `name` of `ino`, if it has one.
    pub fn xattr(&self, ino: Ino, name: &[u8]) -> Result<Option<&[u8]>, QueryError> {
        Ok(self.xattrs(ino)?.find(|(n, _)| *n == name).map(|(_, v)| v))
    }

    /// The target of symlink `ino`.
    pub fn readlink(&self, ino: Ino) -> Result<&[u8], QueryError> {
        match self.node(ino)?.body {
            Body::Symlink(start, end) => Ok(self.name((start, end))),
            _ => Err(QueryError::NotSymlink(ino.0)),
        }
    }

    /// Where the bytes of regular file `ino` are.
    pub fn content(&self, ino: Ino) -> Result<Content<'_>, QueryError> {
        let n = self.node(ino)?;
        match &n.body {
            Body::External(digest) => Ok(Content::External(External {
                digest: *digest,
                size: n.size,
            })),
            Body::Data(_) if n.size == 0 => Ok(Content::Empty),
            Body::Data(extents) => Ok(Content::Inline(Data {
                image: &self.bytes,
                size: n.size,
                extents,
            })),
            _ => Err(QueryError::NotRegular(ino.0)),
        }
    }
}

/// The entries of one directory; see [`Image::readdir`].
#[derive(Debug, Clone)]
pub struct ReadDir<'a> {
    image: &'a Image,
    dir: Ino,
    parent: Ino,
    next: usize,
}

impl<'a> Iterator for ReadDir<'a> {
    type Item = DirEntry<'a>;

    fn next(&mut self) -> Option<DirEntry<'a>> {
        let Ok(Node {
            body: Body::Dir { entries, .. },
            ..
        }) = self.image.node(self.dir)
        else {
            return None;
        };
        let i = self.next;
        self.next = self.next.saturating_add(1);
        match i {
            0 => Some(DirEntry {
                name: b".",
                ino: self.dir,
                kind: FileType::Directory,
            }),
            1 => Some(DirEntry {
                name: b"..",
                ino: self.parent,
                kind: FileType::Directory,
            }),
            _ => entries.get(i - 2).map(|e| DirEntry {
                name: self.image.name(e.name),
                ino: e.ino,
                kind: e.kind,
            }),
        }
    }

    fn nth(&mut self, n: usize) -> Option<DirEntry<'a>> {
        self.next = self.next.saturating_add(n);
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let total = match self.image.node(self.dir) {
            Ok(Node {
                body: Body::Dir { entries, .. },
                ..
            }) => entries.len() + 2,
            _ => 0,
        };
        let left = total.saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for ReadDir<'_> {}
