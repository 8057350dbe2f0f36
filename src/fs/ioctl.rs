//! The kernel's fs-verity ioctls through the mount: enable, measure, and the
//! flag ioctls. The kernel makes none of fs-verity's checks for FUSE, so the
//! enable makes them here, in the kernel's order and with its errors
//! (`verity::checks`, then `NodeVerity::begin_enable`), then runs the same
//! crash-safe enable as the offline command.

use rustix::fs::{FileType, IFlags};

use super::{Stats, VerityFs};
use crate::error::{Error, Result};
use crate::format::{HashAlgorithm, HashValue};
use crate::ioctl::{
    self, EnableRequest, FS_APPEND_FL, FS_IMMUTABLE_FL, FS_VERITY_FL, IoctlRequest,
};
use crate::namespace::Caller;
use crate::store::enable_file;
use crate::sys::FSXATTR_SIZE;
use crate::verity::checks::FileKind;
use crate::verity::{EnableFacts, VerityState, check_enable};

impl VerityFs {
    /// Answers an ioctl other than the enable (which runs on the enable pool:
    /// [`VerityFs::enable_verity_later`]) with the bytes of its reply.
    pub(crate) fn ioctl(&self, id: u64, fh: u64, request: IoctlRequest) -> Result<Vec<u8>> {
        match request {
            IoctlRequest::Measure { room, out_size } => {
                let (alg, digest) = self.measure(id)?;
                ioctl::encode_measure(room, out_size, alg, digest.as_bytes())
            }
            IoctlRequest::GetFlags => Ok(self.get_flags(id, fh)?.to_le_bytes().to_vec()),
            IoctlRequest::SetFlags(flags) => self.set_flags(fh, flags).map(|()| Vec::new()),
            IoctlRequest::FsGetXattr { out_size } => {
                ioctl::fit(self.get_fsxattr(fh)?.to_vec(), out_size)
            }
            IoctlRequest::FsSetXattr(attr) => self.set_fsxattr(fh, &attr).map(|()| Vec::new()),
            IoctlRequest::Enable(_) => Err(Error::NotTty),
        }
    }

    /// `FS_IOC_MEASURE_VERITY`: the file digest; ENODATA for non-verity files.
    pub(crate) fn measure(&self, id: u64) -> Result<(HashAlgorithm, HashValue)> {
        let attr = self.ns.getattr(id)?;
        match self.verity_state(id, &attr, true)? {
            VerityState::Verity(v) => Ok((v.algorithm(), *v.digest())),
            VerityState::Damaged(damage) => Err(Error::VerityDamaged {
                path: self.ns.describe(id),
                reason: damage.to_string(),
            }),
            VerityState::Plain => Err(Error::NotVerity),
        }
    }

    /// `FS_IOC_GETFLAGS`: the backing file's flags plus `FS_VERITY_FL` on
    /// verity files.
    pub(crate) fn get_flags(&self, id: u64, fh: u64) -> Result<u32> {
        let handle = self.handles.get(fh)?;
        let mut flags = match handle.file().map(rustix::fs::ioctl_getflags) {
            Ok(Ok(f)) => f.bits(),
            Ok(Err(
                rustix::io::Errno::NOTTY | rustix::io::Errno::NOTSUP | rustix::io::Errno::INVAL,
            ))
            | Err(_) => 0,
            Ok(Err(e)) => return Err(e.into()),
        };
        let attr = self.ns.getattr(id)?;
        if attr.is_regular()
            && matches!(self.verity_state(id, &attr, false)?, VerityState::Verity(_))
        {
            flags |= FS_VERITY_FL;
        }
        Ok(flags)
    }

    /// `FS_IOC_SETFLAGS`: passed to the backing file; the verity flag cannot
    /// be set or cleared this way.
    pub(crate) fn set_flags(&self, fh: u64, flags: u32) -> Result<()> {
        self.check_writable()?;
        let handle = self.handles.get(fh)?;
        rustix::fs::ioctl_setflags(
            handle.file()?,
            IFlags::from_bits_retain(flags & !FS_VERITY_FL),
        )?;
        Ok(())
    }

