//! Dropout in training, as the reference's `fit` runs the model (`model.train()`): inverted
//! dropout with the config's `dropout_rate` at every `nn.Dropout` of the model and on the
//! attention weights after the softmax. Inference and validation never drop.
//!
//! The graph asks for a keep mask per [`DropoutSite`]: a named position in one forward, so that a
//! block recomputed in a checkpointed backward gets the mask of its forward. Masks come from a
//! [`DropoutMasks`] source: [`SeededMasks`] in training (deterministic for a seed), or masks
//! recorded from the reference, replayed by the parity tests.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;

use super::rng::Rng;

/// A position of dropout in the forward of a batch (`chronos.chronos2` module in brackets), with
/// the shape of the array it drops in our graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropoutSite {
    /// The output layer of the input patch embedding, before its residual (`ResidualBlock`),
    /// `(rows, context + future patches, d_model)`.
    InputEmbedding,
    /// The encoder input after [REG] (`Chronos2Encoder.dropout`), `(rows, seq_len, d_model)`.
    EncoderInput,
    /// Time attention weights after the softmax (`MHA`), `(rows, heads, seq_len, seq_len)`.
    TimeAttentionWeights { block: usize },
    /// Time attention output before its residual (`TimeSelfAttention`), `(rows, seq_len, d_model)`.
    TimeAttentionOutput { block: usize },
    /// Group attention weights after the softmax of run `run` of the group layout (`MHA`),
    /// `(groups * seq_len, heads, size, size)`: a query's weights over its group's members.
    GroupAttentionWeights { block: usize, run: usize },
    /// Group attention output before its residual (`GroupSelfAttention`), `(rows, seq_len, d_model)`.
    GroupAttentionOutput { block: usize },
    /// The feed-forward's hidden layer after the activation (`MLP`), `(rows, seq_len, d_ff)`.
    MlpHidden { block: usize },
    /// The feed-forward's output before its residual (`FeedForward`), `(rows, seq_len, d_model)`.
    FeedForwardOutput { block: usize },
    /// The encoder output after the final norm (`Chronos2Encoder.dropout`), `(rows, seq_len, d_model)`.
    FinalHidden,
    /// The output layer of the output patch embedding, before its residual (`ResidualBlock`),
    /// `(rows, output patches, quantiles * patch)`.
    OutputHead,
}

impl DropoutSite {
    /// A distinct number per site (kind, block, run).
    pub fn code(self) -> u64 {
        let (kind, block, run) = match self {
            DropoutSite::InputEmbedding => (0, 0, 0),
            DropoutSite::EncoderInput => (1, 0, 0),
            DropoutSite::TimeAttentionWeights { block } => (2, block, 0),
            DropoutSite::TimeAttentionOutput { block } => (3, block, 0),
            DropoutSite::GroupAttentionWeights { block, run } => (4, block, run),
            DropoutSite::GroupAttentionOutput { block } => (5, block, 0),
            DropoutSite::MlpHidden { block } => (6, block, 0),
            DropoutSite::FeedForwardOutput { block } => (7, block, 0),
            DropoutSite::FinalHidden => (8, 0, 0),
            DropoutSite::OutputHead => (9, 0, 0),
        };
        kind | (block as u64) << 8 | (run as u64) << 32
    }
}

/// Where the keep masks of training dropout come from.
pub trait DropoutMasks: Send {
    /// Called once before the forward of each training step.
    fn begin_step(&mut self);
    /// The keep mask (row-major, `true`: kept) of the array of `shape` dropped at `site` with
    /// probability `rate` in the current step. Asking twice for a site in one step gives the same
    /// mask (a checkpointed block is recomputed in the backward).
    fn keep(&mut self, site: DropoutSite, shape: &[usize], rate: f32) -> Result<Vec<bool>>;
}

/// Masks drawn from the project's seeded generator: each element kept with probability
/// `1 - rate`, independently; the mask of a site is a function of the seed, the step and the site.
#[derive(Debug, Clone)]
pub struct SeededMasks {
    seed: u64,
    step: u64,
}

impl SeededMasks {
    pub fn new(seed: u64) -> Self {
        SeededMasks { seed, step: 0 }
    }
}

impl DropoutMasks for SeededMasks {
    fn begin_step(&mut self) {
        self.step += 1;
    }

    fn keep(&mut self, site: DropoutSite, shape: &[usize], rate: f32) -> Result<Vec<bool>> {
        let mut rng = Rng::new(
            self.seed ^ self.step.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ site.code().wrapping_mul(0x8CB9_2BA7_2F3D_8DD7),
        );
        // kept when a uniform u64 is at least rate * 2^64
        let threshold = (rate.clamp(0.0, 1.0) as f64 * 18_446_744_073_709_551_616.0).min(u64::MAX as f64) as u64;
        Ok((0..shape.iter().product::<usize>()).map(|_| rng.next_u64() >= threshold).collect())
    }
}

