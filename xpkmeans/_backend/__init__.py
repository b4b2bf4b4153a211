"""What the array API standard lacks, in one place: the only package that
names a backend.

Every primitive has a portable twin written against the standard
(``_portable``); a fast path is allowed only where ``tests/test_backend.py``
proves it equals that twin. The rooms:

- ``_primitives``: the public primitives, each a guard per fast path, then
  the portable twin: on one block of rows (``nearest_center_labels``,
  ``nearest_two_centers``; ``blocks_run_compiled`` says where they run
  compiled host code, one core a block; ``center_half_sq_norms``: the
  centres' half norms that the whole pass scores with), whole passes over X (``nearest_centers``,
  ``nearest_centers_and_sums``, ``sum_by_cluster``, greedy k-means++'s
  ``closest_with_candidates``, ``sq_distances_to_assigned``,
  ``column_sums``: a fused kernel where one exists; ``sums_in_pass`` says
  where the sums come with the labels), ``cumulative_sum`` (the running sum
  that greedy draws search), ``run_steps`` (a loop that never
  waits for the device, replayable as a CUDA graph),
  ``segment_sum``, ``segment_count``, ``scatter``, ``largest_indices``, ``take_rows``,
  ``select_rows`` (rows that stay sparse),
  ``row_block``, ``sq_row_norms``, ``subtract_row``, ``centered`` (a copy,
  or a ``CenteredRows`` view that the fused passes centre as they read it);
- ``_portable``: the portable twins;
- ``_numpy``: NumPy fast paths; ``_gpu``: torch's and CuPy's own kernels;
  ``_numba``: compiled CPU kernels (optional numba); ``_sparse``: CSR
  matrices of SciPy, CuPy and torch (``sparse``, ``is_sparse``);
- ``_triton``: the fused Lloyd and k-means++ passes on CUDA (tiles, precision, launch) and
  ``_triton_kernels``: its Triton kernels (tested through Triton's
  interpreter in ``tests/test_triton.py``);
- ``_centered``: ``CenteredRows``, X minus its means, centred as it is read;
- ``_host``: the host random generator, host copies, devices, dtypes and row
  blocks; ``_host_input``: what users hand in that is not an array yet (lists,
  data frames, strings, NumPy scalars), as host arrays; ``_threads``: NumPy's (and compiled) blocks on all CPU cores, BLAS limits;
  ``_transfer``: host data to a torch device through pinned memory, row
  blocks streamed to CUDA (``blocks_to_device``);
- ``_capabilities``: which feature runs on which kind of data, and the
  ``FallbackWarning`` where it does not.
"""

from ._host import (
    array_namespace,
    check_random_state,
    concat_rows,
    default_float_dtype,
    device_of,
    from_host,
    host_rng,
    host_xp,
    is_cpu_device,
    is_cuda_array,
    legacy_random_state,
    map_row_blocks,
    picks_rows_cheaply,
    row_blocks,
    row_chunk_size,
    synchronize,
    to_numpy,
    widest_float_dtype,
    without_autograd,
)
from ._host_input import (
    as_array,
    refuse_row_blocks,
    check_dense_chunks,
    encode_host_categories,
    is_bool,
    is_memmap,
    kept_float_dtype,
    object_array,
    shape_of,
)
from ._primitives import (
    all_finite,
    block_width,
    blocks_run_compiled,
    center_half_sq_norms,
    centered,
    closest_with_candidates,
    column_sums,
    cumulative_sum,
    distances_to_centers,
    first_equal_rows,
    largest_indices,
    nearest_center_labels,
    nearest_centers,
    nearest_centers_and_sums,
    nearest_two_centers,
    row_block,
    run_steps,
    scatter,
    select_rows,
    segment_count,
    segment_sum,
    sq_row_norms,
    block_sq_distances_to_assigned,
    sq_distances_to_assigned,
    subtract_row,
    unique_inverse,
    sum_by_cluster,
    sums_in_pass,
    take_rows,
)
from . import _sparse as sparse
from ._sparse import is_sparse
from ._threads import blas_is_limited, map_blocks, n_cores, parallel_region
from ._transfer import blocks_to_device, is_cuda_device, is_pinned_tensor

__all__ = [
    "all_finite",
    "block_width",
    "blocks_run_compiled",
    "center_half_sq_norms",
    "centered",
    "check_dense_chunks",
    "closest_with_candidates",
    "cumulative_sum",
    "column_sums",
    "distances_to_centers",
    "encode_host_categories",
    "array_namespace",
    "as_array",
    "refuse_row_blocks",
    "blas_is_limited",
    "blocks_to_device",
    "check_random_state",
    "concat_rows",
    "default_float_dtype",
    "device_of",
    "first_equal_rows",
    "from_host",
    "host_rng",
    "host_xp",
    "is_bool",
    "is_cpu_device",
    "is_cuda_array",
    "is_cuda_device",
    "is_memmap",
    "kept_float_dtype",
    "is_pinned_tensor",
    "is_sparse",
    "largest_indices",
    "legacy_random_state",
    "map_blocks",
    "map_row_blocks",
    "n_cores",
    "object_array",
    "nearest_center_labels",
    "nearest_centers",
    "nearest_centers_and_sums",
    "nearest_two_centers",
    "row_block",
    "run_steps",
    "parallel_region",
    "picks_rows_cheaply",
    "row_blocks",
    "row_chunk_size",
    "scatter",
    "segment_count",
    "segment_sum",
    "select_rows",
    "shape_of",
    "sparse",
    "block_sq_distances_to_assigned",
    "sq_distances_to_assigned",
    "sq_row_norms",
    "subtract_row",
    "sum_by_cluster",
    "sums_in_pass",
    "synchronize",
    "take_rows",
    "to_numpy",
    "unique_inverse",
    "widest_float_dtype",
    "without_autograd",
]
