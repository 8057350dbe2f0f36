//! The kernel's built-in fs-verity signature format: a DER PKCS#7 `SignedData`,
//! detached, over the formatted digest, checked against X.509 certificates
//! ("Built-in signature verification" in the kernel's
//! Documentation/filesystems/fsverity.rst; the parser is crypto/asymmetric_keys/
//! pkcs7_parser.c, the checks pkcs7_verify.c and pkcs7_trust.c).
//!
//! Pure code: bytes in, verdicts out. Every structure is decoded by the RustCrypto
//! `cms`/`x509-cert`/`der` crates; nothing here reads or writes ASN.1 by hand.
//!
//! What is accepted, as the kernel accepts it:
//! - `ContentInfo` of type signedData; `SignedData` version 1 with a version 1
//!   `SignerInfo` naming its signer by issuer and serial number, or version 3 with
//!   a version 3 `SignerInfo` naming it by subjectKeyIdentifier;
//! - detached content of type id-data (the formatted digest is supplied);
//! - exactly one `SignerInfo` (what `fsverity sign` and `rpmsign` make; the kernel
//!   would take several and require all to verify);
//! - no signed attributes (fsverity-utils signs with `PKCS7_NOATTR`), or signed
//!   attributes with a contentType of id-data and a messageDigest that matches the
//!   content; the signature is then over the DER `SET OF` those attributes;
//! - SHA-256/384/512 message digests; RSA PKCS#1 v1.5 (2048 to 4096-bit keys) and
//!   ECDSA on P-256 and P-384.
//!
//! The signer's certificate is looked up among the trusted ones; certificates
//! embedded in the message are ignored (the kernel would also accept a chain from
//! an embedded certificate to a trusted one: not supported here). Certificate
//! validity dates are not checked, as the kernel does not check them.

mod cert;
mod sign;

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::OctetString;
use der::{Decode, Encode};
use sha2::Digest as _;
use x509_cert::spki::AlgorithmIdentifierOwned;

pub use cert::{Certificate, Parsed};
pub use sign::Signer;

use crate::signature::SignatureError;

/// A message digest algorithm of the PKCS#7 `SignerInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        match oid {
            rfc5912::ID_SHA_256 => Some(Self::Sha256),
            rfc5912::ID_SHA_384 => Some(Self::Sha384),
            rfc5912::ID_SHA_512 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha256 => rfc5912::ID_SHA_256,
            Self::Sha384 => rfc5912::ID_SHA_384,
            Self::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    fn ecdsa_oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha256 => rfc5912::ECDSA_WITH_SHA_256,
            Self::Sha384 => rfc5912::ECDSA_WITH_SHA_384,
            Self::Sha512 => rfc5912::ECDSA_WITH_SHA_512,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }
}

/// The public-key algorithm a `SignerInfo` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    /// RSA PKCS#1 v1.5 (`rsaEncryption` or `shaNNNWithRSAEncryption`).
    Rsa,
    /// ECDSA (`ecdsa-with-SHANNN`).
    Ecdsa,
}

/// Who signed: what the `SignerInfo` says about the signer's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SignerId {
    /// DER of the issuer name, and the serial number's bytes.
    IssuerSerial {
        issuer: Vec<u8>,
        serial: Vec<u8>,
        text: String,
    },
    /// The subjectKeyIdentifier.
    KeyId(Vec<u8>),
}

impl std::fmt::Display for SignerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IssuerSerial { text, .. } => f.write_str(text),
            Self::KeyId(id) => write!(f, "subjectKeyIdentifier {}", hex::encode(id)),
        }
    }
}

/// A parsed kernel-format signature, ready to be checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMessage {
    digest: DigestAlgorithm,
    signer: SignerId,
    /// DER `SET OF` signed attributes and their messageDigest, when present.
    signed_attributes: Option<(Vec<u8>, Vec<u8>)>,
    scheme: Scheme,
    signature: Vec<u8>,
}

fn malformed(what: impl std::fmt::Display) -> SignatureError {
    SignatureError::Malformed(format!("PKCS#7: {what}"))
}

