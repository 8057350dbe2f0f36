//! Builder and verifier against a deliberately naive whole-file reference.
//! (Known answers from fsverity-utils live in tests/it/digest/known_answers.rs.)

use std::sync::Arc;

use super::*;
use crate::format::{BlockHasher, HashAlgorithm, HashValue, TreeParams};
use crate::testing::pseudo_random;

/// The textbook construction: hash every level in memory, then concatenate
/// levels root first.
fn reference(data: &[u8], params: &TreeParams) -> (HashValue, Vec<u8>) {
    let bs = params.block_size();
    let h = BlockHasher::new(params.algorithm(), params.salt());
    if data.is_empty() {
        return (
            HashValue::zeroed(params.algorithm().digest_size()),
            Vec::new(),
        );
    }
    let pad = |v: &[u8]| {
        let mut v = v.to_vec();
        v.resize(v.len().div_ceil(bs) * bs, 0);
        v
    };
    let mut level = pad(data);
    let mut levels = Vec::new();
    loop {
        let hashes: Vec<u8> = level
            .chunks(bs)
            .flat_map(|b| h.hash(b).as_bytes().to_vec())
            .collect();
        if level.len() == bs {
            levels.reverse();
            return (HashValue::from_slice(&hashes), levels.concat());
        }
        level = pad(&hashes);
        levels.push(level.clone());
    }
}

fn build(data: &[u8], params: &TreeParams, threads: usize) -> (crate::format::Descriptor, Vec<u8>) {
    let mut sink = VecSink::default();
    let d = build_tree(&data, params, &mut sink, BuildOptions { threads }).expect("build");
    (d, sink.0)
}

#[test]
fn builder_matches_reference() {
    let cases = [
        (HashAlgorithm::Sha256, 4096, &b""[..]),
        (HashAlgorithm::Sha512, 1024, &b"salty"[..]),
        (HashAlgorithm::Blake3, 1024, &[1u8; 32][..]),
        (HashAlgorithm::Sha256, 1024, &[][..]),
    ];
    for (alg, bs, salt) in cases {
        let params = TreeParams::new(alg, bs, salt).expect("params");
        let hpb = bs as usize / alg.digest_size();
        for size in [
            0,
            1,
            bs as usize - 1,
            bs as usize,
            bs as usize + 1,
            hpb * bs as usize,
            hpb * bs as usize + 1,
            hpb * hpb * bs as usize + 3,
            5_000_123,
        ] {
            let data = pseudo_random(size, size as u64);
            let (root, tree) = reference(&data, &params);
            for threads in [1, 2] {
                let (d, t) = build(&data, &params, threads);
                assert_eq!(d.root_hash(), &root, "{alg} bs={bs} size={size}");
                assert_eq!(t, tree, "{alg} bs={bs} size={size}");
                assert_eq!(t.len() as u64, d.geometry().tree_size());
            }
        }
    }
}

fn verifier(data: &[u8], params: &TreeParams) -> (Verifier, Vec<u8>) {
    let (d, tree) = build(data, params, 1);
    let cache = Arc::new(BlockCache::new(1 << 20));
    (Verifier::new(d, Arc::new(tree.clone()), cache), tree)
}

#[test]
fn verified_reads_return_the_data() {
    let params = TreeParams::new(HashAlgorithm::Sha256, 1024, b"s").expect("params");
    let data = pseudo_random(40 * 1024 * 1024 / 16 + 77, 9);
    let (v, _) = verifier(&data, &params);
    for (offset, len) in [
        (0, 1),
        (0, 1024),
        (1000, 3000),
        (data.len() as u64 - 5, 100),
        (data.len() as u64, 10),
        (123_457, 65_536),
    ] {
        let (bytes, _) = v.read_verified(&data, offset, len).expect("verified");
        let end = (offset as usize + len).min(data.len());
        assert_eq!(&bytes[..], &data[(offset as usize).min(end)..end]);
    }
}

