"""Scale-out of ``predict_df`` on Ray Data.

    import chronos2.ray
    forecast = chronos2.ray.predict_df(df, prediction_length=24, num_workers=8)

Series are partitioned by id (a series, and every target and covariate of it, always stays in one
partition), and a pool of ``num_workers`` actors forecasts the partitions, each actor loading the
model once. A pandas DataFrame in gives a pandas DataFrame out, in the row order of a
single-process ``predict_df``; a ``ray.data.Dataset`` in gives a ``Dataset`` out (partition order).

Unlike a single ``predict_df`` call, series may have different frequencies: with ``freq=None`` each
partition is forecast once per inferred frequency.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from . import _frames
from ._native import item_frequencies

_RANK = "__chronos2_item_rank"
_PART = "__chronos2_partition"


def _split_by_frequency(df: pd.DataFrame, id_column: str, timestamp_column: str) -> list:
    """Row masks of ``df``, one per inferred series frequency (series whose frequency cannot be
    inferred, e.g. with fewer than 3 rows, join the most common one, as in ``predict_df``)."""
    table = _frames.to_arrow(df[[id_column, timestamp_column]], "df", id_column)
    codes, aliases = item_frequencies(_frames.columns(table), id_column, timestamp_column)
    if len(aliases) <= 1:
        return [None]
    counts = np.bincount(codes[codes >= 0], minlength=len(aliases))
    codes = np.where(codes < 0, int(np.argmax(counts)), codes)
    return [codes == k for k in range(len(aliases))]


def predict_partition(pipeline: Any, df: pd.DataFrame, **predict_df_kwargs: Any) -> pd.DataFrame:
    """``pipeline.predict_df`` on one partition; series of different frequencies are forecast in
    one call per frequency when ``freq`` is not given. Items keep their first-appearance order."""
    id_column = predict_df_kwargs.get("id_column", "item_id")
    timestamp_column = predict_df_kwargs.get("timestamp_column", "timestamp")
    future_df = predict_df_kwargs.pop("future_df", None)

    def run(part: pd.DataFrame) -> pd.DataFrame:
        future = None if future_df is None else future_df[future_df[id_column].isin(part[id_column].unique())]
        return pipeline.predict_df(part, future_df=future, **predict_df_kwargs)

    masks = [None] if predict_df_kwargs.get("freq") else _split_by_frequency(df, id_column, timestamp_column)
    if masks == [None]:
        return run(df)
    parts = [run(df[mask]) for mask in masks]
    out = pd.concat(parts, ignore_index=True)
    order = pd.Index(pd.unique(df[id_column])).get_indexer(out[id_column])
    return out.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


class _Forecaster:
    """A Ray actor: loads the model once, then forecasts the partitions it is given."""

    def __init__(self, model: Optional[str], backend: str, load_kwargs: dict, predict_df_kwargs: dict):
        from chronos2 import Chronos2Pipeline

        self.pipeline = Chronos2Pipeline.from_pretrained(model, backend=backend, **load_kwargs)
        self.kwargs = predict_df_kwargs

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        kwargs = dict(self.kwargs)
        id_column = kwargs.get("id_column", "item_id")
        ranks = batch[_RANK].to_numpy() if _RANK in batch.columns else None
        data = batch.drop(columns=[c for c in (_RANK, _PART) if c in batch.columns])
        out = predict_partition(self.pipeline, data, **kwargs)
        if ranks is not None:
            # Each output item's global rank (first-appearance order in the caller's DataFrame).
            codes, uniques = pd.factorize(data[id_column])
            first_row = np.empty(len(uniques), dtype=np.int64)
            first_row[codes[::-1]] = np.arange(len(codes))[::-1]
            items = pd.Index(uniques).get_indexer(pd.unique(out[id_column]))
            per_item = len(out) // max(len(items), 1)
            out[_RANK] = np.repeat(ranks[first_row[items]], per_item)
        return out


def _partition_key(ids: pd.Series, num_partitions: int) -> np.ndarray:
    return (pd.util.hash_array(ids.to_numpy()) % np.uint64(num_partitions)).astype(np.int64)


def predict_df(
    data: Any,
    model: Optional[str] = None,
    prediction_length: Optional[int] = None,
    num_workers: int = 2,
    batch_size: int = 256,
    backend: str = "auto",
    *,
    num_partitions: Optional[int] = None,
    threads_per_worker: int = 1,
    quantize: Any = None,
    **predict_df_kwargs: Any,
) -> Any:
    """Forecasts ``data`` (a pandas DataFrame or a ``ray.data.Dataset`` in long format) with
    ``num_workers`` Ray actors. ``predict_df_kwargs`` are those of ``Chronos2Pipeline.predict_df``
    (``id_column``, ``timestamp_column``, ``target``, ``quantile_levels``, ``freq``, ...;
    ``future_df`` only with a pandas ``data``). ``num_partitions`` (default ``4 * num_workers``)
    sets how many id partitions the series are spread over; each worker reserves
    ``threads_per_worker`` CPUs and computes with as many threads. Ray must be initialised
    (``ray.init``) or is started locally."""
    import ray
    import ray.data

    if num_workers < 1:
        raise ValueError("num_workers must be at least 1")
    id_column = predict_df_kwargs.get("id_column", "item_id")
    num_partitions = int(num_partitions or 4 * num_workers)
    kwargs = dict(predict_df_kwargs, prediction_length=prediction_length, batch_size=batch_size)
    load_kwargs = {"quantize": quantize}

    def actors(kwargs: dict, min_workers: int) -> dict:
        return dict(
            fn_constructor_args=(model, backend, load_kwargs, kwargs),
            compute=ray.data.ActorPoolStrategy(min_size=min_workers, max_size=num_workers),
            batch_format="pandas",
            num_cpus=threads_per_worker,
            runtime_env={"env_vars": {"RAYON_NUM_THREADS": str(threads_per_worker)}},
        )

    if isinstance(data, pd.DataFrame):
        if id_column not in data.columns:
            raise ValueError(f"df does not contain all expected columns. Missing columns: '{id_column}'")
        ranks, _ = pd.factorize(data[id_column])
        keys = ranks % num_partitions
        order = np.argsort(keys, kind="stable")
        bounds = np.searchsorted(keys[order], np.arange(num_partitions + 1))
        frame = data.assign(**{_RANK: ranks})
        parts = [frame.iloc[order[a:b]] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        ds = ray.data.from_pandas(parts)
        out = ds.map_batches(_Forecaster, batch_size=None, **actors(kwargs, num_workers)).to_pandas()
        out = out.iloc[np.argsort(out[_RANK].to_numpy(), kind="stable")].drop(columns=[_RANK])
        out = out.reset_index(drop=True)
        return _restore_dtypes(out, data, kwargs)

    if isinstance(data, ray.data.Dataset):
        if "future_df" in kwargs:
            raise ValueError("future_df is supported with a pandas DataFrame input only")
        keyed = data.map_batches(
            lambda b: b.assign(**{_PART: _partition_key(b[id_column], num_partitions)}), batch_format="pandas"
        )
        # The pool starts with one actor so that the shuffle before it keeps CPUs to run on, and
        # grows to num_workers as CPUs free up.
        grouped = keyed.groupby(_PART, num_partitions=num_partitions)
        return grouped.map_groups(_Forecaster, **actors(kwargs, 1))

    raise ValueError(f"data must be a pandas DataFrame or a ray.data.Dataset, found {type(data).__name__}")


def _restore_dtypes(out: pd.DataFrame, data: pd.DataFrame, kwargs: dict) -> pd.DataFrame:
    """The dtypes of a single-process predict_df (Ray's Arrow blocks may change text and
    timestamp dtypes on the way back)."""
    id_column = kwargs.get("id_column", "item_id")
    timestamp_column = kwargs.get("timestamp_column", "timestamp")
    targets = kwargs.get("target", "target")
    targets = [targets] if isinstance(targets, str) else list(targets)
    dtypes = _frames.forecast_dtypes(data, id_column, timestamp_column, targets)
    dtypes.update({c: np.dtype(np.float32) for c in out.columns[3:]})
    return out.astype({k: v for k, v in dtypes.items() if k in out.columns and out[k].dtype != v})
