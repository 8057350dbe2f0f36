//! Multi-buffer SHA-256 on AVX-512: sixteen fs-verity blocks hashed at once,
//! one per 32-bit lane of the vector registers.
//!
//! A single SHA-256 stream is serial, and SHA-NI's round instruction is the
//! bottleneck on one stream; the sixteen blocks of a read are independent
//! messages of the same length with the same salt prefix, so the round
//! function and the message schedule run sixteen wide with no cross-lane
//! dependency. Measured on the project's Xeon (docs/BENCHMARKS.md): about
//! 1.8x the `sha2` crate's SHA-NI code on 4 KiB blocks.
//!
//! Quarantined: the only caller is `format::hash::BlockHasher::hash_blocks`,
//! which checks [`available`] (runtime CPU detection) and hashes whatever this
//! module leaves (short groups, other CPUs, other algorithms) with `sha2`. The
//! tests compare it with `sha2` on every block length up to 4 KiB, random
//! data, with and without a salt prefix. The arithmetic is FIPS 180-4 §6.2.2
//! (the same constants and functions as any SHA-256), lane-wise.

use std::arch::x86_64::*;

/// Blocks hashed per pass.
pub(crate) const LANES: usize = 16;

/// A final group smaller than this is left to the caller: below about half
/// the lanes, hashing the blocks one by one is faster than a full pass.
const MIN_LANES: usize = 8;

/// FIPS 180-4 §4.2.2: the round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// FIPS 180-4 §5.3.3: the initial hash value.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Whether this CPU runs the multi-buffer code (AVX-512 F and BW). The
/// standard library caches the detection: this is an atomic load.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// Hashes consecutive `block_size` blocks of `data`, each preceded by
/// `prefix` (empty, or the salt padded to one 64-byte SHA-256 block), into
/// consecutive 32-byte digests of `out`, sixteen at a time. Returns how many
/// leading blocks it hashed: 0 on a CPU without AVX-512 or for a block size
/// that is not a multiple of 64, and never a final group of fewer than eight
/// blocks. The caller hashes the rest.
pub(crate) fn hash_blocks(prefix: &[u8], data: &[u8], block_size: usize, out: &mut [u8]) -> usize {
    if !available()
        || block_size == 0
        || !block_size.is_multiple_of(64)
        || !(prefix.is_empty() || prefix.len() == 64)
    {
        return 0;
    }
    let blocks = (data.len() / block_size).min(out.len() / 32);
    let mut done = 0;
    while blocks - done >= MIN_LANES {
        let n = (blocks - done).min(LANES);
        // Lanes past the last block hash it again; their digests are dropped.
        let rows: [&[u8]; LANES] = std::array::from_fn(|i| {
            let b = done + i.min(n - 1);
            &data[b * block_size..(b + 1) * block_size]
        });
        let mut digests = [[0u8; 32]; LANES];
        // SAFETY: `available()` found AVX-512F and AVX-512BW on this CPU,
        // the features `hash16` is compiled for.
        unsafe { hash16(prefix, &rows, &mut digests) };
        for (i, d) in digests.iter().take(n).enumerate() {
            out[(done + i) * 32..(done + i + 1) * 32].copy_from_slice(d);
        }
        done += n;
    }
    done
}

