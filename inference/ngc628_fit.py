#!/usr/bin/env python
"""Hierarchical Bayesian fit of the NGC 628C cluster mass and age functions with the C-4 selection
function.

The class 1-3 LEGUS clusters of NGC 628C (Adamo et al. 2017 SED fits) are fitted
with the selection-normalised likelihood of :mod:`jaxcomp.demographics`
(marginalised over the total number, Mandel, Farr & Gair 2019), with p_obs of
the published C-4 physical network (Tang et al. 2026) tabulated once on a grid.
Four population models, all with a Dirichlet(1) piecewise-constant p(A_V) on
four bins in [0, 3] mag:

* ``schechter_pl``:  Schechter CMF, power-law CAF
* ``schechter_bpl``: Schechter CMF, broken-power-law CAF
* ``powerlaw_pl``:   power-law CMF, power-law CAF
* ``powerlaw_bpl``:  power-law CMF, broken-power-law CAF

(and, with ``--models ... schechter_pl_massdep``, a Schechter CMF with a
mass-dependent CAF slope α_T(M) = α_T + β_T (log M - 4)).  Supports: log M in
[2, 8], log T in [6, 10.18]; priors: α_M ~ U(-3, -1), log M_break ~ U(3.5, 7.5),
α_T ~ U(-3, 1), α_T,young ~ U(-2, 1), log T_break ~ U(6.5, 9.5).  Catalogue values
are taken as exact (like Adamo+2017 and Tang+2024); ``--measurement-errors``
refits the first model with the LEGUS 68% ranges as Gaussian errors
(importance-sampling form).  The six clusters with A_V > 3 mag (outside the
C-4 domain) are clipped to 3 mag.

Results are compared with Adamo+2017 (α_M = -2.09; α_T = -0.8 on 1-200 Myr) and
Tang+2024 (α_M = -2.16, log M_break = 5.61; CAF ∝ T below log T = 8.22 and α_T =
-1.41 above), and the models are compared with PSIS-LOO (per-object
log-likelihood stored in the InferenceData).

Outputs (``--output-dir``): ``posteriors.ecsv`` and ``posteriors.md`` (median and
68%/95% intervals, r_hat, ESS, divergences per model), ``loo_compare.ecsv``,
``pair_<model>.png``, ``ppc_<model>.png``, ``ppc_all.png``, ``summary.json``,
and ``idata_<model>.nc`` if netCDF writing is available.

``--log-mass-range`` / ``--log-age-range`` restrict the population (and the
catalogue) to a domain, e.g. Adamo+2017's M > 5e3 Msun and T < 200 Myr; the age
break prior is then kept inside the age support.

``--selection`` takes a jaxcomp selection artefact instead of C-4 (a radius-aware
network is averaged over ``--radii-pc``); for an ensemble (``TrainConfig(n_members=5,
ensemble_resampling="bootstrap")``) the grid holds every member's p_obs, the fits report
the variance over the members of ln L at the posterior median, and
``--selection-uncertainty ensemble`` averages the likelihood over the members
(``inference/ngc628_fit_selection_uncertainty.py`` trains such an ensemble on the demo's
campaign and compares both fits).

Usage::

    python inference/ngc628_fit.py -o out/ngc628_fit --c4-dir PATH/checkpoints --measurement-errors
    python inference/ngc628_fit.py -o out/ngc628_fit_adamo_domain --log-mass-range 3.7 8
    --log-age-range 6 8.31 \
        --grid-file out/ngc628_fit/selection_grid_500x500x50.npz \
        --models schechter_pl schechter_bpl powerlaw_pl powerlaw_bpl schechter_pl_massdep
        --measurement-errors

Measured (2 cores, 4 chains x (500 + 500), 500 x 500 x 50 grid with stride 2): 1017 clusters, 0.4-4
min
per model; 285 clusters in the Adamo domain, 15 s to 5 min per model (the mass-dependent CAF is
slowest).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PUBLISHED = {
    "Adamo+2017": {"alpha_M": -2.09, "alpha_T": -0.8},
    "Tang+2024": {
        "alpha_M": -2.16,
        "log_M_break": 5.61,
        "alpha_T": -1.41,
        "log_T_break": 8.22,
        "alpha_T_young": 0.0,
    },
}
MODELS = {
    "schechter_pl": dict(mass="schechter", age="power_law"),
    "schechter_bpl": dict(mass="schechter", age="broken_power_law"),
    "powerlaw_pl": dict(mass="power_law", age="power_law"),
    "powerlaw_bpl": dict(mass="power_law", age="broken_power_law"),
    "schechter_pl_massdep": dict(mass="schechter", age="power_law", mass_dependent_age=True),
}


def _values(column) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


def jaxcomp_selection_grid(path: Path, shape, radii_pc=None, cache_dir: Path | None = None):
    """p_obs of a jaxcomp selection artefact (``SelectionFunction.save``) on a grid.

    A radius-aware network (inputs ``physical+r_eff_pc``) is averaged over ``radii_pc``
    with equal weights (the demo's fits; default: the whole-pc radii of its training
    domain).  An ensemble gives a member grid (p_obs of every member: the fit's
    ``selection_uncertainty`` can then be ``"ensemble"``); each member's grid is cached in
    ``cache_dir`` by the artefact's hash, the radii and the shape.
    """
    import hashlib

    from jaxcomp.demographics import SelectionGrid, ensemble_members, stack_member_grids
    from jaxcomp.selection import RadiusMarginalisedSelection, SelectionFunction

    selection = SelectionFunction.load(path)
    radius_aware = "r_eff_pc" in selection.input_names
    if radius_aware and radii_pc is None:
        low, high = selection.domain["r_eff_pc"]
        radii_pc = np.arange(np.ceil(low - 1e-6), np.floor(high + 1e-6) + 1)
    members = ensemble_members(selection) if selection.n_members > 1 else [selection]
    if radius_aware:
        members = [RadiusMarginalisedSelection(m, radii_pc) for m in members]
    radii = [] if radii_pc is None else [float(r) for r in radii_pc]
    key = hashlib.sha256(Path(path).read_bytes() + repr([radii, list(shape)]).encode())
    grids = []
    for m, member in enumerate(members):
        cache = None if cache_dir is None else cache_dir / f"grid_{key.hexdigest()[:12]}_{m}.npz"
        if cache is not None and cache.is_file():
            grids.append(SelectionGrid.load(cache))
            continue
        print(f"p_obs of member {m + 1}/{len(members)} of {path} on a {shape} grid", flush=True)
        # a radius-aware member evaluates the network at every radius: smaller blocks (memory)
        block = {"points_per_call": 1 << 15} if radius_aware else {}
        grid = SelectionGrid.from_selection(member, shape=tuple(shape), progress=True, **block)
        if cache is not None:
            grid.save(cache)
        grids.append(grid)
    return grids[0] if len(grids) == 1 else stack_member_grids(grids)


def load_ngc628c(mass_range, age_range, say=print):
    """The LEGUS NGC 628C class 1-3 clusters with an SED fit inside the population support, A_V
    clipped to [0, 3] mag: (catalogue, clusters with a fit, number clipped)."""
    from jaxcomp.demographics import load_catalogue

    # the clusters with an SED fit (finite log_mass, log_age, av): the loader of `jaxcomp fit`
    catalogue, _ = load_catalogue(
        legus="ngc628c", classes=(1, 2, 3), drop_invalid=True, say=lambda *a: None
    )
    n_all = len(catalogue)
    inside = (
        (_values(catalogue["log_mass"]) >= mass_range[0])
        & (_values(catalogue["log_mass"]) <= mass_range[1])
        & (_values(catalogue["log_age"]) >= age_range[0])
        & (_values(catalogue["log_age"]) <= age_range[1])
    )
    catalogue = catalogue[inside]
    say(f"{len(catalogue)} of {n_all} clusters inside log M in {mass_range}, log T in {age_range}")
    n_av_clipped = int(np.sum(_values(catalogue["av"]) > 3.0))
    catalogue["av"] = np.clip(_values(catalogue["av"]), 0.0, 3.0)
    say(f"NGC 628C class 1-3 clusters: {len(catalogue)} ({n_av_clipped} with A_V > 3 clipped to 3)")
    return catalogue, n_all, n_av_clipped


def population_supports(mass_range, age_range) -> dict:
    """``PopulationModel`` supports (and the age-break prior kept inside the age support)."""
    supports = dict(log_mass_range=tuple(mass_range), log_age_range=tuple(age_range))
    if age_range[1] - 0.3 < 9.5 or age_range[0] + 0.3 > 6.5:
        supports["priors"] = {
            "log_T_break": (max(6.5, age_range[0] + 0.3), min(9.5, age_range[1] - 0.3))
        }
    return supports


def load_grid(args, out: Path):
    from jaxcomp.demographics import SelectionGrid

    if args.grid_file is not None:
        return SelectionGrid.load(args.grid_file), str(args.grid_file)
    shape = tuple(args.grid)
    if args.selection is not None:
        grid = jaxcomp_selection_grid(args.selection, shape, args.radii_pc, out)
        return grid, str(args.selection)
    path = out / f"selection_grid_{shape[0]}x{shape[1]}x{shape[2]}.npz"
    if path.is_file():
        return SelectionGrid.load(path), str(path)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ngc628_corrections import fetch_c4_checkpoints

    from jaxcomp.selection.c4 import import_c4

    selection = import_c4(args.c4_dir or fetch_c4_checkpoints(), "phys")
    print(f"evaluating the C-4 physical network on a {shape} grid ...", flush=True)
    grid = SelectionGrid.from_selection(selection, shape=shape, progress=True)
    grid.save(path)
    return grid, str(path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--c4-dir", type=Path, default=None, help="C-4 checkpoints folder (default: download)"
    )
    parser.add_argument(
        "--grid-file", type=Path, default=None, help="a saved SelectionGrid (.npz) to reuse"
    )
    parser.add_argument("--grid", type=int, nargs=3, default=(500, 500, 50))
    parser.add_argument(
        "--selection",
        type=Path,
        default=None,
        help="a jaxcomp SelectionFunction artefact (.safetensors) instead of C-4; an ensemble "
        "gives a member grid (see --selection-uncertainty)",
    )
    parser.add_argument(
        "--radii-pc",
        type=float,
        nargs="+",
        default=None,
        help="radii [pc] a radius-aware --selection is averaged over (default: its training "
        "domain's whole-pc radii)",
    )
    parser.add_argument(
        "--selection-uncertainty",
        choices=("none", "ensemble"),
        default="none",
        help="'ensemble': average the likelihood over the members of an ensemble --selection",
    )
    parser.add_argument(
        "--stride",
        type=int,
        nargs=2,
        default=(2, 2),
        metavar=("MASS", "AGE"),
        help="keep every k-th grid node in the normalising sum",
    )
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("ngc628_fit"))
    parser.add_argument(
        "--models",
        nargs="+",
        default=["schechter_pl", "schechter_bpl", "powerlaw_pl", "powerlaw_bpl"],
        choices=sorted(MODELS),
    )
    parser.add_argument(
        "--log-mass-range",
        type=float,
        nargs=2,
        default=(2.0, 8.0),
        metavar=("LO", "HI"),
        help="population support in log10 M [Msun]; clusters outside are dropped "
        "(3.7 8 for the Adamo+2017 M > 5e3 Msun sample)",
    )
    parser.add_argument(
        "--log-age-range",
        type=float,
        nargs=2,
        default=(6.0, 10.176),
        metavar=("LO", "HI"),
        help="population support in log10 T [yr] (6 8.31 for Adamo+2017's T <= 200 Myr: LEGUS "
        "ages sit on a model grid and 200 Myr is log T = 8.301)",
    )
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--measurement-errors",
        action="store_true",
        help="also refit the first model with Gaussian errors from the 68%% ranges",
    )
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import arviz as az
    import matplotlib.pyplot as plt
    from astropy.table import Table

    from jaxcomp.demographics import PopulationFitter, PopulationModel

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    grid, grid_source = load_grid(args, out)
    print(f"selection grid {grid.shape} from {grid_source}")

    mass_range, age_range = tuple(args.log_mass_range), tuple(args.log_age_range)
    catalogue, n_all, n_av_clipped = load_ngc628c(mass_range, age_range)
    supports = population_supports(mass_range, age_range)
    runs = [(name, PopulationModel(**MODELS[name], **supports)) for name in args.models]
    if args.measurement_errors:
        first = args.models[0]
        runs.append(
            (
                f"{first}_errors",
                PopulationModel(
                    **MODELS[first],
                    **supports,
                    measurement_error="samples",
                    error_columns=("log_mass", "log_age", "av"),
                ),
            )
        )
    results = {}
    rows = []
    for name, model in runs:
        fitter = PopulationFitter(
            model,
            grid,
            num_warmup=args.num_warmup,
            num_samples=args.num_samples,
            num_chains=args.num_chains,
            mass_stride=args.stride[0],
            age_stride=args.stride[1],
            selection_uncertainty=args.selection_uncertainty,
        )
        t0 = time.perf_counter()
        result = fitter.fit(catalogue, seed=args.seed, n_object_samples=64)
        wall = time.perf_counter() - t0
        results[name] = result
        print(f"\n== {name}: {model.describe()} (wall {wall:.0f} s)")
        print(result.report(), flush=True)
        row = {
            "model": name,
            "description": model.describe(),
            "n_divergences": result.num_divergences,
            "wall_s": round(wall, 1),
            "sampling_s": round(result.runtime_s, 1),
        }
        for parameter in model.scalar_parameters + ("detected_fraction", "n_total"):
            draws = result.draws(parameter)
            q = np.quantile(draws, [0.025, 0.16, 0.5, 0.84, 0.975])
            row[parameter] = q.tolist()
        for k in range(model.n_av_bins):
            row[f"av_weights[{k}]"] = np.quantile(
                result.draws("av_weights")[:, k], [0.025, 0.16, 0.5, 0.84, 0.975]
            ).tolist()
        if result.selection_diagnostics is not None:
            row["selection_uncertainty"] = result.selection_uncertainty
            row["log_likelihood_variance"] = result.log_likelihood_variance
            row["selection_variance_share"] = result.selection_diagnostics["variance_share"]
        row["max_r_hat"] = float(np.nanmax(result.summary["r_hat"]))
        row["min_ess_bulk"] = float(np.nanmin(result.summary["ess_bulk"]))
        rows.append(row)
        reference = (
            {**PUBLISHED["Tang+2024"]} if model.mass == "schechter" else {**PUBLISHED["Adamo+2017"]}
        )
        fig = result.plot_pair(reference=reference, kind="kde")
        fig.suptitle(
            f"NGC 628C: {model.describe()}\nreference: "
            f"{'Tang+2024' if model.mass == 'schechter' else 'Adamo+2017'}",
            fontsize="small",
        )
        fig.subplots_adjust(top=0.9)
        fig.savefig(out / f"pair_{name}.png", dpi=110)
        plt.close(fig)
        fig = result.plot_ppc(n_draws=200, title=f"NGC 628C class 1-3: {model.describe()}")
        fig.savefig(out / f"ppc_{name}.png", dpi=120)
        plt.close(fig)
        try:
            result.idata.to_netcdf(out / f"idata_{name}.nc")
        except Exception as error:  # netCDF back end not installed
            print(f"(InferenceData not saved: {error})")

    # ----------------------------------------------------------- LOO comparison
    exact = {  # LOO needs the per-object log-likelihood (not stored for "ensemble" fits)
        name: results[name].idata
        for name, model in runs
        if model.measurement_error == "none" and "log_likelihood" in results[name].idata.groups()
    }
    compare = az.compare(exact, ic="loo") if len(exact) > 1 else None
    loo_rows = []
    if compare is not None:
        print("\nPSIS-LOO comparison (exact catalogue values):")
        print(compare.to_string())
        for name, entry in compare.iterrows():
            loo = results[name].loo(pointwise=True)
            loo_rows.append(
                {
                    "model": name,
                    "rank": int(entry["rank"]),
                    "elpd_loo": float(entry["elpd_loo"]),
                    "se": float(entry["se"]),
                    "elpd_diff": float(entry["elpd_diff"]),
                    "dse": float(entry["dse"]),
                    "p_loo": float(entry["p_loo"]),
                    "weight": float(entry["weight"]),
                    "n_pareto_k_gt_0.7": int(np.sum(np.asarray(loo.pareto_k) > 0.7)),
                }
            )
        Table(rows=[[r[k] for k in loo_rows[0]] for r in loo_rows], names=list(loo_rows[0])).write(
            out / "loo_compare.ecsv", overwrite=True
        )

    # ------------------------------------------------------------------ tables
    columns = [
        "alpha_M",
        "log_M_break",
        "alpha_T",
        "alpha_T_young",
        "log_T_break",
        "beta_T",
        "detected_fraction",
        "n_total",
    ]

    def fmt(q, digits=2):
        if q is None:
            return "-"
        if abs(q[2]) > 1000:
            return f"{q[2]:.3g} [{q[1]:.3g}, {q[3]:.3g}]"
        return f"{q[2]:.{digits}f} (+{q[3] - q[2]:.{digits}f} -{q[2] - q[1]:.{digits}f})"

    lines = [
        "| model | " + " | ".join(columns) + " | max r_hat | min ESS | div |",
        "|" + "---|" * (len(columns) + 4),
    ]
    for row in rows:
        digits = {"detected_fraction": 4}
        lines.append(
            f"| {row['model']} | "
            + " | ".join(fmt(row.get(c), digits.get(c, 2)) for c in columns)
            + f" | {row['max_r_hat']:.3f} | {row['min_ess_bulk']:.0f} | {row['n_divergences']} |"
        )
    lines.append("")
    lines.append(
        "Published: Adamo+2017 alpha_M = -2.09 (power law, M > 5e3 Msun, T < 200 Myr), alpha_T = "
        "-0.8; "
        "Tang+2024 alpha_M = -2.16, log M_break = 5.61, CAF ∝ T below log T = 8.22, alpha_T = "
        "-1.41 above."
    )
    (out / "posteriors.md").write_text("\n".join(lines) + "\n")
    table = Table()
    table["model"] = [r["model"] for r in rows]
    for c in columns + [f"av_weights[{k}]" for k in range(4)]:
        for label, index in (("q025", 0), ("q16", 1), ("median", 2), ("q84", 3), ("q975", 4)):
            table[f"{c}_{label}"] = [r[c][index] if c in r else np.nan for r in rows]
    for c in ("max_r_hat", "min_ess_bulk", "n_divergences", "sampling_s"):
        table[c] = [r[c] for r in rows]
    table.meta.update(
        {
            "catalogue": "LEGUS NGC 628C class 1-3",
            "n_clusters": len(catalogue),
            "log_mass_range": list(mass_range),
            "log_age_range": list(age_range),
            "n_av_clipped": n_av_clipped,
            "grid": grid_source,
            "published": PUBLISHED,
        }
    )
    table.write(out / "posteriors.ecsv", overwrite=True)

    # ---------------------------------------------------------- combined PPC
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.0 * len(rows)), squeeze=False)
    for (name, _), ax_row in zip(runs, axes):
        results[name].plot_ppc(
            axes=ax_row, n_draws=100, title="NGC 628C class 1-3: posterior predictive checks"
        )
        ax_row[0].set_title(name, fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "ppc_all.png", dpi=110)
    plt.close(fig)

    summary = {
        "n_clusters": len(catalogue),
        "n_clusters_all": n_all,
        "log_mass_range": list(mass_range),
        "log_age_range": list(age_range),
        "n_av_clipped": n_av_clipped,
        "grid": grid_source,
        "grid_shape": list(grid.shape),
        "stride": list(args.stride),
        "sampler": {
            "num_warmup": args.num_warmup,
            "num_samples": args.num_samples,
            "num_chains": args.num_chains,
            "seed": args.seed,
        },
        "posteriors": rows,
        "loo": loo_rows,
        "published": PUBLISHED,
        "runtime_s": round(time.perf_counter() - t_start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n" + "\n".join(lines))
    print(f"\nwrote tables and figures to {out} in {summary['runtime_s']:.0f} s")
    return summary


if __name__ == "__main__":
    main()
