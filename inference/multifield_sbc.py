#!/usr/bin/env python
"""Simulation-based calibration (Talts et al. 2018) of the many-field hierarchical model.

For each of ``--n-sets`` replicate sets of ``--n-fields`` fields: draw the population
parameters (``*_mean``, ``*_scatter``, the A_V log-odds mean and scatter) and every
field's parameters from the partial-pooling model's own prior
(:meth:`MultiFieldModel.sample_field_parameters` under a seed), simulate each field's
catalogue of ``--n-obs`` detected clusters through its own exact selection
(:class:`~jaxcomp.selection.synthetic.LogisticSelection` made shallower by 0 ..
``--max-shift`` mag across the fields), fit all fields jointly with NUTS
(p_obs on per-field :class:`~jaxcomp.demographics.SelectionGrid` s; one compiled
program for every set), and record the rank of each true population parameter among
``--n-rank-draws`` thinned posterior draws and whether the central 68% / 95% intervals
cover it.

To keep simulation cheap the single-field prior bounds are narrowed to
alpha_M U(-2.5, -1.5), log_M_break U(4.5, 6.5), alpha_T U(-1.5, 0) (the model is
otherwise the default: Schechter CMF, power-law CAF on log T in [6, 9.5],
4 A_V bins, marginalised N); the scatter priors are the defaults (HalfNormal 0.3,
0.5, 0.3; 1.0 for the A_V log-odds).

Outputs in ``--output-dir`` (rewritten every 10 sets): ``multifield_sbc.json``
(settings, seeds, per-set truth / ranks / intervals / divergences; per parameter and
pooled: coverage, χ² and KS p-values of the ranks) and ``multifield_sbc_ranks.png``.

Usage::

    python inference/multifield_sbc.py                        # 100 sets of 4 fields x 200 clusters
    python inference/multifield_sbc.py -n 10 -o /tmp/mfsbc    # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SELECTION_KW = {"log_mass_50_young": 2.5, "age_slope": 0.6}
AGE_RANGE = (6.0, 9.5)
SBC_PRIORS = {"alpha_M": (-2.5, -1.5), "log_M_break": (4.5, 6.5), "alpha_T": (-1.5, 0.0)}
DEX_PER_MAG = 0.4


def _sbc_helpers():
    """rank_statistics and the rank-histogram plot of the single-field SBC script."""
    sys.path.insert(0, str(HERE))
    try:
        import sbc
    finally:
        sys.path.remove(str(HERE))
    return sbc.rank_statistics, sbc._plot


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(tmp, path)


def draw_truth(model, n_fields: int, seed: int) -> dict[str, np.ndarray]:
    """Population and per-field parameters drawn from the model's prior."""
    import jax
    import numpyro

    with jax.enable_x64(True):
        trace = numpyro.handlers.trace(
            numpyro.handlers.seed(model.sample_field_parameters, seed)
        ).get_trace(n_fields)
    return {name: np.asarray(site["value"], np.float64) for name, site in trace.items()}


