//! Parsing an image into the tables [`Image`](super::Image) answers from.
//!
//! The whole tree is walked once, breadth first from the root, with an explicit
//! queue (no recursion). Every offset is checked against the image before it is
//! read; arithmetic is checked; each directory may be reached once; and the
//! total bytes of metadata read are capped at a small multiple of the image's
//! length, so overlapping or shared metadata cannot make parsing quadratic.
//! What the kernel would refuse, or would show differently from what a query
//! answers, is refused with a typed [`ImageError`].

use std::collections::{HashMap, HashSet, VecDeque};

mod data;
mod dir;
mod xattr;

use super::erofs::{self, DataLayout, InodeHeader, Superblock, le32};
use super::error::{ImageError, Problem};
use super::model::{Extent, FileType, Ino};
use super::overlay;
use crate::format::HashValue;

/// How a whiteout below the root is named in errors.
const WHITEOUT_BELOW_ROOT: &str = "a whiteout (character device 0:0) outside the root";
/// Longest symlink target (the kernel reads at most one page, less the NUL).
const SYMLINK_MAX: u64 = 4095;

/// A byte range of the image: start, end.
pub(crate) type Span = (usize, usize);
/// A raw xattr: name index, name suffix, value.
type RawXattr = (u8, Span, Span);
/// A raw directory entry: name, nid, file type byte.
type RawEntry = (Span, u64, u8);

/// One parsed inode.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) kind: FileType,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: i64,
    pub(crate) mtime_nsec: u32,
    pub(crate) nlink: u32,
    pub(crate) size: u64,
    pub(crate) rdev: u64,
    /// Visible xattrs in the order the kernel lists them: name, value range.
    pub(crate) xattrs: Vec<(Box<[u8]>, Span)>,
    pub(crate) body: Body,
}

/// What an inode holds besides attributes.
#[derive(Debug)]
pub(crate) enum Body {
    /// Directory: its parent and its entries (names as image ranges), sorted by name.
    Dir { parent: Ino, entries: Vec<Entry> },
    /// Symlink target (an image range).
    Symlink(usize, usize),
    /// Regular file bytes in the image.
    Data(Vec<Extent>),
    /// Regular file bytes in the object store.
    External(HashValue),
    /// Devices, fifos, sockets.
    Special,
}

/// A directory entry: name as an image range, the inode, its type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) name: (usize, usize),
    pub(crate) ino: Ino,
    pub(crate) kind: FileType,
}

/// The parsed tables.
#[derive(Debug)]
pub(crate) struct Tables {
    /// Index `i` holds inode `i + 1`.
    pub(crate) nodes: Vec<Node>,
    /// Whether byte 0 holds a composefs header.
    pub(crate) composefs: bool,
}

/// Where an inode was first reached, to name it in errors.
#[derive(Debug, Clone, Copy)]
struct Origin {
    parent: Ino,
    name: (usize, usize),
}

struct Parser<'a> {
    img: &'a [u8],
    sb: Superblock,
    blksz: u64,
    meta_base: u64,
    xattr_base: u64,
    /// Bytes of metadata read so far, and the cap.
    spent: u64,
    limit: u64,
    nodes: Vec<Node>,
    origins: Vec<Option<Origin>>,
    nid_of: Vec<u64>,
}

