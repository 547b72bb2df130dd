"""Time zones (issue 21, item 19): hourly tz-aware data across a DST change is regular in absolute
time, as pandas infers it (``h``); forecasts come in the same zone, stepping in absolute time
(so across the next DST change too). Daily data steps in local calendar days."""

import numpy as np
import pandas as pd
import pytest

from chronos2 import Chronos2Pipeline
from conftest import ROOT


@pytest.fixture(scope="module")
def tiny():
    return Chronos2Pipeline.from_pretrained(str(ROOT / "tests/fixtures/models/tiny"), backend="cpu")


def frame(stamps):
    n = len(stamps)
    return pd.DataFrame({"item_id": "A", "timestamp": stamps, "target": np.sin(np.arange(n) / 5).astype(np.float32)})


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York"])
def test_hourly_across_spring_forward(tiny, zone):
    # 48 hours ending just after the March change (Paris: 2024-03-31 02:00 -> 03:00; New York: 03-10).
    end = pd.Timestamp("2024-03-31 06:00" if zone == "Europe/Paris" else "2024-03-10 06:00", tz=zone)
    stamps = pd.date_range(end=end, periods=48, freq="h")
    # pandas (the reference's predict_df) infers "h": the steps are regular in absolute time.
    out = tiny.predict_df(frame(stamps), prediction_length=5)
    expected = pd.date_range(stamps[-1] + pd.Timedelta(hours=1), periods=5, freq="h")
    assert str(out["timestamp"].dtype.tz) == zone
    assert list(out["timestamp"]) == list(expected)


def test_hourly_forecasts_cross_fall_back_in_absolute_time(tiny):
    stamps = pd.date_range(end=pd.Timestamp("2024-10-27 01:00", tz="Europe/Paris"), periods=30, freq="h")
    out = tiny.predict_df(frame(stamps), prediction_length=4)
    # 02:00 +02:00, 02:00 +01:00 (the repeated hour), 03:00, 04:00
    assert [t.isoformat() for t in out["timestamp"]] == [
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T02:00:00+01:00",
        "2024-10-27T03:00:00+01:00",
        "2024-10-27T04:00:00+01:00",
    ]


def test_daily_across_dst_steps_in_local_days(tiny):
    stamps = pd.date_range("2024-03-20", periods=15, freq="D", tz="Europe/Paris")
    out = tiny.predict_df(frame(stamps), prediction_length=3)
    assert list(out["timestamp"]) == list(pd.date_range(stamps[-1] + pd.Timedelta(days=1), periods=3, freq="D"))
    assert all(t.hour == 0 for t in out["timestamp"])


def test_future_covariates_in_the_same_zone(tiny):
    stamps = pd.date_range(end=pd.Timestamp("2024-03-31 06:00", tz="Europe/Paris"), periods=24, freq="h")
    df = frame(stamps).assign(price=np.arange(24, dtype=np.float32))
    future_stamps = pd.date_range(stamps[-1] + pd.Timedelta(hours=1), periods=3, freq="h")
    future = pd.DataFrame({"item_id": "A", "timestamp": future_stamps, "price": [1.0, 2.0, 3.0]})
    out = tiny.predict_df(df, future_df=future, prediction_length=3)
    assert list(out["timestamp"]) == list(future_stamps)
    # The same instants written in another zone are the same timestamps.
    out_utc = tiny.predict_df(df, future_df=future.assign(timestamp=future_stamps.tz_convert("UTC")), prediction_length=3)
    np.testing.assert_array_equal(out["predictions"].to_numpy(), out_utc["predictions"].to_numpy())
