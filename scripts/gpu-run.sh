#!/usr/bin/env bash
# Runs the CUDA backend's checks and benchmark on a GPU machine, from the repository root, with
# the bundle `cargo xtask gpu-bundle` built (default .carry-cuda: test binaries, the CLI with
# cuda, bench-matrix-cells with cuda, the `chronos` package of chronos-forecasting 2.3.2 and
# scripts/bench_torch.py). Needs only the NVIDIA driver, CUDA 13 libraries and, for the PyTorch
# side, python3 with torch (CUDA), transformers, einops, pandas.
#
#   scripts/gpu-run.sh [BUNDLE] [tests|cli|bench|all]...   (results under $OUT, default ./gpu-out)
set -uo pipefail
BUNDLE=${1:-.carry-cuda}
shift || true
STEPS=${*:-all}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export CHRONOS2_REPO_ROOT=$PWD
for f in "$BUNDLE"/bin/*.gz; do [ -e "$f" ] && gunzip -f "$f"; done
chmod +x "$BUNDLE"/bin/* 2>/dev/null
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | sed 's/^/gpu: /'
failed=0
want() { [[ " $STEPS " == *" all "* || " $STEPS " == *" $1 "* ]]; }

if want tests; then
    for t in "$BUNDLE"/bin/test-*; do
        echo "== $(basename "$t")"
        "$t" --include-ignored --test-threads 1 --nocapture 2>&1 || { echo "FAILED: $(basename "$t")"; failed=1; }
    done
    # The parity check must be able to fail: move one expected quantile of a fixture by 0.1% of
    # its value and expect the model-case test to report it.
    broken=$(mktemp -d)
    mkdir -p "$broken/tests" && cp -r tests/fixtures "$broken/tests/"
    python3 - "$broken/tests/fixtures/cases/model_mini.json" <<'EOF'
import json, sys
path = sys.argv[1]
case = json.load(open(path))
q = case["expected"]["quantile_preds"]
while isinstance(q[0], list):
    q = q[0]
q[0] = q[0] * 1.001 + 1e-3
json.dump(case, open(path, "w"))
EOF
    if CHRONOS2_REPO_ROOT=$broken "$BUNDLE"/bin/test-parity --include-ignored --exact model_cases_match_reference_layer_by_layer 2>&1 | grep -E "quantile_preds|test result"; then :; fi
    if CHRONOS2_REPO_ROOT=$broken "$BUNDLE"/bin/test-parity --include-ignored --exact model_cases_match_reference_layer_by_layer >/dev/null 2>&1; then
        echo "FAILED: the parity test passed on a deliberately wrong fixture"; failed=1
    else
        echo "deliberate-failure check: the parity test fails on a fixture moved by 0.1% (as it must)"
    fi
    rm -rf "$broken"
fi

if want cli && [ -x "$BUNDLE/bin/chronos2" ]; then
    echo "== CLI"
    cli="$BUNDLE/bin/chronos2"
    "$cli" info --backend cuda 2>&1 || failed=1
    for p in fp32 bf16; do
        q=""; [ $p = bf16 ] && q="--dtype bf16"
        "$cli" predict --model models/chronos2-mini --input eval/real-series/context.csv \
            --id-column id --timestamp-column timestamp --target target \
            --prediction-length 24 --backend cuda $q --output "$OUT/predict_cuda_$p.csv" 2>&1 | tail -3 || failed=1
    done
    "$cli" predict --model models/chronos2-mini --input eval/real-series/context.csv \
        --id-column id --timestamp-column timestamp --target target \
        --prediction-length 24 --backend cpu --output "$OUT/predict_cpu.csv" 2>&1 | tail -3
    python3 - "$OUT" <<'EOF' || failed=1
import sys, pandas as pd
out = sys.argv[1]
cpu = pd.read_csv(f"{out}/predict_cpu.csv")
num = cpu.select_dtypes("number").columns
for p in ("fp32", "bf16"):
    gpu = pd.read_csv(f"{out}/predict_cuda_{p}.csv")
    diff = (gpu[num] - cpu[num]).abs().max().max() / cpu[num].abs().max().max()
    print(f"CLI predict cuda {p} vs cpu: {len(gpu)} rows, max rel diff {diff:.2e}")
    if p == "fp32" and not diff <= 1e-5:
        sys.exit("cuda fp32 CLI forecast differs from the CPU's")
EOF
    if "$cli" predict --model models/chronos2-mini --input eval/real-series/context.csv --id-column id \
        --timestamp-column timestamp --target target --backend cuda --quantize int8 --output "$OUT/q.csv" 2>"$OUT/q.err"; then
        echo "FAILED: --quantize int8 on cuda did not fail"; failed=1
    else
        echo "--quantize int8 on cuda: $(tail -1 "$OUT/q.err")"
    fi
fi

if want bench; then
    echo "== bench"
    shapes=${GPU_BENCH_SHAPES:-1x128,1x512,1x2048,256x512,1024x512,4096x512,1024x2048}
    "$BUNDLE"/bin/bench-matrix-cells --columns cuda_fp32,cuda_bf16 --shapes "$shapes" --runs 10 --warmup 3 \
        >"$OUT/ours.json" || failed=1
    PYTHONPATH="$BUNDLE/python" PYTHONUNBUFFERED=1 python3 "$BUNDLE/bench_torch.py" --device cuda \
        --shapes "$shapes" --dtypes fp32,bf16 --runs 5 --warmup 2 --json "$OUT/torch.json" || failed=1
    python3 - "$OUT" <<'EOF' | tee "$OUT/bench-gpu.md"
import json, sys
out = sys.argv[1]
ours, torch = json.load(open(f"{out}/ours.json")), json.load(open(f"{out}/torch.json"))
print(f"PyTorch: {torch['meta']}\n")
print("Median ms per forward (full-size random model, prediction length 24); ratio = PyTorch / ours at the same precision; series/s = rows / ours.\n")
print("| shape | PyTorch fp32 | ours fp32 | ratio | PyTorch bf16 | ours bf16 | ratio | ours bf16 series/s |")
print("|---|---|---|---|---|---|---|---|")
for shape, t32 in torch["cells"].items():
    t16 = torch["cells_bf16"][shape]
    o32 = ours["cuda_fp32"][shape].get("median_ms", float("nan"))
    o16 = ours["cuda_bf16"][shape].get("median_ms", float("nan"))
    rows = int(shape.split("x")[0])
    print(f"| {shape} | {t32['median_ms']:.2f} | {o32:.2f} | {t32['median_ms'] / o32:.2f}x | {t16['median_ms']:.2f} | {o16:.2f} "
          f"| {t16['median_ms'] / o16:.2f}x | {rows / o16 * 1000:,.0f} |")
EOF
fi
echo "gpu-run: $([ $failed = 0 ] && echo ok || echo FAILED)"
exit $failed
