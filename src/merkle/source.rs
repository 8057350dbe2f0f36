//! Where data and tree bytes come from: files (with hole detection) or memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Random-access bytes to build a tree over or verify.
pub trait DataSource: Sync {
    /// Current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reads at `offset`; returns the bytes read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// True if `[start, end)` is known to be one hole (reads as zeros). A `false`
    /// answer is always safe.
    fn is_hole(&self, _start: u64, _end: u64) -> bool {
        false
    }
}

impl DataSource for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn is_hole(&self, start: u64, end: u64) -> bool {
        // The next data at or after `start` begins at or beyond `end` (ENXIO:
        // there is no data after `start` at all).
        match rustix::fs::seek(self, rustix::fs::SeekFrom::Data(start)) {
            Ok(next) => next >= end,
            Err(rustix::io::Errno::NXIO) => true,
            Err(_) => false,
        }
    }
}

impl DataSource for &[u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(<[u8]>::len(self));
        let n = buf.len().min(<[u8]>::len(self) - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl DataSource for Vec<u8> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.as_slice().len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
}

/// Where a verifier reads tree blocks from: the tree of one file, found (or
/// built) before the verifier exists. Its bytes are untrusted: every block
/// read is verified up to the root.
pub trait TreeSource: Send + Sync {
    /// Reads tree bytes at `offset`; returns the bytes read.
    fn read_tree(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl<T: DataSource + Send> TreeSource for T {
    fn read_tree(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        read_full(self, buf, offset)
    }
}

/// Reads until `buf` is full or the end; returns the bytes read.
pub fn read_full(
    source: &(impl DataSource + ?Sized), buf: &mut [u8], offset: u64,
) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match source.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
