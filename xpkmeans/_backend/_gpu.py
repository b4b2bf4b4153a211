"""Fast paths of torch and CuPy's own kernels (each tested equal to its portable twin)."""

from __future__ import annotations

from ._host import env_flag


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

    with values.device:  # CuPy allocates on the current device
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
    """Rows per segment (int64). On a GPU, atomic additions: ``bincount``
    first copies the largest id to the host, a wait for the device."""
    if hasattr(segment_ids, "get"):  # CuPy
        import cupy

        with segment_ids.device:  # float64 atomics: exact counts below 2^53
            counts = cupy.zeros(n_segments, dtype=cupy.float64)
            cupy.add.at(counts, segment_ids, cupy.ones(segment_ids.shape, dtype=cupy.float64))
            return counts.astype(cupy.int64)
    import torch

    if not segment_ids.is_cuda:
        return torch.bincount(segment_ids, minlength=n_segments).to(torch.int64)
    counts = torch.zeros(n_segments, dtype=torch.int64, device=segment_ids.device)
    return counts.index_add_(0, segment_ids, torch.ones_like(segment_ids, dtype=torch.int64))


def scatter(values, indices, updates):
    out = values.copy() if hasattr(values, "get") else values.clone()
    out[indices] = updates
    return out


def _is_cuda_tensor(value) -> bool:
    from array_api_compat import is_torch_array

    return is_torch_array(value) and value.is_cuda


def refuses_float_cumsum(values) -> bool:
    """True where torch refuses a floating-point ``cumsum``: a CUDA tensor
    under ``torch.use_deterministic_algorithms(True)`` (its CUB scan varies
    run to run: torch raises ``RuntimeError``, or warns with ``warn_only``)."""
    import torch

    return _is_cuda_tensor(values) and torch.are_deterministic_algorithms_enabled()


def cumulative_sum_by_doubling(values):
    """The running sum of the 1-D torch tensor ``values`` in ceil(log2 n)
    rounds of shifted additions (Hillis-Steele): elementwise only, so the
    same bits every run, and nothing waits for the device (a CUDA graph
    replays it)."""
    import torch

    total, shift = values.clone(), 1
    while shift < values.shape[0]:
        total = torch.cat([total[:shift], total[shift:] + total[:-shift]])
        shift *= 2
    return total


def graphs_handle(state: tuple, reads: tuple = ()) -> bool:
    """True when ``run_steps`` replays a CUDA graph: a state of torch CUDA
    tensors (CuPy queues on streams of its own), unless
    ``XPKMEANS_CUDA_GRAPHS=0`` or the step reads sparse data (its rows are
    gathered through host copies of the row pointers: not capturable)."""
    if not env_flag("XPKMEANS_CUDA_GRAPHS", True):
        return False
    from ._sparse import is_sparse

    return (all(_is_cuda_tensor(value) for value in state)
            and not any(is_sparse(value) for value in reads))


def run_steps_in_graph(step, state, count):
    """``run_steps`` on torch CUDA tensors: the first step eagerly, on a side
    stream as torch asks before a capture (kernels compile, libraries set
    up); then one CUDA graph of a step and the copy of its result into its
    input, replayed ``count - 1`` times."""
    import torch

    device = state[0].device
    with torch.cuda.device(device):  # the capture's stream on the data's device
        static = tuple(value.clone() for value in state)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for target, value in zip(static, step(static)):
                target.copy_(value)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: other threads' CUDA calls (a fit in another thread) go on
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(device=device),
                              capture_error_mode="thread_local"):
            for target, value in zip(static, step(static)):
                target.copy_(value)
        for _ in range(count - 1):
            graph.replay()
    return static
