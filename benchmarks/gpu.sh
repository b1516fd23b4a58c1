#!/usr/bin/env bash
# The GPU checks in one go: the tests that need CUDA, then the benchmark on the GPU.
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

if ! "$PYTHON" -c "import seqlm.plugins; seqlm.plugins.get_plugins().get('cell', 'lstm')" \
        >/dev/null 2>&1; then
    step install "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index \
        -e . -e ./plugins/seqlm-bpe
fi
step gpu "$PYTHON" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
step tests "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_static_step.py \
    tests/test_precision.py tests/test_fast_paths.py tests/test_torch_cells_fast.py
# seqlm's side replays its step as a CUDA graph, with TF32 products as cuDNN's kernels
# use; then the same without the graph, to show what recording gains.
step bench-graph "$PYTHON" benchmarks/throughput.py --devices cuda --precision tf32 \
    --repeats 3 --chunk 10 --no-startup --memory-epochs 0 --json "$OUT/results-gpu-graph.json"
step bench-eager "$PYTHON" benchmarks/throughput.py --devices cuda --precision tf32 \
    --cells lstm,lstm-scratch --no-cuda-graph --repeats 3 --chunk 10 --no-startup \
    --memory-epochs 0 --json "$OUT/results-gpu-eager.json"
exit $status
