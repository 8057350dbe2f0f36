//! The EROFS on-disk structures a composefs image uses, as plain little-endian
//! encoders and bounds-checked decoders. Pure code: no I/O, no `unsafe`, no
//! layout tricks; every field is read at its documented offset.
//!
//! Follows the kernel's `fs/erofs/erofs_fs.h` (Linux 6.18) and its
//! `Documentation/filesystems/erofs.rst`: the superblock at byte 1024, 32-byte
//! inode slots addressed by node id (nid), compact (32-byte) and extended
//! (64-byte) inode headers, the xattr body after the header, and 12-byte
//! directory entries at the start of each directory block.

/// Byte offset of the EROFS superblock in the image.
pub(crate) const SUPER_OFFSET: usize = 1024;
/// Size of the superblock structure we read and write.
pub(crate) const SUPER_SIZE: usize = 128;
/// EROFS v1 magic (`EROFS_SUPER_MAGIC_V1`).
pub(crate) const SUPER_MAGIC: u32 = 0xE0F5_E1E2;
/// composefs header magic, at byte 0 of a composefs image (libcomposefs `LCFS_EROFS_MAGIC`).
pub(crate) const COMPOSEFS_MAGIC: u32 = 0xd078_629a;
/// composefs header version field (`LCFS_EROFS_VERSION`).
pub(crate) const COMPOSEFS_VERSION: u32 = 1;
/// composefs format version we write: 1 = may use data-only overlay layers.
pub(crate) const COMPOSEFS_FORMAT_VERSION: u32 = 1;

/// log2 of the block size this crate writes (4096, the page size).
pub(crate) const BLOCK_BITS: u8 = 12;
/// The block size this crate writes.
pub(crate) const BLOCK_SIZE: usize = 1 << BLOCK_BITS;
/// Inode slot size: nids count these from the metadata area start.
pub(crate) const SLOT_SIZE: usize = 32;
/// Compact inode header size.
pub(crate) const COMPACT_INODE_SIZE: usize = 32;
/// Extended inode header size.
pub(crate) const EXTENDED_INODE_SIZE: usize = 64;
/// Directory entry header size.
pub(crate) const DIRENT_SIZE: usize = 12;
/// Inline xattr body header size (`erofs_xattr_ibody_header`).
pub(crate) const XATTR_IBODY_HEADER_SIZE: usize = 12;
/// Xattr entry header size (`erofs_xattr_entry`).
pub(crate) const XATTR_ENTRY_SIZE: usize = 4;
/// A chunk index entry that maps nothing (`EROFS_NULL_ADDR`): a hole.
pub(crate) const NULL_ADDR: u32 = u32::MAX;

/// `feature_compat`: the superblock's checksum field is valid (the kernel
/// refuses to mount the image when it is not).
pub(crate) const COMPAT_SB_CHKSUM: u32 = 0x1;
/// `feature_compat`: inodes carry mtimes.
pub(crate) const COMPAT_MTIME: u32 = 0x2;
/// `feature_incompat`: chunk-based files.
pub(crate) const INCOMPAT_CHUNKED_FILE: u32 = 0x4;
/// Every `feature_incompat` bit this reader implements. Compression, device
/// tables, fragments, long xattr prefixes, 48-bit addressing and metaboxes are
/// refused: composefs never writes them.
pub(crate) const INCOMPAT_SUPPORTED: u32 = INCOMPAT_CHUNKED_FILE;

/// `i_format` bit 0: extended inode.
pub(crate) const I_VERSION_EXTENDED: u16 = 1;
/// `i_format` bits 1..=3: the data layout.
pub(crate) const I_DATALAYOUT_SHIFT: u16 = 1;
/// Mask of the data layout after shifting.
pub(crate) const I_DATALAYOUT_MASK: u16 = 0x7;
/// Every `i_format` bit the kernel defines without the 48-bit feature.
pub(crate) const I_ALL: u16 = 0xF;

/// Chunk format: the low 5 bits are `chunkbits - blkszbits`.
pub(crate) const CHUNK_FORMAT_BLKBITS_MASK: u16 = 0x1F;
/// Chunk format: 8-byte chunk indexes instead of 4-byte block addresses.
pub(crate) const CHUNK_FORMAT_INDEXES: u16 = 0x20;

