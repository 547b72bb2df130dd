"""Errors speak Python (issue 21, item 18): Python's exception types for argument values, messages
that name Python arguments and 0-based rows (as pandas), and ``OSError`` subclasses for models
that cannot be found or read (as ``from_pretrained`` in the reference)."""

import io
import shutil

import numpy as np
import pandas as pd
import pytest

from chronos2 import Chronos2Pipeline
from conftest import ROOT

TINY = ROOT / "tests/fixtures/models/tiny"
GOOD = (
    "item_id,timestamp,target,price\nA,2024-01-01,1,5\nA,2024-01-02,2,6\nA,2024-01-03,3,7\n"
    "B,2024-01-01,4,8\nB,2024-01-02,5,9\nB,2024-01-03,6,10\n"
)


@pytest.fixture(scope="module")
def tiny():
    return Chronos2Pipeline.from_pretrained(str(TINY), backend="cpu")


def csv(text):
    return pd.read_csv(io.StringIO(text))


X = [np.arange(40, dtype=np.float32)]

CALLS = {
    "predict": lambda p, **kw: p.predict(X, **kw),
    "predict_quantiles": lambda p, **kw: p.predict_quantiles(X, **kw),
    "predict_df": lambda p, **kw: p.predict_df(csv(GOOD), **kw),
    "embed": lambda p, **kw: p.embed(X, **kw),
    "embed_df": lambda p, **kw: p.embed_df(csv(GOOD), **kw),
}


@pytest.mark.parametrize(
    "call,argument",
    [
        ("predict", "prediction_length"),
        ("predict", "batch_size"),
        ("predict", "context_length"),
        ("predict_quantiles", "prediction_length"),
        ("predict_df", "prediction_length"),
        ("predict_df", "batch_size"),
        ("embed", "batch_size"),
        ("embed_df", "batch_size"),
    ],
)
def test_negative_is_value_error_and_fraction_is_type_error(tiny, call, argument):
    with pytest.raises(ValueError, match=f"{argument} must be at least 1, got -3"):
        CALLS[call](tiny, **{argument: -3})
    with pytest.raises(TypeError, match=f"{argument} must be an integer, got float 8.5"):
        CALLS[call](tiny, **{argument: 8.5})
    with pytest.raises(TypeError, match=f"{argument} must be an integer"):
        CALLS[call](tiny, **{argument: "8"})


def test_numpy_integers_are_integers(tiny):
    out = tiny.predict(X, prediction_length=np.int64(4), batch_size=np.int32(2))
    assert out[0].shape[-1] == 4


@pytest.mark.parametrize(
    "argument,value,error,message",
    [
        ("num_steps", -1, ValueError, "num_steps must be at least 1, got -1"),
        ("num_steps", 2.5, TypeError, "num_steps must be an integer"),
        ("batch_size", -4, ValueError, "batch_size must be at least 1, got -4"),
        ("prediction_length", 8.5, TypeError, "prediction_length must be an integer"),
        ("seed", -1, ValueError, "seed must be at least 0"),
    ],
)
def test_fit_argument_types(tiny, tmp_path, argument, value, error, message):
    args = dict(prediction_length=4, num_steps=1, output_dir=tmp_path / "out", remove_printer_callback=True)
    args[argument] = value
    with pytest.raises(error, match=message):
        tiny.fit([np.arange(80, dtype=np.float32)], **args)
    assert not (tmp_path / "out").exists()


def error_of(tiny, df, **kwargs):
    with pytest.raises(ValueError) as err:
        tiny.predict_df(df, prediction_length=2, **kwargs)
    return str(err.value)


def test_messages_name_python_arguments(tiny):
    e = error_of(tiny, csv(GOOD), id_column="series")
    assert "df does not contain all expected columns" in e and "id_column=" in e and "--id-column" not in e, e
    e = error_of(tiny, csv("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\nA,2024-01-04,3\nA,2024-01-05,3\n"))
    assert "freq=" in e and "--freq" not in e, e
    e = error_of(tiny, csv("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\n"))
    assert "freq='D'" in e and "--freq" not in e, e
    future = csv("item_id,timestamp,price\nA,2024-01-04,1\nA,2024-01-05,1\n")
    e = error_of(tiny, csv(GOOD), future_df=future)
    assert "future_df must have the same items as df" in e and "missing from future_df: 'B'" in e, e
    assert "future file" not in e and "the input" not in e, e
    future = csv("item_id,timestamp,promo\nA,2024-01-04,1\nA,2024-01-05,1\nB,2024-01-04,1\nB,2024-01-05,1\n")
    e = error_of(tiny, csv(GOOD), future_df=future)
    assert e.startswith("future_df cannot contain columns not present in df"), e


def test_rows_are_counted_from_zero_as_pandas(tiny):
    df = csv("item_id,timestamp,target\nA,2024-01-01,1\nA,soon,2\n")
    assert df.index[df["timestamp"] == "soon"].tolist() == [1]
    assert "cannot parse 'soon' in row 1 of column 'timestamp'" in error_of(tiny, df)
    df = csv("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\nA,2024-01-02,3\n")
    assert "(rows 1 and 2)" in error_of(tiny, df)
    df = csv("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,x\nA,2024-01-03,2\n")
    assert "'x' in row 1" in error_of(tiny, df)
    df = pd.DataFrame({"item_id": ["A", None, "A"], "timestamp": ["2024-01-01", "2024-01-02", "2024-01-03"], "target": [1.0, 2.0, 3.0]})
    assert "row 1 has no value in the id column 'item_id'" in error_of(tiny, df)


def test_model_files_raise_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        Chronos2Pipeline.from_pretrained(str(tmp_path / "missing"))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        Chronos2Pipeline.from_pretrained(str(tmp_path / "a-file"))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(TINY, corrupt)
    (corrupt / "config.json").write_text("{ not json")
    with pytest.raises(OSError, match="config.json"):
        Chronos2Pipeline.from_pretrained(str(corrupt), backend="cpu")
    truncated = tmp_path / "truncated"
    shutil.copytree(TINY, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="model.safetensors"):
        Chronos2Pipeline.from_pretrained(str(truncated), backend="cpu")
