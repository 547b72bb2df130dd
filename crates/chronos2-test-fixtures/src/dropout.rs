//! Dropout in training against the reference: the fixtures `tests/fixtures/finetune/dropout_*.json`
//! hold every dropout mask the reference drew in a training-mode forward, in call order, with the
//! loss and gradients. [`ReplayMasks`] hands those masks to our graph, site by site, in our
//! layout; [`check_dropout_loss_and_gradients`] runs every case on a backend.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use chronos2_core::config::ModelConfig;
use chronos2_core::model::{GroupLayout, GroupPlan};
use chronos2_core::train::{DropoutMasks, DropoutSite, TrainModel, TrainSpec};
use chronos2_core::weights::Weights;
use chronos2_core::{Error, Result};

use crate::finetune::{case_spec, compare_loss_and_gradients, finetune_case, set_initial, train_batch};
use crate::repo_root;

/// Builds a backend's training model from a config and weights.
pub type ConfigTrainLoader<'a> = &'a dyn Fn(ModelConfig, &Weights, TrainSpec) -> Result<Box<dyn TrainModel>>;

/// Full and LoRA on the tiny model (dropout 0.1, covariates: groups of 1, 2 and 4 rows).
pub const DROPOUT_CASES: [&str; 2] = ["dropout_tiny_full_covariates", "dropout_tiny_lora_covariates"];

/// Masks per call of the reference's dropout in one forward: the input embedding (context, then
/// future), the encoder input, six per block, the final hidden states, the output head.
const CALLS_PER_BLOCK: usize = 6;

/// One recorded keep mask.
#[derive(Debug, Clone)]
pub struct RecordedMask {
    pub shape: Vec<usize>,
    pub keep: Vec<bool>,
}

