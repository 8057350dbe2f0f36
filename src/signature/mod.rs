//! Signatures over the fs-verity formatted digest, in two formats, and the set
//! of keys and certificates a mount or a check trusts.
//!
//! - **Ed25519**: the 64 raw bytes over `"FSVerity" + le16 alg + le16 size +
//!   digest`, as `openssl pkeyutl -sign -rawin` makes them. Keys use the formats
//!   OpenSSL writes (`openssl genpkey -algorithm ed25519`: PKCS#8 PEM; `openssl
//!   pkey -pubout`: SubjectPublicKeyInfo PEM). Verification is strict: weak
//!   (small-order) keys and non-canonical signatures are rejected.
//! - **PKCS#7**, the kernel's built-in signature format (what `fsverity sign` and
//!   `rpmsign --signverity` make), checked against X.509 certificates: see
//!   [`pkcs7`].
//!
//! A signature's format is told by its shape: 64 bytes are Ed25519, a DER
//! SEQUENCE is PKCS#7.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::format::MAX_SIGNATURE_SIZE;
use crate::format::{HashAlgorithm, HashValue, formatted_digest};
use pkcs7::{Certificate, DigestAlgorithm, SignedMessage};

pub mod pkcs7;

/// The signature formats this build makes and verifies (for `--version`).
pub const FORMATS: [&str; 2] = ["Ed25519", "PKCS#7 (RSA 2048-4096, ECDSA P-256/P-384)"];

/// Size of an Ed25519 signature.
pub const SIGNATURE_SIZE: usize = 64;

/// Why a key or signature was refused. The kernel's errnos for the same cases:
/// `Malformed` EBADMSG, `NoKey` ENOKEY, `Rejected` EKEYREJECTED, `TooLarge`
/// EMSGSIZE.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// Neither a 64-byte Ed25519 signature nor a well-formed PKCS#7 message of a
    /// supported kind.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// Well-formed, but its signer is not trusted (no trusted certificate names
    /// it; for Ed25519, no Ed25519 key is trusted at all).
    #[error("{0}")]
    NoKey(String),
    /// The signer is trusted, but the signature is not valid for this digest.
    #[error("signature rejected: {0}")]
    Rejected(String),
    /// There is no signature at all (a verity file enabled without one).
    #[error("no signature")]
    Unsigned,
    /// Larger than the kernel's `FS_VERITY_MAX_SIGNATURE_SIZE`.
    #[error("signature of {0} bytes is larger than {MAX_SIGNATURE_SIZE}")]
    TooLarge(usize),
    /// A key or certificate file that cannot be used.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A signature, decoded and told apart by its format.
#[derive(Clone, Debug)]
pub enum ParsedSignature {
    /// 64 raw Ed25519 bytes.
    Ed25519(Signature),
    /// The kernel's PKCS#7 format.
    Pkcs7(Box<SignedMessage>),
}

/// Decodes a signature of either format; [`SignatureError::Malformed`] or
/// [`SignatureError::TooLarge`] when it is neither.
pub fn parse_signature(bytes: &[u8]) -> Result<ParsedSignature, SignatureError> {
    if bytes.len() > MAX_SIGNATURE_SIZE {
        return Err(SignatureError::TooLarge(bytes.len()));
    }
    if bytes.len() == SIGNATURE_SIZE {
        return parse_ed25519(bytes).map(ParsedSignature::Ed25519);
    }
    if bytes.first() == Some(&0x30) {
        return SignedMessage::parse(bytes).map(|m| ParsedSignature::Pkcs7(Box::new(m)));
    }
    Err(SignatureError::Malformed(format!(
        "{} bytes: neither a 64-byte Ed25519 signature nor a DER PKCS#7 message",
        bytes.len()
    )))
}

/// Who made a signature that verified: the trusted key's file, or the trusted
/// certificate's subject and file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerName(String);

impl SignerName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SignerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What signs files: an Ed25519 key (raw signatures), or an RSA/ECDSA key with
/// its certificate (the kernel's PKCS#7 format, like `fsverity sign`).
#[derive(Debug)]
pub enum Signer {
    /// Raw Ed25519 signatures.
    Ed25519(Box<PrivateKey>),
    /// PKCS#7 signatures.
    Pkcs7(Box<pkcs7::Signer>),
}

