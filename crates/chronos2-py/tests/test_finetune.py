"""``Chronos2Pipeline.fit``: the reference's signature and output layouts. A LoRA fine-tune
returns a pipeline that forecasts as the base with the written PEFT adapter merged in (merged here
with numpy, independently of the Rust code); a full fine-tune returns the written model; bad
arguments are clear errors that leave no directory behind."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from chronos2 import Chronos2Pipeline
from conftest import ROOT

TINY = ROOT / "tests" / "fixtures" / "models" / "tiny"
H = 16


def series(n=6, length=160):
    t = np.arange(length, dtype=np.float32)
    return [10.0 + 3.0 * np.sin(0.3 * t + i) + 0.05 * i * t for i in range(n)]


def base():
    return Chronos2Pipeline.from_pretrained(str(TINY), backend="cpu")


def forecast(pipeline):
    return np.stack(pipeline.predict(series(3, 120), prediction_length=H))


def quick_fit(pipeline, tmp_path, **kwargs):
    args = dict(
        prediction_length=H,
        num_steps=3,
        batch_size=4,
        learning_rate=1e-3,
        output_dir=tmp_path,
        remove_printer_callback=True,
    )
    args.update(kwargs)
    return pipeline.fit(series(), **args)


def merged_lora_model(adapter_dir, out_dir):
    """The tiny model with the PEFT adapter merged in by numpy: W + (alpha / r) B A."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scaling = config["lora_alpha"] / config["r"]
    weights = load_file(str(TINY / "model.safetensors"))
    adapter = load_file(str(adapter_dir / "adapter_model.safetensors"))
    merged = 0
    for key, a in adapter.items():
        if ".lora_A." not in key:
            continue
        b = adapter[key.replace(".lora_A.", ".lora_B.")]
        name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        weights[name] = (weights[name] + scaling * (b @ a)).astype(np.float32)
        merged += 1
    out_dir.mkdir()
    shutil.copy(TINY / "config.json", out_dir / "config.json")
    save_file(weights, str(out_dir / "model.safetensors"))
    return merged


def test_lora_returns_the_base_with_the_written_adapter_merged_in(tmp_path):
    pipeline = base()
    tuned = quick_fit(pipeline, tmp_path / "run", finetune_mode="lora")
    ckpt = tmp_path / "run" / "finetuned-ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((ckpt / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (8, 16)
    report = tuned.fit_report
    assert report["output"] == str(ckpt)
    assert len(report["train_losses"]) == 3 and all(np.isfinite(report["train_losses"]))
    assert report["dropped"] == 0 and report["validation_losses"] == []

    assert merged_lora_model(ckpt, tmp_path / "merged") > 0
    expected = forecast(Chronos2Pipeline.from_pretrained(str(tmp_path / "merged"), backend="cpu"))
    got, before = forecast(tuned), forecast(pipeline)
    diff = np.abs(got - expected).max()
    assert diff <= 1e-5 * np.abs(expected).max(), diff
    assert np.abs(before - expected).max() > 100 * max(diff, 1e-7), "the adapter must change the forecast"
    assert np.array_equal(forecast(pipeline), before), "fit leaves the pipeline it was called on unchanged"


def test_full_returns_the_written_model(tmp_path):
    tuned = quick_fit(base(), tmp_path, finetune_mode="full", learning_rate=1e-4)
    ckpt = tmp_path / "finetuned-ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "model.safetensors"]
    written = Chronos2Pipeline.from_pretrained(str(ckpt), backend="cpu")
    assert np.array_equal(forecast(tuned), forecast(written))
    assert not np.array_equal(forecast(tuned), forecast(base()))


