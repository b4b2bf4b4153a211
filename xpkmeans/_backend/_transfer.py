"""Host data to a torch device: pinned memory, so that the host does not
wait for the device (a copy from pageable memory first waits for the
stream to drain), and row blocks streamed with their copies overlapping
the kernels (out-of-core fits)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from array_api_compat import is_torch_array

from ._threads import map_blocks, n_cores


def is_cuda_device(device: Any) -> bool:
    """True for a torch CUDA device ("cuda", "cuda:1" or a ``torch.device``)."""
    import torch

    return device is not None and torch.device(device).type == "cuda"


def torch_from_host(values: np.ndarray, device: Any, dtype: Any) -> Any:
    """A host NumPy array on a CUDA device, staged in pinned memory (torch's
    caching host allocator keeps the buffer until the copy is done): the
    host does not wait for the kernels queued before the copy."""
    import torch

    like = torch.from_numpy(np.empty(0, dtype=values.dtype.newbyteorder("=")))
    staged = torch.empty(values.shape, dtype=like.dtype, pin_memory=True)
    staged.numpy()[...] = values
    return staged.to(device=device, dtype=dtype, non_blocking=True)


def is_pinned_tensor(x: Any) -> bool:
    """True for a torch tensor in pinned host memory."""
    return is_torch_array(x) and x.device.type == "cpu" and x.is_pinned()


def blocks_to_device(host_blocks: Iterator[Any], device: Any) -> Iterator[Any]:
    """Host row blocks (NumPy, or rows of a pinned tensor) as torch tensors on
    ``device``, in order: on CUDA, the copy of the next block overlaps the
    kernels on the current one."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        yield from _overlapped_to_cuda(host_blocks, device)
        return
    for block in host_blocks:
        yield torch.from_numpy(np.array(block)).to(device)  # a writable copy


def _overlapped_to_cuda(host_blocks: Iterator[Any], device: Any) -> Iterator[Any]:
    """Host blocks to a CUDA device, the copy of the next block overlapping the
    kernels on the current one: two pinned buffers (NumPy blocks are staged
    there; a pinned tensor's blocks are copied as they are), a copy stream,
    events."""
    import torch

    copy_stream = torch.cuda.Stream(device=device)
    compute_stream = torch.cuda.current_stream(device)
    pinned: list = [None, None]
    copied: list = [None, None]  # copy done (the device block is ready)
    consumed: list = [None, None]  # kernels on the device block done

    def staged(slot: int, block: np.ndarray) -> Any:
        """``block`` in the slot's pinned buffer, once its last copy has left."""
        buffer = pinned[slot]
        if buffer is None or buffer.shape[0] < block.shape[0] \
                or buffer.shape[1:] != block.shape[1:] or buffer.dtype != _torch_dtype(block):
            pinned[slot] = buffer = torch.empty(block.shape, dtype=_torch_dtype(block),
                                                pin_memory=True)
        elif copied[slot] is not None:
            copied[slot].synchronize()
        host = buffer[: block.shape[0]]
        copy_rows_on_all_cores(host.numpy(), block)
        return host

    def start_copy(slot: int, block: Any) -> Any:
        # rows of a pinned tensor are copied from where they lie
        host = block if is_torch_array(block) else staged(slot, block)
        with torch.cuda.stream(copy_stream):
            if consumed[slot] is not None:
                copy_stream.wait_event(consumed[slot])
            on_device = host.to(device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(copy_stream)
        copied[slot] = event
        on_device.record_stream(compute_stream)
        return on_device

    slot = 0
    iterator = iter(host_blocks)
    current = next(iterator, None)
    if current is None:
        return
    pending = start_copy(slot, current)
    for following in iterator:
        ready, ready_slot = pending, slot
        slot = 1 - slot
        pending = start_copy(slot, following)  # overlaps the kernels on `ready`
        compute_stream.wait_event(copied[ready_slot])
        yield ready
        consumed[ready_slot] = torch.cuda.Event()
        consumed[ready_slot].record(compute_stream)
    compute_stream.wait_event(copied[slot])
    yield pending


def copy_rows_on_all_cores(destination: np.ndarray, block: np.ndarray) -> None:
    """``destination[...] = block`` on all cores, in parts of at least 4 MiB: one
    core copies memory at a fraction of a host-to-device link's speed."""
    n_parts = max(1, min(n_cores(), block.nbytes >> 22))
    bounds = [block.shape[0] * part // n_parts for part in range(n_parts + 1)]
    map_blocks(lambda rows: np.copyto(destination[rows], block[rows], casting="unsafe"),
               [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])], xp=np)


def _torch_dtype(block: np.ndarray) -> Any:
    import torch

    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}.get(
        block.dtype, torch.float64
    )
