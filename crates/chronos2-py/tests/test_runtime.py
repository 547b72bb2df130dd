"""The data path: the GIL is released while the model runs, float32 arrays reach the native
module without copies, the backend actually used is reported, and embed_df's layout."""

import sys
import threading
import time

import numpy as np
import pandas as pd

from chronos2 import Chronos2Pipeline, _inputs
from conftest import ROOT


def _count_while(work):
    """(counts per second of a pure-Python counting thread while ``work()`` runs, the same when
    idle): the counter advances only while it holds the GIL."""
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    thread = threading.Thread(target=spin)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)  # a thread waiting for the GIL gets it within ~1 ms of a release
    thread.start()
    try:
        time.sleep(0.05)
        before, start = counter[0], time.perf_counter()
        time.sleep(0.2)
        idle = (counter[0] - before) / (time.perf_counter() - start)
        before, start = counter[0], time.perf_counter()
        work()
        busy = (counter[0] - before) / (time.perf_counter() - start)
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    return busy, idle


def test_gil_is_released_during_predict(mini):
    """The share of its idle rate a counting thread keeps while native predict calls run: about 0
    if the GIL were held through each call (it could count only between calls), a good part of a
    core when it is released. Calls are made long (>= 50 ms, measured) so that the gaps between
    them are a small share however fast the machine is."""
    items = _inputs.to_items(np.sin(np.arange(64 * 64, dtype=np.float32) / 7).reshape(64, 1, 64), 16)
    n = 64
    while True:
        start = time.perf_counter()
        mini._native.predict(items * (n // 64), prediction_length=16)
        if time.perf_counter() - start >= 0.05 or n >= 64 * 256:
            break
        n *= 2
    batch = items * (n // 64)

    def work():
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            mini._native.predict(batch, prediction_length=16)

    busy, idle = _count_while(work)
    assert busy / idle > 0.2, (busy, idle)


def test_float32_arrays_cross_without_copies():
    x = np.zeros((3, 2, 50), dtype=np.float32)
    items = _inputs.to_items(x, 8)
    assert all(np.shares_memory(target, x) for target, _ in items)
    series = [np.zeros(40, dtype=np.float32), np.zeros((2, 30), dtype=np.float32)]
    items = _inputs.to_items(series, 8)
    assert all(np.shares_memory(t, s) for (t, _), s in zip(items, series))


def test_properties_and_backend():
    mini = Chronos2Pipeline.from_pretrained()
    assert mini.quantiles[0] == 0.01 and mini.quantiles[-1] == 0.99 and len(mini.quantiles) == 21
    assert mini.model_context_length > 0 and mini.model_prediction_length == 64 * 16
    assert mini.backend == "auto"  # before any call: what was asked for
    mini.predict([np.arange(30, dtype=np.float32)], prediction_length=4)
    assert mini.backend == "cpu"  # the backend that ran (this build has the CPU backend only)
    tiny = Chronos2Pipeline.from_pretrained(str(ROOT / "tests/fixtures/models/tiny"), backend="cpu", quantize="int8")
    assert tiny.requested_backend == "cpu"


def test_embed_df_layout(mini):
    df = pd.read_csv(ROOT / "examples/airpassengers.csv")
    out = mini.embed_df(df)
    assert list(out.columns) == ["item_id", "target_name", "loc", "scale", "embedding"]
    assert out["item_id"].tolist() == list(pd.unique(df["item_id"]))
    assert out["embedding"].iloc[0].shape == (mini._native.d_model,)
    # The longest series (wineind) alone has as many patches as the table's batch.
    row = out.index[out["item_id"] == "wineind"][0]
    embeddings, loc_scale = mini.embed([df[df["item_id"] == "wineind"]["target"].to_numpy()])
    # reg_token pooling = the [REG] position, right after the context patches.
    n_patches = embeddings[0].shape[1] - 2
    np.testing.assert_allclose(out["embedding"].iloc[row], embeddings[0][0, n_patches], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["loc"].iloc[row], loc_scale[0][0][0, 0], rtol=1e-6)
    full = mini.embed_df(df, pooling="all")
    assert full["embedding"].iloc[row].shape == embeddings[0][0].shape
