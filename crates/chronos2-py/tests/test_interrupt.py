"""Ctrl-C (issue 21, item 20): SIGINT during a long ``predict`` / ``predict_df`` / ``embed`` / ``fit``
raises ``KeyboardInterrupt`` after the batch (training step) in progress, not when the whole call
would have ended, and the pipeline stays usable. Each workload is sized from a measured batch so
that it would run for several seconds; the bound on the reaction is a few batches."""

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from chronos2 import Chronos2Pipeline

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name == "nt", reason="POSIX signals")

BATCH = 16
LENGTH = 512


@pytest.fixture(scope="module")
def mini():
    return Chronos2Pipeline.from_pretrained(backend="cpu")


def series(n):
    t = np.arange(LENGTH, dtype=np.float32)
    return np.stack([np.sin(t / (5 + i % 7)) * 10 + 20 for i in range(n)])[:, None, :]


def batch_seconds(mini):
    """Seconds of one batch of predict (the slowest of three, after a warm-up)."""
    x = series(BATCH)
    mini.predict(x, prediction_length=16, batch_size=BATCH)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        mini.predict(x, prediction_length=16, batch_size=BATCH)
        times.append(time.perf_counter() - start)
    return max(times)


def interrupted_after(call, delay):
    """Runs ``call`` with SIGINT sent ``delay`` s after it starts; returns the seconds from the
    signal to the KeyboardInterrupt."""
    sent = []

    def send():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, send)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.cancel()
    assert sent, "the call ended before the signal was sent: the workload is too small"
    return time.perf_counter() - sent[0]


def test_predict_predict_df_and_embed_stop_between_batches(mini):
    per_batch = batch_seconds(mini)
    n = BATCH * max(8, int(np.ceil(6.0 / per_batch)))  # about 6 s of batches, at least 8
    bound = max(1.0, 3 * per_batch)
    small = series(3)
    before = mini.predict(small, prediction_length=16)

    x = series(n)
    latency = interrupted_after(lambda: mini.predict(x, prediction_length=16, batch_size=BATCH), 0.3)
    assert latency < bound, (latency, per_batch)

    df = pd.DataFrame(
        {
            "item_id": np.repeat(np.arange(n), LENGTH),
            "timestamp": np.tile(pd.date_range("2024-01-01", periods=LENGTH, freq="h").to_numpy(), n),
            "target": x[:, 0, :].ravel(),
        }
    )
    latency = interrupted_after(lambda: mini.predict_df(df, prediction_length=16, batch_size=BATCH), 0.5)
    assert latency < bound, (latency, per_batch)

    latency = interrupted_after(lambda: mini.embed(np.concatenate([x] * 2), batch_size=BATCH), 0.3)
    assert latency < bound, (latency, per_batch)

    after = mini.predict(small, prediction_length=16)
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "the pipeline is usable and unchanged"


def test_fit_stops_between_steps_and_leaves_nothing(tmp_path):
    tiny_steps = 100_000  # far more than can run before the signal
    pipeline = Chronos2Pipeline.from_pretrained(backend="cpu")
    out = tmp_path / "run"
    train = list(series(8)[:, 0, :])
    start = time.perf_counter()
    pipeline.fit(train, prediction_length=16, num_steps=3, batch_size=8, output_dir=tmp_path / "probe",
                 remove_printer_callback=True)
    per_step = (time.perf_counter() - start) / 3
    latency = interrupted_after(
        lambda: pipeline.fit(train, prediction_length=16, num_steps=tiny_steps, batch_size=8, output_dir=out,
                             remove_printer_callback=True),
        0.5,
    )
    assert latency < max(1.0, 3 * per_step), (latency, per_step)
    assert not out.exists(), "an interrupted fit leaves no directory"
    assert [p.name for p in tmp_path.iterdir()] == ["probe"], "and no staging directory"
    pipeline.predict(train[:1], prediction_length=4)


def test_calls_from_other_threads_run_without_the_check(mini):
    """Signal handlers run in the main thread only: another thread's call runs unchecked, the same."""
    x = series(3)
    results = []
    thread = threading.Thread(target=lambda: results.append(mini.predict(x, prediction_length=16)))
    thread.start()
    thread.join()
    expected = mini.predict(x, prediction_length=16)
    assert all(np.array_equal(a, b) for a, b in zip(results[0], expected))
