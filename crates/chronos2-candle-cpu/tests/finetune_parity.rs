//! Fine-tuning on candle CPU against the reference (`tests/fixtures/finetune/`, written by
//! `scripts/generate_fixtures.py` with chronos-forecasting 2.3.2 + peft): the validation batch
//! built from the same tasks, the loss and the gradient of every trainable parameter (full, LoRA,
//! head, QLoRA on a dequantized base), and five AdamW steps of the reference's `Trainer`.

use std::path::Path;

use chronos2_candle_cpu::train::{Checkpointing, CpuTrainModel};
use chronos2_core::train::{TrainDataset, TrainModel, TrainSpec};
use chronos2_test_fixtures::finetune::{
    check_adamw_steps, check_loss_and_gradients, finetune_case as case, prepared_inputs, train_batch, GRAD_CASES,
};
use chronos2_test_fixtures::{flat, repo_root};

fn load(dir: &Path, spec: TrainSpec) -> chronos2_core::Result<Box<dyn TrainModel>> {
    Ok(Box::new(CpuTrainModel::load_dir(dir, spec)?))
}

/// Training steps that checkpoint every encoder block, whatever the batch.
fn load_checkpointed(dir: &Path, spec: TrainSpec) -> chronos2_core::Result<Box<dyn TrainModel>> {
    let mut model = CpuTrainModel::load_dir(dir, spec)?;
    model.set_checkpointing(Checkpointing::Blocks(usize::MAX));
    Ok(Box::new(model))
}

/// Training steps that keep the whole graph, whatever the batch.
fn load_whole(dir: &Path, spec: TrainSpec) -> chronos2_core::Result<Box<dyn TrainModel>> {
    let mut model = CpuTrainModel::load_dir(dir, spec)?;
    model.set_checkpointing(Checkpointing::Blocks(0));
    Ok(Box::new(model))
}

/// Training steps that run one group at a time (micro-batches of whole groups).
fn load_micro_batched(dir: &Path, spec: TrainSpec) -> chronos2_core::Result<Box<dyn TrainModel>> {
    let mut model = CpuTrainModel::load_dir(dir, spec)?;
    model.set_micro_batch_rows(Some(1));
    Ok(Box::new(model))
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn same_nan(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y)
}

#[test]
fn validation_batch_matches_the_reference_dataset() {
    for name in GRAD_CASES {
        let c = case(name);
        let h = c["prediction_length"].as_u64().unwrap() as usize;
        let ctx = c["context_length"].as_u64().unwrap() as usize;
        let ds = TrainDataset::new(prepared_inputs(&c["prepared"]), ctx, h, h, 256, 16).unwrap();
        let ours = &ds.validation_batches()[0];
        let theirs = train_batch(&c["batch"]);
        assert_eq!(ours.model.group_ids, theirs.model.group_ids, "{name}");
        assert_eq!((ours.model.rows, ours.model.context_len), (theirs.model.rows, theirs.model.context_len), "{name}");
        assert!(same_nan(&ours.model.context, &theirs.model.context), "{name}: context");
        assert!(same_nan(&ours.future_target, &theirs.future_target), "{name}: future target");
        assert!(
            same_nan(ours.model.future_covariates.as_ref().unwrap(), theirs.model.future_covariates.as_ref().unwrap()),
            "{name}: future covariates"
        );
        assert_eq!(ours.model.num_output_patches, theirs.model.num_output_patches);
    }
}

/// With the default checkpointing (on these small models: none), every block checkpointed, and
/// none.
#[test]
fn loss_and_gradients_match_the_reference() {
    for load in [load, load_checkpointed, load_whole, load_micro_batched] {
        let checked = check_loss_and_gradients(&load).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked, GRAD_CASES.len());
    }
}

/// With the default checkpointing, every block checkpointed, none, and one group at a time.
#[test]
fn five_adamw_steps_match_the_reference_trainer() {
    for load in [load, load_checkpointed, load_whole, load_micro_batched] {
        let checked = check_adamw_steps(&load).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked, 3);
    }
}

/// The reference's PEFT adapter, read and fused by us, forecasts what the reference forecasts
/// through it; the fused weights are the base plus `scaling * B A`.
#[test]
fn reference_adapter_fused_forecasts_like_the_reference() {
    use chronos2_core::pipeline::{predict_raw, PredictOptions, SeriesInput};
    use chronos2_core::train::export::{read_safetensors, write_fused, Adapter};
    use chronos2_core::train::LoraPair;

    let c = case("adapter_tiny_lora");
    let root = repo_root();
    let adapter = Adapter::load(&root.join(c["adapter"].as_str().unwrap())).unwrap();
    let base_dir = root.join(c["model"].as_str().unwrap());
    let out = std::env::temp_dir().join(format!("chronos2-fused-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    write_fused(&out, &base_dir, &adapter).unwrap();

    let base = read_safetensors(&base_dir.join("model.safetensors")).unwrap();
    let fused = read_safetensors(&out.join("model.safetensors")).unwrap();
    let Adapter::Lora { pairs, .. } = &adapter else { panic!("a LoRA adapter") };
    assert_eq!(pairs.len(), 17, "2 blocks x 2 attentions x 4 projections + the head's output layer");
    for (b, f) in base.iter().zip(&fused) {
        let module = b.name.strip_suffix(".weight").unwrap_or("");
        match pairs.get(module) {
            None => assert_eq!(b.data, f.data, "{} changed without an adapter", b.name),
            Some(LoraPair { a, b: bb, scaling }) => {
                let (o, i, r) = (b.shape[0], b.shape[1], a.shape[0]);
                let delta: f32 = (0..r).map(|j| bb.data[j] * a.data[j * i]).sum();
                assert!((f.data[0] - b.data[0] - scaling * delta).abs() < 1e-6, "{}", b.name);
                assert_eq!(f.data.len(), o * i);
            }
        }
    }

    let model = chronos2_candle_cpu::load(&out).unwrap();
    let h = c["prediction_length"].as_u64().unwrap() as usize;
    let items = vec![SeriesInput::univariate(flat(&c["context"]))];
    let raw = predict_raw(model.as_ref(), &items, &PredictOptions::new(h), &mut |_, _| {}).unwrap();
    let expected = flat(&c["quantiles"]);
    let base_expected = flat(&c["base_quantiles"]);
    let diff = max_diff(&raw[0].values, &expected);
    assert!(diff <= 2e-5 * max_abs(&expected), "fused forecast differs from the reference's by {diff}");
    assert!(max_diff(&base_expected, &expected) > 100.0 * diff, "the adapter must matter");
    std::fs::remove_dir_all(&out).unwrap();
}
