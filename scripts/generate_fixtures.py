#!/usr/bin/env python3
"""Generate reference fixtures for the Rust port of Chronos-2.

Run from the repository root:

    python3 scripts/generate_fixtures.py

Requires `chronos-forecasting==2.3.2` (with torch, transformers), pandas and pyarrow.
Everything runs on the CPU in float32 with fixed seeds, so the output is deterministic
for a given set of library versions (recorded in tests/fixtures/manifest.json).

Output (all under tests/fixtures/, which this script wipes and rewrites):
  models/<name>/{config.json,model.safetensors}  small random Chronos-2 models (HF layout)
  cases/<case>.json                              reference inputs + expected outputs
  dataframes/<case>/{input.csv|input.parquet,future.csv,expected.csv}
  manifest.json                                  case list, library versions, attention impl

See scripts/README.md for the JSON schema.

Number format: every float32 value is written with the shortest decimal string that
round-trips to the same float32 (numpy's `str(np.float32)`), and it is checked that parsing
that string as f64 and rounding to f32 gives back the exact value. NaN is written as `null`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import chronos
import transformers
from chronos.chronos2 import Chronos2CoreConfig, Chronos2Model, Chronos2Pipeline, preprocess
from chronos.df_utils import validate_and_normalize_df

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
MODELS_DIR = FIX / "models"
CASES_DIR = FIX / "cases"
DF_DIR = FIX / "dataframes"

MODEL_QUANTILES = [0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                   0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99]
DEFAULT_LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
MINI = "models/chronos2-mini"  # bundled real model, referenced in place (not copied)

MODEL_SPECS = {
    # name: (core config kwargs, chronos context_length, perturbation seed)
    "tiny": (dict(d_model=8, num_heads=2, d_kv=6, d_ff=16, num_layers=2), 256, 1001),
    "small": (dict(d_model=32, num_heads=4, d_kv=8, d_ff=64, num_layers=2), 2048, 1002),
}

CASES: list[dict] = []  # manifest entries
EAGER: dict[str, Chronos2Pipeline] = {}  # model ref -> pipeline with attn_implementation="eager"


# --------------------------------------------------------------------------------------
# JSON writing with exact float32 values
# --------------------------------------------------------------------------------------


def _fmt_f32(v) -> str:
    v = np.float32(v)
    if np.isnan(v):
        return "null"
    if not np.isfinite(v):
        raise ValueError(f"non-finite value {v} cannot be written")
    s = str(v)  # shortest string that round-trips to this float32
    if not _parses_back(s, v):
        # a parser that is off by one f64 ulp (serde_json without `float_roundtrip`) could land on
        # the other float32: write the exact value as a (longer) f64 literal instead
        s = repr(float(v))
        assert _parses_back(s, v), (v, s)
    return s


def _parses_back(s: str, v: np.float32) -> bool:
    d = float(s)
    if np.signbit(np.float32(d)) != np.signbit(v):
        return False
    return all(np.float32(x) == v for x in (d, np.nextafter(d, -np.inf), np.nextafter(d, np.inf)))


def _fmt_array(a: np.ndarray) -> str:
    if a.ndim == 0:
        return _fmt_scalar(a.item() if a.dtype.kind != "f" else np.float32(a))
    if a.dtype.kind == "f":
        if a.ndim == 1:
            return "[" + ",".join(_fmt_f32(x) for x in a.astype(np.float32)) + "]"
    elif a.dtype.kind in "iub":
        if a.ndim == 1:
            return "[" + ",".join(str(int(x)) for x in a) + "]"
    elif a.dtype.kind in "OU":
        if a.ndim == 1:
            return "[" + ",".join(_fmt_scalar(x) for x in a) + "]"
    else:
        raise TypeError(f"unsupported dtype {a.dtype}")
    return "[" + ",".join(_fmt_array(x) for x in a) + "]"


def _fmt_scalar(x) -> str:
    if x is None:
        return "null"
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, np.float32):
        return _fmt_f32(x)
    if isinstance(x, (float, np.floating)):
        if math.isnan(x):
            return "null"
        assert math.isfinite(x)
        return repr(float(x))  # python floats (quantile levels, ...) are written as f64
    if isinstance(x, str):
        return json.dumps(x)
    raise TypeError(f"unsupported scalar {x!r} ({type(x)})")


def dumps(obj, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return _fmt_array(obj)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(str(k))}: {dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if any(isinstance(v, (dict, list, tuple, np.ndarray, torch.Tensor)) for v in obj):
            if any(isinstance(v, dict) for v in obj):
                items = [f"{pad}  {dumps(v, indent + 1)}" for v in obj]
                return "[\n" + ",\n".join(items) + "\n" + pad + "]"
            return "[" + ",".join(dumps(v, indent + 1) for v in obj) + "]"
        return "[" + ",".join(_fmt_scalar(v) for v in obj) + "]"
    return _fmt_scalar(obj)


def write_case(name: str, case: dict) -> None:
    path = CASES_DIR / f"{name}.json"
    text = dumps(case) + "\n"
    json.loads(text)  # must be valid JSON
    path.write_text(text)
    CASES.append({"name": name, "kind": case["kind"], "model": case["model"],
                  "description": case.get("description", ""), "bytes": len(text)})
    print(f"  wrote {path.relative_to(ROOT)} ({len(text) / 1024:.1f} KiB)")


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


def build_random_model(name: str) -> Path:
    core, context_length, seed = MODEL_SPECS[name]
    torch.manual_seed(seed)
    config = Chronos2CoreConfig(
        **core,
        dropout_rate=0.0,
        initializer_factor=1.0,
        layer_norm_epsilon=1e-6,
        feed_forward_proj="relu",
        rope_theta=10000.0,
        chronos_config=dict(
            context_length=context_length,
            input_patch_size=16,
            input_patch_stride=16,
            output_patch_size=16,
            max_output_patches=64,
            quantiles=MODEL_QUANTILES,
            use_reg_token=True,
            use_arcsinh=True,
            time_encoding_scale=8192,
        ),
        chronos_pipeline_class="Chronos2Pipeline",
    )
    model = Chronos2Model(config).to(torch.float32).eval()
    # perturb every parameter (RMSNorm weights, biases, [REG] embedding included)
    gen = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * 0.3)
        # With O(1) random weights the raw (pre-sinh) outputs reach |y| ~ 30..100 and sinh()
        # overflows float32. Rescale the output head (output_layer and residual_layer, whose sum
        # is the head's output) so that the raw outputs have std 1 on a fixed probe batch:
        # predictions then stay within a few sinh(4) ~ 27 scales of the context.
        probe_rng = np.random.default_rng(seed + 11)
        probe = torch.from_numpy((probe_rng.normal(size=(8, 128)) * 3).astype(np.float32))
        raw = {}
        hook = model.output_patch_embedding.register_forward_hook(lambda m, i, o: raw.update(y=o))
        model(context=probe, num_output_patches=4)
        hook.remove()
        factor = float(1.0 / raw["y"].std())
        head = model.output_patch_embedding
        for p in (head.output_layer.weight, head.output_layer.bias, head.residual_layer.weight, head.residual_layer.bias):
            p.mul_(factor)
    out = MODELS_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    return out


def load_pipeline(path: Path, **kwargs) -> Chronos2Pipeline:
    pipe = Chronos2Pipeline.from_pretrained(str(path), dtype=torch.float32, **kwargs)
    pipe.model.eval()
    assert pipe.model.dtype == torch.float32
    assert pipe.model.device.type == "cpu"
    return pipe


# --------------------------------------------------------------------------------------
# kind "model": direct Chronos2Model forward with intermediate captures
# --------------------------------------------------------------------------------------


def forward_capture(model: Chronos2Model, context, group_ids, future_covariates, num_output_patches):
    """Chronos2Model.forward with hooks capturing the intermediate tensors."""
    cap: dict = {"blocks": [], "time": [], "group": [], "embed_in": []}
    hooks = []

    def norm_hook(mod, inp, out):
        if "loc_scale" not in cap:  # first call = context (2nd call normalises future covariates)
            cap["loc_scale"] = (out[1][0].clone(), out[1][1].clone())

    def embed_hook(mod, inp, out):
        cap["embed_in"].append(inp[0].clone())

    def enc_pre_hook(mod, args, kwargs):
        cap["attention_mask"] = kwargs["attention_mask"].clone()
        cap["inputs_embeds"] = kwargs["inputs_embeds"].clone()

    def enc_hook(mod, args, kwargs, out):
        cap["last_hidden_state"] = out.last_hidden_state.clone()

    # (hooks must return None, otherwise they replace the module's output)
    hooks.append(model.instance_norm.register_forward_hook(norm_hook))
    hooks.append(model.input_patch_embedding.register_forward_hook(embed_hook))
    hooks.append(model.encoder.register_forward_pre_hook(enc_pre_hook, with_kwargs=True))
    hooks.append(model.encoder.register_forward_hook(enc_hook, with_kwargs=True))
    for block in model.encoder.block:
        hooks.append(block.register_forward_hook(lambda m, i, o: cap["blocks"].append(o.hidden_states.clone())))
        hooks.append(block.layer[0].register_forward_hook(lambda m, i, o: cap["time"].append(o.hidden_states.clone())))
        hooks.append(block.layer[1].register_forward_hook(lambda m, i, o: cap["group"].append(o.hidden_states.clone())))
    try:
        with torch.no_grad():
            out = model(
                context=torch.from_numpy(context),
                group_ids=torch.tensor(group_ids, dtype=torch.long),
                future_covariates=None if future_covariates is None
                else torch.from_numpy(np.asarray(future_covariates, dtype=np.float32)),
                num_output_patches=num_output_patches,
            )
    finally:
        for h in hooks:
            h.remove()
    return out, cap


def _max_abs_diff(a, b) -> float:
    a = torch.stack(a) if isinstance(a, list) else a
    b = torch.stack(b) if isinstance(b, list) else b
    return float((a - b).abs().max())


def run_model_case(name, model_ref, pipe, context, group_ids, future_covariates, num_output_patches,
                   description, sublayers=True):
    model: Chronos2Model = pipe.model
    context = np.asarray(context, dtype=np.float32)
    out, cap = forward_capture(model, context, group_ids, future_covariates, num_output_patches)
    # the same forward with eager attention: how far two valid float32 implementations drift apart
    eager = EAGER[model_ref].model
    assert eager.config._attn_implementation == "eager"
    e_out, e_cap = forward_capture(eager, context, group_ids, future_covariates, num_output_patches)
    noise = {
        "input_embeds": _max_abs_diff(cap["inputs_embeds"], e_cap["inputs_embeds"]),
        "layer_outputs": [_max_abs_diff(a, b) for a, b in zip(cap["blocks"], e_cap["blocks"])],
        "last_hidden_state": _max_abs_diff(cap["last_hidden_state"], e_cap["last_hidden_state"]),
        "quantile_preds": _max_abs_diff(out.quantile_preds, e_out.quantile_preds),
    }

    qp = out.quantile_preds
    assert len(cap["embed_in"]) == 2
    patched_context, patched_future = cap["embed_in"]
    rows = context.shape[0]
    n_ctx = patched_context.shape[1]
    seq = n_ctx + 1 + num_output_patches
    d = model.config.d_model
    assert patched_context.shape == (rows, n_ctx, 48)
    assert cap["attention_mask"].shape == (rows, seq)
    assert cap["inputs_embeds"].shape == (rows, seq, d)
    assert all(b.shape == (rows, seq, d) for b in cap["blocks"])
    assert qp.shape == (rows, 21, num_output_patches * 16)
    assert torch.isfinite(qp).all(), f"{name}: non-finite quantile_preds"
    loc, scale = cap["loc_scale"]
    expected = {
        "loc": loc[:, 0],
        "scale": scale[:, 0],
        "patched_context": patched_context,
        "patched_future": patched_future,
        "attention_mask": cap["attention_mask"],
        "input_embeds": cap["inputs_embeds"],
        "layer_outputs": cap["blocks"],
    }
    if sublayers:
        expected["time_attention_outputs"] = cap["time"]
        expected["group_attention_outputs"] = cap["group"]
    expected["last_hidden_state"] = cap["last_hidden_state"]
    expected["quantile_preds"] = qp
    write_case(name, {
        "kind": "model",
        "model": model_ref,
        "description": description,
        "context": context,
        "group_ids": [int(g) for g in group_ids],
        "future_covariates": None if future_covariates is None else np.asarray(future_covariates, np.float32),
        "num_output_patches": num_output_patches,
        "expected": expected,
        "eager_vs_sdpa_max_abs_diff": noise,
    })


def model_cases(pipes):
    tiny, small, mini = pipes["tiny"], pipes["small"], pipes["mini"]
    T_TINY = "tests/fixtures/models/tiny"
    T_SMALL = "tests/fixtures/models/small"

    # (a) tiny, 3 rows, different NaN patterns, T=75 (not a multiple of 16), independent groups
    rng = np.random.default_rng(11)
    T = 75
    ctx = (rng.normal(size=(3, T)) * np.array([[1.0], [5.0], [0.2]]) + np.array([[0.0], [20.0], [-3.0]])).astype(np.float32)
    ctx[0, :10] = np.nan          # leading NaNs
    ctx[1, 30:50] = np.nan        # a gap that covers a full patch
    ctx[1, -1] = np.nan           # trailing NaN
    ctx[2, :40] = np.nan          # long leading NaN run
    ctx[2, 55] = np.nan
    run_model_case("model_tiny_nan_patterns", T_TINY, tiny, ctx, [0, 1, 2], None, 2,
                   "tiny, 3 independent rows, T=75, leading/internal/trailing NaNs, no future covariates")

    # (b) tiny, group_ids [0,0,1,2,2,2], future covariates (F=20 < 2*16) with some NaN
    rng = np.random.default_rng(12)
    T = 64
    base = np.sin(np.arange(T) / 4.0)
    ctx = np.stack([
        base * 3 + rng.normal(size=T) * 0.3,
        -base * 2 + 1 + rng.normal(size=T) * 0.3,
        np.cumsum(rng.normal(size=T)),
        base + rng.normal(size=T) * 0.1,
        np.cos(np.arange(T) / 4.0) * 10,
        (np.arange(T) % 7 == 0).astype(float),
    ]).astype(np.float32)
    ctx[0, :5] = np.nan
    F = 20
    fut = np.full((6, F), np.nan, dtype=np.float32)
    fut[4] = (np.cos(np.arange(T, T + F) / 4.0) * 10).astype(np.float32)
    fut[4, 3] = np.nan
    fut[4, 15:] = np.nan
    fut[5] = (np.arange(T, T + F) % 7 == 0).astype(np.float32)
    run_model_case("model_tiny_groups_future_covariates", T_TINY, tiny, ctx, [0, 0, 1, 2, 2, 2], fut, 2,
                   "tiny, groups [0,0,1,2,2,2], future covariates (F=20, padded to 32) known for rows 4,5 with NaNs")

    # (c) small, 4 rows in one group, T=100, 2 output patches
    rng = np.random.default_rng(13)
    T = 100
    t = np.arange(T)
    ctx = np.stack([
        100 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(size=T),
        50 + 5 * np.sin(2 * np.pi * t / 24 + 1) + rng.normal(size=T),
        np.cumsum(rng.normal(size=T)),
        rng.exponential(size=T),
    ]).astype(np.float32)
    ctx[3, :20] = np.nan
    run_model_case("model_small_one_group", T_SMALL, small, ctx, [0, 0, 0, 0], None, 2,
                   "small, 4 rows in one group, T=100, 2 output patches")

    # (d) tiny, T=300 > model context_length 256 -> the model truncates to the last 256 steps
    rng = np.random.default_rng(14)
    T = 300
    ctx = np.stack([
        np.sin(np.arange(T) / 10) * 4 + rng.normal(size=T) * 0.5,
        np.linspace(-50, 50, T) + rng.normal(size=T) * 3,
    ]).astype(np.float32)
    ctx[0, :60] = 1000.0  # would change loc/scale if not truncated
    ctx[1, 100:110] = np.nan
    run_model_case("model_tiny_truncation", T_TINY, tiny, ctx, [0, 1], None, 1,
                   "tiny, T=300 > context_length 256: the model keeps the last 256 steps")

    # (e) chronos2-mini, 2 rows, T=200, 3 output patches
    rng = np.random.default_rng(15)
    T = 200
    t = np.arange(T)
    ctx = np.stack([
        20 + 5 * np.sin(2 * np.pi * t / 12) + 0.05 * t + rng.normal(size=T) * 0.5,
        300 + 40 * np.sin(2 * np.pi * t / 50) + rng.normal(size=T) * 5,
    ]).astype(np.float32)
    ctx[1, :7] = np.nan
    ctx[0, 120:125] = np.nan
    run_model_case("model_mini", MINI, mini, ctx, [0, 1], None, 3,
                   "chronos2-mini, 2 independent rows, T=200, 3 output patches")

    # (f) an all-NaN row (loc 0 / scale 1) and a constant row (scale 0 -> 1e-5)
    rng = np.random.default_rng(16)
    T = 40
    ctx = np.stack([
        rng.normal(size=T) * 2 + 3,
        np.full(T, np.nan),
        np.full(T, 7.25),
        rng.normal(size=T),
    ]).astype(np.float32)
    ctx[3, :12] = np.nan
    run_model_case("model_tiny_allnan_constant", T_TINY, tiny, ctx, [0, 0, 1, 1], None, 1,
                   "tiny, row 1 entirely NaN (loc 0, scale 1), row 2 constant (scale 0 -> 1e-5); groups [0,0,1,1]")

    # (g) non-contiguous group ids and a 1-step context
    rng = np.random.default_rng(17)
    T = 33
    ctx = (rng.normal(size=(5, T)) * 3).astype(np.float32)
    ctx[2, :-1] = np.nan  # only the last value observed
    run_model_case("model_tiny_noncontiguous_groups", T_TINY, tiny, ctx, [3, 1, 3, 1, 7], None, 1,
                   "tiny, non-contiguous group ids [3,1,3,1,7]; row 2 has a single observed value")


# --------------------------------------------------------------------------------------
# kind "predict": Chronos2Pipeline.predict_quantiles on list-of-dicts input
# --------------------------------------------------------------------------------------


def f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def item(target, past=None, future=None) -> dict:
    target = f32(target)
    if target.ndim == 1:
        target = target[None, :]
    return {"target": target, "past_covariates": past or {}, "future_covariates": future or {}}


def to_reference_item(it: dict, one_d: bool) -> dict:
    target = it["target"]
    if one_d and target.shape[0] == 1:
        target = target[0]
    out = {"target": target.copy()}
    if it["past_covariates"]:
        out["past_covariates"] = {k: v.copy() for k, v in it["past_covariates"].items()}
    if it["future_covariates"]:
        out["future_covariates"] = {k: (None if v is None else v.copy()) for k, v in it["future_covariates"].items()}
    return out


def prepared_json(prepared) -> list[dict]:
    """PreparedInput dicts (rows: targets, past-only covariates, known-future covariates)."""
    return [{
        "context": p["context"],
        "future_covariates": p["future_covariates"],
        "n_targets": int(p["n_targets"]),
        "n_covariates": int(p["n_covariates"]),
        "n_future_covariates": int(p["n_future_covariates"]),
    } for p in prepared]


def cat_array(values) -> np.ndarray:
    """Categorical covariate: object array of str, None = missing category."""
    return np.array(list(values), dtype=object)


def run_predict_case(name, model_ref, pipe, items, prediction_length, quantile_levels=None, batch_size=256,
                     context_length=None, cross_learning=False, one_d=True, description=""):
    levels = list(DEFAULT_LEVELS if quantile_levels is None else quantile_levels)
    ref_inputs = [to_reference_item(it, one_d) for it in items]
    quantiles, mean = pipe.predict_quantiles(
        ref_inputs,
        prediction_length=prediction_length,
        quantile_levels=levels,
        batch_size=batch_size,
        context_length=context_length,
        cross_learning=cross_learning,
    )
    assert len(quantiles) == len(items)
    for it, q, m in zip(items, quantiles, mean):
        n = it["target"].shape[0]
        assert q.shape == (n, prediction_length, len(levels)), (name, q.shape)
        assert m.shape == (n, prediction_length)
        assert q.dtype == torch.float32 and m.dtype == torch.float32
        assert torch.isfinite(q).all() and torch.isfinite(m).all(), f"{name}: non-finite predictions"
    prepared = preprocess.from_list_of_dicts([to_reference_item(it, one_d) for it in items], prediction_length)
    write_case(name, {
        "kind": "predict",
        "model": model_ref,
        "description": description,
        "inputs": items,
        "prediction_length": prediction_length,
        "quantile_levels": levels,
        "batch_size": batch_size,
        "context_length": context_length,
        "cross_learning": cross_learning,
        "expected": {"quantiles": quantiles, "mean": mean, "prepared": prepared_json(prepared)},
    })


def seasonal(rng, T, period, level=10.0, amp=3.0, noise=0.5, trend=0.0):
    t = np.arange(T)
    return level + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 6)) + trend * t + rng.normal(size=T) * noise


def airline_like(T=144, seed=21):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    month = t % 12
    season = np.array([0.91, 0.88, 1.01, 0.97, 0.98, 1.11, 1.23, 1.22, 1.06, 0.92, 0.80, 0.90])
    trend = 112 * np.exp(0.0097 * t)
    return np.round(trend * season[month] * (1 + rng.normal(size=T) * 0.02))


def predict_cases(pipes):
    tiny, small, mini = pipes["tiny"], pipes["small"], pipes["mini"]
    T_TINY = "tests/fixtures/models/tiny"
    T_SMALL = "tests/fixtures/models/small"

    rng = np.random.default_rng(101)
    run_predict_case("predict_tiny_single", T_TINY, tiny, [item(seasonal(rng, 50, 7))], 24,
                     description="tiny, one univariate series (T=50, passed 1-D), H=24")

    rng = np.random.default_rng(102)
    run_predict_case("predict_mini_single", MINI, mini, [item(seasonal(rng, 150, 24, level=50, amp=10, noise=1))], 32,
                     description="chronos2-mini, one univariate series (T=150), H=32")

    run_predict_case("predict_mini_airline", MINI, mini, [item(airline_like())], 24,
                     description="chronos2-mini, synthetic monthly airline-like series (T=144, trend x seasonality), H=24")

    # ragged lengths + NaN gaps, 5 items (tiny: lengths > 256 are truncated by the pipeline)
    rng = np.random.default_rng(103)
    items = []
    for i, T in enumerate([20, 75, 160, 257, 400]):
        y = seasonal(rng, T, 12, level=5 * i, amp=1 + i, noise=0.3, trend=0.01 * i)
        if T > 30:
            s = int(rng.integers(0, T - 10))
            y[s:s + 7] = np.nan
        y[0] = np.nan if i % 2 == 0 else y[0]
        items.append(item(y))
    run_predict_case("predict_tiny_ragged_nan", T_TINY, tiny, items, 20,
                     description="tiny, 5 items with lengths 20,75,160,257,400 and NaN gaps (left padding, truncation to 256), H=20")
    rng = np.random.default_rng(104)
    items = []
    for i, T in enumerate([20, 75, 160, 257, 400]):
        y = seasonal(rng, T, 24, level=100 + 5 * i, amp=10, noise=2)
        s = int(rng.integers(0, T - 10))
        y[s:s + 5] = np.nan
        items.append(item(y))
    run_predict_case("predict_mini_ragged_nan", MINI, mini, items, 20,
                     description="chronos2-mini, 5 items with lengths 20..400 and NaN gaps, H=20")

    # multi-target item (3 targets) + a univariate-shaped companion with 3 targets too
    rng = np.random.default_rng(105)
    items = []
    for T in [60, 90]:
        base = seasonal(rng, T, 10, level=0, amp=2, noise=0.1)
        tgt = np.stack([base + rng.normal(size=T) * 0.2, 2 * base + 5, -base + rng.normal(size=T)])
        tgt[1, :7] = np.nan
        items.append(item(tgt))
    run_predict_case("predict_tiny_multi_target", T_TINY, tiny, items, 18,
                     description="tiny, 2 items with 3 targets each (multivariate group), H=18")

    # numeric past-only + known-future covariates
    def numeric_cov_items(rng, lengths, H, level):
        items = []
        for T in lengths:
            t = np.arange(T + H)
            temp = 20 + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(size=T + H)
            promo = (rng.uniform(size=T + H) < 0.2).astype(float)
            y = level + 2 * temp[:T] + 15 * promo[:T] + rng.normal(size=T) * 2
            traffic = 0.5 * y + rng.normal(size=T)  # past-only
            traffic[3] = np.nan
            fut_temp = f32(temp[T:])
            fut_temp[2] = np.nan  # unknown future value of a known covariate
            items.append(item(
                y,
                past={"temperature": f32(temp[:T]), "promo": f32(promo[:T]), "traffic": f32(traffic)},
                future={"temperature": fut_temp, "promo": f32(promo[T:])},
            ))
        return items

    rng = np.random.default_rng(106)
    run_predict_case("predict_tiny_covariates_numeric", T_TINY, tiny, numeric_cov_items(rng, [80, 50], 20, 10.0), 20,
                     description="tiny, 2 items; past-only 'traffic', known-future 'temperature' (one NaN future value) and 'promo'; "
                                 "row order target, traffic, promo, temperature (sorted keys), H=20")
    rng = np.random.default_rng(107)
    run_predict_case("predict_mini_covariates_numeric", MINI, mini, numeric_cov_items(rng, [120, 96], 24, 50.0), 24,
                     description="chronos2-mini, same structure as predict_tiny_covariates_numeric, H=24")

    # categorical covariates, 1 target -> target encoding
    rng = np.random.default_rng(108)
    items = []
    H = 12
    for T, cats in [(48, ["sunny", "rainy", "cloudy"]), (40, ["sunny", "cloudy"])]:
        weather = [cats[j] for j in rng.integers(0, len(cats), size=T)]
        weather[5] = None  # missing category in the past
        weather[17] = None
        effect = {"sunny": 3.0, "rainy": -2.0, "cloudy": 0.5, None: 0.0}
        y = np.array([10 + effect[w] for w in weather]) + rng.normal(size=T) * 0.3
        y[8] = np.nan  # NaN target excluded from the encoding statistics
        fut = [cats[j] for j in rng.integers(0, len(cats), size=H)]
        fut[1] = "snowy"  # never seen in the past -> item mean
        fut[4] = None     # NaN category -> its own (per-item) mean
        if T == 40:
            fut[6] = "rainy"  # seen in another item's past, not in this one's -> item mean
        day = [("weekend" if (k % 7) >= 5 else "weekday") for k in range(T + H)]
        items.append(item(y,
                          past={"weather": cat_array(weather), "day": cat_array(day[:T])},
                          future={"weather": cat_array(fut), "day": cat_array(day[T:])}))
    run_predict_case("predict_tiny_categorical_one_target", T_TINY, tiny, items, H,
                     description="tiny, 1 target + categorical covariates -> per-item target encoding; future has an unseen "
                                 "category ('snowy'), a missing (null) category, and a category seen only in another item")

    # categorical covariates, 2 targets -> ordinal codes
    rng = np.random.default_rng(109)
    items = []
    for T in [36, 44]:
        store = [["b", "a", "c"][j] for j in rng.integers(0, 3, size=T)]
        store[2] = None
        y = np.stack([seasonal(rng, T, 6), seasonal(rng, T, 6, level=3)])
        fut = [["a", "c"][j] for j in rng.integers(0, 2, size=H)]
        fut[0] = "zzz"   # unseen -> NaN
        fut[3] = None    # missing -> the NaN slot's ordinal code (= number of categories)
        items.append(item(y, past={"store": cat_array(store), "level": f32(rng.normal(size=T))},
                          future={"store": cat_array(fut)}))
    run_predict_case("predict_tiny_categorical_two_targets", T_TINY, tiny, items, H,
                     description="tiny, 2 targets + categorical covariate -> ordinal codes over the sorted categories of all "
                                 "items' past values; unseen future -> NaN, missing -> code n_categories")

    # future_covariates {name: None}: known-future but values unavailable
    rng = np.random.default_rng(110)
    items = []
    for T in [50, 70]:
        x = seasonal(rng, T, 8)
        items.append(item(2 * x + rng.normal(size=T), past={"x": f32(x), "z": f32(rng.normal(size=T))},
                          future={"x": None}))
    run_predict_case("predict_tiny_future_none", T_TINY, tiny, items, 16,
                     description="tiny, future_covariates {'x': None}: x is known-future (ordered last) but its values are NaN")

    # cross learning with batch_size 3 over 5 items
    rng = np.random.default_rng(111)
    items = [item(seasonal(rng, T, 12, level=i, amp=2)) for i, T in enumerate([30, 45, 60, 38, 52])]
    run_predict_case("predict_tiny_cross_learning", T_TINY, tiny, items, 16, batch_size=3, cross_learning=True,
                     description="tiny, cross_learning=True, batch_size=3 over 5 univariate items -> batches [0,1,2],[3,4], "
                                 "all group ids 0 within a batch")

    # batch_size 2 where an item's rows exceed it
    rng = np.random.default_rng(112)
    items = []
    for T in [40, 30, 55]:
        items.append(item(np.stack([seasonal(rng, T, 5), seasonal(rng, T, 5, level=-4)]),
                          past={"c": f32(rng.normal(size=T))}))
    run_predict_case("predict_tiny_batch_overflow", T_TINY, tiny, items, 16, batch_size=2,
                     description="tiny, batch_size=2 but each item has 3 rows (2 targets + 1 past covariate): one item per batch")

    # explicit context_length 64
    rng = np.random.default_rng(113)
    items = [item(seasonal(rng, T, 16, amp=4)) for T in [200, 50]]
    run_predict_case("predict_tiny_context_length_64", T_TINY, tiny, items, 16, context_length=64,
                     description="tiny, context_length=64 given explicitly (the 200-step item keeps its last 64 steps)")
    rng = np.random.default_rng(114)
    items = [item(seasonal(rng, 300, 16, amp=4))]
    run_predict_case("predict_tiny_context_length_too_large", T_TINY, tiny, items, 16, context_length=5000,
                     description="tiny, context_length=5000 > model's 256: reset to 256 with a warning")

    # long horizon: 1100 > 64*16. Run on `small` (context_length 2048): with tiny's 256 the
    # reference itself fails in _slide_context_and_future_covariates (it writes the last 1024
    # appended steps into a context already cut to 256 steps: "size of tensor a (1024) must
    # match the size of tensor b (256)"), so any model with context_length < 1024 cannot unroll.
    rng = np.random.default_rng(115)
    items = [item(seasonal(rng, T, 24, amp=3)) for T in [100, 1100]]
    run_predict_case("predict_small_long_horizon", T_SMALL, small, items, 1100,
                     description="small, prediction_length=1100 > 1024: first 64 patches, then the 9-path autoregressive "
                                 "unroll (5 patches); the 1100-step item exceeds context_length 2048 once 1024 steps are appended")
    rng = np.random.default_rng(116)
    H = 1100
    T = 120
    t = np.arange(T + H)
    cov = np.sin(2 * np.pi * t / 24) * 3
    fut_cov = f32(cov[T:])
    fut_cov[1000:1010] = np.nan
    fut_cov[1030:1040] = np.nan
    items = [item(cov[:T] * 2 + rng.normal(size=T) * 0.2, past={"cov": f32(cov[:T])}, future={"cov": fut_cov})]
    run_predict_case("predict_small_long_horizon_covariate", T_SMALL, small, items, H,
                     description="small, H=1100 with a known-future covariate (NaN at future steps 1000..1009 and "
                                 "1030..1039): during the unroll the appended context of the covariate row is replaced by "
                                 "its known (non-NaN) future values and the future covariates shift left by 1024")

    # quantile levels needing interpolation and edge clamping
    rng = np.random.default_rng(117)
    items = [item(seasonal(rng, T, 12, amp=5, noise=1)) for T in [64, 90]]
    run_predict_case("predict_tiny_quantile_interp", T_TINY, tiny, items, 20,
                     quantile_levels=[0.005, 0.025, 0.1, 0.33, 0.5, 0.9, 0.995],
                     description="tiny, quantile levels [0.005,0.025,0.1,0.33,0.5,0.9,0.995]: linear interpolation between "
                                 "model levels, clamped to the 0.01/0.99 values outside [0.01,0.99]")

    # default levels on small
    rng = np.random.default_rng(118)
    items = [item(seasonal(rng, T, 24, level=100, amp=20, noise=3)) for T in [500, 96, 33]]
    run_predict_case("predict_small_default_levels", T_SMALL, small, items, 40,
                     description="small, default quantile levels [0.1..0.9], 3 items, H=40")


# --------------------------------------------------------------------------------------
# kind "embed": Chronos2Pipeline.embed
# --------------------------------------------------------------------------------------


def run_embed_case(name, model_ref, pipe, items, batch_size=256, context_length=None, input_format="tensors",
                   description=""):
    if input_format == "tensors":
        ref_inputs = [it["target"][0] if it["target"].shape[0] == 1 else it["target"] for it in items]
        ref_inputs = [x.copy() for x in ref_inputs]
    else:
        ref_inputs = [to_reference_item(it, one_d=True) for it in items]
    embeds, loc_scales = pipe.embed(ref_inputs, batch_size=batch_size, context_length=context_length)
    assert len(embeds) == len(items)
    d = pipe.model.config.d_model
    for it, e, (loc, scale) in zip(items, embeds, loc_scales):
        n = it["target"].shape[0]
        assert e.shape[0] == n and e.shape[2] == d, e.shape
        assert loc.shape == (n, 1) and scale.shape == (n, 1)
    write_case(name, {
        "kind": "embed",
        "model": model_ref,
        "description": description,
        "input_format": input_format,
        "inputs": items,
        "batch_size": batch_size,
        "context_length": context_length,
        "expected": {
            "embeddings": embeds,
            "loc": [l[:, 0] for l, _ in loc_scales],
            "scale": [s[:, 0] for _, s in loc_scales],
        },
    })


def embed_cases(pipes):
    tiny, mini = pipes["tiny"], pipes["mini"]
    T_TINY = "tests/fixtures/models/tiny"
    rng = np.random.default_rng(201)
    a = seasonal(rng, 40, 8)
    a[:3] = np.nan
    b = np.stack([seasonal(rng, 70, 8, level=2), seasonal(rng, 70, 8, level=-2)])
    b[1, 30:50] = np.nan
    c = seasonal(rng, 300, 8, amp=2)
    c[100] = np.nan
    run_embed_case("embed_tiny_ragged", T_TINY, tiny, [item(a), item(b), item(c)],
                   description="tiny, list of tensors: 1-D (T=40, leading NaN), 2-D (2 variates, T=70, NaN gap), 1-D "
                               "(T=300 -> truncated to 256); items left-padded to the batch's longest")
    rng = np.random.default_rng(202)
    items = [item(seasonal(rng, T, 8), past={"x": f32(rng.normal(size=T))}) for T in [40, 56]]
    run_embed_case("embed_tiny_dict_covariates", T_TINY, tiny, items, input_format="dicts",
                   description="tiny, list of dicts with a past covariate: the covariate row takes part in group attention "
                               "but only target rows are returned")
    rng = np.random.default_rng(203)
    run_embed_case("embed_tiny_batch_context", T_TINY, tiny,
                   [item(seasonal(rng, T, 8)) for T in [100, 30, 64]], batch_size=2, context_length=48,
                   description="tiny, batch_size=2 (batches [0,1],[2]) and context_length=48")
    rng = np.random.default_rng(204)
    run_embed_case("embed_mini", MINI, mini,
                   [item(seasonal(rng, 100, 12, level=30, amp=5)), item(seasonal(rng, 75, 7, level=-3, amp=1))],
                   description="chronos2-mini, 2 univariate items (T=100, 75)")


# --------------------------------------------------------------------------------------
# kind "dataframe": Chronos2Pipeline.predict_df
# --------------------------------------------------------------------------------------

TS_FMT = "%Y-%m-%dT%H:%M:%S"


def _df_to_csv(df: pd.DataFrame, path: Path, ts_col: str) -> None:
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        col = df[c]
        if c == ts_col:
            out[c] = pd.to_datetime(col).dt.strftime(TS_FMT)
        elif pd.api.types.is_float_dtype(col):
            out[c] = ["" if np.isnan(v) else _fmt_f32(v) for v in col.to_numpy(dtype=np.float32)]
        else:
            out[c] = ["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in col]
    out.to_csv(path, index=False)


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip")


def run_df_case(name, model_ref, pipe, df, future_df=None, prediction_length=8, id_column="item_id",
                timestamp_column="timestamp", target=("target",), quantile_levels=None, freq=None, batch_size=256,
                cross_learning=False, context_length=None, parquet=False, description=""):
    levels = list(DEFAULT_LEVELS if quantile_levels is None else quantile_levels)
    out_dir = DF_DIR / name
    out_dir.mkdir(parents=True, exist_ok=True)
    # floats must be float32-exact so the CSV text is exact
    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c]):
            df[c] = df[c].astype(np.float32).astype(np.float64)
    if future_df is not None:
        for c in future_df.columns:
            if pd.api.types.is_float_dtype(future_df[c]):
                future_df[c] = future_df[c].astype(np.float32).astype(np.float64)

    if parquet:
        input_path = out_dir / "input.parquet"
        df.to_parquet(input_path, index=False, engine="pyarrow")
        df_in = pd.read_parquet(input_path)
    else:
        input_path = out_dir / "input.csv"
        _df_to_csv(df, input_path, timestamp_column)
        df_in = _read_csv(input_path)
    # the written file must hold exactly the generated values
    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c]):
            assert np.array_equal(df_in[c].to_numpy(np.float32), df[c].to_numpy(np.float32), equal_nan=True), c
    future_path = None
    future_in = None
    if future_df is not None:
        future_path = out_dir / "future.csv"
        _df_to_csv(future_df, future_path, timestamp_column)
        future_in = _read_csv(future_path)

    result = pipe.predict_df(
        df_in,
        future_df=future_in,
        id_column=id_column,
        timestamp_column=timestamp_column,
        target=list(target),
        prediction_length=prediction_length,
        quantile_levels=levels,
        batch_size=batch_size,
        context_length=context_length,
        cross_learning=cross_learning,
        freq=freq,
    )
    norm_df, norm_future = validate_and_normalize_df(df_in, future_in, list(target), prediction_length,
                                                     id_column=id_column, timestamp_column=timestamp_column)
    prepared = preprocess.from_data_frame(norm_df, list(target), prediction_length, future_df=norm_future,
                                          id_column=id_column, timestamp_column=timestamp_column,
                                          validate_inputs=False)
    expected_cols = [id_column, timestamp_column, "target_name", "predictions"] + [str(q) for q in levels]
    assert list(result.columns) == expected_cols, (list(result.columns), expected_cols)
    n_items = df_in[id_column].nunique()
    assert len(result) == n_items * len(target) * prediction_length
    num_cols = ["predictions"] + [str(q) for q in levels]
    assert np.isfinite(result[num_cols].to_numpy(np.float64)).all(), f"{name}: non-finite predictions"
    for c in num_cols:
        assert result[c].dtype == np.float32, (c, result[c].dtype)
    _df_to_csv(result, out_dir / "expected.csv", timestamp_column)
    # round-trip check of expected.csv
    back = _read_csv(out_dir / "expected.csv")
    for c in num_cols:
        assert np.array_equal(back[c].to_numpy(np.float32), result[c].to_numpy(np.float32)), c
    write_case(name, {
        "kind": "dataframe",
        "model": model_ref,
        "description": description,
        "input": rel(input_path),
        "future": None if future_path is None else rel(future_path),
        "expected": rel(out_dir / "expected.csv"),
        "prediction_length": prediction_length,
        "id_column": id_column,
        "timestamp_column": timestamp_column,
        "target": list(target),
        "quantile_levels": levels,
        "freq": freq,
        "batch_size": batch_size,
        "cross_learning": cross_learning,
        "context_length": context_length,
        "expected_item_ids": [str(x) for x in pd.unique(norm_df[id_column])],
        "expected_prepared": prepared_json(prepared),
    })


def dataframe_cases(pipes):
    tiny, mini = pipes["tiny"], pipes["mini"]
    T_TINY = "tests/fixtures/models/tiny"

    # hourly, 3 items of different lengths, default column names, default levels (chronos2-mini)
    rng = np.random.default_rng(301)
    frames = []
    for iid, T, start in [("B", 120, "2024-01-01 00:00"), ("A", 72, "2024-01-03 12:00"), ("C", 200, "2023-12-25 05:00")]:
        ts = pd.date_range(start, periods=T, freq="h")
        y = 50 + 10 * np.sin(2 * np.pi * ts.hour / 24) + rng.normal(size=T) * 2
        frames.append(pd.DataFrame({"item_id": iid, "timestamp": ts, "target": y}))
    df = pd.concat(frames, ignore_index=True)
    run_df_case("df_mini_hourly", MINI, mini, df, prediction_length=24,
                description="chronos2-mini, hourly, items B (120), A (72), C (200) in that order; default columns and levels")

    # daily, custom column names, numeric past covariate, known-future numeric + categorical (chronos2-mini)
    rng = np.random.default_rng(302)
    H = 14
    frames, futures = [], []
    for sid, T in [("store_1", 90), ("store_2", 60)]:
        ts = pd.date_range("2024-03-01", periods=T + H, freq="D")
        promo = (rng.uniform(size=T + H) < 0.25).astype(float)
        daytype = np.where(ts.dayofweek >= 5, "weekend", "weekday").astype(object)
        holidays = rng.choice(T + H, size=4, replace=False)
        daytype[holidays] = "holiday"
        price = 10 + rng.normal(size=T + H) * 0.5
        sales = 100 + 30 * promo - 20 * (daytype == "weekend") - 4 * price + rng.normal(size=T + H) * 5
        d = pd.DataFrame({"series": sid, "date": ts[:T], "sales": sales[:T], "price": price[:T],
                          "promo": promo[:T], "daytype": daytype[:T]})
        d.loc[10, "price"] = np.nan
        d.loc[20, "daytype"] = None
        frames.append(d)
        fdaytype = daytype[T:].copy()
        fdaytype[3] = "closure"  # unseen in the past -> item mean (target encoding)
        futures.append(pd.DataFrame({"series": sid, "date": ts[T:], "promo": promo[T:], "daytype": fdaytype}))
    df = pd.concat(frames, ignore_index=True)
    fdf = pd.concat(futures, ignore_index=True)
    run_df_case("df_mini_daily_covariates", MINI, mini, df, future_df=fdf, prediction_length=H, id_column="series",
                timestamp_column="date", target=["sales"],
                description="chronos2-mini, daily, columns series/date/sales; past-only numeric 'price' (one NaN), "
                            "known-future numeric 'promo' and categorical 'daytype' (target-encoded; one missing past "
                            "value, one unseen future category 'closure') from future.csv")

    # multi-target (two target columns) + a past-only categorical (ordinal codes)
    rng = np.random.default_rng(303)
    frames = []
    for iid, T in [("x", 50), ("y", 65)]:
        ts = pd.date_range("2022-06-01", periods=T, freq="W-SUN")
        base = np.sin(np.arange(T) / 3)
        frames.append(pd.DataFrame({
            "item_id": iid, "timestamp": ts,
            "demand": 20 + 5 * base + rng.normal(size=T),
            "supply": 18 + 4 * base + rng.normal(size=T),
            "region": rng.choice(["north", "south"], size=T).astype(object),
        }))
    df = pd.concat(frames, ignore_index=True)
    df.loc[5, "supply"] = np.nan
    run_df_case("df_tiny_multi_target", T_TINY, tiny, df, prediction_length=6, target=["demand", "supply"],
                description="tiny, weekly (W-SUN), two target columns demand/supply, past-only categorical 'region' "
                            "(2 targets -> ordinal codes); rows ordered (item, target, step)")

    # 15-minute data read from parquet, explicit freq, NaN targets
    rng = np.random.default_rng(304)
    frames = []
    for iid, T in [("m1", 150), ("m2", 96)]:
        ts = pd.date_range("2024-05-01 08:00", periods=T, freq="15min")
        y = 5 + np.sin(np.arange(T) * 2 * np.pi / 96) + rng.normal(size=T) * 0.1
        y[rng.choice(T, size=5, replace=False)] = np.nan
        frames.append(pd.DataFrame({"item_id": iid, "timestamp": ts, "target": y}))
    df = pd.concat(frames, ignore_index=True)
    run_df_case("df_tiny_15min_parquet", T_TINY, tiny, df, prediction_length=10, freq="15min", parquet=True,
                description="tiny, 15-minute data from input.parquet (timestamp column is a parquet timestamp), "
                            "some NaN targets, freq='15min' given explicitly")

    # monthly start, rows shuffled in the file (normalize_df groups by first appearance and sorts)
    rng = np.random.default_rng(305)
    frames = []
    for iid, T in [("p", 40), ("q", 30), ("r", 3)]:
        ts = pd.date_range("2019-01-01", periods=T, freq="MS")
        frames.append(pd.DataFrame({"item_id": iid, "timestamp": ts,
                                    "target": seasonal(rng, T, 12, level=100, amp=15, noise=2)}))
    df = pd.concat(frames, ignore_index=True)
    df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    run_df_case("df_tiny_monthly_start", T_TINY, tiny, df, prediction_length=12,
                description="tiny, monthly-start (MS, inferred), rows shuffled in input.csv (items ordered by first "
                            "appearance, rows sorted by timestamp); item r has only 3 rows")

    # quantile levels with interpolation
    rng = np.random.default_rng(306)
    frames = []
    for iid, T in [("u", 80), ("v", 45)]:
        ts = pd.date_range("2024-02-27", periods=T, freq="D")
        frames.append(pd.DataFrame({"item_id": iid, "timestamp": ts, "target": seasonal(rng, T, 7, amp=3, noise=1)}))
    df = pd.concat(frames, ignore_index=True)
    run_df_case("df_tiny_quantile_levels", T_TINY, tiny, df, prediction_length=9,
                quantile_levels=[0.05, 0.33, 0.5, 0.99],
                description="tiny, daily across the 2024 leap day, quantile levels [0.05, 0.33 (interpolated), 0.5, 0.99]")



# --------------------------------------------------------------------------------------
# Fine-tuning fixtures (tests/fixtures/finetune/): loss and gradients on fixed batches for the
# full / lora / head modes, five AdamW steps of the reference's Trainer, a LoRA on a quantized
# (dequantized) base, and a PEFT adapter with its predictions. Run alone with --finetune-only.
# --------------------------------------------------------------------------------------

FT_DIR = FIX / "finetune"
LORA_TARGETS = ["self_attention.q", "self_attention.v", "self_attention.k", "self_attention.o",
                "output_patch_embedding.output_layer"]


def ft_write(name: str, case: dict) -> None:
    path = FT_DIR / f"{name}.json"
    text = dumps(case) + "\n"
    json.loads(text)
    path.write_text(text)
    print(f"  wrote {path.relative_to(ROOT)} ({len(text) / 1024:.1f} KiB)")


def ft_tasks(variant: str, seed: int, prediction_length: int = 16) -> list[dict]:
    """Training tasks as list-of-dicts inputs; `nan` puts gaps in targets and covariates."""
    rng = np.random.default_rng(seed)
    tasks = []
    lengths = [70, 45, 90, 30] if variant != "covariates" else [60, 80]
    for i, T in enumerate(lengths):
        y = f32(seasonal(rng, T, period=12, level=5.0 + i, amp=2.0))
        if variant == "nan":
            y[rng.choice(T, size=T // 6, replace=False)] = np.nan
        tasks.append({"target": y})
    if variant == "covariates":
        T = 75
        a = f32(seasonal(rng, T, 12, level=3.0))
        b = f32(seasonal(rng, T, 7, level=-1.0))
        known = f32(rng.normal(size=T))
        past_only = f32(seasonal(rng, T, 5, level=2.0))
        a[[5, 17, 40, 70]] = np.nan
        known[[3, 11]] = np.nan
        tasks.append({"target": np.stack([a, b]), "past_covariates": {"known": known, "past": past_only},
                      "future_covariates": {"known": f32(np.zeros(prediction_length))}})
        T = 50
        y = f32(seasonal(rng, T, 10, level=4.0))
        y[[46, 48]] = np.nan
        tasks.append({"target": y, "past_covariates": {"k2": f32(rng.normal(size=T))},
                      "future_covariates": {"k2": f32(np.zeros(prediction_length))}})
    return tasks


def ft_prepared(tasks, prediction_length):
    """Each task prepared on its own (tasks of different shapes cannot share one from_list_of_dicts call)."""
    return [p for t in tasks for p in preprocess.from_list_of_dicts([t], prediction_length)]


def ft_batch(tasks, prediction_length, context_length, min_past, mode, seed=None, batch_size=256):
    from chronos.chronos2.dataset import Chronos2Dataset, DatasetMode
    prepared = ft_prepared(tasks, prediction_length)
    ds = Chronos2Dataset(inputs=prepared, context_length=context_length, prediction_length=prediction_length,
                         batch_size=batch_size, output_patch_size=16, min_past=min_past,
                         mode=DatasetMode.VALIDATION if mode == "validation" else DatasetMode.TRAIN)
    if seed is not None:
        np.random.seed(seed)
    batch = next(iter(ds))
    batch.pop("target_idx_ranges", None)
    return ds, batch


def ft_batch_json(batch) -> dict:
    return {k: (v if not isinstance(v, torch.Tensor) else v.detach().numpy()) for k, v in batch.items()}


def ft_model(path: Path, dtype=torch.float32) -> Chronos2Model:
    model = Chronos2Model.from_pretrained(str(path), dtype=dtype)
    return model.to(dtype).train()


def ft_make_lora(model: Chronos2Model, seed: int):
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(seed)  # peft draws A from the global generator
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(LORA_TARGETS)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # B is zero after peft's init: make it non-zero so that A gets gradients
        for name, p in sorted(peft_model.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype) * 0.2)
    return peft_model


def ft_peft_key(name: str) -> str:
    """`base_model.model.x.lora_A.default.weight` -> the saved PEFT key (adapter name dropped)."""
    return name.replace(".default.", ".")


def ft_set_trainable(model, mode: str) -> None:
    if mode == "head":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("output_patch_embedding."))


def ft_trainable(model) -> dict:
    return {ft_peft_key(n): p for n, p in model.named_parameters() if p.requires_grad}


def ft_prepare(path: Path, mode: str, dtype, lora_seed: int, dequantize_bits=None):
    model = ft_model(path, dtype)
    if dequantize_bits is not None:
        ft_dequantize_base(model, dequantize_bits)
    if mode in ("lora", "qlora"):
        model = ft_make_lora(model, lora_seed)
    ft_set_trainable(model, mode)
    return model


def ft_loss_and_grads(model, batch, dtype):
    args = {k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in batch.items()}
    model.zero_grad()
    with torch.enable_grad():
        loss = model(**args).loss
        loss.backward()
    return loss.item(), {n: p.grad.detach().to(torch.float64).numpy().copy() for n, p in ft_trainable(model).items()}


def mlx_quantize_dequantize(w: np.ndarray, bits: int, group_size: int = 64) -> np.ndarray:
    """MLX's affine quantize then dequantize in float32 (a numpy port of crates/chronos2-core/src/quant.rs)."""
    w = w.astype(np.float32)
    n_bins = np.float32(2 ** bits - 1)
    out = np.empty_like(w)
    flat, res = w.reshape(-1, group_size), out.reshape(-1, group_size)
    for g in range(flat.shape[0]):
        group = flat[g]
        w_min, w_max = np.float32(group.min()), np.float32(group.max())
        mask = abs(w_min) > abs(w_max)
        scale = np.float32(max(np.float32((w_max - w_min) / n_bins), np.float32(1e-7)))
        if not mask:
            scale = -scale
        edge = w_min if mask else w_max
        q0 = np.float32(np.rint(np.float32(edge / scale)))
        bias = np.float32(0.0)
        if q0 != 0:
            scale = np.float32(edge / q0)
            bias = edge
        q = np.clip(np.rint(((group - bias) / scale).astype(np.float32)), 0, n_bins).astype(np.float32)
        res[g] = (scale * q).astype(np.float32) + bias
    return out