/// Parses and validates a whole image.
pub(crate) fn parse(img: &[u8]) -> Result<Tables, ImageError> {
    let sb_bytes = img
        .get(erofs::SUPER_OFFSET..erofs::SUPER_OFFSET + erofs::SUPER_SIZE)
        .ok_or(ImageError::TooShort { len: img.len() })?;
    let (magic, sb) =
        Superblock::decode(sb_bytes).ok_or(ImageError::TooShort { len: img.len() })?;
    if magic != erofs::SUPER_MAGIC {
        return Err(ImageError::BadMagic { found: magic });
    }
    if sb.blkszbits != erofs::BLOCK_BITS {
        return Err(ImageError::BlockSize(sb.blkszbits));
    }
    let unsupported = sb.feature_incompat & !erofs::INCOMPAT_SUPPORTED;
    if unsupported != 0 {
        return Err(ImageError::Features(unsupported));
    }
    for (field, value) in [
        ("dirblkbits", u64::from(sb.dirblkbits)),
        ("extra_devices", u64::from(sb.extra_devices)),
    ] {
        if value != 0 {
            return Err(ImageError::Superblock { field, value });
        }
    }
    if sb.feature_compat & erofs::COMPAT_SB_CHKSUM != 0 {
        let block = img
            .get(erofs::SUPER_OFFSET..erofs::BLOCK_SIZE)
            .ok_or(ImageError::TooShort { len: img.len() })?;
        let expected = le32(block, 4).unwrap_or(0);
        let found = erofs::superblock_checksum(block);
        if found != expected {
            return Err(ImageError::Checksum { expected, found });
        }
    }
    let composefs = erofs::le32(img, 0) == Some(erofs::COMPOSEFS_MAGIC);
    let blksz = 1u64 << sb.blkszbits;
    let len = img.len() as u64;
    let mut p = Parser {
        img,
        blksz,
        meta_base: u64::from(sb.meta_blkaddr) << sb.blkszbits,
        xattr_base: u64::from(sb.xattr_blkaddr) << sb.blkszbits,
        sb,
        spent: 0,
        limit: len.saturating_mul(4).saturating_add(1 << 20),
        nodes: Vec::new(),
        origins: Vec::new(),
        nid_of: Vec::new(),
    };
    p.walk()?;
    Ok(Tables {
        nodes: p.nodes,
        composefs,
    })
}

