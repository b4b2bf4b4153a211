"""Command line: ``xpkmeans demo | fit | choose-k`` (also ``python -m xpkmeans``).

- ``demo``: four blobs, one fit, timings; with ``--out DIR`` the whole course
  of figures (see ``_course.py``).
- ``fit``: cluster a CSV or ``.npy`` file, write one label per row.
- ``choose-k``: score a range of k and print the best.

User errors (missing file, malformed CSV, bad k, ...) end with exit status 1
and one line ``xpkmeans: error: ...`` on stderr; usage errors exit with 2.
This module may name backends: ``select_backend`` is the one place it does.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

PROG = "xpkmeans"
METHODS = ("silhouette", "calinski_harabasz", "davies_bouldin", "elbow")
BACKENDS = ("auto", "numpy", "torch", "cupy")


class CLIError(Exception):
    """A user error, reported as one line on stderr with exit status 1."""


# ------------------------------------------------------------------ backends


@dataclass(frozen=True)
class Backend:
    """Where the arrays live: namespace, device and a name to print."""

    name: str
    xp: Any
    device: Any

    def asarray(self, values: np.ndarray) -> Any:
        return self.xp.asarray(values, device=self.device)


def select_backend(name: str) -> Backend:
    """The backend for ``--backend``: auto, numpy, torch or cupy.

    ``auto`` takes a GPU when there is one (CuPy with a CUDA device, else
    PyTorch with CUDA), else NumPy. ``torch`` without CUDA runs on the CPU.
    An explicitly requested backend that cannot run raises ``CLIError``.
    """
    if name not in BACKENDS:
        raise CLIError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    if name in ("auto", "cupy"):
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                import array_api_compat.cupy as cupy_xp

                return Backend("cupy", cupy_xp, cupy.cuda.Device())
            reason = "no CUDA device found"
        except ImportError:
            reason = "CuPy is not installed (pip install xpkmeans[gpu])"
        except Exception as e:  # noqa: BLE001 - CUDA runtime errors have no common base
            reason = f"CUDA is not usable ({type(e).__name__}: {e})"
        if name == "cupy":
            raise CLIError(f"--backend cupy: {reason}")
    if name in ("auto", "torch"):
        try:
            import torch
        except ImportError:
            if name == "torch":
                raise CLIError(
                    "--backend torch: PyTorch is not installed (pip install xpkmeans[torch])"
                ) from None
        else:
            import array_api_compat.torch as torch_xp

            if torch.cuda.is_available():
                return Backend("torch", torch_xp, torch.device("cuda"))
            if name == "torch":
                return Backend("torch", torch_xp, torch.device("cpu"))
    import array_api_compat.numpy as numpy_xp

    return Backend("numpy", numpy_xp, "cpu")


# ------------------------------------------------------------------ input files


def read_data(path: Path | str, *, delimiter: str = ",") -> tuple[np.ndarray, list[str] | None]:
    """A float64 (n_samples, n_features) array from a CSV or ``.npy`` file.

    A CSV whose first row is not all numbers is read as a header; blank lines
    are skipped. Returns the data and the column names (None without header).
    """
    path = Path(path)
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    if path.is_dir():
        raise CLIError(f"{path}: is a directory, expected a CSV or .npy file")
    if path.suffix.lower() == ".npy":
        return _read_npy(path), None
    return _read_csv(path, delimiter)


def _read_npy(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CLIError(f"{path}: not a readable .npy file of numbers ({e})") from e
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise CLIError(f"{path}: expected a 2-D array (rows x features), got shape {data.shape}")
    if data.dtype.kind not in "biuf":
        raise CLIError(f"{path}: expected numbers, got dtype {data.dtype}")
    if data.size == 0:
        raise CLIError(f"{path}: the array is empty (shape {data.shape})")
    data = data.astype(np.float64)
    bad_rows = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad_rows.size:
        raise CLIError(
            f"{path}: row {bad_rows[0]} has a NaN or infinite value; remove or impute it first"
        )
    return data


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, delimiter: str) -> tuple[np.ndarray, list[str] | None]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CLIError(f"{path}: not a text CSV file ({e.reason} at byte {e.start})") from e
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    try:
        for row in reader:
            if row and any(field.strip() for field in row):
                rows.append([field.strip() for field in row])
                line_numbers.append(reader.line_num)
    except csv.Error as e:
        raise CLIError(f"{path}, line {reader.line_num}: malformed CSV ({e})") from e
    if not rows:
        raise CLIError(f"{path}: the file is empty")
    names = None
    if not all(_is_number(field) for field in rows[0]):
        names, rows, line_numbers = rows[0], rows[1:], line_numbers[1:]
        if not rows:
            raise CLIError(f"{path}: a header row but no data rows")
    width = len(names) if names is not None else len(rows[0])
    for row, line in zip(rows, line_numbers):
        if len(row) != width:
            what = "the header has" if names is not None else "the first row has"
            raise CLIError(
                f"{path}, line {line}: {_plural(len(row), 'value')} but {what} {width} "
                "(every row needs the same number of columns)"
            )
    try:
        data = np.array(rows, dtype=str).astype(np.float64)
    except ValueError:
        for row, line in zip(rows, line_numbers):  # find the cell to blame
            for column, field in enumerate(row, start=1):
                if not _is_number(field):
                    raise CLIError(
                        f"{path}, line {line}, column {column}: {field!r} is not a number"
                    ) from None
        raise  # pragma: no cover - every field parsed alone
    bad_rows = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad_rows.size:
        line = line_numbers[bad_rows[0]]
        raise CLIError(f"{path}, line {line}: NaN or infinite value; remove or impute it first")
    return data, names


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _check_writable(path: Path | str, what: str) -> Path:
    """Fail before the work, not after, when an output cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"{what} {path}: directory {parent} does not exist")
    if path.is_dir():
        raise CLIError(f"{what} {path}: is a directory")
    return path


