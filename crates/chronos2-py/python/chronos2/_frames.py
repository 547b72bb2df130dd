"""DataFrames (pandas, polars, pyarrow) -> column buffers for the native module, through Arrow,
and the native results -> pandas DataFrames laid out as the reference's ``predict_df``.

Every column crosses as one numpy buffer (numbers, bools, timestamps as int64 nanoseconds) or as
Arrow dictionary codes plus the distinct labels (text), so no Python code runs per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._native import PREDICTIONS_COLUMN, TARGET_NAME_COLUMN


def _is_polars(df: Any) -> bool:
    return type(df).__module__.split(".")[0] == "polars"


def _distinct_labels(column: pd.Series) -> pd.Series:
    """An object id column mixing types (``1`` and ``"1"``) as text labels that keep apart the
    values pandas groups apart: ``str(v)``, or ``repr(v)`` where two values have the same text."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    texts = [str(v) for v in uniques]
    clash = {t for t in texts if texts.count(t) > 1}
    labels = np.array([repr(v) if t in clash else t for v, t in zip(uniques, texts)] + [None], dtype=object)
    return pd.Series(labels[codes], index=column.index, dtype=object)


def to_arrow(df: Any, what: str, id_column: Any = None) -> pa.Table:
    """A pyarrow Table of a pandas / polars DataFrame or anything with ``__arrow_c_stream__``.
    A pandas ``id_column`` of mixed types (ints and strings) becomes text labels first (Arrow
    columns have one type); the result's ids are taken from ``df`` itself (:func:`item_ids`)."""
    try:
        if isinstance(df, pa.Table):
            return df
        if isinstance(df, pa.RecordBatch):
            return pa.Table.from_batches([df])
        if isinstance(df, pd.DataFrame):
            if df.columns.duplicated().any():
                dup = list(df.columns[df.columns.duplicated()])
                raise ValueError(f"{what} has duplicate column names: {dup}")
            if (
                id_column in df.columns
                and df[id_column].dtype == object
                and pd.api.types.infer_dtype(df[id_column], skipna=True).startswith("mixed")
            ):
                df = df.copy(deep=False)
                df[id_column] = _distinct_labels(df[id_column])
            return pa.Table.from_pandas(df, preserve_index=False)
        if _is_polars(df) and hasattr(df, "to_arrow"):
            return df.to_arrow()
        if hasattr(df, "__arrow_c_stream__"):
            return pa.table(df)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise ValueError(f"{what} cannot be converted to Arrow: {e}") from None
    raise ValueError(f"{what} must be a pandas, polars or pyarrow DataFrame, found {type(df).__name__}")