/// The multiplier of inverted dropout for a keep mask: `1 / (1 - rate)` where kept, 0 elsewhere
/// (torch: `keep / (1 - p)` in the input's dtype; all 0 at rate 1).
pub fn scaled_mask(keep: &[bool], rate: f32) -> Vec<f32> {
    if rate >= 1.0 {
        return vec![0.0; keep.len()];
    }
    let scale = 1.0 / (1.0 - rate);
    keep.iter().map(|&k| if k { scale } else { 0.0 }).collect()
}

struct State {
    masks: Box<dyn DropoutMasks>,
    /// True during a training step ([`TrainingDropout::training_step`]).
    active: bool,
}

/// The dropout of a backend's training model, shared by its ops (clones share it): the mask
/// source and whether the current forward drops.
#[derive(Clone)]
pub struct TrainingDropout(Arc<Mutex<State>>);

/// While alive, forwards drop out (a training step); once dropped, they do not (validation).
pub struct TrainingStep<'a>(&'a TrainingDropout);

impl Drop for TrainingStep<'_> {
    fn drop(&mut self) {
        self.0.state().active = false;
    }
}

impl TrainingDropout {
    /// Masks from [`SeededMasks`] of `seed`.
    pub fn new(seed: u64) -> Self {
        TrainingDropout(Arc::new(Mutex::new(State { masks: Box::new(SeededMasks::new(seed)), active: false })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_masks(&self, masks: Box<dyn DropoutMasks>) {
        self.state().masks = masks;
    }

    /// Whether the current forward drops ([`crate::ops::Ops::dropout_active`]).
    pub fn active(&self) -> bool {
        self.state().active
    }

    /// Starts a training step: the masks' next step, dropout on until the guard drops.
    pub fn training_step(&self) -> TrainingStep<'_> {
        let mut state = self.state();
        state.masks.begin_step();
        state.active = true;
        TrainingStep(self)
    }

    /// The multiplier of the array of `shape` dropped at `site` ([`scaled_mask`]).
    pub fn multiplier(&self, site: DropoutSite, shape: &[usize], rate: f32) -> Result<Vec<f32>> {
        Ok(scaled_mask(&self.state().masks.keep(site, shape, rate)?, rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITES: [DropoutSite; 4] = [
        DropoutSite::EncoderInput,
        DropoutSite::TimeAttentionWeights { block: 3 },
        DropoutSite::GroupAttentionWeights { block: 3, run: 1 },
        DropoutSite::OutputHead,
    ];

    /// Over 4 sites x 3 steps x 20 000 elements, the kept fraction is within 5 standard deviations
    /// of a binomial's (`sqrt(p (1 - p) / n)`) of `1 - p`, for p = 0.1 and 0.5.
    #[test]
    fn seeded_masks_keep_one_minus_the_rate() {
        for rate in [0.1f32, 0.5] {
            let mut masks = SeededMasks::new(42);
            let (mut kept, mut n) = (0usize, 0usize);
            for _ in 0..3 {
                masks.begin_step();
                for site in SITES {
                    let keep = masks.keep(site, &[100, 200], rate).unwrap();
                    kept += keep.iter().filter(|&&k| k).count();
                    n += keep.len();
                }
            }
            let p = rate as f64;
            let std = (p * (1.0 - p) / n as f64).sqrt();
            let fraction = kept as f64 / n as f64;
            assert!((fraction - (1.0 - p)).abs() < 5.0 * std, "rate {rate}: kept {fraction} of {n}");
        }
    }

    #[test]
    fn a_site_gets_the_same_mask_within_a_step_and_another_in_the_next() {
        let mut masks = SeededMasks::new(7);
        masks.begin_step();
        let first = masks.keep(SITES[1], &[64, 64], 0.3).unwrap();
        assert_eq!(first, masks.keep(SITES[1], &[64, 64], 0.3).unwrap());
        assert_ne!(first, masks.keep(SITES[2], &[64, 64], 0.3).unwrap());
        masks.begin_step();
        assert_ne!(first, masks.keep(SITES[1], &[64, 64], 0.3).unwrap());
        let mut again = SeededMasks::new(7);
        again.begin_step();
        assert_eq!(first, again.keep(SITES[1], &[64, 64], 0.3).unwrap(), "same seed, same masks");
        let mut other = SeededMasks::new(8);
        other.begin_step();
        assert_ne!(first, other.keep(SITES[1], &[64, 64], 0.3).unwrap());
    }

    #[test]
    fn a_training_step_turns_dropout_on_until_it_ends() {
        let dropout = TrainingDropout::new(1);
        assert!(!dropout.active());
        let step = dropout.training_step();
        assert!(dropout.active());
        let m = dropout.multiplier(DropoutSite::FinalHidden, &[1000], 0.2).unwrap();
        assert!(m.iter().all(|&v| v == 0.0 || v == 1.25) && m.contains(&0.0) && m.contains(&1.25));
        drop(step);
        assert!(!dropout.active());
    }

    #[test]
    fn scaled_mask_is_inverted_dropout() {
        assert_eq!(scaled_mask(&[true, false, true], 0.5), vec![2.0, 0.0, 2.0]);
        assert_eq!(scaled_mask(&[true, false], 1.0), vec![0.0, 0.0], "rate 1 drops everything (no 0 * inf)");
    }
}