def ft_dequantize_base(model: Chronos2Model, bits: int) -> None:
    """Replaces every linear weight whose input width is a multiple of 64 by its MLX int-`bits` dequantization."""
    with torch.no_grad():
        for _, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear) and mod.in_features % 64 == 0:
                mod.weight.copy_(torch.from_numpy(mlx_quantize_dequantize(mod.weight.numpy(), bits)))


def ft_grad_case(name, model_ref, path, mode, variant, prediction_length, context_length, dequantize_bits=None):
    tasks = ft_tasks(variant, seed={"nan": 11, "covariates": 12}[variant] + prediction_length, prediction_length=prediction_length)
    _, batch = ft_batch(tasks, prediction_length, context_length, prediction_length, "validation")
    m32 = ft_prepare(path, mode, torch.float32, 77, dequantize_bits)
    m64 = ft_prepare(path, mode, torch.float64, 77, dequantize_bits)
    with torch.no_grad():  # the float64 twin starts from exactly the same LoRA matrices
        p64 = dict(m64.named_parameters())
        for n, p in m32.named_parameters():
            p64[n].copy_(p.to(torch.float64))
    loss, grads = ft_loss_and_grads(m32, batch, torch.float32)
    loss64, grads64 = ft_loss_and_grads(m64, batch, torch.float64)
    assert math.isfinite(loss)
    lora = {n: p for n, p in ft_trainable(m32).items() if "lora_" in n} if mode in ("lora", "qlora") else {}
    ft_write(name, {
        "kind": "finetune_grad",
        "model": model_ref,
        "mode": mode,
        "quantize_bits": dequantize_bits,
        "description": f"{mode} loss and gradients on a validation batch ({variant})",
        "prepared": prepared_json(ft_prepared(tasks, prediction_length)),
        "prediction_length": prediction_length,
        "context_length": context_length,
        "batch": ft_batch_json(batch),
        "lora_init": {n: p.detach().numpy() for n, p in lora.items()},
        "loss": np.float32(loss),
        "loss_f64": float(loss64),
        "grads": {n: g.astype(np.float32) for n, g in grads.items()},
        # per parameter: largest |float32 gradient - float64 gradient| (the fixture's own noise)
        "grad_noise": {n: float(np.abs(grads[n] - grads64[n]).max()) for n in grads},
    })


