#!/usr/bin/env python3
"""Reference fixtures of the Python package's drop-in inputs (issue 21, items 14 and 15).

Run from the repository root with chronos-forecasting 2.3.2, torch and peft installed:

    python3 scripts/generate_python_fixtures.py

Writes tests/fixtures/python/reference_inputs.json: for each input form the reference accepts
(a bfloat16 tensor, a tensor with requires_grad, an all-NaN item in predict_df,
quantile_levels=[] in predict_quantiles, torch_dtype="auto", an object id column mixing ints and
strings), the input and what the reference returns on the tiny model of tests/fixtures/models;
and the adapter tensors peft creates for a lora_config without target_modules. The Python tests
(crates/chronos2-py/tests/test_reference_inputs.py) compare with it and need no reference.
Float32 values are written as float64 (exact); NaN as null.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import chronos
import peft
from chronos.chronos2 import Chronos2Pipeline
from peft import LoraConfig, get_peft_model
from peft.utils import get_peft_model_state_dict

ROOT = Path(__file__).resolve().parents[1]
TINY = "tests/fixtures/models/tiny"
OUT = ROOT / "tests" / "fixtures" / "python" / "reference_inputs.json"
H = 4


def values(a) -> list:
    """A float array as nested lists of float64 (exact for float32), NaN as None."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isnan(a), None, a).tolist() if a.ndim else (None if np.isnan(a) else float(a))


def series(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float32)
    return (np.sin(t / 4) * 10 + 20 + rng.normal(0, 0.5, n)).astype(np.float32)


def predict_case(pipe, x: torch.Tensor) -> dict:
    out = pipe.predict([x], prediction_length=H)
    return {"prediction_length": H, "quantiles": values(out[0].float().numpy())}


def frame_case(pipe, df: pd.DataFrame) -> dict:
    out = pipe.predict_df(df, prediction_length=H)
    levels = [c for c in out.columns if c not in ("item_id", "timestamp", "target_name", "predictions")]
    return {
        "prediction_length": H,
        "input": {
            "item_id": [v if isinstance(v, str) else int(v) for v in df["item_id"]],
            "timestamp": [t.isoformat() for t in df["timestamp"]],
            "target": values(df["target"].to_numpy()),
        },
        "expected": {
            "item_id": [v if isinstance(v, str) else int(v) for v in out["item_id"]],
            "item_id_types": [type(v).__name__ for v in out["item_id"]],
            "timestamp": [t.isoformat() for t in out["timestamp"]],
            "predictions": values(out["predictions"].to_numpy()),
            "quantiles": {c: values(out[c].to_numpy()) for c in levels},
        },
    }


def main() -> None:
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    pipe = Chronos2Pipeline.from_pretrained(str(ROOT / TINY), dtype=torch.float32)
    cases: dict = {}

    x = torch.from_numpy(series(64, 0))
    bf16 = x.to(torch.bfloat16)
    cases["bfloat16_tensor"] = {"target": values(bf16.float().numpy()), **predict_case(pipe, bf16)}
    cases["requires_grad_tensor"] = {"target": values(x.numpy()), **predict_case(pipe, x.clone().requires_grad_(True))}

    q, mean = pipe.predict_quantiles([x], prediction_length=H, quantile_levels=[])
    cases["empty_quantile_levels"] = {
        "target": values(x.numpy()),
        "prediction_length": H,
        "quantiles_shape": list(q[0].shape),
        "mean": values(mean[0].numpy()),
    }

    auto = Chronos2Pipeline.from_pretrained(str(ROOT / TINY), torch_dtype="auto")
    cases["torch_dtype_auto"] = {
        "target": values(x.numpy()),
        "model_dtype": str(auto.model.dtype).removeprefix("torch."),
        **predict_case(auto, x),
    }

    stamps = list(pd.date_range("2024-01-01", periods=8, freq="D"))
    nan_df = pd.DataFrame(
        {
            "item_id": ["A"] * 8 + ["B"] * 8,
            "timestamp": stamps * 2,
            "target": np.concatenate([series(8, 1), np.full(8, np.nan, dtype=np.float32)]),
        }
    )
    cases["all_nan_item"] = frame_case(pipe, nan_df)

    mixed_df = pd.DataFrame(
        {
            "item_id": pd.Series([1] * 8 + ["1"] * 8 + [2] * 8, dtype=object),
            "timestamp": stamps * 3,
            "target": np.concatenate([series(8, 2), series(8, 3) + 5, series(8, 4) - 5]),
        }
    )
    cases["mixed_int_str_ids"] = frame_case(pipe, mixed_df)

    model = Chronos2Pipeline.from_pretrained(str(ROOT / TINY), dtype=torch.float32).model
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8))
    cases["lora_config_without_target_modules"] = {
        "lora_config": {"r": 4, "lora_alpha": 8},
        "model_type": model.config.model_type,
        "target_modules": sorted(lora.peft_config["default"].target_modules),
        "adapter_tensors": sorted(get_peft_model_state_dict(lora).keys()),
    }

    OUT.parent.mkdir(parents=True, exist_ok=True)
    versions = {"chronos-forecasting": chronos.__version__, "torch": torch.__version__, "peft": peft.__version__}
    OUT.write_text(json.dumps({"versions": versions, "model": TINY, "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
