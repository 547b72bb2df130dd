"""Reference outputs of `Chronos2Pipeline.predict_quantiles` (chronos-forecasting 2.3.2) run on a
deterministic mock model, for the Rust pipeline's unit tests (`../tests.rs`).

    python3 mock_reference.py > mock_reference.json

The mock model (same formula as `MockModel` in ../tests.rs), per row b of a call:
    row   = context[b][-model_context_length:]
    last  = last observed value of row (0 if none), nobs = number of observed values
    gsum  = sum of `last` over the rows with b's group id
    fsum  = nansum(future_covariates[b]) (0 without future covariates)
    out[b, q, t] = last + 0.1*gsum + 0.01*fsum + 0.001*nobs + 0.0001*len(row) + (level_q - 0.5)*(1 + 0.05*t)
computed in float64 and cast to float32.
"""

import json
import math
from types import SimpleNamespace

import numpy as np
import torch

from chronos.chronos2.pipeline import Chronos2Pipeline

QUANTILES = [0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99]
MODEL_CONTEXT_LENGTH = 40


class MockModel:
    def __init__(self):
        self.chronos_config = SimpleNamespace(
            context_length=MODEL_CONTEXT_LENGTH, output_patch_size=16, quantiles=QUANTILES, max_output_patches=64
        )
        self.device = torch.device("cpu")
        self.calls = []

    def __call__(self, context, group_ids, num_output_patches, future_covariates=None):
        ctx = context.numpy()[:, -MODEL_CONTEXT_LENGTH:].astype(np.float64)
        gids = group_ids.numpy()
        self.calls.append(
            {
                "rows": int(ctx.shape[0]),
                "context_len": int(context.shape[1]),
                "num_output_patches": int(num_output_patches),
                "group_ids": [int(g) for g in gids],
                "future_len": None if future_covariates is None else int(future_covariates.shape[1]),
            }
        )
        B, T = ctx.shape
        last = np.zeros(B)
        nobs = np.zeros(B)
        for b in range(B):
            obs = ctx[b][~np.isnan(ctx[b])]
            if len(obs):
                last[b] = obs[-1]
            nobs[b] = len(obs)
        gsum = np.array([last[gids == gids[b]].sum() for b in range(B)])
        if future_covariates is not None:
            fsum = np.nansum(future_covariates.numpy().astype(np.float64), axis=1)
        else:
            fsum = np.zeros(B)
        H = num_output_patches * 16
        levels = np.array([float(np.float32(q)) for q in QUANTILES])
        t = np.arange(H)
        base = last + 0.1 * gsum + 0.01 * fsum + 0.001 * nobs + 0.0001 * T
        out = base[:, None, None] + (levels[None, :, None] - 0.5) * (1 + 0.05 * t[None, None, :])
        return SimpleNamespace(quantile_preds=torch.from_numpy(out.astype(np.float32)))


def nan_list(a):
    return [None if (isinstance(v, float) and math.isnan(v)) else v for v in np.asarray(a, dtype=object).tolist()]


def to_json_value(v):
    if v is None:
        return None
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    return v


def values_json(arr):
    arr = np.asarray(arr)
    if arr.dtype.kind in "fi":
        return {"numeric": [to_json_value(float(x)) for x in arr.astype(np.float32)]}
    return {"categorical": [None if x is None else str(x) for x in arr.tolist()]}


def flat(t):
    return [to_json_value(float(x)) for x in t.numpy().astype(np.float32).flatten()]


rng = np.random.default_rng(0)


def series(n, scale=1.0, nan_at=()):
    x = (np.cumsum(rng.normal(size=n)) * scale).astype(np.float32)
    for i in nan_at:
        x[i] = np.nan
    return x


def case_short_covariates():
    H = 20
    items = []
    for n in (12, 7, 20):
        price_future = rng.normal(size=H).astype(np.float32)
        price_future[3] = np.nan
        items.append(
            {
                "target": series(n, nan_at=(1,)),
                "past_covariates": {
                    "temp": series(n, 0.5),
                    "price": series(n, 2.0, nan_at=(0,)),
                    "promo": np.array(rng.choice(["a", "b", "c", None], size=n), dtype=object),
                },
                "future_covariates": {
                    "price": price_future,
                    "promo": np.array(rng.choice(["a", "c", "d", None], size=H), dtype=object),
                },
            }
        )
    kwargs = dict(prediction_length=H, batch_size=5, context_length=10, quantile_levels=[0.005, 0.1, 0.33, 0.5, 0.99])
    return items, kwargs


def case_long_rollout():
    H = 70
    items = []
    for n in (30, 50):
        fut = rng.normal(size=H).astype(np.float32)
        fut[[0, 5, 40, 69]] = np.nan
        items.append(
            {
                "target": np.stack([series(n), series(n, 3.0, nan_at=(n - 1,))]),
                "past_covariates": {"x": series(n), "z": series(n)},
                "future_covariates": {"x": fut},
            }
        )
    kwargs = dict(prediction_length=H, max_output_patches=2)
    return items, kwargs


def case_long_rollout_cross():
    H = 50
    items = [{"target": series(n)} for n in (5, 18, 33, 60)]
    kwargs = dict(
        prediction_length=H,
        batch_size=2,
        cross_learning=True,
        max_output_patches=1,
        unrolled_quantiles=[0.1, 0.5, 0.9],
        quantile_levels=[0.01, 0.5, 0.99],
    )
    return items, kwargs


def case_ordinal():
    H = 5
    items = []
    for n in (9, 4):
        items.append(
            {
                "target": np.stack([series(n), series(n)]),
                "past_covariates": {
                    "kind": np.array(rng.choice(["p", "q", None], size=n), dtype=object),
                    "day": np.array(rng.choice(["mon", "tue", "wed"], size=n), dtype=object),
                },
                "future_covariates": {"day": np.array(["sun", "mon", None, "wed", "tue"][:H], dtype=object)},
            }
        )
    kwargs = dict(prediction_length=H, context_length=6)
    return items, kwargs


def run(name, make):
    items, kwargs = make()
    model = MockModel()
    pipeline = Chronos2Pipeline(model)
    quantiles, mean = pipeline.predict_quantiles(items, **kwargs)
    items_json = []
    for d in items:
        target = np.asarray(d["target"], dtype=np.float32).reshape(-1, np.asarray(d["target"]).shape[-1])
        covs = []
        for key, past in d.get("past_covariates", {}).items():
            fut = d.get("future_covariates", {}).get(key, "past_only")
            covs.append(
                {
                    "name": key,
                    "past": values_json(past),
                    "future": "past_only" if isinstance(fut, str) else ("unavailable" if fut is None else values_json(fut)),
                }
            )
        items_json.append({"targets": [[to_json_value(float(v)) for v in row] for row in target], "covariates": covs})
    return {
        "name": name,
        "options": kwargs,
        "items": items_json,
        "quantiles": [{"shape": list(q.shape), "values": flat(q)} for q in quantiles],
        "median": [flat(m) for m in mean],
        "calls": model.calls,
    }


cases = [
    run("short_covariates", case_short_covariates),
    run("long_rollout", case_long_rollout),
    run("long_rollout_cross", case_long_rollout_cross),
    run("ordinal", case_ordinal),
]
print(json.dumps({"model_context_length": MODEL_CONTEXT_LENGTH, "cases": cases}))