def _require_matplotlib() -> None:
    """Fail before the work, not after it, when a plot is asked for without matplotlib."""
    from .plotting import _figure_class

    _figure_class()


def _check_k(k: int, n_samples: int, source: str) -> None:
    if k < 1:
        raise CLIError(f"k must be >= 1, got {k}")
    if k > n_samples:
        raise CLIError(f"k={k} is larger than the number of rows ({n_samples}) in {source}")


# ------------------------------------------------------------------ fitting


def _progress(iterable: Any, *, total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar on a terminal when tqdm is installed; else the iterable itself."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    # disable=None: no bar when stderr is not a terminal; delay: none for quick runs.
    return tqdm(iterable, total=total, desc=desc, unit="start", file=sys.stderr,
                disable=None, delay=0.5, leave=False)


def fit_kmeans(
    X: Any,
    n_clusters: int,
    *,
    init: str = "k-means++",
    n_init: int | None = None,
    max_iter: int = 300,
    seed: int | None = None,
    progress: bool = True,
) -> Any:
    """``KMeans(n_clusters, init=init, n_init=n_init, random_state=seed).fit(X)``
    with a progress bar over the ``n_init`` starts."""
    from ._kmeans import KMeans

    model = KMeans(n_clusters, init=init, n_init="auto" if n_init is None else n_init,
                   max_iter=max_iter, random_state=seed)

    def track_starts(starts: range) -> Any:
        return _progress(starts, total=len(starts), desc="k-means starts",
                         enabled=progress and len(starts) > 1)

    return model._fit(X, track_starts=track_starts)


# ------------------------------------------------------------------ subcommands


def _describe_backend(backend: Backend) -> str:
    return f"{backend.name} ({backend.device})"


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._backend import device_of, to_numpy
    from ._kmeans import KMeans
    from .datasets import make_blobs

    if args.n_samples < 20:
        raise CLIError(f"--n-samples must be >= 20, got {args.n_samples}")
    if args.out is not None:
        _require_matplotlib()
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise CLIError(f"--out {args.out}: exists and is not a directory")
    backend = select_backend(args.backend)
    X, _ = make_blobs(args.n_samples, 2, centers=4, cluster_std=1.0, random_state=args.seed,
                      xp=backend.xp, device=backend.device)
    KMeans(4, random_state=args.seed).fit(X)  # warm-up: first-call costs (CUDA init, ...)
    start = time.perf_counter()
    model = KMeans(4, random_state=args.seed).fit(X)  # ends with a host copy: timing is complete
    elapsed = time.perf_counter() - start
    print(f"backend:    {backend.name}")
    print(f"device:     {device_of(X)}")
    print(f"data:       {X.shape[0]} points, {X.shape[1]} features, 4 blobs, "
          f"dtype {to_numpy(X[:1]).dtype}")
    print(f"iterations: {model.n_iter_}")
    print(f"inertia:    {model.inertia_:.6g}")
    print(f"fit time:   {elapsed * 1e3:.1f} ms (KMeans(4), after one warm-up fit)")
    if args.out is None:
        return 0

    from ._course import run_course

    print(f"\nThe course, figures in {args.out}:")
    lessons, selection = run_course(X, args.out, n_clusters=4, seed=args.seed)
    width = max(len(lesson.path.name) for lesson in lessons)
    for lesson in lessons:
        print(f"  {lesson.path.name:<{width}}  {lesson.summary}")
    print(f"chosen k ({selection.method}): {selection.best_n_clusters}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    X, names = read_data(args.input, delimiter=args.delimiter)
    _check_k(args.k, X.shape[0], str(args.input))
    output = _check_writable(args.output, "-o")
    centers_path = _check_writable(args.centers, "--centers") if args.centers else None
    plot_path = _check_writable(args.plot, "--plot") if args.plot else None
    if plot_path is not None:
        _require_matplotlib()
    backend = select_backend(args.backend)

    from ._backend import to_numpy

    start = time.perf_counter()
    model = fit_kmeans(backend.asarray(X), args.k, init=args.init, n_init=args.n_init,
                       max_iter=args.max_iter, seed=args.seed, progress=True)
    elapsed = time.perf_counter() - start
    labels = to_numpy(model.labels_)
    centers = to_numpy(model.cluster_centers_)

    np.savetxt(output, labels, fmt="%d")
    print(
        f"n_samples={X.shape[0]} n_features={X.shape[1]} k={args.k} "
        f"inertia={model.inertia_:.6g} iterations={model.n_iter_} "
        f"time={elapsed:.3f}s backend={_describe_backend(backend)}"
    )
    print(f"wrote {output} ({X.shape[0]} labels)")
    if centers_path is not None:
        header = args.delimiter.join(names) if names is not None else ""
        np.savetxt(centers_path, centers, fmt="%.10g", delimiter=args.delimiter,
                   header=header, comments="")
        print(f"wrote {centers_path} ({args.k} centres)")
    if plot_path is not None:
        from .plotting import plot_clusters

        ax = plot_clusters(X, labels, centers, feature_names=names if X.shape[1] <= 2 else None,
                           title=f"KMeans(n_clusters={args.k}) on {Path(args.input).name}: "
                                 f"inertia {model.inertia_:.6g}")
        ax.figure.savefig(plot_path, dpi=110)
        print(f"wrote {plot_path} (clusters plot)")
    return 0


def _cmd_choose_k(args: argparse.Namespace) -> int:
    from .model_selection import select_n_clusters

    X, _ = read_data(args.input, delimiter=args.delimiter)
    ks = args.range
    _check_k(max(ks), X.shape[0], str(args.input))
    plot_path = _check_writable(args.plot, "--plot") if args.plot else None
    if plot_path is not None:
        _require_matplotlib()
    backend = select_backend(args.backend)

    result = select_n_clusters(
        backend.asarray(X), ks, method=args.method, random_state=args.seed,
        n_init="auto" if args.n_init is None else args.n_init,
        silhouette_sample_size=args.sample_size,
    )
    elbow = result.method == "elbow"
    rule = ("the knee of the inertia curve" if elbow
            else f"{'higher' if result.higher_is_better else 'lower'} is better")
    print(f"method: {result.method} ({rule}), backend: {_describe_backend(backend)}")
    print(f"{'k':>4}  " + ("" if elbow else f"{result.method:>18}  ") + f"{'inertia':>14}")
    for k, score, inertia in zip(result.n_clusters, result.scores, result.inertias):
        mark = "  <- best" if k == result.best_n_clusters else ""
        print(f"{k:>4}  " + ("" if elbow else f"{score:>18.6g}  ") + f"{inertia:>14.6g}{mark}")
    print(f"best k: {result.best_n_clusters}")
    if plot_path is not None:
        from .plotting import plot_elbow

        plot_elbow(result).figure.savefig(plot_path, dpi=110)
        print(f"wrote {plot_path} (score and inertia against k)")
    return 0


# ------------------------------------------------------------------ parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``xpkmeans: error: ...``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


def _k_range(text: str) -> tuple[int, ...]:
    """``2:10`` (2 to 10 inclusive), ``2:10:2`` (with a step) or ``2,3,5``."""
    hint = f"--range must look like 2:10 (k = 2..10), 2:10:2 or 2,3,5; got {text!r}"
    try:
        if ":" in text:
            parts = [int(part) for part in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            first, last = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step < 1 or last < first:
                raise ValueError
            ks = tuple(range(first, last + 1, step))
        else:
            ks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(hint) from None
    if not ks or min(ks) < 1 or len(set(ks)) != len(ks):
        raise argparse.ArgumentTypeError(hint + " (values must be distinct and >= 1)")
    return ks


def _int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "an integer >= 1")
_seed = _int_at_least(0, "a non-negative integer")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="array library: auto takes a GPU when present (default: auto)")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")


def _add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="CSV (a non-numeric first row is a header) or .npy file")
    parser.add_argument("--delimiter", default=",", help="CSV delimiter (default: ,)")


