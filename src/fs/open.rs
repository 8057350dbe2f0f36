//! Opening and closing regular files. Verity files open read-only (write
//! access, `O_TRUNC` and `O_APPEND`: EPERM, as with the kernel), after the
//! mount's policy agreed, with the verifier their handles share; damaged
//! ones fail with EIO. Plain files open as they are; a handle opened for
//! writing registers as a writer, which excludes an enable.

use std::ffi::OsStr;
use std::fs::File;
use std::sync::Arc;

use rustix::fs::OFlags;

use super::handles::{FileHandle, Handle, HandleKind, Opened};
use super::{Stats, VerityFs};
use crate::error::{Error, Result};
use crate::merkle::Verifier;
use crate::namespace::{Attr, Caller};
use crate::verity::{NodeVerity, PolicyDenial, VerityFile, VerityState};

pub(super) fn is_read_open(flags: OFlags) -> bool {
    let acc = flags & OFlags::RWMODE;
    acc == OFlags::RDONLY || acc == OFlags::RDWR
}

pub(super) fn is_write_open(flags: OFlags) -> bool {
    let acc = flags & OFlags::RWMODE;
    acc == OFlags::WRONLY || acc == OFlags::RDWR || flags.intersects(OFlags::TRUNC | OFlags::APPEND)
}

impl VerityFs {
    /// Opens regular file `id` with `flags` (`open(2)` flags).
    pub(crate) fn open(&self, id: u64, flags: i32, _caller: Caller) -> Result<Opened> {
        self.open_flags(id, OFlags::from_bits_retain(flags as u32))
    }

    fn open_flags(&self, id: u64, flags: OFlags) -> Result<Opened> {
        let writing = is_write_open(flags);
        if writing {
            self.check_writable()?;
        }
        let attr = self.ns.getattr(id)?;
        let node = self.ns.verity(id)?;
        match self.verity_state(id, &attr, false)? {
            VerityState::Damaged(damage) => {
                let err = Error::VerityDamaged {
                    path: self.ns.describe(id),
                    reason: damage.to_string(),
                };
                self.report_corruption(&err);
                Err(err)
            }
            VerityState::Verity(vf) => {
                if writing {
                    return Err(Error::VerityImmutable);
                }
                self.check_not_aborted()?;
                self.check_open_policy(id, &vf)?;
                let file = self.ns.open(id, flags & !OFlags::RWMODE)?;
                let verifier = self.verifier(id, &vf, &file)?;
                let keep_cache = node.open_verity();
                let kind = HandleKind::Verity(verifier);
                Ok(self.new_handle(id, node, file, kind, keep_cache, true))
            }
            VerityState::Plain => {
                self.check_not_aborted()?;
                if !writing {
                    self.check_plain_policy(id)?;
                }
                let writer = match writing {
                    true => Some(node.begin_write()?),
                    false => None,
                };
                node.open_plain();
                let file = self.ns.open(id, flags)?;
                let kind = HandleKind::Plain { writer };
                Ok(self.new_handle(id, node, file, kind, false, is_read_open(flags)))
            }
        }
    }

    /// Whether opening `id` means rebuilding its Merkle tree from the data (a
    /// verity file with no live verifier whose tree is not in the store).
    pub(super) fn open_must_rebuild(&self, id: u64) -> bool {
        let Ok(attr) = self.ns.getattr(id) else {
            return false;
        };
        match self.verity_state(id, &attr, false) {
            Ok(VerityState::Verity(vf)) => !vf.has_verifier() && self.trees.must_rebuild(&vf),
            _ => false,
        }
    }

    /// The verifier the open handles of `vf` share (made now if none is
    /// alive: its tree found, or rebuilt from `data`, while the data still
    /// matches).
    pub(super) fn verifier(&self, id: u64, vf: &VerityFile, data: &File) -> Result<Arc<Verifier>> {
        let reopen = self.ns.data_opener(id)?;
        vf.verifier(|| self.trees.verifier(vf, data, reopen))
            .map_err(|e| {
                let err = Error::VerityDamaged {
                    path: self.ns.describe(id),
                    reason: e.to_string(),
                };
                self.report_corruption(&err);
                err
            })
    }

