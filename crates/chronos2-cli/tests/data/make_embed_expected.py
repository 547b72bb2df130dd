"""Writes airpassengers_embed.json: the reference embeddings of examples/airpassengers.csv.

Run from the repository root with chronos-forecasting==2.3.2 installed:
    python3 crates/chronos2-cli/tests/data/make_embed_expected.py
`Chronos2Pipeline.embed` on the two target series (list of 1-D float32 arrays, one batch), as
`chronos2 embed --input examples/airpassengers.csv --pooling all` must reproduce.
"""
import json

import numpy as np
import pandas as pd
import torch
from chronos import Chronos2Pipeline

pipe = Chronos2Pipeline.from_pretrained("models/chronos2-mini", dtype=torch.float32)
df = pd.read_csv("examples/airpassengers.csv")
ids = list(pd.unique(df["item_id"]))
series = [df.loc[df["item_id"] == i, "target"].to_numpy(dtype=np.float32) for i in ids]
embeddings, loc_scale = pipe.embed(series)


def f32(x):
    return float(str(np.float32(x)))


out = {
    "item_ids": ids,
    "embeddings": [[[[f32(v) for v in tok] for tok in var] for var in e.numpy()] for e in embeddings],
    "loc": [f32(l.reshape(-1)[0]) for l, _ in loc_scale],
    "scale": [f32(s.reshape(-1)[0]) for _, s in loc_scale],
}
with open("crates/chronos2-cli/tests/data/airpassengers_embed.json", "w") as f:
    json.dump(out, f, separators=(",", ":"))
