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
    start, end = re.search(r"inertia (\S+) at the start, (\S+) after \d+ iterations",
                           stdout).groups()
    assert float(start) > float(end)  # the poor start's own inertia, before any step


def test_demo_out_that_fails_leaves_the_directory_as_it_was(tmp_path, capsys):
    out = tmp_path / "course"
    (out / COURSE[4]).mkdir(parents=True)  # the fifth figure cannot be written
    (out / "notes.txt").write_text("mine")
    code, _, err = run_main(["demo", "--backend", "numpy", "--n-samples", 60, "--out", out],
                            capsys)
    assert code == 1 and f"--out {out}: {COURSE[4]} is a directory" in err
    assert sorted(p.name for p in out.iterdir()) == sorted([COURSE[4], "notes.txt"])
    (tmp_path / "afile").write_text("x")
    code, out_text, err = run_main(["demo", "--out", tmp_path / "afile" / "sub"], capsys)
    assert code == 1 and "is not a directory" in err and "--out" in err
    assert out_text == ""  # refused before the demo ran


@pytest.mark.parametrize("failure", ["error", "interrupt"])
def test_demo_out_that_fails_before_the_course_leaves_no_staging_directory(
        failure, tmp_path, capsys, monkeypatch):
    """A failure (or ^C) between the staging directory's creation and the course,
    e.g. an unavailable backend, removes it too (it had stayed as .xpkmeans-*)."""
    from xpkmeans import cli

    def unavailable(name):
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise cli.CLIError(f"--backend {name}: CuPy is not installed")

    monkeypatch.setattr(cli, "select_backend", unavailable)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["demo", "--backend", "cupy", "--out", "course"], capsys)
    assert code == (130 if failure == "interrupt" else 1), err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no course, no .xpkmeans-*
    (tmp_path / "course").mkdir()
    code, _, err = run_main(["demo", "--backend", "cupy", "--out", "course"], capsys)
    assert code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course"]
    assert list((tmp_path / "course").iterdir()) == []


def test_demo_n_samples_minimum_is_said_at_once(tmp_path, capsys):
    code, _, err = run_main(["demo", "--n-samples", 0], capsys)
    assert code == 2 and "expected an integer >= 20, got 0" in err


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
    "output is the input", "two outputs on one path", "NA on the first row", "piped input",
    "plot without a file type", "centres delimiter in numbers",
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
        "na_first.csv": "NA,1\n2,3\n4,5\n",  # a missing value, not a header
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    pipe = tmp_path / "pipe.csv"
    if not pipe.exists():
        os.mkfifo(pipe)  # read twice, a pipe loses rows: refused
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
        "output is the input": (["fit", good, "-k", 2, "-o", good],
                                "the same file as the input"),
        "two outputs on one path": (["fit", good, "-k", 2, "-o", out, "--centers", out],
                                    "--centers " + str(out) + ": the same file as -o"),
        "NA on the first row": (["fit", tmp_path / "na_first.csv", "-k", 2, "-o", out],
                                "line 1, column 1: 'NA' is not a number"),
        "piped input": (["fit", pipe, "-k", 2, "-o", out], "not a regular file"),
        "plot without a file type": (["fit", good, "-k", 2, "-o", out, "--plot",
                                      tmp_path / "clusters"], "name a file ending in one of"),
        "centres delimiter in numbers": (["fit", good, "-k", 2, "-o", out, "--centers",
                                          tmp_path / "c.csv", "--centers-delimiter", "."],
                                         "part of numbers"),
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


@pytest.fixture(params=["loadtxt", "pandas"])
def csv_parser(request, monkeypatch):
    """CSV files parsed by NumPy's loadtxt, then by pandas' C reader (large files)."""
    from xpkmeans import cli

    if request.param == "pandas":
        pytest.importorskip("pandas")
        monkeypatch.setattr(cli, "_PANDAS_MIN_BYTES", 0)
    else:
        monkeypatch.setattr(cli, "_PANDAS_MIN_BYTES", float("inf"))
    return request.param


@pytest.mark.parametrize("case", BAD_INPUT_NAMES)
def test_bad_input_is_one_line_error(case, tmp_path, capsys, monkeypatch, csv_parser):
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


