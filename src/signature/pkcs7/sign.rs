//! Making kernel-format signatures, as `fsverity sign` makes them (fsverity-utils
//! lib/sign_digest.c: `PKCS7_sign` with `PKCS7_BINARY | PKCS7_DETACHED |
//! PKCS7_NOATTR | PKCS7_NOCERTS`): a `SignedData` version 1, the digest algorithm
//! with NULL parameters, detached id-data content, no certificates, one
//! `SignerInfo` naming the certificate by issuer and serial, no attributes. RSA
//! PKCS#1 v1.5 is deterministic, so RSA signatures are byte-identical to
//! fsverity-utils'; ECDSA signatures use RFC 6979 nonces.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, PrivateKeyInfoRef};
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier};

use super::cert::{CertKey, Parsed};
use super::{Certificate, DigestAlgorithm};
use crate::signature::SignatureError;

/// An RSA or ECDSA private key.
#[derive(Clone)]
enum PrivateKey {
    Rsa(rsa::PrivateKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// A private key with its certificate: what `fsverity sign --key --cert` takes.
#[derive(Clone)]
pub struct Signer {
    key: PrivateKey,
    cert: Certificate,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("cert", &self.cert.name())
            .finish_non_exhaustive()
    }
}

fn key_error(source: &str, reason: impl std::fmt::Display) -> SignatureError {
    SignatureError::Key {
        path: source.into(),
        reason: reason.to_string(),
    }
}

impl PrivateKey {
    /// Reads a PEM private key: PKCS#8 (`openssl genpkey`, `openssl req -newkey`),
    /// PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    fn from_pem(pem: &str, source: &str) -> Result<Self, SignatureError> {
        let (label, der) = der::pem::decode_vec(pem.as_bytes())
            .map_err(|e| key_error(source, format!("not a PEM private key: {e}")))?;
        let bad = |e: &dyn std::fmt::Display| key_error(source, format!("{label}: {e}"));
        match label {
            "PRIVATE KEY" => {
                let info = PrivateKeyInfoRef::from_der(&der).map_err(|e| bad(&e))?;
                match info.algorithm.oid {
                    rfc5912::RSA_ENCRYPTION => rsa::PrivateKey::from_pkcs8_der(&der)
                        .map(Self::Rsa)
                        .map_err(|e| bad(&e)),
                    rfc5912::ID_EC_PUBLIC_KEY => {
                        let curve: Option<ObjectIdentifier> =
                            info.algorithm.parameters.and_then(|p| p.decode_as().ok());
                        match curve {
                            Some(rfc5912::SECP_256_R_1) => {
                                p256::ecdsa::SigningKey::from_pkcs8_der(&der)
                                    .map(Self::P256)
                                    .map_err(|e| bad(&e))
                            }
                            Some(rfc5912::SECP_384_R_1) => {
                                p384::ecdsa::SigningKey::from_pkcs8_der(&der)
                                    .map(Self::P384)
                                    .map_err(|e| bad(&e))
                            }
                            _ => Err(bad(&"only the P-256 and P-384 curves are supported")),
                        }
                    }
                    other => Err(bad(&format!(
                        "key algorithm {other}: RSA, ECDSA P-256/P-384 or Ed25519 expected"
                    ))),
                }
            }
            "RSA PRIVATE KEY" => rsa::PrivateKey::from_pkcs1_der(&der)
                .map(Self::Rsa)
                .map_err(|e| bad(&e)),
            "EC PRIVATE KEY" => {
                if let Ok(k) = p256::SecretKey::from_sec1_der(&der) {
                    Ok(Self::P256(k.into()))
                } else {
                    p384::SecretKey::from_sec1_der(&der)
                        .map(|k| Self::P384(k.into()))
                        .map_err(|e| bad(&format!("not a P-256 or P-384 key: {e}")))
                }
            }
            "ENCRYPTED PRIVATE KEY" => Err(bad(
                &"encrypted keys are not supported (decrypt with `openssl pkey`)",
            )),
            other => Err(key_error(
                source,
                format!("PEM block '{other}' is not a private key"),
            )),
        }
    }