/// Xattr name index flag: the index names a long prefix (refused: needs
/// `INCOMPAT_XATTR_PREFIXES`).
pub(crate) const XATTR_LONG_PREFIX: u8 = 0x80;

/// The standard xattr name prefixes by `e_name_index` (kernel `erofs_xattr_prefix`).
/// Index 0 means the whole name is stored.
pub(crate) const XATTR_PREFIXES: [&[u8]; 7] = [
    b"",
    b"user.",
    b"system.posix_acl_access",
    b"system.posix_acl_default",
    b"trusted.",
    b"lustre.",
    b"security.",
];

/// Data layouts (`EROFS_INODE_*`), the ones this crate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataLayout {
    /// Data in consecutive blocks from `raw_blkaddr`.
    FlatPlain,
    /// Like flat plain, but the last block's bytes follow the inode.
    FlatInline,
    /// A table of chunks after the inode.
    ChunkBased,
}

impl DataLayout {
    /// The on-disk value, or `None` for compressed and unknown layouts.
    pub(crate) fn from_raw(v: u16) -> Option<Self> {
        match v {
            0 => Some(Self::FlatPlain),
            2 => Some(Self::FlatInline),
            4 => Some(Self::ChunkBased),
            _ => None,
        }
    }

    /// The on-disk value.
    pub(crate) fn raw(self) -> u16 {
        match self {
            Self::FlatPlain => 0,
            Self::FlatInline => 2,
            Self::ChunkBased => 4,
        }
    }
}

/// Directory entry file types (`EROFS_FT_*`).
pub(crate) mod ft {
    pub(crate) const REG: u8 = 1;
    pub(crate) const DIR: u8 = 2;
    pub(crate) const CHR: u8 = 3;
    pub(crate) const BLK: u8 = 4;
    pub(crate) const FIFO: u8 = 5;
    pub(crate) const SOCK: u8 = 6;
    pub(crate) const LNK: u8 = 7;
}

/// `S_IFMT` and the file type bits of a mode.
pub(crate) mod mode {
    pub(crate) const S_IFMT: u32 = 0o170000;
    pub(crate) const S_IFSOCK: u32 = 0o140000;
    pub(crate) const S_IFLNK: u32 = 0o120000;
    pub(crate) const S_IFREG: u32 = 0o100000;
    pub(crate) const S_IFBLK: u32 = 0o060000;
    pub(crate) const S_IFDIR: u32 = 0o040000;
    pub(crate) const S_IFCHR: u32 = 0o020000;
    pub(crate) const S_IFIFO: u32 = 0o010000;
}

/// Reads a little-endian u16 at `off`, or `None` past the end.
pub(crate) fn le16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// Reads a little-endian u32 at `off`, or `None` past the end.
pub(crate) fn le32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads a little-endian u64 at `off`, or `None` past the end.
pub(crate) fn le64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Writes little-endian integers into a fixed buffer at given offsets.
pub(crate) struct Put<'a>(pub(crate) &'a mut [u8]);

impl Put<'_> {
    pub(crate) fn u8(&mut self, off: usize, v: u8) -> &mut Self {
        self.0[off] = v;
        self
    }
    pub(crate) fn u16(&mut self, off: usize, v: u16) -> &mut Self {
        self.0[off..off + 2].copy_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_le_bytes());
        self
    }
}

/// The superblock fields this crate uses (`struct erofs_super_block`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub(crate) feature_compat: u32,
    pub(crate) blkszbits: u8,
    pub(crate) root_nid: u16,
    pub(crate) inos: u64,
    pub(crate) build_time: u64,
    pub(crate) build_time_nsec: u32,
    pub(crate) blocks: u32,
    pub(crate) meta_blkaddr: u32,
    pub(crate) xattr_blkaddr: u32,
    pub(crate) feature_incompat: u32,
    pub(crate) extra_devices: u16,
    pub(crate) dirblkbits: u8,
    pub(crate) xattr_prefix_count: u8,
}

