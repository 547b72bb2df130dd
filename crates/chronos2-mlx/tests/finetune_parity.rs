//! Fine-tuning on MLX (`value_and_grad`) against the reference (`tests/fixtures/finetune/`, see
//! `chronos2_test_fixtures::finetune`): the loss and the gradient of every trainable parameter
//! (full, LoRA, head, QLoRA int8/int4 on a dequantized base), and five AdamW steps of the
//! reference's `Trainer`. Same checks and tolerances as the candle CPU backend.
#![cfg(all(feature = "mlx", any(all(target_os = "macos", target_arch = "aarch64"), chronos2_mlx_linux)))]

use std::path::Path;

use chronos2_core::train::{TrainModel, TrainSpec};
use chronos2_mlx::train::MlxTrainModel;
use chronos2_test_fixtures::finetune::{check_adamw_steps, check_loss_and_gradients};

fn load(dir: &Path, spec: TrainSpec) -> chronos2_core::Result<Box<dyn TrainModel>> {
    Ok(Box::new(MlxTrainModel::load_dir(dir, spec)?))
}

#[test]
fn loss_and_gradients_match_the_reference() {
    let checked = check_loss_and_gradients(&load).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked, chronos2_test_fixtures::finetune::GRAD_CASES.len());
}

#[test]
fn five_adamw_steps_match_the_reference_trainer() {
    let checked = check_adamw_steps(&load).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked, 3);
}