    fn public(&self) -> CertKey {
        match self {
            Self::Rsa(k) => CertKey::Rsa(k.to_public_key()),
            Self::P256(k) => CertKey::P256(*k.verifying_key()),
            Self::P384(k) => CertKey::P384(*k.verifying_key()),
        }
    }
}

impl Signer {
    /// A signer from a PEM private key and its certificate (PEM or DER). The
    /// certificate's public key must be the key's.
    pub fn new(
        key_pem: &str, key_source: &str, cert: &[u8], cert_source: &str,
    ) -> Result<Self, SignatureError> {
        let key = PrivateKey::from_pem(key_pem, key_source)?;
        let parsed = if cert.trim_ascii_start().starts_with(b"-----BEGIN") {
            Certificate::parse_pem(cert, cert_source)?.swap_remove(0)
        } else {
            Certificate::parse_der(cert, cert_source)?
        };
        let Parsed::Signer(cert) = parsed else {
            return Err(key_error(
                cert_source,
                "an Ed25519 certificate cannot sign PKCS#7 signatures",
            ));
        };
        if *cert.key() != key.public() {
            return Err(key_error(
                cert_source,
                format!("the certificate's public key is not that of {key_source}"),
            ));
        }
        Ok(Self { key, cert: *cert })
    }

    /// The DER PKCS#7 signature of `content` (the formatted digest), with the
    /// message digest algorithm `digest`.
    pub fn sign(&self, digest: DigestAlgorithm, content: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let hash = digest.hash(content);
        let failed =
            |e: &dyn std::fmt::Display| key_error(self.cert.name(), format!("signing: {e}"));
        let null = Some(Any::null());
        let (signature, signature_algorithm) = match &self.key {
            PrivateKey::Rsa(k) => {
                let sig = match digest {
                    DigestAlgorithm::Sha256 => k.pkcs1v15_sign_prehash::<sha2::Sha256>(&hash),
                    DigestAlgorithm::Sha384 => k.pkcs1v15_sign_prehash::<sha2::Sha384>(&hash),
                    DigestAlgorithm::Sha512 => k.pkcs1v15_sign_prehash::<sha2::Sha512>(&hash),
                }
                .map_err(|e| failed(&e))?;
                let alg = AlgorithmIdentifierOwned {
                    oid: rfc5912::RSA_ENCRYPTION,
                    parameters: null.clone(),
                };
                (sig, alg)
            }
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(&hash).map_err(|e| failed(&e))?;
                (sig.to_der().as_bytes().to_vec(), ecdsa_algorithm(digest))
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(&hash).map_err(|e| failed(&e))?;
                (sig.to_der().as_bytes().to_vec(), ecdsa_algorithm(digest))
            }
        };
        let digest_alg = AlgorithmIdentifierOwned {
            oid: digest.oid(),
            parameters: null,
        };
        let tbs = self.cert.x509().tbs_certificate();
        let encode = |e: der::Error| failed(&e);
        let signer = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer().clone(),
                serial_number: tbs.serial_number().clone(),
            }),
            digest_alg: digest_alg.clone(),
            signed_attrs: None,
            signature_algorithm,
            signature: OctetString::new(signature).map_err(encode)?,
            unsigned_attrs: None,
        };
        let data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![digest_alg]).map_err(encode)?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: rfc5911::ID_DATA,
                econtent: None,
            },
            certificates: None,
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer]).map_err(encode)?,
        };
        ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: Any::encode_from(&data).map_err(encode)?,
        }
        .to_der()
        .map_err(encode)
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }
}

fn ecdsa_algorithm(digest: DigestAlgorithm) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: digest.ecdsa_oid(),
        parameters: None,
    }
}