/// SHA-256 of `prefix || rows[i]` for each lane `i`. Every row has the same
/// length, a multiple of 64; `prefix` is empty or 64 bytes.
#[target_feature(enable = "avx512f,avx512bw")]
fn hash16(prefix: &[u8], rows: &[&[u8]; LANES], out: &mut [[u8; 32]; LANES]) {
    let mut state: [__m512i; 8] = IV.map(|v| _mm512_set1_epi32(v as i32));
    if !prefix.is_empty() {
        compress(&mut state, broadcast(prefix));
    }
    let len = rows[0].len();
    for offset in (0..len).step_by(64) {
        compress(&mut state, transpose(rows, offset));
    }
    // The padding block is the same in every lane: the lengths are equal.
    let mut pad = [0u8; 64];
    pad[0] = 0x80;
    pad[56..].copy_from_slice(&(((prefix.len() + len) as u64) * 8).to_be_bytes());
    compress(&mut state, broadcast(&pad));
    let mut words = [[0u32; LANES]; 8];
    for (w, s) in words.iter_mut().zip(state) {
        // SAFETY: `w` is 16 u32s, exactly the 64 bytes an unaligned store writes.
        unsafe { _mm512_storeu_si512(w.as_mut_ptr().cast(), s) };
    }
    for (lane, digest) in out.iter_mut().enumerate() {
        for (j, w) in words.iter().enumerate() {
            digest[4 * j..4 * j + 4].copy_from_slice(&w[lane].to_be_bytes());
        }
    }
}

/// One 64-byte block that is the same in every lane, as big-endian words.
#[target_feature(enable = "avx512f")]
fn broadcast(block: &[u8]) -> [__m512i; 16] {
    std::array::from_fn(|i| {
        let w = u32::from_be_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ]);
        _mm512_set1_epi32(w as i32)
    })
}

/// Bytes `offset..offset + 64` of every row, as sixteen vectors of big-endian
/// words: vector `t` holds word `t` of each lane (a 16x16 transpose).
#[target_feature(enable = "avx512f,avx512bw")]
fn transpose(rows: &[&[u8]; LANES], offset: usize) -> [__m512i; 16] {
    let swap = _mm512_broadcast_i32x4(_mm_set_epi8(
        12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
    ));
    let r: [__m512i; 16] = std::array::from_fn(|i| {
        let bytes = &rows[i][offset..offset + 64];
        // SAFETY: `bytes` is exactly the 64 bytes an unaligned load reads.
        let v = unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) };
        _mm512_shuffle_epi8(v, swap)
    });
    // 32-bit then 64-bit interleaves within each 128-bit lane: u[4g + j]
    // holds, in 128-bit lane L, word 4L + j of rows 4g..4g + 4.
    let mut u = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        let (r0, r1, r2, r3) = (r[4 * g], r[4 * g + 1], r[4 * g + 2], r[4 * g + 3]);
        let t0 = _mm512_unpacklo_epi32(r0, r1);
        let t1 = _mm512_unpackhi_epi32(r0, r1);
        let t2 = _mm512_unpacklo_epi32(r2, r3);
        let t3 = _mm512_unpackhi_epi32(r2, r3);
        u[4 * g] = _mm512_unpacklo_epi64(t0, t2);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t0, t2);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t1, t3);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t1, t3);
    }
    // Then gather 128-bit lane L of u[j], u[4 + j], u[8 + j], u[12 + j]
    // into word 4L + j.
    let mut w = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let a = _mm512_shuffle_i32x4::<0x44>(u[j], u[4 + j]);
        let b = _mm512_shuffle_i32x4::<0xEE>(u[j], u[4 + j]);
        let c = _mm512_shuffle_i32x4::<0x44>(u[8 + j], u[12 + j]);
        let d = _mm512_shuffle_i32x4::<0xEE>(u[8 + j], u[12 + j]);
        w[j] = _mm512_shuffle_i32x4::<0x88>(a, c);
        w[4 + j] = _mm512_shuffle_i32x4::<0xDD>(a, c);
        w[8 + j] = _mm512_shuffle_i32x4::<0x88>(b, d);
        w[12 + j] = _mm512_shuffle_i32x4::<0xDD>(b, d);
    }
    w
}

/// Three-way XOR.
#[target_feature(enable = "avx512f")]
fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<0x96>(a, b, c)
}

