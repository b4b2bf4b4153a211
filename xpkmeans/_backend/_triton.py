"""CUDA fast paths by Triton: one fused pass over X per Lloyd iteration.

The kernels are in ``_triton_kernels``; this module picks the tiles and
launches them on torch CUDA tensors, and on CuPy arrays through zero-copy
DLPack. It is imported only for float32 CUDA arrays where triton imports
(``handles``); everything else takes the portable path.

Precision (``XPKMEANS_CUDA_PRECISION``):

- ``"tf32-check"`` (default, exact): one TF32 pass (operands rounded to
  TF32); a row whose second best centre lies within TF32's error bound of
  the best has its two best rescored in float32, and one with a third
  within it too is redone in tf32x3. Labels equal the portable float32
  path's up to ties within rounding.
- ``"tf32x3"`` (exact): each product in three TF32 passes, about float32
  accuracy (on 1M points of 10M x 32 x 256 it mislabelled one point more
  than float32 against a float64 argmin, H200).
- ``"ieee"`` (exact): plain float32 products, no tensor cores.
- ``"tf32"`` (**approximate**, opt-in): one TF32 pass; points near a boundary
  between two clusters may get the farther one (about 1 in 1,000 on
  benchmark data).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from array_api_compat import is_cupy_array, is_torch_array

from ._centered import CenteredRows
from ._host import env_flag

PRECISIONS = ("tf32x3", "tf32-check", "ieee", "tf32")
EXACT_PRECISIONS = ("tf32x3", "tf32-check", "ieee")
#: the exact mode that mislabelled no more points than float32 on both GPU
#: benchmark problems (H200, run 2), and the fewest instructions per score
DEFAULT_PRECISION = "tf32-check"

#: Tile settings forced by benchmarks and tests (keys of ``tile_config``).
config_override: dict[str, Any] = {}
candidates_override: dict[str, Any] = {}  # the same for greedy k-means++'s pass


@lru_cache(maxsize=1)
def triton_imports() -> bool:
    """True when triton and torch import (Triton launches through torch)."""
    try:
        import torch  # noqa: F401
        import triton  # noqa: F401

        from . import _triton_kernels  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA install
        return False
    return True


def handles(X: Any, centers: Any) -> bool:
    """True for dense float32 CUDA arrays (torch or CuPy, or a ``CenteredRows``
    of one) where triton imports, whose sizes fit the kernels' indices."""
    if isinstance(X, CenteredRows):
        X = X.data
    if is_torch_array(X):
        if not (X.is_cuda and str(X.layout) == "torch.strided" and str(X.dtype) == "torch.float32"
                and str(centers.dtype) == str(X.dtype)):
            return False
        feature_stride = X.stride(1) if X.ndim == 2 else 1
    elif is_cupy_array(X):
        if not (X.dtype.name == "float32" and centers.dtype == X.dtype):
            return False
        if _has_negative_strides(X):  # a reversed view: the portable path (or a centred copy)
            return False
        feature_stride = X.strides[1] // X.itemsize if X.ndim == 2 else 1
    else:
        return False
    return fits_int32_indices(X.shape, feature_stride, centers.shape) and triton_imports()


def fits_int32_indices(shape: tuple, feature_stride: int, center_shape: tuple) -> bool:
    """True where the kernels' int32 arithmetic holds: row numbers (the rows
    listed for a recheck), a feature's offset within a row, and offsets in
    the padded centres."""
    limit = 1 << 31
    n, d = (tuple(shape) + (1, 1))[:2]
    k = center_shape[0] if len(center_shape) == 2 else 1  # a mean is one row
    return (n < limit and abs(feature_stride) * max(d - 1, 0) < limit
            and (k + 128) * (d + 128) < limit)


def precision() -> str:
    """The dot precision of this call (``XPKMEANS_CUDA_PRECISION``)."""
    mode = os.environ.get("XPKMEANS_CUDA_PRECISION", DEFAULT_PRECISION)
    if mode not in PRECISIONS:
        msg = f"`XPKMEANS_CUDA_PRECISION` must be one of {PRECISIONS}, got {mode!r}."
        raise ValueError(msg)
    return mode


def deterministic() -> bool:
    """True when the per-cluster sums must be bitwise equal run to run:
    ``XPKMEANS_CUDA_DETERMINISTIC=1``, or torch's
    ``torch.use_deterministic_algorithms(True)``."""
    if env_flag("XPKMEANS_CUDA_DETERMINISTIC", False):
        return True
    import torch

    return torch.are_deterministic_algorithms_enabled()


def _fixed_point_scales(X: Any, mean: Any, weights: Any) -> Any:
    """Powers of two (float64, on the device, no host sync) that map values
    (of ``X - mean``) and weights to integers whose sums over all rows stay
    below 2^62."""
    import torch

    def largest_magnitude(values: Any) -> Any:
        """max |values| (float64, 0-D) by one reduction: ``abs`` first would
        write a temporary of X's size on every pass (an 8 GB X took 8 GB
        more)."""
        if not values.numel():
            return torch.zeros((), dtype=torch.float64, device=values.device)
        low, high = torch.aminmax(values)
        return torch.maximum(-low, high).to(torch.float64)

    n = max(X.shape[0], 1)
    largest = largest_magnitude(X)
    if mean is not None:
        largest = largest + largest_magnitude(mean)
    if weights is None:
        weight_largest = torch.ones((), dtype=torch.float64, device=X.device)
    else:
        weight_largest = largest_magnitude(weights)
    bounds = torch.stack([largest * weight_largest, weight_largest]) * n
    tiny = torch.finfo(torch.float64).tiny
    exponents = 62.0 - torch.ceil(torch.log2(torch.clamp(bounds, min=tiny)))
    return torch.exp2(torch.clamp(exponents, max=1000.0))


