#!/usr/bin/env bash
# The GPU checks in one go (under 5 minutes on one H200): the tests that need CUDA, the
# seed's job end to end against plain `seqlm run --device cuda`, the throughput
# benchmark, the generation benchmark, and at the end one markdown table of the figures
# for docs/performance.md.
#
# Run from the repository root on a CUDA machine where seqlm is installed (or where its
# dependencies are, in which case this installs seqlm itself without touching them):
#
#     SEQLM_DATA_DIR=/path/to/data OUT=results/ bash benchmarks/gpu.sh
#
# Logs and JSON go to $OUT (default: benchmarks/). Each step runs even if an earlier
# one failed; the exit status is that of the first failure.
set -u
OUT=${OUT:-benchmarks}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, remember a failure
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$OUT/$name.log"
    local code=${PIPESTATUS[0]}
    echo "== $name: exit $code"
    if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then status=$code; fi
}

if ! "$PYTHON" -c "import seqlm.plugins.manager; seqlm.plugins.manager.get_plugins().get('cell', 'lstm')" \
        >/dev/null 2>&1; then
    step install "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index \
        -e . -e ./plugins/seqlm-bpe
fi
step gpu "$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
step tests "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_static_step.py \
    tests/test_precision.py tests/test_fast_paths.py tests/test_torch_cells_fast.py \
    tests/test_graph_policy.py
# The seed's job as a user runs it: plain `seqlm run --device cuda` (no other flag: the
# step is recorded as a CUDA graph by default) against the seed's code, 500 epochs.
step end-to-end "$PYTHON" benchmarks/end_to_end.py --device cuda --epochs 500 --pairs 1 \
    --json "$OUT/end-to-end-gpu.json"
# Every cell against the seed's code, seqlm's step recorded (the default on CUDA), with
# TF32 products as cuDNN's kernels use.
step bench "$PYTHON" benchmarks/throughput.py --devices cuda --precision tf32 \
    --repeats 2 --chunk 10 --no-startup --memory-epochs 0 --json "$OUT/results-gpu.json"
step generation "$PYTHON" benchmarks/generation.py --devices cuda --tokens 500 --repeats 3 \
    --json "$OUT/results-generation.json"
echo
echo "== the table for docs/performance.md"
"$PYTHON" benchmarks/gpu_table.py "$OUT" || { [ "$status" -eq 0 ] && status=1; }
exit $status
