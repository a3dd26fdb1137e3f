#!/usr/bin/env python
"""Benchmark the cluster-library generator (jaxcomp.library).

Prints, in one run:

1. the time to load the star table and build the synthesis tables;
2. clusters per second by mass decade (log M in [d, d+1), ages log-uniform, A_V uniform),
   single process, with the expected number of individually drawn stars per cluster;
3. a naive baseline measured in the same run: every star of a cluster drawn with
   ``sample_imf`` and its magnitudes looked up in a Python loop, one star per call, for
   small clusters (log M in [2, 3), where it is feasible); the ratio to the vectorised
   code on the same clusters, and the extrapolated ratio for the library's mass
   distribution (the naive cost grows with the number of stars, ~10^7 per cluster on
   average for log M uniform on [2, 8]);
4. the whole library: ``generate_library(n, seed, n_workers)`` (default 750,000 clusters,
   2 workers), clusters per second and wall time.

Nebular emission is on (the library default); ``--stellar-only`` times the stellar light
alone (``LibraryConfig(nebular=False)``).

Usage::

    python benchmarks/bench_library.py [--n 750000] [--workers 2] [--per-decade 2000]
        [--stellar-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxcomp.library import (  # noqa: E402
    LibraryConfig,
    PopulationSynthesis,
    StarPhotometry,
    generate_library,
    sample_imf,
)
from jaxcomp.survey import NGC628_DISTANCE_MODULUS  # noqa: E402


def random_clusters(n, lo, hi, gen):
    log_mass = gen.uniform(lo, hi, n)
    log_age = gen.uniform(np.log10(10**5.5), np.log10(1.4e10), n)
    av = gen.uniform(0.0, 3.0, n)
    return log_mass, log_age, av


def naive_cluster_magnitudes(model, log_mass, log_age, av, gen):
    """Baseline: draw every star, then look each one up in a Python loop."""
    out = np.empty((log_mass.size, len(model.bands)))
    for i in range(log_mass.size):
        stars = sample_imf(10 ** log_mass[i], model.imf, rng=gen)
        total = np.zeros(len(model.bands))
        for mass in stars:
            mags = model.star_magnitudes(mass, log_age[i], av[i])[0]
            total += 10 ** (-0.4 * np.where(np.isfinite(mags), mags, np.inf))
        out[i] = -2.5 * np.log10(total) + NGC628_DISTANCE_MODULUS
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=750_000, help="library size (0 to skip)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--per-decade", type=int, default=2000, help="clusters timed per mass decade"
    )
    parser.add_argument("--naive-clusters", type=int, default=12)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--stellar-only", action="store_true", help="no nebular emission (nebular=False)"
    )
    args = parser.parse_args(argv)
    config = LibraryConfig(nebular=not args.stellar_only)
    report = {"nebular": config.nebular}

    start = time.perf_counter()
    photometry = StarPhotometry.load()
    model = PopulationSynthesis(
        photometry, nebular=config.nebular_emission() if config.nebular else None
    )
    report["setup_s"] = time.perf_counter() - start
    print(f"setup (load table + build synthesis tables): {report['setup_s']:.2f} s")

    gen = np.random.default_rng(args.seed)
    print("\nclusters/s by mass decade (single process):")
    print(f"{'log M':>8s} {'clusters/s':>11s} {'stars/cluster*':>15s}")
    decades = {}
    for decade in range(2, 8):
        lm, la, av = random_clusters(args.per_decade, decade, decade + 1, gen)
        info = model.stochastic_threshold(lm, la)
        drawn = np.where(
            info["fully_drawn"], 10**lm / model.imf.mean_mass, info["expected_stochastic_stars"]
        )
        t0 = time.perf_counter()
        model.cluster_magnitudes(lm, la, av, rng=gen)
        rate = args.per_decade / (time.perf_counter() - t0)
        decades[f"{decade}-{decade + 1}"] = {
            "clusters_per_s": rate,
            "mean_stars_drawn": float(drawn.mean()),
        }
        print(f"{decade:>3d}-{decade + 1:<4d} {rate:11.0f} {drawn.mean():15.0f}")
    print("  * all stars of clusters drawn whole (M < ~1e4 Msun), else the stars drawn one by one")
    report["by_decade"] = decades

    lm, la, av = random_clusters(args.naive_clusters, 2.0, 3.0, gen)
    t0 = time.perf_counter()
    naive_cluster_magnitudes(model, lm, la, av, gen)
    naive_time = time.perf_counter() - t0
    n_stars = args.naive_clusters * np.mean(10**lm) / model.imf.mean_mass
    t0 = time.perf_counter()
    for _ in range(20):
        model.cluster_magnitudes(lm, la, av, rng=gen)
    fast_time = (time.perf_counter() - t0) / 20
    naive_rate = n_stars / naive_time
    library_stars_per_cluster = (1e8 - 1e2) / (6 * np.log(10)) / model.imf.mean_mass
    fast_library_rate = 1.0 / np.mean([1.0 / d["clusters_per_s"] for d in decades.values()])
    report["naive"] = {
        "stars_per_s": naive_rate,
        "ratio_same_clusters_logM_2_3": naive_time / fast_time,
        "naive_library_clusters_per_s": naive_rate / library_stars_per_cluster,
        "ratio_library_extrapolated": fast_library_rate / (naive_rate / library_stars_per_cluster),
    }
    print(
        f"\nnaive per-star loop: {naive_rate:.0f} stars/s; on the same {args.naive_clusters} "
        "clusters of log M 2-3 "
        f"the vectorised code is {naive_time / fast_time:.0f}x faster"
    )
    print(
        f"library mass distribution (mean {library_stars_per_cluster:.3g} stars/cluster): naive "
        f"{naive_rate / library_stars_per_cluster:.2e} clusters/s vs vectorised "
        f"{fast_library_rate:.0f} clusters/s "
        f"(ratio {report['naive']['ratio_library_extrapolated']:.2e}, naive extrapolated)"
    )

    if args.n > 0:
        last = [time.perf_counter()]

        def progress(done, total):
            now = time.perf_counter()
            if now - last[0] > 30 or done == total:
                print(
                    f"  {done}/{total} clusters, {done / (now - t_lib):.0f} clusters/s", flush=True
                )
                last[0] = now

        print(f"\nfull library: {args.n} clusters, {args.workers} worker(s)")
        t_lib = time.perf_counter()
        frame = generate_library(
            args.n, config, seed=args.seed, n_workers=args.workers, progress=progress
        )
        elapsed = time.perf_counter() - t_lib
        report["library"] = {
            "n": args.n,
            "workers": args.workers,
            "wall_s": elapsed,
            "clusters_per_s": args.n / elapsed,
            "n_age_clamped": int(frame["age_clamped"].sum()),
        }
        print(
            f"library: {args.n} clusters in {elapsed:.1f} s = {args.n / elapsed:.0f} clusters/s "
            f"({'under' if elapsed < 600 else 'OVER'} the 10-minute target)"
        )
    if args.json is not None:
        from jaxcomp._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
