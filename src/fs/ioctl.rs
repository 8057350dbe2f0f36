//! The kernel's fs-verity ioctls through the mount: enable, measure, flags.
//! The kernel does none of fs-verity's checks for FUSE, so they are made here,
//! in the kernel's order and with its errors.

use rustix::fs::{FileType, IFlags, Stat};

use super::access::{ACL_ACCESS_XATTR, being_killed, groups_of, may_write};
use super::handle::Handle;
use super::inode::{Inode, InodeRef};
use super::verity::VerityState;
use super::{Caller, Stats, VerityFs};
use crate::error::{Error, Result};
use crate::format::{FormatError, HashAlgorithm, HashValue};
use crate::ioctl::{EnableRequest, FS_APPEND_FL, FS_IMMUTABLE_FL, FS_VERITY_FL};
use crate::merkle::{BuildError, BuildOptions};
use crate::store::{EnableError, TreeError, enable_file};

/// Clears the inode's `enabling` mark when an enable ends, however it ends.
struct Enabling<'a>(&'a Inode);

impl Drop for Enabling<'_> {
    fn drop(&mut self) {
        self.0
            .verity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .enabling = false;
    }
}

impl VerityFs {
    /// `FS_IOC_MEASURE_VERITY`: the file digest; ENODATA for non-verity files.
    pub fn measure(&self, ino: u64) -> Result<(HashAlgorithm, HashValue)> {
        let inode = self.inode(ino)?;
        let st = Self::stat(&inode)?;
        match self.verity_state(&inode, &st, true) {
            VerityState::Verity(v) => Ok((v.metadata.descriptor.algorithm(), v.digest)),
            VerityState::Damaged(reason) => Err(Error::VerityDamaged {
                path: self.describe(&inode),
                reason,
            }),
            VerityState::Plain | VerityState::Unknown => Err(Error::NotVerity),
        }
    }

    /// `FS_IOC_GETFLAGS`: the backing file's flags plus FS_VERITY_FL on verity files.
    pub fn get_flags(&self, ino: u64, fh: u64) -> Result<u32> {
        let inode = self.inode(ino)?;
        let handle = self.handles.get(fh)?;
        let mut flags = match rustix::fs::ioctl_getflags(handle.file()) {
            Ok(f) => f.bits(),
            Err(
                rustix::io::Errno::NOTTY | rustix::io::Errno::NOTSUP | rustix::io::Errno::INVAL,
            ) => 0,
            Err(e) => return Err(e.into()),
        };
        if inode.kind == FileType::RegularFile {
            let st = Self::stat(&inode)?;
            if matches!(
                self.verity_state(&inode, &st, false),
                VerityState::Verity(_)
            ) {
                flags |= FS_VERITY_FL;
            }
        }
        Ok(flags)
    }

    /// `FS_IOC_SETFLAGS`: passed to the backing file; the verity flag cannot be set
    /// or cleared this way.
    pub fn set_flags(&self, fh: u64, flags: u32) -> Result<()> {
        self.check_writable()?;
        let handle = self.handles.get(fh)?;
        rustix::fs::ioctl_setflags(
            handle.file(),
            IFlags::from_bits_retain(flags & !FS_VERITY_FL),
        )?;
        Ok(())
    }

    /// Whether `caller` may write `inode` (mode bits and POSIX ACL).
    fn may_write(&self, inode: &InodeRef, st: &Stat, caller: Caller) -> bool {
        let acl = match rustix::fs::getxattr_query(inode.proc_path().as_str(), ACL_ACCESS_XATTR) {
            Ok(n) => {
                let mut buf = vec![0u8; n];
                rustix::fs::getxattr(inode.proc_path().as_str(), ACL_ACCESS_XATTR, &mut buf[..])
                    .ok()
                    .map(|m| {
                        buf.truncate(m);
                        buf
                    })
            }
            Err(_) => None,
        };
        may_write(st, acl.as_deref(), caller, &groups_of(caller.pid))
    }

