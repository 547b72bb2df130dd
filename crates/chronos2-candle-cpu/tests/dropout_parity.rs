//! Training dropout on candle CPU against the reference (`tests/fixtures/finetune/dropout_*.json`:
//! the tiny model with dropout 0.1 in `model.train()` mode, every mask the reference drew, the
//! loss and gradients): the reference's masks replayed give its loss and gradients, with the
//! default checkpointing, every block checkpointed (recomputed in the backward with the same
//! masks), and none. Seeded masks are deterministic for a seed; validation never drops.

use chronos2_candle_cpu::train::{Checkpointing, CpuTrainModel};
use chronos2_core::config::ModelConfig;
use chronos2_core::train::{TrainModel, TrainSpec};
use chronos2_core::weights::Weights;
use chronos2_test_fixtures::dropout::{case_config_and_weights, check_dropout_loss_and_gradients, DROPOUT_CASES};
use chronos2_test_fixtures::finetune::{case_spec, finetune_case, set_initial, train_batch};

fn load_with(
    checkpointing: Checkpointing,
) -> impl Fn(ModelConfig, &Weights, TrainSpec) -> chronos2_core::Result<Box<dyn TrainModel>> {
    move |config, weights, spec| {
        let mut model = CpuTrainModel::load(config, weights, spec)?;
        model.set_checkpointing(checkpointing);
        Ok(Box::new(model))
    }
}

#[test]
fn replayed_reference_masks_give_the_reference_loss_and_gradients() {
    for checkpointing in [Checkpointing::Auto, Checkpointing::Blocks(usize::MAX), Checkpointing::Blocks(0)] {
        let checked = check_dropout_loss_and_gradients(&load_with(checkpointing))
            .unwrap_or_else(|e| panic!("{checkpointing:?}:\n{e}"));
        assert_eq!(checked, DROPOUT_CASES.len());
    }
}

fn seeded_model(name: &str, seed: u64) -> (Box<dyn TrainModel>, serde_json::Value) {
    let c = finetune_case(name);
    let (config, weights) = case_config_and_weights(&c);
    let spec = TrainSpec { seed, ..case_spec(&c) };
    let mut model: Box<dyn TrainModel> = Box::new(CpuTrainModel::load(config, &weights, spec).unwrap());
    set_initial(model.as_mut(), &c["lora_init"]);
    (model, c)
}

/// With the seeded masks: the same seed gives the same losses step after step, another seed or
/// another step other masks (so other losses), none of them the reference's (whose masks differ);
/// validation (`loss`) drops nothing and equals the loss of the model without dropout.
#[test]
fn seeded_masks_are_deterministic_and_validation_never_drops() {
    let name = DROPOUT_CASES[0];
    let batch = train_batch(&finetune_case(name)["batch"]);
    let losses = |seed| {
        let (mut m, _) = seeded_model(name, seed);
        (0..3).map(|_| m.loss_and_grads(&batch).unwrap().0).collect::<Vec<f32>>()
    };
    let (a, b, other) = (losses(5), losses(5), losses(6));
    assert_eq!(a, b, "same seed, same losses");
    assert_ne!(a, other, "another seed, other masks");
    assert!(a[0] != a[1] && a[1] != a[2], "each step draws new masks: {a:?}");
    let (m, c) = seeded_model(name, 5);
    let reference = c["loss"].as_f64().unwrap() as f32;
    assert!(a.iter().all(|l| ((l - reference) / reference).abs() > 1e-4), "{a:?} vs {reference}");

    let mut config = case_config_and_weights(&c).0;
    config.dropout_rate = 0.0;
    let weights = case_config_and_weights(&c).1;
    let mut plain = CpuTrainModel::load(config, &weights, case_spec(&c)).unwrap();
    set_initial(&mut plain, &c["lora_init"]);
    let eval = m.loss(&batch).unwrap();
    assert_eq!(eval, plain.loss(&batch).unwrap(), "validation drops nothing");
    assert_eq!(eval, plain.loss_and_grads(&batch).unwrap().0, "rate 0: training drops nothing");
    assert!(a.iter().all(|&l| l != eval));
}