impl Superblock {
    /// Decodes the 128 bytes at [`SUPER_OFFSET`]; the magic is checked by the caller.
    pub(crate) fn decode(b: &[u8]) -> Option<(u32, Self)> {
        let magic = le32(b, 0)?;
        let sb = Self {
            feature_compat: le32(b, 8)?,
            blkszbits: *b.get(12)?,
            root_nid: le16(b, 14)?,
            inos: le64(b, 16)?,
            build_time: le64(b, 24)?,
            build_time_nsec: le32(b, 32)?,
            blocks: le32(b, 36)?,
            meta_blkaddr: le32(b, 40)?,
            xattr_blkaddr: le32(b, 44)?,
            feature_incompat: le32(b, 80)?,
            extra_devices: le16(b, 86)?,
            dirblkbits: *b.get(90)?,
            xattr_prefix_count: *b.get(91)?,
        };
        Some((magic, sb))
    }

    /// Encodes the superblock (magic included, checksum and UUID zero).
    pub(crate) fn encode(&self) -> [u8; SUPER_SIZE] {
        let mut out = [0u8; SUPER_SIZE];
        Put(&mut out)
            .u32(0, SUPER_MAGIC)
            .u32(8, self.feature_compat)
            .u8(12, self.blkszbits)
            .u16(14, self.root_nid)
            .u64(16, self.inos)
            .u64(24, self.build_time)
            .u32(32, self.build_time_nsec)
            .u32(36, self.blocks)
            .u32(40, self.meta_blkaddr)
            .u32(44, self.xattr_blkaddr)
            .u32(80, self.feature_incompat)
            .u16(86, self.extra_devices)
            .u8(90, self.dirblkbits)
            .u8(91, self.xattr_prefix_count);
        out
    }
}

/// The fields of an inode header, compact or extended, widened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct InodeHeader {
    pub(crate) extended: bool,
    pub(crate) layout_raw: u16,
    pub(crate) xattr_icount: u16,
    pub(crate) mode: u16,
    pub(crate) nlink: u32,
    pub(crate) size: u64,
    /// `i_u`: raw block address, chunk format (low 16 bits) or device number.
    pub(crate) i_u: u32,
    pub(crate) ino: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Extended: seconds. Compact: seconds after the superblock's build time.
    pub(crate) mtime: u64,
    /// Extended only.
    pub(crate) mtime_nsec: u32,
}

impl InodeHeader {
    /// Decodes a header starting at `b[0]`. Returns the header and its size, or
    /// `None` if `b` is too short. The `i_format` bits are checked by the caller.
    pub(crate) fn decode(b: &[u8]) -> Option<(u16, Self, usize)> {
        let format = le16(b, 0)?;
        let extended = format & I_VERSION_EXTENDED != 0;
        let layout_raw = (format >> I_DATALAYOUT_SHIFT) & I_DATALAYOUT_MASK;
        if extended {
            let h = Self {
                extended,
                layout_raw,
                xattr_icount: le16(b, 2)?,
                mode: le16(b, 4)?,
                size: le64(b, 8)?,
                i_u: le32(b, 16)?,
                ino: le32(b, 20)?,
                uid: le32(b, 24)?,
                gid: le32(b, 28)?,
                mtime: le64(b, 32)?,
                mtime_nsec: le32(b, 40)?,
                nlink: le32(b, 44)?,
            };
            le64(b, 56)?; // the whole header is present
            Some((format, h, EXTENDED_INODE_SIZE))
        } else {
            let h = Self {
                extended,
                layout_raw,
                xattr_icount: le16(b, 2)?,
                mode: le16(b, 4)?,
                nlink: u32::from(le16(b, 6)?),
                size: u64::from(le32(b, 8)?),
                mtime: u64::from(le32(b, 12)?),
                i_u: le32(b, 16)?,
                ino: le32(b, 20)?,
                uid: u32::from(le16(b, 24)?),
                gid: u32::from(le16(b, 26)?),
                mtime_nsec: 0,
            };
            le32(b, 28)?;
            Some((format, h, COMPACT_INODE_SIZE))
        }
    }

