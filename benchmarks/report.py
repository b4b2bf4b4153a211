"""Write a run's results: ``<tag>.json``, ``<tag>.md`` and ``<tag>-scaling.png``.

Ratios are computed here, against the reference library's row of the same
problem in the same run (``time / reference time``: above 1 is slower).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    tag = results["meta"]["tag"]
    paths = [out / f"{tag}.json", out / f"{tag}.md"]
    paths[0].write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    png = None
    if results["scaling"]:
        png = out / f"{tag}-scaling.png"
        if scaling_plot(results, png):
            paths.append(png)
        else:
            png = None
    paths[1].write_text(markdown(results, png.name if png else None))
    return paths


def emit(result: dict[str, Any], out: Path | None) -> None:
    """A standalone benchmark's result: JSON on stdout, and in ``out`` if given."""
    text = json.dumps(result, indent=1, default=_json_default)
    print(text)
    if out is not None:
        out.write_text(text + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


# ------------------------------------------------------------------ markdown


def markdown(results: dict[str, Any], png_name: str | None = None) -> str:
    meta = results["meta"]
    lines = [f"# xpkmeans benchmarks: `{meta['tag']}`", ""]
    lines += _meta_lines(meta)
    problems = {p["name"]: p for p in results["problems"]}
    if results["lloyd"]:
        lines += _lloyd_section(results, problems)
    if results["fit"]:
        lines += _fit_section(results, problems)
    if results["memory"]:
        lines += _memory_section(results, problems)
    if results["scaling"]:
        lines += _scaling_section(results, png_name)
    if results.get("roofline"):
        lines += _roofline_rates(results["roofline"]["rates"])
    lines += _notes(results)
    return "\n".join(lines) + "\n"


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    m = meta["machine"]
    machine = f"{m['cpu']}, {m['cores']} usable cores ({m['logical_cpus']} logical CPUs)"
    if m.get("memory_gib"):
        machine += f", {m['memory_gib']:.0f} GiB RAM"
    if m.get("gpu"):
        g = m["gpu"]
        machine = f"{g['name']} ({g['memory_gib']:.0f} GiB, CUDA {g['cuda']}); host: " + machine
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    if meta.get("git"):
        versions += f"; repository at {meta['git']}"
    lines = [
        f"- Machine: {machine}; {m['os']}, Python {m['python']}",
        f"- Date (UTC): {meta['date']}; run took {_duration(meta['seconds'].get('total'))}",
        f"- Command: `{meta['command'].strip()}`",
        f"- Versions: {versions}",
        f"- Threads (as the libraries set them; never changed): {_threads(meta['threads'])}",
        f"- Method: median of {meta['rounds']} round(s); in each round every library runs once, "
        "the order rotating from round to round; one warm-up call per library first "
        f"({meta['warmup']}). The clock stops after the device is synchronised. "
        "Data: float32 Gaussian blobs (k centres uniform in [-10, 10]^d, std 1), "
        f"seed {meta['seed']}; generation is not timed.",
        f"- Ratios: time / time of `{meta['reference']}` on the same problem in this run "
        "(above 1: slower).",
    ]
    loads = meta.get("load_average") or {}
    if loads:
        lines.append("- Load average (1, 5, 15 min) at the start and after each part: "
                     + "; ".join(f"{k} {v}" for k, v in loads.items())
                     + f" (on {m['cores']} cores: a load above that means other work shared the CPU).")
    if meta["skipped"]:
        lines.append("- Not run: " + "; ".join(f"{k} ({v})" for k, v in meta["skipped"].items()))
    return lines + [""]


def _threads(info: dict[str, Any]) -> str:
    parts = []
    for pool in info.get("threadpoolctl") or []:
        parts.append(f"{pool['internal_api']} {pool.get('version') or ''} "
                     f"({pool['prefix']}) {pool['num_threads']}".replace("  ", " "))
    for key in ("torch.get_num_threads", "faiss.omp_get_max_threads"):
        if key in info:
            parts.append(f"{key}() = {info[key]}")
    parts.append(f"OMP_NUM_THREADS={info.get('OMP_NUM_THREADS') or 'unset'}")
    return "; ".join(parts)


def _reference_rows(rows: list[dict[str, Any]], reference: str) -> dict[str, dict[str, Any]]:
    return {r["problem"]: r for r in rows if r["library"] == reference and r.get("median_s")}


def _lloyd_section(results: dict[str, Any], problems: dict[str, Any]) -> list[str]:
    ref = _reference_rows(results["lloyd"], results["meta"]["reference"])
    bounds = {}
    if results.get("roofline"):
        bounds = {b["problem"]: b for b in results["roofline"]["bounds"]}
    lines = [
        "## 1. Time per Lloyd iteration",
        "",
        "Every library starts from the same k centres (k distinct rows of X), one "
        "initialisation, no tolerance (`tol=0`), a fixed number of iterations; the "
        "time of the whole call is divided by the iterations run. The inertia column "
        "is the relative difference, to the reference, of the inertia of the final "
        "centres (one evaluation for all, see Notes): near 0 means the same iterations "
        "were computed; libraries diverge once a cluster empties, as each refills it its "
        "own way (scikit-learn and xpkmeans: the farthest points; faiss: splits a large "
        "cluster; fast-pytorch-kmeans: the origin).",
        "",
    ]
    head = "| problem | iters | library | ms / iter (min–max) | × ref | n_iter | inertia vs ref |"
    rule = "|---|---:|---|---:|---:|---:|---:|"
    if bounds:
        head += " roofline ms | roofline / measured |"
        rule += "---:|---:|"
    lines += [head, rule]
    for row in results["lloyd"]:
        p = problems[row["problem"]]
        cells = [p["shape"], str(row["expected_iter"]), row["library"]]
        if row.get("error"):
            cells += [f"failed: {row['error']}", "", "", ""]
            if bounds:
                cells += ["", ""]
            lines.append(_row(cells))
            continue
        n_iter = row.get("n_iter") or row["expected_iter"]
        per = [t / n_iter for t in row["times_s"]]
        r = ref.get(row["problem"])
        cells += [
            f"{_ms(row['per_iter_s'])} ({_ms(min(per))}–{_ms(max(per))}{_rounds(row, results)})",
            _ratio(row["per_iter_s"], r["per_iter_s"]) if r else "—",
            _n_iter(row),
            _rel(row.get("inertia"), r.get("inertia")) if r else "—",
        ]
        if bounds:
            b = bounds.get(row["problem"]) if row.get("device") == "gpu" else None
            cells += [_ms(b["roofline_s"]), _percent(b["roofline_s"] / row["per_iter_s"])] if b else ["", ""]
        lines.append(_row(cells))
    return lines + [""]


def _fit_section(results: dict[str, Any], problems: dict[str, Any]) -> list[str]:
    ref = _reference_rows(results["fit"], results["meta"]["reference"])
    lines = [
        "## 2. Default fit",
        "",
        "Each library with its default parameters and seed 0 (xpkmeans and scikit-learn: "
        "`KMeans(k, random_state=0)`, i.e. greedy k-means++, one initialisation, "
        "`max_iter=300`, `tol=1e-4`; the others: see Notes), timed end to end. The "
        "inertia is that of the final centres, evaluated the same way for all. "
        "xpkmeans: *init s* is the initialisation (k-means++) and *Lloyd s* the rest "
        "of the fit (centring and the EM iterations), both of the last round.",
        "",
        "| problem | library | fit s (min–max) | × ref | init s | Lloyd s | n_iter | inertia "
        "| inertia / ref |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["fit"]:
        p = problems[row["problem"]]
        cells = [p["shape"], row["library"]]
        if row.get("error"):
            lines.append(_row(cells + [f"failed: {row['error']}", "", "", "", "", "", ""]))
            continue
        r = ref.get(row["problem"])
        split = "init_s" in row
        cells += [
            f"{_s(row['median_s'])} ({_s(min(row['times_s']))}–{_s(max(row['times_s']))}"
            f"{_rounds(row, results)})",
            _ratio(row["median_s"], r["median_s"]) if r else "—",
            _s(row["init_s"]) if split else "—",
            _s(row["after_init_s"]) if split else "—",
            "—" if row.get("n_iter") is None else str(row["n_iter"]),
            f"{row['inertia']:.6g}",
            f"{row['inertia'] / r['inertia']:.4f}" if r and r.get("inertia") else "—",
        ]
        lines.append(_row(cells))
    return lines + [""]


def _memory_section(results: dict[str, Any], problems: dict[str, Any]) -> list[str]:
    gpu = results["meta"]["device"] == "gpu"
    lines = [
        "## 3. Peak memory of the Lloyd iterations",
        "",
        f"The call of table 1 (shared init, all n points) with max_iter="
        f"{results['meta']['memory_iter']}: the same work for every library (default fits differ: faiss subsamples). "
        "CPU libraries: each (library, problem) in a fresh process; peak resident set "
        "(`VmHWM`, reset after the data is built) and that peak above the memory resident "
        "before the call (interpreter, imports, data). "
        + ("GPU libraries: peak bytes allocated during the call above those allocated before "
           "(torch `max_memory_allocated`, CuPy pool hook). " if gpu else "")
        + "`extra / data`: the extra memory in units of the size of X.",
        "",
        "| problem | X MiB | library | peak MiB | extra MiB | extra / data |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in results["memory"]:
        p = problems[row["problem"]]
        cells = [p["shape"], _mib(row["data_mib"]), row["library"]]
        if row.get("error"):
            lines.append(_row(cells + [f"failed: {row['error']}", "", ""]))
            continue
        peak = row.get("peak_mib")
        cells += [
            f"{peak:.0f}" if peak is not None else "—",
            f"{row['extra_mib']:.0f}",
            f"{row['extra_mib'] / row['data_mib']:.2f}",
        ]
        lines.append(_row(cells))
    return lines + [""]


def _scaling_section(results: dict[str, Any], png_name: str | None) -> list[str]:
    table = _scaling_table(results["scaling"])
    libs = list(table)
    ns = sorted({n for series in table.values() for n in series})
    row0 = results["scaling"][0]
    lines = [
        f"## 4. Time per Lloyd iteration versus n (d={row0['d']}, k={row0['k']}, "
        f"{row0['expected_iter']} iterations)",
        "",
        f"Median of {results['meta'].get('scaling_rounds', results['meta']['rounds'])} rounds "
        "(bars in the figure: min–max). Log-log; linear growth in n is a slope of 1 (last "
        "row: slope fitted to the medians; a fixed cost per call lowers it at small n).",
        "",
    ]
    if png_name:
        lines += [f"![time per iteration versus n]({png_name})", ""]
    lines += ["| n | " + " | ".join(f"{lib} ms / iter" for lib in libs) + " |",
              "|---:|" + "---:|" * len(libs)]
    for n in ns:
        lines.append(_row([f"{n:,}"] + [_ms(table[lib][n]) if n in table[lib] else "—"
                                       for lib in libs]))
    lines.append(_row(["slope"] + [_slope_text(table[lib]) for lib in libs]))
    return lines + [""]


def _roofline_rates(roof: dict[str, Any]) -> list[str]:
    return [
        "## Roofline of this GPU",
        "",
        f"Measured here: float32 GEMM {roof['gemm_flops'] / 1e12:.1f} TFLOP/s "
        f"({roof['gemm_size']}² matmul, TF32 off); device copy {roof['copy_bandwidth'] / 1e9:.0f} GB/s "
        f"(read + write of a {roof['copy_mib']} MiB buffer); {roof['method']}. One Lloyd "
        "iteration cannot take less than max(2·n·d·k / GEMM rate, bytes of X / bandwidth), "
        "shown in table 1.",
        "",
    ]


def _notes(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    lines = ["## Notes", ""]
    if meta.get("threads_set"):
        lines.append(f"- Threads were set on request (`--threads`): {meta['threads_set']}.")
    lines.append(f"- Budget: a (figure, problem, library) stops repeating once its rounds would "
                 f"exceed {meta['budget_s']:.0f} s in all (the round count is then shown).")
    for p in results["problems"]:
        if p.get("skip_reason"):
            lines.append(f"- {p['shape']}: {p['skip_reason']}.")
    lines.append("- Inertia evaluation: every point to its nearest final centre (float32 GEMM), "
                 "squared distances summed in float64; the same code for every library.")
    for name, note in meta["libraries"].items():
        lines.append(f"- `{name}`: {note}")
    mismatches = [r for r in results["lloyd"] + results["scaling"]
                  if r.get("n_iter") is not None and r["n_iter"] != r["expected_iter"]]
    for r in mismatches:
        lines.append(f"- n_iter mismatch: `{r['library']}` on {r['problem']} ran {r['n_iter']} "
                     f"iterations, not {r['expected_iter']} (converged early: time per iteration "
                     "still divides by the iterations run).")
    for section in ("lloyd", "fit", "memory", "scaling"):
        for r in results[section]:
            if r.get("error"):
                lines.append(f"- {section}: `{r['library']}` on {r['problem']} failed: {r['error']}")
    for section in ("lloyd", "fit", "scaling"):
        for r in results[section]:
            for w in r.get("warnings") or []:
                lines.append(f"- {section}: `{r['library']}` on {r['problem']} warned: {w}")
    secs = ", ".join(f"{k} {_duration(v)}" for k, v in meta["seconds"].items())
    lines.append(f"- Wall time per part: {secs}.")
    return lines


# ------------------------------------------------------------------ scaling figure


def _scaling_table(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    table: dict[str, dict[int, float]] = {}
    for r in rows:
        series = table.setdefault(r["library"], {})
        if r.get("per_iter_s"):
            series[r["n"]] = r["per_iter_s"]
    return table


def _scaling_spread(rows: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[float, float]]:
    """(library, n) -> (fastest, slowest) seconds per iteration over the rounds."""
    out = {}
    for r in rows:
        if r.get("per_iter_s"):
            iters = r.get("n_iter") or r["expected_iter"]
            out[r["library"], r["n"]] = (min(r["times_s"]) / iters, max(r["times_s"]) / iters)
    return out


def _slope(series: dict[int, float]) -> float | None:
    if len(series) < 2:
        return None
    n = np.log(np.array(list(series), dtype=float))
    t = np.log(np.array(list(series.values()), dtype=float))
    return float(np.polyfit(n, t, 1)[0])


def _slope_text(series: dict[int, float]) -> str:
    slope = _slope(series)
    return "—" if slope is None else f"{slope:.2f}"


def scaling_plot(results: dict[str, Any], path: Path) -> bool:
    """Log-log time per iteration versus n; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    table = _scaling_table(results["scaling"])
    row0 = results["scaling"][0]
    meta = results["meta"]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    markers = "osD^v<>"
    spread = _scaling_spread(results["scaling"])
    for i, (lib, series) in enumerate(table.items()):
        if not series:
            continue
        ns = sorted(series)
        ts = np.array([series[n] for n in ns]) * 1e3
        lo = np.array([spread[lib, n][0] for n in ns]) * 1e3
        hi = np.array([spread[lib, n][1] for n in ns]) * 1e3
        slope = _slope(series)
        label = lib if slope is None else f"{lib} (slope {slope:.2f})"
        ax.errorbar(ns, ts, yerr=[ts - lo, hi - ts], marker=markers[i % len(markers)],
                    capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    all_n = sorted({n for s in table.values() for n in s})
    if len(all_n) > 1:
        n_max = all_n[-1]
        t_max = float(np.median([s[n_max] for s in table.values() if n_max in s]))
        guide = [t_max * 1e3 * n / n_max for n in all_n]
        ax.plot(all_n, guide, "k--", lw=0.8, alpha=0.6, label="∝ n (slope 1)")
    machine = meta["machine"]
    where = machine["gpu"]["name"] if machine.get("gpu") else f"{machine['cpu']}, {machine['cores']} cores"
    ax.set_title(f"Time per Lloyd iteration, d={row0['d']}, k={row0['k']}, float32\n{where}",
                 fontsize=10)
    ax.set_xlabel("n (samples)")
    ax.set_ylabel("ms per iteration (median; bars: min–max)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ------------------------------------------------------------------ formatting


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _s(seconds: float) -> str:
    return f"{seconds:.3g}" if seconds < 100 else f"{seconds:.0f}"


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}"


def _rel(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "—"
    rel = (value - reference) / reference
    return "0" if rel == 0 else f"{rel:+.1e}"


def _rounds(row: dict[str, Any], results: dict[str, Any]) -> str:
    done, planned = len(row["times_s"]), results["meta"]["rounds"]
    return "" if done >= planned else f"; {done} of {planned} rounds"


def _n_iter(row: dict[str, Any]) -> str:
    n_iter = row.get("n_iter")
    if n_iter is None:
        return "—"
    return str(n_iter) if n_iter == row["expected_iter"] else f"**{n_iter}** ≠ {row['expected_iter']}"


def _duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.2g}%" if fraction < 0.1 else f"{fraction:.0%}"


def _mib(value: float) -> str:
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"
