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

use super::erofs::{self, DataLayout, InodeHeader, Superblock, le16, le32, le64};
use super::error::{ImageError, Problem};
use super::model::{Extent, FileType, Ino};
use super::overlay;
use crate::format::HashValue;

/// Longest name the kernel accepts in an EROFS directory (`EROFS_NAME_LEN`).
const NAME_MAX: usize = 255;
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
            let Some(prefix) = kernel_prefix(name_index) else {
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

    /// The raw xattrs of an inode: (name index, suffix range, value range), the
    /// inline ones first, then the shared ones, as the kernel lists them.
    fn xattrs(&mut self, start: usize, len: usize) -> Result<Vec<RawXattr>, Fail> {
        let mut out = Vec::new();
        if len == 0 {
            return Ok(out);
        }
        if len == erofs::XATTR_IBODY_HEADER_SIZE {
            // The kernel answers EOPNOTSUPP for every xattr call on such an inode.
            return Err(Problem::Xattr("an xattr area with a header and no xattrs").into());
        }
        self.spend(len as u64)?;
        let body = start
            .checked_add(len)
            .and_then(|end| self.img.get(start..end))
            .ok_or(Problem::Xattr("the xattr area lies outside the image"))?;
        let shared = usize::from(body[4]);
        let mut pos = erofs::XATTR_IBODY_HEADER_SIZE;
        let shared_end = pos + shared * 4;
        if shared_end > len {
            return Err(Problem::Xattr("more shared xattr ids than the xattr area holds").into());
        }
        let mut shared_ids = Vec::with_capacity(shared);
        while pos < shared_end {
            shared_ids.push(le32(body, pos).unwrap_or(0));
            pos += 4;
        }
        while pos < len {
            let (entry, size) = self
                .entry(start + pos, start + len)
                .ok_or(Problem::Xattr("an inline xattr overruns the xattr area"))?;
            out.push(entry);
            pos += size;
        }
        for id in shared_ids {
            let at = self
                .xattr_base
                .checked_add(u64::from(id) * 4)
                .and_then(|a| usize::try_from(a).ok())
                .ok_or(Problem::Xattr("a shared xattr id points outside the image"))?;
            let (entry, size) = self
                .entry(at, self.img.len())
                .ok_or(Problem::Xattr("a shared xattr lies outside the image"))?;
            self.spend(size.min(4 + 255) as u64)?;
            out.push(entry);
        }
        for (index, _, _) in &out {
            if index & erofs::XATTR_LONG_PREFIX != 0 {
                return Err(Problem::Xattr("long xattr name prefixes are not supported").into());
            }
        }
        Ok(out)
    }

    /// One xattr entry at `at`, ending at or before `end`: the entry and its
    /// aligned size.
    fn entry(&self, at: usize, end: usize) -> Option<(RawXattr, usize)> {
        let head = self.img.get(at..at.checked_add(erofs::XATTR_ENTRY_SIZE)?)?;
        let name_len = usize::from(head[0]);
        let index = head[1];
        let value_len = usize::from(le16(head, 2)?);
        let name_start = at + erofs::XATTR_ENTRY_SIZE;
        let value_start = name_start + name_len;
        let value_end = value_start + value_len;
        let size = erofs::round_up(value_end - at, 4);
        if at + size > end || value_end > self.img.len() {
            return None;
        }
        Some((
            (index, (name_start, value_start), (value_start, value_end)),
            size,
        ))
    }

    /// Extents of a flat (plain or inline) inode.
    fn flat_extents(
        &mut self,
        h: &InodeHeader,
        layout: DataLayout,
        tail_at: usize,
    ) -> Result<Vec<Extent>, Fail> {
        if h.size == 0 {
            return Ok(Vec::new());
        }
        let outside = Problem::DataOutside {
            offset: u64::from(h.i_u).saturating_mul(self.blksz),
            len: h.size,
        };
        let nblocks = h.size.div_ceil(self.blksz);
        let plain_len = match layout {
            DataLayout::FlatInline => (nblocks - 1) * self.blksz,
            _ => h.size,
        };
        let mut out = Vec::with_capacity(2);
        if plain_len > 0 {
            let start = u64::from(h.i_u) * self.blksz;
            let end = start.checked_add(plain_len).ok_or(outside.clone())?;
            if end > self.img.len() as u64 {
                return Err(outside.into());
            }
            out.push(Extent {
                logical: 0,
                len: plain_len,
                physical: Some(start as usize),
            });
        }
        if layout == DataLayout::FlatInline {
            let tail = h.size - plain_len;
            let end = (tail_at as u64).saturating_add(tail);
            if end > self.img.len() as u64 {
                return Err(Problem::DataOutside {
                    offset: tail_at as u64,
                    len: tail,
                }
                .into());
            }
            if (tail_at as u64 % self.blksz) + tail > self.blksz {
                return Err(Problem::InlineCrossesBlock {
                    offset: tail_at as u64,
                    len: tail,
                }
                .into());
            }
            self.spend(tail)?;
            out.push(Extent {
                logical: plain_len,
                len: tail,
                physical: Some(tail_at),
            });
        }
        Ok(out)
    }

    /// Extents of a chunk-based regular file (holes where a chunk maps nothing).
    fn chunk_extents(&mut self, h: &InodeHeader, table_at: usize) -> Result<Vec<Extent>, Fail> {
        let format = (h.i_u & 0xFFFF) as u16;
        if format & !(erofs::CHUNK_FORMAT_BLKBITS_MASK | erofs::CHUNK_FORMAT_INDEXES) != 0 {
            return Err(Problem::Layout {
                layout: format,
                kind: "chunk format",
            }
            .into());
        }
        let chunkbits =
            u32::from(self.sb.blkszbits) + u32::from(format & erofs::CHUNK_FORMAT_BLKBITS_MASK);
        let chunk = 1u64 << chunkbits;
        let unit: usize = if format & erofs::CHUNK_FORMAT_INDEXES != 0 {
            8
        } else {
            4
        };
        let count = h.size.div_ceil(chunk);
        let start = erofs::round_up(table_at, unit);
        let table_len = count.saturating_mul(unit as u64);
        let outside = Problem::DataOutside {
            offset: start as u64,
            len: table_len,
        };
        let table = usize::try_from(table_len)
            .ok()
            .and_then(|l| self.img.get(start..start.checked_add(l)?))
            .ok_or(outside)?;
        self.spend(table_len)?;
        let mut out: Vec<Extent> = Vec::new();
        for (i, raw) in table.chunks_exact(unit).enumerate() {
            let blk = if unit == 8 {
                le32(raw, 4).unwrap_or(erofs::NULL_ADDR)
            } else {
                le32(raw, 0).unwrap_or(erofs::NULL_ADDR)
            };
            let logical = i as u64 * chunk;
            let len = chunk.min(h.size - logical);
            let physical = if blk == erofs::NULL_ADDR {
                None
            } else {
                let p = u64::from(blk) * self.blksz;
                if p.saturating_add(len) > self.img.len() as u64 {
                    return Err(Problem::DataOutside { offset: p, len }.into());
                }
                Some(p as usize)
            };
            match out.last_mut() {
                Some(last)
                    if physical.is_none() && last.physical.is_none()
                        || matches!((last.physical, physical),
                            (Some(a), Some(b)) if a as u64 + last.len == b as u64) =>
                {
                    last.len += len;
                }
                _ => out.push(Extent {
                    logical,
                    len,
                    physical,
                }),
            }
        }
        Ok(out)
    }

    /// The raw entries of directory `dir`: (name range, nid, file type byte),
    /// validated as the kernel reads them and in strictly ascending order.
    fn dir_entries(&mut self, dir: Ino) -> Result<Vec<RawEntry>, ImageError> {
        let nid = self.nid_of[index(dir)];
        let at = self.inode_offset(nid);
        let (_, h, hsize) = self
            .img
            .get(at..)
            .and_then(InodeHeader::decode)
            .ok_or_else(|| self.err(dir, Problem::HeaderOutside(at as u64)))?;
        let layout = DataLayout::from_raw(h.layout_raw).unwrap_or(DataLayout::FlatPlain);
        let tail_at = at + hsize + erofs::xattr_ibody_size(h.xattr_icount);
        let extents = self
            .flat_extents(&h, layout, tail_at)
            .map_err(|f| f.into_error(self, dir))?;
        let mut out = Vec::new();
        let mut block = 0u64;
        let mut prev: Option<Span> = None;
        for e in extents {
            let Some(start) = e.physical else { continue };
            let mut off = 0u64;
            while off < e.len {
                let size = (e.len - off).min(self.blksz) as usize;
                let base = start + off as usize;
                self.spend(size as u64)?;
                self.dir_block(base, size, block, &mut out, &mut prev)
                    .map_err(|p| self.err(dir, p))?;
                off += size as u64;
                block += 1;
            }
        }
        Ok(out)
    }

    /// Reads one directory block of `size` bytes at `base`.
    fn dir_block(
        &self,
        base: usize,
        size: usize,
        block: u64,
        out: &mut Vec<RawEntry>,
        prev: &mut Option<Span>,
    ) -> Result<(), Problem> {
        let bad = |what| Problem::DirBlock { block, what };
        let b = &self.img[base..base + size];
        let first = usize::from(le16(b, 8).ok_or(bad("shorter than one entry"))?);
        if first < erofs::DIRENT_SIZE || first > size || first % erofs::DIRENT_SIZE != 0 {
            return Err(bad(
                "the first name offset is not a whole entry table inside the block",
            ));
        }
        let n = first / erofs::DIRENT_SIZE;
        for i in 0..n {
            let d = i * erofs::DIRENT_SIZE;
            let nid = le64(b, d).ok_or(bad("entry table cut short"))?;
            let name_off = usize::from(le16(b, d + 8).ok_or(bad("entry table cut short"))?);
            let ft = b[d + 10];
            let name_end = if i + 1 < n {
                usize::from(
                    le16(b, d + 8 + erofs::DIRENT_SIZE).ok_or(bad("entry table cut short"))?,
                )
            } else {
                // The last name ends at the first NUL or at the end of the block.
                let rest = b
                    .get(name_off..)
                    .ok_or(bad("a name offset lies past the block"))?;
                name_off + rest.iter().position(|&c| c == 0).unwrap_or(rest.len())
            };
            if name_off < first || name_end < name_off || name_end > size {
                return Err(bad("name offsets are out of order or past the block"));
            }
            let name = &b[name_off..name_end];
            let why = if name.is_empty() {
                Some("empty")
            } else if name.len() > NAME_MAX {
                Some("longer than 255 bytes")
            } else if name.contains(&b'/') || name.contains(&0) {
                Some("contains '/' or NUL")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Problem::BadName {
                    name: String::from_utf8_lossy(name).into(),
                    why,
                });
            }
            let range = (base + name_off, base + name_end);
            if let Some(p) = prev {
                if self.img[p.0..p.1] >= *name {
                    return Err(Problem::Unsorted {
                        name: String::from_utf8_lossy(name).into(),
                    });
                }
            }
            *prev = Some(range);
            out.push((range, nid, ft));
        }
        Ok(())
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

/// The prefix the kernel shows for an xattr name index, or `None` when the
/// kernel neither lists nor finds xattrs with that index (0, `lustre.`, unknown).
fn kernel_prefix(index: u8) -> Option<&'static [u8]> {
    match index {
        1..=4 | 6 => Some(erofs::XATTR_PREFIXES[usize::from(index)]),
        _ => None,
    }
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
