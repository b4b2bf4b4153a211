"""Command line: ``xpkmeans demo | fit | choose-k`` (also ``python -m xpkmeans``).

- ``demo``: four blobs, one fit, timings; with ``--out DIR`` the whole course
  of figures (see ``_course.py``).
- ``fit``: cluster a CSV or ``.npy`` file, write one label per row.
- ``choose-k``: score a range of k and print the best.

User errors (missing file, malformed CSV, bad k, ...) end with exit status 1
and one line ``xpkmeans: error: ...`` on stderr; usage errors exit with 2.
Outputs are written to temporary files and renamed at the end: a failing
command leaves none behind. NumPy, the estimators, matplotlib and the GPU
libraries are imported only by the commands that need them (``--version``
imports none). This module may name backends: ``select_backend`` is the one
place it does.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import importlib.util
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

if TYPE_CHECKING:
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


def _numpy_backend() -> Backend:
    from ._backend import host_xp

    return Backend("numpy", host_xp, "cpu")


def select_backend(name: str) -> Backend:
    """The backend for ``--backend``: auto, numpy, torch or cupy.

    ``auto`` takes a GPU when there is one (CuPy with a CUDA device, else
    PyTorch with CUDA), else NumPy. ``torch`` without CUDA runs on the CPU.
    An explicitly requested backend that cannot run raises ``CLIError``.
    """
    if name not in BACKENDS:
        raise CLIError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    if name == "auto" and not _may_have_cuda():
        name = "numpy"  # importing torch to learn there is no GPU costs a second or more
    if name in ("auto", "cupy"):
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                import array_api_compat.cupy as cupy_xp

                return Backend("cupy", cupy_xp, cupy.cuda.Device())
            reason = "no CUDA device found"
        except ImportError:
            reason = ("CuPy is not installed (pip install xpkmeans[cuda12] for CUDA 12, "
                      "xpkmeans[cuda13] for CUDA 13)")
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
    return _numpy_backend()


def _may_have_cuda() -> bool:
    """False only where there is surely no NVIDIA GPU: Linux without its device files."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia")


# ------------------------------------------------------------------ input files


def read_data(
    path: Path | str,
    *,
    delimiter: str | None = None,
    columns: Sequence[str] | None = None,
    drop: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str] | None]:
    """A float64 (n_samples, n_features) array from a CSV or ``.npy`` file.

    A CSV whose first row holds a word (not a number, nor an empty or NA
    cell) is read as a header; blank lines
    are skipped. ``delimiter`` None detects a tab-separated file (else comma);
    ``columns`` keeps, ``drop`` removes columns given by header name or by
    number (1 is the first). Returns the data and the column names (None
    without header).
    """
    path = Path(path)
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    if path.is_dir():
        raise CLIError(f"{path}: is a directory, expected a CSV or .npy file")
    if not path.is_file():  # a pipe or device: read more than once, it would lose rows
        raise CLIError(f"{path}: not a regular file (a pipe?); save the data to a file first")
    if path.suffix.lower() == ".npy":
        data = _read_npy(path)
        keep = _select_columns(data.shape[1], None, columns, drop)
        return (data if keep is None else data[:, keep]), None
    return _read_csv(path, delimiter, columns, drop)


def _read_npy(path: Path) -> np.ndarray:
    import numpy as np

    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r")
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
    data = np.array(data, dtype=np.float64)  # from the mapped file: one copy, in memory
    bad_rows = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad_rows.size:
        raise CLIError(
            f"{path}: row {bad_rows[0]} has a NaN or infinite value; remove or impute it first"
        )
    return data


def parse_delimiter(text: str) -> str:
    """``--delimiter``: one character; ``\\t`` (as typed in a shell) or ``tab`` is a tab."""
    text = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(text, text)
    if len(text) != 1:
        raise argparse.ArgumentTypeError(
            f"expected one character (or \\t for tab), got {text!r}"
        )
    if text in "0123456789.+-eE\"":  # it would run into the numbers
        raise argparse.ArgumentTypeError(f"{text!r} is part of numbers; use another character")
    return text


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


#: cells that mean "no value": a first row of numbers and these is data, not a header
_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})


