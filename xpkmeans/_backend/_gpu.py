"""Fast paths of torch and CuPy's own kernels (each tested equal to its portable twin)."""

from __future__ import annotations

import os


def segment_sum_torch(values, segment_ids, n_segments, weights):
    import torch

    rows = values if weights is None else values * weights[:, None]
    shape = (n_segments, values.shape[1])
    sums = torch.zeros(shape, dtype=values.dtype, device=values.device)
    sums.index_add_(0, segment_ids, rows)
    if weights is None:  # counts: a histogram, not atomics on few addresses
        return sums, segment_count(segment_ids, n_segments).to(values.dtype)
    totals = torch.zeros(n_segments, dtype=values.dtype, device=values.device)
    return sums, totals.index_add_(0, segment_ids, weights)


def segment_sum_cupy(values, segment_ids, n_segments, weights):
    import cupy

    rows = values if weights is None else values * weights[:, None]
    sums = cupy.zeros((n_segments, values.shape[1]), dtype=values.dtype)
    # ufunc.at: cupyx.scatter_add is deprecated from CuPy 14
    cupy.add.at(sums, segment_ids, rows)
    if weights is None:
        return sums, segment_count(segment_ids, n_segments).astype(values.dtype)
    totals = cupy.zeros(n_segments, dtype=values.dtype)
    cupy.add.at(totals, segment_ids, weights)
    return sums, totals


def segment_count(segment_ids, n_segments):
    """torch or CuPy ``bincount`` (int64)."""
    if hasattr(segment_ids, "get"):  # CuPy
        import cupy

        return cupy.bincount(segment_ids, minlength=n_segments).astype(cupy.int64, copy=False)
    import torch

    return torch.bincount(segment_ids, minlength=n_segments).to(torch.int64)


def scatter(values, indices, updates):
    out = values.copy() if hasattr(values, "get") else values.clone()
    out[indices] = updates
    return out


def graphs_handle(state: tuple) -> bool:
    """True when ``run_steps`` replays a CUDA graph: a state of torch CUDA
    tensors (CuPy queues on streams of its own), unless
    ``XPKMEANS_CUDA_GRAPHS=0``."""
    if os.environ.get("XPKMEANS_CUDA_GRAPHS", "1").lower() in ("0", "false", "no"):
        return False
    from array_api_compat import is_torch_array

    return all(is_torch_array(value) and value.is_cuda for value in state)


def run_steps_in_graph(step, state, count):
    """``run_steps`` on torch CUDA tensors: the first step eagerly, on a side
    stream as torch asks before a capture (kernels compile, libraries set
    up); then one CUDA graph of a step and the copy of its result into its
    input, replayed ``count - 1`` times."""
    import torch

    static = tuple(value.clone() for value in state)
    side = torch.cuda.Stream(device=static[0].device)
    side.wait_stream(torch.cuda.current_stream(static[0].device))
    with torch.cuda.stream(side):
        for target, value in zip(static, step(static)):
            target.copy_(value)
    torch.cuda.current_stream(static[0].device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for target, value in zip(static, step(static)):
            target.copy_(value)
    for _ in range(count - 1):
        graph.replay()
    return static
