//! Directory blocks: 12-byte entries then names, validated as the kernel reads
//! them, in strictly ascending order across the whole directory.

use super::{Parser, RawEntry, Span, index};
use crate::image::erofs::{self, DataLayout, InodeHeader, le16, le64};
use crate::image::error::{ImageError, Problem};
use crate::image::model::Ino;

/// Longest name the kernel accepts in an EROFS directory (`EROFS_NAME_LEN`).
const NAME_MAX: usize = 255;

impl Parser<'_> {
    /// The raw entries of directory `dir`: (name range, nid, file type byte),
    /// validated as the kernel reads them and in strictly ascending order.
    pub(super) fn dir_entries(&mut self, dir: Ino) -> Result<Vec<RawEntry>, ImageError> {
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
    pub(super) fn dir_block(
        &self, base: usize, size: usize, block: u64, out: &mut Vec<RawEntry>,
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
            if let Some(p) = prev
                && self.img[p.0..p.1] >= *name
            {
                return Err(Problem::Unsorted {
                    name: String::from_utf8_lossy(name).into(),
                });
            }
            *prev = Some(range);
            out.push((range, nid, ft));
        }
        Ok(())
    }
}
