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
    assert len(rows) == 8  # two problems, three precisions and tf32-check measuring x's rounding
    for problem, kernel, per_score, whole, tiles, shared, registers, programs, spills, top in rows:
        assert 0.05 < float(per_score) <= float(whole) < 20, (problem, kernel, per_score, whole)
        assert int(spills) == 0
        assert 16 <= int(registers) <= 255 and 1 <= int(programs) <= 16
    assert (tmp_path / "kernel-mix-sm90.md").read_text().count("xpkmeans") == 8
    shares = [line.split("|")[2:5] for line in done.stdout.splitlines()
              if line.startswith(("| large |", "| huge |")) and "xpkmeans" not in line
              and "flash" not in line]
    assert [mode.strip() for mode, _, _ in shares] == ["bounded", "measured"] * 2
    percent = [(float(paired.strip(" %")), float(redone.strip(" %"))) for _, paired, redone in shares]
    for paired, redone in percent:  # a share of the rows
        assert 0 <= paired <= 100 and 0 <= redone <= 100
    for bounded, measured in (percent[:2], percent[2:]):  # measured: never a looser bound
        assert measured[0] + measured[1] <= bounded[0] + bounded[1]
        assert measured[1] <= bounded[1]
    kpp = [line.split("|")[1:-1] for line in done.stdout.splitlines() if "candidates |" in line]
    assert len(kpp) == 1
    _, per_row, _, _, registers, programs, spills = kpp[0]
    assert 10 < float(per_row) < 1000 and int(spills) == 0 and int(programs) >= 1


def test_programs_per_multiprocessor_are_held_by_registers_shared_memory_or_warps():
    from benchmarks.kernel_mix import programs_per_multiprocessor

    assert programs_per_multiprocessor(255, 32 * 1024, 4) == 2  # registers: 4 x 32 x 256 each
    assert programs_per_multiprocessor(64, 96 * 1024, 4) == 2  # shared memory
    assert programs_per_multiprocessor(32, 0, 8) == 8  # warps: 64 a multiprocessor


def test_gpu_summary_judges_each_target_from_the_records(tmp_path):
    """The GPU check's verdicts (its parts need a GPU; its judge does not)."""
    gpu_targets = pytest.importorskip("benchmarks.gpu_targets")
    records = gpu_targets.Records(tmp_path)
    records.add("card", card="Test card", part="lloyd")
    for problem, ours, flash in (("large", 3.0, 2.9), ("huge", 10.0, 11.0)):
        records.add("lloyd", problem=problem, library="xpkmeans-torch-cuda", per_iteration_ms=ours)
        records.add("lloyd", problem=problem, library="flash-kmeans", per_iteration_ms=flash)
    records.add("cold", library="xpkmeans-cupy", process="first process", cold_s=0.8, warm_s=0.02,
                shape="s", imports_s=3.0)
    records.add("cold", library="xpkmeans-cupy", process="third process, profiled",
                profiled_s=2.0, where=["1.000 s (0.1 own) cupy/compiler.py:compile"])
    records.add("stream", source="NumPy", shape="8M×32×64", copy_ms=100.0, per_iteration_ms=120.0)
    records.add("stream", source="pinned tensor", shape="8M×32×64", copy_ms=20.0,
                per_iteration_ms=40.0)
    records.add("kernel", problem="large", precision="tf32-check", fused_sums=True, ms=3.5)
    records.add("tile", problem="large", precision="tf32-check", override={"BLOCK_K": 64},
                ms=3.2)
    records.add("kpp_tiles", override={}, ms_per_centre=1.5, pass_ms=1.0)
    records.add("kpp_tiles", override={"BLOCK_N": 64}, ms_per_centre=1.7, pass_ms=1.0)
    records.add("init", what="default fit 8M×128×1024", s=2.0, n_iter=20, init_s=1.2,
                init_in_fit_s=1.3)
    records.add("init", what="k-means|| fit 8M×128×1024", s=0.3, n_iter=20, init_in_fit_s=0.1)
    log = tmp_path / "gpu-tests.log"
    log.write_text("===== 3 passed, 1 skipped in 2.0s =====\n")
    lines = gpu_targets.summary(records, [log]).splitlines()

    def verdict(target_start):
        return [line.split(" | ")[1] for line in lines if line.startswith("| " + target_start)]

    assert "Test card" in lines[0]
    assert verdict("GPU test suite green") == ["MET"]
    assert verdict("per iteration ≤ 1.0× flash-kmeans, 10M") == ["NOT MET"]
    assert verdict("per iteration ≤ 1.0× flash-kmeans, 8M") == ["MET"]
    assert verdict("CuPy first call") == ["MET"]  # the profiled process is not judged
    assert verdict("GPU streaming from a NumPy") == ["MET"]
    assert verdict("GPU streaming from a pinned") == ["NOT MET"]
    assert verdict("default fit 8M") == ["NOT MET"]
    assert verdict("k-means|| fit 8M") == ["MET"]
    fits = [line for line in lines if line.startswith(("| default fit", "| k-means|| fit"))]
    assert "k-means++ 1.200 s alone, initialisation 1.300 s in the fit" in fits[0]
    assert "20 iterations, initialisation 0.100 s in the fit" in fits[1]
    fastest = {line.split(" | ")[0][2:]: line.split(" | ")[1:3] for line in lines
               if " pass (" in line}
    assert fastest["large Lloyd pass (tf32-check)"] == ["{'BLOCK_K': 64}", "3.20"]
    assert fastest["huge k-means++ pass (ms a centre)"] == ["current tiles", "1.50"]


