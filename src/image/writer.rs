//! Writing a composefs image from an in-memory [`Tree`]. Pure: no I/O.
//!
//! The layout, deterministic for a given tree:
//!
//! - byte 0: the composefs header (magic, version 1, format version 1), zero
//!   padded; byte 1024: the EROFS superblock (4096-byte blocks, build time 0,
//!   no UUID, no checksum);
//! - from byte 1152: one extended (64-byte) inode per file, in breadth-first
//!   order of sorted names (so the root, first, has a small nid), each followed
//!   by its xattrs and its inline part: the tail of a directory, a symlink
//!   target, the bytes of a file of at most 64 bytes, or the (all-hole) chunk
//!   table of a file whose bytes are an object. An inode with an inline part
//!   is moved to the next block when it would otherwise cross a block
//!   boundary (the kernel refuses inline data that crosses one);
//! - the shared xattrs (a name and value that more than one inode carries),
//!   block aligned;
//! - the directory blocks and long symlink targets, block aligned.
//!
//! A file whose bytes are an object gets `trusted.overlay.metacopy` (its
//! fs-verity digest) and `trusted.overlay.redirect` (`/xx/rest-of-hex`); the
//! tree's own `trusted.overlay.*` xattrs are escaped to
//! `trusted.overlay.overlay.*`; a whiteout (character device 0:0) becomes an
//! empty regular file marked as composefs marks escaped whiteouts.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::erofs::{self, DataLayout, InodeHeader, Put, Superblock};
use super::model::FileType;
use super::overlay;
use crate::format::HashValue;

/// Largest file kept inside the image rather than in the object store.
pub const INLINE_MAX: u64 = 64;
/// Largest directory tail kept inline after its inode.
const DIR_TAIL_INLINE_MAX: usize = 2048;
/// Largest symlink target.
const SYMLINK_MAX: usize = 4095;

/// What a file of the tree holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A directory: its entries by name, each the index of a node.
    Dir(BTreeMap<Vec<u8>, usize>),
    /// A regular file kept inside the image (at most [`INLINE_MAX`] bytes).
    Inline(Vec<u8>),
    /// A regular file whose bytes are an object of the store.
    External {
        /// The object's fs-verity SHA-256 digest.
        digest: HashValue,
        /// Its size.
        size: u64,
    },
    /// A symlink target.
    Symlink(Vec<u8>),
    /// A character or block device, fifo or socket, with its userspace `dev_t`.
    Special(u64),
}

/// One file of the tree: attributes, xattrs (original names), and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The path of the first link to it, for messages.
    pub path: String,
    /// File type.
    pub kind: FileType,
    /// Permission bits (`& 0o7777`).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: i64,
    /// Its nanoseconds.
    pub mtime_nsec: u32,
    /// Xattrs under their original names.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Contents.
    pub body: Body,
}

/// A tree to write: node 0 is the root directory.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The nodes; directory bodies refer to others by index.
    pub nodes: Vec<Node>,
}

