//! Test helpers shared by the unit tests (compiled for tests only): a seeded,
//! reproducible random stream (Marsaglia's xorshift64, shifts 13, 7, 17) and
//! the bytes it makes.

/// A seeded xorshift64 stream; reproducible from its seed (0 is replaced, as
/// it is xorshift's fixed point).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`n` at least 1; the modulo bias does not matter here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// An index in `0..n` (`n` at least 1).
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// `n` bytes of the stream.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `len` bytes seeded with `seed`: every block of a test file distinct.
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).bytes(len)
}