impl Signer {
    /// Loads a PEM private key: Ed25519 (then `cert` must be `None`), or RSA /
    /// ECDSA with the certificate `cert` (PEM or DER).
    pub fn load(key: &Path, cert: Option<&Path>) -> Result<Self, SignatureError> {
        let text = read_key_file(key)?;
        let key_name = key.display().to_string();
        if let Ok(k) = PrivateKey::from_pem(&text, &key_name) {
            return match cert {
                None => Ok(Self::Ed25519(Box::new(k))),
                Some(c) => Err(SignatureError::Key {
                    path: c.display().to_string(),
                    reason: format!(
                        "{key_name} is an Ed25519 key, which makes raw signatures: the kernel's PKCS#7 format needs an RSA or ECDSA key (drop --cert)"
                    ),
                }),
            };
        }
        let Some(cert) = cert else {
            return Err(SignatureError::Key {
                path: key_name,
                reason:
                    "not an Ed25519 key; an RSA or ECDSA key also needs its certificate (--cert)"
                        .into(),
            });
        };
        let cert_bytes = std::fs::read(cert).map_err(|e| SignatureError::Key {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
        pkcs7::Signer::new(&text, &key_name, &cert_bytes, &cert.display().to_string())
            .map(|s| Self::Pkcs7(Box::new(s)))
    }

    /// Signs a file digest. A PKCS#7 signature uses the file's hash algorithm
    /// as its message digest (SHA-256 for BLAKE3 files), as `fsverity sign` does.
    pub fn sign(
        &self, algorithm: HashAlgorithm, digest: &HashValue,
    ) -> Result<Vec<u8>, SignatureError> {
        match self {
            Self::Ed25519(k) => Ok(k.sign(algorithm, digest).to_vec()),
            Self::Pkcs7(s) => {
                let md = match algorithm {
                    HashAlgorithm::Sha512 => DigestAlgorithm::Sha512,
                    HashAlgorithm::Sha256 | HashAlgorithm::Blake3 => DigestAlgorithm::Sha256,
                };
                s.sign(md, &formatted_digest(algorithm, digest))
            }
        }
    }
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
            reason: format!(
                "not an Ed25519 SubjectPublicKeyInfo PEM public key ({e}); RSA and ECDSA signers are trusted through their X.509 certificate"
            ),
        })?;
        Self::checked(key, name)
    }

    /// A public key, unless it is weak.
    fn checked(key: VerifyingKey, name: &str) -> Result<Self, SignatureError> {
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
        &self, algorithm: HashAlgorithm, digest: &HashValue, signature: &[u8],
    ) -> Result<(), SignatureError> {
        let sig = parse_ed25519(signature)?;
        self.key
            .verify_strict(&formatted_digest(algorithm, digest), &sig)
            .map_err(|_| SignatureError::Rejected(self.name.clone()))
    }
}

fn parse_ed25519(bytes: &[u8]) -> Result<Signature, SignatureError> {
    let arr: [u8; SIGNATURE_SIZE] = bytes.try_into().map_err(|_| {
        SignatureError::Malformed(format!(
            "{} bytes, an Ed25519 signature has 64",
            bytes.len()
        ))
    })?;
    Ok(Signature::from_bytes(&arr))
}

/// The keys and certificates a mount or a check trusts: the counterpart of the
/// kernel's `.fs-verity` keyring (certificates), plus Ed25519 public keys.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
    certs: Vec<Certificate>,
}

/// File name extensions read from a trust directory.
const TRUST_EXTENSIONS: [&str; 3] = ["pem", "crt", "der"];

