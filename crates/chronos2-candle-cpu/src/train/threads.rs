//! How long the threads of candle's element-wise pool spin before they sleep, in training.
//!
//! candle runs its large element-wise ops (64K elements and up: nearly every activation of a
//! training step) on a pool of its own, whose threads spin at a barrier for 25,000 rounds after
//! each op before they sleep, while the matrix products ([`super::matmul`]) run on rayon's pool.
//! A training step alternates between the two, so each pool's threads spun while the other's
//! worked, two busy threads per core. chronos2-mini, LoRA, 32 rows, context 512, both pools on 16
//! threads (16-core H200 host, one run, the allocator settings of [`super::allocator`] given):
//! 1.31 steps/s spinning 25,000 rounds, 3.08 spinning 100. On the 2-core machine under load, two
//! threads of each pool had made a step 3.5x slower than one thread.

use std::sync::Once;

/// The variable candle reads, once, when it first uses its element-wise pool.
const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// The rounds a thread of candle's pool spins after an op before it sleeps, in training.
const TRAINING_SPIN_LIMIT: &str = "100";

/// Makes the threads of candle's element-wise pool sleep soon after each op, unless the user has
/// set `CANDLE_BARRIER_POOL_SPIN_LIMIT`. It takes effect only if candle has not started its pool
/// yet in this process.
pub fn short_candle_pool_spin() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os(SPIN_LIMIT).is_none() {
            std::env::set_var(SPIN_LIMIT, TRAINING_SPIN_LIMIT);
        }
    });
}