def test_lora_config_validation_and_seed(tmp_path):
    lora_config = {"r": 4, "lora_alpha": 8, "target_modules": ["self_attention.q"]}
    first = quick_fit(
        base(), tmp_path / "a", finetune_mode="lora", lora_config=lora_config, validation_inputs=series(2), seed=7
    )
    config = json.loads((tmp_path / "a" / "finetuned-ckpt" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (4, 8)
    tensors = load_file(str(tmp_path / "a" / "finetuned-ckpt" / "adapter_model.safetensors"))
    assert tensors and all("self_attention.q.lora_" in k for k in tensors)
    assert first.fit_report["trainable_params"] == sum(t.size for t in tensors.values())
    steps = [step for step, _ in first.fit_report["validation_losses"]]
    assert steps == [3] and first.fit_report["kept_step"] == 3
    again = quick_fit(
        base(), tmp_path / "b", finetune_mode="lora", lora_config=lora_config, validation_inputs=series(2), seed=7
    )
    assert again.fit_report["train_losses"] == first.fit_report["train_losses"], "same seed, same run"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(callbacks=[object()]), ValueError, "callbacks"),
        (dict(gradient_accumulation_steps=2), TypeError, "gradient_accumulation_steps"),
        (dict(lora_config={"r": 4}), ValueError, "lora_config should not be specified"),
        (
            dict(finetune_mode="lora", lora_config={"target_modules": ["self_attention.q"], "lora_dropout": 0.1}),
            ValueError,
            "lora_dropout",
        ),
        (dict(finetune_mode="lora", lora_config={"target_modules": "q|k"}), ValueError, "regular expression"),
        (dict(finetune_mode="lora", lora_config={"target_modules": ["nope"]}), ValueError, "nope"),
        (
            dict(finetune_mode="lora", lora_config={"target_modules": ["self_attention.q"], "bias": "all"}),
            ValueError,
            "bias='all' is not supported",
        ),
        (dict(finetune_mode="lora", lora_config={"target_modules": ["self_attention.q"], "r": 0}), ValueError, "r must"),
        (dict(finetune_mode="lora", lora_config={"target_modules": ["q"], "use_dora": True}), ValueError, "unsupported keys"),
        (dict(finetune_mode="qlora", quantize="int2"), ValueError, "quantize 'int2': expected 'int8' or 'int4'"),
        (dict(finetune_mode="lora", quantize="int8"), ValueError, "quantize='int8' applies to finetune_mode='qlora' only"),
        (dict(finetune_mode="prefix"), ValueError, "unknown fine-tuning mode `prefix`"),
        (dict(learning_rate=0.0), ValueError, "learning_rate must be a finite number > 0, got 0.0"),
        (dict(learning_rate=float("inf")), ValueError, "learning_rate must be a finite number > 0, got inf"),
        (dict(learning_rate="1e-4"), TypeError, "learning_rate must be a number"),
        (dict(num_steps=0), ValueError, "steps"),
        (dict(prediction_length=0), ValueError, "prediction_length must be at least 1"),
    ],
)
def test_bad_arguments_are_errors_that_leave_no_directory(tmp_path, kwargs, error, message):
    out = tmp_path / "new" / "run"
    with pytest.raises(error, match=message):
        quick_fit(base(), out, **kwargs)
    assert not (tmp_path / "new").exists()


def test_no_series_long_enough_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="long enough|shorter"):
        base().fit([np.ones(20, dtype=np.float32)], prediction_length=H, output_dir=tmp_path / "short")
    assert not (tmp_path / "short").exists()


def test_fit_writes_over_an_existing_checkpoint_as_the_reference(tmp_path):
    """The reference's fit saves with save_pretrained, which writes into an existing directory:
    a second fit into the same output_dir / finetuned_ckpt_name replaces the checkpoint (a full
    model over a LoRA adapter here: no adapter file is left beside it) and keeps other files."""
    ckpt = tmp_path / "finetuned-ckpt"
    quick_fit(base(), tmp_path, finetune_mode="lora")
    (ckpt / "notes.txt").write_text("mine")
    tuned = quick_fit(base(), tmp_path, finetune_mode="full", learning_rate=1e-4)
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "model.safetensors", "notes.txt"]
    assert np.array_equal(forecast(tuned), forecast(Chronos2Pipeline.from_pretrained(str(ckpt), backend="cpu")))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging directory is left"
    (tmp_path / "file-ckpt").write_text("not a directory")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        quick_fit(base(), tmp_path, finetuned_ckpt_name="file-ckpt")


def test_a_lora_config_object_is_read_by_its_attributes(tmp_path):
    """A peft ``LoraConfig`` (stood in for by an object with its attributes: peft is not a test
    dependency): plain LoRA is read; options that change what LoRA computes are refused."""
    from types import SimpleNamespace

    plain = SimpleNamespace(
        r=2, lora_alpha=4, target_modules=["self_attention.v"], lora_dropout=0.0, bias="none",
        use_rslora=False, use_dora=False, modules_to_save=None, layers_to_transform=None,
        rank_pattern={}, alpha_pattern={},
    )
    quick_fit(base(), tmp_path / "plain", finetune_mode="lora", lora_config=plain)
    config = json.loads((tmp_path / "plain" / "finetuned-ckpt" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (2, 4)
    dora = SimpleNamespace(**{**vars(plain), "use_dora": True})
    with pytest.raises(ValueError, match="use_dora=True is not supported"):
        quick_fit(base(), tmp_path / "dora", finetune_mode="lora", lora_config=dora)
    assert not (tmp_path / "dora").exists()