impl Parser<'_> {
    /// Walks the tree from the root, breadth first.
    fn walk(&mut self) -> Result<(), ImageError> {
        let root_nid = u64::from(self.sb.root_nid);
        let root = self.add(root_nid, None)?;
        if self.node(root).kind != FileType::Directory {
            return Err(self.err(root, Problem::RootNotDirectory));
        }
        // Inodes already reached, by nid: hard links share an inode, but a
        // directory may be reached only once.
        let mut seen: HashMap<u64, Ino> = HashMap::from([(root_nid, root)]);
        let mut whiteouts: HashSet<u64> = HashSet::new();
        let mut queue = VecDeque::from([(root, root)]);
        while let Some((dir, parent)) = queue.pop_front() {
            let raw = self.dir_entries(dir)?;
            let mut entries = Vec::with_capacity(raw.len());
            for (name, nid, ft) in raw {
                let name_bytes = &self.img[name.0..name.1];
                if name_bytes == b"." || name_bytes == b".." {
                    continue;
                }
                if whiteouts.contains(&nid) {
                    if dir == root {
                        continue; // a whiteout of the root, hidden
                    }
                    let mut e = self.err(dir, Problem::OverlayFeature(WHITEOUT_BELOW_ROOT));
                    if let ImageError::Inode { nid: n, .. } = &mut e {
                        *n = nid;
                    }
                    return Err(e);
                }
                let ino = match seen.get(&nid).copied() {
                    Some(ino) if self.node(ino).kind == FileType::Directory => {
                        let mut e = self.err(dir, Problem::DirectoryLinkedTwice);
                        if let ImageError::Inode { path, nid: n, .. } = &mut e {
                            path.push_str(&format!(
                                "{}{}",
                                if path.ends_with('/') { "" } else { "/" },
                                String::from_utf8_lossy(name_bytes)
                            ));
                            *n = nid;
                        }
                        return Err(e);
                    }
                    Some(ino) => ino,
                    None => {
                        let ino = self.add(nid, Some(Origin { parent: dir, name }))?;
                        let node = self.node(ino);
                        if node.kind == FileType::CharDevice && node.rdev == 0 {
                            // An overlayfs whiteout. The kernel hides those of the
                            // root (mkcomposefs writes 256 there), but lists those
                            // of other directories in readdir while lookup fails:
                            // a view no query can reproduce, so they are refused.
                            if dir != root {
                                return Err(
                                    self.err(ino, Problem::OverlayFeature(WHITEOUT_BELOW_ROOT))
                                );
                            }
                            self.nodes.pop();
                            self.origins.pop();
                            self.nid_of.pop();
                            whiteouts.insert(nid);
                            continue;
                        }
                        seen.insert(nid, ino);
                        if self.node(ino).kind == FileType::Directory {
                            queue.push_back((ino, dir));
                        }
                        ino
                    }
                };
                let kind = self.node(ino).kind;
                if kind.erofs_ft() != ft {
                    let name = String::from_utf8_lossy(name_bytes).into_owned();
                    return Err(self.err(
                        dir,
                        Problem::TypeMismatch {
                            name,
                            entry: ft,
                            inode: kind.name(),
                        },
                    ));
                }
                entries.push(Entry { name, ino, kind });
            }
            if let Some(node) = self.nodes.get_mut(index(dir)) {
                node.body = Body::Dir { parent, entries };
            }
        }
        Ok(())
    }

    fn node(&self, ino: Ino) -> &Node {
        &self.nodes[index(ino)]
    }

    /// Charges `n` bytes of metadata reading against the cap.
    fn spend(&mut self, n: u64) -> Result<(), ImageError> {
        self.spent = self.spent.saturating_add(n);
        if self.spent > self.limit {
            return Err(ImageError::Overlap {
                limit: self.limit,
                len: self.img.len(),
            });
        }
        Ok(())
    }

    /// The path of inode `ino` (for errors).
    fn path(&self, ino: Ino) -> String {
        let mut parts = Vec::new();
        let mut cur = ino;
        // Bounded: each step moves to an inode found earlier.
        for _ in 0..self.origins.len() {
            match self.origins.get(index(cur)).copied().flatten() {
                Some(o) => {
                    parts.push(String::from_utf8_lossy(&self.img[o.name.0..o.name.1]).into_owned());
                    cur = o.parent;
                }
                None => break,
            }
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn err(&self, ino: Ino, problem: Problem) -> ImageError {
        ImageError::Inode {
            path: self.path(ino),
            nid: self.nid_of.get(index(ino)).copied().unwrap_or(0),
            problem,
        }
    }

    /// Parses inode `nid` and appends it as the next inode.
    fn add(&mut self, nid: u64, origin: Option<Origin>) -> Result<Ino, ImageError> {
        let ino = Ino(self.nodes.len() as u64 + 1);
        self.origins.push(origin);
        self.nid_of.push(nid);
        // A placeholder so that errors can name the path while parsing.
        self.nodes.push(Node {
            kind: FileType::Regular,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            nlink: 0,
            size: 0,
            rdev: 0,
            xattrs: Vec::new(),
            body: Body::Special,
        });
        let node = self.parse_inode(nid).map_err(|p| match p {
            Fail::Problem(problem) => self.err(ino, problem),
            Fail::Image(e) => e,
        })?;
        self.nodes[index(ino)] = node;
        Ok(ino)
    }

    fn parse_inode(&mut self, nid: u64) -> Result<Node, Fail> {
        let offset = nid
            .checked_mul(erofs::SLOT_SIZE as u64)
            .and_then(|o| o.checked_add(self.meta_base))
            .ok_or(Problem::HeaderOutside(u64::MAX))?;
        let at = usize::try_from(offset).map_err(|_| Problem::HeaderOutside(offset))?;
        let (format, h, hsize) = self
            .img
            .get(at..)
            .and_then(InodeHeader::decode)
            .ok_or(Problem::HeaderOutside(offset))?;
        self.spend(hsize as u64)?;
        if format & !erofs::I_ALL != 0 {
            return Err(Problem::Format(format).into());
        }
        let kind = FileType::from_mode(u32::from(h.mode)).ok_or(Problem::Mode(h.mode))?;
        let layout = DataLayout::from_raw(h.layout_raw).ok_or(Problem::Layout {
            layout: h.layout_raw,
            kind: kind.name(),
        })?;
        let (mtime, mtime_nsec) = if h.extended {
            (h.mtime as i64, h.mtime_nsec)
        } else {
            // Compact inodes: seconds after the build time, its nanoseconds.
            (
                self.sb.build_time.wrapping_add(h.mtime) as i64,
                self.sb.build_time_nsec,
            )
        };
        if mtime_nsec >= 1_000_000_000 {
            return Err(Problem::Nanoseconds(mtime_nsec).into());
        }
        let xattr_start = at + hsize;
        let xattr_len = erofs::xattr_ibody_size(h.xattr_icount);
        let raw_xattrs = self.xattrs(xattr_start, xattr_len)?;
        let body_start = xattr_start + xattr_len;

        let mut visible = Vec::new();
        let mut metacopy = None;
        let mut redirect = None;
        let mut names = HashSet::new();
        for (name_index, suffix, value) in raw_xattrs {
            let Some(prefix) = xattr::kernel_prefix(name_index) else {
                continue; // the kernel lists and finds no xattr with this index
            };
            let name = [prefix, &self.img[suffix.0..suffix.1]].concat();
            if !names.insert(name.clone()) {
                return Err(Problem::DuplicateXattr(String::from_utf8_lossy(&name).into()).into());
            }
            if name == overlay::METACOPY {
                metacopy = Some(value);
            } else if name == overlay::REDIRECT {
                redirect = Some(value);
            } else if name == b"trusted.overlay.whiteout" && kind == FileType::Regular {
                return Err(
                    Problem::OverlayFeature("xwhiteouts (trusted.overlay.whiteout)").into(),
                );
            }
            // The VFS refuses user.* xattrs on anything but regular files and
            // directories (`xattr_permission`): the kernel never shows them.
            let user_hidden = name.starts_with(b"user.")
                && !matches!(kind, FileType::Regular | FileType::Directory);
            if let Some(shown) = overlay::visible_name(&name).filter(|_| !user_hidden) {
                visible.push((shown.into_boxed_slice(), value));
            }
        }

        let rdev = match kind {
            FileType::CharDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
                let (major, minor) = erofs::decode_dev(h.i_u);
                erofs::makedev(major, minor)
            }
            _ => 0,
        };
        let body = match kind {
            FileType::Directory => {
                if layout == DataLayout::ChunkBased {
                    return Err(Problem::Layout {
                        layout: h.layout_raw,
                        kind: kind.name(),
                    }
                    .into());
                }
                // Entries are read when the walk reaches the directory.
                Body::Dir {
                    parent: Ino::ROOT,
                    entries: Vec::new(),
                }
            }
            FileType::Symlink => {
                if h.size == 0 || h.size > SYMLINK_MAX || layout == DataLayout::ChunkBased {
                    return Err(Problem::Symlink(h.size).into());
                }
                let ext = self.flat_extents(&h, layout, body_start)?;
                match ext.as_slice() {
                    [
                        Extent {
                            physical: Some(p),
                            len,
                            ..
                        },
                    ] => {
                        let end = p + *len as usize;
                        if self.img[*p..end].contains(&0) {
                            return Err(Problem::Symlink(h.size).into());
                        }
                        Body::Symlink(*p, end)
                    }
                    _ => return Err(Problem::Symlink(h.size).into()),
                }
            }
            FileType::Regular => match metacopy {
                Some(value) => {
                    let digest = overlay::decode_metacopy(&self.img[value.0..value.1])
                        .map_err(Problem::Metacopy)?;
                    let Some(redirect) = redirect else {
                        return Err(Problem::NoRedirect.into());
                    };
                    let expected = overlay::redirect_for(&digest);
                    let found = &self.img[redirect.0..redirect.1];
                    if found != expected.as_slice() {
                        return Err(Problem::Redirect {
                            expected: String::from_utf8_lossy(&expected).into(),
                            found: String::from_utf8_lossy(found).into(),
                        }
                        .into());
                    }
                    Body::External(digest)
                }
                None => match layout {
                    DataLayout::ChunkBased => Body::Data(self.chunk_extents(&h, body_start)?),
                    _ => Body::Data(self.flat_extents(&h, layout, body_start)?),
                },
            },
            _ => Body::Special,
        };
        Ok(Node {
            kind,
            mode: u32::from(h.mode),
            uid: h.uid,
            gid: h.gid,
            mtime,
            mtime_nsec,
            nlink: h.nlink,
            size: h.size,
            rdev,
            xattrs: visible,
            body,
        })
    }

    fn inode_offset(&self, nid: u64) -> usize {
        // Checked when the inode was parsed.
        (self.meta_base + nid * erofs::SLOT_SIZE as u64) as usize
    }
}

/// The table index of an inode number (inode 1 is at index 0).
fn index(ino: Ino) -> usize {
    (ino.0 as usize).wrapping_sub(1)
}

/// A failure inside inode parsing: a problem of that inode, or an image-wide error.
enum Fail {
    Problem(Problem),
    Image(ImageError),
}

impl From<Problem> for Fail {
    fn from(p: Problem) -> Self {
        Fail::Problem(p)
    }
}

impl From<ImageError> for Fail {
    fn from(e: ImageError) -> Self {
        Fail::Image(e)
    }
}

impl Fail {
    fn into_error(self, parser: &Parser<'_>, ino: Ino) -> ImageError {
        match self {
            Fail::Problem(p) => parser.err(ino, p),
            Fail::Image(e) => e,
        }
    }
}