/// FIPS 180-4 §6.2.2: one compression of 64 message bytes (`w`, as
/// big-endian words) into `state`, in every lane.
#[target_feature(enable = "avx512f")]
fn compress(state: &mut [__m512i; 8], mut w: [__m512i; 16]) {
    let add = _mm512_add_epi32;
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for (t, k) in K.iter().enumerate() {
        if t >= 16 {
            // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]
            let w15 = w[(t + 1) % 16];
            let w2 = w[(t + 14) % 16];
            let s0 = xor3(
                _mm512_ror_epi32::<7>(w15),
                _mm512_ror_epi32::<18>(w15),
                _mm512_srli_epi32::<3>(w15),
            );
            let s1 = xor3(
                _mm512_ror_epi32::<17>(w2),
                _mm512_ror_epi32::<19>(w2),
                _mm512_srli_epi32::<10>(w2),
            );
            w[t % 16] = add(add(w[t % 16], s0), add(w[(t + 9) % 16], s1));
        }
        let sigma1 = xor3(
            _mm512_ror_epi32::<6>(e),
            _mm512_ror_epi32::<11>(e),
            _mm512_ror_epi32::<25>(e),
        );
        // Ch(e, f, g) = e ? f : g; Maj(a, b, c) = majority (truth tables 0xCA, 0xE8).
        let ch = _mm512_ternarylogic_epi32::<0xCA>(e, f, g);
        let kw = add(_mm512_set1_epi32(*k as i32), w[t % 16]);
        let t1 = add(add(h, sigma1), add(ch, kw));
        let sigma0 = xor3(
            _mm512_ror_epi32::<2>(a),
            _mm512_ror_epi32::<13>(a),
            _mm512_ror_epi32::<22>(a),
        );
        let t2 = add(sigma0, _mm512_ternarylogic_epi32::<0xE8>(a, b, c));
        h = g;
        g = f;
        f = e;
        e = add(d, t1);
        d = c;
        c = b;
        b = a;
        a = add(t1, t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = add(*s, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn reference(prefix: &[u8], block: &[u8]) -> [u8; 32] {
        sha2::Sha256::new()
            .chain_update(prefix)
            .chain_update(block)
            .finalize()
            .into()
    }

    /// Every block length the format could use up to 4 KiB (multiples of
    /// 64), every group size from 0 to 40 blocks, salted and not: the same
    /// digests as `sha2`, and exactly the documented blocks hashed.
    #[test]
    fn matches_sha2_on_every_length_and_group() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: multi-buffer SHA-256 not tested");
            return;
        }
        let mut salt = random(64, 99);
        salt[19..].fill(0); // a 19-byte salt, zero-padded as the format does
        for prefix in [&[][..], &salt[..], &[0u8; 64][..]] {
            for block_size in (64..=4096).step_by(64) {
                let count = 1 + block_size % 40;
                for blocks in [count, 16, 8, 7, 33] {
                    let data = random(blocks * block_size, (block_size + blocks) as u64);
                    let mut out = vec![0xAAu8; blocks * 32];
                    let done = hash_blocks(prefix, &data, block_size, &mut out);
                    let expect_done = if blocks % 16 >= MIN_LANES {
                        blocks
                    } else {
                        blocks - blocks % 16
                    };
                    assert_eq!(
                        done, expect_done,
                        "block size {block_size}, {blocks} blocks"
                    );
                    for (i, block) in data.chunks(block_size).enumerate() {
                        let got = &out[i * 32..(i + 1) * 32];
                        if i < done {
                            assert_eq!(got, reference(prefix, block), "bs {block_size} block {i}");
                        } else {
                            assert!(got.iter().all(|&b| b == 0xAA), "wrote past {done}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_hash() {
        let data = random(16 * 100, 1);
        let mut out = vec![0u8; 16 * 32];
        assert_eq!(hash_blocks(&[], &data, 100, &mut out), 0);
        assert_eq!(hash_blocks(&[1; 32], &data[..16 * 64], 64, &mut out), 0);
        assert_eq!(hash_blocks(&[], &data[..7 * 64], 64, &mut out), 0);
    }
}