#[test]
fn a_small_files_tree_block_is_cached_without_its_padding() {
    let params = TreeParams::new(HashAlgorithm::Sha256, 4096, b"").expect("params");
    // 5 data blocks: one tree block holding 5 hashes of 32 bytes.
    let data = pseudo_random(5 * 4096 - 100, 3);
    let (d, tree) = build(&data, &params, 1);
    let cache = Arc::new(BlockCache::new(1 << 20));
    let v = Verifier::new(d, Arc::new(tree), cache.clone());
    let (whole, _) = v.read_verified(&data, 0, data.len()).expect("whole");
    assert_eq!(whole.as_slice(), &data[..]);
    assert_eq!(cache.stats().bytes, 5 * 32);
    // Partial reads check their blocks against that cached prefix.
    for (offset, len) in [(0, 1), (4096 * 4, 4096), (4095, 2)] {
        let (bytes, _) = v.read_verified(&data, offset, len).expect("partial");
        let end = (offset as usize + len).min(data.len());
        assert_eq!(bytes.as_slice(), &data[offset as usize..end]);
    }
    // And still find a changed block.
    let mut changed = data.clone();
    changed[4096 * 3 + 7] ^= 1;
    assert!(v.read_verified(&changed, 4096 * 3, 4096).is_err());
    assert!(v.read_verified(&changed, 0, 4096).is_ok());
}

#[test]
fn tampering_is_detected_where_it_happened() {
    let params = TreeParams::default();
    let data = pseudo_random(200 * 4096 + 100, 3);
    let (v, _) = verifier(&data, &params);
    let mut bad = data.clone();
    bad[150 * 4096 + 7] ^= 1;
    let err = v.read_verified(&bad, 150 * 4096, 10).expect_err("corrupt");
    assert!(matches!(err, VerifyError::Mismatch(c) if c.pos == 150 * 4096 && c.level == -1));
    // Other blocks remain readable.
    assert!(v.read_verified(&bad, 149 * 4096, 4096).is_ok());
    // Garbage past the recorded size in the last block is detected too.
    let mut extended = data.clone();
    extended.push(1);
    assert!(matches!(
        v.read_verified(&extended, 200 * 4096, 10),
        Err(VerifyError::TrailingData { .. })
    ));
    // Truncation.
    let short = &data[..150 * 4096];
    assert!(matches!(
        v.read_verified(&short, 160 * 4096, 10),
        Err(VerifyError::Truncated { .. })
    ));
}

/// Large reads are split over the cores (each part read and hashed on its
/// own): the bytes come back whole, a bad block in any part fails the whole
/// read at that block (the first bad one when several are), and a backing
/// file that ends inside a part is reported as truncated.
#[test]
fn large_reads_split_over_cores_verify_every_part() {
    let params = TreeParams::default();
    let data = pseudo_random(3 * 1024 * 1024 + 5000, 11);
    let (v, _) = verifier(&data, &params);
    let cores = rayon::current_num_threads();
    for (offset, len, split) in [
        (0u64, 1usize << 20, true),
        (4096, 1 << 20, true),
        (1000, 1 << 20, true),
        (8192, 128 * 1024, true),
        (0, 124 * 1024, false),
        (3 * 1024 * 1024 - 4096, 1 << 20, false), // reaches the partial last block
    ] {
        let (bytes, stats) = v.read_verified(&data, offset, len).expect("verified");
        let end = (offset as usize + len).min(data.len());
        assert_eq!(&bytes[..], &data[offset as usize..end], "{offset}+{len}");
        match split && cores > 1 {
            true => assert!(stats.parts >= 2, "{offset}+{len}: {stats:?}"),
            false => assert_eq!(stats.parts, 1, "{offset}+{len}"),
        }
    }
    // One bad block in each possible part: the read fails at that block.
    for bad_block in [0usize, 100, 128, 200, 255] {
        let mut bad = data.clone();
        bad[bad_block * 4096 + 17] ^= 0x40;
        let err = v.read_verified(&bad, 0, 1 << 20).expect_err("corrupt");
        assert!(
            matches!(&err, VerifyError::Mismatch(c) if c.pos == bad_block as u64 * 4096 && c.level == -1),
            "block {bad_block}: {err}"
        );
    }
    let mut bad = data.clone();
    bad[250 * 4096] ^= 1;
    bad[10 * 4096] ^= 1;
    let err = v.read_verified(&bad, 0, 1 << 20).expect_err("corrupt");
    assert!(
        matches!(&err, VerifyError::Mismatch(c) if c.pos == 10 * 4096),
        "{err}"
    );
    // The backing file ends in the second half of a large read.
    let short = &data[..200 * 4096 + 10];
    let err = v.read_verified(&short, 0, 1 << 20).expect_err("truncated");
    assert!(
        matches!(err, VerifyError::Truncated { pos, .. } if pos == 200 * 4096 + 10),
        "{err}"
    );
}

