"""Inputs the reference accepts (issue 21, items 14 and 15), compared with what chronos-forecasting
2.3.2 returns for them: tests/fixtures/python/reference_inputs.json, written by
scripts/generate_python_fixtures.py. No reference is needed at run time.

Torch tensors: with torch installed the real ones are used; the conversion path is always
exercised with ``StubTensor``, which refuses ``np.asarray`` as torch does for a bfloat16 tensor
and for one that requires grad, so passing means the tensor was detached / converted first."""

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from chronos2 import Chronos2Pipeline
from conftest import ROOT, as_f32, assert_close

FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "python" / "reference_inputs.json").read_text())
CASES = FIXTURE["cases"]
TINY = str(ROOT / FIXTURE["model"])
RTOL = 2e-5  # chronos2_core::fixtures::RTOL


@pytest.fixture(scope="module")
def tiny():
    return Chronos2Pipeline.from_pretrained(TINY, backend="cpu")


class StubTensor:
    """The part of a torch CPU tensor the package touches, refusing numpy conversion where torch
    does (bfloat16: no numpy dtype; requires_grad: "Can't call numpy() on Tensor that requires grad")."""

    def __init__(self, values, dtype="torch.float32", requires_grad=False):
        self._values = np.asarray(values, dtype=np.float32)
        self.dtype = dtype
        self.requires_grad = requires_grad
        self.shape = self._values.shape

    def _refuse(self):
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if self.dtype == "torch.bfloat16":
            raise TypeError("Got unsupported ScalarType BFloat16")

    def __array__(self, dtype=None, copy=None):
        self._refuse()
        return self._values if dtype is None else self._values.astype(dtype)

    def numpy(self):
        self._refuse()
        return self._values

    def detach(self):
        return StubTensor(self._values, self.dtype)

    def cpu(self):
        return self

    def float(self):
        return StubTensor(self._values, "torch.float32", self.requires_grad)

    def __len__(self):
        return len(self._values)


StubTensor.__module__ = "torch"


def torch_or_skip():
    return pytest.importorskip("torch", reason="torch is not installed: the real-tensor case is SKIPPED (the stub case runs)")


def tensor(case_name, kind):
    case = CASES[case_name]
    values = as_f32(case["target"])
    if kind == "stub":
        return StubTensor(values, "torch.bfloat16" if case_name == "bfloat16_tensor" else "torch.float32",
                          case_name == "requires_grad_tensor")
    torch = torch_or_skip()
    t = torch.from_numpy(values)
    return t.to(torch.bfloat16) if case_name == "bfloat16_tensor" else t.clone().requires_grad_(True)


@pytest.mark.parametrize("kind", ["stub", "torch"])
@pytest.mark.parametrize("case_name", ["bfloat16_tensor", "requires_grad_tensor"])
def test_torch_tensors_as_the_reference(tiny, case_name, kind):
    case = CASES[case_name]
    x = tensor(case_name, kind)
    for inputs in ([x], [{"target": x}]):
        out = tiny.predict(inputs, prediction_length=case["prediction_length"])
        assert_close(case_name, out[0], as_f32(case["quantiles"]), RTOL)


def test_empty_quantile_levels_give_the_mean_only(tiny):
    case = CASES["empty_quantile_levels"]
    quantiles, mean = tiny.predict_quantiles(
        [as_f32(case["target"])], prediction_length=case["prediction_length"], quantile_levels=[]
    )
    assert list(quantiles[0].shape) == case["quantiles_shape"]
    assert_close("mean", mean[0], as_f32(case["mean"]), RTOL)


def test_torch_dtype_auto_is_the_checkpoints_dtype():
    case = CASES["torch_dtype_auto"]
    assert case["model_dtype"] == "float32"
    auto = Chronos2Pipeline.from_pretrained(TINY, backend="cpu", torch_dtype="auto")
    out = auto.predict([as_f32(case["target"])], prediction_length=case["prediction_length"])
    assert_close("torch_dtype=auto", out[0], as_f32(case["quantiles"]), RTOL)


def test_torch_dtype_auto_reads_a_bfloat16_checkpoint(tmp_path):
    """A checkpoint whose config names bfloat16 loads as ``dtype="bfloat16"`` does."""
    config = json.loads((ROOT / FIXTURE["model"] / "config.json").read_text())
    config["torch_dtype"] = "bfloat16"
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").symlink_to(ROOT / FIXTURE["model"] / "model.safetensors")
    x = [as_f32(CASES["torch_dtype_auto"]["target"])]
    auto = Chronos2Pipeline.from_pretrained(str(tmp_path), backend="cpu", torch_dtype="auto").predict(x)
    bf16 = Chronos2Pipeline.from_pretrained(str(tmp_path), backend="cpu", dtype="bfloat16").predict(x)
    fp32 = Chronos2Pipeline.from_pretrained(str(tmp_path), backend="cpu").predict(x)
    assert np.array_equal(auto[0], bf16[0]) and not np.array_equal(auto[0], fp32[0])


def frame(case):
    data = case["input"]
    return pd.DataFrame(
        {
            "item_id": pd.Series(data["item_id"], dtype=object),
            "timestamp": pd.to_datetime(data["timestamp"]),
            "target": np.array([np.nan if v is None else v for v in data["target"]], dtype=np.float32),
        }
    )


@pytest.mark.parametrize("case_name", ["all_nan_item", "mixed_int_str_ids"])
def test_predict_df_as_the_reference(tiny, case_name):
    case = CASES[case_name]
    expected = case["expected"]
    out = tiny.predict_df(frame(case), prediction_length=case["prediction_length"])
    assert out["item_id"].tolist() == expected["item_id"]
    assert [type(v).__name__ for v in out["item_id"]] == expected["item_id_types"]
    assert [t.isoformat() for t in out["timestamp"]] == expected["timestamp"]
    assert_close(f"{case_name} predictions", out["predictions"].to_numpy(), as_f32(expected["predictions"]), RTOL)
    for level, values in expected["quantiles"].items():
        assert_close(f"{case_name} {level}", out[level].to_numpy(), as_f32(values), RTOL)


def test_lora_config_without_target_modules_uses_peft_default(tmp_path):
    """The reference hands lora_config to peft, whose default target modules for model_type t5
    are q and v: the same adapter tensors are written."""
    case = CASES["lora_config_without_target_modules"]
    t = np.arange(160, dtype=np.float32)
    series = [10.0 + 3.0 * np.sin(0.3 * t + i) for i in range(4)]
    Chronos2Pipeline.from_pretrained(TINY, backend="cpu").fit(
        series, prediction_length=16, finetune_mode="lora", lora_config=case["lora_config"], num_steps=2,
        batch_size=4, output_dir=tmp_path, remove_printer_callback=True,
    )
    ckpt = tmp_path / "finetuned-ckpt"
    assert sorted(load_file(str(ckpt / "adapter_model.safetensors"))) == case["adapter_tensors"]
    config = json.loads((ckpt / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (case["lora_config"]["r"], case["lora_config"]["lora_alpha"])