class ft_dropout_masks:
    """While active, `torch.nn.functional.dropout` (every `nn.Dropout` and the eager attention's
    weight dropout) in training with p > 0 multiplies by a recorded keep mask scaled by 1 / (1 - p),
    as torch's own dropout does: masks are drawn from `generator` and appended to `masks`, or, when
    `masks` is given, replayed in call order (the float64 twin uses the float32 run's masks)."""

    def __init__(self, generator=None, masks=None):
        self.generator, self.replay = generator, masks is not None
        self.masks, self.calls = (masks if masks is not None else []), 0
        self.real = torch.nn.functional.dropout

    def __enter__(self):
        def dropout(x, p=0.5, training=True, inplace=False):
            if not training or p == 0.0:
                return self.real(x, p, training, inplace)
            if self.replay:
                keep = self.masks[self.calls]
                assert keep.shape == x.shape, (keep.shape, x.shape, self.calls)
            else:
                keep = torch.rand(x.shape, generator=self.generator) >= p
                self.masks.append(keep)
            self.calls += 1
            return x * (keep.to(x.dtype) / (1 - p))
        torch.nn.functional.dropout = dropout
        return self

    def __exit__(self, *exc):
        torch.nn.functional.dropout = self.real


class ft_eager_softmax_in_dtype:
    """While active, the eager attention takes its softmax in the scores' dtype. The reference's
    casts the scores to float32 first, which in a float64 model turns float64's `finfo.min` mask
    into -inf and a query with no visible key into NaN; the float64 twin needs the float64 softmax
    (a finite mask: the float32 model's uniform weights)."""

    def __enter__(self):
        from chronos.chronos2 import layers
        self.layers, self.real = layers, layers.MHA._eager_attention

        def eager(mha, query_states, key_states, value_states, mask):
            scores = torch.matmul(query_states, key_states.transpose(3, 2)) + mask
            attn_weights = torch.nn.functional.softmax(scores, dim=-1)
            attn_weights = torch.nn.functional.dropout(attn_weights, p=mha.dropout, training=mha.training)
            return torch.matmul(attn_weights, value_states), attn_weights
        layers.MHA._eager_attention = eager
        return self

    def __exit__(self, *exc):
        self.layers.MHA._eager_attention = self.real


