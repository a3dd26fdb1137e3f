"""Artificial cluster tests on the mock NGC 628C field: seconds per frame by step, and scaling.

1. Build the mock (LEGUS size, 7040 x 6400 px; ``--quick``: a 1000 x 1000 crop).
2. The pre-injection baseline (white light, background, detection, photometry, cuts,
   position density), once per field.
3. ``--frames`` frames of ``--clusters`` library clusters (5 bands, r_eff ``--reff`` pc) run
   one after the other in this process with single-threaded BLAS: seconds per frame on one
   core, broken down by step (``run_frame``'s step timers, wall and CPU).
4. The same frames with ``reprocess="local"`` (:mod:`jaxcomp.ast.local`: the pipeline
   rerun on windows around the clusters): seconds per frame, the full / local ratio, and
   the share of labels on which the two agree.
5. A campaign of ``--scaling-frames`` frames through :func:`jaxcomp.ast.campaign.run_campaign` with
the process
   pool at 1 and 2 workers: wall time (including starting the workers and sending them the
   field) and the steady-state throughput (frames/s between the first and the last frame
   written); prints the 2-worker / 1-worker ratios. On the 2-core development machine,
   which other jobs share, expect well below 2x.

Usage::

    python benchmarks/bench_ast.py            # LEGUS size (~15-30 min, ~10 GB of memory at 2
    workers)
    python benchmarks/bench_ast.py --quick    # about 1-2 minutes
    python benchmarks/bench_ast.py --json out.json

Nothing here asserts on time; numbers depend on the machine and its load (printed).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core per process
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, load_average, n_cores  # noqa: E402


def _library(n: int, reff: float, seed: int):
    from jaxcomp.library import LibraryConfig, generate_library

    lib = generate_library(n, LibraryConfig(), seed=seed)
    lib["r_eff_pc"] = float(reff)
    return lib


def _steps(timings: list[dict]) -> dict:
    keys = list(dict.fromkeys(k for t in timings for k in t))
    out = {}
    for k in keys:
        w = [t[k]["wall_s"] for t in timings if k in t]
        c = [t[k]["cpu_s"] for t in timings if k in t]
        out[k] = {"wall_s": float(np.mean(w)), "cpu_s": float(np.mean(c))}
    return out


def _print_steps(title: str, steps: dict):
    print(f"\n{title}")
    print(f"  {'step':22s} {'wall [s]':>9s} {'cpu [s]':>9s}")
    for k, v in steps.items():
        print(f"  {k:22s} {v['wall_s']:9.2f} {v['cpu_s']:9.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="a 1000 x 1000 px crop, 200 clusters per frame"
    )
    p.add_argument(
        "--size", help="mock size: legus, small or <ny>x<nx> (default: legus; --quick: 1000x1000)"
    )
    p.add_argument("--frames", type=int, help="frames per measurement (default 2; --quick 4)")
    p.add_argument("--clusters", type=int, help="clusters per frame (default 500; --quick 200)")
    p.add_argument("--reff", type=float, default=3.0, help="effective radius [pc] (default 3)")
    p.add_argument(
        "--workers", default="1,2", help="worker counts for the scaling test (default 1,2)"
    )
    p.add_argument(
        "--scaling-frames", type=int, help="frames per scaling run (default 4; --quick 6)"
    )
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results to this JSON file")
    a = p.parse_args(argv)
    from jaxcomp.ast.campaign import run_campaign
    from jaxcomp.ast.campaign_config import CampaignConfig
    from jaxcomp.ast.inject import prepare_field, run_frame
    from jaxcomp.ast.mock import compare_with_truth, make_mock_field, mock_truth
    from jaxcomp.cli.argtypes import field_size as _size

    size = _size(a.size) if a.size else ((1000, 1000) if a.quick else "legus")
    n_frames = a.frames or (4 if a.quick else 2)
    n_clusters = a.clusters or (200 if a.quick else 500)
    workers = [int(w) for w in a.workers.split(",") if w.strip()]
    n_scaling = a.scaling_frames or (6 if a.quick else 4)
    result = {
        "machine": {
            "cpu": cpu_model(),
            "cores": n_cores(),
            "load_average_at_start": load_average(),
        },
        "size": size,
        "frames": n_frames,
        "clusters_per_frame": n_clusters,
        "r_eff_pc": a.reff,
    }
    print(f"machine: {result['machine']}")

    t0, c0 = time.perf_counter(), time.process_time()
    field = make_mock_field(size, seed=a.seed)
    result["mock_s"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    print(f"mock {field.shape}: {result['mock_s']['wall_s']:.1f} s wall")

    t0 = time.perf_counter()
    base = prepare_field(field)
    result["baseline_s"] = time.perf_counter() - t0
    result["baseline_steps"] = base.timings
    cmp = compare_with_truth(base.catalogue, mock_truth(field))
    result["unmodified_mock_vs_truth"] = cmp
    _print_steps(
        f"baseline (pre-injection pipeline, once per field): {result['baseline_s']:.1f} s",
        base.timings,
    )
    print(
        f"  detections {cmp['n_detected']}, final catalogue {cmp['n_final']}; placed sources "
        f"{cmp['n_placed']}: "
        f"completeness (final) class 1-3 {cmp['completeness_final_class1to3']:.3f}, class 1-4 "
        f"{cmp['completeness_final_class1to4']:.3f}; purity {cmp['purity_final']:.3f}"
    )

    lib = _library((n_frames + n_scaling * len(workers)) * n_clusters, a.reff, a.seed + 1)
    timings, walls = [], []
    for k in range(n_frames):
        rows = lib.iloc[k * n_clusters : (k + 1) * n_clusters]
        t0 = time.perf_counter()
        lab = run_frame(
            field,
            rows,
            a.reff,
            seed=np.random.SeedSequence(a.seed, spawn_key=(1, k)),
            frame=k,
            baseline=base,
        )
        walls.append(time.perf_counter() - t0)
        timings.append(lab.meta["timings"])
        print(
            f"frame {k}: {walls[-1]:.1f} s, recovered {int(np.sum(lab['C']))}/{len(lab)}",
            flush=True,
        )
    result["frame_s_one_core"] = {"mean": float(np.mean(walls)), "all": walls}
    result["frame_steps"] = _steps(timings)
    _print_steps(
        f"one frame ({n_clusters} clusters, 5 bands) on one core: {np.mean(walls):.1f} s",
        result["frame_steps"],
    )

    labels = ("detected", "passes_err", "passes_ci", "passes_nband", "passes_mv", "C")
    local_timings, local_walls, same, fallbacks = [], [], [], 0
    for k in range(n_frames):
        rows = lib.iloc[k * n_clusters : (k + 1) * n_clusters]
        seed = np.random.SeedSequence(a.seed, spawn_key=(1, k))
        full = run_frame(field, rows, a.reff, seed=seed, frame=k, baseline=base)
        t0 = time.perf_counter()
        lab = run_frame(field, rows, a.reff, seed=seed, frame=k, baseline=base, reprocess="local")
        local_walls.append(time.perf_counter() - t0)
        local_timings.append(lab.meta["timings"])
        fallbacks += bool(lab.meta["fallback"])
        same.append(np.all([np.asarray(lab[c]) == np.asarray(full[c]) for c in labels], axis=0))
    same = np.concatenate(same)
    result["local"] = {
        "frame_s_one_core": float(np.mean(local_walls)),
        "all": local_walls,
        "steps": _steps(local_timings),
        "frames_rerun_in_full": fallbacks,
        "label_agreement": float(same.mean()),
        "n_labels": int(same.size),
        "ratio_full_over_local": float(np.mean(walls) / np.mean(local_walls)),
    }
    _print_steps(
        f"the same frames, reprocess='local': {np.mean(local_walls):.2f} s per frame, "
        f"{result['local']['ratio_full_over_local']:.2f}x faster than the full rerun; labels equal "
        "for "
        f"{same.sum()}/{same.size} clusters; {fallbacks} frame(s) rerun in full",
        result["local"]["steps"],
    )

    if not a.skip_scaling:
        scaling = {}
        cfg = CampaignConfig(
            r_eff_pc=(a.reff,),
            frames_per_reff=n_scaling,
            clusters_per_frame=n_clusters,
            seed=a.seed,
            match_library_reff=False,
        )
        for i, w in enumerate(workers):
            tmp = Path(tempfile.mkdtemp(prefix=f"bench_ast_{w}w_"))
            stamps = []
            try:
                t0 = time.perf_counter()
                run_campaign(
                    field,
                    lib.iloc[(n_frames + i * n_scaling) * n_clusters :],
                    cfg,
                    tmp,
                    executor="process",
                    n_workers=w,
                    progress=False,
                    callback=lambda *args: stamps.append(time.perf_counter()),
                )
                wall = time.perf_counter() - t0
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            steady = (
                (n_scaling - 1) / (stamps[-1] - stamps[0])
                if n_scaling > 1 and stamps[-1] > stamps[0]
                else float("nan")
            )
            scaling[w] = {
                "wall_s": wall,
                "first_frame_after_s": stamps[0] - t0,
                "steady_frames_per_s": steady,
            }
            print(
                f"process pool, {w} worker(s): {wall:.1f} s for {n_scaling} frames (first frame "
                "written after "
                f"{stamps[0] - t0:.1f} s; steady {steady:.3f} frames/s)",
                flush=True,
            )
        if len(workers) >= 2:
            w1, w2 = workers[0], workers[1]
            r_wall = scaling[w1]["wall_s"] / scaling[w2]["wall_s"]
            r_steady = scaling[w2]["steady_frames_per_s"] / scaling[w1]["steady_frames_per_s"]
            print(
                f"speed-up {w2} vs {w1} worker(s): {r_wall:.2f}x in wall time, {r_steady:.2f}x in "
                "steady "
                f"throughput (ideal {w2 / w1:.0f}x); load average now {load_average()}"
            )
            scaling["ratio_wall"] = r_wall
            scaling["ratio_steady"] = r_steady
        result["scaling"] = scaling
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1, default=float))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
