#!/usr/bin/env bash
# Every GPU check in one run: the tests on CuPy and torch-CUDA, the roofline,
# then the GPU benchmarks (results land in benchmarks/results/).
# Needs a CUDA device with cupy and/or torch; pytest and scikit-learn installed.
set -uo pipefail
cd "$(dirname "$0")/.."
python -m pytest -q -p no:cacheprovider -k "cupy or cuda" tests/
python -m benchmarks.roofline
python -m benchmarks.run --device gpu --rounds "${ROUNDS:-3}" --out "${OUT:-benchmarks/results}"