def ft_mask_json(keep: torch.Tensor) -> dict:
    """A keep mask: its shape and its elements (row-major) as bits, most significant first, in hex."""
    bits = np.packbits(keep.numpy().reshape(-1).astype(np.uint8), bitorder="big")
    return {"shape": list(keep.shape), "bits": bits.tobytes().hex()}


def ft_dropout_case(name, model_ref, path, mode, variant, prediction_length, context_length, rate=0.1):
    """Loss and gradients in training mode with dropout (`rate` set on the model's config, eager
    attention), every dropout mask recorded in call order."""
    tasks = ft_tasks(variant, seed={"nan": 11, "covariates": 12}[variant] + prediction_length, prediction_length=prediction_length)
    _, batch = ft_batch(tasks, prediction_length, context_length, prediction_length, "validation")

    def prepare(dtype):
        model = Chronos2Model.from_pretrained(str(path), dtype=dtype, dropout_rate=rate,
                                              attn_implementation="eager").to(dtype).train()
        assert model.config.dropout_rate == rate and model.config._attn_implementation == "eager"
        if mode in ("lora", "qlora"):
            model = ft_make_lora(model, 77)
        ft_set_trainable(model, mode)
        return model

    m32, m64 = prepare(torch.float32), prepare(torch.float64)
    with torch.no_grad():
        p64 = dict(m64.named_parameters())
        for n, p in m32.named_parameters():
            p64[n].copy_(p.to(torch.float64))
    with ft_dropout_masks(generator=torch.Generator().manual_seed(2024)) as rec:
        loss, grads = ft_loss_and_grads(m32, batch, torch.float32)
    with ft_dropout_masks(masks=rec.masks) as rep, ft_eager_softmax_in_dtype():
        loss64, grads64 = ft_loss_and_grads(m64, batch, torch.float64)
    assert rep.calls == len(rec.masks) and math.isfinite(loss)
    kept = float(np.mean([m.float().mean().item() for m in rec.masks]))
    lora = {n: p for n, p in ft_trainable(m32).items() if "lora_" in n} if mode in ("lora", "qlora") else {}
    ft_write(name, {
        "kind": "finetune_grad",
        "model": model_ref,
        "mode": mode,
        "quantize_bits": None,
        "dropout_rate": rate,
        "description": f"{mode} loss and gradients in training mode with dropout {rate} on a validation batch "
                       f"({variant}), eager attention, {len(rec.masks)} dropout masks (mean kept {kept:.3f})",
        "prepared": prepared_json(ft_prepared(tasks, prediction_length)),
        "prediction_length": prediction_length,
        "context_length": context_length,
        "batch": ft_batch_json(batch),
        "lora_init": {n: p.detach().numpy() for n, p in lora.items()},
        # in call order: input embedding (context, then future), encoder input, per block time
        # attention weights and residual, group attention weights (time, heads, rows, rows) and
        # residual (time, rows, d), MLP hidden, feed-forward residual; final hidden; output head
        "dropout_masks": [ft_mask_json(m) for m in rec.masks],
        "loss": np.float32(loss),
        "loss_f64": float(loss64),
        "grads": {n: g.astype(np.float32) for n, g in grads.items()},
        "grad_noise": {n: float(np.abs(grads[n] - grads64[n]).max()) for n in grads},
    })


