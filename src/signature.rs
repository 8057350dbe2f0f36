//! Ed25519 keys and signatures over the fs-verity formatted digest.
//!
//! Keys use the formats OpenSSL writes (`openssl genpkey -algorithm ed25519`:
//! PKCS#8 PEM; `openssl pkey -pubout`: SubjectPublicKeyInfo PEM). A signature is
//! the 64 raw Ed25519 bytes over `"FSVerity" + le16 alg + le16 size + digest`,
//! as `openssl pkeyutl -sign -rawin` makes them. Verification is strict: weak
//! (small-order) keys and non-canonical signatures are rejected.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::format::{HashAlgorithm, HashValue, formatted_digest};

/// Size of an Ed25519 signature.
pub const SIGNATURE_SIZE: usize = 64;

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// Not a 64-byte Ed25519 signature, or not canonical.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// Well-formed, but no trusted key verifies it.
    #[error("signature does not verify under {0}")]
    Rejected(String),
    /// A key file that cannot be used.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// An Ed25519 private key.
pub struct PrivateKey(SigningKey);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// An Ed25519 public key, with the name it was loaded from (for logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    name: String,
}

impl PrivateKey {
    /// A new random key (from the kernel's random source).
    pub fn generate() -> std::io::Result<Self> {
        let mut seed = [0u8; 32];
        let mut filled = 0;
        while filled < seed.len() {
            filled += rustix::rand::getrandom(
                &mut seed[filled..],
                rustix::rand::GetRandomFlags::empty(),
            )?;
        }
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// Parses a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str, name: &str) -> Result<Self, SignatureError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|e| SignatureError::Key {
                path: name.into(),
                reason: format!("not an Ed25519 PKCS#8 PEM private key: {e}"),
            })
    }

    /// Reads a PKCS#8 PEM private key file.
    pub fn load(path: &Path) -> Result<Self, SignatureError> {
        let text = read_key_file(path)?;
        Self::from_pem(&text, &path.display().to_string())
    }

    /// PKCS#8 v1 PEM (no embedded public key), exactly as `openssl genpkey`
    /// writes it; OpenSSL 3.0 cannot read the v2 form.
    pub fn to_pem(&self) -> Result<String, SignatureError> {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        bytes
            .to_pkcs8_pem(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| SignatureError::Key {
                path: "new key".into(),
                reason: e.to_string(),
            })
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: self.0.verifying_key(),
            name: "generated key".into(),
        }
    }

    /// Signs a file digest.
    pub fn sign(&self, algorithm: HashAlgorithm, digest: &HashValue) -> [u8; SIGNATURE_SIZE] {
        self.0.sign(&formatted_digest(algorithm, digest)).to_bytes()
    }
}

fn read_key_file(path: &Path) -> Result<String, SignatureError> {
    std::fs::read_to_string(path).map_err(|e| SignatureError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl PublicKey {
    /// Parses a SubjectPublicKeyInfo PEM public key; weak keys are refused.
    pub fn from_pem(pem: &str, name: &str) -> Result<Self, SignatureError> {
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| SignatureError::Key {
            path: name.into(),
            reason: format!("not an Ed25519 SubjectPublicKeyInfo PEM public key: {e}"),
        })?;
        if key.is_weak() {
            return Err(SignatureError::Key {
                path: name.into(),
                reason: "weak (small-order) Ed25519 key".into(),
            });
        }
        Ok(Self {
            key,
            name: name.into(),
        })
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<Self, SignatureError> {
        let text = read_key_file(path)?;
        Self::from_pem(&text, &path.display().to_string())
    }

    /// SubjectPublicKeyInfo PEM, as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> Result<String, SignatureError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| SignatureError::Key {
                path: self.name.clone(),
                reason: e.to_string(),
            })
    }

    /// Where the key came from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Strictly verifies `signature` over the formatted digest.
    pub fn verify(
        &self,
        algorithm: HashAlgorithm,
        digest: &HashValue,
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let sig = parse_signature(signature)?;
        self.key
            .verify_strict(&formatted_digest(algorithm, digest), &sig)
            .map_err(|_| SignatureError::Rejected(self.name.clone()))
    }
}

