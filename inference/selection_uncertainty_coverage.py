#!/usr/bin/env python
"""Coverage of population fits with and without the selection function's uncertainty (issue 18).

For each replicate ``r`` and each campaign size ``n_labels`` (default 3,000, 10,000, 30,000):

1. **Labels**: ``n_labels`` injected clusters drawn uniformly over the paper's library
   domain (log M in [2, 8], log T in [5, 10.18], A_V in [0, 3]), each with one Bernoulli
   label from a **known analytic selection**,
   :class:`~jaxcomp.selection.synthetic.LogisticSelection` with the SBC settings
   (``log_mass_50_young=2.5, age_slope=0.6``; ``inference/sbc.py``)
   (:func:`~jaxcomp.selection.synthetic.simulate_labels`); no image campaign is run.
2. **Selection function**: an ensemble of ``--members`` (5) networks, each trained on a
   bootstrap resample of the labels by cluster (``TrainConfig(ensemble_resampling="bootstrap")``),
   tabulated on a grid (:func:`~jaxcomp.demographics.member_selection_grid`).
3. **Catalogue**: ``--n-obs`` (1000) detected clusters drawn from a fixed population
   (Schechter CMF α_M = -2, log M_break = 5; power-law CAF α_T = -1 on log T in [6, 9.5];
   equal A_V weights on 4 bins) through the **known** selection, evaluated exactly.  The same
   catalogue is used for every campaign size of one replicate (a paired comparison).
4. **Fits**: NUTS with the selection grid of the ensemble mean (``"none"``), with the
   likelihood averaged over the members (``"ensemble"``), and one fit per member pooled
   with equal weights (``"cut"``, :func:`~jaxcomp.demographics.fit_members`; replicates run
   before this mode was added lack it, and the summary counts each mode's own ``n``);
   plus, once per replicate, a control fit with the true selection tabulated on the same
   grid (``"exact"``), which measures the coverage of the fit itself.

Recorded per replicate (``rep_XXXX.json``, written atomically, so the study can be stopped
and resumed: finished replicates are skipped): for α_M, log M_break and α_T the truth,
posterior mean, sd, 2.5/16/50/84/97.5% quantiles and whether the central 68% / 95%
intervals cover the truth; Var over members of ln L at the posterior median; the
selection's share of posterior variance; r_hat, ESS, divergences; training and fit times.
``--summarise`` (also run at the end) pools them into ``summary.json``: coverage per
method and size with its binomial standard error.

Usage::

    nice -n 10 python inference/selection_uncertainty_coverage.py \\
        -o inference/results/selection_uncertainty_coverage
    python inference/selection_uncertainty_coverage.py -o DIR --summarise
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

SELECTION_KW = {"log_mass_50_young": 2.5, "age_slope": 0.6}
AGE_RANGE = (6.0, 9.5)
TRUTH = {"alpha_M": -2.0, "log_M_break": 5.0, "alpha_T": -1.0}
PARAMETERS = ("alpha_M", "log_M_break", "alpha_T")
DEFAULT_SIZES = (3000, 10000, 30000)


def train_config(n_members: int, seed: int, epochs: int):
    """The small, fixed-hyperparameter network of the study (no grid search)."""
    from jaxcomp.selection import TrainConfig

    return TrainConfig(
        hidden_widths=(64, 64),
        epochs=epochs,
        batch_size=512,
        learning_rates=(1e-2,),
        weight_decays=(1e-3,),
        n_members=n_members,
        ensemble_resampling="bootstrap",
        seed=seed,
    )


def _record_fit(result, truth: dict) -> dict:
    out = {
        "fit_s": round(result.runtime_s, 2),
        "divergences": int(result.num_divergences),
        "max_r_hat": float(np.nanmax(np.asarray(result.summary["r_hat"], float))),
        "min_ess_bulk": float(np.nanmin(np.asarray(result.summary["ess_bulk"], float))),
        "log_likelihood_variance": result.log_likelihood_variance,
        "params": {},
    }
    if result.selection_diagnostics is not None:
        out["variance_share"] = result.selection_diagnostics["variance_share"]
        out["member_weights"] = result.selection_diagnostics["member_weights"]
    out["params"] = _record_draws(result.draws, truth)
    return out


def _record_draws(draws_of, truth: dict) -> dict:
    out = {}
    for name in PARAMETERS:
        draws = draws_of(name)
        q = np.quantile(draws, [0.025, 0.16, 0.5, 0.84, 0.975])
        true = float(truth[name])
        out[name] = {
            "truth": true,
            "mean": float(draws.mean()),
            "sd": float(draws.std()),
            "q": q.tolist(),
            "in68": bool(q[1] <= true <= q[3]),
            "in95": bool(q[0] <= true <= q[4]),
        }
    return out


def run_replicate(
    rep: int,
    *,
    sizes,
    n_obs: int,
    n_members: int,
    grid_shape,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    epochs: int,
    seed: int,
    fitters: dict,
    verbose: bool = True,
) -> dict:
    """One replicate: a catalogue, one campaign + ensemble per size, and its fits."""

    from jaxcomp.demographics import (
        PopulationFitter,
        PopulationModel,
        SelectionGrid,
        fit_members,
        member_selection_grid,
        simulate_catalogue,
    )
    from jaxcomp.selection import ensemble_coverage, train_selection_function
    from jaxcomp.selection.synthetic import LogisticSelection, simulate_labels

    model = PopulationModel(
        mass="schechter", age="power_law", av="piecewise", log_age_range=AGE_RANGE
    )
    truth_selection = LogisticSelection(**SELECTION_KW)
    truth = {**TRUTH, "av_weights": np.full(model.n_av_bins, 1.0 / model.n_av_bins)}
    rep_seed = int(seed) * 100003 + int(rep)
    catalogue = simulate_catalogue(model, truth, truth_selection, n_obs=n_obs, seed=rep_seed)
    axes = [
        np.linspace(lo, hi, n)
        for (lo, hi), n in zip([(2.0, 8.0), (5.0, float(np.log10(1.5e10))), (0.0, 3.0)], grid_shape)
    ]
    record = {"rep": rep, "seed": rep_seed, "n_drawn": int(catalogue.meta["n_drawn"]), "sizes": {}}

    def fitter(kind: str, grid):
        key = kind
        if key not in fitters:
            fitters[key] = PopulationFitter(
                model,
                grid,
                num_warmup=num_warmup,
                num_samples=num_samples,
                num_chains=num_chains,
                selection_uncertainty="ensemble" if kind == "ensemble" else "none",
            )
        return fitters[key].use_selection_grid(grid)

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # the Var ln L warning is recorded as a number
        exact_grid = SelectionGrid.from_selection(truth_selection, *axes)
        record["exact"] = _record_fit(
            fitter("exact", exact_grid).fit(catalogue, seed=rep_seed), truth
        )
        for n_labels in sizes:
            t0 = time.perf_counter()
            label_seed = rep_seed * 7 + int(n_labels)
            labels = simulate_labels(int(n_labels), seed=label_seed, selection=truth_selection)
            trained = train_selection_function(
                labels, config=train_config(n_members, label_seed, epochs), progress=False
            )
            train_s = time.perf_counter() - t0
            member_grid = member_selection_grid(trained.selection_function, *axes)
            # the spread against the known truth, on the grid nodes inside the catalogue's support
            p_members = np.asarray(member_grid.p_obs).reshape(n_members, -1)
            p_truth = np.asarray(exact_grid.p_obs).reshape(-1)
            boundary = (p_truth > 0.05) & (p_truth < 0.95)
            coverage = ensemble_coverage(p_members[:, boundary], p_truth[boundary]).summary()
            entry = {
                "n_labels": int(n_labels),
                "label_seed": label_seed,
                "train_s": round(train_s, 1),
                "spread_coverage_boundary": coverage,
                "mean_abs_error_boundary": float(
                    np.mean(np.abs(p_members[:, boundary].mean(0) - p_truth[boundary]))
                ),
            }
            for kind in ("none", "ensemble"):
                result = fitter(kind, member_grid).fit(catalogue, seed=rep_seed)
                entry[kind] = _record_fit(result, truth)
            # the "cut" posterior: one fit per member, pooled with equal weights (reuses the exact
            # fitter)
            t1 = time.perf_counter()
            members = fit_members(catalogue, member_grid, fitter=fitters["exact"], seed=rep_seed)
            entry["cut"] = {
                "fit_s": round(time.perf_counter() - t1, 2),
                "params": _record_draws(members.pooled, truth),
                "variance_share": members.variance_share,
                "divergences": int(sum(f.num_divergences for f in members.fits)),
                "max_r_hat": float(
                    max(np.nanmax(np.asarray(f.summary["r_hat"], float)) for f in members.fits)
                ),
            }
            record["sizes"][str(n_labels)] = entry
            if verbose:
                p = {k: entry[k]["params"]["alpha_M"] for k in ("none", "ensemble", "cut")}
                print(
                    f"  rep {rep} n_labels {n_labels}: train {train_s:.0f} s, Var lnL "
                    f"{entry['none']['log_likelihood_variance']:.3g}; alpha_M none "
                    f"{p['none']['mean']:.3f}"
                    f"±{p['none']['sd']:.3f}, ensemble "
                    f"{p['ensemble']['mean']:.3f}±{p['ensemble']['sd']:.3f}, "
                    f"cut {p['cut']['mean']:.3f}±{p['cut']['sd']:.3f}",
                    flush=True,
                )
    return record


def summarise(output_dir: Path) -> dict:
    """Pool every ``rep_*.json`` into coverage per method and campaign size."""
    records = [json.loads(p.read_text()) for p in sorted(output_dir.glob("rep_*.json"))]
    summary: dict = {"n_replicates": len(records), "parameters": list(PARAMETERS), "coverage": {}}
    if not records:
        return summary

    def cover(entries):
        out = {}
        for name in PARAMETERS:
            for level in ("68", "95"):
                hits = np.array([e["params"][name][f"in{level}"] for e in entries], float)
                out[f"{name}_{level}"] = {
                    "coverage": float(hits.mean()),
                    "binomial_se": float(
                        np.sqrt(hits.mean() * (1 - hits.mean()) / max(len(hits), 1))
                    ),
                    "n": len(hits),
                }
            sd = np.array([e["params"][name]["sd"] for e in entries])
            err = np.array(
                [e["params"][name]["mean"] - e["params"][name]["truth"] for e in entries]
            )
            out[f"{name}_mean_sd"] = float(sd.mean())
            out[f"{name}_rmse"] = float(np.sqrt(np.mean(err**2)))
            out[f"{name}_mean_error"] = float(err.mean())
        return out

    summary["coverage"]["exact"] = cover([r["exact"] for r in records])
    sizes = sorted({int(s) for r in records for s in r["sizes"]})
    for size in sizes:
        entries = [r["sizes"][str(size)] for r in records if str(size) in r["sizes"]]
        for kind in ("none", "ensemble", "cut"):
            chosen = [e[kind] for e in entries if kind in e]
            if chosen:
                summary["coverage"][f"{kind}_{size}"] = cover(chosen)
        summary["coverage"][f"none_{size}"]["median_log_likelihood_variance"] = float(
            np.median([e["none"]["log_likelihood_variance"] for e in entries])
        )
        summary["coverage"][f"ensemble_{size}"]["median_variance_share"] = {
            name: float(np.median([e["ensemble"]["variance_share"][name] for e in entries]))
            for name in PARAMETERS
        }
        summary["coverage"][f"ensemble_{size}"]["spread_coverage_boundary_mean"] = {
            level: float(
                np.mean(
                    [e["spread_coverage_boundary"]["interval_coverage"][level] for e in entries]
                )
            )
            for level in ("0.68", "0.95")
        }
        summary["coverage"][f"none_{size}"]["mean_abs_error_boundary"] = float(
            np.mean([e["mean_abs_error_boundary"] for e in entries])
        )
    summary["planning"] = plan(records, sizes)
    summary["total_divergences"] = int(
        sum(
            r["exact"]["divergences"]
            + sum(e[k]["divergences"] for e in r["sizes"].values() for k in ("none", "ensemble"))
            for r in records
        )
    )
    summary["max_r_hat"] = float(
        max(
            max(
                [r["exact"]["max_r_hat"]]
                + [e[k]["max_r_hat"] for e in r["sizes"].values() for k in ("none", "ensemble")]
            )
            for r in records
        )
    )
    return summary


def plan(records, sizes) -> dict:
    """Injections needed for α_M's posterior sd to be at most 1.1x / 1.5x the exact-selection one.

    The selection-induced variance at each size is the variance over replicates of the
    "none" posterior mean minus that of the exact-selection fit (same catalogues), fitted
    as ``c / N`` (:func:`jaxcomp.demographics.plan_campaign_size`).
    """
    from jaxcomp.demographics import plan_campaign_size
    from jaxcomp.errors import InputError

    if len(records) < 3:
        return {"note": "fewer than 3 replicates: no variance estimate"}
    exact = np.array([r["exact"]["params"]["alpha_M"]["mean"] for r in records])
    statistical_sd = float(np.mean([r["exact"]["params"]["alpha_M"]["sd"] for r in records]))
    variances = []
    for size in sizes:
        pairs = [
            (
                r["sizes"][str(size)]["none"]["params"]["alpha_M"]["mean"],
                r["exact"]["params"]["alpha_M"]["mean"],
            )
            for r in records
            if str(size) in r["sizes"]
        ]
        none, ref = (np.array(v) for v in zip(*pairs))
        variances.append(
            float(np.var(none - ref, ddof=1))
        )  # paired: same catalogue, the selection's part
    out = {
        "sizes": list(sizes),
        "selection_variance_alpha_M": variances,
        "statistical_sd_alpha_M": statistical_sd,
        "exact_mean_scatter_sd": float(np.std(exact, ddof=1)),
        "method": "Var over replicates of (posterior mean with the campaign's ensemble-mean "
        "selection - "
        "posterior mean with the exact selection), fitted as c / N_labels",
    }
    for factor in (1.1, 1.5):
        try:
            out[f"target_{factor:g}x_statistical"] = plan_campaign_size(
                sizes, variances, target_sd=factor * statistical_sd, statistical_sd=statistical_sd
            )
        except InputError as error:
            out[f"target_{factor:g}x_statistical"] = {"error": str(error)}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--n-catalogues", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--grid", type=int, nargs=3, default=(97, 73, 13))
    parser.add_argument("--num-warmup", type=int, default=300)
    parser.add_argument("--num-samples", type=int, default=300)
    parser.add_argument("--num-chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("inference/results/selection_uncertainty_coverage"),
    )
    parser.add_argument(
        "--summarise", action="store_true", help="only pool the finished replicates"
    )
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    from jaxcomp._io import atomic_write_text

    args.output_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in vars(args).items()
        if k not in ("output_dir", "summarise", "quiet")
    }
    if not args.summarise:
        atomic_write_text(
            args.output_dir / "settings.json",
            json.dumps(
                {
                    **settings,
                    "truth": TRUTH,
                    "selection": {"LogisticSelection": SELECTION_KW},
                    "age_range": AGE_RANGE,
                },
                indent=1,
            ),
        )
        fitters: dict = {}
        from tqdm.auto import tqdm

        for rep in tqdm(range(args.n_catalogues), disable=args.quiet, desc="replicates"):
            path = args.output_dir / f"rep_{rep:04d}.json"
            if path.exists():
                continue
            t0 = time.perf_counter()
            record = run_replicate(
                rep,
                sizes=args.sizes,
                n_obs=args.n_obs,
                n_members=args.members,
                grid_shape=tuple(args.grid),
                num_warmup=args.num_warmup,
                num_samples=args.num_samples,
                num_chains=args.num_chains,
                epochs=args.epochs,
                seed=args.seed,
                fitters=fitters,
                verbose=not args.quiet,
            )
            record["wall_s"] = round(time.perf_counter() - t0, 1)
            atomic_write_text(path, json.dumps(record, indent=1))
    summary = summarise(args.output_dir)
    summary["settings"] = settings
    atomic_write_text(args.output_dir / "summary.json", json.dumps(summary, indent=1))
    if not args.quiet:
        for key, value in summary["coverage"].items():
            print(
                key,
                {
                    k: round(v["coverage"], 3)
                    for k, v in value.items()
                    if isinstance(v, dict) and "coverage" in v
                },
            )
    return summary


if __name__ == "__main__":
    main()