# ------------------------------------------------------------------ what users ran into (issue 11)


def _iris_like(tmp_path, delimiter=",", name="iris.csv"):
    """Four numeric columns and a species name last, with a header."""
    X = _blobs(n_samples=60, n_features=4, centers=3, seed=2)
    species = np.array(["setosa", "versicolor", "virginica"])[np.arange(60) % 3]
    lines = [delimiter.join(["sl", "sw", "pl", "pw", "species"])]
    lines += [delimiter.join([*(f"{v:.17g}" for v in row), s]) for row, s in zip(X, species)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path, X


@pytest.mark.parametrize("selection", [["--drop", "species"], ["--drop", "5"],
                                       ["--columns", "sl,sw,pl,pw"], ["--columns", "1,2,3,4"]])
def test_columns_and_drop_choose_columns_by_name_or_number(selection, tmp_path, capsys):
    data, X = _iris_like(tmp_path)
    code, out, err = run_main(["fit", data, "-k", 3, "-o", tmp_path / "l.txt", "--backend",
                               "numpy", "--centers", tmp_path / "c.csv", *selection], capsys)
    assert code == 0, err
    labels = np.loadtxt(tmp_path / "l.txt", dtype=np.int64)
    np.testing.assert_array_equal(labels, KMeans(3, random_state=0).fit(X).labels_)
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "sl,sw,pl,pw"


def test_columns_keep_the_order_asked_for(tmp_path, capsys, csv_parser):
    """pandas' usecols reads columns in the file's order: the reader puts
    them back in the order of --columns, as loadtxt does."""
    data, X = _iris_like(tmp_path)
    code, _, err = run_main(["fit", data, "-k", 3, "-o", tmp_path / "l.txt", "--backend", "numpy",
                             "--columns", "pw,sl", "--centers", tmp_path / "c.csv"], capsys)
    assert code == 0, err
    header, *rows = (tmp_path / "c.csv").read_text().splitlines()
    assert header == "pw,sl"
    centers = np.loadtxt(rows, delimiter=",")
    expected = KMeans(3, random_state=0).fit(X[:, [3, 0]]).cluster_centers_
    np.testing.assert_allclose(centers, expected, rtol=1e-9)


def test_outputs_write_through_links_keep_permissions_and_spare_the_input(tmp_path, capsys):
    good = _write(_blobs(n_samples=30), tmp_path, "csv")
    before = good.read_text()
    assert run_main(["fit", good, "-k", 2, "-o", good], capsys)[0] == 1
    assert good.read_text() == before
    target = tmp_path / "target.txt"
    target.write_text("old")
    target.chmod(0o600)
    (tmp_path / "link.txt").symlink_to(target)
    assert run_main(["fit", good, "-k", 2, "-o", tmp_path / "link.txt"], capsys)[0] == 0
    assert (tmp_path / "link.txt").is_symlink()
    assert len(target.read_text().split()) == 30
    assert target.stat().st_mode & 0o777 == 0o600


def test_centres_header_is_quoted_and_reads_back(tmp_path, capsys):
    data = tmp_path / "quoted.csv"
    data.write_text('"length, cm","width"\n1,2\n1.1,2.1\n5,6\n5.1,6.2\n')
    centers = tmp_path / "c.csv"
    assert run_main(["fit", data, "-k", 2, "-o", tmp_path / "l.txt", "--centers", centers],
                    capsys)[0] == 0
    assert centers.read_text().splitlines()[0] == '"length, cm",width'
    code, out, err = run_main(["fit", centers, "-k", 1, "-o", tmp_path / "l2.txt"], capsys)
    assert code == 0, err


def test_unknown_column_names_the_choices(tmp_path, capsys):
    data, _ = _iris_like(tmp_path)
    code, _, err = run_main(["fit", data, "-k", 3, "-o", tmp_path / "l.txt", "--drop", "kind"],
                            capsys)
    assert code == 1
    assert err.strip() == ("xpkmeans: error: --drop: no column 'kind'; use names sl, sw, pl, "
                           "pw, species or numbers 1..5")


@pytest.mark.parametrize("delimiter_option", [[], ["--delimiter", "\\t"], ["--delimiter", "tab"]])
def test_tab_separated_files_are_detected_or_named(delimiter_option, tmp_path, capsys):
    data, X = _iris_like(tmp_path, delimiter="\t", name="iris.tsv")
    code, _, err = run_main(["fit", data, "-k", 3, "-o", tmp_path / "l.txt", "--drop",
                             "species", "--backend", "numpy", *delimiter_option], capsys)
    assert code == 0, err
    labels = np.loadtxt(tmp_path / "l.txt", dtype=np.int64)
    np.testing.assert_array_equal(labels, KMeans(3, random_state=0).fit(X).labels_)


def test_wrong_delimiter_points_to_the_option(tmp_path, capsys):
    data = tmp_path / "semi.csv"
    data.write_text("1;2\n3;4\n5;6\n")
    code, _, err = run_main(["fit", data, "-k", 2, "-o", tmp_path / "l.txt"], capsys)
    assert code == 1
    assert "line 2, column 1: '3;4' is not a number; set the delimiter with --delimiter" in err


def test_centres_file_is_comma_separated_unless_asked(tmp_path, capsys):
    data, X = _iris_like(tmp_path, delimiter="\t", name="iris.tsv")
    args = ["fit", data, "-k", 3, "-o", tmp_path / "l.txt", "--drop", "species",
            "--backend", "numpy", "--centers", tmp_path / "c.csv"]
    assert run_main(args, capsys)[0] == 0
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "sl,sw,pl,pw"
    assert run_main([*args, "--centers-delimiter", "\\t"], capsys)[0] == 0
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "sl\tsw\tpl\tpw"


def test_standardize_clusters_scaled_columns_and_writes_centres_in_input_units(tmp_path, capsys):
    X = _blobs(n_samples=90, n_features=2, centers=3, seed=3)
    X[:, 1] *= 1000.0  # one feature would carry all the variance
    data = _write(X, tmp_path, "csv")
    code, out, err = run_main(["fit", data, "-k", 3, "-o", tmp_path / "l.txt", "--standardize",
                               "--backend", "numpy", "--centers", tmp_path / "c.csv"], capsys)
    assert code == 0, err
    scaled = (X - X.mean(axis=0)) / X.std(axis=0)
    model = KMeans(3, random_state=0).fit(scaled)
    labels = np.loadtxt(tmp_path / "l.txt", dtype=np.int64)
    np.testing.assert_array_equal(labels, model.labels_)
    centers = np.loadtxt(tmp_path / "c.csv", delimiter=",")
    expected = model.cluster_centers_ * X.std(axis=0) + X.mean(axis=0)
    np.testing.assert_allclose(centers, expected, rtol=1e-8)


def test_range_errors_speak_of_the_option(tmp_path, capsys):
    data = _write(_blobs(n_samples=30), tmp_path, "csv")
    code, _, err = run_main(["choose-k", data, "--range", "1:5"], capsys)
    assert code == 1
    assert err.strip() == ("xpkmeans: error: --range: --method silhouette compares clusters, "
                           "so k starts at 2; got k = 1 (try --range 2:5)")
    assert "n_clusters[" not in err


def test_choose_k_option_errors_speak_of_the_options(tmp_path, capsys):
    """Limits of select_n_clusters reached from the command line name the options,
    not the API's parameters (silhouette_sample_size, n_clusters)."""
    data = _write(_blobs(n_samples=30), tmp_path, "csv")
    cases = {
        ("--method", "elbow", "--range", "2,3"):
            "--range: --method elbow looks for a knee in the inertia curve, so it needs "
            "at least 3 values of k; got 2",
        ("--method", "elbow", "--range", "2:5", "--sample-size", 10):
            "--sample-size applies only to --method silhouette, not --method elbow",
        ("--range", "2:5", "--sample-size", 4):
            "--sample-size 4: a silhouette needs more rows than clusters, so it must "
            "exceed the largest k of --range (5)",
    }
    for options, message in cases.items():
        code, _, err = run_main(["choose-k", data, *options], capsys)
        assert code == 1
        assert err.strip() == "xpkmeans: error: " + message
    code, out, err = run_main(["choose-k", data, "--range", "2:5", "--sample-size", 6, "-q",
                               "--backend", "numpy"], capsys)
    assert code == 0, err
    assert out.strip() in {"2", "3", "4", "5"}


def test_standardized_fit_plot_says_its_inertia_is_of_scaled_columns(tmp_path, capsys,
                                                                     monkeypatch):
    from xpkmeans import plotting

    titles = []
    real_plot_clusters = plotting.plot_clusters

    def recording_plot_clusters(*args, **kwargs):
        titles.append(kwargs.get("title"))
        return real_plot_clusters(*args, **kwargs)

    monkeypatch.setattr(plotting, "plot_clusters", recording_plot_clusters)
    X = _blobs(n_samples=60, n_features=2, centers=3, seed=3)
    data = _write(X, tmp_path, "csv")
    base = ["fit", data, "-k", 3, "-o", tmp_path / "l.txt", "--backend", "numpy", "--plot",
            tmp_path / "p.png"]
    assert run_main(base, capsys)[0] == 0
    assert run_main([*base, "--standardize"], capsys)[0] == 0
    assert "standardized" not in titles[0]
    assert titles[1].endswith(" (of the standardized columns)")


def test_one_row_plot_and_failed_commands_leave_no_partial_outputs(tmp_path, capsys,
                                                                   monkeypatch):
    data = tmp_path / "one_row.csv"
    data.write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n")
    outputs = [tmp_path / "labels.txt", tmp_path / "centers.csv", tmp_path / "out.png"]
    args = ["fit", data, "-k", 1, "-o", outputs[0], "--centers", outputs[1], "--plot",
            outputs[2], "--backend", "numpy"]
    code, _, err = run_main(args, capsys)
    assert code == 0, err
    assert all(path.exists() for path in outputs)
    for path in outputs:
        path.unlink()

    from xpkmeans import plotting

    def broken_plot(*args, **kwargs):
        raise IndexError("index 1 is out of bounds")

    monkeypatch.setattr(plotting, "plot_clusters", broken_plot)
    code, _, err = run_main(args, capsys)
    assert code == 1 and "IndexError" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one_row.csv"]  # no temporaries


def test_verbose_prints_a_line_per_iteration_and_quiet_prints_nothing(tmp_path, capsys):
    X = _blobs(n_samples=300, centers=5, seed=6)
    data = _write(X, tmp_path, "npy")
    base = ["fit", data, "-k", 5, "-o", tmp_path / "l.txt", "--backend", "numpy", "--seed", 1]
    code, out, err = run_main([*base, "--verbose"], capsys)
    assert code == 0
    n_iter = KMeans(5, random_state=1).fit(X).n_iter_
    lines = err.strip().splitlines()
    assert len(lines) == n_iter
    assert re.fullmatch(r"iteration 1/300: inertia [\d.e+]+, centre shift [\d.e+-]+ "
                        r"\(tol [\d.e+-]+\), [\d.]+ s", lines[0])
    code, out, err = run_main([*base, "--quiet"], capsys)
    assert code == 0 and out == "" and err == ""
    assert (tmp_path / "l.txt").exists()


def test_choose_k_verbose_shows_each_k_and_quiet_prints_only_the_best(tmp_path, capsys):
    X = _four_blobs()
    data = _write(X, tmp_path, "npy")
    base = ["choose-k", data, "--range", "5,2,4", "--backend", "numpy", "--seed", 0]
    code, out, err = run_main([*base, "--verbose"], capsys)
    assert code == 0 and _field(out, "best k") == "4"
    per_k = [line for line in err.splitlines() if line.startswith("k=")]
    assert [line.split(":")[0] for line in per_k] == ["k=2 (1/3)", "k=4 (2/3)", "k=5 (3/3)"]
    assert re.fullmatch(r"k=2 \(1/3\): silhouette [\d.e+-]+, inertia [\d.e+]+, \d+ "
                        r"iterations, [\d.]+ s", per_k[0])
    assert any(line.startswith("iteration 1/300: inertia") for line in err.splitlines())
    code, out, err = run_main([*base, "--quiet"], capsys)
    assert code == 0 and out == "4\n" and err == ""
    code, out, err = run_main(base, capsys)  # a short run: the table, no progress
    assert code == 0 and "best k: 4" in out and err == ""


def test_select_n_clusters_reports_each_candidate():
    from xpkmeans.model_selection import select_n_clusters

    X = _four_blobs()
    seen = []
    result = select_n_clusters(X, [3, 2], method="calinski_harabasz",
                               random_state=0, progress=lambda *a: seen.append(a))
    assert [k for k, _, _ in seen] == [2, 3]
    assert [score for _, score, _ in seen] == list(result.scores)
    assert [model for _, _, model in seen] == list(result.models)
    with pytest.raises(TypeError, match="`progress` must be None or a callable"):
        select_n_clusters(X, [2, 3], progress=1)


def test_iteration_limit_is_said_in_the_option_words(tmp_path, capsys):
    X = _blobs(n_samples=300, centers=6, seed=6)
    data = _write(X, tmp_path, "npy")
    code, _, err = run_main(["fit", data, "-k", 6, "-o", tmp_path / "l.txt", "--init", "random",
                             "--max-iter", 1, "--backend", "numpy"], capsys)
    assert code == 0
    assert err.strip().splitlines() == [
        "xpkmeans: warning: the fit stopped at --max-iter 1 iterations before it converged; "
        "the labels are usable, but --max-iter 2 (or more) would let it finish"
    ]


def test_progress_line_waits_then_rewrites_itself_on_a_terminal(monkeypatch):
    import io
    import sys

    from xpkmeans import FitProgress
    from xpkmeans.cli import ProgressLine

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # the line without tqdm, installed or not

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    inertias = []

    def step(iteration, elapsed, last=False):
        return FitProgress(start=0, n_init=1, iteration=iteration, max_iter=300,
                           center_shift=0.5, tol=0.01, converged=last, last=last,
                           elapsed=elapsed, _objective=lambda: inertias.append(1) or 42.0)

    terminal = Terminal()
    line = ProgressLine(stream=terminal, delay=2.0, interval=1.0)
    line(step(1, 0.5))  # a short fit shows nothing
    assert terminal.getvalue() == ""
    line(step(2, 2.5))
    line(step(3, 2.7))  # within the interval: not shown
    line(step(4, 3.6, last=True))
    line.close()
    shown = terminal.getvalue()
    assert shown.count("\r") == 2 and shown.endswith("\n")
    assert "iteration 2/300: inertia 42, centre shift 0.5 (tol 0.01), 2.5 s" in shown
    assert "iteration 3/" not in shown and "iteration 4/300" in shown
    assert len(inertias) <= 2


def test_progress_line_starts_afresh_for_each_fit():
    import io

    from xpkmeans import FitProgress
    from xpkmeans.cli import ProgressLine

    def step(iteration, elapsed):
        return FitProgress(start=0, n_init=1, iteration=iteration, max_iter=300,
                           center_shift=0.5, tol=0.01, converged=False, last=False,
                           elapsed=elapsed, _objective=lambda: 42.0)

    stream = io.StringIO()
    line = ProgressLine(stream=stream, delay=2.0, interval=1.0)
    line(step(1, 0.1))
    line(step(9, 9.0))  # a long first fit
    line(step(1, 0.1))  # the next fit (the next k of choose-k)
    line(step(5, 2.5))
    assert stream.getvalue().splitlines()[-1].startswith("iteration 5/300: inertia 42")


def test_closed_pipe_exits_quietly(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        f"'{sys.executable}' -m xpkmeans demo --backend numpy --n-samples 200 | head -n 1",
        shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.stdout.startswith("backend:")
    assert result.stderr == ""


def test_version_imports_no_numpy_and_fit_no_sklearn_or_torch(tmp_path):
    code = (
        "import sys; from xpkmeans.cli import main; "
        "main(sys.argv[1:]); "
        "print(sorted(m for m in ('numpy', 'sklearn', 'torch', 'matplotlib') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    version = subprocess.run([sys.executable, "-c", code.replace("main(sys.argv[1:]); ", ""),
                              "--version"], env=env, capture_output=True, text=True)
    assert version.stdout.strip() == "[]", version.stderr
    data = _write(_blobs(n_samples=50), tmp_path, "csv")
    fit = subprocess.run([sys.executable, "-c", code, "fit", str(data), "-k", "2", "-o",
                          str(tmp_path / "l.txt"), "--backend", "numpy"],
                         env=env, capture_output=True, text=True)
    assert fit.stdout.strip().splitlines()[-1] == "['numpy']", fit.stderr


def test_csv_reader_peak_memory_is_about_the_array(tmp_path, csv_parser):
    """Reading streams the file: no text copy, no lists of strings (was 25x)."""
    import tracemalloc

    from xpkmeans.cli import read_data

    X = np.random.default_rng(0).standard_normal((40_000, 8))
    data = tmp_path / "big.csv"
    np.savetxt(data, X, delimiter=",", fmt="%.8g", header="a,b,c,d,e,f,g,h", comments="")
    tracemalloc.start()
    try:
        read, names = read_data(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(read, X, rtol=1e-7)
    assert names == list("abcdefgh")
    assert peak <= 2 * X.nbytes, peak / X.nbytes


def test_csv_with_quotes_blank_lines_and_spaces(tmp_path, capsys, csv_parser):
    from xpkmeans.cli import read_data

    data = tmp_path / "odd.csv"
    data.write_text('"x", "y"\n\n"1.5", 2\n 3 ,4\n\n')
    X, names = read_data(data)
    np.testing.assert_array_equal(X, [[1.5, 2.0], [3.0, 4.0]])
    assert names == ["x", "y"]


def test_true_false_cells_are_refused_by_both_csv_readers(tmp_path, capsys, csv_parser):
    """pandas' C reader (files of 8 MB and more) read a column of only True/False
    as 1/0, which loadtxt and the line-by-line reader refuse."""
    from xpkmeans.cli import CLIError, read_data

    data = tmp_path / "flags.csv"
    data.write_text("x,flag\n" + "".join(f"{i}.5,{'True' if i % 2 else 'false'}\n"
                                         for i in range(40)))
    with pytest.raises(CLIError, match=r"line 2, column 2: 'false' is not a number"):
        read_data(data)
    # numbers 0 and 1, and names that hold the words, still read as numbers
    data.write_text("x,is_true\n" + "".join(f"{i}.5,{i % 2}\n" for i in range(40)))
    X, names = read_data(data)
    assert names == ["x", "is_true"]
    np.testing.assert_array_equal(X[:, 1], np.arange(40) % 2)


def test_progress_uses_tqdm_when_installed(monkeypatch):
    import io
    import types

    from xpkmeans import FitProgress
    from xpkmeans.cli import ProgressLine

    bars = []

    class FakeBar:
        def __init__(self, total, desc, **kwargs):
            self.total, self.desc, self.n, self.postfix, self.closed = total, desc, 0, "", False
            bars.append(self)

        def set_postfix_str(self, text):
            self.postfix = text

        def close(self):
            self.closed = True

    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    line = ProgressLine(stream=Terminal(), delay=0.0, interval=0.0)
    for iteration in (1, 2):
        line(FitProgress(start=1, n_init=2, iteration=iteration, max_iter=50, center_shift=0.1,
                         tol=0.01, converged=False, last=False, elapsed=float(iteration),
                         _objective=lambda: 7.0))
    line.close()
    (bar,) = bars
    assert (bar.desc, bar.total, bar.n, bar.closed) == ("start 2/2", 50, 2, True)
    assert bar.postfix.startswith("inertia 7, centre shift 0.1 (tol 0.01)")


def test_auto_backend_skips_gpu_libraries_where_there_is_no_nvidia_device(monkeypatch):
    from xpkmeans import cli

    monkeypatch.setattr(cli, "_may_have_cuda", lambda: False)
    monkeypatch.setitem(sys.modules, "torch", None)  # importing it would fail the test
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert cli.select_backend("auto").name == "numpy"