def run_sbc(
    *,
    n_sets: int = 100,
    n_fields: int = 4,
    n_obs: int = 200,
    max_shift: float = 2.0,
    num_warmup: int = 300,
    num_samples: int = 300,
    num_chains: int = 2,
    target_accept: float = 0.95,
    n_rank_draws: int = 99,
    n_rank_bins: int = 10,
    grid_shape=(121, 71, 13),
    seed: int = 0,
    output_dir: Path | None = None,
    progress: bool = True,
) -> dict:
    from jaxcomp.demographics import (
        MultiFieldFitter,
        MultiFieldModel,
        PopulationModel,
        SelectionGrid,
        simulate_catalogue,
    )
    from jaxcomp.selection.synthetic import LogisticSelection

    rank_statistics, plot = _sbc_helpers()
    t_start = time.perf_counter()
    population = PopulationModel(log_age_range=AGE_RANGE, priors=SBC_PRIORS)
    model = MultiFieldModel(population, "partial")
    shifts = np.linspace(0.0, max_shift, n_fields)
    selections = [
        LogisticSelection(
            log_mass_50_young=SELECTION_KW["log_mass_50_young"] + DEX_PER_MAG * s,
            age_slope=SELECTION_KW["age_slope"],
        )
        for s in shifts
    ]
    grids = [SelectionGrid.from_selection(s, shape=tuple(grid_shape)) for s in selections]
    fitter = MultiFieldFitter(
        model,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        target_accept_prob=target_accept,
    )
    names = list(model.population_parameters) + [
        f"av_logit_mean[{k}]" for k in range(population.n_av_bins - 1)
    ]
    field_names = [f"field_{f}" for f in range(n_fields)]
    records = []
    iterator = range(n_sets)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="SBC sets")
    for rep in iterator:
        rep_seed = seed * 100003 + rep
        truth = draw_truth(model, n_fields, rep_seed)
        t0 = time.perf_counter()
        catalogues = []
        for f in range(n_fields):
            params = {k: truth[k][f] for k in (*model.field_parameters, "av_weights")}
            catalogues.append(
                simulate_catalogue(
                    population,
                    params,
                    selections[f],
                    n_obs=n_obs,
                    seed=rep_seed * 31 + f,
                    max_total=10**8,
                )
            )
        t_sim = time.perf_counter() - t0
        data = fitter.prepare(field_names, catalogues, grids, seed=rep_seed)
        result = fitter.fit(data, seed=rep_seed, log_likelihood=False)
        record = {
            "rep": rep,
            "seed": rep_seed,
            "sim_s": round(t_sim, 2),
            "fit_s": round(result.runtime_s, 2),
            "divergences": result.num_divergences,
            "max_r_hat": float(np.nanmax(result.summary["r_hat"])),
            "min_ess_bulk": float(np.nanmin(result.summary["ess_bulk"])),
            "params": {},
        }
        rng = np.random.default_rng(rep_seed)
        for name in names:
            if name.startswith("av_logit_mean["):
                k = int(name[len("av_logit_mean[") : -1])
                draws, true = result.draws("av_logit_mean")[:, k], float(truth["av_logit_mean"][k])
            else:
                draws, true = result.draws(name), float(truth[name])
            thin = draws[np.linspace(0, len(draws) - 1, n_rank_draws).astype(int)]
            rank = int(np.sum(thin < true)) + int(rng.integers(int(np.sum(thin == true)) + 1))
            q = np.quantile(draws, [0.025, 0.16, 0.5, 0.84, 0.975])
            record["params"][name] = {
                "truth": true,
                "rank": rank,
                "mean": float(np.mean(draws)),
                "sd": float(np.std(draws)),
                "q": q.tolist(),
                "in68": bool(q[1] <= true <= q[3]),
                "in95": bool(q[0] <= true <= q[4]),
            }
        records.append(record)
        if output_dir is not None and ((rep + 1) % 10 == 0 or rep + 1 == n_sets):
            results = _summarise(
                records,
                names,
                n_rank_draws,
                n_rank_bins,
                t_start,
                rank_statistics,
                {
                    "n_sets": n_sets,
                    "n_fields": n_fields,
                    "n_obs": n_obs,
                    "max_shift": max_shift,
                    "num_warmup": num_warmup,
                    "num_samples": num_samples,
                    "num_chains": num_chains,
                    "target_accept": target_accept,
                    "n_rank_draws": n_rank_draws,
                    "n_rank_bins": n_rank_bins,
                    "grid_shape": list(grid_shape),
                    "seed": seed,
                    "priors": SBC_PRIORS,
                    "selection": SELECTION_KW,
                    "dex_per_mag": DEX_PER_MAG,
                },
            )
            _write_json(output_dir / "multifield_sbc.json", results)
            plot_dir = output_dir / "_plot"
            plot_dir.mkdir(parents=True, exist_ok=True)
            plot(plot_dir, results, names, n_rank_draws, n_rank_bins)
            os.replace(plot_dir / "sbc_ranks.png", output_dir / "multifield_sbc_ranks.png")
            plot_dir.rmdir()
    return _summarise(records, names, n_rank_draws, n_rank_bins, t_start, rank_statistics, {})


def _summarise(
    records, names, n_rank_draws, n_rank_bins, t_start, rank_statistics, settings
) -> dict:
    summary = {}
    for name in names + ["pooled"]:
        chosen = names if name == "pooled" else [name]
        ranks = np.array([r["params"][n]["rank"] for r in records for n in chosen])
        in68 = np.array([r["params"][n]["in68"] for r in records for n in chosen])
        in95 = np.array([r["params"][n]["in95"] for r in records for n in chosen])
        summary[name] = {
            "n": len(ranks),
            "coverage68": float(in68.mean()),
            "coverage95": float(in95.mean()),
            **rank_statistics(ranks, n_rank_draws, n_rank_bins),
        }
    return {
        "settings": settings,
        "n_done": len(records),
        "runtime_s": round(time.perf_counter() - t_start, 1),
        "fit_s_mean": float(np.mean([r["fit_s"] for r in records])),
        "total_divergences": int(sum(r["divergences"] for r in records)),
        "sets_with_divergences": int(sum(r["divergences"] > 0 for r in records)),
        "max_r_hat": float(max(r["max_r_hat"] for r in records)),
        "min_ess_bulk": float(min(r["min_ess_bulk"] for r in records)),
        "summary": summary,
        "replications": records,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--n-sets", type=int, default=100)
    parser.add_argument("--n-fields", type=int, default=4)
    parser.add_argument("--n-obs", type=int, default=200)
    parser.add_argument("--max-shift", type=float, default=2.0)
    parser.add_argument("--num-warmup", type=int, default=300)
    parser.add_argument("--num-samples", type=int, default=300)
    parser.add_argument("--num-chains", type=int, default=2)
    parser.add_argument("--target-accept", type=float, default=0.95)
    parser.add_argument("--n-rank-draws", type=int, default=99)
    parser.add_argument("--n-rank-bins", type=int, default=10)
    parser.add_argument("--grid", type=int, nargs=3, default=(121, 71, 13))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "-o", "--output-dir", type=Path, default=HERE / "results" / "multifield_sbc"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    results = run_sbc(
        n_sets=args.n_sets,
        n_fields=args.n_fields,
        n_obs=args.n_obs,
        max_shift=args.max_shift,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        target_accept=args.target_accept,
        n_rank_draws=args.n_rank_draws,
        n_rank_bins=args.n_rank_bins,
        grid_shape=tuple(args.grid),
        seed=args.seed,
        output_dir=args.output_dir,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(
            json.dumps(
                {
                    k: {m: v[m] for m in ("coverage68", "coverage95", "p_chi2", "p_ks")}
                    for k, v in results["summary"].items()
                },
                indent=1,
            )
        )
        print(f"runtime {results['runtime_s']:.0f} s; divergences {results['total_divergences']}")
    return results


if __name__ == "__main__":
    main()
