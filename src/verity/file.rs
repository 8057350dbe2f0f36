//! A verity file as a mount knows it: its metadata, digest, the verdict on
//! its signature (computed once), and the verifier its open handles share.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::format::{Descriptor, HashValue};
use crate::merkle::Verifier;
use crate::signature::{SignatureError, SignerName, TrustedKeys};
use crate::store::VerityMetadata;

/// One verity file (one inode with one digest).
#[derive(Debug)]
pub(crate) struct VerityFile {
    metadata: VerityMetadata,
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
        Self {
            metadata,
            digest,
            verifier: Mutex::new(Weak::new()),
            verdict: OnceLock::new(),
        }
    }

    pub(crate) fn descriptor(&self) -> &Descriptor {
        &self.metadata.descriptor
    }

    pub(crate) fn digest(&self) -> &HashValue {
        &self.digest
    }

    pub(crate) fn signature(&self) -> Option<&[u8]> {
        self.metadata.signature.as_deref()
    }

    /// The size the descriptor records (what `stat` reports).
    pub(crate) fn data_size(&self) -> u64 {
        self.metadata.descriptor.data_size()
    }

    /// The verifier open handles share, made with `make` when none is alive.
    pub(crate) fn verifier(&self, make: impl FnOnce() -> Verifier) -> Arc<Verifier> {
        let mut slot = self.verifier.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = slot.upgrade() {
            return v;
        }
        let v = Arc::new(make());
        *slot = Arc::downgrade(&v);
        v
    }

    /// Whether the signature verifies under `keys` (once per file: the keys do
    /// not change during a mount).
    pub(crate) fn signature_verdict(
        &self, keys: &TrustedKeys,
    ) -> &Result<SignerName, SignatureError> {
        self.verdict.get_or_init(|| match self.signature() {
            None => Err(SignatureError::Unsigned),
            Some(sig) => keys.verify(self.descriptor().algorithm(), &self.digest, sig),
        })
    }
}
