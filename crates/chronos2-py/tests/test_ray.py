"""chronos2.ray.predict_df on a local Ray cluster equals single-process predict_df row for row.

The 20,000-series run prints its timings (pytest -s): single process, 1 worker and 2 workers."""

import time

import numpy as np
import pandas as pd
import pytest
import ray

import chronos2.ray
from chronos2 import Chronos2Pipeline

H = 16
FREQS = ["h", "D", "15min", "W-SUN"]


def make_series(n, seed=0):
    """n series of mixed lengths (16..160), id styles ('store_7', 'SKU-000008', '9') and
    frequencies (hourly, daily, 15-minute, weekly), in long format, series after series."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(16, 161, n)
    freq_of = rng.integers(0, len(FREQS), n)
    styles = np.array(["store_{}", "SKU-{:06d}", "{}"], dtype=object)
    ids = np.array([styles[i % 3].format(i) for i in range(n)], dtype=object)
    starts = pd.Timestamp("2020-01-05") + pd.to_timedelta(rng.integers(0, 500, n), unit="D")
    rows = int(lengths.sum())
    item = np.repeat(np.arange(n), lengths)
    step = np.arange(rows) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ts = np.empty(rows, dtype="datetime64[ns]")
    for k, f in enumerate(FREQS):
        sel = freq_of[item] == k
        offset = pd.tseries.frequencies.to_offset(f)
        if f == "W-SUN":
            base = (starts + pd.offsets.Week(weekday=6)).to_numpy()[item[sel]]
            ts[sel] = base + step[sel] * np.timedelta64(7, "D")
        else:
            ts[sel] = starts.to_numpy()[item[sel]] + step[sel] * pd.Timedelta(offset).to_timedelta64()
    phase = rng.uniform(0, 2 * np.pi, n)[item]
    level = rng.uniform(5, 50, n)[item]
    target = level + 3 * np.sin(2 * np.pi * step / 12 + phase) + rng.normal(0, 0.5, rows)
    df = pd.DataFrame({"item_id": ids[item], "timestamp": ts, "target": target.astype(np.float64)})
    return df, pd.Series(np.array(FREQS)[freq_of], index=ids)


def single_process(pipe, df, freq_of, **kwargs):
    """predict_df once per frequency (one call needs one frequency), in df's item order."""
    parts = []
    for f in FREQS:
        sub = df[df["item_id"].map(freq_of) == f]
        if len(sub):
            parts.append(pipe.predict_df(sub, prediction_length=H, **kwargs))
    out = pd.concat(parts, ignore_index=True)
    order = pd.Index(pd.unique(df["item_id"])).get_indexer(out["item_id"])
    return out.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def assert_same(got, expected):
    assert list(got.columns) == list(expected.columns)
    assert dict(got.dtypes) == dict(expected.dtypes)
    assert len(got) == len(expected)
    for c in ["item_id", "timestamp", "target_name"]:
        assert (got[c].to_numpy() == expected[c].to_numpy()).all(), c
    values = list(expected.columns[3:])
    # Batches hold other series than in the single-process run; a series' forecast depends on its
    # batch only through float32 rounding of the left padding (chronos2-mini: ~1e-6).
    np.testing.assert_allclose(got[values].to_numpy(), expected[values].to_numpy(), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def mini():
    return Chronos2Pipeline.from_pretrained()


def test_ray_matches_single_process_on_20000_series(local_ray, mini):
    df, freq_of = make_series(20_000)
    t0 = time.perf_counter()
    expected = single_process(mini, df, freq_of)
    t_single = time.perf_counter() - t0
    timings = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        got = chronos2.ray.predict_df(df, prediction_length=H, num_workers=workers)
        timings[workers] = time.perf_counter() - t0
        assert isinstance(got, pd.DataFrame)
        assert_same(got, expected)
    print(
        f"\n20,000 series ({len(df)} rows, H={H}): single process {t_single:.1f} s; "
        f"Ray 1 worker {timings[1]:.1f} s; Ray 2 workers {timings[2]:.1f} s "
        f"(speed-up 1 -> 2 workers {timings[1] / timings[2]:.2f}x)"
    )


def test_ray_dataset_in_dataset_out_and_future_df(local_ray, mini):
    df, freq_of = make_series(300, seed=1)
    expected = single_process(mini, df, freq_of)
    ds = ray.data.from_pandas(df)
    out = chronos2.ray.predict_df(ds, prediction_length=H, num_workers=2)
    assert isinstance(out, ray.data.Dataset)
    got = out.to_pandas()
    order = pd.Index(pd.unique(df["item_id"])).get_indexer(got["item_id"])
    got = got.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
    assert len(got) == len(expected)
    assert (got["item_id"].astype(str).to_numpy() == expected["item_id"].astype(str).to_numpy()).all()
    assert (pd.to_datetime(got["timestamp"]).to_numpy() == expected["timestamp"].to_numpy()).all()
    values = list(expected.columns[3:])
    np.testing.assert_allclose(got[values].to_numpy(np.float64), expected[values].to_numpy(np.float64), rtol=1e-5, atol=1e-5)

    # A known-future covariate: daily series only, future_df split along with the series.
    daily = df[df["item_id"].map(freq_of) == "D"].copy()
    daily["promo"] = (daily["timestamp"].dt.dayofweek == 0).astype(np.float64)
    last = daily.groupby("item_id", sort=False)["timestamp"].max()
    future = pd.DataFrame(
        {
            "item_id": np.repeat(last.index.to_numpy(), H),
            "timestamp": (last.to_numpy()[:, None] + np.arange(1, H + 1) * np.timedelta64(1, "D")).ravel(),
        }
    )
    future["promo"] = (future["timestamp"].dt.dayofweek == 0).astype(np.float64)
    expected = mini.predict_df(daily, future_df=future, prediction_length=H)
    got = chronos2.ray.predict_df(daily, prediction_length=H, num_workers=2, future_df=future)
    assert_same(got, expected)