/// Why a tree cannot be written as an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The tree is not a tree: no root directory, a bad index, a directory
    /// linked twice.
    #[error("malformed tree: {0}")]
    Tree(String),
    /// An xattr the format cannot hold or the kernel could not show.
    #[error("'{path}': xattr {name:?}: {why}")]
    Xattr {
        /// The file.
        path: String,
        /// The xattr's name, lossily decoded.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// More xattr bytes on one file than an inode can carry (about 256 KiB).
    #[error("'{0}': too many xattr bytes for one EROFS inode")]
    XattrSpace(String),
    /// A device number EROFS cannot encode (major over 4095 or minor over 2^20-1).
    #[error("'{path}': device number {major}:{minor} does not fit EROFS's 32-bit encoding")]
    Device {
        /// The file.
        path: String,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A symlink target that is empty or longer than 4095 bytes.
    #[error("'{0}': symlink target is empty or longer than 4095 bytes")]
    Symlink(String),
    /// A name the kernel cannot use (empty, `.`, `..`, over 255 bytes, `/` or NUL).
    #[error("'{path}': entry name {name:?} is not a valid file name")]
    Name {
        /// The directory.
        path: String,
        /// The name, lossily decoded.
        name: String,
    },
    /// An inline file over [`INLINE_MAX`] bytes.
    #[error("'{0}': inline content over 64 bytes")]
    Inline(String),
    /// More than 2^32 blocks or a link count over 2^32.
    #[error("the image would exceed EROFS's limits ({0})")]
    TooLarge(&'static str),
}

/// One xattr as stored: prefix index, name suffix, value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Stored {
    full: Vec<u8>,
    index: u8,
    suffix_at: usize,
    value: Vec<u8>,
}

impl Stored {
    fn new(path: &str, full: Vec<u8>, value: Vec<u8>) -> Result<Self, WriteError> {
        let err = |why| WriteError::Xattr {
            path: path.to_owned(),
            name: String::from_utf8_lossy(&full).into_owned(),
            why,
        };
        // The longest matching prefix the kernel knows (lustre. and index 0 it hides).
        let (index, prefix) = [2u8, 3, 1, 4, 6]
            .into_iter()
            .map(|i| (i, erofs::XATTR_PREFIXES[usize::from(i)]))
            .find(|(_, p)| full.starts_with(p))
            .ok_or_else(|| err("no EROFS name prefix: the kernel could not show it"))?;
        if (index == 2 || index == 3) && full.len() != prefix.len() {
            return Err(err("no EROFS name prefix: the kernel could not show it"));
        }
        if full.len() - prefix.len() > 255 {
            return Err(err("name longer than 255 bytes after its prefix"));
        }
        if value.len() > usize::from(u16::MAX) {
            return Err(err("value longer than 65535 bytes"));
        }
        Ok(Self {
            suffix_at: prefix.len(),
            full,
            index,
            value,
        })
    }

    /// Bytes of the entry, aligned to 4.
    fn size(&self) -> usize {
        erofs::round_up(
            erofs::XATTR_ENTRY_SIZE + self.full.len() - self.suffix_at + self.value.len(),
            4,
        )
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push((self.full.len() - self.suffix_at) as u8);
        out.push(self.index);
        out.extend_from_slice(&(self.value.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.full[self.suffix_at..]);
        out.extend_from_slice(&self.value);
        out.resize(start + self.size(), 0);
    }
}

/// Everything about one inode that the layout needs.
struct Plan {
    node: usize,
    kind: FileType,
    mode: u16,
    nlink: u32,
    size: u64,
    layout: DataLayout,
    /// `i_u` unless it is a block address (filled in at layout).
    i_u: u32,
    /// Xattr body (header, shared ids, local entries), with placeholders for shared ids.
    shared: Vec<usize>,
    local: Vec<Stored>,
    /// Bytes after the xattrs: inline tail or chunk table.
    inline: Vec<u8>,
    /// Whole blocks of data (directory blocks, a long symlink target).
    blocks: Vec<u8>,
}

impl Plan {
    fn xattr_size(&self) -> usize {
        if self.shared.is_empty() && self.local.is_empty() {
            return 0;
        }
        erofs::XATTR_IBODY_HEADER_SIZE
            + self.shared.len() * 4
            + self.local.iter().map(Stored::size).sum::<usize>()
    }
}

/// Writes `tree` as a composefs image.
pub fn write_image(tree: &Tree) -> Result<Vec<u8>, WriteError> {
    let (order, parents) = bfs_order(tree)?;
    let ino_of: HashMap<usize, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();

    // Link counts and whiteout escapes.
    let mut links = vec![0u64; tree.nodes.len()];
    let mut has_whiteout = vec![false; tree.nodes.len()];
    for (i, node) in tree.nodes.iter().enumerate() {
        if let Body::Dir(entries) = &node.body {
            for &child in entries.values() {
                links[child] += 1;
                if is_whiteout(&tree.nodes[child]) {
                    has_whiteout[i] = true;
                }
            }
        }
    }

    let mut plans = Vec::with_capacity(order.len());
    for &n in &order {
        plans.push(plan(tree, n, links[n], has_whiteout[n])?);
    }
    let shared_table = share_xattrs(&mut plans);

    // Directory contents need the children's nids, which need the layout;
    // the sizes do not, so lay out first with the sizes, then fill in.
    for p in plans.iter_mut() {
        if let Body::Dir(entries) = &tree.nodes[p.node].body {
            let names: Vec<&[u8]> = entries.keys().map(Vec::as_slice).collect();
            let (size, tail) = dir_geometry(&names);
            p.size = size;
            // Placeholders of the final lengths, filled in once nids are known.
            if tail <= DIR_TAIL_INLINE_MAX {
                p.layout = DataLayout::FlatInline;
                p.inline = vec![0; tail];
                p.blocks = vec![0; size as usize - tail];
            } else {
                p.layout = DataLayout::FlatPlain;
                p.blocks = vec![0; size as usize];
            }
        }
    }

    // Pass 1: inode offsets.
    let bs = erofs::BLOCK_SIZE;
    let mut offsets = Vec::with_capacity(plans.len());
    let mut pos = erofs::SUPER_OFFSET + erofs::SUPER_SIZE;
    for p in &plans {
        pos = erofs::round_up(pos, erofs::SLOT_SIZE);
        let fixed = erofs::EXTENDED_INODE_SIZE + p.xattr_size();
        let tail = p.inline.len();
        // The inline tail must not cross a block boundary (the kernel refuses
        // it); kernels before 6.12 also want a symlink's whole inode in one
        // block, so keep the whole inode in one block whenever it fits in one.
        let crosses = if fixed + tail <= bs {
            pos % bs + fixed + tail > bs
        } else {
            (pos + fixed) % bs + tail > bs
        };
        if tail > 0 && crosses {
            pos = erofs::round_up(pos, bs);
        }
        offsets.push(pos);
        pos += fixed + tail;
    }
    // Shared xattrs.
    let xattr_base = erofs::round_up(pos, bs);
    let mut shared_ids = Vec::with_capacity(shared_table.len());
    let mut xpos = xattr_base;
    for x in &shared_table {
        shared_ids.push(((xpos - xattr_base) / 4) as u32);
        xpos += x.size();
    }
    // Data blocks.
    let mut data_pos = erofs::round_up(xpos, bs);
    let mut blkaddr = vec![0u32; plans.len()];
    for (i, p) in plans.iter().enumerate() {
        let len = p.blocks.len();
        if len > 0 {
            blkaddr[i] =
                u32::try_from(data_pos / bs).map_err(|_| WriteError::TooLarge("blocks"))?;
            data_pos += erofs::round_up(len, bs);
        }
    }
    let total = erofs::round_up(data_pos, bs);
    let blocks = u32::try_from(total / bs).map_err(|_| WriteError::TooLarge("blocks"))?;
    let nid = |ino: usize| (offsets[ino] / erofs::SLOT_SIZE) as u64;
    let root_nid = u16::try_from(nid(0)).map_err(|_| WriteError::TooLarge("root nid"))?;

    // Pass 2: fill directory contents with nids.
    for p in plans.iter_mut() {
        let me = ino_of[&p.node];
        if let Body::Dir(entries) = &tree.nodes[p.node].body {
            let parent = parents[p.node];
            let mut all: Vec<(&[u8], u64, u8)> = Vec::with_capacity(entries.len() + 2);
            all.push((b".", nid(me), erofs::ft::DIR));
            all.push((b"..", nid(ino_of[&parent]), erofs::ft::DIR));
            for (name, &child) in entries {
                let kind = written_kind(&tree.nodes[child]);
                all.push((name, nid(ino_of[&child]), kind.erofs_ft()));
            }
            all.sort_by(|a, b| a.0.cmp(b.0));
            let bytes = dir_bytes(&all);
            debug_assert_eq!(bytes.len(), p.inline.len() + p.blocks.len());
            let cut = p.blocks.len();
            p.blocks = bytes[..cut].to_vec();
            p.inline = bytes[cut..].to_vec();
        }
    }

    // Pass 3: emit.
    let mut img = vec![0u8; erofs::SUPER_OFFSET];
    Put(&mut img[..16])
        .u32(0, erofs::COMPOSEFS_MAGIC)
        .u32(4, erofs::COMPOSEFS_VERSION)
        .u32(8, 0)
        .u32(12, erofs::COMPOSEFS_FORMAT_VERSION);
    let any_chunks = plans.iter().any(|p| p.layout == DataLayout::ChunkBased);
    let sb = Superblock {
        feature_compat: erofs::COMPAT_MTIME,
        blkszbits: erofs::BLOCK_BITS,
        root_nid,
        inos: plans.len() as u64,
        build_time: 0,
        build_time_nsec: 0,
        blocks,
        meta_blkaddr: 0,
        xattr_blkaddr: (xattr_base / bs) as u32,
        feature_incompat: if any_chunks {
            erofs::INCOMPAT_CHUNKED_FILE
        } else {
            0
        },
        ..Default::default()
    };
    img.extend_from_slice(&sb.encode());
    for (i, p) in plans.iter().enumerate() {
        img.resize(offsets[i], 0);
        let node = &tree.nodes[p.node];
        let i_u = if matches!(p.layout, DataLayout::FlatPlain | DataLayout::FlatInline)
            && !p.blocks.is_empty()
        {
            blkaddr[i]
        } else {
            p.i_u
        };
        let xsize = p.xattr_size();
        let header = InodeHeader {
            extended: true,
            layout_raw: p.layout.raw(),
            xattr_icount: if xsize == 0 {
                0
            } else {
                ((xsize - erofs::XATTR_IBODY_HEADER_SIZE) / 4 + 1) as u16
            },
            mode: p.mode,
            nlink: p.nlink,
            size: p.size,
            i_u,
            ino: (i + 1) as u32,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime as u64,
            mtime_nsec: node.mtime_nsec,
        };
        img.extend_from_slice(&header.encode_extended(p.layout));
        if xsize > 0 {
            let mut head = [0u8; erofs::XATTR_IBODY_HEADER_SIZE];
            head[4] = p.shared.len() as u8;
            img.extend_from_slice(&head);
            for &s in &p.shared {
                img.extend_from_slice(&shared_ids[s].to_le_bytes());
            }
            for x in &p.local {
                x.encode(&mut img);
            }
        }
        img.extend_from_slice(&p.inline);
    }
    img.resize(xattr_base, 0);
    for x in &shared_table {
        x.encode(&mut img);
    }
    for (i, p) in plans.iter().enumerate() {
        if !p.blocks.is_empty() {
            img.resize(blkaddr[i] as usize * bs, 0);
            img.extend_from_slice(&p.blocks);
        }
    }
    img.resize(total, 0);
    Ok(img)
}

/// Node indices in breadth-first order of sorted names, each once, and the
/// parent of each directory (the root is its own); checks that the tree is one.
fn bfs_order(tree: &Tree) -> Result<(Vec<usize>, Vec<usize>), WriteError> {
    let bad = |s: String| WriteError::Tree(s);
    match tree.nodes.first() {
        Some(Node {
            body: Body::Dir(_), ..
        }) => {}
        _ => return Err(bad("node 0 is not a directory".into())),
    }
    let mut seen = vec![false; tree.nodes.len()];
    let mut parents = vec![0usize; tree.nodes.len()];
    seen[0] = true;
    let mut order = vec![0];
    let mut queue = VecDeque::from([0usize]);
    while let Some(dir) = queue.pop_front() {
        let Body::Dir(entries) = &tree.nodes[dir].body else {
            continue;
        };
        for (name, &child) in entries {
            if name.is_empty()
                || name == b"."
                || name == b".."
                || name.len() > 255
                || name.contains(&b'/')
                || name.contains(&0)
            {
                return Err(WriteError::Name {
                    path: tree.nodes[dir].path.clone(),
                    name: String::from_utf8_lossy(name).into_owned(),
                });
            }
            let node = tree
                .nodes
                .get(child)
                .ok_or_else(|| bad(format!("entry refers to missing node {child}")))?;
            if seen[child] {
                if matches!(node.body, Body::Dir(_)) {
                    return Err(bad(format!("directory '{}' linked twice", node.path)));
                }
                continue;
            }
            seen[child] = true;
            parents[child] = dir;
            order.push(child);
            if matches!(node.body, Body::Dir(_)) {
                queue.push_back(child);
            }
        }
    }
    Ok((order, parents))
}

fn is_whiteout(node: &Node) -> bool {
    node.kind == FileType::CharDevice && node.body == Body::Special(0)
}

/// The type the image records: escaped whiteouts are regular files.
fn written_kind(node: &Node) -> FileType {
    if is_whiteout(node) {
        FileType::Regular
    } else {
        node.kind
    }
}

/// Plans one inode: layout, `i_u`, size, stored xattrs, inline bytes.
fn plan(tree: &Tree, n: usize, links: u64, dir_has_whiteout: bool) -> Result<Plan, WriteError> {
    let node = &tree.nodes[n];
    let path = node.path.as_str();
    let kind = written_kind(node);
    let mut stored = Vec::new();
    for (name, value) in &node.xattrs {
        stored.push(Stored::new(path, overlay::escape(name), value.clone())?);
    }
    let mut add = |name: &[u8], value: &[u8]| -> Result<(), WriteError> {
        stored.push(Stored::new(path, name.to_vec(), value.to_vec())?);
        Ok(())
    };
    if is_whiteout(node) {
        add(b"trusted.overlay.overlay.whiteout", b"")?;
        add(b"user.overlay.whiteout", b"")?;
    }
    if dir_has_whiteout {
        add(b"trusted.overlay.overlay.whiteouts", b"")?;
        add(b"user.overlay.whiteouts", b"")?;
        add(b"trusted.overlay.overlay.opaque", b"x")?;
        add(b"user.overlay.opaque", b"x")?;
    }
    let mut p = Plan {
        node: n,
        kind,
        mode: (kind.mode_bits() | (node.perm & 0o7777)) as u16,
        nlink: 1,
        size: 0,
        layout: DataLayout::FlatPlain,
        i_u: 0,
        shared: Vec::new(),
        local: Vec::new(),
        inline: Vec::new(),
        blocks: Vec::new(),
    };
    match &node.body {
        Body::Dir(entries) => {
            let subdirs = entries
                .values()
                .filter(|&&c| matches!(tree.nodes[c].body, Body::Dir(_)))
                .count() as u64;
            p.nlink = u32::try_from(2 + subdirs).map_err(|_| WriteError::TooLarge("nlink"))?;
        }
        Body::Inline(data) => {
            if data.len() as u64 > INLINE_MAX {
                return Err(WriteError::Inline(path.to_owned()));
            }
            p.size = data.len() as u64;
            if !data.is_empty() {
                p.layout = DataLayout::FlatInline;
                p.inline = data.clone();
            }
        }
        Body::External { digest, size } => {
            add(overlay::METACOPY, &overlay::encode_metacopy(digest))?;
            add(overlay::REDIRECT, &overlay::redirect_for(digest))?;
            p.size = *size;
            p.layout = DataLayout::ChunkBased;
            let bits = chunk_bits(*size);
            p.i_u = bits - u32::from(erofs::BLOCK_BITS);
            let chunks = size.div_ceil(1 << bits);
            p.inline = vec![0xFF; chunks as usize * 4];
        }
        Body::Symlink(target) => {
            if target.is_empty() || target.len() > SYMLINK_MAX {
                return Err(WriteError::Symlink(path.to_owned()));
            }
            p.size = target.len() as u64;
            p.layout = DataLayout::FlatInline;
            p.inline = target.clone();
        }
        Body::Special(rdev) => {
            if matches!(kind, FileType::CharDevice | FileType::BlockDevice) {
                let (major, minor) = erofs::split_dev(*rdev);
                p.i_u = erofs::encode_dev(major, minor).ok_or_else(|| WriteError::Device {
                    path: path.to_owned(),
                    major,
                    minor,
                })?;
            }
        }
    }
    if !matches!(node.body, Body::Dir(_)) {
        p.nlink = u32::try_from(links).map_err(|_| WriteError::TooLarge("nlink"))?;
    }
    stored.sort();
    p.local = stored;
    if p.xattr_size() > erofs::XATTR_IBODY_HEADER_SIZE + (usize::from(u16::MAX) - 1) * 4 {
        return Err(WriteError::XattrSpace(path.to_owned()));
    }
    // A symlink whose target does not fit after its inode goes to a block.
    if p.kind == FileType::Symlink
        && erofs::EXTENDED_INODE_SIZE + p.xattr_size() + p.inline.len() > erofs::BLOCK_SIZE
    {
        p.layout = DataLayout::FlatPlain;
        p.blocks = std::mem::take(&mut p.inline);
    }
    Ok(p)
}

/// The chunk size (log2) for an object of `size` bytes: one chunk covering
/// the file where possible, never below a block (as composefs chooses).
fn chunk_bits(size: u64) -> u32 {
    let bits = if size > 1 {
        64 - (size - 1).leading_zeros()
    } else {
        1
    };
    let min = u32::from(erofs::BLOCK_BITS);
    bits.clamp(min, min + 31)
}

/// Moves xattrs (name and value) that several inodes carry to the shared
/// table, which it returns in index order (sorted).
fn share_xattrs(plans: &mut [Plan]) -> Vec<Stored> {
    let mut count: HashMap<&Stored, usize> = HashMap::new();
    for p in plans.iter() {
        for x in &p.local {
            *count.entry(x).or_default() += 1;
        }
    }
    let mut table: Vec<Stored> = count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(x, _)| x.clone())
        .collect();
    table.sort();
    let index: HashMap<Stored, usize> = table
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, x)| (x, i))
        .collect();
    for p in plans.iter_mut() {
        let mut local = Vec::new();
        for x in std::mem::take(&mut p.local) {
            match index.get(&x) {
                Some(&i) if p.shared.len() < usize::from(u8::MAX) => p.shared.push(i),
                _ => local.push(x),
            }
        }
        p.local = local;
    }
    table
}