impl TrustedKeys {
    /// Loads Ed25519 public keys (SubjectPublicKeyInfo PEM) and X.509
    /// certificates (PEM, one or a bundle, or DER) from files, and from
    /// directories (every `*.pem`, `*.crt` and `*.der` file in them, which may
    /// mix both kinds).
    pub fn load(paths: &[PathBuf]) -> Result<Self, SignatureError> {
        let mut trusted = Self::default();
        for path in paths {
            if path.is_dir() {
                let entries = std::fs::read_dir(path).map_err(|e| SignatureError::Key {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                let mut files: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.extension()
                            .is_some_and(|x| TRUST_EXTENSIONS.iter().any(|t| x == *t))
                            && p.is_file()
                    })
                    .collect();
                files.sort();
                if files.is_empty() {
                    return Err(SignatureError::Key {
                        path: path.display().to_string(),
                        reason: "directory holds no .pem, .crt or .der files".into(),
                    });
                }
                for f in files {
                    trusted.load_file(&f)?;
                }
            } else {
                trusted.load_file(path)?;
            }
        }
        Ok(trusted)
    }

    /// Adds what one file holds: a PEM public key, PEM certificates or a DER
    /// certificate.
    fn load_file(&mut self, path: &Path) -> Result<(), SignatureError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| SignatureError::Key {
            path: name.clone(),
            reason: e.to_string(),
        })?;
        let parsed = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            let label = der::pem::decode_label(&bytes).map_err(|e| SignatureError::Key {
                path: name.clone(),
                reason: format!("not PEM: {e}"),
            })?;
            match label {
                "PUBLIC KEY" => {
                    let text = String::from_utf8_lossy(&bytes);
                    self.keys.push(PublicKey::from_pem(&text, &name)?);
                    return Ok(());
                }
                "CERTIFICATE" | "TRUSTED CERTIFICATE" => Certificate::parse_pem(&bytes, &name)?,
                other => {
                    return Err(SignatureError::Key {
                        path: name,
                        reason: format!(
                            "PEM block '{other}': expected a PUBLIC KEY (Ed25519) or a CERTIFICATE"
                        ),
                    });
                }
            }
        } else {
            vec![Certificate::parse_der(&bytes, &name)?]
        };
        for p in parsed {
            match p {
                pkcs7::Parsed::Signer(c) => self.certs.push(*c),
                pkcs7::Parsed::Ed25519(spki) => {
                    let key = VerifyingKey::from_public_key_der(&spki).map_err(|e| {
                        SignatureError::Key {
                            path: name.clone(),
                            reason: format!("Ed25519 certificate key: {e}"),
                        }
                    })?;
                    self.keys.push(PublicKey::checked(key, &name)?);
                }
            }
        }
        Ok(())
    }

    /// A set of given keys.
    pub fn from_keys(keys: Vec<PublicKey>) -> Self {
        Self {
            keys,
            certs: Vec::new(),
        }
    }

    /// The set with `certs` trusted too.
    pub fn with_certificates(mut self, certs: Vec<Certificate>) -> Self {
        self.certs.extend(certs);
        self
    }

    /// True if nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.certs.is_empty()
    }

    /// Number of trusted keys and certificates.
    pub fn len(&self) -> usize {
        self.keys.len() + self.certs.len()
    }

    /// Checks `signature` (either format) over the formatted digest of
    /// `digest`, and names the trusted key or certificate it verifies under.
    pub fn verify(
        &self, algorithm: HashAlgorithm, digest: &HashValue, signature: &[u8],
    ) -> Result<SignerName, SignatureError> {
        match parse_signature(signature)? {
            ParsedSignature::Pkcs7(message) => message
                .verify(&formatted_digest(algorithm, digest), &self.certs)
                .map(|c| SignerName(c.name().to_owned())),
            ParsedSignature::Ed25519(_) if self.keys.is_empty() => Err(SignatureError::NoKey(
                "signer not trusted: no Ed25519 public key is trusted".into(),
            )),
            ParsedSignature::Ed25519(_) => self
                .keys
                .iter()
                .find(|k| k.verify(algorithm, digest, signature).is_ok())
                .map(|k| SignerName(k.name.clone()))
                .ok_or_else(|| {
                    SignatureError::Rejected(format!(
                        "does not verify under any of the {} trusted Ed25519 key(s)",
                        self.keys.len()
                    ))
                }),
        }
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
