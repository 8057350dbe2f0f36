//! The kernel's fs-verity ioctls through the mount: enable, measure, flags.
//! The kernel does none of fs-verity's checks for FUSE, so they are made here,
//! in the kernel's order and with its errors.

use rustix::fs::{FileType, IFlags, Stat};

use super::handle::Handle;
use super::inode::{Inode, InodeRef};
use super::verity::VerityState;
use super::{Caller, Stats, VerityFs};
use crate::error::{Error, Result};
use crate::format::{FormatError, HashAlgorithm, HashValue};
use crate::ioctl::{EnableRequest, FS_VERITY_FL};
use crate::merkle::{BuildError, BuildOptions};
use crate::store::{EnableError, TreeError, enable_file};

/// Supplementary groups of a process (from /proc), for permission checks.
fn groups_of(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `caller` may write a file with `st` (root may always).
fn may_write(st: &Stat, caller: Caller) -> bool {
    if caller.uid == 0 {
        return true;
    }
    if st.st_uid == caller.uid {
        return st.st_mode & 0o200 != 0;
    }
    if st.st_gid == caller.gid || groups_of(caller.pid).contains(&st.st_gid) {
        return st.st_mode & 0o020 != 0;
    }
    st.st_mode & 0o002 != 0
}

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
        let file = match &*handle {
            Handle::File(f) => &f.file,
            Handle::Dir(d) => &d.file,
        };
        let mut flags = match rustix::fs::ioctl_getflags(file) {
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
        let file = match &*handle {
            Handle::File(f) => &f.file,
            Handle::Dir(d) => &d.file,
        };
        rustix::fs::ioctl_setflags(file, IFlags::from_bits_retain(flags & !FS_VERITY_FL))?;
        Ok(())
    }

    /// `FS_IOC_ENABLE_VERITY` on the file open as `fh`: the kernel's checks, then
    /// the same crash-safe enable as the offline command. Blocks while hashing;
    /// callers run it off the request threads.
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
        if !may_write(&st, caller) {
            return Err(Error::AccessDenied(
                "enabling verity needs write permission on the file".into(),
            ));
        }
        match inode.kind {
            FileType::RegularFile => {}
            FileType::Directory => return Err(Error::IsDirectory),
            _ => return Err(Error::InvalidArgument("not a regular file".into())),
        }
        let Handle::File(file) = &*handle else {
            return Err(Error::IsDirectory);
        };
        self.check_writable()?;
        if !matches!(
            self.verity_state(&inode, &st, true),
            VerityState::Plain | VerityState::Unknown
        ) {
            return Err(Error::AlreadyVerity);
        }
        {
            let mut v = inode.verity.lock().unwrap_or_else(|e| e.into_inner());
            if v.enabling {
                return Err(Error::Busy);
            }
            if v.writers > 0 {
                return Err(Error::TextBusy);
            }
            v.enabling = true;
        }
        let _enabling = Enabling(&inode);
        self.check_enable_policy(req.signature.as_deref())?;
        let options = BuildOptions {
            threads: self.options.build_threads,
        };
        let sign = |d: &crate::format::Descriptor| {
            self.check_enable_signature(d, req.signature.as_deref())?;
            Ok(req.signature.clone())
        };
        let result = enable_file(
            &file.file,
            self.store.as_deref(),
            &req.params,
            options,
            &sign,
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
            EnableError::NoUserXattrs(_) => Error::from_errno(libc::EOPNOTSUPP),
            EnableError::Rejected(e) => e,
            // The kernel's answer for a file its tree cannot cover.
            EnableError::Tree(TreeError::Build(BuildError::Format(
                FormatError::TooManyLevels(_) | FormatError::FileTooLarge(_),
            ))) => Error::from_errno(libc::EFBIG),
            EnableError::Tree(e) => Error::VerityDamaged {
                path: self.describe(inode),
                reason: e.to_string(),
            },
            EnableError::Io { source, .. } => Error::Backing(source),
        }
    }
}
