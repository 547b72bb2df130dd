#!/usr/bin/env bash
# Runs the CPU backend's AMX kernel tests and the CPU benchmark against PyTorch CPU on a machine
# without cargo (the device tool's 16-core Xeon host), from the repository root.
#
#   scripts/amx-run.sh [TESTS] [BENCH] [THREADS:SHAPES]...   (results under $OUT, default ./amx-out)
#
# TESTS: a folder of chronos2-candle-cpu test binaries (`cargo test -p chronos2-candle-cpu
# --no-run`, copied as test-<name>); BENCH: a folder with bench-matrix-cells, bench_torch.py and
# the `chronos` package of chronos-forecasting 2.3.2 under python/ (`cargo xtask gpu-bundle`
# builds one). Each THREADS:SHAPES pair times, in one call: PyTorch fp32 and bf16, ours on the
# default kernels (fp32, bf16, int8, w8a8) and ours with CHRONOS2_CPU_ISA=amx (bf16, w8a8).
set -uo pipefail
TESTS=${1:-.carry-amx}
BENCH=${2:-.carry-cuda}
shift 2 || true
RUNS=${AMX_RUNS:-3}
OUT=${OUT:-amx-out}
mkdir -p "$OUT"
export CHRONOS2_REPO_ROOT=$PWD
for f in "$TESTS"/*.gz "$BENCH"/bin/*.gz; do [ -e "$f" ] && gunzip -f "$f"; done
chmod +x "$TESTS"/test-* "$BENCH"/bin/* 2>/dev/null
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc); $(grep -m1 -o 'amx_[a-z0-9]*' /proc/cpuinfo | head -1 || echo 'no amx flag')"
failed=0

if [ -n "${AMX_TESTS:-1}" ] && [ "${AMX_TESTS:-1}" != 0 ]; then
    # Every kernel test with a naive oracle, on the AMX path, then the accuracy of the bf16 and
    # w8a8 modes on the real series with the AMX kernels.
    for t in "$TESTS"/test-*; do
        echo "== CHRONOS2_CPU_ISA=amx $(basename "$t")"
        log="$OUT/amx-$(basename "$t").log"
        CHRONOS2_CPU_ISA=amx "$t" --nocapture >"$log" 2>&1 || { echo "FAILED: $(basename "$t") with CHRONOS2_CPU_ISA=amx"; failed=1; }
        grep -E "AMX|SKIPPED|median moves|test result|FAILED|panicked" "$log"
    done
fi

for pair in "$@"; do
    threads=${pair%%:*}
    shapes=${pair#*:}
    echo "== bench, $threads threads, shapes $shapes, $RUNS runs"
    export RAYON_NUM_THREADS=$threads
    "$BENCH"/bin/bench-matrix-cells --columns cpu_fp32,cpu_bf16,cpu_int8,cpu_w8a8 --shapes "$shapes" \
        --runs "$RUNS" --warmup 1 >"$OUT/ours_t$threads.json" 2>"$OUT/ours_t$threads.err" || failed=1
    head -3 "$OUT/ours_t$threads.err"
    CHRONOS2_CPU_ISA=amx "$BENCH"/bin/bench-matrix-cells --columns cpu_bf16,cpu_w8a8 --shapes "$shapes" \
        --runs "$RUNS" --warmup 1 >"$OUT/ours_amx_t$threads.json" 2>"$OUT/ours_amx_t$threads.err" || failed=1
    head -3 "$OUT/ours_amx_t$threads.err"
    PYTHONPATH="$BENCH/python" python3 "$BENCH/bench_torch.py" --device cpu --threads "$threads" \
        --shapes "$shapes" --dtypes fp32,bf16 --runs "$RUNS" --warmup 1 --json "$OUT/torch_t$threads.json" \
        >/dev/null 2>"$OUT/torch_t$threads.err" || { tail -3 "$OUT/torch_t$threads.err"; failed=1; }
    python3 - "$OUT" "$threads" <<'EOF'
import json, sys
out, t = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(f"{out}/{name}_t{t}.json"))
try:
    ours, amx, torch = load("ours"), load("ours_amx"), load("torch")
except Exception as e:
    sys.exit(f"no table: {e}")
ms = lambda cells, shape: cells.get(shape, {}).get("median_ms", float("nan"))
print(f"{t} threads, median ms (ratio = PyTorch fp32 / ours)")
print("| shape | PyTorch fp32 | PyTorch bf16 | ours fp32 | ours bf16 | ours int8 | ours w8a8 | AMX bf16 | AMX w8a8 |")
for shape, cell in torch["cells"].items():
    base = cell["median_ms"]
    row = [base, ms(torch["cells_bf16"], shape)] + [ms(ours[f"cpu_{p}"], shape) for p in ("fp32", "bf16", "int8", "w8a8")] \
        + [ms(amx[f"cpu_{p}"], shape) for p in ("bf16", "w8a8")]
    print(f"| {shape} | " + " | ".join(f"{v:.1f} ({base / v:.2f}x)" for v in row) + " |")
EOF
done
echo "amx-run: $([ $failed = 0 ] && echo ok || echo FAILED)"
exit $failed
