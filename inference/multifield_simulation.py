#!/usr/bin/env python
"""Many fields, one model: recovery of a known population of fields (issue 17).

``--n-fields`` fields (default 20), each with ``N_f`` detected clusters (log-uniform
between ``--n-min`` and ``--n-max``, default 150 and 1500) and its own depth: the
selection :class:`jaxcomp.selection.synthetic.LogisticSelection` (50% mass limit
10^2.5 Msun for young clusters, rising 0.6 dex per dex of age and 0.4 dex per mag
of A_V) made shallower by ``shift_f`` mag, evenly spaced over 0..``--max-shift``
(2 mag = 0.8 dex in mass, for 1 mag = a factor 10^0.4 in flux).  Each field has
its own hyperparameters drawn from the population:
``alpha_M_f ~ N(-2.0, 0.15)``, ``log_M_break_f ~ N(5.3, 0.3)``,
``alpha_T_f ~ N(-0.8, 0.1)`` and A_V bin probabilities ``softmax([z_f, 0])`` with
``z_f ~ N(0, 0.3)`` per bin.  Catalogues are simulated from the exact selection;
the fits use p_obs tabulated on a :class:`~jaxcomp.demographics.SelectionGrid`.

Fits (NUTS via :func:`jaxcomp.demographics.fit_fields`) with partial pooling, no
pooling (independent fields, i.e. separate per-field fits with the single-field
priors, all in one program) and complete pooling; PSIS-LOO comparison of the three.

Output ``<output-dir>/multifield_simulation.json``: the truth and seed, population
posteriors (mean, sd, 95% interval, inside?), divergences, r_hat, ESS, per-field
alpha_M and log_M_break errors (RMS against the truth) of partial vs no pooling and
their ratio, the LOO table, runtimes; ``multifield_shrinkage_<parameter>.png``.

Usage::

    python inference/multifield_simulation.py                   # 20 fields, 4 x (500 + 500)
    python inference/multifield_simulation.py --n-fields 3 --n-min 100 --n-max 200 \\
        --num-warmup 150 \\
        --num-samples 150 --num-chains 2 -o /tmp/mf
    python inference/multifield_simulation.py --poolings partial --parametrisation centred
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SELECTION_KW = {"log_mass_50_young": 2.5, "age_slope": 0.6}
AGE_RANGE = (6.0, 9.5)
#: Population of the simulated fields: mean and scatter of each per-field parameter.
TRUTH = {"alpha_M": (-2.0, 0.15), "log_M_break": (5.3, 0.3), "alpha_T": (-0.8, 0.1)}
AV_LOGIT_SCATTER = 0.3
#: d log_mass_50 / d (depth shift in mag): 1 mag = a factor 10^0.4 in flux and mass.
DEX_PER_MAG = 0.4


def simulate_fields(
    *,
    n_fields: int,
    n_min: int,
    n_max: int,
    max_shift: float,
    grid_shape,
    seed: int,
    truth=TRUTH,
    population=None,
    progress: bool = True,
):
    """Truth, catalogues and selection grids of ``n_fields`` simulated fields.

    Returns ``(population_model, per_field_truth, catalogues, grids, shifts, n_obs)``.
    """
    from jaxcomp.demographics import PopulationModel, SelectionGrid, simulate_catalogue
    from jaxcomp.selection.synthetic import LogisticSelection

    population = population or PopulationModel(log_age_range=AGE_RANGE)
    rng = np.random.default_rng(seed)
    field_truth = {
        name: mean + scatter * rng.standard_normal(n_fields)
        for name, (mean, scatter) in truth.items()
    }
    logits = np.concatenate(
        [
            AV_LOGIT_SCATTER * rng.standard_normal((n_fields, population.n_av_bins - 1)),
            np.zeros((n_fields, 1)),
        ],
        axis=1,
    )
    field_truth["av_weights"] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    n_obs = np.round(np.exp(rng.uniform(np.log(n_min), np.log(n_max), n_fields))).astype(int)
    shifts = np.linspace(0.0, max_shift, n_fields) if n_fields > 1 else np.zeros(1)
    catalogues, grids = [], []
    iterator = range(n_fields)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="simulating fields")
    for f in iterator:
        selection = LogisticSelection(
            log_mass_50_young=SELECTION_KW["log_mass_50_young"] + DEX_PER_MAG * shifts[f],
            age_slope=SELECTION_KW["age_slope"],
        )
        grids.append(SelectionGrid.from_selection(selection, shape=tuple(grid_shape)))
        params = {name: values[f] for name, values in field_truth.items()}
        catalogues.append(
            simulate_catalogue(
                population, params, selection, n_obs=int(n_obs[f]), seed=seed * 1000 + f + 1
            )
        )
    return population, field_truth, catalogues, grids, shifts, n_obs


def _interval(result, name, prob):
    return [float(v) for v in result.interval(name, prob)]


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-fields", type=int, default=20)
    parser.add_argument("--n-min", type=int, default=150)
    parser.add_argument("--n-max", type=int, default=1500)
    parser.add_argument("--max-shift", type=float, default=2.0, help="depth range [mag]")
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--target-accept", type=float, default=0.9)
    parser.add_argument(
        "--grid", type=int, nargs=3, default=(121, 71, 13), metavar=("N_MASS", "N_AGE", "N_AV")
    )
    parser.add_argument("--poolings", nargs="+", default=["partial", "none", "complete"])
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--parametrisation",
        choices=("non_centred", "centred"),
        default="non_centred",
        help="coordinates of the per-field values under partial pooling",
    )
    parser.add_argument("-o", "--output-dir", type=Path, default=HERE / "results")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    import arviz as az

    from jaxcomp.demographics import MultiFieldModel, fit_fields

    t_start = time.perf_counter()
    population, field_truth, catalogues, grids, shifts, n_obs = simulate_fields(
        n_fields=args.n_fields,
        n_min=args.n_min,
        n_max=args.n_max,
        max_shift=args.max_shift,
        grid_shape=args.grid,
        seed=args.seed,
        population=None,
        progress=not args.quiet,
    )
    names = [f"field_{f:02d}" for f in range(args.n_fields)]
    results = {}
    for pooling in args.poolings:
        results[pooling] = fit_fields(
            catalogues,
            grids,
            MultiFieldModel(population, pooling, parametrisation=args.parametrisation),
            field_names=names,
            num_warmup=args.num_warmup,
            num_samples=args.num_samples,
            num_chains=args.num_chains,
            seed=args.seed,
            target_accept_prob=args.target_accept,
            progress=not args.quiet,
        )
    summary = {
        "seed": args.seed,
        "settings": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in vars(args).items()
            if k not in ("output_dir",)
        },
        "population_truth": {k: {"mean": v[0], "scatter": v[1]} for k, v in TRUTH.items()},
        "av_logit_scatter_truth": AV_LOGIT_SCATTER,
        "field_truth": {k: np.asarray(v).tolist() for k, v in field_truth.items()},
        "n_obs": n_obs.tolist(),
        "depth_shift_mag": shifts.tolist(),
        "fits": {},
    }
    for pooling, result in results.items():
        fit = {
            "divergences": result.num_divergences,
            "runtime_s": round(result.runtime_s, 1),
            "max_r_hat": float(np.nanmax(result.summary["r_hat"])),
            "min_ess_bulk": float(np.nanmin(result.summary["ess_bulk"])),
        }
        population_sites = {}
        for name in result.model.population_parameters:
            base = name.rsplit("_", 1)[0]
            kind = name.rsplit("_", 1)[1]
            entry = {
                "mean": float(np.mean(result.draws(name))),
                "sd": float(np.std(result.draws(name))),
                "interval_95": _interval(result, name, 0.95),
                "interval_68": _interval(result, name, 0.68),
            }
            truth = dict(TRUTH, av_logit=(0.0, AV_LOGIT_SCATTER))
            if base in truth and kind in ("mean", "scatter") and np.ndim(result.draws(name)) == 1:
                true = truth[base][0] if kind == "mean" else truth[base][1]
                entry["truth"] = true
                entry["inside_95"] = bool(
                    entry["interval_95"][0] <= true <= entry["interval_95"][1]
                )
            population_sites[name] = entry
        fit["population"] = population_sites
        for name in ("alpha_M", "log_M_break", "alpha_T"):
            estimate = np.mean(result.draws(name), axis=0)
            fit[f"{name}_field_means"] = estimate.tolist()
            fit[f"{name}_field_sd"] = np.std(result.draws(name), axis=0).tolist()
            fit[f"{name}_rms_error"] = float(np.sqrt(np.mean((estimate - field_truth[name]) ** 2)))
        fit["elpd_loo"] = float(result.loo().elpd_loo)
        summary["fits"][pooling] = fit
    if "partial" in results and "none" in results:
        summary["rms_ratio_none_over_partial"] = {
            name: summary["fits"]["none"][f"{name}_rms_error"]
            / summary["fits"]["partial"][f"{name}_rms_error"]
            for name in ("alpha_M", "log_M_break", "alpha_T")
        }
    if len(results) > 1:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comparison = az.compare({k: r.idata for k, r in results.items()}, ic="loo")
        summary["loo_comparison"] = json.loads(
            comparison.drop(columns=["warning"], errors="ignore").to_json(orient="index")
        )
    summary["runtime_s"] = round(time.perf_counter() - t_start, 1)
    _write_json(args.output_dir / "multifield_simulation.json", summary)
    if len(results) > 1:
        import matplotlib

        matplotlib.use("Agg")
        from jaxcomp.demographics import plot_shrinkage

        for name in ("alpha_M", "log_M_break"):
            figure = plot_shrinkage(results, name, truth=field_truth[name])
            figure.savefig(args.output_dir / f"multifield_shrinkage_{name}.png", dpi=120)
    if not args.quiet:
        for pooling, fit in summary["fits"].items():
            print(
                f"{pooling}: divergences {fit['divergences']}, max r_hat {fit['max_r_hat']:.3f}, "
                f"alpha_M RMS {fit['alpha_M_rms_error']:.4f}, elpd_loo {fit['elpd_loo']:.1f}"
            )
            for name, entry in fit["population"].items():
                print(
                    f"  {name}: {entry['mean']:.3f} ± {entry['sd']:.3f}, 95% "
                    f"{entry['interval_95']}, "
                    f"truth {entry.get('truth')}"
                )
        print("RMS ratio (none / partial):", summary.get("rms_ratio_none_over_partial"))
    return summary


if __name__ == "__main__":
    main()