/// Size of a directory with these names (plus `.` and `..`) and its tail.
fn dir_geometry(names: &[&[u8]]) -> (u64, usize) {
    let mut all: Vec<&[u8]> = names.to_vec();
    all.push(b".");
    all.push(b"..");
    all.sort();
    let entries: Vec<(&[u8], u64, u8)> = all.into_iter().map(|n| (n, 0, 0)).collect();
    let bytes = dir_bytes(&entries);
    let tail = bytes.len() - (bytes.len() - 1) / erofs::BLOCK_SIZE * erofs::BLOCK_SIZE;
    (bytes.len() as u64, tail)
}

/// Directory contents: blocks of entry tables and names, every block but the
/// last padded to the block size.
fn dir_bytes(entries: &[(&[u8], u64, u8)]) -> Vec<u8> {
    let bs = erofs::BLOCK_SIZE;
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        // Take as many entries as fit in one block.
        let mut used = 0;
        let mut j = i;
        while j < entries.len() && used + erofs::DIRENT_SIZE + entries[j].0.len() <= bs {
            used += erofs::DIRENT_SIZE + entries[j].0.len();
            j += 1;
        }
        if !out.is_empty() {
            out.resize(erofs::round_up(out.len(), bs), 0);
        }
        let start = out.len();
        let table = (j - i) * erofs::DIRENT_SIZE;
        out.resize(start + table, 0);
        let mut name_off = table;
        for (k, (name, nid, ft)) in entries[i..j].iter().enumerate() {
            let d = start + k * erofs::DIRENT_SIZE;
            Put(&mut out[d..d + erofs::DIRENT_SIZE])
                .u64(0, *nid)
                .u16(8, name_off as u16)
                .u8(10, *ft);
            name_off += name.len();
        }
        for (name, _, _) in &entries[i..j] {
            out.extend_from_slice(name);
        }
        i = j;
    }
    out
}