def _is_number_or_missing(field: str) -> bool:
    return _is_number(field) or field.lower() in _MISSING


@dataclass(frozen=True)
class _CsvLayout:
    """What the first non-blank line of a CSV says about the file."""

    delimiter: str
    names: list[str] | None  # the header, if the first row holds a word
    first_data_line: int  # 1-based line number of the first data row
    width: int


def _csv_layout(path: Path, delimiter: str | None) -> _CsvLayout:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    break
            else:
                raise CLIError(f"{path}: the file is empty")
    except UnicodeDecodeError as e:
        raise CLIError(f"{path}: not a text CSV file ({e.reason} at byte {e.start})") from e
    if delimiter is None:  # a tab and no comma: tab-separated
        delimiter = "\t" if "\t" in line and "," not in line else ","
    first = [field.strip() for field in next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))]
    if all(_is_number_or_missing(field) for field in first):  # data (missing values named later)
        return _CsvLayout(delimiter, None, number, len(first))
    return _CsvLayout(delimiter, first, number + 1, len(first))


def _select_columns(
    width: int, names: list[str] | None, columns: Sequence[str] | None,
    drop: Sequence[str] | None,
) -> list[int] | None:
    """0-based indices of the columns to keep (None: all of them)."""
    if not columns and not drop:
        return None

    def index_of(key: str, option: str) -> int:
        if names is not None and key in names:
            return names.index(key)
        if key.isdigit() and 1 <= int(key) <= width:
            return int(key) - 1
        known = f"names {', '.join(names)} or " if names else ""
        raise CLIError(f"{option}: no column {key!r}; use {known}numbers 1..{width}")

    keep = [index_of(key, "--columns") for key in columns] if columns else list(range(width))
    dropped = {index_of(key, "--drop") for key in drop or ()}
    keep = [i for i in dict.fromkeys(keep) if i not in dropped]
    if not keep:
        raise CLIError("--columns/--drop leave no column to cluster")
    return keep


def _read_csv(
    path: Path, delimiter: str | None, columns: Sequence[str] | None = None,
    drop: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str] | None]:
    """A C reader (``_parse_csv``: pandas' for large files if installed, else
    NumPy's ``loadtxt``); on any error, the line-by-line reader finds the cell
    to blame."""
    import numpy as np

    layout = _csv_layout(path, delimiter)
    keep = _select_columns(layout.width, layout.names, columns, drop)
    names = layout.names
    if names is not None and keep is not None:
        names = [names[i] for i in keep]
    try:
        data = _parse_csv(path, layout, keep)
        if keep is None and data.shape[1] != layout.width and data.size:
            raise ValueError("a row differs in width from the first")
    except (ValueError, UnicodeDecodeError):
        data = _read_csv_slowly(path, layout, keep)
    if data.size == 0:
        raise CLIError(f"{path}: a header row but no data rows")
    bad_rows = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if bad_rows.size:
        _read_csv_slowly(path, layout, keep)  # a short row reads as NaN: name it first
        line = _line_of_data_row(path, layout, int(bad_rows[0]))
        raise CLIError(f"{path}, line {line}: NaN or infinite value; remove or impute it first")
    return data, names


# Files from this size on are parsed by pandas' C reader when pandas is
# installed, in chunks of rows written into one array (at most a quarter of
# the rows, or 32 MiB, each): 0.24 s against loadtxt's 0.90 s on 300k x 16
# (53 MB), equal values, peak memory under 2x the array (pandas in one go:
# 0.13 s, 2-3x). Importing pandas costs more than it saves on smaller files.
_PANDAS_MIN_BYTES = 8 << 20
_PANDAS_CHUNK_BYTES = 32 << 20


def _count_lines(path: Path) -> int:
    """Lines of the file (the last one may lack its newline), in 1 MiB reads."""
    count = last = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1]
    return count + (last not in (0, ord("\n")))