impl RecordedMask {
    /// `{"shape": [..], "bits": hex}`, bits row-major, most significant first.
    pub fn parse(v: &Value) -> Self {
        let shape: Vec<usize> =
            v["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let hex = v["bits"].as_str().expect("bits");
        let n: usize = shape.iter().product();
        let bytes: Vec<u8> =
            (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
        let keep = (0..n).map(|i| bytes[i / 8] >> (7 - i % 8) & 1 == 1).collect();
        RecordedMask { shape, keep }
    }
}

/// The reference's masks of one forward, given to our graph by [`DropoutSite`] and converted to
/// our layout: the input embedding's two calls joined along the tokens, the group attention's
/// `(time, rows, d)` output transposed, and its `(time, heads, rows, rows)` weights gathered per
/// run of equal-size groups (a query's weights over its own group's members).
pub struct ReplayMasks {
    masks: Vec<RecordedMask>,
    layout: GroupLayout,
    num_blocks: usize,
    used: Arc<Mutex<Vec<bool>>>,
}

impl ReplayMasks {
    pub fn new(masks: Vec<RecordedMask>, group_ids: &[i64], num_blocks: usize) -> Self {
        // the layout depends on the group ids only
        let layout = GroupPlan::new(group_ids, &vec![1.0; group_ids.len()], 1).layout;
        let used = Arc::new(Mutex::new(vec![false; masks.len()]));
        ReplayMasks { masks, layout, num_blocks, used }
    }

    /// Which recorded masks the graph has asked for so far.
    pub fn used(&self) -> Arc<Mutex<Vec<bool>>> {
        self.used.clone()
    }

    fn call(&self, index: usize) -> Result<&RecordedMask> {
        let expected = 5 + CALLS_PER_BLOCK * self.num_blocks;
        if self.masks.len() != expected {
            return Err(Error::InvalidInput(format!("{} recorded masks, expected {expected}", self.masks.len())));
        }
        self.used.lock().unwrap()[index] = true;
        Ok(&self.masks[index])
    }

    fn block_call(&self, block: usize, k: usize) -> Result<&RecordedMask> {
        self.call(3 + CALLS_PER_BLOCK * block + k)
    }

    fn convert(&self, site: DropoutSite, shape: &[usize]) -> Result<Vec<bool>> {
        Ok(match site {
            DropoutSite::InputEmbedding => {
                let (context, future) = (self.call(0)?, self.call(1)?);
                let rows = context.shape[0];
                let (a, b) = (context.keep.len() / rows, future.keep.len() / rows);
                (0..rows)
                    .flat_map(|r| context.keep[r * a..(r + 1) * a].iter().chain(&future.keep[r * b..(r + 1) * b]))
                    .copied()
                    .collect()
            }
            DropoutSite::EncoderInput => self.call(2)?.keep.clone(),
            DropoutSite::TimeAttentionWeights { block } => self.block_call(block, 0)?.keep.clone(),
            DropoutSite::TimeAttentionOutput { block } => self.block_call(block, 1)?.keep.clone(),
            DropoutSite::GroupAttentionWeights { block, run } => {
                let m = self.block_call(block, 2)?;
                let (seq, heads, rows) = (m.shape[0], m.shape[1], m.shape[2]);
                let run =
                    self.layout.runs.get(run).ok_or_else(|| Error::InvalidInput(format!("no group run {run}")))?;
                let row = |gathered: usize| self.layout.order.as_ref().map_or(gathered, |o| o[gathered]);
                let mut out = Vec::with_capacity(run.groups * seq * heads * run.size * run.size);
                for g in 0..run.groups {
                    for t in 0..seq {
                        for h in 0..heads {
                            for i in 0..run.size {
                                for j in 0..run.size {
                                    let (qi, kj) =
                                        (row(run.start + g * run.size + i), row(run.start + g * run.size + j));
                                    out.push(m.keep[((t * heads + h) * rows + qi) * rows + kj]);
                                }
                            }
                        }
                    }
                }
                out
            }
            DropoutSite::GroupAttentionOutput { block } => {
                let m = self.block_call(block, 3)?;
                let (seq, rows, d) = (m.shape[0], m.shape[1], m.shape[2]);
                (0..rows)
                    .flat_map(|r| (0..seq).flat_map(move |t| (0..d).map(move |c| (t, r, c))))
                    .map(|(t, r, c)| m.keep[(t * rows + r) * d + c])
                    .collect()
            }
            DropoutSite::MlpHidden { block } => self.block_call(block, 4)?.keep.clone(),
            DropoutSite::FeedForwardOutput { block } => self.block_call(block, 5)?.keep.clone(),
            DropoutSite::FinalHidden => self.call(3 + CALLS_PER_BLOCK * self.num_blocks)?.keep.clone(),
            DropoutSite::OutputHead => self.call(4 + CALLS_PER_BLOCK * self.num_blocks)?.keep.clone(),
        })
        .and_then(|keep| {
            if keep.len() == shape.iter().product::<usize>() {
                Ok(keep)
            } else {
                Err(Error::InvalidInput(format!(
                    "{site:?}: a recorded mask of {} values for shape {shape:?}",
                    keep.len()
                )))
            }
        })
    }
}

impl DropoutMasks for ReplayMasks {
    fn begin_step(&mut self) {}

    fn keep(&mut self, site: DropoutSite, shape: &[usize], _rate: f32) -> Result<Vec<bool>> {
        self.convert(site, shape)
    }
}

/// The case's config (its `dropout_rate` set) and weights.
pub fn case_config_and_weights(c: &Value) -> (ModelConfig, Weights) {
    let dir = repo_root().join(c["model"].as_str().expect("model"));
    let mut config = ModelConfig::from_file(&dir.join("config.json")).expect("config");
    config.dropout_rate = c["dropout_rate"].as_f64().expect("dropout_rate");
    (config, Weights::open(&dir.join("model.safetensors")).expect("weights"))
}

/// The case's model on a backend with the reference's LoRA initialisation and its masks replayed;
/// with the handle of which masks were used.
pub fn replaying_model(load: ConfigTrainLoader<'_>, c: &Value) -> (Box<dyn TrainModel>, Arc<Mutex<Vec<bool>>>) {
    let (config, weights) = case_config_and_weights(c);
    let num_blocks = config.num_layers;
    let mut model = load(config, &weights, case_spec(c)).expect("training model");
    set_initial(model.as_mut(), &c["lora_init"]);
    let masks = c["dropout_masks"].as_array().expect("dropout_masks").iter().map(RecordedMask::parse).collect();
    let replay = ReplayMasks::new(masks, &train_batch(&c["batch"]).model.group_ids, num_blocks);
    let used = replay.used();
    model.set_dropout_masks(Box::new(replay));
    (model, used)
}

/// Every [`DROPOUT_CASES`] case with the reference's masks replayed: every mask used, the loss
/// within 1e-5 relative and every gradient within the tolerance of the other gradient fixtures.
/// Returns the number of cases checked, or every mismatch.
pub fn check_dropout_loss_and_gradients(load: ConfigTrainLoader<'_>) -> std::result::Result<usize, String> {
    let mut failures = Vec::new();
    for name in DROPOUT_CASES {
        let c = finetune_case(name);
        let (mut m, used) = replaying_model(load, &c);
        let (loss, grads) = m.loss_and_grads(&train_batch(&c["batch"])).map_err(|e| format!("{name}: {e}"))?;
        let unused: Vec<usize> =
            used.lock().unwrap().iter().enumerate().filter(|(_, u)| !**u).map(|(i, _)| i).collect();
        if !unused.is_empty() {
            failures.push(format!("{name}: recorded masks never asked for (call numbers): {unused:?}"));
        }
        compare_loss_and_gradients(name, &c, loss, &m.parameter_names(), &grads, &mut failures);
    }
    if failures.is_empty() {
        Ok(DROPOUT_CASES.len())
    } else {
        Err(failures.join("\n"))
    }
}