def ft_dropout_cases() -> None:
    tiny = MODELS_DIR / "tiny"
    for mode in ("full", "lora"):
        ft_dropout_case(f"dropout_tiny_{mode}_covariates", "tests/fixtures/models/tiny", tiny, mode, "covariates", 20, 64)


def ft_adamw_case(name, model_ref, path, mode, learning_rate, steps=5):
    """Five steps of the reference's own Trainer (fit's TrainingArguments) on fixed batches."""
    import tempfile
    from transformers.training_args import TrainingArguments
    from chronos.chronos2.trainer import Chronos2Trainer
    from torch.utils.data import IterableDataset

    tasks = ft_tasks("covariates", seed=5, prediction_length=16)
    ds, _ = ft_batch(tasks, 16, 64, 16, "train", batch_size=6)
    np.random.seed(123)
    it = iter(ds)
    batches = []
    while len(batches) < steps:
        b = next(it)
        b.pop("target_idx_ranges", None)
        # a batch of singleton groups leaves group attention's q/k with float-noise gradients,
        # which Adam's normalisation turns into full steps: keep the batches with a real group
        if torch.unique(b["group_ids"], return_counts=True)[1].max() > 1:
            batches.append(b)

    class Fixed(IterableDataset):
        batch_size = 6

        def __iter__(self):
            return iter([{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in b.items()} for b in batches])

    model = ft_prepare(path, mode, torch.float32, 78)
    init = {n: p.detach().numpy().copy() for n, p in ft_trainable(model).items()}
    losses = []
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hook = base.register_forward_hook(lambda m, i, o: losses.append(float(o.loss.item())))
    with tempfile.TemporaryDirectory() as out, torch.enable_grad():
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=6, learning_rate=learning_rate,
                                 lr_scheduler_type="linear", warmup_steps=0, optim="adamw_torch_fused",
                                 logging_strategy="no", report_to="none", max_steps=steps,
                                 gradient_accumulation_steps=1, dataloader_num_workers=0, save_strategy="no",
                                 eval_strategy="no", use_cpu=True, disable_tqdm=True, prediction_loss_only=True)
        trainer = Chronos2Trainer(model=model, args=args, train_dataset=Fixed())
        trainer.train()
    hook.remove()
    assert len(losses) == steps, losses
    ft_write(name, {
        "kind": "finetune_adamw",
        "model": model_ref,
        "mode": mode,
        "description": f"{steps} AdamW steps of Chronos2Trainer ({mode}), lr {learning_rate}, linear schedule, "
                       f"max_grad_norm {args.max_grad_norm}",
        "learning_rate": learning_rate,
        "max_grad_norm": args.max_grad_norm,
        "batches": [ft_batch_json(b) for b in batches],
        "initial": init,
        "losses": [np.float32(x) for x in losses],
        "final": {n: p.detach().numpy() for n, p in ft_trainable(model).items()},
    })