impl SignedMessage {
    /// Decodes and checks the shape of a DER PKCS#7 message. Errors are
    /// [`SignatureError::Malformed`] (the kernel's EBADMSG; for algorithms it
    /// does not know the kernel says ENOPKG) and, for content of a type other
    /// than id-data, [`SignatureError::Rejected`] (the kernel's EKEYREJECTED).
    pub fn parse(der: &[u8]) -> Result<Self, SignatureError> {
        let info = ContentInfo::from_der(der).map_err(|e| malformed(format!("not DER: {e}")))?;
        if info.content_type != rfc5911::ID_SIGNED_DATA {
            return Err(malformed(format!(
                "content type {} is not signedData",
                info.content_type
            )));
        }
        let data: SignedData = info
            .content
            .decode_as()
            .map_err(|e| malformed(format!("SignedData: {e}")))?;
        let content = &data.encap_content_info;
        if content.econtent.is_some() {
            // The kernel refuses to supply detached data then (EINVAL).
            return Err(malformed(
                "the signature carries its content: it must be detached",
            ));
        }
        if content.econtent_type != rfc5911::ID_DATA {
            return Err(SignatureError::Rejected(format!(
                "PKCS#7 content type {} is not id-data",
                content.econtent_type
            )));
        }
        let signers = data.signer_infos.0.as_slice();
        let [signer] = signers else {
            return Err(malformed(format!(
                "{} SignerInfos: exactly one is supported",
                signers.len()
            )));
        };
        Self::from_signer_info(data.version, signer)
    }

    fn from_signer_info(version: CmsVersion, si: &SignerInfo) -> Result<Self, SignatureError> {
        let signer = match (version, si.version, &si.sid) {
            (CmsVersion::V1, CmsVersion::V1, SignerIdentifier::IssuerAndSerialNumber(id)) => {
                issuer_serial(id)?
            }
            (CmsVersion::V3, CmsVersion::V3, SignerIdentifier::SubjectKeyIdentifier(id)) => {
                SignerId::KeyId(id.0.as_bytes().to_vec())
            }
            (v, sv, _) => {
                return Err(malformed(format!(
                    "SignedData version {} with SignerInfo version {} naming its signer by {}",
                    v as u8,
                    sv as u8,
                    match si.sid {
                        SignerIdentifier::IssuerAndSerialNumber(_) => "issuer and serial",
                        SignerIdentifier::SubjectKeyIdentifier(_) => "key identifier",
                    }
                )));
            }
        };
        let digest = digest_algorithm(&si.digest_alg)?;
        let scheme = scheme(&si.signature_algorithm, digest)?;
        let signed_attributes = match &si.signed_attrs {
            None => None,
            Some(attrs) => {
                let mut content_type = None;
                let mut message_digest = None;
                for attr in attrs.iter() {
                    let slot = match attr.oid {
                        rfc5911::ID_CONTENT_TYPE => &mut content_type,
                        rfc5911::ID_MESSAGE_DIGEST => &mut message_digest,
                        _ => continue,
                    };
                    let [value] = attr.values.as_slice() else {
                        return Err(malformed(format!(
                            "attribute {} has {} values",
                            attr.oid,
                            attr.values.len()
                        )));
                    };
                    if slot.replace(value).is_some() {
                        return Err(malformed(format!("attribute {} repeated", attr.oid)));
                    }
                }
                let (Some(content_type), Some(message_digest)) = (content_type, message_digest)
                else {
                    return Err(malformed(
                        "signed attributes without contentType and messageDigest",
                    ));
                };
                let content_type: ObjectIdentifier = content_type
                    .decode_as()
                    .map_err(|e| malformed(format!("contentType attribute: {e}")))?;
                if content_type != rfc5911::ID_DATA {
                    return Err(malformed(format!(
                        "contentType attribute {content_type} is not id-data"
                    )));
                }
                let md: OctetString = message_digest
                    .decode_as()
                    .map_err(|e| malformed(format!("messageDigest attribute: {e}")))?;
                let set = attrs
                    .to_der()
                    .map_err(|e| malformed(format!("signed attributes: {e}")))?;
                Some((set, md.as_bytes().to_vec()))
            }
        };
        Ok(Self {
            digest,
            signer,
            signed_attributes,
            scheme,
            signature: si.signature.as_bytes().to_vec(),
        })
    }

