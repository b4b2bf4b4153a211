"""The command line, run as users run it: ``python -m xpkmeans ...`` in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpkmeans import KMeans, make_blobs

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COURSE = [
    "01_data.png",
    "02_clusters.png",
    "03_lloyd_steps.png",
    "04_seeds.png",
    "05_too_many_clusters.png",
    "06_choose_k.png",
    "07_silhouette.png",
]


def run_cli(*args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("XPKMEANS_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "xpkmeans", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
    )


def _ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def _field(stdout, name):
    match = re.search(rf"^{name}:\s+(.+)$", stdout, flags=re.MULTILINE)
    assert match, f"no {name!r} line in:\n{stdout}"
    return match.group(1)


def _blobs(n_samples=120, n_features=2, centers=3, seed=0):
    X, _ = make_blobs(n_samples, n_features, centers=centers, random_state=seed)
    return np.asarray(X)


def _four_blobs(n_samples=200, seed=0):
    """Four well separated blobs: every method should find k = 4."""
    corners = [[-8.0, -8.0], [-8.0, 8.0], [8.0, -8.0], [8.0, 8.0]]
    X, _ = make_blobs(n_samples, centers=corners, random_state=seed)
    return np.asarray(X)


# ------------------------------------------------------------------ demo


def test_demo_prints_backend_device_iterations_inertia_time(tmp_path):
    stdout = _ok(run_cli("demo", "--backend", "numpy", "--n-samples", 200, "--seed", 3,
                         cwd=tmp_path))
    X, _ = make_blobs(200, 2, centers=4, cluster_std=1.0, random_state=3)
    model = KMeans(4, random_state=3).fit(X)
    assert _field(stdout, "backend") == "numpy"
    assert _field(stdout, "device") == "cpu"
    assert int(_field(stdout, "iterations")) == model.n_iter_
    assert float(_field(stdout, "inertia")) == pytest.approx(model.inertia_, rel=1e-5)
    assert re.match(r"\d+\.\d ms", _field(stdout, "fit time"))
    assert not list(tmp_path.iterdir())  # no --out, no files


def test_demo_out_writes_the_course(tmp_path):
    out = tmp_path / "course"
    stdout = _ok(run_cli("demo", "--backend", "numpy", "--n-samples", 240, "--out", out,
                         cwd=tmp_path))
    assert sorted(p.name for p in out.iterdir()) == COURSE
    for name in COURSE:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
        assert re.search(rf"^\s+{re.escape(name)}\s+\S", stdout, flags=re.MULTILINE), name
    assert _field(stdout, r"chosen k \(silhouette\)") == "4"


# ------------------------------------------------------------------ fit


def _write(X, tmp_path, fmt):
    if fmt == "npy":
        path = tmp_path / "data.npy"
        np.save(path, X)
    else:
        path = tmp_path / "data.csv"
        header = ",".join(f"f{j}" for j in range(X.shape[1])) if fmt == "csv-header" else ""
        np.savetxt(path, X, delimiter=",", header=header, comments="", fmt="%.17g")
    return path


@pytest.mark.parametrize("fmt", ["csv-header", "csv", "npy"])
def test_fit_writes_the_labels_of_kmeans(fmt, tmp_path):
    X = _blobs(n_samples=150, n_features=3, centers=3, seed=1)
    data = _write(X, tmp_path, fmt)
    stdout = _ok(run_cli("fit", data, "-k", 3, "-o", tmp_path / "labels.txt", "--seed", 5,
                         "--backend", "numpy", "--centers", tmp_path / "centers.csv",
                         cwd=tmp_path))
    model = KMeans(3, random_state=5).fit(X)
    lines = (tmp_path / "labels.txt").read_text().splitlines()
    assert len(lines) == X.shape[0]
    np.testing.assert_array_equal([int(line) for line in lines], model.labels_)
    centers_text = (tmp_path / "centers.csv").read_text().splitlines()
    has_header = fmt == "csv-header"
    assert (centers_text[0] == "f0,f1,f2") == has_header
    centers = np.loadtxt(tmp_path / "centers.csv", delimiter=",", skiprows=int(has_header))
    np.testing.assert_allclose(centers, model.cluster_centers_, rtol=1e-8)
    summary = stdout.splitlines()[0]
    assert f"n_samples={X.shape[0]}" in summary and "k=3" in summary
    assert f"inertia={model.inertia_:.6g}" in summary
    assert f"iterations={model.n_iter_}" in summary and "time=" in summary


def test_fit_several_random_starts_on_torch_match_kmeans_and_plot(tmp_path):
    torch = pytest.importorskip("torch")
    X = _blobs(n_samples=200, centers=6, seed=4)
    data = _write(X, tmp_path, "csv")
    stdout = _ok(run_cli("fit", data, "-k", 6, "-o", tmp_path / "labels.txt", "--init",
                         "random", "--n-init", 4, "--seed", 7, "--backend", "torch", "--plot",
                         tmp_path / "clusters.png", cwd=tmp_path))
    assert "backend=torch (cpu)" in stdout or "backend=torch (cuda" in stdout
    model = KMeans(6, init="random", n_init=4, random_state=7).fit(torch.asarray(X))
    labels = np.loadtxt(tmp_path / "labels.txt", dtype=np.int64)
    np.testing.assert_array_equal(labels, model.labels_.cpu().numpy())
    assert (tmp_path / "clusters.png").read_bytes().startswith(PNG_MAGIC)


# ------------------------------------------------------------------ choose-k


def test_choose_k_prints_a_table_and_finds_four_blobs(tmp_path):
    from xpkmeans.model_selection import select_n_clusters

    X = _four_blobs()
    data = _write(X, tmp_path, "csv-header")
    stdout = _ok(run_cli("choose-k", data, "--range", "2:7", "--backend", "numpy",
                         "--seed", 0, "--plot", tmp_path / "k.png", cwd=tmp_path))
    rows = re.findall(r"^\s*(\d+)\s+(\S+)\s+(\S+)", stdout, flags=re.MULTILINE)
    assert [int(k) for k, _, _ in rows] == [2, 3, 4, 5, 6, 7]
    expected = select_n_clusters(X, range(2, 8), method="silhouette", random_state=0)
    np.testing.assert_allclose([float(s) for _, s, _ in rows], expected.scores, rtol=1e-5)
    np.testing.assert_allclose([float(i) for _, _, i in rows], expected.inertias, rtol=1e-5)
    assert _field(stdout, "best k") == "4"
    assert (tmp_path / "k.png").read_bytes().startswith(PNG_MAGIC)


def test_choose_k_other_method(tmp_path, capsys):
    X = _four_blobs()
    data = _write(X, tmp_path, "npy")
    code, stdout, _ = run_main(["choose-k", data, "--range", "2,3,4,5", "--method",
                                "davies_bouldin", "--backend", "numpy"], capsys)
    assert code == 0
    assert "davies_bouldin (lower is better)" in stdout
    assert _field(stdout, "best k") == "4"


# ------------------------------------------------------------------ errors


BAD_INPUT_NAMES = [
    "missing file", "ragged rows", "non-numeric", "empty file", "blank file", "header only",
    "nan value", "3-d npy", "k > rows", "k = 0", "no output dir", "bad init",
    "reversed range", "garbage range", "range past rows", "bad method", "no command",
]


def _bad_inputs(tmp_path):
    """(name, args, expected words in the message) of each user error."""
    good = _write(_blobs(n_samples=30), tmp_path, "csv")
    files = {
        "ragged.csv": "1,2\n3,4\n5\n",
        "words.csv": "a,b\n1,2\n3,oops\n",
        "empty.csv": "",
        "blank.csv": "\n  \n",
        "header_only.csv": "a,b\n",
        "nan.csv": "1,2\nnan,3\n4,5\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    out = tmp_path / "labels.txt"
    return {
        "missing file": (["fit", tmp_path / "nope.csv", "-k", 2, "-o", out], "no such file"),
        "ragged rows": (["fit", tmp_path / "ragged.csv", "-k", 2, "-o", out], "line 3"),
        "non-numeric": (["fit", tmp_path / "words.csv", "-k", 2, "-o", out],
                        "'oops' is not a number"),
        "empty file": (["fit", tmp_path / "empty.csv", "-k", 2, "-o", out], "empty"),
        "blank file": (["fit", tmp_path / "blank.csv", "-k", 2, "-o", out], "empty"),
        "header only": (["fit", tmp_path / "header_only.csv", "-k", 2, "-o", out], "no data rows"),
        "nan value": (["fit", tmp_path / "nan.csv", "-k", 2, "-o", out], "line 2: NaN"),
        "3-d npy": (["fit", tmp_path / "cube.npy", "-k", 2, "-o", out], "2-D"),
        "k > rows": (["fit", good, "-k", 31, "-o", out], "larger than the number of rows (30)"),
        "k = 0": (["fit", good, "-k", 0, "-o", out], ">= 1"),
        "no output dir": (["fit", good, "-k", 2, "-o", tmp_path / "no" / "l.txt"],
                          "does not exist"),
        "bad init": (["fit", good, "-k", 2, "-o", out, "--init", "kmeans"], "invalid choice"),
        "reversed range": (["choose-k", good, "--range", "5:2"], "--range"),
        "garbage range": (["choose-k", good, "--range", "two:ten"], "--range"),
        "range past rows": (["choose-k", good, "--range", "2:40"],
                            "larger than the number of rows"),
        "bad method": (["choose-k", good, "--method", "gap"], "invalid choice"),
        "no command": ([], "COMMAND"),
    }


def test_every_bad_input_case_is_listed(tmp_path):
    assert sorted(_bad_inputs(tmp_path)) == sorted(BAD_INPUT_NAMES)


def run_main(args, capsys):
    """``main`` in this process: the message logic, without a Python start-up each."""
    from xpkmeans.cli import main

    try:
        code = main([str(arg) for arg in args])
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", BAD_INPUT_NAMES)
def test_bad_input_is_one_line_error(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, words = _bad_inputs(tmp_path)[case]
    code, out, err = run_main(args, capsys)
    assert code not in (0, None)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xpkmeans: error: ")
    assert words in lines[0]
    assert not (tmp_path / "labels.txt").exists()


@pytest.mark.parametrize("case", ["ragged rows", "bad method"])
def test_bad_input_from_the_real_command(case, tmp_path):
    args, words = _bad_inputs(tmp_path)[case]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == (2 if case == "bad method" else 1)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpkmeans: error: ") and words in lines[0]


def test_unavailable_backend_is_one_line_error(tmp_path):
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed here")
    result = run_cli("demo", "--backend", "cupy", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "xpkmeans: error: --backend cupy: CuPy is not installed "
        "(pip install xpkmeans[cuda12] for CUDA 12, xpkmeans[cuda13] for CUDA 13)"
    ]


def test_warning_is_one_line_and_the_fit_still_succeeds(tmp_path, capsys):
    data = tmp_path / "same.csv"
    data.write_text("1,1\n" * 10)
    code, out, err = run_main(["fit", data, "-k", 2, "-o", tmp_path / "l.txt",
                               "--backend", "numpy"], capsys)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpkmeans: warning: Number of distinct clusters")
    assert (tmp_path / "l.txt").read_text().split() == ["0"] * 10


def test_auto_backend_takes_a_gpu_only_when_there_is_one():
    from xpkmeans.cli import select_backend

    backend = select_backend("auto")
    if importlib.util.find_spec("cupy") is None:
        torch = pytest.importorskip("torch")
        if torch.cuda.is_available():
            assert (backend.name, backend.device.type) == ("torch", "cuda")
        else:
            assert (backend.name, backend.device) == ("numpy", "cpu")
    X = backend.asarray(np.ones((3, 2)))
    from array_api_compat import array_namespace

    assert array_namespace(X) is backend.xp


def test_plot_without_matplotlib_fails_before_fitting(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    data = _write(_blobs(n_samples=30), tmp_path, "csv")
    code, _, err = run_main(["fit", data, "-k", 2, "-o", tmp_path / "labels.txt",
                             "--plot", tmp_path / "p.png", "--backend", "numpy"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        "xpkmeans: error: xpkmeans plotting needs matplotlib: pip install xpkmeans[plot]"
    ]
    assert not (tmp_path / "labels.txt").exists()