def test_gpu_summary_says_which_targets_have_no_record(tmp_path):
    """A part that crashed or ran out of time leaves its targets NOT MEASURED,
    not missing; an eager comparison is not judged; a source that failed says why."""
    gpu_targets = pytest.importorskip("benchmarks.gpu_targets")
    records = gpu_targets.Records(tmp_path)
    records.add("card", card="Test card", part="init")
    records.add("init", what="k-means++ 20k×128×1000", s=0.05)
    records.add("init", what=f"k-means++ 20k×128×1000 {gpu_targets.EAGER}", s=0.4)
    records.add("stream", source="NumPy", error="RuntimeError: boom")
    records.add("kpp_tiles", override={"BLOCK_N": 64}, ms_per_centre=1.7, pass_ms=1.0)
    records.add("kernel", problem="huge", precision=gpu_targets._default_precision(),
                fused_sums=True, ms=20.0)
    lines = gpu_targets.summary(records, []).splitlines()
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines
            if line.startswith("| ")}
    assert rows["k-means++ 20k×128×1000 ≤ 0.09 s"][0] == "MET"
    eager = [name for name in rows if gpu_targets.EAGER in name]
    assert eager and all(rows[name][0] == "–" for name in eager)
    streamed = rows["GPU streaming from a NumPy: per iteration ≤ 1.3× the copy of X"]
    assert streamed[0] == "NOT MEASURED" and "boom" in streamed[1]
    for missing in ("GPU streaming from a pinned tensor", "default fit 8M×128×1024 ≤",
                    "k-means|| fit 8M×128×1024 ≤", "peak extra GPU memory ≤ 0.5× X"):
        assert rows[missing][0] == "NOT MEASURED", missing
    # no current k-means++ timing: no Lloyd pass time in its place
    assert rows["huge k-means++ pass (ms a centre)"][2].strip(" |") == "–"


def test_gpu_summary_never_drops_a_verdict_nor_reads_a_traceback_as_pytest_totals(
        tmp_path, monkeypatch):
    """A test part cut by its time limit has no pytest closing line (its last
    line with " in " is a traceback's); CuPy's Lloyd run that failed, a
    problem whose exactness part was cut, and a missing deterministic run
    read NOT MEASURED, not a missing row."""
    gpu_targets = pytest.importorskip("benchmarks.gpu_targets")
    monkeypatch.setattr(gpu_targets, "QUICK", False)
    records = gpu_targets.Records(tmp_path)
    records.add("card", card="Test card", part="lloyd")
    for problem in ("large", "huge"):
        records.add("lloyd", problem=problem, library="xpkmeans-torch-cuda", per_iteration_ms=3.0)
        records.add("lloyd", problem=problem, library="xpkmeans-cupy",
                    error="RuntimeError: CUDA error")
    records.add("exactness", problem="large", rows=1, way="portable float32 (torch matmul, "
                "TF32 off)", mislabelled=0)
    records.add("determinism", problem="large", deterministic=True, bitwise_equal=True, ms=7.0)
    cut = tmp_path / "gpu-dask-tests.log"
    cut.write_text("tests/test_dask.py::test_one_gpu_cluster_with_cupy_chunks \n"
                   "Timeout (0:00:40)!\n  File \"/x/threading.py\", line 320 in wait\n")
    done = tmp_path / "gpu-tests.log"
    done.write_text("===== 3 passed, 1 skipped in 2.0s =====\n")
    lines = gpu_targets.summary(records, [cut, done]).splitlines()
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines
            if line.startswith("| ")}
    green = rows["GPU test suite green"]
    assert green[0] == "NOT MET" and "no pytest summary line" in green[1]
    for shape in ("10M×32×256", "8M×128×1024"):
        cupy = rows[f"CuPy ≤ 1.2× torch-CUDA, {shape}"]
        assert cupy[0] == "NOT MEASURED" and "CUDA error" in cupy[1]
        assert rows[f"mislabelled ≤ portable float32's, {shape} (1M rows)"][0] == "NOT MEASURED"
    assert rows["deterministic sums bitwise equal run to run, large"][0] == "MET"
    assert rows["deterministic sums bitwise equal run to run, huge"][0] == "NOT MEASURED"
