"""End-to-end ``predict_df`` timing of one implementation, for ``cargo xtask bench-python``.

    python bench_predict_df.py --impl ours|reference --model DIR --series N --length T \
        --prediction-length H --json OUT

Both implementations get the same synthetic table (N hourly series of length T, string ids) and
the same model directory. Prints nothing; writes ``{"total_s", "prepare_s", "model_s", "output_s"}``
(medians over ``--runs`` after one warm-up on a slice): prepare = DataFrame -> model inputs
(validation, grouping, frequency, covariates), model = the forecasting calls, output = the result
DataFrame.
"""

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd


def table(n: int, length: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    step = np.tile(np.arange(length), n)
    item = np.repeat(np.arange(n), length)
    level = rng.uniform(10, 100, n)[item]
    phase = rng.uniform(0, 2 * np.pi, n)[item]
    target = level + 5 * np.sin(2 * np.pi * step / 24 + phase) + rng.normal(0, 1, n * length)
    ids = np.array([f"item_{i:06d}" for i in range(n)], dtype=object)
    ts = np.datetime64("2024-01-01T00:00") + step.astype("timedelta64[h]")
    return pd.DataFrame({"item_id": ids[item], "timestamp": ts.astype("datetime64[ns]"), "target": target})


def ours(model: str, threads: int):
    from chronos2 import Chronos2Pipeline

    pipe = Chronos2Pipeline.from_pretrained(model, backend="cpu")

    def run(df, h):
        pipe.predict_df(df, prediction_length=h)
        t = pipe.last_timings
        return {k: t[k] for k in ("total_s", "prepare_s", "model_s", "output_s")}

    return run


def reference(model: str, threads: int):
    import torch
    from chronos import Chronos2Pipeline

    torch.set_num_threads(threads)
    pipe = Chronos2Pipeline.from_pretrained(model, device_map="cpu")
    marks = {}
    inner = pipe.predict_quantiles

    def timed_predict_quantiles(*args, **kwargs):
        marks["model_start"] = time.perf_counter()
        out = inner(*args, **kwargs)
        marks["model_end"] = time.perf_counter()
        return out

    pipe.predict_quantiles = timed_predict_quantiles

    def run(df, h):
        start = time.perf_counter()
        with torch.inference_mode():
            pipe.predict_df(df, prediction_length=h)
        end = time.perf_counter()
        return {
            "total_s": end - start,
            "prepare_s": marks["model_start"] - start,
            "model_s": marks["model_end"] - marks["model_start"],
            "output_s": end - marks["model_end"],
        }

    return run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=["ours", "reference"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--series", type=int, required=True)
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--prediction-length", type=int, default=24)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", required=True)
    a = p.parse_args()
    df = table(a.series, a.length)
    run = (ours if a.impl == "ours" else reference)(a.model, a.threads)
    run(df.iloc[: 4 * a.length], a.prediction_length)  # warm-up: load, first call
    results = [run(df, a.prediction_length) for _ in range(a.runs)]
    summary = {k: statistics.median(r[k] for r in results) for k in results[0]}
    with open(a.json, "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    main()
