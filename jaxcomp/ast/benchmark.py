"""Timing of one AST frame on a synthetic field (``python -m jaxcomp.ast.benchmark``).

The field is flat sky + noise with a population of pre-existing point sources and
clusters at a surface density similar to the LEGUS NGC 628C white-light detections
(``density`` sources per 1000 x 1000 px); the injected clusters have library-like
magnitudes (m_V uniform in 19-29, colours within +-1 mag).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from astropy.table import Table

from ..catalogues import BANDS
from .inject import prepare_field, run_frame
from .synthetic import synthetic_field

__all__ = ["benchmark_field", "fake_library", "benchmark_frame", "main"]


def benchmark_field(shape=(2000, 2000), density: float = 300.0, seed: int = 0):
    """A synthetic field with ``density`` pre-existing sources per 10^6 px."""
    rng = np.random.default_rng(seed)
    n = int(density * shape[0] * shape[1] / 1e6)
    src = {
        "x": rng.uniform(0, shape[1] - 1, n),
        "y": rng.uniform(0, shape[0] - 1, n),
        "r_eff_px": np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.3, 4.0, n)),
    }
    mv = rng.uniform(19.0, 27.0, n)
    for b in BANDS:
        src[f"mag_{b}"] = mv + rng.uniform(-1.0, 1.0, n)
    return synthetic_field(shape, seed=seed + 1, sources=src, name=f"bench{shape[0]}x{shape[1]}")


def fake_library(n: int, seed: int = 0) -> Table:
    """Library-like rows (cluster_id, mag_<band>) for timing; not physical."""
    rng = np.random.default_rng(seed)
    t = Table({"cluster_id": np.arange(n)})
    mv = rng.uniform(19.0, 29.0, n)
    for b in BANDS:
        t[f"mag_{b}"] = mv + rng.uniform(-1.0, 1.0, n)
    return t


def benchmark_frame(
    shape=(2000, 2000),
    n_clusters: int = 500,
    r_eff_pc: float = 5.0,
    density: float = 300.0,
    seed: int = 0,
) -> dict:
    """Build a field, its baseline and one frame; return per-step wall and CPU times."""
    t0, c0 = time.perf_counter(), time.process_time()
    field = benchmark_field(shape, density, seed)
    build = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    base = prepare_field(field)
    base_t = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    labels = run_frame(field, fake_library(n_clusters, seed), r_eff_pc, seed=seed)
    frame_t = (time.perf_counter() - t0, time.process_time() - c0)
    return {
        "shape": list(shape),
        "n_clusters": n_clusters,
        "r_eff_pc": r_eff_pc,
        "n_sources_pre": len(base.catalogue),
        "n_final_pre": int(np.sum(base.catalogue["C"])),
        "n_sources_post": labels.meta["n_sources_post"],
        "recovered": int(np.sum(labels["C"])),
        "field_build_s": build,
        "baseline_s": base_t,
        "frame_wall_cpu_s": frame_t,
        "frame_steps": labels.meta["timings"],
        "baseline_steps": base.timings,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=2000)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--reff", type=float, default=5.0)
    p.add_argument("--density", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = benchmark_frame((a.size, a.size), a.n, a.reff, a.density, a.seed)
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
