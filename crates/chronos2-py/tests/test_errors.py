"""Bad input through Python raises ValueError with the messages of the CLI's cases
(crates/chronos2-cli/tests/cli.rs) worded for Python (``df``, ``future_df``, 0-based rows), never a crash."""

import io

import numpy as np
import pandas as pd
import pytest

from chronos2 import Chronos2Pipeline
from conftest import ROOT

TINY = str(ROOT / "tests/fixtures/models/tiny")
GOOD = (
    "item_id,timestamp,target,price\nA,2024-01-01,1,5\nA,2024-01-02,2,6\nA,2024-01-03,3,7\n"
    "B,2024-01-01,4,8\nB,2024-01-02,5,9\nB,2024-01-03,6,10\n"
)


@pytest.fixture(scope="module")
def tiny():
    return Chronos2Pipeline.from_pretrained(TINY, backend="cpu")


def csv(text):
    return pd.read_csv(io.StringIO(text))


@pytest.mark.parametrize(
    "inputs,needle",
    [
        ([np.array([1.0, "a", 3.0], dtype=object)], "must hold numbers, found an array of dtype object"),
        (np.array([[1.0, None, 3.0]], dtype=object), "must hold numbers, found an array of dtype object"),
        ([np.array(["1", "x", "3"])], "must hold numbers"),
        ([{"target": np.array(["1", "x", "3"])}], "must hold numbers"),
        ([], "`inputs` is empty"),
        (np.zeros((0, 1, 10), dtype=np.float32), "`inputs` is empty"),
        (np.zeros((2, 1, 3, 10), dtype=np.float32), "Expected 3-d tensor"),
        ([np.zeros((2, 3, 10), dtype=np.float32)], "Each element should be 1-d or 2-d"),
        ([{"target": np.zeros((2, 3, 10))}], "Target must be 1-d or 2-d"),
        ([{"values": np.zeros(10)}], "Found invalid keys in element at index 0"),
        (
            [{"target": np.zeros(10), "past_covariates": {"x": np.zeros(9)}}],
            "must be 1-d with length equal to the length of `target`",
        ),
        (
            [
                {"target": np.ones(10), "past_covariates": {"x": np.zeros(10)}, "future_covariates": {"x": np.zeros(3)}},
            ],
            "future_covariates",
        ),
        (
            [{"target": np.ones(10), "future_covariates": {"x": np.zeros(4)}}],
            "must be a subset of `past_covariates`",
        ),
        ([{"target": np.ones(10)}, {"target": np.ones((2, 10))}], "same n_targets"),
        ("not an array", "inputs must be an array"),
    ],
)
def test_bad_predict_inputs(tiny, inputs, needle):
    with pytest.raises(ValueError, match=None) as err:
        tiny.predict(inputs, prediction_length=4)
    assert needle in str(err.value), str(err.value)


def test_bad_predict_options(tiny):
    x = [np.arange(20, dtype=np.float32)]
    for kwargs, needle in [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"prediction_length": 0}, "prediction_length must be at least 1"),
        ({"prediction_length": 5000, "limit_prediction_length": True}, "We recommend keeping prediction length"),
        ({"unrolled_quantiles": [0.12]}, "Unrolled quantiles must be a subset"),
    ]:
        with pytest.raises(ValueError) as err:
            tiny.predict(x, **kwargs)
        assert needle in str(err.value), (kwargs, str(err.value))
    with pytest.raises(ValueError, match="between 0 and 1"):
        tiny.predict_quantiles(x, prediction_length=4, quantile_levels=[0.1, 1.5])
    with pytest.raises(TypeError, match="Unexpected keyword arguments"):
        tiny.predict(x, bogus=1)


INPUT_ERRORS = [
    ("item_id,timestamp,value\nA,2024-01-01,1\n", ["Missing columns: 'target'", "'value'"]),
    ("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,x\nA,2024-01-03,2\n", ["target column 'target' must be numeric", "'x'"]),
    ("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\nA,2024-01-02,3\n", ["item 'A' has duplicate timestamp 2024-01-02T00:00:00"]),
    ("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\nA,2024-01-04,3\nA,2024-01-05,3\n", ["could not infer the frequency of item 'A'"]),
    (
        "item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\nA,2024-01-03,3\nB,2024-01-01 00:00,1\nB,2024-01-01 01:00,2\nB,2024-01-01 02:00,3\n",
        ["same frequency", "'A' has D", "'B' has h"],
    ),
    ("item_id,timestamp,target\nA,2024-01-01,1\nA,2024-01-02,2\n", ["no item has at least 3 timestamps"]),
    ("item_id,timestamp,target\nA,2024-01-01,1\nA,soon,2\n", ["cannot parse 'soon' in row 1 of column 'timestamp'"]),
    ("item_id,timestamp,target\n", ["df has no rows"]),
]


@pytest.mark.parametrize("text,needles", INPUT_ERRORS)
def test_bad_dataframes(tiny, text, needles):
    with pytest.raises(ValueError) as err:
        tiny.predict_df(csv(text), prediction_length=2)
    for n in needles:
        assert n in str(err.value), str(err.value)


