"""Every committed predict, embed and DataFrame fixture through the Python API, at the Rust
tests' tolerances (chronos2_core::fixtures, crates/chronos2-cli/tests/cli.rs)."""

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, as_f32, assert_close, cases, pipeline

# chronos2_core::fixtures: RTOL (pipeline) and RTOL_ROLLOUT (horizons beyond one model call).
RTOL = 2e-5
RTOL_ROLLOUT = 5e-4


def _values(v, categorical):
    if categorical:
        return np.array(v, dtype=object)
    return as_f32(v)


def _has_text(v):
    return isinstance(v, list) and any(isinstance(x, str) for x in v)


def reference_inputs(case):
    """The case's items as the generator passed them: list of dicts with numpy arrays (text
    values as object arrays)."""
    out = []
    for item in case["inputs"]:
        target = as_f32(item["target"])
        d = {"target": target[0] if target.shape[0] == 1 else target}  # 1-D when univariate, as the generator
        past = item.get("past_covariates") or {}
        if past:
            d["past_covariates"] = {k: _values(v, _has_text(v)) for k, v in past.items()}
        future = item.get("future_covariates") or {}
        if future:
            d["future_covariates"] = {k: None if v is None else _values(v, _has_text(v)) for k, v in future.items()}
        out.append(d)
    return out


@pytest.mark.parametrize("name,case", cases("predict"), ids=lambda x: x if isinstance(x, str) else "")
def test_predict_quantiles_fixture(name, case):
    pipe = pipeline(case["model"])
    h = case["prediction_length"]
    rtol = RTOL_ROLLOUT if h > pipe.model_prediction_length else RTOL
    quantiles, mean = pipe.predict_quantiles(
        reference_inputs(case),
        prediction_length=h,
        quantile_levels=case["quantile_levels"],
        batch_size=case["batch_size"],
        context_length=case["context_length"],
        cross_learning=case["cross_learning"],
    )
    expected_q, expected_m = case["expected"]["quantiles"], case["expected"]["mean"]
    assert len(quantiles) == len(expected_q) and len(mean) == len(expected_m)
    for i, (q, m) in enumerate(zip(quantiles, mean)):
        assert q.dtype == np.float32 and m.dtype == np.float32
        assert_close(f"{name} item {i} quantiles", q, as_f32(expected_q[i]), rtol)
        assert_close(f"{name} item {i} mean", m, as_f32(expected_m[i]), rtol)


MODEL_LEVELS = [0.01, 0.05] + [round(0.1 + 0.05 * i, 2) for i in range(17)] + [0.95, 0.99]


@pytest.mark.parametrize(
    "name,case",
    [(n, c) for n, c in cases("predict") if set(c["quantile_levels"]).issubset(MODEL_LEVELS)],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_predict_fixture_model_levels(name, case):
    """``predict`` returns (n_variates, n_quantiles, H) at the model's levels; the slices at the
    case's levels (all model levels here) equal the fixture's quantiles."""
    pipe = pipeline(case["model"])
    assert pipe.quantiles == MODEL_LEVELS
    h = case["prediction_length"]
    levels = case["quantile_levels"]
    rtol = RTOL_ROLLOUT if h > pipe.model_prediction_length else RTOL
    preds = pipe.predict(
        reference_inputs(case),
        prediction_length=h,
        batch_size=case["batch_size"],
        context_length=case["context_length"],
        cross_learning=case["cross_learning"],
    )
    index = [pipe.quantiles.index(q) for q in levels]
    for i, p in enumerate(preds):
        n_variates = len(case["inputs"][i]["target"])
        assert p.shape == (n_variates, len(pipe.quantiles), h)
        got = np.swapaxes(p[:, index, :], 1, 2)
        assert_close(f"{name} item {i} predict", got, as_f32(case["expected"]["quantiles"][i]), rtol)


@pytest.mark.parametrize("name,case", cases("embed"), ids=lambda x: x if isinstance(x, str) else "")
def test_embed_fixture(name, case):
    pipe = pipeline(case["model"])
    if case["input_format"] == "tensors":
        inputs = [as_f32(it["target"])[0] if len(it["target"]) == 1 else as_f32(it["target"]) for it in case["inputs"]]
    else:
        inputs = reference_inputs(case)
    embeddings, loc_scale = pipe.embed(inputs, batch_size=case["batch_size"], context_length=case["context_length"])
    expected = case["expected"]
    assert len(embeddings) == len(expected["embeddings"])
    for i, (e, (loc, scale)) in enumerate(zip(embeddings, loc_scale)):
        n = len(case["inputs"][i]["target"])
        assert loc.shape == (n, 1) and scale.shape == (n, 1)
        assert_close(f"{name} item {i} embeddings", e, as_f32(expected["embeddings"][i]), RTOL)
        assert_close(f"{name} item {i} loc", loc[:, 0], as_f32(expected["loc"][i]), RTOL)
        assert_close(f"{name} item {i} scale", scale[:, 0], as_f32(expected["scale"][i]), RTOL)


# ---------------------------------------------------------------------------------------------
# DataFrames: the reference's predict_df output (expected.csv) from the same input files.


def read_input(case, key):
    path = ROOT / case[key]
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, float_precision="round_trip")