/// Checks the shape of a signature (64 bytes).
pub fn parse_signature(bytes: &[u8]) -> Result<Signature, SignatureError> {
    let arr: [u8; SIGNATURE_SIZE] = bytes.try_into().map_err(|_| {
        SignatureError::Malformed(format!(
            "{} bytes, an Ed25519 signature has 64",
            bytes.len()
        ))
    })?;
    Ok(Signature::from_bytes(&arr))
}

/// The keys a mount or a check trusts.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    /// Loads keys from files, and from directories (every `*.pem` file in them).
    pub fn load(paths: &[PathBuf]) -> Result<Self, SignatureError> {
        let mut keys = Vec::new();
        for path in paths {
            if path.is_dir() {
                let entries = std::fs::read_dir(path).map_err(|e| SignatureError::Key {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "pem") && p.is_file())
                    .collect();
                files.sort();
                if files.is_empty() {
                    return Err(SignatureError::Key {
                        path: path.display().to_string(),
                        reason: "directory holds no .pem files".into(),
                    });
                }
                for f in files {
                    keys.push(PublicKey::load(&f)?);
                }
            } else {
                keys.push(PublicKey::load(path)?);
            }
        }
        Ok(Self { keys })
    }

    /// A set of given keys.
    pub fn from_keys(keys: Vec<PublicKey>) -> Self {
        Self { keys }
    }

    /// True if no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The first trusted key under which `signature` verifies.
    pub fn verify(
        &self,
        algorithm: HashAlgorithm,
        digest: &HashValue,
        signature: &[u8],
    ) -> Result<&PublicKey, SignatureError> {
        parse_signature(signature)?;
        if self.keys.is_empty() {
            return Err(SignatureError::Rejected(
                "no trusted key (none configured)".into(),
            ));
        }
        self.keys
            .iter()
            .find(|k| k.verify(algorithm, digest, signature).is_ok())
            .ok_or_else(|| {
                SignatureError::Rejected(format!("any of the {} trusted key(s)", self.keys.len()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> HashValue {
        HashValue::from_slice(&[0x5a; 32])
    }

    #[test]
    fn sign_verify_round_trip_through_pem() {
        let k = PrivateKey::generate().expect("key");
        let pem = k.to_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let k2 = PrivateKey::from_pem(&pem, "k").expect("parse");
        let public =
            PublicKey::from_pem(&k2.public().to_pem().expect("pub pem"), "pub").expect("parse pub");
        let sig = k2.sign(HashAlgorithm::Sha256, &digest());
        public
            .verify(HashAlgorithm::Sha256, &digest(), &sig)
            .expect("verifies");
        // Another digest, another algorithm, a flipped bit: all rejected.
        assert!(
            public
                .verify(
                    HashAlgorithm::Sha256,
                    &HashValue::from_slice(&[1; 32]),
                    &sig
                )
                .is_err()
        );
        assert!(
            public
                .verify(HashAlgorithm::Blake3, &digest(), &sig)
                .is_err()
        );
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(matches!(
            public.verify(HashAlgorithm::Sha256, &digest(), &bad),
            Err(SignatureError::Rejected(_))
        ));
        assert!(matches!(
            public.verify(HashAlgorithm::Sha256, &digest(), &sig[..63]),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        let k = PrivateKey::generate().expect("key");
        let mut sig = k.sign(HashAlgorithm::Sha256, &digest());
        // Add the group order L to S: same point equation, non-canonical encoding.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
            sig[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert!(
            k.public()
                .verify(HashAlgorithm::Sha256, &digest(), &sig)
                .is_err()
        );
    }

    #[test]
    fn weak_keys_and_garbage_are_refused() {
        // The identity point (small order), as SubjectPublicKeyInfo.
        let identity = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem(identity, "id"),
            Err(SignatureError::Key { .. })
        ));
        assert!(PublicKey::from_pem("not a key", "x").is_err());
        assert!(
            PrivateKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "x"
            )
            .is_err()
        );
        assert!(
            TrustedKeys::default()
                .verify(HashAlgorithm::Sha256, &digest(), &[0; 64])
                .is_err()
        );
    }
}