def _parse_csv(path: Path, layout: _CsvLayout, keep: list[int] | None) -> np.ndarray:
    """The data rows as float64; ``ValueError`` on anything but numbers."""
    import numpy as np

    skip = layout.first_data_line - 1
    if path.stat().st_size >= _PANDAS_MIN_BYTES and importlib.util.find_spec("pandas"):
        import pandas

        width = layout.width if keep is None else len(keep)
        data = np.empty((_count_lines(path) - skip, width))
        n_rows = 0
        chunks = pandas.read_csv(
            path, sep=layout.delimiter, header=None, skiprows=skip, usecols=keep,
            dtype=np.float64, engine="c", quotechar='"', encoding="utf-8-sig",
            chunksize=max(1024, min(len(data) // 4, _PANDAS_CHUNK_BYTES // (8 * width))),
        )
        words_checked = False
        with chunks:
            for chunk in chunks:
                if chunk.shape[1] != width:
                    raise ValueError("a row differs in width from the first")
                if keep is not None:  # usecols gives the file's order, not keep's
                    chunk = chunk[keep]
                block = data[n_rows : n_rows + chunk.shape[0]]
                block[...] = chunk.to_numpy(dtype=np.float64)
                n_rows += chunk.shape[0]
                # pandas reads a column of True/False cells as 1/0 where float() and
                # loadtxt refuse them: a column of only 0 and 1 has the file searched
                if not words_checked and any(((c == 0) | (c == 1)).all() for c in block.T):
                    if _has_boolean_words(path, layout.first_data_line):
                        raise ValueError("True/False cells are not numbers")
                    words_checked = True
        return data[:n_rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data": reported by the caller
        return np.loadtxt(
            path, delimiter=layout.delimiter, skiprows=skip, usecols=keep,
            dtype=np.float64, ndmin=2, comments=None, quotechar='"', encoding="utf-8-sig",
        )


def _has_boolean_words(path: Path, first_data_line: int) -> bool:
    """Whether the data rows (from ``first_data_line`` on) hold "true" or "false"
    in any case, in 1 MiB reads: no number does, so such a cell is no number."""
    with open(path, "rb") as f:
        for _ in range(first_data_line - 1):
            f.readline()
        tail = b""
        while block := f.read(1 << 20):
            text = tail + block.lower()
            if b"true" in text or b"false" in text:
                return True
            tail = text[-4:]  # a word cut by the end of the block
    return False


def _data_rows(path: Path, layout: _CsvLayout) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped fields) of every non-blank data row."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=layout.delimiter, skipinitialspace=True)
        try:
            for row in reader:
                if reader.line_num >= layout.first_data_line and any(c.strip() for c in row):
                    yield reader.line_num, [field.strip() for field in row]
        except csv.Error as e:
            raise CLIError(f"{path}, line {reader.line_num}: malformed CSV ({e})") from e


def _line_of_data_row(path: Path, layout: _CsvLayout, index: int) -> int:
    for i, (line, _) in enumerate(_data_rows(path, layout)):
        if i == index:
            return line
    raise AssertionError(index)  # pragma: no cover


def _read_csv_slowly(path: Path, layout: _CsvLayout, keep: list[int] | None) -> np.ndarray:
    """The fallback reader, row by row: the error names the line and column."""
    import numpy as np

    what = "the header has" if layout.names is not None else "the first row has"
    rows = []
    try:
        for line, row in _data_rows(path, layout):
            if len(row) != layout.width:
                hint = ""
                if layout.width == 1 or len(row) == 1:
                    hint = "; is the delimiter right? (--delimiter)"
                raise CLIError(
                    f"{path}, line {line}: {_plural(len(row), 'value')} but {what} "
                    f"{layout.width} (every row needs the same number of columns){hint}"
                )
            cells = row if keep is None else [row[i] for i in keep]
            values = []
            for column, field in zip(keep or range(layout.width), cells):
                try:
                    values.append(float(field))
                except ValueError:
                    hint = ""
                    if layout.width == 1 and any(c in field for c in ";\t |"):
                        hint = "; set the delimiter with --delimiter"
                    raise CLIError(
                        f"{path}, line {line}, column {column + 1}: {field!r} is not a "
                        f"number{hint}"
                    ) from None
            rows.append(values)
    except UnicodeDecodeError as e:
        raise CLIError(f"{path}: not a text CSV file ({e.reason} at byte {e.start})") from e
    width = layout.width if keep is None else len(keep)
    return np.array(rows, dtype=np.float64).reshape(len(rows), width)


def _csv_row(fields: Sequence[str], delimiter: str) -> str:
    """One CSV row, fields quoted where they hold the delimiter or quotes."""
    import io

    row = io.StringIO()
    csv.writer(row, delimiter=delimiter, lineterminator="").writerow(fields)
    return row.getvalue()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _check_writable(path: Path | str, what: str) -> Path:
    """Fail before the work, not after, when an output cannot be written
    (its directory takes a new file: where the output is written first)."""
    import tempfile

    path = Path(path)
    parent = Path(os.path.realpath(path)).parent
    if not parent.is_dir():
        raise CLIError(f"{what} {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise CLIError(f"{what} {path}: is a directory")
    if path.is_file() or not path.exists():  # pipes and devices are written as they are
        try:
            tempfile.TemporaryFile(dir=parent).close()
        except OSError as e:
            raise CLIError(f"{what} {path}: cannot write in {parent} ({e.strerror})") from e
    return path


def _staging_directory(out: Path, what: str) -> Path:
    """A new hidden directory in the nearest existing directory of ``out``
    (``out`` itself if it exists): files written there move into ``out`` at
    the end, by renames on one file system."""
    import tempfile

    existing = Path(os.path.realpath(out))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"{what} {out}: {existing} is not a directory")
    try:
        return Path(tempfile.mkdtemp(dir=existing, prefix=".xpkmeans-"))
    except OSError as e:
        raise CLIError(f"{what} {out}: cannot write in {existing} ({e.strerror})") from e


def _check_plot_path(path: Path | str, what: str) -> Path:
    """``_require_matplotlib``, ``_check_writable``, and a file type matplotlib writes."""
    _require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    path = _check_writable(path, what)
    types = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in types:
        raise CLIError(f"{what} {path}: name a file ending in one of "
                       f"{', '.join('.' + t for t in sorted(types))}")
    return path


def _check_distinct(inputs: Sequence[Path | str], outputs: dict[str, Path | None]) -> None:
    """No output overwrites the input or another output."""
    seen = {os.path.realpath(path): "the input" for path in inputs}
    for what, path in outputs.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise CLIError(f"{what} {path}: the same file as {seen[real]}")
        seen[real] = what


def _require_matplotlib() -> None:
    """Fail before the work, not after it, when a plot is asked for without matplotlib."""
    from .plotting import _figure_class

    _figure_class()


def _check_k(k: int, n_samples: int, source: str) -> None:
    if k < 1:
        raise CLIError(f"k must be >= 1, got {k}")
    if k > n_samples:
        raise CLIError(f"k={k} is larger than the number of rows ({n_samples}) in {source}")


# ------------------------------------------------------------------ outputs


class _Outputs:
    """Output files written under temporary names beside them, renamed together
    at the end: a command that fails half-way leaves no partial outputs."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self.messages: list[str] = []

    def path(self, final: Path, message: str) -> Path:
        """A temporary path for ``final`` (same suffix: matplotlib reads it);
        through a symbolic link, beside its target; a pipe or device, as it is."""
        import tempfile

        self.messages.append(message)
        if final.exists() and not final.is_file():  # also through links
            return final
        final = Path(os.path.realpath(final))
        fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.",
                                    suffix=final.suffix)
        os.close(fd)
        if final.exists():  # keep its permissions
            mode = os.stat(final).st_mode & 0o7777
        else:  # as a plain open() would create it
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(name, mode)
        self._pending.append((Path(name), final))
        return Path(name)

    def commit(self) -> None:
        for temporary, final in self._pending:
            os.replace(temporary, final)
        self._pending = []

    def discard(self) -> None:
        for temporary, _ in self._pending:
            with contextlib.suppress(OSError):
                temporary.unlink()
        self._pending = []


@contextlib.contextmanager
def _atomic_outputs() -> Iterator[_Outputs]:
    outputs = _Outputs()
    try:
        yield outputs
    except BaseException:
        outputs.discard()
        raise
    outputs.commit()


# ------------------------------------------------------------------ progress


class ProgressLine:
    """Progress of a fit on stderr, fed by ``KMeans(callback=...)``.

    Silent for fits shorter than ``delay`` seconds. Then at most one update
    every ``interval`` seconds: start, iteration, inertia, centre shift
    against tol, elapsed time; rewritten in place on a terminal (a tqdm bar
    when tqdm is installed), one line each elsewhere. ``verbose``: every
    iteration, from the first, one line each. The inertia costs a pass over
    X, so it is recomputed only while that stays under a tenth of the fit's
    time (always when verbose).
    """

    def __init__(self, *, verbose: bool = False, stream: Any = None, delay: float = 2.0,
                 interval: float = 1.0) -> None:
        self.verbose = verbose
        self.stream = sys.stderr if stream is None else stream
        self.delay, self.interval = delay, interval
        self.last: Any = None  # the latest FitProgress
        self._shown_at = -float("inf")
        self._inertia_seconds = 0.0
        self._inertia: float | None = None
        self._open_line = False
        self._bar: Any = None
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, progress: Any) -> None:
        if progress.start == 0 and progress.iteration == 1:  # a new fit (choose-k: one per k)
            self._shown_at = -float("inf")
            self._inertia_seconds, self._inertia = 0.0, None
        self.last = progress
        due = progress.elapsed >= self.delay and (
            progress.elapsed - self._shown_at >= self.interval or progress.last
        )
        if not (self.verbose or due):
            return
        self._shown_at = progress.elapsed
        if self.verbose or self._inertia_seconds < 0.1 * progress.elapsed:
            started = time.perf_counter()
            self._inertia = progress.inertia()
            self._inertia_seconds += time.perf_counter() - started
        inertia = "?" if self._inertia is None else f"{self._inertia:.6g}"
        text = (f"inertia {inertia}, centre shift {progress.center_shift:.3g} "
                f"(tol {progress.tol:.3g}), {progress.elapsed:.1f} s")
        start = f"start {progress.start + 1}/{progress.n_init}, " if progress.n_init > 1 else ""
        if not self.verbose and self._tty and self._show_bar(progress, start, text):
            return
        line = f"{start}iteration {progress.iteration}/{progress.max_iter}: {text}"
        if self._tty and not self.verbose:
            self.stream.write(f"\r{line}\x1b[K")
            self._open_line = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _show_bar(self, progress: Any, start: str, text: str) -> bool:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return False
        description = start.rstrip(", ") or "k-means"
        if self._bar is None or self._bar.desc != description:
            self.close()
            self._bar = tqdm(total=progress.max_iter, desc=description, unit="iter",
                             file=self.stream, leave=False)
        self._bar.n = progress.iteration
        self._bar.set_postfix_str(text)
        return True

    def note(self, text: str, elapsed: float) -> None:
        """A line of its own (one per k of ``choose-k``), under the iterations' rule:
        always when verbose, else once the command has run ``delay`` seconds."""
        if self.verbose or elapsed >= self.delay:
            self.close()
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the line or bar (before anything else is written to the stream)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


# ------------------------------------------------------------------ fitting


def fit_kmeans(
    X: Any,
    n_clusters: int,
    *,
    init: str = "k-means++",
    n_init: int | None = None,
    max_iter: int = 300,
    seed: int | None = None,
    callback: Callable[[Any], Any] | None = None,
) -> Any:
    """``KMeans(n_clusters, init=init, n_init=n_init, random_state=seed,
    callback=callback).fit(X)``."""
    from ._kmeans import KMeans

    model = KMeans(n_clusters, init=init, n_init="auto" if n_init is None else n_init,
                   max_iter=max_iter, random_state=seed, callback=callback)
    return model.fit(X)


def _standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns to mean 0 and standard deviation 1 (constant columns only centred)."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    return (X - mean) / scale, mean, scale


# ------------------------------------------------------------------ subcommands


def _describe_backend(backend: Backend) -> str:
    return f"{backend.name} ({backend.device})"


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.n_samples < 20:
        raise CLIError(f"--n-samples must be >= 20, got {args.n_samples}")
    if args.out is None:
        return _run_demo(args, None)
    _require_matplotlib()
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out}: exists and is not a directory")
    staging = _staging_directory(Path(args.out), "--out")
    try:  # from here on, a failure or ^C anywhere leaves no staging directory behind
        return _run_demo(args, staging)
    finally:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


def _run_demo(args: argparse.Namespace, staging: Path | None) -> int:
    """The demo once its checks passed; with ``--out``, the figures are written
    into ``staging`` (which the caller removes) and moved into ``--out`` together."""
    from ._backend import device_of, to_numpy
    from ._kmeans import KMeans
    from .datasets import make_blobs

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
    if staging is None:
        return 0

    from ._course import run_course

    # written aside, then moved in together: a failure leaves --out as it was
    lessons, selection = run_course(X, staging, n_clusters=4, seed=args.seed)
    targets = [Path(args.out) / lesson.path.name for lesson in lessons]
    for target in targets:  # all checked before the first is moved
        if target.is_dir():
            raise CLIError(f"--out {args.out}: {target.name} is a directory")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for lesson, target in zip(lessons, targets):
        os.replace(lesson.path, target)
    print(f"\nThe course, figures in {args.out}:")
    width = max(len(lesson.path.name) for lesson in lessons)
    for lesson in lessons:
        print(f"  {lesson.path.name:<{width}}  {lesson.summary}")
    print(f"chosen k ({selection.method}): {selection.best_n_clusters}")
    return 0


@contextlib.contextmanager
def _progress_line(args: argparse.Namespace) -> Iterator[ProgressLine | None]:
    """The progress of ``--verbose`` / default / ``--quiet`` (None), closed at the end."""
    progress = None if args.quiet else ProgressLine(verbose=args.verbose)
    try:
        yield progress
    finally:
        if progress is not None:
            progress.close()


def _fit_with_progress(args: argparse.Namespace, X: Any) -> Any:
    """The fit of ``xpkmeans fit``: progress on stderr, and the iteration
    limit named in the option's words when it ended the fit."""
    from ._sklearn_compat import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _progress_line(args) as progress:
            model = fit_kmeans(X, args.k, init=args.init, n_init=args.n_init,
                               max_iter=args.max_iter, seed=args.seed, callback=progress)
    for warning in caught:
        message = str(warning.message)
        if issubclass(warning.category, ConvergenceWarning) and "did not converge" in message:
            message = (f"the fit stopped at --max-iter {args.max_iter} iterations before it "
                       "converged; the labels are usable, but --max-iter "
                       f"{2 * args.max_iter} (or more) would let it finish")
        _show_warning(message, warning.category, warning.filename, warning.lineno)
    return model


def _cmd_fit(args: argparse.Namespace) -> int:
    import numpy as np

    X, names = read_data(args.input, delimiter=args.delimiter, columns=args.columns,
                         drop=args.drop)
    _check_k(args.k, X.shape[0], str(args.input))
    output = _check_writable(args.output, "-o")
    centers_path = _check_writable(args.centers, "--centers") if args.centers else None
    plot_path = _check_plot_path(args.plot, "--plot") if args.plot else None
    _check_distinct([args.input], {"-o": output, "--centers": centers_path, "--plot": plot_path})
    backend = select_backend(args.backend)

    from ._backend import to_numpy

    fitted_X, mean, scale = _standardize(X) if args.standardize else (X, 0.0, 1.0)
    start = time.perf_counter()
    model = _fit_with_progress(args, backend.asarray(fitted_X))
    elapsed = time.perf_counter() - start
    labels = to_numpy(model.labels_)
    centers = to_numpy(model.cluster_centers_) * scale + mean  # in the input's units

    with _atomic_outputs() as outputs:
        np.savetxt(outputs.path(output, f"wrote {output} ({X.shape[0]} labels)"),
                   labels, fmt="%d")
        if centers_path is not None:
            delimiter = args.centers_delimiter
            header = _csv_row(names, delimiter) if names is not None else ""
            np.savetxt(outputs.path(centers_path, f"wrote {centers_path} ({args.k} centres)"),
                       centers, fmt="%.10g", delimiter=delimiter, header=header, comments="")
        if plot_path is not None:
            from .plotting import plot_clusters

            fig = plot_clusters(
                X, labels, centers, feature_names=names if X.shape[1] <= 2 else None,
                title=f"KMeans(n_clusters={args.k}) on {Path(args.input).name}: "
                      f"inertia {model.inertia_:.6g}"
                      + (" (of the standardized columns)" if args.standardize else ""),
            )
            fig.savefig(outputs.path(plot_path, f"wrote {plot_path} (clusters plot)"), dpi=110)
    if not args.quiet:
        scaled = " (standardized)" if args.standardize else ""
        print(
            f"n_samples={X.shape[0]} n_features={X.shape[1]} k={args.k} "
            f"inertia={model.inertia_:.6g}{scaled} iterations={model.n_iter_} "
            f"time={elapsed:.3f}s backend={_describe_backend(backend)}"
        )
        for message in outputs.messages:
            print(message)
    return 0


def _check_range(ks: tuple[int, ...], method: str, n_samples: int, source: str,
                 sample_size: int | None = None) -> None:
    """The API's limits on k (and ``--sample-size``), in the words of the options."""
    _check_k(max(ks), n_samples, source)
    if method == "elbow" and len(ks) < 3:
        raise CLIError(f"--range: --method elbow looks for a knee in the inertia curve, "
                       f"so it needs at least 3 values of k; got {len(ks)}")
    if method != "elbow" and min(ks) < 2:
        raise CLIError(f"--range: --method {method} compares clusters, so k starts at 2; "
                       f"got k = {min(ks)} (try --range 2:{max(max(ks), 2)})")
    if method != "elbow" and max(ks) >= n_samples:
        raise CLIError(f"--range: --method {method} needs k < the number of rows "
                       f"({n_samples}) in {source}; got k = {max(ks)}")
    if sample_size is not None and method != "silhouette":
        raise CLIError(f"--sample-size applies only to --method silhouette, "
                       f"not --method {method}")
    if sample_size is not None and min(sample_size, n_samples) <= max(ks):
        raise CLIError(f"--sample-size {sample_size}: a silhouette needs more rows than "
                       f"clusters, so it must exceed the largest k of --range ({max(ks)})")


def _cmd_choose_k(args: argparse.Namespace) -> int:
    from .model_selection import select_n_clusters

    X, _ = read_data(args.input, delimiter=args.delimiter, columns=args.columns,
                     drop=args.drop)
    ks = args.range
    _check_range(ks, args.method, X.shape[0], str(args.input), args.sample_size)
    plot_path = _check_plot_path(args.plot, "--plot") if args.plot else None
    _check_distinct([args.input], {"--plot": plot_path})
    backend = select_backend(args.backend)
    if args.standardize:
        X = _standardize(X)[0]

    start = time.perf_counter()

    def show_k(line: ProgressLine, k: int, score: float, model: Any) -> None:
        elapsed = time.perf_counter() - start
        value = "" if args.method == "elbow" else f"{args.method} {score:.6g}, "
        line.note(f"k={k} ({sorted(ks).index(k) + 1}/{len(ks)}): {value}inertia "
                  f"{model.inertia_:.6g}, {model.n_iter_} iterations, {elapsed:.1f} s", elapsed)

    with _progress_line(args) as line:
        result = select_n_clusters(
            backend.asarray(X), ks, method=args.method, random_state=args.seed,
            n_init="auto" if args.n_init is None else args.n_init,
            silhouette_sample_size=args.sample_size, callback=line,
            progress=None if line is None else functools.partial(show_k, line),
        )
    if args.quiet:
        print(result.best_n_clusters)
    else:
        _print_scores(result, backend)
    if plot_path is not None:
        from .plotting import plot_elbow

        with _atomic_outputs() as outputs:
            plot_elbow(result).savefig(
                outputs.path(plot_path, f"wrote {plot_path} (score and inertia against k)"),
                dpi=110,
            )
        if not args.quiet:
            print(outputs.messages[0])
    return 0


def _print_scores(result: Any, backend: Backend) -> None:
    """The table of ``choose-k``: score and inertia per k, and the best k."""
    elbow = result.method == "elbow"
    rule = ("the knee of the inertia curve" if elbow
            else f"{'higher' if result.higher_is_better else 'lower'} is better")
    print(f"method: {result.method} ({rule}), backend: {_describe_backend(backend)}")
    print(f"{'k':>4}  " + ("" if elbow else f"{result.method:>18}  ") + f"{'inertia':>14}")
    for k, score, inertia in zip(result.n_clusters, result.scores, result.inertias):
        mark = "  <- best" if k == result.best_n_clusters else ""
        print(f"{k:>4}  " + ("" if elbow else f"{score:>18.6g}  ") + f"{inertia:>14.6g}{mark}")
    print(f"best k: {result.best_n_clusters}")


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


def _column_list(text: str) -> list[str]:
    """``--columns`` / ``--drop``: comma-separated names or numbers."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys:
        raise argparse.ArgumentTypeError(f"expected column names or numbers, got {text!r}")
    return keys


_positive_int = _int_at_least(1, "an integer >= 1")
_seed = _int_at_least(0, "a non-negative integer")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="array library: auto takes a GPU when present (default: auto)")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")


def _add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="CSV (a non-numeric first row is a header) or .npy file")
    parser.add_argument("--delimiter", type=parse_delimiter, default=None,
                        help="CSV delimiter; \\t for tab (default: tab if the first line has "
                        "tabs and no comma, else comma)")
    parser.add_argument("--columns", type=_column_list, metavar="C1,C2",
                        help="cluster only these columns, by header name or number (1 = first)")
    parser.add_argument("--drop", type=_column_list, metavar="C1,C2",
                        help="leave out these columns (e.g. a label column), by name or number")
    parser.add_argument("--standardize", action="store_true",
                        help="scale every column to mean 0 and standard deviation 1 before "
                        "clustering (columns of very different ranges)")


def _add_loudness(parser: argparse.ArgumentParser, *, quiet: str) -> None:
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-v", "--verbose", action="store_true",
                          help="one line per EM iteration on stderr: inertia, centre shift "
                          "against tol, time")
    loudness.add_argument("-q", "--quiet", action="store_true", help=quiet)


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
    demo.add_argument("--n-samples", type=_int_at_least(20, "an integer >= 20"), default=1000,
                      help="number of points (default: 1000)")
    _add_common(demo)
    demo.set_defaults(func=_cmd_demo)

    fit = commands.add_parser(
        "fit", help="cluster a CSV/.npy file, write one label per row",
        description="Cluster the rows of INPUT with KMeans and write one integer label per "
        "row. Fits that take more than a few seconds show their progress on stderr.",
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
    fit.add_argument("--centers", metavar="CSV",
                     help="also write the centres as CSV (in the input's units)")
    fit.add_argument("--centers-delimiter", type=parse_delimiter, default=",",
                     metavar="DELIM", help="delimiter of the --centers file (default: ,)")
    fit.add_argument("--plot", metavar="PNG", help="also write a plot of the clusters")
    _add_loudness(fit, quiet="no progress and no summary; errors and warnings only")
    _add_common(fit)
    fit.set_defaults(func=_cmd_fit)

    choose = commands.add_parser(
        "choose-k", help="score a range of k and print the best",
        description="Fit KMeans for each k and score it; print a table and the best k. "
        "Runs that take more than a few seconds show a line per k on stderr.",
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
    _add_loudness(choose, quiet="no progress and no table: print only the best k")
    _add_common(choose)
    choose.set_defaults(func=_cmd_choose_k)
    return parser


# ------------------------------------------------------------------ entry point


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)


def _silence_stdout() -> None:
    """After a closed pipe (``xpkmeans demo | head``): no error at exit either."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpkmeans`` command line; return the exit status."""
    args = build_parser().parse_args(argv)
    _run_without_sklearn_bases()
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # shown once each, as one line (_show_warning)
        warnings.showwarning = _show_warning
        try:
            status = args.func(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return status
        except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools
            _silence_stdout()
            return 141  # 128 + SIGPIPE, what a shell reports for such a tool
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


def _run_without_sklearn_bases() -> None:
    """The command line never hands an estimator to scikit-learn, and importing
    scikit-learn costs about a second: unless something imported them
    already, the estimators are built on the stand-in base classes."""
    if "xpkmeans._sklearn_compat" in sys.modules:
        return
    os.environ[STANDALONE_VARIABLE] = "1"
    try:
        from . import _sklearn_compat  # noqa: F401 - reads the variable once, on import
    finally:
        del os.environ[STANDALONE_VARIABLE]


STANDALONE_VARIABLE = "_XPKMEANS_WITHOUT_SKLEARN"  # read by _sklearn_compat