def df_rtol(case):
    # crates/chronos2-cli/tests/cli.rs: chronos2-mini agrees to ~1e-6; the random tiny model amplifies
    # float32 noise (measured up to 5e-5 relative on values near 0).
    return 1e-5 if "chronos2-mini" in case["model"] else 1e-4


def run_predict_df(case, df, future):
    return pipeline(case["model"]).predict_df(
        df,
        future_df=future,
        id_column=case["id_column"],
        timestamp_column=case["timestamp_column"],
        target=case["target"],
        prediction_length=case["prediction_length"],
        quantile_levels=case["quantile_levels"],
        batch_size=case["batch_size"],
        context_length=case["context_length"],
        cross_learning=case["cross_learning"],
        freq=case["freq"],
    )


def reference_dtypes(case, df):
    """The dtypes the reference's predict_df gives (chronos/chronos2/pipeline.py, df_utils.py):
    the id column rebuilt from ``df[id].to_numpy()``, timestamps as ``pd.to_datetime`` parses
    the input column, ``target_name`` from a numpy str array, float32 forecasts."""
    id_col, ts_col = case["id_column"], case["timestamp_column"]
    dtypes = {
        id_col: pd.DataFrame({"x": df[id_col].to_numpy()[:1]})["x"].dtype,
        ts_col: pd.to_datetime(df[ts_col]).dtype,
        "target_name": pd.DataFrame({"x": np.array(case["target"])})["x"].dtype,
        "predictions": np.dtype(np.float32),
    }
    for q in case["quantile_levels"]:
        dtypes[str(q)] = np.dtype(np.float32)
    return dtypes


def assert_matches_expected(case, got, df, what):
    expected = pd.read_csv(ROOT / case["expected"], float_precision="round_trip")
    id_col, ts_col = case["id_column"], case["timestamp_column"]
    assert list(got.columns) == list(expected.columns), f"{what}: columns"
    assert len(got) == len(expected), f"{what}: rows"
    assert isinstance(got.index, pd.RangeIndex) and got.index.start == 0
    assert dict(got.dtypes) == reference_dtypes(case, df), f"{what}: dtypes {dict(got.dtypes)}"
    assert got[id_col].astype(str).tolist() == expected[id_col].astype(str).tolist(), f"{what}: ids"
    assert got["target_name"].tolist() == expected["target_name"].tolist(), f"{what}: target names"
    expected_ts = pd.to_datetime(expected[ts_col])
    got_ts = got[ts_col].dt.tz_localize(None) if got[ts_col].dt.tz is not None else got[ts_col]
    assert (got_ts.to_numpy() == expected_ts.to_numpy()).all(), f"{what}: timestamps"
    values = list(expected.columns[3:])
    rtol = df_rtol(case)
    exp = expected[values].to_numpy(np.float64)
    scale = np.abs(exp).max()
    diff = np.abs(got[values].to_numpy(np.float64) - exp)
    assert (diff <= rtol * np.abs(exp) + rtol * 0.1 * scale).all(), f"{what}: max diff {diff.max()}"


@pytest.mark.parametrize("name,case", cases("dataframe"), ids=lambda x: x if isinstance(x, str) else "")
def test_predict_df_fixture_pandas(name, case):
    df = read_input(case, "input")
    future = read_input(case, "future") if case["future"] else None
    got = run_predict_df(case, df, future)
    assert_matches_expected(case, got, df, name)


@pytest.mark.parametrize("name,case", cases("dataframe"), ids=lambda x: x if isinstance(x, str) else "")
def test_predict_df_fixture_polars_and_pyarrow(name, case):
    pl = pytest.importorskip("polars")
    import pyarrow as pa

    df = read_input(case, "input")
    future = read_input(case, "future") if case["future"] else None
    expected = run_predict_df(case, df, future)
    for kind, convert in (("polars", pl.from_pandas), ("pyarrow", lambda d: pa.Table.from_pandas(d, preserve_index=False))):
        got = run_predict_df(case, convert(df), None if future is None else convert(future))
        assert list(got.columns) == list(expected.columns), kind
        assert got[case["id_column"]].astype(str).tolist() == expected[case["id_column"]].astype(str).tolist(), kind
        ts = case["timestamp_column"]
        assert (pd.to_datetime(got[ts]).to_numpy() == pd.to_datetime(expected[ts]).to_numpy()).all(), kind
        values = list(expected.columns[3:])
        np.testing.assert_array_equal(got[values].to_numpy(), expected[values].to_numpy(), err_msg=kind)
