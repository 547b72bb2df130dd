"""PyTorch CPU (chronos-forecasting 2.3.2) latency of the full-size Chronos-2 forward, for
side-by-side comparison with `cargo bench -p chronos2-bench --bench forward`.

    python3 scripts/bench_torch.py [--threads 2] [--runs 20] [--shapes 1x128,8x512]
                                   [--dtypes fp32,bf16] [--device cpu|cuda] [--json OUT]

Random init (speed does not depend on the weights), prediction length 24 (2 patches). fp32, and
with `--dtypes fp32,bf16` also the same model cast to bfloat16 (`model.to(torch.bfloat16)`, the
context stays float32), measured in the same process. With `--device cuda` the model and inputs live on the GPU (eager,
no TF32: PyTorch's default for matmuls) and each timed run ends with `torch.cuda.synchronize()`.
"""
import argparse
import json
import platform
import statistics
import time

import numpy as np

import torch
from chronos.chronos2.config import Chronos2CoreConfig
from chronos.chronos2.model import Chronos2Model

QUANTILES = [0.01, 0.05] + [round(0.1 * i, 1) for i in range(1, 10)] + [0.95, 0.99]


def full_size_model() -> Chronos2Model:
    quantiles = sorted(set(QUANTILES + [0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85]))
    config = Chronos2CoreConfig(
        d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12, dense_act_fn="relu",
        chronos_config=dict(context_length=8192, input_patch_size=16, input_patch_stride=16,
                            output_patch_size=16, max_output_patches=64, quantiles=quantiles,
                            time_encoding_scale=8192, use_arcsinh=True, use_reg_token=True),
    )
    return Chronos2Model(config).eval()


def time_shapes(model: Chronos2Model, args: argparse.Namespace, dtype: str) -> dict:
    results = {}
    for shape in args.shapes.split(","):
        rows, length = map(int, shape.split("x"))
        context = (torch.randn(rows, length).cumsum(-1) + 100).to(args.device)
        times = []
        with torch.inference_mode():
            for i in range(args.warmup + args.runs):
                start = time.perf_counter()
                model(context=context, num_output_patches=2)
                if args.device == "cuda":
                    torch.cuda.synchronize()
                if i >= args.warmup:
                    times.append((time.perf_counter() - start) * 1000)
        print(f"{dtype} {shape}: median {statistics.median(times):.1f} ms  (min {min(times):.1f}, max {max(times):.1f})", flush=True)
        p10, p50, p90 = np.percentile(times, [10, 50, 90])
        results[shape] = {"median_ms": p50, "p10_ms": p10, "p90_ms": p90, "runs": len(times)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--shapes", default="1x128,8x512")
    parser.add_argument("--dtypes", default="fp32", help="comma-separated: fp32, bf16")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", help="write {cells: {shape: {median_ms, p10_ms, p90_ms, runs}}, cells_bf16: ...} here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = full_size_model().to(args.device)
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, threads {torch.get_num_threads()}"
    print(f"torch {torch.__version__}, {device}")
    out = {}
    for dtype in args.dtypes.split(","):
        if dtype not in ("fp32", "bf16"):
            raise SystemExit(f"unknown dtype {dtype!r} (expected fp32 or bf16)")
        if dtype == "bf16":
            model = model.to(torch.bfloat16)
        out["cells" if dtype == "fp32" else "cells_bf16"] = time_shapes(model, args, dtype)
    if args.json:
        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
                "device": device}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, **out}, f, indent=1)


if __name__ == "__main__":
    main()
