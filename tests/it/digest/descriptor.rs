//! `Descriptor::decode` fed with garbage (a small deterministic fuzz loop) and
//! `decode(encode(d)) == d` for random valid descriptors.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fsverity_fuse::format::{
    DESCRIPTOR_SIZE, Descriptor, FormatError, HashAlgorithm, HashValue, TreeGeometry, TreeParams,
};

use crate::util::{XorShift64, random_bytes};

const SEED: u64 = 0xdec0_de00_f5ee_d001;

/// Decodes `bytes`, failing the test with the input in hex if decoding panics;
/// whatever decodes must re-encode to the same bytes (the encoding is canonical)
/// and have a geometry and a digest.
fn decode_checked(bytes: &[u8], what: &str) -> bool {
    let result = catch_unwind(AssertUnwindSafe(|| {
        Descriptor::decode(bytes).inspect(|d| {
            let _ = d.geometry();
            let _ = d.digest();
        })
    }));
    let Ok(result) = result else {
        panic!("{what}: decode panicked on {}", hex::encode(bytes));
    };
    match result {
        Ok(d) => {
            assert_eq!(
                d.encode()[..],
                *bytes,
                "{what}: decode accepted a non-canonical encoding"
            );
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

/// A random valid descriptor.
fn random_descriptor(rng: &mut XorShift64) -> Descriptor {
    let algorithm = HashAlgorithm::ALL[rng.below(HashAlgorithm::ALL.len() as u64) as usize];
    let block_size = 1u64 << rng.in_range(10..=16);
    let salt = random_bytes(rng.below(33) as usize, rng.next_u64());
    let params = TreeParams::new(algorithm, block_size, &salt).expect("valid parameters");
    let data_size = match rng.below(4) {
        0 => rng.below(1 << 20),
        1 => rng.next_u64() >> rng.below(64),
        2 => u64::MAX - rng.below(3),
        _ => rng.next_u64(),
    };
    let root = random_bytes(algorithm.digest_size(), rng.next_u64());
    Descriptor::new(params, data_size, HashValue::from_slice(&root))
}

#[test]
fn decode_never_panics() {
    let mut rng = XorShift64::new(SEED);
    // Wrong lengths.
    for len in (0..=2 * DESCRIPTOR_SIZE).filter(|&l| l != DESCRIPTOR_SIZE) {
        let bytes = random_bytes(len, rng.next_u64());
        assert!(!decode_checked(&bytes, &format!("length {len}")));
    }
    // Pure garbage: almost always rejected at the version byte.
    for i in 0..5_000 {
        decode_checked(
            &random_bytes(DESCRIPTOR_SIZE, rng.next_u64()),
            &format!("garbage {i}"),
        );
    }
    // Plausible headers with garbage fields, to get past the first checks.
    let mut accepted = 0;
    for i in 0..20_000 {
        let mut bytes = [0u8; DESCRIPTOR_SIZE];
        let header_only = rng.one_in(2);
        if header_only {
            // A valid header, random hash and salt areas, zeroed reserved fields
            // most of the time.
            rng.fill(&mut bytes[8..112]);
            bytes[0] = 1;
            bytes[1] = [1, 2, 0xb3, rng.next_u64() as u8][rng.below(4) as usize];
            bytes[2] = rng.in_range(8..=18) as u8;
            bytes[3] = rng.below(40) as u8;
        } else {
            bytes = random_descriptor(&mut rng).encode();
            for _ in 0..rng.in_range(1..=3) {
                bytes[rng.below(DESCRIPTOR_SIZE as u64) as usize] = rng.next_u64() as u8;
            }
        }
        if decode_checked(&bytes, &format!("mutated {i} (seed {SEED})")) {
            accepted += 1;
        }
    }
    assert!(
        accepted > 100,
        "the fuzz loop rarely reached a valid descriptor"
    );
}

#[test]
fn decode_inverts_encode() {
    let mut rng = XorShift64::new(SEED ^ 1);
    let mut too_deep = 0;
    for i in 0..5_000 {
        let d = random_descriptor(&mut rng);
        let bytes = d.encode();
        let what = format!("descriptor {i}: {d:?}");
        let g = TreeGeometry::new(
            d.data_size(),
            d.params().log_block_size(),
            d.algorithm().digest_size(),
        );
        if g.is_err() {
            // A size whose tree would need more than the kernel's 8 levels
            // (small blocks, long hashes, huge sizes): never a valid descriptor.
            assert_eq!(
                Descriptor::decode(&bytes),
                Err(FormatError::TooManyLevels(d.data_size())),
                "{what}"
            );
            too_deep += 1;
            continue;
        }
        assert_eq!(bytes[0], 1, "{what}: version");
        assert_eq!(bytes[1], d.algorithm().id(), "{what}: algorithm");
        assert_eq!(
            bytes[2],
            d.params().log_block_size(),
            "{what}: log_blocksize"
        );
        assert_eq!(
            usize::from(bytes[3]),
            d.params().salt().len(),
            "{what}: salt_size"
        );
        assert_eq!(
            bytes[8..16],
            d.data_size().to_le_bytes(),
            "{what}: data_size"
        );
        assert_eq!(Descriptor::decode(&bytes).as_ref(), Ok(&d), "{what}");
        assert_eq!(d.digest(), d.algorithm().hash(&bytes), "{what}: digest");
    }
    assert!(
        (1..2_500).contains(&too_deep),
        "{too_deep} of 5000 random descriptors too deep: the generator should mostly make valid ones"
    );
}
