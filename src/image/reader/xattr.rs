//! Inline and shared xattrs of an inode (`erofs_xattr_ibody_header`,
//! `erofs_xattr_entry`), read as the kernel lists them: inline first, then shared.

use super::{Fail, Parser, RawXattr};
use crate::image::erofs::{self, le16, le32};
use crate::image::error::Problem;

impl Parser<'_> {
    /// The raw xattrs of an inode: (name index, suffix range, value range), the
    /// inline ones first, then the shared ones, as the kernel lists them.
    pub(super) fn xattrs(&mut self, start: usize, len: usize) -> Result<Vec<RawXattr>, Fail> {
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
    pub(super) fn entry(&self, at: usize, end: usize) -> Option<(RawXattr, usize)> {
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
}

/// The prefix the kernel shows for an xattr name index, or `None` when the
/// kernel neither lists nor finds xattrs with that index (0, `lustre.`, unknown).
pub(super) fn kernel_prefix(index: u8) -> Option<&'static [u8]> {
    match index {
        1..=4 | 6 => Some(erofs::XATTR_PREFIXES[usize::from(index)]),
        _ => None,
    }
}
