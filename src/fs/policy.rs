//! Mount policy: what may be opened (require-verity, require-signatures) and
//! what a verification failure does (`--on-corruption`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::files::ReadData;
use super::handle::FileHandle;
use super::inode::InodeRef;
use super::verity::VerityFile;
use super::{Stats, VerityFs};
use crate::error::{Error, Result};
use crate::merkle::{Verifier, read_full};
use crate::signature::{SignatureError, TrustedKeys, parse_signature};

/// What a block that fails verification does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnCorruption {
    /// The read fails with EIO (the kernel's behaviour).
    #[default]
    Eio,
    /// The data is served anyway and the failure logged: for rolling verity out.
    Log,
    /// Fail-stop: the mount stops serving; every later access fails with EIO.
    Abort,
}

impl std::str::FromStr for OnCorruption {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "eio" => Ok(Self::Eio),
            "log" => Ok(Self::Log),
            "abort" => Ok(Self::Abort),
            other => Err(format!("'{other}' is not one of eio, log, abort")),
        }
    }
}

/// The policy of a mount.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Regular files without verity cannot be opened for reading (EACCES).
    pub require_verity: bool,
    /// Verity files need a signature valid under a trusted key to be opened
    /// (EACCES), and enabling needs a signature (EPERM).
    pub require_signatures: bool,
    /// Keys signatures are checked against.
    pub trusted_keys: Arc<TrustedKeys>,
    /// Reaction to a verification failure.
    pub on_corruption: OnCorruption,
}

impl VerityFs {
    /// Checks that a verity file may be opened: under --require-signatures its
    /// signature must verify under a trusted key (checked once per digest).
    pub(super) fn check_open_policy(&self, inode: &InodeRef, vf: &VerityFile) -> Result<()> {
        self.check_not_aborted()?;
        if !self.options.policy.require_signatures {
            return Ok(());
        }
        let verdict = vf.signature_verdict.get_or_init(|| {
            let d = &vf.metadata.descriptor;
            match &vf.metadata.signature {
                None => Err("no signature".to_owned()),
                Some(sig) => self
                    .options
                    .policy
                    .trusted_keys
                    .verify(d.algorithm(), &vf.digest, sig)
                    .map(|k| k.to_string())
                    .map_err(|e| e.to_string()),
            }
        });
        match verdict {
            Ok(_) => Ok(()),
            Err(reason) => {
                Stats::add(&self.stats.signature_rejections, 1);
                Stats::add(&self.stats.policy_denials, 1);
                let path = self.describe(inode);
                tracing::warn!(
                    path = %path,
                    digest = %format!("{}:{}", vf.metadata.descriptor.algorithm(), vf.digest),
                    reason = %reason,
                    "open denied by --require-signatures"
                );
                Err(Error::AccessDenied(format!("{path}: {reason}")))
            }
        }
    }

    /// Checks that a non-verity regular file may be opened for reading.
    pub(super) fn check_plain_read_policy(&self, inode: &InodeRef) -> Result<()> {
        self.check_not_aborted()?;
        if self.options.policy.require_verity {
            Stats::add(&self.stats.policy_denials, 1);
            let path = self.describe(inode);
            tracing::warn!(path = %path, reason = "not a verity file", "open denied by --require-verity");
            return Err(Error::AccessDenied(format!(
                "{path}: not a verity file (--require-verity)"
            )));
        }
        Ok(())
    }

    /// Checks an enable request before any hashing: a signature must be
    /// well-formed (EBADMSG), and present under --require-signatures (EPERM, the
    /// kernel's require_signatures behaviour).
    pub(super) fn check_enable_policy(&self, signature: Option<&[u8]>) -> Result<()> {
        match signature {
            Some(sig) => parse_signature(sig).map(drop).map_err(Error::from),
            None if self.options.policy.require_signatures => {
                Stats::add(&self.stats.policy_denials, 1);
                Err(Error::NotPermitted(
                    "--require-signatures: rejecting unsigned file".into(),
                ))
            }
            None => Ok(()),
        }
    }

    /// Checks the signature of a freshly built descriptor before it is
    /// committed: it must verify under a trusted key (EKEYREJECTED).
    pub(super) fn check_enable_signature(
        &self,
        descriptor: &crate::format::Descriptor,
        signature: Option<&[u8]>,
    ) -> Result<()> {
        let Some(sig) = signature else { return Ok(()) };
        let keys = &self.options.policy.trusted_keys;
        match keys.verify(descriptor.algorithm(), &descriptor.digest(), sig) {
            Ok(_) => Ok(()),
            Err(e) => {
                if !matches!(e, SignatureError::Malformed(_)) {
                    Stats::add(&self.stats.signature_rejections, 1);
                }
                Err(e.into())
            }
        }
    }

    /// Fails once the mount has stopped serving (`--on-corruption=abort`).
    pub(super) fn check_not_aborted(&self) -> Result<()> {
        if self.aborted.load(Ordering::Relaxed) {
            Err(Error::Aborted)
        } else {
            Ok(())
        }
    }

    /// Applies `--on-corruption` to a failed verified read.
    pub(super) fn on_corruption(
        &self,
        err: Error,
        f: &FileHandle,
        verifier: &Verifier,
        offset: u64,
        size: u32,
    ) -> Result<ReadData> {
        match self.options.policy.on_corruption {
            OnCorruption::Eio => Err(err),
            OnCorruption::Abort => {
                if !self.aborted.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "--on-corruption=abort: the mount stops serving: every lookup, stat, listing, open and read now fails with EIO (only the mount root and its status stay reachable)"
                    );
                }
                Err(err)
            }
            OnCorruption::Log => {
                // Serve the backing bytes as they are, within the recorded size.
                let size_limit = verifier.descriptor().data_size();
                let end = offset.saturating_add(size.into()).min(size_limit);
                let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
                let n = read_full(&f.file, &mut buf, offset)?;
                buf.truncate(n);
                Ok(ReadData::Plain(buf))
            }
        }
    }
}
