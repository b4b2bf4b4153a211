"""Quality targets of the initialisations (issue 9), as MET / NOT MET.

- the default fit (greedy k-means++, then Lloyd): mean inertia over the
  seeds <= 1.0x scikit-learn's default fit on iris, wine, digits and blobs;
- ``init="k-means||"`` then Lloyd: mean inertia within 2% of the default
  fit's on blobs and digits (the others are printed too).

Usage::

    python -m benchmarks.init_quality             # 5 seeds, about a minute on 2 cores
    python -m benchmarks.init_quality --seeds 20  # the spread of 5-seed means shows
"""

from __future__ import annotations

import argparse
import os

import numpy as np

DEFAULT_FIT_TARGET = 1.0  # mean default-fit inertia / scikit-learn's
PARALLEL_TARGET = 1.02  # mean k-means|| fit inertia / default fit's
PARALLEL_DATASETS = ("digits", "blobs")


def datasets() -> dict[str, tuple[np.ndarray, int]]:
    """name: (X, n_clusters); blobs overlap (std 3), so starts matter."""
    from sklearn.datasets import load_digits, load_iris, load_wine

    import xpkmeans

    blobs, _ = xpkmeans.make_blobs(20_000, 16, centers=32, cluster_std=3.0, random_state=0)
    return {
        "iris": (load_iris().data, 3),
        "wine": (load_wine().data, 3),
        "digits": (load_digits().data, 10),
        "blobs 20k×16, k=32": (np.asarray(blobs), 32),
    }


def mean_inertias(X: np.ndarray, n_clusters: int, seeds: range) -> dict[str, float]:
    from sklearn.cluster import KMeans as SkKMeans

    from xpkmeans import KMeans

    fits = {
        "sklearn": lambda s: SkKMeans(n_clusters, random_state=s).fit(X).inertia_,
        "k-means++": lambda s: KMeans(n_clusters, random_state=s).fit(X).inertia_,
        "k-means||": lambda s: KMeans(n_clusters, init="k-means||", random_state=s).fit(X).inertia_,
    }
    return {name: float(np.mean([fit(s) for s in seeds])) for name, fit in fits.items()}


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.init_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    seeds = range(parser.parse_args(argv).seeds)
    print(f"mean final inertia over seeds {seeds.start}..{seeds.stop - 1}; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| data | k | default fit / sklearn | k-means|| fit / default fit |")
    print("|---|---:|---:|---:|")
    verdicts = []
    for name, (X, k) in datasets().items():
        mean = mean_inertias(X, k, seeds)
        default_ratio = mean["k-means++"] / mean["sklearn"]
        parallel_ratio = mean["k-means||"] / mean["k-means++"]
        print(f"| {name} | {k} | {default_ratio:.4f} | {parallel_ratio:.4f} |")
        verdicts.append((f"default fit <= {DEFAULT_FIT_TARGET:.2f}x sklearn on {name}",
                         default_ratio <= DEFAULT_FIT_TARGET))
        if name.split()[0] in PARALLEL_DATASETS:
            verdicts.append((f"k-means|| fit within {PARALLEL_TARGET - 1:.0%} of k-means++ on {name}",
                             parallel_ratio <= PARALLEL_TARGET))
    print()
    for what, met in verdicts:
        print(f"{'MET    ' if met else 'NOT MET'} {what}")
    return all(met for _, met in verdicts)


if __name__ == "__main__":
    main()