def ft_adapter_case(model_ref, path):
    """A PEFT adapter saved by peft (random A and B) and the reference pipeline's forecasts with it."""
    adapter_dir = FT_DIR / "adapters" / "tiny_lora"
    model = ft_prepare(path, "lora", torch.float32, 79)
    gen = torch.Generator().manual_seed(80)
    with torch.no_grad():
        for n, p in sorted(model.named_parameters()):
            if "lora_A" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.peft_config["default"].base_model_name_or_path = model_ref
    model.save_pretrained(str(adapter_dir))
    (adapter_dir / "README.md").unlink(missing_ok=True)  # peft's model card template
    pipe = Chronos2Pipeline.from_pretrained(str(adapter_dir), dtype=torch.float32)
    pipe.model.eval()
    rng = np.random.default_rng(81)
    context = f32(seasonal(rng, 100, 12, level=6.0))
    context[[10, 50]] = np.nan
    with torch.no_grad():
        quantiles = pipe.predict([torch.from_numpy(context)], prediction_length=20)[0]
        base = load_pipeline(path).predict([torch.from_numpy(context)], prediction_length=20)[0]
    assert (quantiles - base).abs().max() > 1e-3, "the adapter must change the forecast"
    ft_write("adapter_tiny_lora", {
        "kind": "finetune_adapter",
        "model": model_ref,
        "description": "PEFT LoRA adapter written by peft and the reference's forecast through it",
        "adapter": rel(adapter_dir),
        "context": context,
        "prediction_length": 20,
        "quantiles": quantiles[0].numpy(),
        "base_quantiles": base[0].numpy(),
    })