#[test]
fn tree_tampering_is_detected_per_level() {
    let params = TreeParams::default();
    let data = pseudo_random(200 * 4096, 4);
    let (d, tree) = build(&data, &params, 1);
    let g = d.geometry();
    assert_eq!(g.num_levels(), 2);
    // (tampered level, block) -> (data block read, expected failing level or None)
    let cases = [
        ((1, 0), 0, Some(1)),
        ((1, 0), 130, Some(1)),
        ((0, 1), 130, Some(0)),
        ((0, 1), 5, None),
        ((0, 0), 5, Some(0)),
        ((0, 0), 130, None),
    ];
    for ((level, index), block, want) in cases {
        let mut bad = tree.clone();
        bad[g.tree_offset(level, index) as usize + 5] ^= 0x80;
        let v = Verifier::new(d.clone(), Arc::new(bad), Arc::new(BlockCache::new(1 << 20)));
        let got = v.read_verified(&data, block * 4096, 1);
        match (got, want) {
            (Ok((bytes, _)), None) => assert_eq!(bytes[0], data[block as usize * 4096]),
            (Err(VerifyError::Mismatch(c)), Some(w)) => {
                assert_eq!((c.level, c.pos), (w, block * 4096));
            }
            (other, _) => panic!("tamper {level}/{index}, read {block}: {other:?}"),
        }
    }
}

#[test]
fn sparse_files_hash_like_their_zeros() {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = tempfile::tempfile().expect("tempfile");
    let mut expected = vec![0u8; 9 * 1024 * 1024];
    f.seek(SeekFrom::Start(5 * 1024 * 1024 + 10)).expect("seek");
    f.write_all(b"island").expect("write");
    expected[5 * 1024 * 1024 + 10..5 * 1024 * 1024 + 16].copy_from_slice(b"island");
    f.set_len(expected.len() as u64).expect("set_len");
    let params = TreeParams::default();
    let (want, want_tree) = reference(&expected, &params);
    for threads in [1, 2] {
        let mut sink = VecSink::default();
        let d = build_tree(&f, &params, &mut sink, BuildOptions { threads }).expect("build");
        assert_eq!(d.root_hash(), &want);
        assert_eq!(sink.0, want_tree);
    }
}

#[test]
fn check_tree_finds_the_bad_block() {
    let params = TreeParams::default();
    let data = pseudo_random(200 * 4096, 5);
    let (d, tree) = build(&data, &params, 1);
    assert_eq!(check_tree(&d, &tree), Ok(()));
    let g = d.geometry();
    for (level, index) in [(1usize, 0u64), (0, 1)] {
        let mut bad = tree.clone();
        bad[g.tree_offset(level, index) as usize + 9] ^= 4;
        assert_eq!(check_tree(&d, &bad), Err((level, index)));
    }
    assert!(check_tree(&d, &tree[..4096]).is_err());
}

#[test]
fn bytes_past_the_recorded_size_are_hashed_as_zero_padding() {
    // A forged descriptor says the file holds 1 byte, with the root of the
    // whole 4 KiB block as the backing file holds it: the last block past the
    // recorded size must be zeros, so this must fail, never serve the byte.
    let params = TreeParams::default();
    let block = pseudo_random(4096, 7);
    let h = BlockHasher::new(params.algorithm(), params.salt());
    let forged = crate::format::Descriptor::new(params.clone(), 1, h.hash(&block));
    let verifier = Verifier::new(
        forged,
        Arc::new(Vec::<u8>::new()),
        Arc::new(BlockCache::new(1 << 20)),
    );
    let err = verifier
        .read_verified(&block.as_slice(), 0, 4096)
        .expect_err("the padding is not zeros");
    assert!(
        matches!(err, VerifyError::TrailingData { data_size: 1 }),
        "{err}"
    );
    // The honest descriptor of that one byte verifies over the byte followed
    // by zeros.
    let mut padded = vec![0u8; 4096];
    padded[0] = block[0];
    let honest = crate::format::Descriptor::new(params, 1, h.hash(&padded));
    let verifier = Verifier::new(
        honest,
        Arc::new(Vec::<u8>::new()),
        Arc::new(BlockCache::new(1 << 20)),
    );
    let (bytes, _) = verifier
        .read_verified(&padded.as_slice(), 0, 4096)
        .expect("verifies");
    assert_eq!(bytes.as_slice(), &block[..1]);
}
