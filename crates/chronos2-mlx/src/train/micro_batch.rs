//! How many rows an MLX training step runs at once.
//!
//! `value_and_grad` keeps the forward's intermediates of every encoder block until the backward
//! has used them (MLX has no checkpointing here), so a step's memory grows with its rows. A batch
//! with more rows than fit in [`chronos2_core::train::activation_budget`] runs as micro-batches
//! of whole groups ([`chronos2_core::train::TrainBatch::loss_and_grads_in_parts`]), which gives
//! the loss and gradients of the whole batch.

use chronos2_core::config::ModelConfig;
use chronos2_core::train::rows_within_budget;

/// Estimated memory of one encoder block's intermediates in an MLX step, in `d_model`-wide f32
/// rows per token: 18 measured, rounded up. The peak RSS of `chronos2 finetune --backend mlx
/// --mode lora` on the full-size model at context 512 (35 tokens a row, 12 blocks) grew by
/// 23.4 MB a row from 1 row (522 MB) to 32 rows (1,248 MB), MLX's CPU backend on Linux.
const ROWS_PER_TOKEN: usize = 20;

/// The most rows a step on `tokens_per_row` tokens a row keeps within
/// [`chronos2_core::train::activation_budget`] of a model with `weight_bytes` of fp32 weights; at
/// least one.
pub fn micro_batch_rows(config: &ModelConfig, tokens_per_row: usize, weight_bytes: usize) -> usize {
    rows_within_budget(4 * config.num_layers * tokens_per_row * ROWS_PER_TOKEN * config.d_model, weight_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronos2_core::train::activation_budget;

    /// The full-size architecture (478 MB of fp32 weights) at context 512 (35 tokens a row):
    /// 12 rows.
    #[test]
    fn rows_fill_the_budget_and_are_at_least_one() {
        let text = include_str!("../../../../tests/fixtures/models/tiny/config.json");
        let mut config = ModelConfig::from_json(text).unwrap();
        (config.d_model, config.num_layers) = (768, 12);
        let rows = micro_batch_rows(&config, 35, 478_000_000);
        let bytes = |rows: usize| 4 * 12 * rows * 35 * ROWS_PER_TOKEN * 768;
        assert!(rows >= 1 && bytes(rows) <= activation_budget(478_000_000), "{rows}");
        assert!(bytes(rows + 1) > activation_budget(478_000_000), "{rows}");
        assert_eq!(rows, 12);
        assert_eq!(micro_batch_rows(&config, 1 << 30, 478_000_000), 1);
    }
}
