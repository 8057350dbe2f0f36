//! What can be wrong with an image (refused by [`Image::parse`](super::Image::parse))
//! and with a query on a parsed image. Every error names what failed: the
//! superblock field, or the inode's path and node id and the fault found there.

use super::overlay::MetacopyError;

/// Why an image was refused. A hostile image yields one of these, never a
/// panic, a hang or an unbounded allocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Shorter than the superblock's end (1152 bytes).
    #[error("image is {len} bytes: too short for an EROFS superblock (1152 bytes)")]
    TooShort {
        /// The image's length.
        len: usize,
    },
    /// No EROFS magic at byte 1024.
    #[error("not an EROFS image: magic {found:#010x} at byte 1024, expected 0xe0f5e1e2")]
    BadMagic {
        /// The bytes found there.
        found: u32,
    },
    /// A block size other than 4096 bytes (what composefs and, on 4 KiB-page
    /// machines, mkfs.erofs write).
    #[error("unsupported EROFS block size 2^{0}: only 4096-byte blocks are supported")]
    BlockSize(u8),
    /// The superblock checksum does not match (the kernel refuses to mount).
    #[error("superblock checksum is {found:#010x}, the superblock says {expected:#010x}")]
    Checksum {
        /// The checksum field.
        expected: u32,
        /// What the superblock's bytes sum to.
        found: u32,
    },
    /// `feature_incompat` bits this reader does not implement.
    #[error(
        "unsupported EROFS features {0:#x} (feature_incompat): only chunk-based files (0x4) are supported, as composefs writes them"
    )]
    Features(u32),
    /// A superblock field with a value this reader does not implement.
    #[error("unsupported EROFS superblock: {field} is {value}")]
    Superblock {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// An inode, reached at `path`, is malformed or unsupported.
    #[error("'{path}' (nid {nid}): {problem}")]
    Inode {
        /// Path from the image root of the first link found to the inode.
        path: String,
        /// Node id of the inode.
        nid: u64,
        /// What is wrong with it.
        problem: Problem,
    },
    /// Metadata referenced many times over (overlapping inodes or directory
    /// blocks shared between directories): parsing would cost more than a
    /// well-formed image of this size ever does.
    #[error(
        "image metadata overlaps itself: more than {limit} bytes of inodes, xattrs and directory entries in a {len}-byte image"
    )]
    Overlap {
        /// The work limit that was exceeded.
        limit: u64,
        /// The image's length.
        len: usize,
    },
}

/// What is wrong with one inode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The inode header does not lie inside the image.
    #[error("inode header at byte {0} lies outside the image")]
    HeaderOutside(u64),
    /// `i_format` bits this reader does not know.
    #[error("unsupported inode format {0:#06x}")]
    Format(u16),
    /// A compressed or unknown data layout, or chunks for a directory or symlink.
    #[error("unsupported data layout {layout} for a {kind}")]
    Layout {
        /// The raw layout value.
        layout: u16,
        /// The file type.
        kind: &'static str,
    },
    /// A mode whose file type bits name no file type.
    #[error("mode {0:#o} has no valid file type")]
    Mode(u16),
    /// The root is not a directory.
    #[error("the root inode is not a directory")]
    RootNotDirectory,
    /// A directory reached twice (a hard link to a directory, or a cycle).
    #[error("directory is linked more than once (a directory hard link or a cycle)")]
    DirectoryLinkedTwice,
    /// The file's data (or its inline tail, or a chunk) lies outside the image.
    #[error("data of {len} bytes at byte {offset} lies outside the image")]
    DataOutside {
        /// Where the data starts.
        offset: u64,
        /// How long it is.
        len: u64,
    },
    /// The inline tail crosses a block boundary (the kernel refuses it too).
    #[error("inline data of {len} bytes at byte {offset} crosses a block boundary")]
    InlineCrossesBlock {
        /// Where the tail starts.
        offset: u64,
        /// How long it is.
        len: u64,
    },
    /// A directory block whose entry table is malformed.
    #[error("directory block {block}: {what}")]
    DirBlock {
        /// Index of the block in the directory.
        block: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// An entry name that is empty, too long, or contains `/` or NUL.
    #[error("entry name {name:?} is invalid: {why}")]
    BadName {
        /// The name, lossily decoded.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// Entries not in strictly ascending byte order (lookups could miss them).
    #[error("entry {name:?} is out of order or duplicated")]
    Unsorted {
        /// The name, lossily decoded.
        name: String,
    },
    /// A directory entry's file type disagrees with the inode's mode.
    #[error("entry {name:?} says file type {entry} but its inode is a {inode}")]
    TypeMismatch {
        /// The name, lossily decoded.
        name: String,
        /// The entry's file type byte.
        entry: u8,
        /// The inode's file type.
        inode: &'static str,
    },
    /// The xattr area is malformed.
    #[error("xattrs: {0}")]
    Xattr(&'static str),
    /// An xattr name appears twice.
    #[error("xattr {0:?} appears twice")]
    DuplicateXattr(String),
    /// A symlink target that is empty, over 4095 bytes, or contains NUL.
    #[error("symlink target of {0} bytes is empty, too long or contains NUL")]
    Symlink(u64),
    /// Nanoseconds of a timestamp of one second or more.
    #[error("mtime nanoseconds {0} is not below one second")]
    Nanoseconds(u32),
    /// A metadata-only file whose `trusted.overlay.metacopy` is unusable.
    #[error("trusted.overlay.metacopy {0}")]
    Metacopy(MetacopyError),
    /// A metadata-only file with no `trusted.overlay.redirect` to its object.
    #[error("metadata-only file has no trusted.overlay.redirect to its object")]
    NoRedirect,
    /// The redirect is not the object path of the file's digest.
    #[error("trusted.overlay.redirect {found:?} is not the object path {expected:?} of its digest")]
    Redirect {
        /// `/xx/rest-of-digest`.
        expected: String,
        /// What the image holds.
        found: String,
    },
    /// An overlayfs feature that a composefs image does not use and this
    /// reader does not emulate.
    #[error("uses the overlayfs feature {0}, which this reader does not emulate")]
    OverlayFeature(&'static str),
}

/// A query on a parsed image that cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No inode has this number.
    #[error("no inode {0} in the image")]
    NoInode(u64),
    /// A directory operation on something else.
    #[error("inode {0} is not a directory")]
    NotDirectory(u64),
    /// `readlink` on something other than a symlink.
    #[error("inode {0} is not a symlink")]
    NotSymlink(u64),
    /// `content` on something other than a regular file.
    #[error("inode {0} is not a regular file")]
    NotRegular(u64),
}