    /// `FS_IOC_FSGETXATTR`: the backing file's `struct fsxattr` (the kernel
    /// reads it before every attribute change, `chattr` included).
    pub(crate) fn get_fsxattr(&self, fh: u64) -> Result<[u8; FSXATTR_SIZE]> {
        let handle = self.handles.get(fh)?;
        match crate::sys::fs_get_xattr(handle.file()?) {
            Ok(attr) => Ok(attr),
            // A backing filesystem without the ioctl has no attributes to show.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL)
                ) =>
            {
                Ok([0; FSXATTR_SIZE])
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `FS_IOC_FSSETXATTR`: passed to the backing file (the kernel checked the
    /// caller's right to change each attribute before forwarding it).
    pub(crate) fn set_fsxattr(&self, fh: u64, attr: &[u8; FSXATTR_SIZE]) -> Result<()> {
        self.check_writable()?;
        let handle = self.handles.get(fh)?;
        Ok(crate::sys::fs_set_xattr(handle.file()?, attr)?)
    }

    /// `FS_IOC_ENABLE_VERITY` on the file open as `fh`. Blocks while hashing
    /// (see [`VerityFs::enable_verity_later`]); stops, leaving the file plain,
    /// when the calling process is being killed.
    pub(crate) fn enable_verity(
        &self, id: u64, fh: u64, req: EnableRequest, caller: Caller,
    ) -> Result<()> {
        let handle = self.handles.get(fh)?;
        let attr = self.ns.getattr(id)?;
        let mount = self.mount_flags_now();
        let iflags = handle
            .file()
            .ok()
            .and_then(|f| rustix::fs::ioctl_getflags(f).ok())
            .map_or(0, |f| f.bits());
        let kind = match attr.kind() {
            FileType::RegularFile => FileKind::Regular,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            _ => FileKind::Other,
        };
        check_enable(&EnableFacts {
            super_read_only: mount.super_read_only,
            mount_read_only: mount.read_only,
            immutable: iflags & FS_IMMUTABLE_FL != 0,
            append_only: iflags & FS_APPEND_FL != 0,
            may_write: caller.uid == 0 || self.ns.may_write(id, caller)?,
            readable: handle.as_file().map_or(true, |f| f.readable),
            kind,
        })?;
        let file = handle.as_file()?;
        self.check_writable()?;
        let already = !matches!(self.verity_state(id, &attr, true)?, VerityState::Plain);
        let (_enabling, params) = file.verity.begin_enable(already, || req.params())?;
        self.options
            .policy
            .check_enable_request(req.signature.as_deref())
            .inspect_err(|_| Stats::add(&self.stats.policy_denials, 1))?;
        let sign = |d: &crate::format::Descriptor| {
            self.options
                .policy
                .check_enable_signature(d, req.signature.as_deref())
                .inspect_err(|e| {
                    if !matches!(e, crate::signature::SignatureError::Malformed(_)) {
                        Stats::add(&self.stats.signature_rejections, 1);
                    }
                })
                .map(|_| req.signature.clone())
        };
        let interrupted = || caller.being_killed();
        let result = enable_file(
            &file.file,
            self.trees.store().map(|s| &**s),
            &params,
            crate::merkle::BuildOptions {
                threads: self.options.build_threads,
            },
            &sign,
            &interrupted,
            &|_| {},
        );
        match result {
            Ok(meta) => {
                Stats::add(&self.stats.trees_built, 1);
                Stats::add(&self.stats.verity_enabled, 1);
                tracing::info!(path = %self.ns.describe(id), digest = %meta.descriptor.digest(), "verity enabled");
                let attr = self.ns.getattr(id)?;
                self.verity_state(id, &attr, true)?;
                Ok(())
            }
            Err(e) => {
                let err = Error::from_enable(e, || self.ns.describe(id));
                if matches!(err, Error::Interrupted) {
                    tracing::info!(path = %self.ns.describe(id), "enable stopped: the caller is being killed; the file stays plain");
                }
                Err(err)
            }
        }
    }
}