    /// Encodes an extended header (this crate's writer uses no compact
    /// inodes: their mtime would be tied to the superblock's build time).
    pub(crate) fn encode_extended(&self, layout: DataLayout) -> [u8; EXTENDED_INODE_SIZE] {
        let mut out = [0u8; EXTENDED_INODE_SIZE];
        Put(&mut out)
            .u16(0, I_VERSION_EXTENDED | (layout.raw() << I_DATALAYOUT_SHIFT))
            .u16(2, self.xattr_icount)
            .u16(4, self.mode)
            .u64(8, self.size)
            .u32(16, self.i_u)
            .u32(20, self.ino)
            .u32(24, self.uid)
            .u32(28, self.gid)
            .u64(32, self.mtime)
            .u32(40, self.mtime_nsec)
            .u32(44, self.nlink);
        out
    }
}

/// Size of the inline xattr body for `xattr_icount` (0 when there is none),
/// as the kernel computes it (`erofs_xattr_ibody_size`).
pub(crate) fn xattr_ibody_size(xattr_icount: u16) -> usize {
    match xattr_icount {
        0 => 0,
        n => XATTR_IBODY_HEADER_SIZE + (usize::from(n) - 1) * 4,
    }
}

/// The superblock checksum as the kernel computes it
/// (`erofs_superblock_csum_verify`): CRC-32C seeded with `!0`, without the final
/// inversion, over the rest of the first block from the superblock on, with
/// the checksum field taken as zero.
pub(crate) fn superblock_checksum(first_block_from_sb: &[u8]) -> u32 {
    let mut crc = !0u32;
    for (i, &byte) in first_block_from_sb.iter().enumerate() {
        // Bytes 4..8 are the checksum field itself.
        crc ^= u32::from(if (4..8).contains(&i) { 0 } else { byte });
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    crc
}

/// Rounds `n` up to a multiple of `to` (a power of two).
pub(crate) fn round_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

/// The kernel's `new_encode_dev`: the 32-bit device number in `i_u`.
pub(crate) fn encode_dev(major: u32, minor: u32) -> Option<u32> {
    if major >= 1 << 12 || minor >= 1 << 20 {
        return None;
    }
    Some((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

/// The kernel's `new_decode_dev`: `(major, minor)` of an `i_u` device number.
pub(crate) fn decode_dev(dev: u32) -> (u32, u32) {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    (major, minor)
}

/// glibc's `makedev`: the userspace `dev_t` (as in `st_rdev`).
pub fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0x0000_0fff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0x0000_00ff)
}

/// glibc's `major` and `minor` of a userspace `dev_t`.
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip() {
        for (major, minor) in [(0, 0), (1, 3), (8, 17), (4095, 0xfffff), (259, 65536)] {
            let enc = encode_dev(major, minor).expect("representable");
            assert_eq!(decode_dev(enc), (major, minor));
            assert_eq!(split_dev(makedev(major, minor)), (major, minor));
        }
        assert_eq!(encode_dev(4096, 0), None);
        assert_eq!(encode_dev(0, 1 << 20), None);
        // Known values: /dev/null is 1:3 -> 0x103 in both encodings.
        assert_eq!(encode_dev(1, 3), Some(0x103));
        assert_eq!(makedev(1, 3), 0x103);
    }

    #[test]
    fn headers_round_trip() {
        let sb = Superblock {
            feature_compat: COMPAT_MTIME,
            blkszbits: BLOCK_BITS,
            root_nid: 36,
            inos: 7,
            build_time: 12345,
            blocks: 9,
            xattr_blkaddr: 3,
            feature_incompat: INCOMPAT_CHUNKED_FILE,
            ..Default::default()
        };
        let enc = sb.encode();
        assert_eq!(Superblock::decode(&enc), Some((SUPER_MAGIC, sb)));

        let h = InodeHeader {
            extended: true,
            layout_raw: DataLayout::ChunkBased.raw(),
            xattr_icount: 5,
            mode: 0o100644,
            nlink: 70000,
            size: 1 << 40,
            i_u: 18,
            ino: 4,
            uid: 100_000,
            gid: 7,
            mtime: 1_700_000_000,
            mtime_nsec: 999_999_999,
        };
        let enc = h.encode_extended(DataLayout::ChunkBased);
        let (format, dec, size) = InodeHeader::decode(&enc).expect("decodes");
        assert_eq!((format, size), (1 | 8, EXTENDED_INODE_SIZE));
        assert_eq!(dec, h);
        assert!(InodeHeader::decode(&enc[..63]).is_none());
    }
}
