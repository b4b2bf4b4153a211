#!/usr/bin/env bash
# Every GPU check in one call (about 6 minutes on an H100/H200; the hard
# limits of the parts add up to 7.4 minutes): the GPU
# tests, then each part of benchmarks/gpu_targets.py in its own process under
# a hard time limit (a part that fails or runs over does not stop the
# others), then every target of issues 8, 9 and 10 printed as MET / NOT MET.
# Results: $OUT if set, else benchmarks/results/ (gpu-records.jsonl, the
# logs of each part, gpu-summary.md). Installs nothing.
# `bash benchmarks/gpu_check.sh --quick` (or QUICK=1): only the fused pass,
# Lloyd against flash-kmeans, exactness and the GPU tests of Triton, Lloyd and
# KMeans (about 2.5 min).
set -uo pipefail
cd "$(dirname "$0")/.."
DIR="${OUT:-benchmarks/results}"
mkdir -p "$DIR"
# an earlier run's logs would be judged with this one's (the summary reads gpu-*tests.log)
rm -f "$DIR/gpu-records.jsonl" "$DIR"/gpu-*.log "$DIR"/part-*.out
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

part() {  # part NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "=== $name (limit ${limit} s) $(date -u +%H:%M:%S)"
    timeout -k 5 "$limit" "$@" > "$DIR/gpu-$name.log" 2>&1
    local rc=$?
    tail -n 40 "$DIR/gpu-$name.log"
    echo "=== $name: exit $rc$([ $rc -eq 124 ] && echo ' (TIME LIMIT)') in $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" || true
python -c "import cupy; print('cupy', cupy.__version__)" || true
python -c "import flash_kmeans; print('flash_kmeans', getattr(flash_kmeans, '__version__', '?'))" || true

if [ "${1:-}" = "--quick" ] || [ "${QUICK:-0}" = "1" ]; then
    # about 2.5 minutes: the fused pass, Lloyd against flash-kmeans, exactness, Triton's tests
    export QUICK=1
    part kernels 30 python -m benchmarks.gpu_targets kernels --out "$DIR"
    part lloyd 45 python -m benchmarks.gpu_targets lloyd --out "$DIR"
    part exactness 20 python -m benchmarks.gpu_targets exactness --out "$DIR"
    part tests 60 python -m pytest -q -p no:cacheprovider --durations=5 \
        -k "(cupy or cuda or triton) and not compiles_for_sm90" tests/test_triton.py \
        tests/test_lloyd.py tests/test_kmeans.py
else
    part kernels 30 python -m benchmarks.gpu_targets kernels --out "$DIR"
    part lloyd 70 python -m benchmarks.gpu_targets lloyd --out "$DIR"
    part exactness 15 python -m benchmarks.gpu_targets exactness --out "$DIR"
    # The three test parts at once: none is timed, and on a fresh machine
    # they spend most of their time compiling kernels on the CPU (CuPy's
    # NVRTC, Triton), which 16 cores share. Dask's tests apart, so that a hung
    # cluster costs only its own part; a test still running after 40 s dumps
    # its traceback to the log. The sm_90 compile test runs in CI (no GPU needed).
    part triton-tests 120 python -m pytest -v --tb=short -p no:cacheprovider --durations=5 \
        -o faulthandler_timeout=40 -k "not compiles_for_sm90" tests/test_triton.py \
        > "$DIR/part-triton-tests.out" 2>&1 &
    part tests 120 python -m pytest -v --tb=short -p no:cacheprovider --durations=15 \
        -o faulthandler_timeout=40 -k "(cupy or cuda) and not dask-cupy" \
        --ignore=tests/test_triton.py --ignore=tests/test_dask.py tests/ \
        > "$DIR/part-tests.out" 2>&1 &
    part dask-tests 150 python -m pytest -v --tb=short -p no:cacheprovider --durations=5 \
        -o faulthandler_timeout=40 -k "(cupy or cuda) and (test_dask or dask-cupy)" \
        tests/test_dask.py tests/test_minibatch.py > "$DIR/part-dask-tests.out" 2>&1 &
    wait
    cat "$DIR"/part-triton-tests.out "$DIR"/part-tests.out "$DIR"/part-dask-tests.out
    part cold 40 python -m benchmarks.gpu_targets cold --out "$DIR"
    part memory 10 python -m benchmarks.gpu_targets memory --out "$DIR"
    part init 75 python -m benchmarks.gpu_targets init --out "$DIR"
    part stream 40 python -m benchmarks.gpu_targets stream --out "$DIR"
    part tiles 15 python -m benchmarks.gpu_targets tiles --out "$DIR"
fi
python -m benchmarks.gpu_targets summary --out "$DIR" --tests-log "$DIR"/gpu-*tests.log
