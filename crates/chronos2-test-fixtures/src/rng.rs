//! A small deterministic generator for the backends' op tests (xorshift64*).

/// xorshift64* seeded with its field; uniform values in [-1, 1).
pub struct Rng(pub u64);

impl Rng {
    /// The next value, uniform in [-1, 1) with 24 random bits.
    pub fn f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `n` values.
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }

    /// An index in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.f32() + 1.0) * 0.5 * n as f32) as usize % n
    }
}
