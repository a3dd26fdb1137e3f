"""``jaxcomp fit``: hierarchical fit of the mass and age functions (selection-normalised likelihood,
NUTS)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..provenance import package_versions
from ._demographics import (
    add_common_arguments,
    input_configuration,
    load_catalogue,
    load_selection,
    prepare_output,
    sampler_record,
    say_unless_quiet,
    selection_grid,
    write_record,
)
from .fit_fields import add_field_arguments

__all__ = ["add_fit_parser"]


#: Posterior draws of the single-field predictive check (``--ppc-draws``).
_PPC_DRAWS = 200

_FIT_OUTPUTS = [
    "posterior.ecsv",
    "posterior.md",
    "report.txt",
    "pair.png",
    "ppc.png",
    "idata.nc",
    "idata.json",
]


def _fit_model(args):
    from ..demographics.models import PopulationModel

    mass_range, age_range = tuple(args.log_mass_range), tuple(args.log_age_range)
    for name, (low, high) in (("log-mass-range", mass_range), ("log-age-range", age_range)):
        if not high > low:
            raise ValueError(f"--{name} needs LO < HI, got {low:g} {high:g}")
    priors = {}
    if args.age == "broken_power_law" and (age_range[1] - 0.3 < 9.5 or age_range[0] + 0.3 > 6.5):
        low, high = max(6.5, age_range[0] + 0.3), min(9.5, age_range[1] - 0.3)
        if not high > low:
            raise ValueError(f"--log-age-range {age_range} is too narrow for a broken power law")
        priors["log_T_break"] = (low, high)  # keep the break inside the age support
    av = "fixed" if args.av == "uniform" else "piecewise"
    return PopulationModel(
        mass=args.mass,
        age=args.age,
        av=av,
        log_mass_range=mass_range,
        log_age_range=age_range,
        priors=priors,
    )


def _restrict(catalogue, model, av_policy: str, say, label: str = "catalogue"):
    """Rows inside the model's mass and age supports; A_V outside the edges clipped or dropped
    (:func:`jaxcomp.demographics.restrict_to_model` with this command's options named)."""
    from ..demographics.catalogue import restrict_to_model

    return restrict_to_model(
        catalogue,
        model,
        av_policy,
        label=label,
        range_option="--log-mass-range / --log-age-range",
        av_option="--av-out-of-range",
        say=say,
    )


def _posterior_table(result):
    from astropy.table import Table

    summary = result.summary
    rows = []
    names = list(result.model.scalar_parameters) + ["detected_fraction", "n_total"]
    for name in names:
        rows.append((name, result.draws(name)))
    if "av_weights" in result.model.parameter_names:
        weights = result.draws("av_weights")
        rows += [(f"av_weights[{k}]", weights[:, k]) for k in range(weights.shape[1])]
    table = Table(
        names=(
            "parameter",
            "mean",
            "sd",
            "q025",
            "q16",
            "median",
            "q84",
            "q975",
            "r_hat",
            "ess_bulk",
            "ess_tail",
        ),
        dtype=(str, *(float,) * 10),
    )
    for name, draws in rows:
        q = np.quantile(draws, [0.025, 0.16, 0.5, 0.84, 0.975])
        stats = summary.loc[name] if name in summary.index else None

        def pick(key):
            return float(stats[key]) if stats is not None and key in stats else np.nan

        table.add_row(
            (
                name,
                float(np.mean(draws)),
                float(np.std(draws, ddof=1)),
                *q.tolist(),
                pick("r_hat"),
                pick("ess_bulk"),
                pick("ess_tail"),
            )
        )
    table.meta.update(
        {
            "model": result.model.describe(),
            "n_objects": int(result.data.n_objects),
            "seed": int(result.seed),
            "num_divergences": int(result.num_divergences),
            "intervals": "equal-tailed 68% (q16-q84) and 95% (q025-q975)",
        }
    )
    return table


def _markdown(table) -> str:
    lines = [
        f"Posterior of {table.meta['model']} ({table.meta['n_objects']} clusters, seed "
        f"{table.meta['seed']}, "
        f"{table.meta['num_divergences']} divergences)",
        "",
        "| parameter | median | 68% interval | 95% interval | mean | sd | r_hat | ESS bulk | ESS "
        "tail |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        big = abs(row["median"]) >= 1000

        def f(value):
            return f"{value:.4g}" if big else f"{value:.3f}"

        lines.append(
            f"| {row['parameter']} | {f(row['median'])} | [{f(row['q16'])}, {f(row['q84'])}] | "
            f"[{f(row['q025'])}, {f(row['q975'])}] | {f(row['mean'])} | {f(row['sd'])} | "
            f"{row['r_hat']:.3f} | {row['ess_bulk']:.0f} | {row['ess_tail']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _cmd_fit(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .._io import atomic_savefig, atomic_write_text, save_inference_data, write_table
    from ..demographics.fit import PopulationFitter

    say = say_unless_quiet(args)
    start = time.perf_counter()
    for name in ("chains", "warmup", "samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1")
    model = _fit_model(args)
    if args.field:
        from .fit_fields import run_fit_fields

        return run_fit_fields(args, model)
    if args.pooling is not None or args.compare_pooling or args.parametrisation is not None:
        raise ValueError(
            "--pooling, --compare-pooling and --parametrisation fit several fields: give them "
            "with "
            "--field NAME CATALOGUE SELECTION (repeated)"
        )
    if args.ppc_draws is None:
        args.ppc_draws = _PPC_DRAWS
    selection, selection_info = load_selection(args, "fit")
    catalogue, catalogue_info = load_catalogue(args, say=say)
    catalogue, restricted = _restrict(catalogue, model, args.av_out_of_range, say)
    sampler = {**sampler_record(args), "stride": list(args.stride) if args.stride else None}
    options = {
        "mass": args.mass,
        "age": args.age,
        "av": args.av,
        "log_mass_range": list(model.log_mass_range),
        "log_age_range": list(model.log_age_range),
        "av_out_of_range": args.av_out_of_range,
        "priors": {name: list(model.prior_bounds(name)) for name in model.scalar_parameters},
        "ppc_draws": args.ppc_draws,
        **sampler,
    }
    configuration, grid_file_sha = input_configuration(
        "fit", args, catalogue_info, selection_info, options
    )
    out = Path(args.out)
    prepare_output(out, "fit", configuration, args.overwrite)
    record = {
        "command": "fit",
        "status": "running",
        "seed": args.seed,
        "configuration": configuration,
        "model": model.describe(),
        "inputs": {
            "catalogue": catalogue_info,
            "selection": selection_info,
            "grid_file": None
            if grid_file_sha is None
            else {"path": str(Path(args.grid_file).resolve()), "sha256": grid_file_sha},
        },
        "catalogue_cuts": restricted,
        "versions": package_versions(),
        "outputs": _FIT_OUTPUTS,
    }
    write_record(out, "fit", record)
    grid, grid_info = selection_grid(
        args, selection, selection_info, out, progress=not args.quiet, say=say
    )
    stride = (
        tuple(args.stride)
        if args.stride
        else tuple(max(1, int(round(n / 250))) for n in grid.shape[:2])
    )

    say(
        f"fitting {model.describe()} to {len(catalogue)} clusters: {args.chains} chain(s) x "
        f"({args.warmup} warmup + {args.samples} samples), seed {args.seed} (compiling, then "
        "sampling) ..."
    )
    fitter = PopulationFitter(
        model,
        grid,
        num_warmup=args.warmup,
        num_samples=args.samples,
        num_chains=args.chains,
        chain_method=args.chain_method,
        target_accept_prob=args.target_accept,
        max_tree_depth=args.max_tree_depth,
        mass_stride=stride[0],
        age_stride=stride[1],
        progress=not args.quiet,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fitter.fit(catalogue, seed=args.seed)
    # the sampler's own warnings (divergences, a too-coarse grid) go to stderr and the record; the
    # rest is noise
    fit_warnings = list(
        dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning))
    )
    for message in fit_warnings:
        print(f"jaxcomp fit: warning: {message}", file=sys.stderr, flush=True)
    report = result.report()
    say(report)

    table = _posterior_table(result)
    write_table(table, out / "posterior.ecsv")
    atomic_write_text(out / "posterior.md", _markdown(table))
    atomic_write_text(out / "report.txt", report + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib / ArviZ layout and deprecation chatter
        fig = result.plot_pair(kind="kde" if args.chains * args.samples <= 4000 else "scatter")
        atomic_savefig(fig, out / "pair.png", dpi=110)
        fig = result.plot_ppc(
            n_draws=args.ppc_draws, title=f"{catalogue_info['label']}: {model.describe()}"
        )
        atomic_savefig(fig, out / "ppc.png", dpi=120)
    idata_info = save_inference_data(result.idata, out)
    if idata_info["file"] is None or idata_info["format"] != "netcdf":
        say(
            f"InferenceData not saved as netCDF ({idata_info['netcdf_error']})"
            + (f"; wrote {idata_info['file']} instead" if idata_info["file"] else "")
        )

    summary = result.summary

    def finite(values):
        return [float(v) for v in values if np.isfinite(v)]

    diagnostics = {
        "num_divergences": int(result.num_divergences),
        "max_r_hat": max(finite(summary["r_hat"]), default=float("nan")),
        "min_ess_bulk": min(finite(summary["ess_bulk"]), default=float("nan")),
        "min_ess_tail": min(finite(summary["ess_tail"]), default=float("nan")),
        "r_hat": result.r_hat,
        "ess_bulk": result.ess_bulk,
        "ess_tail": {str(k): float(v) for k, v in summary["ess_tail"].items()},
        "sampling_s": round(float(result.runtime_s), 2),
        "quadrature_relative_error": float(
            getattr(result, "quadrature_relative_error", float("nan"))
        ),
        "warnings": fit_warnings,
    }
    medians = {
        row["parameter"]: [float(row["q16"]), float(row["median"]), float(row["q84"])]
        for row in table
    }
    record.update(
        status="complete",
        grid=grid_info,
        stride=list(stride),
        n_clusters=int(len(catalogue)),
        diagnostics=diagnostics,
        posterior_q16_median_q84=medians,
        idata=idata_info,
        runtime_s=round(time.perf_counter() - start, 2),
    )
    write_record(out, "fit", record)
    scalar = ", ".join(
        f"{name} = {medians[name][1]:.3f} [{medians[name][0]:.3f}, {medians[name][2]:.3f}]"
        for name in model.scalar_parameters
    )
    r_hat = f"{diagnostics['max_r_hat']:.3f}" if np.isfinite(diagnostics["max_r_hat"]) else "n/a"
    print(
        f"wrote {out}: {scalar} (median, 68%); {diagnostics['num_divergences']} divergences, "
        f"max r_hat {r_hat}, min ESS {diagnostics['min_ess_bulk']:.0f}"
    )
    return 0


def add_fit_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``fit`` (hierarchical population fit with NUTS) to a ``jaxcomp`` subparsers object."""
    p = subparsers.add_parser(
        "fit",
        help="fit the cluster mass and age functions (selection-normalised likelihood, NUTS)",
        description="Hierarchical Bayesian fit of the mass and age functions and p(A_V) of a "
        "catalogue with the "
        "selection-normalised likelihood (N marginalised), sampled with NumPyro NUTS; see "
        "jaxcomp.demographics.fit_population and inference/ngc628_fit.py. Several fields "
        "(--field NAME CATALOGUE SELECTION, repeated) are fitted jointly in one hierarchical "
        "model (--pooling, --compare-pooling; jaxcomp.demographics.fit_fields).",
    )
    add_common_arguments(p)
    g = p.add_argument_group("model")
    g.add_argument(
        "--mass",
        choices=("schechter", "power_law"),
        default="schechter",
        help="mass function (default: %(default)s)",
    )
    g.add_argument(
        "--age",
        choices=("power_law", "broken_power_law"),
        default="power_law",
        help="age distribution (default: %(default)s)",
    )
    g.add_argument(
        "--av",
        choices=("piecewise", "uniform"),
        default="piecewise",
        help="p(A_V): 4 bins on [0, 3] mag with Dirichlet(1) weights (default) or fixed uniform",
    )
    g.add_argument(
        "--log-mass-range",
        type=float,
        nargs=2,
        default=(2.0, 8.0),
        metavar=("LO", "HI"),
        help="mass support [log10 Msun]; clusters outside are dropped (default: %(default)s)",
    )
    g.add_argument(
        "--log-age-range",
        type=float,
        nargs=2,
        default=(6.0, round(float(np.log10(1.5e10)), 4)),
        metavar=("LO", "HI"),
        help="age support [log10 yr]; clusters outside are dropped (default: %(default)s)",
    )
    g.add_argument(
        "--av-out-of-range",
        choices=("clip", "drop"),
        default="clip",
        help="clusters with A_V outside [0, 3] mag: clip to the edge (default) or drop",
    )
    g = p.add_argument_group("sampler")
    g.add_argument("--chains", type=int, default=4)
    g.add_argument("--warmup", type=int, default=500)
    g.add_argument("--samples", type=int, default=500)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--chain-method",
        choices=("parallel", "sequential", "vectorized"),
        default="parallel",
        help="parallel: one thread per CPU core (default); sequential; vectorized (GPU)",
    )
    g.add_argument("--target-accept", type=float, default=0.8)
    g.add_argument("--max-tree-depth", type=int, default=8)
    g.add_argument(
        "--stride",
        type=int,
        nargs=2,
        default=None,
        metavar=("MASS", "AGE"),
        help="keep every k-th grid node in the normalising sum (default: about 250 nodes per axis)",
    )
    g.add_argument(
        "--ppc-draws",
        type=int,
        default=None,
        help=f"posterior draws for the predictive check (single field; default {_PPC_DRAWS})",
    )
    add_field_arguments(p)
    p.set_defaults(func=_cmd_fit)
    return p
