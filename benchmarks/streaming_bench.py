"""Out-of-core benchmark: KMeans.fit on row blocks of an np.memmap
(``RowBlocks``) far larger than the memory it may use. Writes a float32
memmap (default 20M x 32, 2.5 GB) in pieces, fits it in a fresh process and
reports that process's peak RSS
(``VmHWM``: everything, Python and libraries included) and the time.

    python benchmarks/streaming_bench.py --n 20000000 --d 32 --k 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import emit

_FIT = """
import json, sys, time
import numpy as np
import xpkmeans
mm = np.load(sys.argv[1], mmap_mode="r")
start = time.perf_counter()
km = xpkmeans.KMeans(int(sys.argv[2]), max_iter=int(sys.argv[3]), random_state=0)
km.fit(xpkmeans.RowBlocks(mm))
seconds = time.perf_counter() - start
# VmHWM: this process's own peak RSS (ru_maxrss would include the parent's, kept across exec)
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({
    "peak_rss_MiB": int(peak.split()[1]) / 1024,
    "fit_s": seconds, "n_iter": km.n_iter_, "inertia": km.inertia_,
}))
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "X.npy"
        X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.n, args.d))
        rng = np.random.default_rng(0)
        centers = rng.normal(scale=3.0, size=(args.k, args.d)).astype(np.float32)
        piece = 1_000_000
        for start in range(0, args.n, piece):
            rows = min(piece, args.n - start)
            X[start:start + rows] = centers[rng.integers(args.k, size=rows)] + rng.normal(
                size=(rows, args.d)
            ).astype(np.float32)
        X.flush()
        del X
        env = dict(os.environ, PYTHONPATH=str(repo))
        completed = subprocess.run(
            [sys.executable, "-c", _FIT, str(path), str(args.k), str(args.max_iter)],
            capture_output=True, text=True, check=True, env=env,
        )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update({
        "problem": f"np.memmap {args.n}x{args.d} float32 ({args.n * args.d * 4 / 2**30:.2f} GiB), "
                   f"k={args.k}, init k-means++ (on a sample), max_iter={args.max_iter}",
        "load_average": os.getloadavg(),
    })
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
