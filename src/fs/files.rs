//! Open files: open/create, the verified read path, and the operations verity
//! files refuse (write, truncate, fallocate: EPERM, like the kernel).

use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use rustix::fs::{FallocateFlags, Mode, OFlags, SeekFrom};

use super::handle::{FileHandle, Handle, HandleKind};
use super::inode::{Inode, InodeRef};
use super::verity::{VerityFile, VerityState};
use super::{Attr, Caller, Stats, VerityFs};
use crate::error::{Error, Result};
use crate::merkle::{VerifiedBytes, Verifier, VerifyError, read_full};

/// Bytes returned by a read: verified for verity files.
#[derive(Debug)]
pub enum ReadData {
    /// From a verity file: checked against the tree in this very buffer.
    Verified(VerifiedBytes),
    /// From any other file.
    Plain(Vec<u8>),
}

impl ReadData {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            ReadData::Verified(v) => v.as_slice(),
            ReadData::Plain(v) => v,
        }
    }
}

/// The result of an open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Handle number.
    pub fh: u64,
    /// The kernel may keep its page cache: it holds only verified pages.
    pub keep_cache: bool,
    /// The file is a verity file.
    pub verity: bool,
    /// Closing it must reach the daemon (`flush`): only for writable plain
    /// files, whose close the backing filesystem should see.
    pub flush_on_close: bool,
}

fn is_read_open(flags: OFlags) -> bool {
    let acc = flags & OFlags::RWMODE;
    acc == OFlags::RDONLY || acc == OFlags::RDWR
}

fn is_write_open(flags: OFlags) -> bool {
    let acc = flags & OFlags::RWMODE;
    acc == OFlags::WRONLY || acc == OFlags::RDWR || flags.intersects(OFlags::TRUNC | OFlags::APPEND)
}

impl VerityFs {
    /// Opens a regular file. Verity files open read-only (write access, O_TRUNC
    /// and O_APPEND: EPERM); damaged ones fail with EIO.
    pub fn open(&self, ino: u64, flags: i32, _caller: Caller) -> Result<Opened> {
        let inode = self.inode(ino)?;
        let flags = OFlags::from_bits_retain(flags as u32);
        self.open_inode(&inode, flags)
    }

    fn open_inode(&self, inode: &InodeRef, flags: OFlags) -> Result<Opened> {
        let writing = is_write_open(flags);
        if writing {
            self.check_writable()?;
        }
        let st = Self::stat(inode)?;
        match self.verity_state(inode, &st, false) {
            VerityState::Damaged(reason) => {
                let err = Error::VerityDamaged {
                    path: self.describe(inode),
                    reason,
                };
                self.report_corruption(&err);
                Err(err)
            }
            VerityState::Verity(vf) => {
                if writing {
                    return Err(Error::VerityImmutable);
                }
                self.check_open_policy(inode, &vf)?;
                let file = self.reopen(inode, flags & !OFlags::RWMODE)?;
                let verifier = self.verifier(&vf);
                // As the kernel keeps the tree with the file: a missing tree is
                // rebuilt (and stored) at the first open, while the data is
                // still the data the descriptor describes.
                verifier.prepare(&file);
                let keep_cache = {
                    let mut v = inode.verity.lock().unwrap_or_else(|e| e.into_inner());
                    std::mem::replace(&mut v.cache_verified, true)
                };
                Ok(self.new_handle(inode, file, HandleKind::Verity(verifier), keep_cache, true))
            }
            VerityState::Plain | VerityState::Unknown => {
                if !writing {
                    self.check_plain_read_policy(inode)?;
                }
                {
                    let mut v = inode.verity.lock().unwrap_or_else(|e| e.into_inner());
                    if writing {
                        v.begin_write()?;
                    }
                    v.cache_verified = false;
                }
                let file = match self.reopen(inode, flags) {
                    Ok(f) => f,
                    Err(e) => {
                        if writing {
                            inode
                                .verity
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .end_write();
                        }
                        return Err(e);
                    }
                };
                Ok(self.new_handle(
                    inode,
                    file,
                    HandleKind::Plain { writable: writing },
                    false,
                    is_read_open(flags),
                ))
            }
        }
    }