def ft_npz_adapter_case() -> None:
    """The PEFT adapter of ft_adapter_case rewritten by numpy's np.savez in mlx-lm's LoRA layout
    (`{module}.lora_a` = A^T (in, r), `{module}.lora_b` = B^T (r, out)) with an mlx-lm
    adapter_config.json: the reference's forecast through the PEFT adapter is its forecast."""
    from safetensors.numpy import load_file
    src = FT_DIR / "adapters" / "tiny_lora"
    dst = FT_DIR / "adapters" / "tiny_lora_npz"
    dst.mkdir(parents=True, exist_ok=True)
    config = json.loads((src / "adapter_config.json").read_text())
    arrays = {}
    for key, value in load_file(str(src / "adapter_model.safetensors")).items():
        module, which = key.removeprefix("base_model.model.").removesuffix(".weight").rsplit(".lora_", 1)
        arrays[f"{module}.lora_{which.lower()}"] = np.ascontiguousarray(value.astype(np.float32).T)
    np.savez(dst / "adapters.npz", **arrays)
    (dst / "adapter_config.json").write_text(json.dumps({
        "fine_tune_type": "lora",
        "lora_parameters": {"rank": config["r"], "scale": config["lora_alpha"] / config["r"], "dropout": 0.0,
                            "keys": config["target_modules"]},
    }, indent=2) + "\n")
    print(f"  wrote {rel(dst)} ({len(arrays)} arrays)")