    /// `FS_IOC_FSGETXATTR`: the backing file's `struct fsxattr` (the kernel
    /// reads it before every attribute change, `chattr` included).
    pub fn get_fsxattr(&self, fh: u64) -> Result<[u8; crate::sys::FSXATTR_SIZE]> {
        let handle = self.handles.get(fh)?;
        match crate::sys::fs_get_xattr(handle.file()) {
            Ok(attr) => Ok(attr),
            // A backing filesystem without the ioctl has no attributes to show.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL)
                ) =>
            {
                Ok([0; crate::sys::FSXATTR_SIZE])
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `FS_IOC_FSSETXATTR`: passed to the backing file (the kernel checked the
    /// caller's right to change each attribute before forwarding it).
    pub fn set_fsxattr(&self, fh: u64, attr: &[u8; crate::sys::FSXATTR_SIZE]) -> Result<()> {
        self.check_writable()?;
        let handle = self.handles.get(fh)?;
        Ok(crate::sys::fs_set_xattr(handle.file(), attr)?)
    }

    /// `FS_IOC_ENABLE_VERITY` on the file open as `fh`: the kernel's checks, in
    /// the kernel's order (fs/verity/enable.c) and with its errors, then the
    /// same crash-safe enable as the offline command. Blocks while hashing;
    /// callers run it off the request threads. Stops, leaving the file plain,
    /// when the calling process is being killed.
    pub fn enable_verity(
        &self,
        ino: u64,
        fh: u64,
        req: EnableRequest,
        caller: Caller,
    ) -> Result<()> {
        let inode = self.inode(ino)?;
        let handle = self.handles.get(fh)?;
        let st = Self::stat(&inode)?;
        let mount = self.read_only_now();
        let iflags = match rustix::fs::ioctl_getflags(handle.file()) {
            Ok(f) => f.bits(),
            Err(_) => 0,
        };
        // inode_permission(MAY_WRITE): a read-only superblock, an immutable
        // file, then the mode bits and ACL.
        let kind = inode.kind;
        if mount.super_read_only
            && matches!(
                kind,
                FileType::RegularFile | FileType::Directory | FileType::Symlink
            )
        {
            return Err(Error::ReadOnly);
        }
        if iflags & FS_IMMUTABLE_FL != 0 {
            return Err(Error::NotPermitted("the file is immutable".into()));
        }
        if !self.may_write(&inode, &st, caller) {
            return Err(Error::AccessDenied(
                "enabling verity needs write permission on the file".into(),
            ));
        }
        if let Handle::File(f) = &*handle {
            if !f.readable {
                return Err(Error::NotReadable);
            }
        }
        if iflags & FS_APPEND_FL != 0 {
            return Err(Error::NotPermitted("the file is append-only".into()));
        }
        match kind {
            FileType::RegularFile => {}
            FileType::Directory => return Err(Error::IsDirectory),
            _ => return Err(Error::InvalidArgument("not a regular file".into())),
        }
        let Handle::File(file) = &*handle else {
            return Err(Error::IsDirectory);
        };
        if mount.read_only {
            return Err(Error::ReadOnly);
        }
        self.check_writable()?;
        let already = !matches!(
            self.verity_state(&inode, &st, true),
            VerityState::Plain | VerityState::Unknown
        );
        let params = {
            let mut v = inode.verity.lock().unwrap_or_else(|e| e.into_inner());
            if v.writers > 0 {
                return Err(Error::TextBusy);
            }
            let params = req.params()?;
            if already {
                return Err(Error::AlreadyVerity);
            }
            if v.enabling {
                return Err(Error::Busy);
            }
            v.enabling = true;
            params
        };
        let _enabling = Enabling(&inode);
        self.check_enable_policy(req.signature.as_deref())?;
        let options = BuildOptions {
            threads: self.options.build_threads,
        };
        let sign = |d: &crate::format::Descriptor| {
            self.check_enable_signature(d, req.signature.as_deref())?;
            Ok(req.signature.clone())
        };
        let interrupted = || being_killed(caller.pid);
        let result = enable_file(
            &file.file,
            self.store.as_deref(),
            &params,
            options,
            &sign,
            &interrupted,
        );
        match result {
            Ok(meta) => {
                Stats::add(&self.stats.trees_built, 1);
                Stats::add(&self.stats.verity_enabled, 1);
                tracing::info!(path = %self.describe(&inode), digest = %meta.descriptor.digest(), "verity enabled");
                let st = Self::stat(&inode)?;
                self.verity_state(&inode, &st, true);
                Ok(())
            }
            Err(e) => Err(self.enable_error(&inode, e)),
        }
    }

    fn enable_error(&self, inode: &InodeRef, e: EnableError) -> Error {
        match e {
            EnableError::AlreadyVerity => Error::AlreadyVerity,
            EnableError::NotRegular => Error::InvalidArgument("not a regular file".into()),
            EnableError::Changed => Error::Busy,
            EnableError::Interrupted => {
                tracing::info!(path = %self.describe(inode), "enable stopped: the caller is being killed; the file stays plain");
                Error::Interrupted
            }
            EnableError::NoUserXattrs(_) => Error::from_errno(libc::EOPNOTSUPP),
            EnableError::Rejected(e) => e,
            // The kernel's answer for a file its tree cannot cover.
            EnableError::Tree(TreeError::Build(BuildError::Format(
                FormatError::TooManyLevels(_) | FormatError::FileTooLarge(_),
            ))) => Error::from_errno(libc::EFBIG),
            // Reading the data or writing the tree failed: the backing
            // filesystem's errno (ENOSPC, EDQUOT, EIO...) passes through.
            EnableError::Tree(
                TreeError::Io { source, .. } | TreeError::Build(BuildError::Io(source)),
            ) => Error::Backing(source),
            EnableError::Tree(TreeError::Build(BuildError::Shrank { .. })) => Error::Busy,
            EnableError::Tree(e) => Error::VerityDamaged {
                path: self.describe(inode),
                reason: e.to_string(),
            },
            EnableError::Io { source, .. } => Error::Backing(source),
        }
    }
}