def _next_power_of_two(value: int) -> int:
    return 1 << max(value - 1, 0).bit_length()


#: rows that one replica of the float32 sums takes at most, where memory allows:
#: a float32 sum of m values is off by up to m 2^-24 of their sizes
_ROWS_PER_SUM_COPY = 1 << 20


def _sum_copies(n: int, d: int, k: int, *, exact: bool = False) -> int:
    """Replicas of the per-cluster sums, one per program modulo their number:
    about 2^20 numbers in all, so that fewer atomics collide on one address,
    and, unless the sums are ``exact`` (fixed point) or dropped, more for
    large n, so that no replica adds more than ``_ROWS_PER_SUM_COPY`` rows:
    the float32 replicas within 1/48 of the size of X (their float64
    reduction makes a copy of twice their size)."""
    size = k * (d + 1)
    for_collisions = max(1, min(64, (1 << 20) // size))
    if exact:
        return for_collisions
    for_accuracy = min(-(-n // _ROWS_PER_SUM_COPY), max(1, n * d // (48 * size)))
    return max(for_collisions, for_accuracy)


def held_piece(block_d: int, d: int) -> int:
    """Features a piece of the tile of X held on chip (``PIECE_D``): 32 of
    a tile of 128 where d is not a multiple of 16, else all of it.

    Launched on contiguous X with d a multiple of 16, Triton knows that the
    rows come in 16-byte steps and loads 4 features a thread. Otherwise it
    loads one, and 4 warps spread over 128 features, each thread holding
    all 128 rows of one feature: on sm_90 tf32-check's pass then spilled
    registers (415 spill instructions in ``cuobjdump``'s SASS, tf32's 178)
    for every d in 65-127 but 80, 96, 112. Pieces of 32 keep the warps on
    rows: no spills, and fewer instructions a score (static counts,
    ``benchmarks/kernel_mix.py``). A tile of 64 spills none either way."""
    return 32 if d % 16 and block_d > 64 else block_d


def tile_config(n: int, d: int, k: int, dot_precision: str, *,
                narrow: bool = False) -> dict[str, Any]:
    """Tiles and launch settings of the dense pass for an ``n x d`` X and k centres.

    ``BLOCK_D`` covers all features of a row tile, up to 128 on tensor
    cores (32 for "ieee", whose FMA path spills registers beyond): X's tile
    is read once and stays on chip for all centre tiles, as in flash-kmeans;
    on sm_90 that takes 7-9x fewer instructions per score at d = 128 than
    chunks of 32 reloaded for every centre tile (static SASS counts, see
    ``benchmarks/kernel_mix.py``). Wider data goes in chunks, the products
    pipelined over ``num_stages``. Every kernel of the benchmark shapes and
    of d = 100, as launched on a contiguous X, is free of register spills on
    sm_90 (tested); a tile of 128 features where d is not a multiple of 16
    is held in pieces (``held_piece``).

    ``narrow``: no tile of more than 32 features, for a GPU whose shared
    memory a block cannot hold a wide tile's (``_launch`` falls back to it):
    on sm_90 those take up to 192 KB, on sm_80/86 up to 160 KB (tf32x3), on
    sm_75 up to 96 KB (tf32-check), against 99 KB a block on sm_86/89 and
    64 KB on sm_75.
    """
    block_d = max(16, _next_power_of_two(d))
    single_chunk = block_d <= (32 if dot_precision == "ieee" or narrow else 128)
    wide = single_chunk and block_d > 32
    if not single_chunk:  # tf32-check: 16 measured 18% faster than 32 on 8M x 128 (H200)
        block_d = 16 if dot_precision in ("ieee", "tf32-check") else 32
    # tf32-check's pass on an H200, 128 rows a tile, 4 warps: 128 centres a
    # tile took 3.8 ms against 4.3 for 64 on 10M x 32 x 256, and 64 took
    # 19.0 ms against 25.1 for 128 on 8M x 128 x 1024 (8 warps: 5.8 and 20.7)
    wide_k = dot_precision in ("tf32x3", "tf32-check") and single_chunk and not wide
    block_k = min(128 if wide_k else 64, max(16, _next_power_of_two(k)))
    block_n = 128 if n >= 1 << 16 else 64
    num_warps = 8 if block_n * block_k >= 128 * 64 else 4
    if single_chunk and dot_precision in ("tf32", "tf32-check"):  # measured faster (H200)
        num_warps = 4
    if single_chunk and dot_precision == "ieee":  # 64 centres a tile spill registers (sm_90)
        block_k, num_warps = min(block_k, 32), 8
    config = {
        "BLOCK_N": block_n,
        "BLOCK_K": block_k,
        "BLOCK_D": block_d,
        "num_warps": num_warps,
        # a wide tile's centre tiles are 32 KB each: one in flight; tf32-check
        # on 10M x 32 x 256 (H200): 3.5 ms with one, 3.8 with two
        "num_stages": (1 if wide or dot_precision == "tf32-check" else 2) if single_chunk else 3,
        "sum_dtype": "float32",
        "LANE_MIN": False,
        # tf32-check: each row's own TF32 rounding in its bound, not 2^-11 of
        # its norm: fewer rows rechecked, but a second sum a row (untimed)
        "MEASURE_ROUNDING": False,
        "sum_copies": _sum_copies(n, d, k),
        "exact_sum_copies": _sum_copies(n, d, k, exact=True),  # fixed point, or dropped
    }
    config.update(config_override)
    config["SINGLE_CHUNK"] = config["BLOCK_D"] >= d
    # tf32x3 spills none whole, and its pieces take 26% more instructions a score
    if "PIECE_D" not in config_override:
        config["PIECE_D"] = (config["BLOCK_D"] if dot_precision == "tf32x3"
                             else held_piece(config["BLOCK_D"], d))
    return config


def check_bound(d: int, block_k: int) -> tuple[float, float, float, float]:
    """``(safety, accumulation, lane_bits, absolute)`` of tf32-check: the TF32
    score of a row ``x`` against a centre ``c`` is off by at most ``safety
    (||x - x'|| ||c|| + ||x|| ||c - c'|| + accumulation ||x|| ||c||) +
    lane_bits |score| + absolute / 2``, ``x'`` and ``c'`` the operands
    rounded to TF32.

    ``x' . c' - x . c = (x' - x) . c' + x . (c' - c)`` exactly; products of
    TF32 operands are exact in float32, and adding d of them in float32
    (however the tensor cores round) is off by d 2^-23 of the sum of their
    sizes. A score carrying its lane in its last bits is off by under
    ``block_k`` ulps. ``safety`` covers the norms' own rounding, and ||c'||
    and ||x'|| for ||c|| and ||x|| (2^-11 apart at most). ``absolute``
    covers products and sums below float32's normal range, which a GPU may
    flush to zero (under 2^-126 each).

    ||c - c'|| is measured for each centre; ||x - x'|| is too with the
    tile setting ``MEASURE_ROUNDING``, else bounded by 2^-11 ||x||. In the
    difference of two scores, x's rounding counts against the distance of
    their centres where that is less than the sum of their norms: at most
    twice the distance from x of any centre that this bound leaves in
    doubt, which its score gives
    (``||x - c||^2 = ||x||^2 + 2 score``, plus the rounding of ``||c||^2 / 2``,
    under (d + 2) 2^-23 of it). On the benchmark blobs, against the worst
    case for both roundings and the norms, the check then pairs 2.1-2.2x
    and redoes 4.3-4.9x fewer rows (``MEASURE_ROUNDING``: 2.8-2.9x, 7-9.5x;
    ``benchmarks/kernel_mix.py``), its compiled code longer by 0.4-1.2%.
    """
    return 1.125, d * 2.0**-23, block_k * 2.0**-23 * 1.25, (d + 2) * 2.0**-124


def _check_terms(half_sq_norms: Any, moved: Any, d: int) -> tuple[Any, Any, Any]:
    """Per centre c (``moved``: ||c - c'||, c' rounded to TF32), what the
    bound of tf32-check takes from the centres (``check_bound``), on the
    device: ``||c|| + max ||c||`` and ``||c - c'|| + max ||c - c'|| +
    accumulation (||c|| + max ||c||)``, and how far rounding ``||c||^2 / 2``
    may move a squared distance, (d + 2) 2^-23 max ||c||^2."""
    import torch

    norms = torch.sqrt(2.0 * torch.clamp(half_sq_norms.to(torch.float32), min=0.0))
    _, accumulation, _, _ = check_bound(d, 1)
    norm_sums = norms + torch.max(norms)
    terms = moved + torch.max(moved) + accumulation * norm_sums
    slack = (d + 2) * 2.0**-23 * torch.max(norms) ** 2
    return norm_sums.contiguous(), terms.contiguous(), slack.reshape(1)


def listed_config(config: dict[str, Any], d: int) -> dict[str, Any]:
    """Tiles of the passes over the listed rows (``tf32-check``): tf32x3
    products (float32 accuracy, on tensor cores). A wide tile of features
    stays whole in tiles of 32 rows (64 rows spill registers on sm_90):
    on 8M x 128 x 1024, 4.2 instructions per score against 10.1 for chunks
    of 32 features (static SASS counts)."""
    if config["SINGLE_CHUNK"] and config["BLOCK_D"] > 32:
        return dict(config, BLOCK_N=32, BLOCK_K=64, PIECE_D=held_piece(config["BLOCK_D"], d),
                    num_warps=4, num_stages=1, PRECISION="tf32x3")
    block_d = config["BLOCK_D"] if config["SINGLE_CHUNK"] else 32
    return dict(config, BLOCK_N=64, BLOCK_K=64, BLOCK_D=block_d, PIECE_D=held_piece(block_d, d),
                num_warps=4 if block_d >= d else 8, SINGLE_CHUNK=block_d >= d,
                PRECISION="tf32x3")


# ------------------------------------------------------------------ arrays


def _has_negative_strides(x: Any) -> bool:
    return any(stride < 0 for stride in (getattr(x, "strides", None) or ()))


def _contiguous(x: Any) -> Any:
    """A C-contiguous copy of the CuPy (or NumPy) array ``x``, on its device."""
    if is_cupy_array(x):
        import cupy

        with x.device:
            return cupy.ascontiguousarray(x)
    import numpy as np

    return np.ascontiguousarray(x)


def _as_torch(x: Any) -> Any:
    """``x`` as a torch tensor (CuPy: zero-copy through DLPack; a copy where
    its strides are negative: torch.from_dlpack does not raise on those, it
    aborts the process, std::terminate from a noexcept storage-size check,
    torch 2.13 and earlier)."""
    import torch

    if is_torch_array(x):
        return x
    if _has_negative_strides(x):
        x = _contiguous(x)
    try:
        return torch.from_dlpack(x)
    except (BufferError, RuntimeError, ValueError):  # a layout DLPack cannot carry
        return torch.from_dlpack(_contiguous(x))


def _like_input(x: Any, like: Any) -> Any:
    """The torch tensor ``x`` in the library of ``like`` (CuPy: zero-copy)."""
    if isinstance(like, CenteredRows):
        like = like.data
    if is_cupy_array(like):
        import cupy

        return cupy.from_dlpack(x)
    return x


# ------------------------------------------------------------------ passes


#: (device, precision, tiles) of wide tiles of features that asked a block for
#: more shared memory than its GPU has: their passes go in chunks
_NARROW_TILES: set[tuple] = set()


def _launch(
    X: Any, centers: Any, half_sq_norms: Any = None, *, dot_precision: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One pass over the rows of ``X - mean`` (torch tensors; ``mean`` None:
    of X), each tile centred as it is loaded; returns the outputs asked for
    (``options``: those of ``_launch_tiles``).

    Where the GPU refuses the shared memory of a wide tile of features
    (Triton's ``OutOfResources`` at the launch: sm_75 at d = 65-128 in
    every precision, sm_86/89 in tf32x3), the pass goes in chunks of
    features (``tile_config(narrow=True)``), and so do the next ones of the
    same tiles; nothing of the refused launch ran."""
    from triton.runtime.errors import OutOfResources

    dot_precision = precision() if dot_precision is None else dot_precision
    n, d = X.shape
    wide = tile_config(n, d, centers.shape[0], dot_precision)
    key = (str(X.device), dot_precision, wide["BLOCK_N"], wide["BLOCK_K"], wide["BLOCK_D"])
    narrow = key in _NARROW_TILES
    try:
        return _launch_tiles(X, centers, half_sq_norms, dot_precision=dot_precision,
                             narrow=narrow, **options)
    except OutOfResources:
        if narrow or not (wide["SINGLE_CHUNK"] and wide["BLOCK_D"] > 32):
            raise
        _NARROW_TILES.add(key)
        return _launch_tiles(X, centers, half_sq_norms, dot_precision=dot_precision,
                             narrow=True, **options)


def _launch_tiles(
    X: Any, centers: Any, half_sq_norms: Any = None, *, mean: Any = None, weights: Any = None,
    with_scores: bool = False, with_second: bool = False, with_sums: bool = False,
    drop_sums: bool = False, dot_precision: str, narrow: bool = False,
) -> dict[str, Any]:
    """``_launch`` on the tiles of ``tile_config(narrow=narrow)``.
    ``drop_sums``: the sums are added up but not wanted (in float, never
    fixed point)."""
    import torch

    from . import _triton_kernels as kernels

    n, d = X.shape
    k = centers.shape[0]
    device = X.device
    if half_sq_norms is None:
        half_sq_norms = 0.5 * torch.sum(centers * centers, dim=1)
    config = tile_config(n, d, k, dot_precision, narrow=narrow)
    check = dot_precision == "tf32-check"
    redo = listed_config(config, d) if check else config
    C, H = _padded_centers(centers, half_sq_norms, max(config["BLOCK_K"], redo["BLOCK_K"]),
                           max(config["BLOCK_D"], redo["BLOCK_D"]))
    float32 = torch.float32
    dummy = torch.empty(1, dtype=float32, device=device)
    out = {"labels": torch.empty(n, dtype=torch.int64, device=device)}
    out["best"] = torch.empty(n, dtype=float32, device=device) if with_scores else dummy
    out["second"] = torch.empty(n, dtype=float32, device=device) if with_second else dummy
    sum_dtype = getattr(torch, config["sum_dtype"])
    fixed_point = with_sums and not drop_sums and deterministic()
    if not with_sums:
        copies = 1
    elif fixed_point or drop_sums:  # exact, or not wanted: replicas only against collisions
        copies = config["exact_sum_copies"]
    else:
        copies = config["sum_copies"]
    if fixed_point:
        sum_dtype = torch.int64
        scales = _fixed_point_scales(X, mean, weights)
    else:
        scales = torch.ones(2, dtype=torch.float64, device=device)
    out["scales"] = scales
    # unweighted totals are counts: integers (a float32 count stops at 2^24)
    total_dtype = sum_dtype if fixed_point or weights is not None else torch.int32
    if with_sums:
        out["sums"] = torch.zeros((copies, k, d), dtype=sum_dtype, device=device)
        out["totals"] = torch.zeros((copies, k), dtype=total_dtype, device=device)
    else:
        out["sums"] = torch.empty(1, dtype=sum_dtype, device=device)
        out["totals"] = torch.empty(1, dtype=total_dtype, device=device)
    if check:  # rows to redo; pairs of a row and its second best centre (4 and 8 bytes a row)
        listed = torch.empty(max(n, 1), dtype=torch.int32, device=device)
        pairs = torch.empty(2 * max(n, 1), dtype=torch.int32, device=device)
        n_listed, n_pairs = torch.zeros(2, 1, dtype=torch.int32, device=device)
        rounded = _rounded_to_tf32(C)
        center_norms, center_terms, reach_slack = _check_terms(
            half_sq_norms, torch.linalg.vector_norm(C - rounded, dim=1)[:k], d)
    else:
        listed = n_listed = pairs = n_pairs = torch.empty(1, dtype=torch.int32, device=device)
        center_norms = center_terms = reach_slack = dummy
    W = dummy if weights is None else weights
    M = dummy if mean is None else mean
    if n == 0:
        return out
    tiles = {key: config[key] for key in ("BLOCK_N", "BLOCK_K", "BLOCK_D", "PIECE_D",
                                          "SINGLE_CHUNK")}
    common = (X, X.stride(0), X.stride(1), M, C, C.shape[1], H, W)
    flags = {
        "WITH_SECOND": with_second, "WITH_SCORES": with_scores, "WITH_SUMS": with_sums,
        "WITH_WEIGHTS": weights is not None, "FIXED_POINT": fixed_point,
        "CENTERED": mean is not None,
    }
    dense = common
    if check:  # the centres rounded once, and scores of padded centres finite
        dense = (*common[:4], rounded, C.shape[1],
                 torch.clamp(H, max=torch.finfo(float32).max), W)
    safety, _, lane_bits, absolute = check_bound(d, config["BLOCK_K"])
    with _on_device(device):
        grid = (kernels.grid_size(n, config["BLOCK_N"]),)
        kernels.dense_kernel[grid](
            *dense, out["labels"], out["best"], out["second"], out["sums"], out["totals"],
            scales, center_norms, center_terms, reach_slack, safety, lane_bits, absolute,
            listed, n_listed,
            pairs, n_pairs, n, d, k, copies,
            **tiles, PRECISION="tf32" if check else dot_precision,
            TRACK_SECOND=with_second or check, CHECK_MARGIN=check, LANE_MIN=config["LANE_MIN"],
            MEASURE_ROUNDING=config["MEASURE_ROUNDING"],
            **flags,
            num_warps=config["num_warps"], num_stages=config["num_stages"],
        )
        if check:
            programs = min(kernels.grid_size(n, redo["BLOCK_N"]), 8 * _multiprocessors(device))
            for rows, count, two in ((pairs, n_pairs, True), (listed, n_listed, False)):
                kernels.listed_kernel[(programs,)](
                    *common, out["labels"], out["best"], out["second"], out["sums"],
                    out["totals"], scales, rows, count, d, k, copies,
                    **{key: redo[key] for key in tiles}, PRECISION=redo["PRECISION"],
                    LANE_MIN=False, **flags, TWO=two,
                    num_warps=redo["num_warps"], num_stages=redo["num_stages"],
                )
            out["n_listed"], out["n_pairs"] = n_listed, n_pairs
    return out


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _padded_centers(centers: Any, half_sq_norms: Any, block_k: int, block_d: int) -> tuple:
    """The centres padded with zeros to whole tiles (``block_k`` rows,
    ``block_d`` columns; both powers of two, so every smaller tile divides
    them) and their half squared norms padded with +inf: the kernels load
    them without masks or strides. ``half_sq_norms`` None: the centres alone."""
    import torch

    k, d = centers.shape
    C = torch.nn.functional.pad(centers.to(torch.float32),
                                (0, _round_up(d, block_d) - d, 0, _round_up(k, block_k) - k))
    if half_sq_norms is None:
        return C.contiguous()
    H = torch.nn.functional.pad(half_sq_norms.to(torch.float32), (0, C.shape[0] - k),
                                value=float("inf"))
    return C.contiguous(), H.contiguous()


def _rounded_to_tf32(values: Any) -> Any:
    """float32 rounded to the nearest TF32, as ``_triton_kernels._round_to_tf32``."""
    import torch

    bits = values.contiguous().view(torch.int32)
    return ((bits + 0x1000) & -8192).view(torch.float32)


def _on_device(device: Any) -> Any:
    """The context that makes ``device`` current for a launch (a CUDA device;
    nothing on the CPU, where the interpreter runs the kernels)."""
    import contextlib

    import torch

    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _multiprocessors(device: Any) -> int:
    import torch

    if device.type != "cuda":
        return 2
    return torch.cuda.get_device_properties(device).multi_processor_count


def _data_and_mean(X: Any) -> tuple[Any, Any]:
    """X (or a ``CenteredRows``' data) and its mean (None: not centred), as
    torch tensors; the mean flat and contiguous, as the kernels read it."""
    if isinstance(X, CenteredRows):
        return _as_torch(X.data), _as_torch(X.mean).reshape(-1).contiguous()
    return _as_torch(X), None


def nearest_centers(X: Any, centers: Any, *, dot_precision: str | None = None) -> Any:
    """Index of the nearest centre of each row (ties: lowest index): the
    kernels of ``nearest_centers_and_sums``, their sums dropped. A process
    compiles three kernels fewer (a default fit: five, not eight; each
    costs a first call a fraction of a second) for the sums' share of a
    pass, 3-4% on an H200 (run 3)."""
    data, mean = _data_and_mean(X)
    out = _launch(data, _as_torch(centers), mean=mean, with_sums=True, drop_sums=True,
                  dot_precision=dot_precision)
    return _like_input(out["labels"], X)


def nearest_centers_and_sums(
    X: Any, centers: Any, *, weights: Any = None, dot_precision: str | None = None
) -> tuple[Any, Any, Any]:
    """Labels, per-cluster (weighted) sums and total weights in float64, in one pass."""
    import torch

    data, mean = _data_and_mean(X)
    out = _launch(
        data, _as_torch(centers), mean=mean,
        weights=None if weights is None else _as_torch(weights).contiguous(),
        with_sums=True, dot_precision=dot_precision,
    )
    if out["sums"].dtype == torch.int64:  # fixed point: exact integer sums, then scaled
        sums = torch.sum(out["sums"], dim=0).to(torch.float64) / out["scales"][0]
        totals = torch.sum(out["totals"], dim=0).to(torch.float64) / out["scales"][1]
    else:
        sums = torch.sum(out["sums"], dim=0, dtype=torch.float64)
        totals = torch.sum(out["totals"], dim=0, dtype=torch.float64)
    return tuple(_like_input(a, X) for a in (out["labels"], sums, totals))


def nearest_two_centers(
    X: Any, centers: Any, half_sq_norms: Any, *, dot_precision: str | None = None
) -> tuple[Any, Any, Any]:
    """Labels, smallest and second smallest score of each row (exact: a
    TF32-checked pass gives no exact second score, so tf32x3 stands in)."""
    dot_precision = precision() if dot_precision is None else dot_precision
    if dot_precision == "tf32-check":
        dot_precision = "tf32x3"
    data, mean = _data_and_mean(X)
    out = _launch(
        data, _as_torch(centers), _as_torch(half_sq_norms), mean=mean,
        with_scores=True, with_second=True, dot_precision=dot_precision,
    )
    return tuple(_like_input(out[key], X) for key in ("labels", "best", "second"))


#: rows per program of the pass over rows and their assigned centres
ASSIGNED_BLOCK_N = 128


def sq_distances_to_assigned(X: Any, centers: Any, labels: Any) -> Any:
    """``||x_i - centers[labels_i]||^2`` of each row in one pass (the
    primitive ``sq_distances_to_assigned``), a view's rows centred as read."""
    import torch

    from . import _triton_kernels as kernels

    data, mean = _data_and_mean(X)
    n, d = data.shape
    C = _padded_centers(_as_torch(centers), None, 1, kernels.ROW_PASS_WIDTH.value)
    out = torch.empty(n, dtype=torch.float32, device=data.device)
    if n:
        with _on_device(data.device):
            kernels.assigned_kernel[(kernels.grid_size(n, ASSIGNED_BLOCK_N),)](
                data, data.stride(0), data.stride(1),
                out if mean is None else mean,
                C, C.shape[1], _as_torch(labels).contiguous(), out, n, d,
                BLOCK_N=ASSIGNED_BLOCK_N, CENTERED=mean is not None, num_warps=4,
            )
    return _like_input(out, X)


def candidates_config(n: int, d: int, m: int, dot_precision: str) -> dict[str, Any]:
    """Tiles of the k-means++ pass over ``m`` candidates: those of the Lloyd
    pass (``tile_config``), one tile of candidates up to 64.

    With one tile of candidates X is read once whatever its chunks, so more
    than 32 features go in chunks of 32, one in flight, rather than in one
    tile of all. On sm_90 at d = 128 (compiled as launched on contiguous X)
    that is 74 warp instructions a row, 36 KB of shared memory and 174
    registers a thread: two programs a multiprocessor, held by registers,
    not shared memory. One tile of all took 144 KB (one program); greedy
    k-means++ on 8M x 128 x 1024 took 3.8 s with it and 3.2 s with chunks
    over 3 stages, which spilled registers (H200). These tiles are not timed
    yet: ``benchmarks/gpu_targets.py`` times them against their neighbours
    (``KPP_SWEEP``).

    Where d is not a multiple of 16, Triton loads a feature a thread
    (``held_piece``), each thread of 4 warps holding 32 rows of a chunk of
    32: chunks of 16 halve that. On d = 100 and 8 candidates (sm_90) tf32x3
    then takes 194 registers and no spills (was 255 and 4 spill
    instructions), 94.5 warp instructions a row (was 107.6); tf32 and ieee
    fit 3 programs a multiprocessor (was 2).
    """
    config = tile_config(n, d, m, dot_precision)
    block_k = min(64, max(16, _next_power_of_two(m)))
    if d > 32:  # 4 warps spill registers past 16 candidates (sm_90)
        config = dict(config, BLOCK_D=32 if d % 16 == 0 else 16, SINGLE_CHUNK=False,
                      num_stages=1, num_warps=4 if block_k <= 16 else 8)
    config = dict(config, BLOCK_K=block_k, **candidates_override)
    config["SINGLE_CHUNK"] = config["BLOCK_D"] >= d
    if "PIECE_D" not in candidates_override:
        config["PIECE_D"] = held_piece(config["BLOCK_D"], d)
    return config


def closest_with_candidates(
    X: Any, x_sq_norms: Any, weights: Any, closest_sq: Any, rows_x: Any, rows_sq_norms: Any,
    *, dot_precision: str | None = None,
) -> tuple[list, Any]:
    """Greedy k-means++'s pass (the primitive ``closest_with_candidates``) in
    one launch: the (n, m) distances as one block, and the potentials in
    float64 (per-program partial sums added in program order)."""
    import torch

    from . import _triton_kernels as kernels

    dot_precision = precision() if dot_precision is None else dot_precision
    if dot_precision == "tf32-check":  # distances, not a choice between centres
        dot_precision = "tf32x3"
    data, mean = _data_and_mean(X)
    rows = _as_torch(rows_x)
    n, d = data.shape
    m = rows.shape[0]
    device = data.device
    config = candidates_config(n, d, m, dot_precision)
    C, H = _padded_centers(rows, 0.5 * _as_torch(rows_sq_norms), config["BLOCK_K"],
                           config["BLOCK_D"])
    dummy = torch.empty(1, dtype=torch.float32, device=device)
    out = torch.empty((n, m), dtype=torch.float32, device=device)
    programs = kernels.grid_size(n, config["BLOCK_N"]) if n else 0
    partial = torch.zeros((max(programs, 1), m), dtype=torch.float32, device=device)
    if programs:
        with _on_device(device):
            kernels.candidates_kernel[(programs,)](
                data, data.stride(0), data.stride(1),
                dummy if mean is None else mean,
                C, C.shape[1], H,
                _as_torch(x_sq_norms).contiguous(),
                dummy if weights is None else _as_torch(weights).to(torch.float32).contiguous(),
                _as_torch(closest_sq).to(torch.float32).contiguous(),
                out, out.stride(0), partial, partial.stride(0), n, d, m,
                BLOCK_N=config["BLOCK_N"], BLOCK_K=config["BLOCK_K"], BLOCK_D=config["BLOCK_D"],
                PIECE_D=config["PIECE_D"], SINGLE_CHUNK=config["SINGLE_CHUNK"],
                PRECISION=dot_precision,
                CENTERED=mean is not None, WITH_WEIGHTS=weights is not None,
                num_warps=config["num_warps"], num_stages=config["num_stages"],
            )
    potentials = torch.sum(partial, dim=0, dtype=torch.float64)
    return [_like_input(out, X)], _like_input(potentials, X)


# ------------------------------------------------------------------ ahead-of-time check


def compile_for(
    target: Any, n: int, d: int, k: int, dot_precision: str, *, fixed_point: bool = False,
    centered: bool = True, narrow: bool = False,
) -> list[Any]:
    """Compile the kernels of a pass on ``(n, d, k)`` for ``target`` (a
    ``triton.backends.compiler.GPUTarget``) without a GPU, as they are
    launched on a contiguous X: catches shared memory and dot-size errors
    that the interpreter misses, and register spills."""

    from . import _triton_kernels as kernels

    config = tile_config(n, d, k, dot_precision, narrow=narrow)
    check = dot_precision == "tf32-check"
    tiles = {key: config[key] for key in ("BLOCK_N", "BLOCK_K", "BLOCK_D", "PIECE_D",
                                          "SINGLE_CHUNK")}
    flags = {"WITH_SECOND": False, "WITH_SCORES": False, "WITH_SUMS": True,
             "WITH_WEIGHTS": False, "FIXED_POINT": fixed_point, "CENTERED": centered}
    sum_type = "i64" if fixed_point else {"float64": "fp64", "float32": "fp32"}[config["sum_dtype"]]
    pointers = {"X": "*fp32", "stride_xn": "i64", "stride_xd": "i64", "M": "*fp32", "C": "*fp32",
                "C_ROW": "constexpr", "H": "*fp32", "W": "*fp32",
                "LABELS": "*i64", "BEST": "*fp32", "SECOND": "*fp32",
                "SUMS": f"*{sum_type}", "TOTALS": "*i64" if fixed_point else "*i32",
                "SCALES": "*fp64"}
    redo = listed_config(config, d) if check else config
    c_row = _round_up(d, max(config["BLOCK_D"], redo["BLOCK_D"]))
    dense = dict(tiles, C_ROW=c_row, PRECISION="tf32" if check else dot_precision,
                 TRACK_SECOND=check,
                 CHECK_MARGIN=check, LANE_MIN=config["LANE_MIN"],
                 MEASURE_ROUNDING=config["MEASURE_ROUNDING"], **flags)
    sources = [(kernels.dense_kernel, {
        **pointers, "CENTER_NORMS": "*fp32", "CENTER_TERMS": "*fp32", "REACH_SLACK": "*fp32",
        "SAFETY": "fp32", "LANE_BITS": "fp32", "ABSOLUTE": "fp32",
        "LISTED": "*i32", "N_LISTED": "*i32",
        "PAIRS": "*i32", "N_PAIRS": "*i32",
        "n": "i32", "d": "i32", "k": "i32", "copies": "i32",
        **{key: "constexpr" for key in dense},
    }, dense, config["num_warps"], config["num_stages"],
        dict(stride_xn=d, stride_xd=1, n=n, d=d, k=k, copies=config["sum_copies"]))]
    for two in (False, True) if check else ():  # the redo, then the pairs
        listed = dict({key: redo[key] for key in tiles}, C_ROW=c_row, PRECISION=redo["PRECISION"],
                      LANE_MIN=False, **flags, TWO=two)
        sources.append((kernels.listed_kernel, {
            **pointers, "LISTED": "*i32", "N_LISTED": "*i32", "d": "i32", "k": "i32",
            "copies": "i32", **{key: "constexpr" for key in listed},
        }, listed, redo["num_warps"], redo["num_stages"],
            dict(stride_xn=d, stride_xd=1, d=d, k=k, copies=config["sum_copies"])))
    return [_compile(target, *source) for source in sources]


def compile_candidates_for(target: Any, n: int, d: int, m: int, dot_precision: str) -> Any:
    """``compile_for`` of greedy k-means++'s pass over ``m`` candidates."""

    from . import _triton_kernels as kernels

    config = candidates_config(n, d, m, dot_precision)
    constants = {key: config[key] for key in ("BLOCK_N", "BLOCK_K", "BLOCK_D", "PIECE_D",
                                              "SINGLE_CHUNK")}
    constants.update(C_ROW=_round_up(d, config["BLOCK_D"]), PRECISION=dot_precision,
                     CENTERED=True, WITH_WEIGHTS=True)
    signature = {"X": "*fp32", "stride_xn": "i64", "stride_xd": "i64", "M": "*fp32",
                 "C": "*fp32", "H": "*fp32",
                 "XSQ": "*fp32", "W": "*fp32", "CLOSEST": "*fp32", "OUT": "*fp32",
                 "stride_on": "i64", "PARTIAL": "*fp32", "stride_pp": "i64",
                 "n": "i32", "d": "i32", "m": "i32", **{key: "constexpr" for key in constants}}
    return _compile(target, kernels.candidates_kernel, signature, constants, config["num_warps"],
                    config["num_stages"],
                    dict(stride_xn=d, stride_xd=1, stride_on=m, stride_pp=m, n=n, d=d, m=m))


def compile_assigned_for(target: Any, d: int) -> Any:
    """``compile_for`` of the pass over rows and their assigned centres."""

    from . import _triton_kernels as kernels

    constants = {"C_ROW": _round_up(d, kernels.ROW_PASS_WIDTH.value),
                 "BLOCK_N": ASSIGNED_BLOCK_N, "CENTERED": True}
    signature = {"X": "*fp32", "stride_xn": "i64", "stride_xd": "i64", "M": "*fp32",
                 "C": "*fp32", "LABELS": "*i64", "OUT": "*fp32", "n": "i32", "d": "i32",
                 **{key: "constexpr" for key in constants}}
    return _compile(target, kernels.assigned_kernel, signature, constants, 4, 2,
                    dict(stride_xn=d, stride_xd=1, d=d))


def _compile(target: Any, kernel: Any, signature: dict, constants: dict, num_warps: int,
             num_stages: int, ints: dict[str, int] | None = None) -> Any:
    """``kernel`` compiled as a launch specialises it: its pointers 16-byte
    aligned (as torch allocates), each integer of ``ints`` (its value at the
    launch) a constant where it is 1 and marked where it is a multiple of 16,
    unless the kernel does not specialise on it (Triton's rules)."""
    import triton

    if not isinstance(kernel, triton.runtime.JITFunction):  # TRITON_INTERPRET=1
        raise RuntimeError("kernels are interpreted (TRITON_INTERPRET=1): nothing to compile")
    params = {param.name: param for param in kernel.params}
    signature, constants = dict(signature), dict(constants)
    aligned = [["tt.divisibility", 16]]
    attrs = {(params[name].num,): aligned for name, kind in signature.items()
             if kind.startswith("*")}
    for name, value in (ints or {}).items():
        signature[name] = "i32" if -2**31 <= value < 2**31 else "i64"
        if params[name].do_not_specialize:
            continue
        if value == 1:
            signature[name], constants[name] = "constexpr", 1
        elif value % 16 == 0:
            attrs[(params[name].num,)] = aligned
    source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constants,
                                       attrs=attrs)
    return triton.compile(source, target=target,
                          options={"num_warps": num_warps, "num_stages": num_stages})
