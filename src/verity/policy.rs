//! Mount policy: what may be opened (`--require-verity`,
//! `--require-signatures`), what an enable needs, and what a verification
//! failure does (`--on-corruption`). Decisions only; the caller logs, counts
//! and answers.

use std::sync::Arc;

use super::file::VerityFile;
use crate::format::Descriptor;
use crate::signature::{SignatureError, SignerName, TrustedKeys, parse_signature};

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

impl std::fmt::Display for OnCorruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Eio => "eio",
            Self::Log => "log",
            Self::Abort => "abort",
        })
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
    /// Keys and certificates signatures are checked against.
    pub trusted_keys: Arc<TrustedKeys>,
    /// Reaction to a verification failure.
    pub on_corruption: OnCorruption,
}

/// Why policy refuses an open (EACCES).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PolicyDenial {
    /// `--require-verity` and the file is not a verity file.
    #[error("not a verity file (--require-verity)")]
    NotVerity,
    /// `--require-signatures` and the signature is missing or not trusted.
    #[error("{0}")]
    Signature(SignatureError),
}

/// Why policy refuses an enable request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnableDenial {
    /// `--require-signatures` and no signature was given (EPERM, the kernel's
    /// `require_signatures` behaviour).
    #[error("--require-signatures: rejecting unsigned file")]
    Unsigned,
    /// The signature is malformed, untrusted, or not for this file.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl Policy {
    /// May a verity file be opened? Under `--require-signatures` its
    /// signature must verify under a trusted key (checked once per file).
    pub(crate) fn check_open(&self, vf: &VerityFile) -> Result<(), PolicyDenial> {
        if !self.require_signatures {
            return Ok(());
        }
        match vf.signature_verdict(&self.trusted_keys) {
            Ok(_) => Ok(()),
            Err(e) => Err(PolicyDenial::Signature(e.clone())),
        }
    }

    /// May a plain regular file be opened for reading?
    pub(crate) fn check_plain_open(&self) -> Result<(), PolicyDenial> {
        if self.require_verity {
            Err(PolicyDenial::NotVerity)
        } else {
            Ok(())
        }
    }

    /// Checks an enable request before any hashing: a signature must be
    /// well-formed, and present under `--require-signatures`.
    pub(crate) fn check_enable_request(
        &self, signature: Option<&[u8]>,
    ) -> Result<(), EnableDenial> {
        match signature {
            Some(sig) => Ok(parse_signature(sig).map(drop)?),
            None if self.require_signatures => Err(EnableDenial::Unsigned),
            None => Ok(()),
        }
    }

    /// Checks the signature given for a freshly built descriptor before the
    /// file becomes verity: it must verify under a trusted key.
    pub(crate) fn check_enable_signature(
        &self, descriptor: &Descriptor, signature: Option<&[u8]>,
    ) -> Result<Option<SignerName>, SignatureError> {
        let Some(sig) = signature else {
            return Ok(None);
        };
        self.trusted_keys
            .verify(descriptor.algorithm(), &descriptor.digest(), sig)
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{HashValue, TreeParams};
    use crate::signature::PrivateKey;
    use crate::store::VerityMetadata;

    fn signed(key: Option<&PrivateKey>) -> VerityFile {
        let descriptor = Descriptor::new(TreeParams::default(), 3, HashValue::from_slice(&[4; 32]));
        let signature = key.map(|k| {
            k.sign(descriptor.algorithm(), &descriptor.digest())
                .to_vec()
        });
        VerityFile::new(VerityMetadata {
            descriptor,
            signature,
        })
    }

    fn policy(require_signatures: bool, trusted: Vec<crate::signature::PublicKey>) -> Policy {
        Policy {
            require_signatures,
            trusted_keys: Arc::new(TrustedKeys::from_keys(trusted)),
            ..Policy::default()
        }
    }

    #[test]
    fn opens_under_require_signatures() {
        let key = PrivateKey::generate().expect("key");
        let other = PrivateKey::generate().expect("key");
        let p = policy(true, vec![key.public()]);
        assert_eq!(p.check_open(&signed(Some(&key))), Ok(()));
        assert!(matches!(
            p.check_open(&signed(Some(&other))),
            Err(PolicyDenial::Signature(SignatureError::Rejected(_)))
        ));
        assert_eq!(
            p.check_open(&signed(None)),
            Err(PolicyDenial::Signature(SignatureError::Unsigned))
        );
        // Without the option, anything verity opens.
        assert_eq!(policy(false, vec![]).check_open(&signed(None)), Ok(()));
    }

    #[test]
    fn require_verity_refuses_plain_files() {
        let p = Policy {
            require_verity: true,
            ..Policy::default()
        };
        assert_eq!(p.check_plain_open(), Err(PolicyDenial::NotVerity));
        assert_eq!(Policy::default().check_plain_open(), Ok(()));
    }

    #[test]
    fn enable_requests() {
        let key = PrivateKey::generate().expect("key");
        let strict = policy(true, vec![key.public()]);
        assert_eq!(
            strict.check_enable_request(None),
            Err(EnableDenial::Unsigned)
        );
        assert!(matches!(
            strict.check_enable_request(Some(b"garbage")),
            Err(EnableDenial::Signature(SignatureError::Malformed(_)))
        ));
        let vf = signed(Some(&key));
        assert_eq!(strict.check_enable_request(vf.signature()), Ok(()));
        assert!(
            strict
                .check_enable_signature(vf.descriptor().expect("recorded"), vf.signature())
                .expect("verifies")
                .is_some()
        );
        let other = Descriptor::new(TreeParams::default(), 4, HashValue::from_slice(&[4; 32]));
        assert!(matches!(
            strict.check_enable_signature(&other, vf.signature()),
            Err(SignatureError::Rejected(_))
        ));
        assert_eq!(policy(false, vec![]).check_enable_request(None), Ok(()));
    }

    #[test]
    fn on_corruption_spellings_round_trip() {
        for mode in [OnCorruption::Eio, OnCorruption::Log, OnCorruption::Abort] {
            assert_eq!(mode.to_string().parse::<OnCorruption>(), Ok(mode));
        }
        assert!("panic".parse::<OnCorruption>().is_err());
    }
}
