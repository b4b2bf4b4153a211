"""Benchmark suite of xpkmeans against scikit-learn, faiss and GPU peers.

Run ``python -m benchmarks.run --help``. One module per idea:

- ``problems``: the problem sizes (declared as data) and their data sets;
- ``libraries``: every library as an adapter, registered by name;
- ``timing``: the clock, GPU synchronisation, warm-up and interleaved rounds;
- ``memory``: peak memory, CPU in a fresh subprocess, GPU from allocator stats;
- ``quality``: the one inertia evaluation applied to every library's centres;
- ``environment``: machine, library versions, BLAS threads, result file tag;
- ``roofline``: GEMM rate and copy bandwidth of a CUDA device;
- ``report``: markdown, JSON and the log-log scaling figure;
- ``run``: the command line.
"""
