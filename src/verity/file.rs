//! A verity file as a mount knows it: its metadata (or, for a file of an
//! image, only the digest the image records), digest, the verdict on its
//! signature (computed once), and the verifier its open handles share.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::format::{Descriptor, HashAlgorithm, HashValue};
use crate::merkle::Verifier;
use crate::signature::{SignatureError, SignerName, TrustedKeys};
use crate::store::VerityMetadata;

/// What is known of a verity file before it is opened.
#[derive(Debug)]
pub(crate) enum Known {
    /// Its descriptor (and signature), recorded with the file.
    Metadata(VerityMetadata),
    /// Only its digest and size (a file of a verified image): the descriptor
    /// is found when the file is opened, from its tree or its data, and must
    /// hash to this digest.
    Digest {
        /// Hash algorithm of the digest.
        algorithm: HashAlgorithm,
        /// Size the image records.
        size: u64,
    },
}

/// One verity file (one inode with one digest).
#[derive(Debug)]
pub(crate) struct VerityFile {
    known: Known,
    digest: HashValue,
    /// The verifier, while some handle holds it: a verifier holds its tree
    /// open, and a mount may know far more verity files than it may hold
    /// descriptors, so it lives only as long as the file is open. (Verified
    /// tree blocks stay in the mount's block cache, keyed by digest.)
    verifier: Mutex<Weak<Verifier>>,
    verdict: OnceLock<Result<SignerName, SignatureError>>,
}

impl VerityFile {
    pub(crate) fn new(metadata: VerityMetadata) -> Self {
        let digest = metadata.descriptor.digest();
        Self::with(Known::Metadata(metadata), digest)
    }

    /// A file known by its digest only.
    pub(crate) fn expected(algorithm: HashAlgorithm, digest: HashValue, size: u64) -> Self {
        Self::with(Known::Digest { algorithm, size }, digest)
    }

    fn with(known: Known, digest: HashValue) -> Self {
        Self {
            known,
            digest,
            verifier: Mutex::new(Weak::new()),
            verdict: OnceLock::new(),
        }
    }

    /// The descriptor, when it is recorded with the file.
    pub(crate) fn descriptor(&self) -> Option<&Descriptor> {
        match &self.known {
            Known::Metadata(m) => Some(&m.descriptor),
            Known::Digest { .. } => None,
        }
    }

    pub(crate) fn algorithm(&self) -> HashAlgorithm {
        match &self.known {
            Known::Metadata(m) => m.descriptor.algorithm(),
            Known::Digest { algorithm, .. } => *algorithm,
        }
    }

    pub(crate) fn digest(&self) -> &HashValue {
        &self.digest
    }

    pub(crate) fn signature(&self) -> Option<&[u8]> {
        match &self.known {
            Known::Metadata(m) => m.signature.as_deref(),
            Known::Digest { .. } => None,
        }
    }

    /// The size the descriptor (or image) records: what `stat` reports.
    pub(crate) fn data_size(&self) -> u64 {
        match &self.known {
            Known::Metadata(m) => m.descriptor.data_size(),
            Known::Digest { size, .. } => *size,
        }
    }

    /// The verifier open handles share, made with `make` when none is alive.
    pub(crate) fn verifier<E>(
        &self, make: impl FnOnce() -> Result<Verifier, E>,
    ) -> Result<Arc<Verifier>, E> {
        let mut slot = self.verifier.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = slot.upgrade() {
            return Ok(v);
        }
        let v = Arc::new(make()?);
        *slot = Arc::downgrade(&v);
        Ok(v)
    }

    /// Whether handles share a live verifier now.
    pub(crate) fn has_verifier(&self) -> bool {
        self.verifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .strong_count()
            > 0
    }

    /// Whether the signature verifies under `keys` (once per file: the keys do
    /// not change during a mount).
    pub(crate) fn signature_verdict(
        &self, keys: &TrustedKeys,
    ) -> &Result<SignerName, SignatureError> {
        self.verdict.get_or_init(|| match self.signature() {
            None => Err(SignatureError::Unsigned),
            Some(sig) => keys.verify(self.algorithm(), &self.digest, sig),
        })
    }
}
