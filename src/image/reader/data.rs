//! Where an inode's bytes are: flat (plain blocks and an inline tail) and
//! chunk-based layouts, as extents checked against the image.

use super::{Fail, Parser};
use crate::image::erofs::{self, DataLayout, InodeHeader, le32};
use crate::image::error::Problem;
use crate::image::model::Extent;

impl Parser<'_> {
    /// Extents of a flat (plain or inline) inode.
    pub(super) fn flat_extents(
        &mut self, h: &InodeHeader, layout: DataLayout, tail_at: usize,
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
    pub(super) fn chunk_extents(
        &mut self, h: &InodeHeader, table_at: usize,
    ) -> Result<Vec<Extent>, Fail> {
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
}
