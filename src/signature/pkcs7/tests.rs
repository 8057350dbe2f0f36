//! Unit tests of the PKCS#7 format against vectors made by `fsverity sign` and
//! `openssl cms` (see testdata/README.md for the commands), and a fuzz loop.

use super::*;
use crate::signature::{SignatureError, TrustedKeys};

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!("testdata/", $name))
    };
}

/// `fsverity digest --for-builtin-sig --compact [--hash-alg=sha512] file`.
fn formatted(sha512: bool) -> Vec<u8> {
    let hex = if sha512 {
        &vector!("file-sha512.fmt.hex")[..]
    } else {
        &vector!("file.fmt.hex")[..]
    };
    hex::decode(hex.trim_ascii()).expect("hex")
}

fn cert(pem: &[u8], name: &str) -> Certificate {
    match Certificate::parse_pem(pem, name)
        .expect("certificate")
        .remove(0)
    {
        Parsed::Signer(c) => *c,
        Parsed::Ed25519(_) => panic!("{name}: not a PKCS#7 signer"),
    }
}

fn certs() -> Vec<Certificate> {
    vec![
        cert(vector!("rsa2048.pem"), "rsa2048"),
        cert(vector!("p256.pem"), "p256"),
        cert(vector!("p384.pem"), "p384"),
    ]
}

/// (signature, formatted digest is SHA-512's, the certificate that signed it).
fn vectors() -> Vec<(&'static [u8], bool, &'static str)> {
    vec![
        (vector!("rsa2048.sig"), false, "rsa2048"),
        (vector!("rsa2048-sha512.sig"), true, "rsa2048"),
        (vector!("p256.sig"), false, "p256"),
        (vector!("p384.sig"), false, "p384"),
        (vector!("p256-attrs.sig"), false, "p256"),
        (vector!("rsa2048-keyid.sig"), false, "rsa2048"),
    ]
}

#[test]
fn stock_signatures_verify_under_their_certificate_only() {
    let all = certs();
    for (i, (sig, sha512, signer)) in vectors().into_iter().enumerate() {
        let m = SignedMessage::parse(sig).unwrap_or_else(|e| panic!("vector {i}: {e}"));
        let found = m.verify(&formatted(sha512), &all).expect("verifies");
        assert!(
            found.name().contains(signer),
            "vector {i}: {}",
            found.name()
        );
        // Another file's digest: the signature (or messageDigest) does not match.
        assert!(
            matches!(
                m.verify(&formatted(!sha512), &all),
                Err(SignatureError::Rejected(_))
            ),
            "vector {i}"
        );
        // Without the signer's certificate: not trusted.
        let others: Vec<Certificate> = certs()
            .into_iter()
            .filter(|c| !c.name().contains(signer))
            .collect();
        assert!(
            matches!(
                m.verify(&formatted(sha512), &others),
                Err(SignatureError::NoKey(_))
            ),
            "vector {i}"
        );
    }
    let attrs = SignedMessage::parse(vector!("p256-attrs.sig")).expect("parse");
    assert_eq!(attrs.digest_algorithm(), DigestAlgorithm::Sha384);
    assert!(attrs.signed_attributes.is_some());
    let keyid = SignedMessage::parse(vector!("rsa2048-keyid.sig")).expect("parse");
    assert!(matches!(keyid.signer, SignerId::KeyId(_)));
}

/// RSA PKCS#1 v1.5 is deterministic: the same key, certificate and digest give
/// `fsverity sign`'s bytes. ECDSA signatures differ each time but verify.
#[test]
fn signer_reproduces_fsverity_sign() {
    let key = std::str::from_utf8(vector!("rsa2048.key")).expect("utf-8");
    let rsa =
        Signer::new(key, "rsa2048.key", vector!("rsa2048.pem"), "rsa2048.pem").expect("signer");
    assert_eq!(
        rsa.sign(DigestAlgorithm::Sha256, &formatted(false))
            .expect("sign"),
        vector!("rsa2048.sig")
    );
    assert_eq!(
        rsa.sign(DigestAlgorithm::Sha512, &formatted(true))
            .expect("sign"),
        vector!("rsa2048-sha512.sig")
    );
    for (key, pem) in [
        (&vector!("p256.key")[..], &vector!("p256.pem")[..]),
        (vector!("p384.key"), vector!("p384.pem")),
    ] {
        let key = std::str::from_utf8(key).expect("utf-8");
        let ec = Signer::new(key, "ec.key", pem, "ec.pem").expect("signer");
        for md in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let sig = ec.sign(md, &formatted(false)).expect("sign");
            let m = SignedMessage::parse(&sig).expect("parse our own");
            m.verify(&formatted(false), &certs()).expect("verifies");
        }
    }
    // A certificate of another key is refused.
    assert!(matches!(
        Signer::new(key, "rsa2048.key", vector!("p256.pem"), "p256.pem"),
        Err(SignatureError::Key { .. })
    ));
}

/// Every cut and extension of a valid message is malformed; thousands of random
/// mutations never panic, never give another error kind, and are accepted only
/// when no field that is checked changed.
#[test]
fn mutated_messages_never_panic() {
    let trusted = TrustedKeys::default().with_certificates(certs());
    let digest = |sha512: bool| {
        let f = formatted(sha512);
        let alg = crate::format::HashAlgorithm::from_id(u32::from(f[8])).expect("alg");
        (alg, crate::format::HashValue::from_slice(&f[12..]))
    };
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (sig, sha512, _) in vectors() {
        let original = SignedMessage::parse(sig).expect("parse");
        for n in 0..sig.len() {
            assert!(
                matches!(
                    SignedMessage::parse(&sig[..n]),
                    Err(SignatureError::Malformed(_))
                ),
                "cut at {n}"
            );
        }
        for extra in [&[0u8][..], &[0x30, 0], &[0xff; 7]] {
            let long = [sig, extra].concat();
            assert!(matches!(
                SignedMessage::parse(&long),
                Err(SignatureError::Malformed(_))
            ));
        }
        let (alg, d) = digest(sha512);
        for _ in 0..2_000 {
            let mut bad = sig.to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % bad.len() as u64) as usize;
                bad[at] = match next() % 3 {
                    0 => bad[at] ^ (1 << (next() % 8)),
                    1 => next() as u8,
                    _ => 0,
                };
            }
            match trusted.verify(alg, &d, &bad) {
                Ok(_) => {
                    let m = SignedMessage::parse(&bad).expect("accepted, so it parses");
                    assert_eq!(m, original, "a checked field changed, yet it verified");
                }
                Err(
                    SignatureError::Malformed(_)
                    | SignatureError::NoKey(_)
                    | SignatureError::Rejected(_),
                ) => {}
                Err(e) => panic!("unexpected error kind: {e:?}"),
            }
        }
    }
}

#[test]
fn garbage_certificates_are_key_errors() {
    assert!(matches!(
        Certificate::parse_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "x"
        ),
        Err(SignatureError::Key { .. })
    ));
    assert!(matches!(
        Certificate::parse_der(&[0x30, 0x03, 0x02, 0x01, 0x01], "x"),
        Err(SignatureError::Key { .. })
    ));
}