def build_parser() -> argparse.ArgumentParser:
    """The ``xpkmeans`` argument parser."""
    from . import __version__

    parser = _Parser(prog=PROG, description="K-Means on NumPy, CuPy or PyTorch, from the "
                     "command line.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="four blobs, one fit, timings; --out DIR writes the figure course",
        description="Cluster four Gaussian blobs and print backend, device, iterations, "
        "inertia and fit time. With --out DIR, also write the course's figures (PNG).",
    )
    demo.add_argument("--out", metavar="DIR", help="write the course's figures into DIR")
    demo.add_argument("--n-samples", type=_positive_int, default=1000,
                      help="number of points (default: 1000)")
    _add_common(demo)
    demo.set_defaults(func=_cmd_demo)

    fit = commands.add_parser(
        "fit", help="cluster a CSV/.npy file, write one label per row",
        description="Cluster the rows of INPUT with KMeans and write one integer label per row.",
    )
    _add_input(fit)
    fit.add_argument("-k", "--n-clusters", dest="k", type=_positive_int, required=True,
                     help="number of clusters")
    fit.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                     help="file for the labels, one integer per line")
    fit.add_argument("--init", choices=("k-means++", "random"), default="k-means++",
                     help="initialisation (default: k-means++)")
    fit.add_argument("--n-init", type=_positive_int, default=None,
                     help="starts; the lowest inertia wins "
                     "(default: 1 for k-means++, 10 for random)")
    fit.add_argument("--max-iter", type=_positive_int, default=300,
                     help="EM iterations per start (default: 300)")
    fit.add_argument("--centers", metavar="CSV", help="also write the centres as CSV")
    fit.add_argument("--plot", metavar="PNG", help="also write a plot of the clusters")
    _add_common(fit)
    fit.set_defaults(func=_cmd_fit)

    choose = commands.add_parser(
        "choose-k", help="score a range of k and print the best",
        description="Fit KMeans for each k and score it; print a table and the best k.",
    )
    _add_input(choose)
    choose.add_argument("--range", type=_k_range, default=tuple(range(2, 11)), metavar="A:B",
                        help="candidate k: 2:10 (inclusive), 2:10:2 or 2,3,5 (default: 2:10)")
    choose.add_argument("--method", choices=METHODS, default="silhouette",
                        help="score (default: silhouette)")
    choose.add_argument("--n-init", type=_positive_int, default=None,
                        help="starts per k (default: auto)")
    choose.add_argument("--sample-size", type=_positive_int, default=None,
                        help="silhouette on a random sample of this many rows (large data)")
    choose.add_argument("--plot", metavar="PNG", help="also write the score and inertia against k")
    _add_common(choose)
    choose.set_defaults(func=_cmd_choose_k)
    return parser


# ------------------------------------------------------------------ entry point


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpkmeans`` command line; return the exit status."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # shown once each, as one line (_show_warning)
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except CLIError as e:
            message = str(e)
        except (ValueError, TypeError, OSError, ImportError, MemoryError) as e:
            if os.environ.get("XPKMEANS_TRACEBACK"):
                raise
            message = str(e) or type(e).__name__
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except Exception as e:  # noqa: BLE001 - a CLI prints one line, never a traceback
            if os.environ.get("XPKMEANS_TRACEBACK"):
                raise
            message = f"unexpected {type(e).__name__}: {e} (set XPKMEANS_TRACEBACK=1 for details)"
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
    return 1