def _mask(arr: pa.ChunkedArray) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _column(name: str, col: pa.ChunkedArray) -> tuple:
    t = col.type
    if pa.types.is_dictionary(t):
        # Categories (pandas "category", polars Categorical) stay categories, whatever their values.
        col = col.cast(t.value_type)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            col = col.cast(pa.string())
        t = col.type
    if pa.types.is_null(t):
        return (name, "f64", np.full(len(col), np.nan), None)
    if pa.types.is_floating(t):
        kind, dtype = ("f32", np.float32) if t.bit_width <= 32 else ("f64", np.float64)
        values = col.cast(pa.float32() if kind == "f32" else pa.float64())
        if values.null_count:
            values = values.fill_null(np.nan)
        return (name, kind, np.ascontiguousarray(values.to_numpy(), dtype=dtype), None)
    if pa.types.is_integer(t):
        if col.null_count:
            return (name, "f64", col.cast(pa.float64()).fill_null(np.nan).to_numpy(), None)
        return (name, "i64", np.ascontiguousarray(col.to_numpy(), dtype=np.int64), None)
    if pa.types.is_boolean(t):
        values = col.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        return (name, "bool", values, _mask(col))
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        # Zoned columns cross as UTC instants with their zone's name (Arrow stores them so).
        tz = t.tz if pa.types.is_timestamp(t) else None
        ns = col.cast(pa.timestamp("ns", tz=tz))
        values = ns.cast(pa.int64()).fill_null(0).to_numpy()
        return (name, "ts", np.ascontiguousarray(values, dtype=np.int64), (_mask(ns), tz))
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        encoded = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
        codes = encoded.indices.cast(pa.int32()).fill_null(-1).to_numpy(zero_copy_only=False)
        labels = encoded.dictionary.cast(pa.string()).to_pylist()
        return (name, "str", np.ascontiguousarray(codes, dtype=np.int32), labels)
    # Anything else (decimals, binary, nested): its text, as pandas would show it.
    try:
        return _column(name, col.cast(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError(f"column '{name}' has a type that cannot be used: {t}") from None


def columns(table: pa.Table) -> list[tuple]:
    """The table as ``(name, kind, values, extra)`` column buffers (see the native ``table`` module)."""
    return [_column(name, table.column(i)) for i, name in enumerate(table.column_names)]


def _timestamp_dtype(df: Any, table: pa.Table, timestamp_column: str) -> tuple[str, Any]:
    """(numpy unit, tz) of the forecast timestamps: those of the input column once pandas has
    parsed it (``pd.to_datetime`` for text, as the reference's ``normalize_df``)."""
    t = table.schema.field(timestamp_column).type
    if pa.types.is_timestamp(t):
        return t.unit, t.tz
    first = table.column(timestamp_column).slice(0, 1).to_pylist()
    parsed = pd.to_datetime(pd.Series(first))
    unit = np.datetime_data(parsed.dtype.base if hasattr(parsed.dtype, "base") else parsed.dtype)[0]
    return unit, getattr(parsed.dtype, "tz", None)


def _timestamps(ns: np.ndarray, unit: str, tz: Any) -> pd.DatetimeIndex:
    """Nanoseconds (UTC instants when ``tz`` is set, else wall-clock times) as pandas timestamps."""
    index = pd.DatetimeIndex(ns.view("datetime64[ns]"))
    if unit != "ns" and hasattr(index, "as_unit"):
        index = index.as_unit(unit)
    if tz is not None:
        index = index.tz_localize("UTC").tz_convert(tz)
    return index


def item_ids(df: Any, table: pa.Table, id_column: str, rows: np.ndarray) -> np.ndarray:
    """The id values at ``rows`` as the reference takes them (``df[id_column].to_numpy()[rows]``)."""
    if isinstance(df, pd.DataFrame):
        return df[id_column].iloc[rows].to_numpy()
    return table.column(id_column).take(pa.array(rows)).to_pandas().to_numpy()


def forecast_dtypes(df: pd.DataFrame, id_column: str, timestamp_column: str, targets: list) -> dict:
    """Dtypes of the key columns of ``forecast_frame`` for a pandas ``df``."""
    table = to_arrow(df[[timestamp_column]], "df")
    unit, tz = _timestamp_dtype(df, table, timestamp_column)
    ts = _timestamps(np.zeros(1, dtype=np.int64), unit, tz)
    return {
        id_column: pd.DataFrame({"x": df[id_column].iloc[:1].to_numpy()})["x"].dtype,
        timestamp_column: pd.Series(ts).dtype,
        TARGET_NAME_COLUMN: pd.DataFrame({"x": np.array(targets)})["x"].dtype,
    }


def forecast_frame(
    df: Any,
    table: pa.Table,
    result: dict,
    id_column: str,
    timestamp_column: str,
    targets: list[str],
    prediction_length: int,
) -> pd.DataFrame:
    """The reference's predict_df result: ``[id, timestamp, target_name, predictions, str(q)...]``,
    rows ordered (item, target, step); the names after the timestamp are the library's."""
    n_items = len(result["first_rows"])
    n_targets = len(targets)
    ids = item_ids(df, table, id_column, result["first_rows"])
    unit, tz = _timestamp_dtype(df, table, timestamp_column)
    steps = result["timestamps"].reshape(n_items, 1, prediction_length)
    ts = np.broadcast_to(steps, (n_items, n_targets, prediction_length)).ravel()
    out = pd.DataFrame(
        {
            id_column: np.repeat(ids, n_targets * prediction_length),
            timestamp_column: _timestamps(ts, unit, tz),
        }
    )
    out[TARGET_NAME_COLUMN] = np.tile(np.repeat(targets, prediction_length), n_items)
    out[PREDICTIONS_COLUMN] = result["median"]
    quantiles = result["quantiles"]
    for k, name in enumerate(result["level_columns"]):
        out[name] = quantiles[:, k]
    return out


def embedding_frame(df: Any, table: pa.Table, result: dict, id_column: str) -> pd.DataFrame:
    """One row per (item, target): ``[id, target_name, loc, scale, embedding]``."""
    embeddings = result["embeddings"]
    column = np.empty(len(result["loc"]), dtype=object)
    column[:] = list(embeddings)
    return pd.DataFrame(
        {
            id_column: item_ids(df, table, id_column, result["first_rows"]),
            "target_name": np.asarray(result["target_name"]),
            "loc": result["loc"],
            "scale": result["scale"],
            "embedding": column,
        }
    )
