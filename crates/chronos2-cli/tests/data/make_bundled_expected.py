"""Writes airpassengers_forecast_h12.csv: the reference forecast of examples/airpassengers.csv by
the bundled chronos2-mini, as `chronos2 predict --input examples/airpassengers.csv
--prediction-length 12 --quantiles all` must reproduce.

Run from the repository root with chronos-forecasting==2.3.2 installed:
    python3 crates/chronos2-cli/tests/data/make_bundled_expected.py
`Chronos2Pipeline.predict_df` with the model's 21 quantile levels; floats are written with the
shortest repr of their float32 value, timestamps as ISO 8601 (the CLI's CSV output).
"""
import json

import numpy as np
import pandas as pd
import torch
from chronos import Chronos2Pipeline

MODEL = "models/chronos2-mini"
levels = json.load(open(f"{MODEL}/config.json"))["chronos_config"]["quantiles"]
pipe = Chronos2Pipeline.from_pretrained(MODEL, dtype=torch.float32)
df = pd.read_csv("examples/airpassengers.csv")
result = pipe.predict_df(df, prediction_length=12, quantile_levels=levels)
out = pd.DataFrame(index=result.index)
for c in result.columns:
    col = result[c]
    if c == "timestamp":
        out[c] = pd.to_datetime(col).dt.strftime("%Y-%m-%dT%H:%M:%S")
    elif pd.api.types.is_float_dtype(col):
        out[c] = [str(np.float32(v)) for v in col.to_numpy(dtype=np.float32)]
    else:
        out[c] = col.astype(str)
out.to_csv("crates/chronos2-cli/tests/data/airpassengers_forecast_h12.csv", index=False)