    /// The message digest algorithm.
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest
    }

    /// Checks the signature over `content` (the formatted digest) against the
    /// trusted `certs`, in the kernel's order: a messageDigest attribute that does
    /// not match is [`SignatureError::Rejected`]; no trusted certificate for the
    /// signer is [`SignatureError::NoKey`]; a signature that does not verify under
    /// the signer's certificate is [`SignatureError::Rejected`].
    pub fn verify<'c>(
        &self, content: &[u8], certs: &'c [Certificate],
    ) -> Result<&'c Certificate, SignatureError> {
        let mut hash = self.digest.hash(content);
        if let Some((set, message_digest)) = &self.signed_attributes {
            if *message_digest != hash {
                return Err(SignatureError::Rejected(
                    "the signature's messageDigest attribute is not the digest of this file".into(),
                ));
            }
            hash = self.digest.hash(set);
        }
        let mut candidates = certs
            .iter()
            .filter(|c| c.is_signer(&self.signer))
            .peekable();
        if candidates.peek().is_none() {
            return Err(SignatureError::NoKey(format!(
                "signer not trusted: no trusted certificate for {}",
                self.signer
            )));
        }
        let mut last = None;
        for cert in candidates {
            match cert.verify(self.scheme, self.digest, &hash, &self.signature) {
                Ok(()) => return Ok(cert),
                Err(reason) => last = Some(format!("{}: {reason}", cert.name())),
            }
        }
        Err(SignatureError::Rejected(format!(
            "signature does not verify for this file's digest ({})",
            last.unwrap_or_default()
        )))
    }
}

fn issuer_serial(id: &IssuerAndSerialNumber) -> Result<SignerId, SignatureError> {
    let issuer = id
        .issuer
        .to_der()
        .map_err(|e| malformed(format!("issuer: {e}")))?;
    Ok(SignerId::IssuerSerial {
        issuer,
        serial: id.serial_number.as_bytes().to_vec(),
        text: format!("issuer '{}' serial {}", id.issuer, id.serial_number),
    })
}

/// Parameters of a hash or signature algorithm: absent or NULL.
fn no_parameters(alg: &AlgorithmIdentifierOwned) -> Result<(), SignatureError> {
    match &alg.parameters {
        None => Ok(()),
        Some(p) if p.is_null() => Ok(()),
        Some(_) => Err(malformed(format!(
            "algorithm {} has unexpected parameters",
            alg.oid
        ))),
    }
}

fn digest_algorithm(alg: &AlgorithmIdentifierOwned) -> Result<DigestAlgorithm, SignatureError> {
    no_parameters(alg)?;
    DigestAlgorithm::from_oid(alg.oid).ok_or_else(|| {
        malformed(format!(
            "unsupported digest algorithm {} (supported: SHA-256, SHA-384, SHA-512)",
            alg.oid
        ))
    })
}

fn scheme(
    alg: &AlgorithmIdentifierOwned, digest: DigestAlgorithm,
) -> Result<Scheme, SignatureError> {
    no_parameters(alg)?;
    let (scheme, hash) = match alg.oid {
        rfc5912::RSA_ENCRYPTION => (Scheme::Rsa, None),
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION => (Scheme::Rsa, Some(DigestAlgorithm::Sha256)),
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION => (Scheme::Rsa, Some(DigestAlgorithm::Sha384)),
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION => (Scheme::Rsa, Some(DigestAlgorithm::Sha512)),
        rfc5912::ECDSA_WITH_SHA_256 => (Scheme::Ecdsa, Some(DigestAlgorithm::Sha256)),
        rfc5912::ECDSA_WITH_SHA_384 => (Scheme::Ecdsa, Some(DigestAlgorithm::Sha384)),
        rfc5912::ECDSA_WITH_SHA_512 => (Scheme::Ecdsa, Some(DigestAlgorithm::Sha512)),
        other => {
            return Err(malformed(format!(
                "unsupported signature algorithm {other} (supported: RSA PKCS#1 v1.5, ECDSA)"
            )));
        }
    };
    match hash {
        Some(h) if h != digest => Err(malformed(format!(
            "signature algorithm {} does not match the {} digest algorithm",
            alg.oid,
            digest.name()
        ))),
        _ => Ok(scheme),
    }
}

#[cfg(test)]
mod tests;
