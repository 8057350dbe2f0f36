//! The values a parsed image answers with: inode numbers, file types,
//! attributes, directory entries, and where a regular file's bytes are.

use crate::format::HashValue;

/// An inode number of a parsed image: dense, from 1 (the root) upwards, in
/// breadth-first order of the tree. Hard links share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ino(pub u64);

impl Ino {
    /// The root directory's number.
    pub const ROOT: Ino = Ino(1);

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The type of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits of this type.
    pub fn mode_bits(self) -> u32 {
        use super::erofs::mode::*;
        match self {
            Self::Regular => S_IFREG,
            Self::Directory => S_IFDIR,
            Self::Symlink => S_IFLNK,
            Self::CharDevice => S_IFCHR,
            Self::BlockDevice => S_IFBLK,
            Self::Fifo => S_IFIFO,
            Self::Socket => S_IFSOCK,
        }
    }

    /// The type named by the `S_IFMT` bits of `mode`.
    pub fn from_mode(mode: u32) -> Option<Self> {
        use super::erofs::mode::*;
        Some(match mode & S_IFMT {
            S_IFREG => Self::Regular,
            S_IFDIR => Self::Directory,
            S_IFLNK => Self::Symlink,
            S_IFCHR => Self::CharDevice,
            S_IFBLK => Self::BlockDevice,
            S_IFIFO => Self::Fifo,
            S_IFSOCK => Self::Socket,
            _ => return None,
        })
    }

    /// EROFS's directory entry type byte (`EROFS_FT_*`, the same as `DT_*` order).
    pub(crate) fn erofs_ft(self) -> u8 {
        use super::erofs::ft;
        match self {
            Self::Regular => ft::REG,
            Self::Directory => ft::DIR,
            Self::Symlink => ft::LNK,
            Self::CharDevice => ft::CHR,
            Self::BlockDevice => ft::BLK,
            Self::Fifo => ft::FIFO,
            Self::Socket => ft::SOCK,
        }
    }

    /// A lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Regular => "regular file",
            Self::Directory => "directory",
            Self::Symlink => "symlink",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
        }
    }
}

/// The attributes of an inode, as the kernel's composefs mount shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// The inode's number in this image.
    pub ino: Ino,
    /// The file type.
    pub kind: FileType,
    /// The whole `st_mode`: type bits and permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch (the kernel also reports it as
    /// atime and ctime).
    pub mtime: i64,
    /// Nanoseconds of the modification time (below 1e9).
    pub mtime_nsec: u32,
    /// Link count: hard links for files, 2 + subdirectories for directories.
    pub nlink: u32,
    /// Size in bytes (for a symlink, the target's length).
    pub size: u64,
    /// Device number for device files, in the userspace `dev_t` encoding of
    /// `st_rdev` (glibc `makedev`); 0 for others.
    pub rdev: u64,
}

impl Attr {
    /// The permission bits (`mode & 0o7777`).
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// One directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The name (no `/`, no NUL, 1 to 255 bytes; `.` and `..` included).
    pub name: &'a [u8],
    /// The inode it names.
    pub ino: Ino,
    /// Its type.
    pub kind: FileType,
}

/// Where a regular file's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content<'a> {
    /// No bytes.
    Empty,
    /// The bytes are in the image itself (small files; any file of a plain EROFS
    /// image), covered by the image's own digest.
    Inline(Data<'a>),
    /// The bytes are an object of the object store, to be verified against `digest`.
    External(External),
}

/// A file's bytes stored in the image, possibly in several extents and with holes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    pub(crate) image: &'a [u8],
    pub(crate) size: u64,
    pub(crate) extents: &'a [Extent],
}

/// One run of a file's bytes: at `logical` in the file, `len` bytes, from
/// `physical` in the image or a hole (zeros) when `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    pub(crate) logical: u64,
    pub(crate) len: u64,
    pub(crate) physical: Option<usize>,
}

impl<'a> Data<'a> {
    /// The file's size.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// True if the file has no bytes.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The bytes as one slice of the image, when they are stored contiguously
    /// without holes (always the case for the small files of composefs images).
    pub fn as_slice(&self) -> Option<&'a [u8]> {
        match self.extents {
            [] => Some(&[]),
            [
                Extent {
                    physical: Some(p),
                    len,
                    ..
                },
            ] => self
                .image
                .get(*p..p.checked_add(usize::try_from(*len).ok()?)?),
            _ => None,
        }
    }

    /// Copies the bytes at `offset` into `buf`; returns how many (0 at or past
    /// the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        let end = self.size.min(offset.saturating_add(buf.len() as u64));
        if offset >= end {
            return 0;
        }
        let first = self
            .extents
            .partition_point(|e| e.logical.saturating_add(e.len) <= offset);
        for e in &self.extents[first..] {
            if e.logical >= end {
                break;
            }
            let from = offset.max(e.logical);
            let to = end.min(e.logical + e.len);
            let dst = &mut buf[(from - offset) as usize..(to - offset) as usize];
            match e.physical {
                None => dst.fill(0),
                Some(p) => {
                    // Parsing checked that every extent lies inside the image.
                    let start = p + (from - e.logical) as usize;
                    match self.image.get(start..start + dst.len()) {
                        Some(src) => dst.copy_from_slice(src),
                        None => dst.fill(0),
                    }
                }
            }
        }
        (end - offset) as usize
    }

    /// All the bytes, or `None` if the file is larger than the image itself
    /// (then it is mostly holes, and a hostile image could make it huge: read
    /// it with [`read_at`](Self::read_at)).
    pub fn to_vec(&self) -> Option<Vec<u8>> {
        if self.size > self.image.len() as u64 {
            return None;
        }
        let mut out = vec![0u8; self.size as usize];
        let n = self.read_at(0, &mut out);
        out.truncate(n);
        Some(out)
    }
}

/// A file whose bytes are an object of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct External {
    /// The fs-verity SHA-256 digest of the object (4096-byte blocks, no salt).
    pub digest: HashValue,
    /// The file's size, which the object's must equal (the digest covers it).
    pub size: u64,
}

impl External {
    /// The object's path inside the store: `xx/rest-of-hex`.
    pub fn object_path(&self) -> String {
        super::overlay::object_path(&self.digest)
    }
}