def test_bad_dataframe_columns_and_types(tiny):
    good = csv(GOOD)
    with pytest.raises(ValueError, match="Missing columns: 'sales'"):
        tiny.predict_df(good, prediction_length=2, target=["sales", "target"])
    with pytest.raises(ValueError, match="Missing columns: 'series'"):
        tiny.predict_df(good, prediction_length=2, id_column="series")
    mixed = good.assign(target=pd.Series([1, "x", 3, 4, 5, 6], dtype=object))
    with pytest.raises(ValueError, match="target"):
        tiny.predict_df(mixed, prediction_length=2)
    with pytest.raises(ValueError, match="must be a pandas, polars or pyarrow DataFrame"):
        tiny.predict_df([1, 2, 3], prediction_length=2)


FUTURE_ERRORS = [
    ("item_id,timestamp,price\nA,2024-01-04,1\nA,2024-01-05,1\n", ["same items", "missing from future_df: 'B'"]),
    ("item_id,timestamp,price\nA,2024-01-04,1\nA,2024-01-05,1\nB,2024-01-04,1\nB,2024-01-05,1\nC,2024-01-04,1\nC,2024-01-05,1\n", ["same items", "not in df: 'C'"]),
    ("item_id,timestamp,price\nA,2024-01-04,1\nA,2024-01-05,1\nB,2024-01-04,1\n", ["prediction_length=2 rows per item", "'B' has 1"]),
    ("item_id,timestamp,target\nA,2024-01-04,1\nA,2024-01-05,1\nB,2024-01-04,1\nB,2024-01-05,1\n", ["cannot contain target columns", "'target'"]),
    ("item_id,timestamp,promo\nA,2024-01-04,1\nA,2024-01-05,1\nB,2024-01-04,1\nB,2024-01-05,1\n", ["Extra columns: 'promo'"]),
    ("item_id,price\nA,1\nA,1\nB,1\nB,1\n", ["future_df does not contain all expected columns", "'timestamp'"]),
    ("item_id,timestamp,price\nA,2024-01-04,1\nA,2024-01-05,1\nB,2024-01-05,1\nB,2024-01-06,1\n", ["do not match the expected forecast timestamps", "item 'B'"]),
    ("item_id,timestamp,price\nA,2024-01-04,x\nA,2024-01-05,1\nB,2024-01-04,1\nB,2024-01-05,1\n", ["covariate 'price' is numeric"]),
]


@pytest.mark.parametrize("text,needles", FUTURE_ERRORS)
def test_bad_future_df(tiny, text, needles):
    with pytest.raises(ValueError) as err:
        tiny.predict_df(csv(GOOD), future_df=csv(text), prediction_length=2)
    for n in needles:
        assert n in str(err.value), str(err.value)


def test_future_df_shorter_than_horizon(tiny):
    future = csv("item_id,timestamp,price\nA,2024-01-04,1\nB,2024-01-04,1\n")
    with pytest.raises(ValueError, match="prediction_length=2 rows per item"):
        tiny.predict_df(csv(GOOD), future_df=future, prediction_length=2)


def test_bad_options_and_loading(tiny):
    good = csv(GOOD)
    with pytest.raises(ValueError, match="unknown frequency 'fortnightly'"):
        tiny.predict_df(good, prediction_length=2, freq="fortnightly")
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        tiny.predict_df(good, prediction_length=2, batch_size=0)
    with pytest.raises(ValueError, match="prediction_length must be at least 1"):
        tiny.predict_df(good, prediction_length=0)
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        tiny.embed_df(good, pooling="max")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        Chronos2Pipeline.from_pretrained(TINY, backend="tpu")
    with pytest.raises(ValueError, match="backend 'mlx' is not available"):
        Chronos2Pipeline.from_pretrained(TINY, backend="mlx")
    with pytest.raises(FileNotFoundError, match="/no/such/model"):
        Chronos2Pipeline.from_pretrained("/no/such/model")
    with pytest.raises(ValueError, match="unknown quantize 'int2'"):
        Chronos2Pipeline.from_pretrained(TINY, quantize="int2")
    with pytest.raises(ValueError, match="dtype 'float16' is not supported"):
        Chronos2Pipeline.from_pretrained(TINY, dtype="float16")
    with pytest.raises(ValueError, match="cannot be combined"):
        Chronos2Pipeline.from_pretrained(TINY, quantize="int8", dtype="bfloat16")


def test_bfloat16_and_w8a8_load_and_forecast():
    """The CPU backend runs bf16 and w8a8: shapes as fp32, finite values close to fp32's."""
    x = np.sin(np.arange(64, dtype=np.float32) / 4) * 10 + 20
    ref = Chronos2Pipeline.from_pretrained(TINY, backend="cpu").predict([x], prediction_length=4)[0]
    for kwargs in ({"dtype": "bfloat16"}, {"quantize": "w8a8"}):
        out = Chronos2Pipeline.from_pretrained(TINY, backend="cpu", **kwargs).predict([x], prediction_length=4)[0]
        assert out.shape == ref.shape, kwargs
        assert np.isfinite(out).all(), kwargs
        assert np.abs(out - ref).max() <= 0.1 * (np.abs(ref).max() + 1), kwargs
