//! Gradient checkpointing per encoder block gives the loss and gradients of the whole graph, on
//! every gradient fixture batch (full, LoRA, head, QLoRA int8 / int4; NaN gaps, covariates), with
//! one block checkpointed and both.

use chronos2_candle_cpu::train::{Checkpointing, CpuTrainModel};
use chronos2_core::train::TrainModel;
use chronos2_test_fixtures::finetune::{case_spec, finetune_case, train_batch, GRAD_CASES};
use chronos2_test_fixtures::repo_root;

fn loss_and_grads(name: &str, checkpointing: Checkpointing) -> (f32, Vec<Vec<f32>>) {
    let c = finetune_case(name);
    let dir = repo_root().join(c["model"].as_str().unwrap());
    let mut model = CpuTrainModel::load_dir(&dir, case_spec(&c)).unwrap();
    model.set_checkpointing(checkpointing);
    model.loss_and_grads(&train_batch(&c["batch"])).unwrap()
}

#[test]
fn checkpointed_steps_equal_the_whole_graph() {
    let (mut worst_loss, mut worst_grad) = (0f32, 0f32);
    for name in GRAD_CASES {
        let (loss, grads) = loss_and_grads(name, Checkpointing::Blocks(0));
        for blocks in [1, 2] {
            let (ckpt_loss, ckpt_grads) = loss_and_grads(name, Checkpointing::Blocks(blocks));
            worst_loss = worst_loss.max((ckpt_loss - loss).abs() / loss.abs());
            assert_eq!(grads.len(), ckpt_grads.len(), "{name}");
            assert!(grads.iter().flatten().any(|g| *g != 0.0), "{name}: no gradient at all");
            for (g, h) in grads.iter().zip(&ckpt_grads) {
                // (LoRA A has a zero gradient while B is zero: both paths must then give exactly 0)
                let scale = g.iter().fold(0f32, |m, x| m.max(x.abs()));
                let diff = g.iter().zip(h).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                worst_grad = worst_grad.max(match (scale > 0.0, diff > 0.0) {
                    (true, _) => diff / scale,
                    (false, true) => f32::INFINITY,
                    (false, false) => 0.0,
                });
            }
        }
    }
    println!("worst relative difference: loss {worst_loss:e}, gradient {worst_grad:e} (of its largest value)");
    assert!(worst_loss <= 1e-6, "loss differs by {worst_loss:e} relative");
    assert!(worst_grad <= 1e-6, "a gradient differs by {worst_grad:e} of its largest value");
}

/// A step run as micro-batches of whole groups (one group at a time here) gives the loss of the
/// whole batch, on every gradient fixture batch with more than one group (their gradients are
/// checked against the reference's in `finetune_parity.rs`, with the same micro-batches).
#[test]
fn micro_batched_steps_give_the_loss_of_the_whole_batch() {
    let (mut worst, mut split) = (0f32, 0);
    for name in GRAD_CASES {
        let c = finetune_case(name);
        let batch = train_batch(&c["batch"]);
        if batch.micro_batches(1).len() < 2 {
            continue;
        }
        split += 1;
        let dir = repo_root().join(c["model"].as_str().unwrap());
        let mut model = CpuTrainModel::load_dir(&dir, case_spec(&c)).unwrap();
        let (loss, grads) = model.loss_and_grads(&batch).unwrap();
        model.set_micro_batch_rows(Some(1));
        let (micro_loss, micro_grads) = model.loss_and_grads(&batch).unwrap();
        worst = worst.max((micro_loss - loss).abs() / loss.abs());
        assert_eq!(grads.len(), micro_grads.len(), "{name}");
    }
    println!("{split} batches split; worst relative loss difference {worst:e}");
    assert_eq!(split, GRAD_CASES.len(), "every fixture batch has more than one group");
    assert!(worst <= 1e-6, "loss differs by {worst:e} relative");
}
