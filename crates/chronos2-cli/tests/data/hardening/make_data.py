"""Writes the inputs of tests/hardening.rs (run from the repository root, with pandas + pyarrow):
    python3 crates/chronos2-cli/tests/data/hardening/make_data.py

- small.csv and small_<codec>.parquet: the same two daily series, Parquet in every codec pandas
  can write (snappy is pandas' default);
- small_decimal.parquet: the target as decimal128(12, 2) (values have 2 decimals, so exact);
- small_float16.csv / .parquet: the target rounded to float16, as text and as a float16 column;
- paris_daily.parquet (items P, Q), paris_daily.csv (item P, ISO offsets) and paris_hourly.parquet
  (item H): Europe/Paris series across DST changes, with paris_expected.json holding per item the
  frequency pandas infers and the 5 forecast timestamps it gives (`last + k * to_offset(freq)`, as
  the reference's `predict_df`).
"""
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

out = Path(__file__).parent

days = pd.date_range("2024-01-01", periods=40, freq="D")
rows = []
for item, (base, amp) in {"A": (20.0, 5.0), "B": (100.0, 12.0)}.items():
    for k, t in enumerate(days):
        rows.append((item, t.strftime("%Y-%m-%d"), round(base + amp * np.sin(k / 3.0) + 0.25 * k, 2)))
small = pd.DataFrame(rows, columns=["item_id", "timestamp", "target"])
small.to_csv(out / "small.csv", index=False)
parquet_small = small.assign(timestamp=pd.to_datetime(small["timestamp"]))
for codec in ["snappy", "zstd", "gzip", "brotli", "lz4"]:
    parquet_small.to_parquet(out / f"small_{codec}.parquet", compression=codec, index=False)

table = pa.table(
    {
        "item_id": pa.array(small["item_id"]),
        "timestamp": pa.array(pd.to_datetime(small["timestamp"])),
        "target": pa.array([Decimal(f"{v:.2f}") for v in small["target"]], type=pa.decimal128(12, 2)),
    }
)
pq.write_table(table, out / "small_decimal.parquet")

half = small["target"].astype(np.float16)
small.assign(target=[float(v) for v in half]).to_csv(out / "small_float16.csv", index=False)
table = pa.table(
    {
        "item_id": pa.array(small["item_id"]),
        "timestamp": pa.array(pd.to_datetime(small["timestamp"])),
        "target": pa.array(half.to_numpy(), type=pa.float16()),
    }
)
pq.write_table(table, out / "small_float16.parquet")

expected = {}
series = {
    # P crosses the spring DST change in its history, Q's forecast crosses the autumn one.
    "daily": [("P", "2024-03-10", 30, "D"), ("Q", "2024-10-01", 25, "D")],
    "hourly": [("H", "2024-03-30 12:00", 30, "h")],
}
for name, items in series.items():
    frames = []
    for item, start, periods, freq in items:
        index = pd.date_range(start, periods=periods, freq=freq, tz="Europe/Paris")
        df = pd.DataFrame(
            {
                "item_id": [item] * periods,
                "timestamp": index,
                "target": [round(10 + 3 * np.sin(k / 2.0), 2) for k in range(periods)],
            }
        )
        inferred = pd.infer_freq(pd.DatetimeIndex(df["timestamp"]))
        offset = pd.tseries.frequencies.to_offset(inferred)
        last = df["timestamp"].iloc[-1]
        expected[item] = {
            "freq": str(inferred),
            "timestamps": [(last + k * offset).isoformat() for k in range(1, 6)],
        }
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df.to_parquet(out / f"paris_{name}.parquet", index=False)
    if name == "daily":
        p = df[df["item_id"] == "P"]
        p.assign(timestamp=[t.isoformat() for t in p["timestamp"]]).to_csv(out / "paris_daily.csv", index=False)
(out / "paris_expected.json").write_text(json.dumps(expected, indent=1) + "\n")
