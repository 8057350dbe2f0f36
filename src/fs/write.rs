//! Writing through the mount: only plain files opened for writing take
//! writes; verity files refuse writes, preallocation and being the target of
//! a copy (EPERM), and a copy *from* one goes through the verified read path.

use rustix::fs::{FallocateFlags, SeekFrom};

use super::VerityFs;
use super::handles::HandleKind;
use crate::error::{Error, Result};

impl VerityFs {
    /// Writes to a plain file opened for writing.
    pub(crate) fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let handle = self.handles.get(fh)?;
        let f = handle.as_file()?;
        match &f.kind {
            HandleKind::Verity(_) => return Err(Error::VerityImmutable),
            HandleKind::Plain { writer: None } => return Err(Error::NotOpenForWriting),
            HandleKind::Plain { writer: Some(_) } => {}
        }
        if f.verity.known().is_some() {
            return Err(Error::VerityImmutable);
        }
        std::os::unix::fs::FileExt::write_all_at(&f.file, data, offset)?;
        Ok(data.len() as u32)
    }

    /// Preallocates or punches; EPERM on verity files.
    pub(crate) fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        let handle = self.handles.get(fh)?;
        let f = handle.as_file()?;
        if matches!(f.kind, HandleKind::Verity(_)) || f.verity.known().is_some() {
            return Err(Error::VerityImmutable);
        }
        self.check_writable()?;
        rustix::fs::fallocate(
            &f.file,
            FallocateFlags::from_bits_retain(mode as u32),
            offset,
            length,
        )?;
        Ok(())
    }

    /// SEEK_DATA / SEEK_HOLE (the kernel handles the other whences itself),
    /// clamped to a verity file's verified size.
    pub(crate) fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Result<i64> {
        let handle = self.handles.get(fh)?;
        let f = handle.as_file()?;
        let offset = u64::try_from(offset).map_err(|_| Error::NoSuchOffset)?;
        let limit = f.verity.known().map(|v| v.data_size());
        if limit.is_some_and(|size| offset >= size) {
            return Err(Error::NoSuchOffset);
        }
        let pos = match whence {
            libc::SEEK_DATA => rustix::fs::seek(&f.file, SeekFrom::Data(offset))?,
            libc::SEEK_HOLE => rustix::fs::seek(&f.file, SeekFrom::Hole(offset))?,
            libc::SEEK_SET => offset,
            _ => return Err(Error::InvalidArgument("unknown whence".into())),
        };
        let pos = match limit {
            Some(size) if pos >= size && whence == libc::SEEK_DATA => {
                return Err(Error::NoSuchOffset);
            }
            Some(size) => pos.min(size),
            None => pos,
        };
        Ok(pos as i64)
    }

    /// Copies between plain files in the backing filesystem. From a verity
    /// file it answers EXDEV, so the kernel falls back to reading through the
    /// mount, where every byte is verified.
    pub(crate) fn copy_file_range(
        &self, fh_in: u64, off_in: u64, fh_out: u64, off_out: u64, len: u64,
    ) -> Result<u32> {
        let hin = self.handles.get(fh_in)?;
        let hout = self.handles.get(fh_out)?;
        let (fin, fout) = (hin.as_file()?, hout.as_file()?);
        if self.current_verifier(fin)?.is_some() {
            return Err(Error::CrossDevice);
        }
        match &fout.kind {
            HandleKind::Verity(_) => return Err(Error::VerityImmutable),
            HandleKind::Plain { writer: None } => return Err(Error::NotOpenForWriting),
            HandleKind::Plain { writer: Some(_) } => {}
        }
        if fout.verity.known().is_some() {
            return Err(Error::VerityImmutable);
        }
        let (mut a, mut b) = (off_in, off_out);
        let len = len.min(u32::MAX as u64 & !0xfff) as usize;
        let n =
            rustix::fs::copy_file_range(&fin.file, Some(&mut a), &fout.file, Some(&mut b), len)?;
        Ok(n as u32)
    }
}
