#!/usr/bin/env python
"""The NGC 628C fit with and without the selection function's uncertainty (issue 18).

The published C-4 network has a single member, so its uncertainty cannot be
propagated; this script uses jaxcomp's own selection function, trained on the
demo's training campaign on the mock NGC 628C field, as a bootstrap ensemble
(``TrainConfig(n_members=5, ensemble_resampling="bootstrap")``: every member trained
on a resample of the injected clusters).  By default the network is the one the
demo's fits use, the radius-aware physical network (inputs log M, log T, A_V,
r_eff) averaged over the campaign's ten radii (1-10 pc) with equal weights
(``[fit] selection = "physical+r_eff_pc"`` in ``data/workflows/demo.toml``);
``--network physical`` trains the radius-blind network instead (the analogue of C-4's).
The demo's ``[networks]`` settings (2 x 256 GELU, 60 epochs, batch 2048, learning
rates 5e-3 and 1e-2, weight decay 1e-3) and its train-stage seed are used.

The LEGUS NGC 628C class 1-3 catalogue (1017 clusters with an SED fit inside log M
in [2, 8], log T in [6, 10.176]; A_V clipped to 3 mag) is fitted with
``inference/ngc628_fit.py``'s ``schechter_pl`` model (Schechter CMF, power-law CAF,
Dirichlet(1) p(A_V) on 4 bins) twice: ``selection_uncertainty="none"`` (p_obs the
ensemble mean, taken as exact) and ``"ensemble"`` (the likelihood averaged over the
5 members).  Reported per fit: medians and 68% / 95% intervals of α_M, log M_break,
α_T; the variance over the members of ln L at the posterior median; each
hyperparameter's share of posterior variance from the selection; the members'
posterior weights; wall times; and the ratio of the wall times.  A third posterior, the
"cut" one (:func:`jaxcomp.demographics.fit_members`: one fit per member, pooled with
equal weights, the selection's uncertainty not updated by the catalogue), is added
unless ``--no-cut``.

Inputs
------
The training campaign's labels, made by the demo's ``ast_train`` stage (about 4 min on
a quiet 2-core machine; the field and library stages run first)::

    nice jaxcomp run data/workflows/demo.toml --only ast_train --out demo-run --no-report

then::

    python inference/ngc628_fit_selection_uncertainty.py \\
        --labels demo-run/ast_train/labels.parquet \\
        -o inference/results/ngc628_fit_selection_uncertainty --work-dir ngc628-selection-work

The trained ensemble (``selection_<network>_bootstrap5.safetensors``) and the member grids
are written to ``--work-dir`` and reused when present (``--selection`` takes a saved
ensemble instead of ``--labels``).  Outputs: ``summary.json`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARAMETERS = ("alpha_M", "log_M_break", "alpha_T")
MODEL = "schechter_pl"


def train_ensemble(labels_path: Path, network: str, members: int, config_path: Path, path: Path):
    """Train the demo's network as a bootstrap ensemble on the campaign's labels; save it."""
    from jaxcomp._io import read_table
    from jaxcomp.selection.training import TrainConfig, train_selection_function
    from jaxcomp.workflow.config import load_config
    from jaxcomp.workflow.stage_context import stage_seed

    demo = load_config(config_path)
    section = demo.networks
    config = TrainConfig(
        hidden_widths=tuple(section.hidden),
        epochs=section.epochs,
        batch_size=section.batch_size,
        learning_rates=tuple(section.learning_rates),
        weight_decays=tuple(section.weight_decays),
        n_members=members,
        ensemble_resampling="bootstrap",
        seed=stage_seed(demo.run.seed, "train"),
    )
    labels = read_table(labels_path)
    print(f"training {network!r} on {len(labels)} labels: {members} bootstrap members", flush=True)
    start = time.perf_counter()
    result = train_selection_function(
        labels,
        network,
        config,
        progress=True,
        provenance={"labels": str(labels_path), "workflow_config": str(config_path)},
    )
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    result.selection_function.save(path)
    return {
        "seconds": round(seconds, 1),
        "labels": len(labels),
        "best_learning_rate": result.best_learning_rate,
        "held_out_ece": result.test_calibration.ece,
        "test_spread_coverage": result.test_spread_coverage,
    }


def _quantiles(values) -> dict:
    q = np.quantile(np.asarray(values, np.float64), [0.025, 0.16, 0.5, 0.84, 0.975])
    return {"median": q[2], "68": [q[1], q[3]], "95": [q[0], q[4]]}


def fit_row(result, wall: float) -> dict:
    row = {
        "selection_uncertainty": result.selection_uncertainty,
        "wall_s": round(wall, 1),
        "sampling_s": round(result.runtime_s, 1),
        "n_divergences": result.num_divergences,
        "max_r_hat": float(np.nanmax(result.summary["r_hat"])),
        "min_ess_bulk": float(np.nanmin(result.summary["ess_bulk"])),
        "quadrature_relative_error": result.quadrature_relative_error,
        "log_likelihood_variance_at_median": result.log_likelihood_variance,
        "variance_share_from_selection": result.selection_diagnostics["variance_share"],
        "member_weights": result.selection_diagnostics["member_weights"],
        "member_ess": result.selection_diagnostics["member_ess"],
    }
    for name in PARAMETERS + ("detected_fraction",):
        row[name] = _quantiles(result.draws(name))
    return row


def _markdown(summary: dict) -> str:
    fits = summary["fits"]
    lines = [
        "# NGC 628C class 1-3: the fit with and without the selection's uncertainty",
        "",
        f"{summary['n_clusters']} clusters; model {summary['model']}; selection: "
        f"{summary['selection']['description']}; grid {summary['grid_shape']}; NUTS "
        f"{summary['sampler']['num_chains']} x ({summary['sampler']['num_warmup']} + "
        f"{summary['sampler']['num_samples']}), seed {summary['sampler']['seed']}.",
        "",
        "| selection_uncertainty | " + " | ".join(PARAMETERS) + " | Var ln L (median) | "
        "selection share of variance | wall [s] | max r_hat | divergences |",
        "|---|" + "---|" * (len(PARAMETERS) + 5),
    ]
    for mode, row in fits.items():
        cells = []
        for name in PARAMETERS:
            q = row[name]
            cells.append(
                f"{q['median']:.3f} [{q['68'][0]:.3f}, {q['68'][1]:.3f}] "
                f"[{q['95'][0]:.3f}, {q['95'][1]:.3f}]"
            )
        share = ", ".join(
            f"{k} {100 * v:.0f}%"
            for k, v in row["variance_share_from_selection"].items()
            if k in PARAMETERS
        )
        variance = row.get("log_likelihood_variance_at_median")
        variance = "-" if variance is None else f"{variance:.3g}"
        lines.append(
            f"| {mode} | " + " | ".join(cells) + f" | {variance}"
            f" | {share} | {row['wall_s']:.0f} | {row['max_r_hat']:.3f} | {row['n_divergences']} |"
        )
    lines += [
        "",
        "Cells: median [68%] [95%] equal-tailed intervals.  Var ln L: variance over the "
        "members of the full per-member ln L at the posterior median (warning above 1, "
        "Talbot & Golomb 2023).  Selection share: Var_m(E[λ|m]) / Var(λ) by the law of total "
        'variance over the members (for "none": what the ensemble fit would give, reweighted '
        "from the plug-in posterior).",
        "",
        f'Member posterior weights ("ensemble"): '
        f"{', '.join(f'{w:.3f}' for w in fits['ensemble']['member_weights'])}.",
        f"Wall time ensemble / none: {summary['wall_ratio_ensemble_over_none']:.2f} "
        f"(sampling {summary['sampling_ratio_ensemble_over_none']:.2f}).",
    ]
    if "cut" in fits:
        lines.append(
            "Cut posterior (one fit per member, pooled with equal weights), member medians: "
            + "; ".join(
                f"{k} " + ", ".join(f"{v:.3f}" for v in values)
                for k, values in fits["cut"]["member_medians"].items()
            )
            + "."
        )
    if summary.get("c4_reference"):
        ref = summary["c4_reference"]
        lines.append(
            "C-4 network (single member, inference/results/ngc628_fit_full): "
            + ", ".join(f"{k} {v[2]:.3f} [{v[0]:.3f}, {v[4]:.3f}]" for k, v in ref.items())
            + " (median [95%])."
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labels", type=Path, help="the demo's ast_train/labels.parquet")
    parser.add_argument("--selection", type=Path, help="a saved ensemble (.safetensors)")
    parser.add_argument(
        "--network", choices=("physical+r_eff_pc", "physical"), default="physical+r_eff_pc"
    )
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO / "data" / "workflows" / "demo.toml",
        help="the demo configuration ([networks] settings and seed)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("ngc628-selection-work"))
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=HERE / "results" / "ngc628_fit_selection_uncertainty",
    )
    parser.add_argument("--grid", type=int, nargs=3, default=(241, 208, 13))
    parser.add_argument("--stride", type=int, nargs=2, default=(1, 1))
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-cut",
        dest="cut",
        action="store_false",
        help="skip the per-member fits pooled with equal weights (fit_members, the cut posterior)",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from ngc628_fit import MODELS, jaxcomp_selection_grid, load_ngc628c, population_supports

    from jaxcomp._io import atomic_write_text
    from jaxcomp.demographics import PopulationFitter, PopulationModel, fit_members

    t_start = time.perf_counter()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    training = None
    selection = args.selection or work / (
        f"selection_{args.network.replace('+', '_')}_bootstrap{args.members}.safetensors"
    )
    if not selection.is_file():
        if args.labels is None:
            parser.error(
                f"{selection} does not exist: pass --labels (the demo's ast_train/labels.parquet, "
                "see the module docstring) to train it, or --selection"
            )
        training = train_ensemble(args.labels, args.network, args.members, args.config, selection)
    t_grid = time.perf_counter()
    grid = jaxcomp_selection_grid(selection, tuple(args.grid), None, work)
    grid_s = time.perf_counter() - t_grid

    mass_range, age_range = (2.0, 8.0), (6.0, 10.176)
    catalogue, n_all, n_av_clipped = load_ngc628c(mass_range, age_range)
    model = PopulationModel(**MODELS[MODEL], **population_supports(mass_range, age_range))
    fits = {}
    for mode in ("none", "ensemble"):
        fitter = PopulationFitter(
            model,
            grid,
            num_warmup=args.num_warmup,
            num_samples=args.num_samples,
            num_chains=args.num_chains,
            mass_stride=args.stride[0],
            age_stride=args.stride[1],
            selection_uncertainty=mode,
        )
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            result = fitter.fit(catalogue, seed=args.seed, n_object_samples=64)
        wall = time.perf_counter() - start
        print(f"\n== selection_uncertainty={mode!r} (wall {wall:.0f} s, compilation included)")
        print(result.report(), flush=True)
        fits[mode] = fit_row(result, wall)
        fits[mode]["warnings"] = [str(w.message) for w in caught]
        for message in fits[mode]["warnings"]:
            print(f"warning: {message}")
        if mode == "none" and args.cut:
            # the "cut" posterior: one fit per member with this compiled sampler, pooled
            start = time.perf_counter()
            cut = fit_members(catalogue, grid, fitter=fitter, seed=args.seed)
            wall = time.perf_counter() - start
            fits["cut"] = {
                "selection_uncertainty": "cut (fit_members: equal-weight mixture of the member "
                "posteriors)",
                "wall_s": round(wall, 1),
                "sampling_s": round(sum(f.runtime_s for f in cut.fits), 1),
                "n_divergences": sum(f.num_divergences for f in cut.fits),
                "max_r_hat": max(float(np.nanmax(f.summary["r_hat"])) for f in cut.fits),
                "variance_share_from_selection": cut.variance_share,
                "member_medians": {
                    name: np.median(cut.draws[name], axis=1).tolist() for name in PARAMETERS
                },
            }
            for name in PARAMETERS:
                fits["cut"][name] = _quantiles(cut.pooled(name))
            print(f"cut posterior (wall {wall:.0f} s): {fits['cut']}", flush=True)

    reference = None
    c4 = HERE / "results" / "ngc628_fit_full" / "summary.json"
    if c4.is_file():
        rows = json.loads(c4.read_text())["posteriors"]
        row = next((r for r in rows if r["model"] == MODEL), None)
        reference = None if row is None else {k: row[k] for k in PARAMETERS}
    radius_words = (
        "averaged over r_eff = 1-10 pc with equal weights" if "r_eff" in args.network else ""
    )
    summary = {
        "catalogue": "LEGUS NGC 628C class 1-3",
        "n_clusters": len(catalogue),
        "n_clusters_with_fit": n_all,
        "n_av_clipped": n_av_clipped,
        "model": f"{MODEL}: {model.describe()}",
        "selection": {
            "artefact": str(selection),
            "network": args.network,
            "members": args.members,
            "description": f"jaxcomp {args.network} network trained on the demo's training "
            f"campaign (mock NGC 628C), {args.members}-member bootstrap ensemble {radius_words}",
            "training": training,
            "grid_seconds": round(grid_s, 1),
        },
        "grid_shape": list(grid.shape),
        "stride": list(args.stride),
        "sampler": {
            "num_warmup": args.num_warmup,
            "num_samples": args.num_samples,
            "num_chains": args.num_chains,
            "seed": args.seed,
        },
        "fits": fits,
        "wall_ratio_ensemble_over_none": fits["ensemble"]["wall_s"] / fits["none"]["wall_s"],
        "sampling_ratio_ensemble_over_none": fits["ensemble"]["sampling_s"]
        / fits["none"]["sampling_s"],
        "c4_reference": reference,
        "runtime_s": round(time.perf_counter() - t_start, 1),
    }
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=float))
    atomic_write_text(out / "summary.md", _markdown(summary))
    print("\n" + _markdown(summary))
    return summary


if __name__ == "__main__":
    main()
