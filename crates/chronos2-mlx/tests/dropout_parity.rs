//! Training dropout on MLX against the reference (`tests/fixtures/finetune/dropout_*.json`, see
//! `chronos2_test_fixtures::dropout`): the reference's masks replayed give its loss and
//! gradients, at the tolerances of the CPU backend; the seeded masks are the CPU backend's.
#![cfg(mlx_backend)]

use chronos2_core::config::ModelConfig;
use chronos2_core::train::{TrainModel, TrainSpec};
use chronos2_core::weights::Weights;
use chronos2_mlx::train::MlxTrainModel;
use chronos2_test_fixtures::dropout::{check_dropout_loss_and_gradients, DROPOUT_CASES};

fn load(config: ModelConfig, weights: &Weights, spec: TrainSpec) -> chronos2_core::Result<Box<dyn TrainModel>> {
    Ok(Box::new(MlxTrainModel::load(config, weights, spec)?))
}

#[test]
fn replayed_reference_masks_give_the_reference_loss_and_gradients() {
    let checked = check_dropout_loss_and_gradients(&load).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked, DROPOUT_CASES.len());
}

/// With the seeded masks (the training default), MLX and candle CPU draw the same masks: three
/// training steps of the same seed give the same losses (within 1e-5 relative) on both, each
/// step other masks than the last.
#[test]
fn seeded_masks_give_the_cpu_backends_losses() {
    use chronos2_candle_cpu::train::CpuTrainModel;
    use chronos2_test_fixtures::dropout::case_config_and_weights;
    use chronos2_test_fixtures::finetune::{case_spec, finetune_case, set_initial, train_batch};

    let c = finetune_case(DROPOUT_CASES[1]);
    let batch = train_batch(&c["batch"]);
    let (config, weights) = case_config_and_weights(&c);
    let spec = TrainSpec { seed: 9, ..case_spec(&c) };
    let mut cpu: Box<dyn TrainModel> = Box::new(CpuTrainModel::load(config.clone(), &weights, spec.clone()).unwrap());
    let mut mlx: Box<dyn TrainModel> = Box::new(MlxTrainModel::load(config, &weights, spec).unwrap());
    set_initial(cpu.as_mut(), &c["lora_init"]);
    set_initial(mlx.as_mut(), &c["lora_init"]);
    let mut last = None;
    for step in 0..3 {
        let (a, b) = (cpu.loss_and_grads(&batch).unwrap().0, mlx.loss_and_grads(&batch).unwrap().0);
        assert!(((a - b) / a).abs() <= 1e-5, "step {step}: cpu {a} vs mlx {b}");
        assert_ne!(Some(a), last, "step {step} drew the masks of the previous step");
        last = Some(a);
    }
}
