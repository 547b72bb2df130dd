"""Pickling (issue 21, item 16): ``pickle`` and ``copy.deepcopy`` of a pipeline give one that
forecasts the same; a pipeline from ``from_pretrained`` is pickled by reference (model and
options), one returned by ``fit`` by value (its checkpoint travels in the pickle, so it survives
the checkpoint directory's removal), and multiprocessing can ship it to a worker."""

import copy
import multiprocessing
import pickle
import shutil

import numpy as np
import pytest

from chronos2 import Chronos2Pipeline
from conftest import ROOT

TINY = ROOT / "tests/fixtures/models/tiny"


def series(n=4, length=120):
    t = np.arange(length, dtype=np.float32)
    return [10.0 + 3.0 * np.sin(0.3 * t + i) + 0.05 * i * t for i in range(n)]


def forecast(pipeline):
    return np.stack(pipeline.predict(series(), prediction_length=8))


def round_trips(pipeline):
    return [pickle.loads(pickle.dumps(pipeline)), copy.deepcopy(pipeline)]


@pytest.mark.parametrize("options", [{}, {"quantize": "int8"}, {"dtype": "bfloat16"}])
def test_pretrained_pipelines_round_trip_by_reference(options):
    pipeline = Chronos2Pipeline.from_pretrained(str(TINY), backend="cpu", **options)
    assert len(pickle.dumps(pipeline)) < 2000, "by reference: the weights are not in the pickle"
    for copied in round_trips(pipeline):
        assert copied is not pipeline and copied.requested_backend == "cpu"
        assert np.array_equal(forecast(copied), forecast(pipeline)), options


def test_the_bundled_model_round_trips():
    pipeline = Chronos2Pipeline.from_pretrained()
    copied = pickle.loads(pickle.dumps(pipeline))
    assert np.array_equal(forecast(copied), forecast(pipeline))


@pytest.mark.parametrize("mode", ["lora", "full", "head"])
def test_fitted_pipelines_round_trip_by_value(tmp_path, mode):
    base = Chronos2Pipeline.from_pretrained(str(TINY), backend="cpu")
    tuned = base.fit(
        series(6, 160), prediction_length=16, finetune_mode=mode, num_steps=2, batch_size=4, learning_rate=1e-3,
        output_dir=tmp_path / "run", remove_printer_callback=True,
    )
    expected = forecast(tuned)
    assert not np.array_equal(expected, forecast(base))
    data = pickle.dumps(tuned)
    shutil.rmtree(tmp_path / "run")  # the pickle does not need the checkpoint any more
    restored = pickle.loads(data)
    assert np.array_equal(forecast(restored), expected), mode
    assert restored.fit_report["train_losses"] == tuned.fit_report["train_losses"]
    again = pickle.loads(pickle.dumps(restored))  # a restored pipeline pickles again
    assert np.array_equal(forecast(again), expected)
    with pytest.raises(FileNotFoundError, match="is gone"):
        pickle.dumps(tuned)  # its checkpoint was removed above


def _forecast_in_worker(pipeline):
    return forecast(pipeline)


def test_multiprocessing_ships_a_pipeline():
    pipeline = Chronos2Pipeline.from_pretrained(str(TINY), backend="cpu")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        out = pool.apply(_forecast_in_worker, (pipeline,))
    assert np.array_equal(out, forecast(pipeline))
