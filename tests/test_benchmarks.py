"""Smoke test: the benchmark command runs end to end on a tiny problem.

Speed is measured in benchmarks/, never asserted here.
"""

import json

import pytest

pytest.importorskip("sklearn")
run = pytest.importorskip("benchmarks.run")


def test_benchmark_runs_on_a_tiny_problem(tmp_path):
    results = run.main(["--quick", "--problems", "tiny", "--figures", "lloyd,fit",
                        "--backends", "sklearn-lloyd,xpkmeans-numpy", "--out", str(tmp_path)])
    written = sorted(p.suffix for p in tmp_path.iterdir())
    assert ".json" in written and ".md" in written
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert saved.keys() == results.keys()
    table = next(tmp_path.glob("*.md")).read_text()
    assert "xpkmeans-numpy" in table and "sklearn-lloyd" in table
    # the default fit of xpkmeans splits into its initialisation and the rest
    ours = next(r for r in results["fit"] if r["library"] == "xpkmeans-numpy")
    assert 0 < ours["init_s"] < ours["times_s"][-1]
    assert ours["init_s"] + ours["after_init_s"] == pytest.approx(ours["times_s"][-1])


def test_benchmark_runs_on_the_sparse_problem(tmp_path):
    pytest.importorskip("scipy.sparse")
    results = run.main(["--quick", "--problems", "sparse", "--figures", "lloyd",
                        "--backends", "sklearn-lloyd,xpkmeans-numpy,faiss", "--out", str(tmp_path)])
    rows = {row["library"]: row for row in results["lloyd"]}
    assert set(rows) <= {"sklearn-lloyd", "xpkmeans-numpy"}  # faiss takes no sparse data
    assert rows["xpkmeans-numpy"]["error"] is None and rows["xpkmeans-numpy"]["n_iter"] == 3
    # the same iterations from the same init: the same centres, to rounding
    assert abs(rows["xpkmeans-numpy"]["inertia"] / rows["sklearn-lloyd"]["inertia"] - 1) < 1e-5


def test_kernel_mix_counts_the_centre_loop_of_each_kernel(tmp_path):
    """The static count of the CUDA kernels runs without a GPU (compiled for
    sm_90; a subprocess, since this one interprets Triton)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.kernel_mix", "--out", str(tmp_path),
                           "--rows", "5000"], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and ("ptxas" in done.stderr or "backend" in done.stderr.lower()):
        pytest.skip(f"triton cannot compile for sm_90 here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()
            if line.startswith("| ") and "xpkmeans" in line]
    assert len(rows) == 6  # two problems, three precisions
    for problem, kernel, per_score, whole, tiles, shared, spills, top in rows:
        assert 0.05 < float(per_score) <= float(whole) < 20, (problem, kernel, per_score, whole)
        assert int(spills) == 0
    assert (tmp_path / "kernel-mix-sm90.md").read_text().count("xpkmeans") == 6
    shares = [line.split("|")[2:4] for line in done.stdout.splitlines()
              if line.startswith(("| large |", "| huge |")) and "xpkmeans" not in line
              and "flash" not in line]
    assert len(shares) == 2
    for paired, redone in shares:  # a share of the rows, in percent
        assert 0 <= float(paired.strip(" %")) <= 100 and 0 <= float(redone.strip(" %")) <= 100
