"""Centred versus non-centred per-field values of the many-field NUTS fit, back to back.

Usage::

    python benchmarks/bench_multifield_parametrisation.py            # 30 fields x ~1000
    python benchmarks/bench_multifield_parametrisation.py --quick    # 4 fields x 150-300

The problem is ``bench_multifield.py``'s (same simulated fields, grids, sampler
settings and seed).  For each :attr:`MultiFieldModel.parametrisation` in turn the
script builds the fitter, compiles it (reported apart) and runs
``MultiFieldFitter(num_chains=4, num_warmup=1000, num_samples=1000)``; it records
the mean leapfrog steps per sampling iteration, divergences, bulk ESS of every
population parameter, wall time, and the load-independent cost: bulk ESS per 1000
gradient evaluations of the sampling phase (the summed leapfrog steps).  The
machine's load average is recorded with the results; nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # benchmarks/ (the script's own folder, or pytest's pythonpath)
import bench_multifield

HERE = Path(__file__).resolve().parent
PARAMETRISATIONS = ("non_centred", "centred")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", type=Path, default=HERE / "results" / "bench_multifield_parametrisation.json"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    import jax
    import numpyro

    base = ["--seed", str(args.seed)] + (["--quick"] if args.quick else [])
    info = _common.machine_info()
    info["numpyro"] = numpyro.__version__
    payload = {"benchmark": "multifield_parametrisation", "machine": info, "runs": {}}
    for parametrisation in PARAMETRISATIONS:
        settings = bench_multifield.parse_args(
            base + ["--parametrisation", parametrisation, "--quiet"]
        )
        with jax.enable_x64(True):
            start = time.perf_counter()
            problem = bench_multifield.build_problem(settings)
            setup_s = time.perf_counter() - start
            compile_s = problem["fitter"].compile(problem["data"])
            load_before = _common.machine_info().get("load_average_at_start")
            nuts = bench_multifield.run_nuts(problem, args.seed)
            load_after = _common.machine_info().get("load_average_at_start")
        nuts.update(
            {
                "setup_s": setup_s,
                "compile_s": compile_s,
                "load_average_before": load_before,
                "load_average_after": load_after,
                "dim": problem["dim"],
            }
        )
        payload["runs"][parametrisation] = nuts
        payload["settings"] = {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()
        }
        if not args.quiet:
            print(
                f"{parametrisation}: {nuts['wall_s']:.0f} s, {nuts['mean_leapfrog_steps']:.1f} "
                f"steps/iteration, {nuts['divergences']} divergences, min ESS bulk "
                f"{min(nuts['ess_bulk'].values()):.0f}, load {load_before} -> {load_after}",
                flush=True,
            )
    first, second = (payload["runs"][p] for p in PARAMETRISATIONS)
    speed = {
        n: (second["ess_bulk"][n] / second["wall_s"]) / (first["ess_bulk"][n] / first["wall_s"])
        for n in first["ess_bulk"]
    }
    rows = [
        [
            n,
            f"{first['ess_bulk'][n]:.0f}",
            f"{second['ess_bulk'][n]:.0f}",
            f"{first['ess_bulk_per_1000_gradients'][n]:.2f}",
            f"{second['ess_bulk_per_1000_gradients'][n]:.2f}",
            f"{speed[n]:.2f}",
        ]
        for n in first["ess_bulk"]
    ]
    payload["ratio_ess_per_gradient_centred_over_non_centred"] = {
        n: second["ess_bulk_per_1000_gradients"][n] / first["ess_bulk_per_1000_gradients"][n]
        for n in first["ess_bulk"]
    }
    payload["ratio_ess_per_s_centred_over_non_centred"] = speed
    _common.write_json(args.json, payload)
    if not args.quiet:
        print(
            _common.table(
                rows,
                [
                    "parameter",
                    "ESS non-centred",
                    "ESS centred",
                    "ESS/1000 grad non-c.",
                    "ESS/1000 grad centred",
                    "ESS/s centred / non-c.",
                ],
            )
        )
    return payload


if __name__ == "__main__":
    main()
