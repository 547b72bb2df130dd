"""Runs the reference's `Chronos2Pipeline.fit` (chronos-forecasting 2.3.2) on CPU with the settings
of `cargo xtask finetune-eval`, for a side-by-side row: trains on the history of eval/real-series
(or any long-format CSV with id,timestamp,target), writes the fine-tuned checkpoint (a full model
or a PEFT adapter) and prints one JSON line with its path and the training speed.

usage: python scripts/reference_fit.py --model DIR --mode lora|full --steps N --batch-size N
           --context-length N --prediction-length H --learning-rate X --output DIR [--input CSV]
           [--validate]

--validate: trains on each series without its last prediction-length points and passes the whole
series as `validation_inputs` (fit then validates every 100 steps and keeps the best checkpoint),
as `cargo xtask finetune-eval --validate` does.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback

from chronos.chronos2 import Chronos2Pipeline

ROOT = Path(__file__).resolve().parent.parent


class Timer(TrainerCallback):
    """Wall time of the training loop alone (no setup, no saving)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self.start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--mode", choices=["lora", "full"], required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--context-length", type=int, required=True)
    p.add_argument("--prediction-length", type=int, required=True)
    p.add_argument("--learning-rate", type=float, required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--input", default=str(ROOT / "eval" / "real-series" / "context.csv"))
    p.add_argument("--validate", action="store_true")
    a = p.parse_args()

    torch.manual_seed(0)
    np.random.seed(0)
    df = pd.read_csv(a.input)
    inputs = [torch.tensor(g["target"].to_numpy(np.float32)) for _, g in df.groupby("id", sort=False)]
    validation = None
    if a.validate:
        validation = inputs
        inputs = [x[: len(x) - a.prediction_length] for x in inputs]
    pipe = Chronos2Pipeline.from_pretrained(a.model, device_map="cpu", dtype=torch.float32)
    timer = Timer()
    start = time.perf_counter()
    pipe.fit(inputs, validation_inputs=validation, prediction_length=a.prediction_length, finetune_mode=a.mode, context_length=a.context_length,
             learning_rate=a.learning_rate, num_steps=a.steps, batch_size=a.batch_size, output_dir=a.output,
             callbacks=[timer], remove_printer_callback=True)
    total = time.perf_counter() - start
    print(json.dumps({"checkpoint": str(Path(a.output) / "finetuned-ckpt"), "train_seconds": timer.seconds,
                      "steps_per_second": a.steps / timer.seconds, "fit_seconds": total}))


if __name__ == "__main__":
    main()
