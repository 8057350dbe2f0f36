//! Trusted X.509 certificates: what the kernel's `.fs-verity` keyring holds. A
//! certificate names a signer (issuer and serial number, subjectKeyIdentifier)
//! and carries its public key: RSA (2048 to 4096 bits), ECDSA P-256 or P-384.
//! An Ed25519 certificate is not a PKCS#7 signer; [`Certificate::parse`] hands
//! its key back for raw Ed25519 signatures.

use const_oid::db::{rfc5912, rfc8410};
use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::traits::PublicKeyParts;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::spki::{DecodePublicKey, ObjectIdentifier};

use super::{DigestAlgorithm, Scheme, SignerId};
use crate::signature::SignatureError;

/// Smallest and largest RSA modulus accepted, in bits.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// A certificate's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum CertKey {
    Rsa(rsa::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

/// What a certificate file holds.
#[derive(Debug)]
pub enum Parsed {
    /// A signer of PKCS#7 signatures.
    Signer(Box<Certificate>),
    /// An Ed25519 certificate: its SubjectPublicKeyInfo DER.
    Ed25519(Vec<u8>),
}

/// A trusted X.509 certificate of a PKCS#7 signer.
#[derive(Clone, Debug)]
pub struct Certificate {
    name: String,
    issuer: Vec<u8>,
    serial: Vec<u8>,
    key_id: Option<Vec<u8>>,
    key: CertKey,
    cert: x509_cert::Certificate,
}

fn key_error(source: &str, reason: impl std::fmt::Display) -> SignatureError {
    SignatureError::Key {
        path: source.into(),
        reason: reason.to_string(),
    }
}

impl Certificate {
    /// Reads a DER certificate; `source` names it in errors and in
    /// [`Certificate::name`].
    pub fn parse_der(der: &[u8], source: &str) -> Result<Parsed, SignatureError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| key_error(source, format!("not a DER X.509 certificate: {e}")))?;
        Self::from_x509(cert, source)
    }

    /// Reads every certificate of a PEM file (one or a bundle).
    pub fn parse_pem(pem: &[u8], source: &str) -> Result<Vec<Parsed>, SignatureError> {
        let certs = x509_cert::Certificate::load_pem_chain(pem)
            .map_err(|e| key_error(source, format!("not a PEM X.509 certificate: {e}")))?;
        if certs.is_empty() {
            return Err(key_error(source, "no certificate in the PEM file"));
        }
        certs
            .into_iter()
            .map(|c| Self::from_x509(c, source))
            .collect()
    }

    pub(super) fn from_x509(
        cert: x509_cert::Certificate, source: &str,
    ) -> Result<Parsed, SignatureError> {
        let tbs = cert.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        let spki_der = spki
            .to_der()
            .map_err(|e| key_error(source, format!("public key: {e}")))?;
        let bad_key = |e: &dyn std::fmt::Display| key_error(source, format!("public key: {e}"));
        let key = match spki.algorithm.oid {
            rfc5912::RSA_ENCRYPTION => {
                let key =
                    rsa::PublicKey::from_public_key_der(&spki_der).map_err(|e| bad_key(&e))?;
                let bits = key.n().bit_width() as usize;
                if !RSA_BITS.contains(&bits) {
                    return Err(key_error(
                        source,
                        format!("{bits}-bit RSA key: only 2048 to 4096 bits are supported"),
                    ));
                }
                CertKey::Rsa(key)
            }
            rfc5912::ID_EC_PUBLIC_KEY => {
                let curve: Option<ObjectIdentifier> = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as().ok());
                match curve {
                    Some(rfc5912::SECP_256_R_1) => CertKey::P256(
                        p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der)
                            .map_err(|e| bad_key(&e))?,
                    ),
                    Some(rfc5912::SECP_384_R_1) => CertKey::P384(
                        p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der)
                            .map_err(|e| bad_key(&e))?,
                    ),
                    other => {
                        return Err(key_error(
                            source,
                            format!(
                                "elliptic curve {}: only P-256 and P-384 are supported",
                                other.map_or("(none named)".to_owned(), |c| c.to_string())
                            ),
                        ));
                    }
                }
            }
            rfc8410::ID_ED_25519 => return Ok(Parsed::Ed25519(spki_der)),
            other => {
                return Err(key_error(
                    source,
                    format!(
                        "public key algorithm {other}: only RSA, ECDSA P-256/P-384 and Ed25519 are supported"
                    ),
                ));
            }
        };
        let issuer = tbs
            .issuer()
            .to_der()
            .map_err(|e| key_error(source, format!("issuer: {e}")))?;
        let key_id = match tbs.get_extension::<SubjectKeyIdentifier>() {
            Ok(found) => found.map(|(_, id)| id.0.as_bytes().to_vec()),
            Err(e) => return Err(key_error(source, format!("subjectKeyIdentifier: {e}"))),
        };
        Ok(Parsed::Signer(Box::new(Self {
            name: format!("'{}' ({source})", tbs.subject()),
            issuer,
            serial: tbs.serial_number().as_bytes().to_vec(),
            key_id,
            key,
            cert,
        })))
    }

    /// The certificate's subject and where it came from, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn key(&self) -> &CertKey {
        &self.key
    }

    pub(super) fn x509(&self) -> &x509_cert::Certificate {
        &self.cert
    }

    pub(super) fn is_signer(&self, id: &SignerId) -> bool {
        match id {
            SignerId::IssuerSerial { issuer, serial, .. } => {
                *issuer == self.issuer && *serial == self.serial
            }
            SignerId::KeyId(id) => self.key_id.as_ref() == Some(id),
        }
    }

    /// Checks `signature` over the prehashed `hash` with this certificate's key.
    pub(super) fn verify(
        &self, scheme: Scheme, digest: DigestAlgorithm, hash: &[u8], signature: &[u8],
    ) -> Result<(), String> {
        let bad = |e: &dyn std::fmt::Display| format!("bad signature: {e}");
        match (&self.key, scheme) {
            (CertKey::Rsa(key), Scheme::Rsa) => {
                let result = match digest {
                    DigestAlgorithm::Sha256 => {
                        key.pkcs1v15_verify_prehash::<sha2::Sha256>(hash, signature)
                    }
                    DigestAlgorithm::Sha384 => {
                        key.pkcs1v15_verify_prehash::<sha2::Sha384>(hash, signature)
                    }
                    DigestAlgorithm::Sha512 => {
                        key.pkcs1v15_verify_prehash::<sha2::Sha512>(hash, signature)
                    }
                };
                result.map_err(|e| bad(&e))
            }
            (CertKey::P256(key), Scheme::Ecdsa) => {
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|e| bad(&e))?;
                key.verify_prehash(hash, &sig).map_err(|e| bad(&e))
            }
            (CertKey::P384(key), Scheme::Ecdsa) => {
                let sig = p384::ecdsa::Signature::from_der(signature).map_err(|e| bad(&e))?;
                key.verify_prehash(hash, &sig).map_err(|e| bad(&e))
            }
            (_, Scheme::Rsa) => Err("an RSA signature, but the certificate's key is ECDSA".into()),
            (_, Scheme::Ecdsa) => {
                Err("an ECDSA signature, but the certificate's key is RSA".into())
            }
        }
    }
}