# Our adapter and fused model (written by our CLI from the tiny model, fixed seed), which the
# reference loads below. Created once with these commands (run from the repository root) and
# committed; regenerated only when missing.
OURS_DIR = FT_DIR / "ours"
OURS_COMMANDS = [
    ["cargo", "run", "-q", "-p", "chronos2-cli", "--", "finetune", "--model", "tests/fixtures/models/tiny",
     "--input", "examples/airpassengers.csv", "--prediction-length", "12", "--mode", "lora", "--steps", "20",
     "--batch-size", "4", "--learning-rate", "1e-3", "--seed", "7", "--output", "tests/fixtures/finetune/ours/lora"],
    ["cargo", "run", "-q", "-p", "chronos2-cli", "--", "fuse", "--model", "tests/fixtures/models/tiny",
     "--adapter", "tests/fixtures/finetune/ours/lora", "--output", "tests/fixtures/finetune/ours/fused"],
]


def ft_ours_case(model_ref, path) -> None:
    """The reference loads our PEFT adapter (on its base, through peft) and our fused model, and
    forecasts with them."""
    import subprocess
    if not OURS_DIR.exists():
        OURS_DIR.mkdir(parents=True)
        for cmd in OURS_COMMANDS:
            subprocess.run(cmd, cwd=ROOT, check=True)
    rng = np.random.default_rng(82)
    context = f32(seasonal(rng, 110, 12, level=8.0, trend=0.02))
    context[[7, 66]] = np.nan

    def forecast(pipe):
        pipe.model.eval()
        with torch.no_grad():
            return pipe.predict([torch.from_numpy(context)], prediction_length=12)[0][0].numpy()

    cwd = os.getcwd()
    os.chdir(ROOT)  # our adapter names its base relative to the repository root
    try:
        adapter = forecast(Chronos2Pipeline.from_pretrained(str(OURS_DIR / "lora"), dtype=torch.float32))
    finally:
        os.chdir(cwd)
    fused = forecast(load_pipeline(OURS_DIR / "fused"))
    base = forecast(load_pipeline(path))
    assert np.abs(adapter - base).max() > 1e-3, "our adapter must change the reference's forecast"
    ft_write("ours_loaded_by_reference", {
        "kind": "finetune_ours",
        "model": model_ref,
        "description": "our LoRA adapter (chronos2 finetune) and our fused model (chronos2 fuse), loaded and "
                       "run by the reference's Chronos2Pipeline",
        "adapter": rel(OURS_DIR / "lora"),
        "fused": rel(OURS_DIR / "fused"),
        "context": context,
        "prediction_length": 12,
        "adapter_quantiles": adapter,
        "fused_quantiles": fused,
        "base_quantiles": base,
    })


def finetune_cases() -> None:
    # our adapter and fused model are kept (they are inputs of ft_ours_case, written by our CLI)
    kept = None
    if OURS_DIR.exists():
        kept = Path(tempfile.mkdtemp()) / "ours"
        shutil.move(str(OURS_DIR), kept)
    if FT_DIR.exists():
        shutil.rmtree(FT_DIR)
    FT_DIR.mkdir(parents=True)
    if kept is not None:
        shutil.move(str(kept), OURS_DIR)
    tiny, small = MODELS_DIR / "tiny", MODELS_DIR / "small"
    tiny_ref, small_ref = "tests/fixtures/models/tiny", "tests/fixtures/models/small"
    for mode in ("full", "lora", "head"):
        for variant in ("nan", "covariates"):
            ft_grad_case(f"grad_tiny_{mode}_{variant}", tiny_ref, tiny, mode, variant, 20, 64)
    ft_grad_case("grad_small_lora_covariates", small_ref, small, "lora", "covariates", 24, 128)
    for bits in (8, 4):
        ft_grad_case(f"grad_small_qlora{bits}_covariates", small_ref, small, "qlora", "covariates", 24, 128, bits)
    ft_adamw_case("adamw_tiny_full", tiny_ref, tiny, "full", 1e-3)
    ft_adamw_case("adamw_tiny_lora", tiny_ref, tiny, "lora", 1e-3)
    ft_adamw_case("adamw_tiny_head", tiny_ref, tiny, "head", 1e-3)
    ft_dropout_cases()
    ft_adapter_case(tiny_ref, tiny)
    ft_npz_adapter_case()
    ft_ours_case(tiny_ref, tiny)

# --------------------------------------------------------------------------------------


def main() -> int:
    t0 = time.time()
    warnings.filterwarnings("ignore")
    logging.getLogger("chronos").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_grad_enabled(False)
    if "--finetune-adapters-only" in sys.argv:  # only the npz adapter and the reference loading ours
        FT_DIR.mkdir(parents=True, exist_ok=True)
        ft_npz_adapter_case()
        ft_ours_case("tests/fixtures/models/tiny", MODELS_DIR / "tiny")
        print(f"done in {time.time() - t0:.1f} s")
        return 0
    if "--finetune-dropout-only" in sys.argv:  # only the dropout cases (added to finetune/)
        FT_DIR.mkdir(parents=True, exist_ok=True)
        ft_dropout_cases()
        print(f"done in {time.time() - t0:.1f} s")
        return 0
    if "--finetune-only" in sys.argv:  # the committed fixture models are kept; only finetune/ is rewritten
        print("finetune cases")
        finetune_cases()
        print(f"done in {time.time() - t0:.1f} s")
        return 0

    for d in (MODELS_DIR, CASES_DIR, DF_DIR):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)

    print("building models")
    pipes = {}
    for name in MODEL_SPECS:
        path = build_random_model(name)
        pipes[name] = load_pipeline(path)
        print(f"  {rel(path)}: {sum(p.numel() for p in pipes[name].model.parameters())} parameters")
    pipes["mini"] = load_pipeline(ROOT / MINI)
    for ref, path in [("tests/fixtures/models/tiny", MODELS_DIR / "tiny"),
                      ("tests/fixtures/models/small", MODELS_DIR / "small"), (MINI, ROOT / MINI)]:
        EAGER[ref] = load_pipeline(path, attn_implementation="eager")
    attn = {k: p.model.config._attn_implementation for k, p in pipes.items()}
    print(f"  attention implementation: {attn}")

    print("model cases")
    model_cases(pipes)
    print("predict cases")
    predict_cases(pipes)
    print("embed cases")
    embed_cases(pipes)
    print("dataframe cases")
    dataframe_cases(pipes)
    print("finetune cases")
    finetune_cases()

    manifest = {
        "generator": "scripts/generate_fixtures.py",
        "versions": {
            "chronos-forecasting": getattr(chronos, "__version__", "unknown"),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": __import__("pyarrow").__version__,
            "python": sys.version.split()[0],
        },
        "attn_implementation": attn,
        "models": {
            "tiny": "tests/fixtures/models/tiny",
            "small": "tests/fixtures/models/small",
            "chronos2-mini": MINI,
        },
        "cases": CASES,
    }
    (FIX / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(f.stat().st_size for f in FIX.rglob("*") if f.is_file())
    print(f"done: {len(CASES)} cases, {total / 1e6:.2f} MB under {rel(FIX)}, {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