    /// Creates and opens a regular file (or opens it if it exists and O_EXCL is not set).
    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(Attr, Opened)> {
        let parent = self.inode(parent)?;
        self.check_writable()?;
        self.check_mutable_name(&parent, name)?;
        let flags = OFlags::from_bits_retain(flags as u32);
        let create_flags = (flags - OFlags::DIRECT)
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC;
        let fd = match self.inodes.opening(|| {
            rustix::fs::openat(
                &parent.fd,
                name,
                create_flags,
                Mode::from_raw_mode(mode & 0o7777),
            )
        }) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::EXIST) if !flags.contains(OFlags::EXCL) => {
                // It exists: an ordinary open, with every verity check.
                let attr = self.lookup_in(&parent, name)?;
                let inode = self.inode(attr.ino)?;
                return match self.open_inode(&inode, flags) {
                    Ok(opened) => Ok((self.getattr(attr.ino)?, opened)),
                    Err(e) => {
                        self.forget(attr.ino, 1);
                        Err(e)
                    }
                };
            }
            Err(e) => return Err(e.into()),
        };
        let file = std::fs::File::from(fd);
        if let Err(e) = self.give_to_caller(&parent, name, caller) {
            let _ = rustix::fs::unlinkat(&parent.fd, name, rustix::fs::AtFlags::empty());
            return Err(e);
        }
        let attr = self.lookup_in(&parent, name)?;
        let inode = self.inode(attr.ino)?;
        let writing = is_write_open(flags);
        if writing {
            inode
                .verity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .begin_write()?;
        }
        Ok((
            attr,
            self.new_handle(
                &inode,
                file,
                HandleKind::Plain { writable: writing },
                false,
                is_read_open(flags),
            ),
        ))
    }

    /// Registers an open file and counts the open.
    fn new_handle(
        &self,
        inode: &InodeRef,
        file: std::fs::File,
        kind: HandleKind,
        keep_cache: bool,
        readable: bool,
    ) -> Opened {
        let verity = matches!(kind, HandleKind::Verity(_));
        let flush_on_close = matches!(kind, HandleKind::Plain { writable: true });
        let counter = if verity {
            &self.stats.files_opened_verity
        } else {
            &self.stats.files_opened_plain
        };
        Stats::add(counter, 1);
        let fh = self.handles.insert(Handle::File(FileHandle {
            inode: inode.inode.clone(),
            file,
            kind,
            readable,
        }));
        Opened {
            fh,
            keep_cache,
            verity,
            flush_on_close,
        }
    }

    /// Reads `size` bytes at `offset`. For verity files, every byte returned was
    /// verified in the returned buffer; a block that does not verify fails the
    /// whole request with EIO (never a short read, which the kernel would take
    /// for end of file).
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<ReadData> {
        let handle = self.handles.file(fh)?;
        let f = handle.as_file()?;
        if let Some(verifier) = self.current_verifier(f)? {
            return self.read_verified(f, &verifier, offset, size);
        }
        let mut buf = vec![0u8; size as usize];
        let n = read_full(&f.file, &mut buf, offset)?;
        buf.truncate(n);
        Ok(ReadData::Plain(buf))
    }

    /// The verifier reads through `f` must use: its own, or the inode's if the
    /// file became verity after `f` was opened.
    fn current_verifier(&self, f: &FileHandle) -> Result<Option<Arc<Verifier>>> {
        match &f.kind {
            HandleKind::Verity(v) => Ok(Some(v.clone())),
            HandleKind::Plain { .. } => match self.known_verity(&f.inode) {
                Some(vf) => Ok(Some(self.verifier(&vf))),
                None => Ok(None),
            },
        }
    }

    /// The inode's last known verity metadata, without touching the backing file.
    fn known_verity(&self, inode: &Inode) -> Option<Arc<VerityFile>> {
        match &inode.verity.lock().unwrap_or_else(|e| e.into_inner()).state {
            VerityState::Verity(vf) => Some(vf.clone()),
            _ => None,
        }
    }

    fn read_verified(
        &self,
        f: &FileHandle,
        verifier: &Verifier,
        offset: u64,
        size: u32,
    ) -> Result<ReadData> {
        self.check_not_aborted()?;
        match verifier.read_verified(&f.file, offset, size as usize) {
            Ok((bytes, stats)) => {
                Stats::add(&self.stats.blocks_verified, stats.blocks_verified);
                Stats::add(&self.stats.bytes_verified, bytes.len() as u64);
                Ok(ReadData::Verified(bytes))
            }
            Err(e) => {
                let path = self.describe_handle(f);
                let err = match e {
                    VerifyError::Mismatch(corruption) => Error::Corrupted { path, corruption },
                    other => Error::VerityDamaged {
                        path,
                        reason: other.to_string(),
                    },
                };
                self.report_corruption(&err);
                self.on_corruption(err, f, verifier, offset, size)
            }
        }
    }

    /// Writes to a plain file opened for writing.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let handle = self.handles.file(fh)?;
        let f = handle.as_file()?;
        match f.kind {
            HandleKind::Verity(_) => return Err(Error::VerityImmutable),
            HandleKind::Plain { writable: false } => return Err(Error::from_errno(libc::EBADF)),
            HandleKind::Plain { writable: true } => {}
        }
        if self.known_verity(&f.inode).is_some() {
            return Err(Error::VerityImmutable);
        }
        f.file.write_all_at(data, offset)?;
        Ok(data.len() as u32)
    }

    /// Called on every close of a descriptor: lets the backing filesystem see it.
    pub fn flush(&self, fh: u64) -> Result<()> {
        let handle = self.handles.file(fh)?;
        let f = handle.as_file()?;
        if let HandleKind::Plain { writable: true } = f.kind {
            drop(rustix::io::dup(&f.file)?);
        }
        Ok(())
    }

    /// Closes a handle.
    pub fn release(&self, fh: u64) -> Result<()> {
        let handle = self.handles.remove(fh)?;
        if let Handle::File(f) = &*handle {
            if let HandleKind::Plain { writable: true } = f.kind {
                f.inode
                    .verity
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .end_write();
            }
        }
        Ok(())
    }

    /// fsync / fdatasync.
    pub fn fsync(&self, fh: u64, datasync: bool) -> Result<()> {
        let handle = self.handles.get(fh)?;
        let file = match &*handle {
            Handle::File(f) => &f.file,
            Handle::Dir(d) => &d.file,
        };
        if datasync {
            rustix::fs::fdatasync(file)?
        } else {
            rustix::fs::fsync(file)?
        }
        Ok(())
    }

    /// Preallocates or punches; EPERM on verity files.
    pub fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32) -> Result<()> {
        let handle = self.handles.file(fh)?;
        let f = handle.as_file()?;
        if matches!(f.kind, HandleKind::Verity(_)) || self.known_verity(&f.inode).is_some() {
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

    /// SEEK_DATA / SEEK_HOLE (the kernel handles the other whences itself).
    pub fn lseek(&self, fh: u64, offset: i64, whence: i32) -> Result<i64> {
        let handle = self.handles.file(fh)?;
        let f = handle.as_file()?;
        let offset = u64::try_from(offset).map_err(|_| Error::from_errno(libc::ENXIO))?;
        let limit = self
            .known_verity(&f.inode)
            .map(|v| v.metadata.descriptor.data_size());
        if limit.is_some_and(|size| offset >= size) {
            return Err(Error::from_errno(libc::ENXIO));
        }
        let pos = match whence {
            libc::SEEK_DATA => rustix::fs::seek(&f.file, SeekFrom::Data(offset))?,
            libc::SEEK_HOLE => rustix::fs::seek(&f.file, SeekFrom::Hole(offset))?,
            libc::SEEK_SET => offset,
            _ => return Err(Error::from_errno(libc::EINVAL)),
        };
        let pos = match limit {
            Some(size) if pos >= size && whence == libc::SEEK_DATA => {
                return Err(Error::from_errno(libc::ENXIO));
            }
            Some(size) => pos.min(size),
            None => pos,
        };
        Ok(pos as i64)
    }

    /// Copies between plain files in the backing filesystem. From a verity file it
    /// answers EXDEV, so the kernel falls back to reading through the mount, where
    /// every byte is verified.
    pub fn copy_file_range(
        &self,
        fh_in: u64,
        off_in: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
    ) -> Result<u32> {
        let hin = self.handles.file(fh_in)?;
        let hout = self.handles.file(fh_out)?;
        let (fin, fout) = (hin.as_file()?, hout.as_file()?);
        if self.current_verifier(fin)?.is_some() {
            return Err(Error::from_errno(libc::EXDEV));
        }
        match fout.kind {
            HandleKind::Verity(_) => return Err(Error::VerityImmutable),
            HandleKind::Plain { writable: false } => return Err(Error::from_errno(libc::EBADF)),
            HandleKind::Plain { writable: true } => {}
        }
        if self.known_verity(&fout.inode).is_some() {
            return Err(Error::VerityImmutable);
        }
        let (mut a, mut b) = (off_in, off_out);
        let len = len.min(u32::MAX as u64 & !0xfff) as usize;
        let n =
            rustix::fs::copy_file_range(&fin.file, Some(&mut a), &fout.file, Some(&mut b), len)?;
        Ok(n as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inode::ROOT_ID;
    use crate::fs::{Caller, FsOptions};
    use crate::store::enable_file;

    #[test]
    fn only_writable_plain_handles_ask_for_flush_on_close() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["plain", "verity"] {
            std::fs::write(dir.path().join(name), vec![7u8; 10_000]).expect("write");
        }
        let file = std::fs::File::open(dir.path().join("verity")).expect("open");
        enable_file(
            &file,
            None,
            &crate::format::TreeParams::default(),
            crate::merkle::BuildOptions::default(),
            &|_| Ok(None),
            &|| false,
        )
        .expect("enable");
        let fs = VerityFs::new(dir.path(), FsOptions::default()).expect("fs");
        let me = Caller {
            uid: 0,
            gid: 0,
            pid: std::process::id(),
        };
        let ino = |name: &str| fs.lookup(ROOT_ID, name.as_ref()).expect("lookup").ino;
        let open = |name: &str, flags: i32| fs.open(ino(name), flags, me).expect("open");
        assert!(!open("verity", libc::O_RDONLY).flush_on_close);
        assert!(!open("plain", libc::O_RDONLY).flush_on_close);
        assert!(open("plain", libc::O_WRONLY).flush_on_close);
        assert!(open("plain", libc::O_RDWR).flush_on_close);
        let (_, created) = fs
            .create(ROOT_ID, "new".as_ref(), 0o644, libc::O_WRONLY, me)
            .expect("create");
        assert!(created.flush_on_close);
    }
}