    /// Under --require-signatures, a verity file's signature must verify.
    fn check_open_policy(&self, id: u64, vf: &VerityFile) -> Result<()> {
        self.options.policy.check_open(vf).map_err(|denial| {
            Stats::add(&self.stats.signature_rejections, 1);
            self.deny(id, denial, Some(vf))
        })
    }

    /// Under --require-verity, plain files cannot be opened for reading.
    fn check_plain_policy(&self, id: u64) -> Result<()> {
        self.options
            .policy
            .check_plain_open()
            .map_err(|denial| self.deny(id, denial, None))
    }

    fn deny(&self, id: u64, denial: PolicyDenial, vf: Option<&VerityFile>) -> Error {
        Stats::add(&self.stats.policy_denials, 1);
        let path = self.ns.describe(id);
        let digest = vf.map(|v| format!("{}:{}", v.algorithm(), v.digest()));
        tracing::warn!(path = %path, digest = ?digest, reason = %denial, "open denied by policy");
        Error::Denied { path, denial }
    }

    /// Creates and opens a regular file (or opens it if it exists and
    /// `O_EXCL` is not set).
    pub(crate) fn create(
        &self, parent: u64, name: &OsStr, mode: u32, flags: i32, caller: Caller,
    ) -> Result<(Attr, Opened)> {
        self.check_writable()?;
        let flags = OFlags::from_bits_retain(flags as u32);
        match self.ns.create(parent, name, mode, flags, caller) {
            Ok((attr, file)) => {
                let node = self.ns.verity(attr.ino)?;
                let writer = match is_write_open(flags) {
                    true => Some(node.begin_write()?),
                    false => None,
                };
                node.open_plain();
                let kind = HandleKind::Plain { writer };
                let opened =
                    self.new_handle(attr.ino, node, file, kind, false, is_read_open(flags));
                Ok((attr, opened))
            }
            Err(Error::Backing(e))
                if e.raw_os_error() == Some(libc::EEXIST) && !flags.contains(OFlags::EXCL) =>
            {
                // It exists: an ordinary open, with every verity check.
                let attr = self.lookup(parent, name)?;
                match self.open_flags(attr.ino, flags) {
                    Ok(opened) => Ok((attr, opened)),
                    Err(e) => {
                        self.forget(attr.ino, 1);
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Registers an open file and counts the open.
    fn new_handle(
        &self, id: u64, verity: Arc<NodeVerity>, file: File, kind: HandleKind, keep_cache: bool,
        readable: bool,
    ) -> Opened {
        let is_verity = matches!(kind, HandleKind::Verity(_));
        let counter = if is_verity {
            &self.stats.files_opened_verity
        } else {
            &self.stats.files_opened_plain
        };
        Stats::add(counter, 1);
        let handle = FileHandle {
            id,
            verity,
            file,
            kind,
            readable,
            late_verifier: Default::default(),
            read_ahead: Default::default(),
        };
        let flush_on_close = handle.writable();
        let fh = self.handles.insert(Handle::File(handle));
        Opened {
            fh,
            keep_cache,
            verity: is_verity,
            flush_on_close,
        }
    }

    /// Called on every close of a descriptor: lets the backing filesystem see it.
    pub(crate) fn flush(&self, fh: u64) -> Result<()> {
        let handle = self.handles.get(fh)?;
        let f = handle.as_file()?;
        if f.writable() {
            drop(rustix::io::dup(&f.file)?);
        }
        Ok(())
    }

    /// Closes a handle (a writer's registration ends with it).
    pub(crate) fn release(&self, fh: u64) -> Result<()> {
        self.handles.remove(fh).map(drop)
    }

    /// fsync / fdatasync.
    pub(crate) fn fsync(&self, fh: u64, datasync: bool) -> Result<()> {
        let handle = self.handles.get(fh)?;
        let file = handle.file()?;
        if datasync {
            rustix::fs::fdatasync(file)?
        } else {
            rustix::fs::fsync(file)?
        }
        Ok(())
    }
}
