"""``jaxcomp correct``: completeness-corrected cluster age and mass functions (Tang et al. 2026, eq.
14-18)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..demographics.catalogue import _values
from ..provenance import package_versions
from ._demographics import (
    add_common_arguments,
    input_configuration,
    load_catalogue,
    load_selection,
    prepare_output,
    say_unless_quiet,
    selection_grid,
    write_record,
)
from .argtypes import optional_float

__all__ = [
    "add_correct_parser",
    "assumed_distributions",
    "bin_edges",
    "correct_options",
    "describe_distribution",
]

# Assumed distributions of the corrections (Tang et al. 2026 / inference/ngc628_corrections.py).
_MASS_DEFAULTS = {
    "schechter": {"alpha": -2.16, "support": (2.0, 8.0), "reference": "Tang+2024"},
    "power_law": {"alpha": -2.09, "support": (2.0, 8.0), "reference": "Adamo+2017"},
}
_AGE_DEFAULTS = {
    "broken_power_law": {
        "alpha": -1.41,
        "support": (5.0, float(np.log10(1.5e10))),
        "reference": "Tang+2024",
    },
    "power_law": {"alpha": -0.8, "support": (6.0, 8.3), "reference": "Adamo+2017"},
}


def bin_edges(spec, name: str) -> np.ndarray:
    """Bin edges from a ``--age-bins`` / ``--mass-bins`` option.

    Parameters
    ----------
    spec : sequence of 3 float
        ``(LO, HI, WIDTH)`` of the option, in the option's unit (log10 yr or log10 Msun).
    name : str
        The option's name without the leading ``--`` (e.g. ``"age-bins"``), for the error message.

    Returns
    -------
    numpy.ndarray
        Edges ``LO, LO + WIDTH, ...`` up to ``HI`` (inclusive within 1e-9).

    Raises
    ------
    ValueError
        If ``LO >= HI``, ``WIDTH <= 0`` or the edges make fewer than one bin.
    """
    lo, hi, width = spec
    if not (width > 0 and hi > lo):
        raise ValueError(f"--{name} needs LO < HI and WIDTH > 0, got {lo:g} {hi:g} {width:g}")
    edges = np.arange(lo, hi + 1e-9, width)
    if edges.shape[0] < 2:
        raise ValueError(f"--{name} {lo:g} {hi:g} {width:g} gives fewer than one bin")
    return edges


_CORRECT_OUTPUTS = [
    "caf.ecsv",
    "cmf.ecsv",
    "caf.png",
    "cmf.png",
    "av_distribution.ecsv",
    "marginals_log_age.ecsv",
    "marginals_log_mass.ecsv",
]


def correct_options(args) -> dict:
    """The options of ``jaxcomp correct`` as a checked, JSON-serialisable dict.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``jaxcomp correct`` arguments (see :func:`add_correct_parser`).

    Returns
    -------
    dict
        ``age_bins`` and ``mass_bins`` (the ``LO HI WIDTH`` options), the assumed
        ``mass_function`` and ``age_function`` (``form``, ``alpha``, ``support`` and the
        form's break; defaults filled in from Tang+2024 / Adamo+2017), the ``av`` options and
        the clipping options.  This is the configuration recorded in ``correct.json`` and the
        input of :func:`assumed_distributions` and :func:`describe_distribution`.

    Raises
    ------
    ValueError
        If a support is not ``LO < HI``, a clip is outside (0, 1), ``--av-bins < 1`` or
        ``--av-level`` is outside (0, 1).
    """
    mass = _MASS_DEFAULTS[args.mass_function]
    age = _AGE_DEFAULTS[args.age_function]
    options = {
        "age_bins": list(args.age_bins),
        "mass_bins": list(args.mass_bins),
        "mass_function": {
            "form": args.mass_function,
            "alpha": mass["alpha"] if args.mass_alpha is None else args.mass_alpha,
            "support": list(args.mass_support or mass["support"]),
        },
        "age_function": {
            "form": args.age_function,
            "alpha": age["alpha"] if args.age_alpha is None else args.age_alpha,
            "support": list(args.age_support or age["support"]),
        },
        "av": {
            "mode": args.av,
            "n_bins": args.av_bins,
            "reference": args.av_reference,
            "level": args.av_level,
        },
        "age_clip": args.age_clip,
        "age_min_mean": args.age_min_mean,
        "mass_clip": args.mass_clip,
        "mass_min_mean": args.mass_min_mean,
    }
    if args.mass_function == "schechter":
        options["mass_function"]["log_mass_break"] = args.mass_break
    if args.age_function == "broken_power_law":
        options["age_function"].update(
            log_age_break=args.age_break, alpha_young=args.age_alpha_young
        )
    for name in ("mass_function", "age_function"):
        low, high = options[name]["support"]
        if not high > low:
            raise ValueError(f"--{name.split('_')[0]}-support needs LO < HI, got {low:g} {high:g}")
    for name in ("age_clip", "mass_clip"):
        if not 0 < options[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be in (0, 1), got {options[name]:g}")
    if args.av_bins < 1 or not 0 < args.av_level < 1:
        raise ValueError("--av-bins must be >= 1 and --av-level in (0, 1)")
    return options


def assumed_distributions(options: dict):
    """The assumed mass and age distributions of the corrections.

    Parameters
    ----------
    options : dict
        Options from :func:`correct_options` (its ``mass_function`` and ``age_function``).

    Returns
    -------
    tuple
        ``(mass, age)``: a :class:`~jaxcomp.demographics.SchechterLogMass` or
        :class:`~jaxcomp.demographics.PowerLawLogMass` of log10 mass [Msun], and a
        :class:`~jaxcomp.demographics.BrokenPowerLawLogAge` or
        :class:`~jaxcomp.demographics.PowerLawLogAge` of log10 age [yr].
    """
    from ..demographics.distributions import (
        BrokenPowerLawLogAge,
        PowerLawLogAge,
        PowerLawLogMass,
        SchechterLogMass,
    )

    m, t = options["mass_function"], options["age_function"]
    if m["form"] == "schechter":
        mass = SchechterLogMass(m["alpha"], m["log_mass_break"], *m["support"])
    else:
        mass = PowerLawLogMass(m["alpha"], *m["support"])
    if t["form"] == "broken_power_law":
        age = BrokenPowerLawLogAge(t["alpha"], t["log_age_break"], t["alpha_young"], *t["support"])
    else:
        age = PowerLawLogAge(t["alpha"], *t["support"])
    return mass, age


def describe_distribution(spec: dict, kind: str) -> str:
    """One-line description of an assumed distribution, as written into tables and records.

    Parameters
    ----------
    spec : dict
        ``options["mass_function"]`` or ``options["age_function"]`` of :func:`correct_options`.
    kind : str
        Subscript of the slope in the text: ``"M"`` (mass) or ``"T"`` (age).

    Returns
    -------
    str
        E.g. ``"Schechter, alpha_M = -2.16, log M_break = 5.61 on [2.0, 8.0]"``.
    """
    if spec["form"] == "schechter":
        return (
            f"Schechter, alpha_M = {spec['alpha']:g}, log M_break = {spec['log_mass_break']:g} "
            f"on {spec['support']}"
        )
    if spec["form"] == "broken_power_law":
        return (
            f"broken power law, alpha_T = {spec['alpha']:g} above log T = "
            f"{spec['log_age_break']:g}, "
            f"{spec['alpha_young']:g} below, on {spec['support']}"
        )
    return f"power law, alpha_{kind} = {spec['alpha']:g} on {spec['support']}"


def _cmd_correct(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.table import Table

    from .._io import atomic_savefig, write_table
    from ..demographics.correct import correct_catalogue
    from ..demographics.corrections import plot_corrected_distribution
    from ..demographics.distributions import AV_RANGE, PiecewiseConstantAV
    from ..demographics.marginalise import estimate_av_distribution

    say = say_unless_quiet(args)
    start = time.perf_counter()
    options = correct_options(args)
    age_bins, mass_bins = (
        bin_edges(args.age_bins, "age-bins"),
        bin_edges(args.mass_bins, "mass-bins"),
    )
    selection, selection_info = load_selection(args, "correct")
    catalogue, catalogue_info = load_catalogue(args, say=say)
    configuration, grid_file_sha = input_configuration(
        "correct", args, catalogue_info, selection_info, options
    )
    out = Path(args.out)
    prepare_output(out, "correct", configuration, args.overwrite)
    record = {
        "command": "correct",
        "status": "running",
        "configuration": configuration,
        "inputs": {
            "catalogue": catalogue_info,
            "selection": selection_info,
            "grid_file": None
            if grid_file_sha is None
            else {"path": str(Path(args.grid_file).resolve()), "sha256": grid_file_sha},
        },
        "versions": package_versions(),
        "outputs": _CORRECT_OUTPUTS,
    }
    write_record(out, "correct", record)
    say(f"catalogue {catalogue_info['label']}: {len(catalogue)} clusters")
    grid, grid_info = selection_grid(
        args, selection, selection_info, out, progress=not args.quiet, say=say
    )

    av_edges = np.linspace(*AV_RANGE, args.av_bins + 1)
    av_table = Table()
    av_table["av_lo"], av_table["av_hi"] = av_edges[:-1], av_edges[1:]
    if args.av == "estimate":
        try:
            estimate = estimate_av_distribution(
                selection if selection is not None else grid,
                catalogue,
                av_reference=args.av_reference,
                level=args.av_level,
                edges=av_edges,
                return_details=True,
            )
        except ValueError as error:
            raise ValueError(f"{error}; use --av uniform (or a lower --av-level)") from None
        av = estimate.distribution
        av_table["count"] = estimate.counts
        av_info = {
            "mode": "estimate",
            "n_selected": estimate.n_selected,
            "counts": estimate.counts.tolist(),
            "n_outside_range": estimate.n_outside_range,
        }
        av_table.meta["definition"] = (
            f"catalogue clusters with p_obs(log_mass, log_age, A_V={args.av_reference:g}) "
            f">= {args.av_level:g} (Tang+2026 sec. 4.4.1)"
        )
        say(
            f"p(A_V): {estimate.n_selected} clusters inside p_obs(A_V={args.av_reference:g}) >= "
            f"{args.av_level:g} "
            f"({estimate.n_outside_range} with A_V outside [0, 3] mag dropped); counts per bin "
            f"{estimate.counts.tolist()}"
        )
    else:
        av = PiecewiseConstantAV(av_edges)
        av_info = {"mode": "uniform"}
        av_table.meta["definition"] = f"uniform on [{AV_RANGE[0]:g}, {AV_RANGE[1]:g}] mag"
    av_table["probability"] = np.asarray(av.probabilities, np.float64)
    av_info["probabilities"] = np.asarray(av.probabilities, np.float64).round(5).tolist()
    mass_function, age_function = assumed_distributions(options)
    result = correct_catalogue(
        catalogue,
        grid,
        mass_distribution=mass_function,
        age_distribution=age_function,
        av_distribution=av,
        age_bins=age_bins,
        mass_bins=mass_bins,
        age_clip=args.age_clip,
        age_min_mean=args.age_min_mean,
        mass_clip=args.mass_clip,
        mass_min_mean=args.mass_min_mean,
    )
    caf, cmf = result.caf, result.cmf
    marginal_age = Table(
        {"log_age": result.log_age_nodes, "p_corr": result.p_corr_log_age},
        meta={"mass_function": describe_distribution(options["mass_function"], "M")},
    )
    marginal_mass = Table(
        {"log_mass": result.log_mass_nodes, "p_corr": result.p_corr_log_mass},
        meta={"age_function": describe_distribution(options["age_function"], "T")},
    )
    caf.meta["assumed_mass_function"] = describe_distribution(options["mass_function"], "M")
    cmf.meta["assumed_age_function"] = describe_distribution(options["age_function"], "T")
    for table in (caf, cmf):
        table.meta.update(
            {
                "catalogue": catalogue_info["label"],
                "p_av": av_info["mode"],
                "selection": None if selection_info is None else selection_info["path"],
            }
        )
    write_table(caf, out / "caf.ecsv")
    write_table(cmf, out / "cmf.ecsv")
    write_table(av_table, out / "av_distribution.ecsv")
    write_table(marginal_age, out / "marginals_log_age.ecsv")
    write_table(marginal_mass, out / "marginals_log_mass.ecsv")

    name = catalogue_info["label"] if args.legus is None else args.legus
    for table, file, title, label in (
        (
            caf,
            "caf.png",
            f"{Path(name).name}: cluster age function",
            "corrected ("
            + describe_distribution(options["mass_function"], "M").split(",")[0]
            + " CMF)",
        ),
        (
            cmf,
            "cmf.png",
            f"{Path(name).name}: cluster mass function",
            "corrected ("
            + describe_distribution(options["age_function"], "T").split(",")[0]
            + " CAF)",
        ),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        plot_corrected_distribution({label: table}, ax=ax, title=title)
        fig.tight_layout()
        atomic_savefig(fig, out / file, dpi=130)

    def totals(table):
        n_raw = _values(table["n_raw"])
        n_corr = _values(table["n_corr"])
        usable = np.isfinite(n_corr)
        return {
            "n_raw": int(n_raw.sum()),
            "n_corr": float(n_corr[usable].sum()),
            "n_masked_bins": int(np.sum(_values(table["masked"]) > 0)),
            "correction_range": [
                float(np.nanmin(_values(table["correction"]))),
                float(np.nanmax(_values(table["correction"]))),
            ],
        }

    results = {
        "n_clusters": int(len(catalogue)),
        "grid": grid_info,
        "av_distribution": av_info,
        "caf": totals(caf),
        "cmf": totals(cmf),
        "assumed_mass_function": describe_distribution(options["mass_function"], "M"),
        "assumed_age_function": describe_distribution(options["age_function"], "T"),
    }
    record.update(
        status="complete", results=results, runtime_s=round(time.perf_counter() - start, 2)
    )
    write_record(out, "correct", record)
    print(
        f"wrote {out}: CAF {results['caf']['n_raw']} -> {results['caf']['n_corr']:.0f} clusters, "
        f"CMF {results['cmf']['n_raw']} -> {results['cmf']['n_corr']:.0f} clusters (raw -> "
        "corrected, "
        f"binned); see correct.json"
    )
    return 0


def add_correct_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``correct`` (completeness-corrected CAF and CMF) to a ``jaxcomp`` subparsers object."""
    p = subparsers.add_parser(
        "correct",
        help="completeness-corrected cluster age and mass functions",
        description="Completeness-corrected cluster age function (CAF) and mass function (CMF) of "
        "a catalogue "
        "(Tang et al. 2026, eq. 14-18): each cluster is weighted by 1/p_corr, the selection "
        "function marginalised over an assumed mass (for the CAF) or age (for the CMF) "
        "distribution and p(A_V).  Defaults follow the paper (inference/ngc628_corrections.py).",
    )
    add_common_arguments(p)
    g = p.add_argument_group("bins")
    g.add_argument(
        "--age-bins",
        type=float,
        nargs=3,
        default=(6.0, 10.2, 0.3),
        metavar=("LO", "HI", "WIDTH"),
        help="log10 age [yr] bins (default: %(default)s)",
    )
    g.add_argument(
        "--mass-bins",
        type=float,
        nargs=3,
        default=(2.0, 6.0, 0.25),
        metavar=("LO", "HI", "WIDTH"),
        help="log10 mass [Msun] bins (default: %(default)s)",
    )
    g = p.add_argument_group("assumed mass function (for the CAF correction)")
    g.add_argument(
        "--mass-function",
        choices=("schechter", "power_law"),
        default="schechter",
        help="schechter (Tang+2024, default) or power_law (Adamo+2017)",
    )
    g.add_argument(
        "--mass-alpha",
        type=float,
        default=None,
        help="slope of dN/dM (default: -2.16 Schechter, -2.09 power law)",
    )
    g.add_argument(
        "--mass-break", type=float, default=5.61, help="log10 Schechter break mass (default: 5.61)"
    )
    g.add_argument(
        "--mass-support",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="support in log10 Msun (default: 2 8, the C-4 library)",
    )
    g = p.add_argument_group("assumed age distribution (for the CMF correction)")
    g.add_argument(
        "--age-function",
        choices=("broken_power_law", "power_law"),
        default="broken_power_law",
        help="broken_power_law (Tang+2024, default) or power_law (Adamo+2017)",
    )
    g.add_argument(
        "--age-alpha",
        type=float,
        default=None,
        help="slope of dN/dT (above the break; default: -1.41 broken, -0.8 power law)",
    )
    g.add_argument(
        "--age-break", type=float, default=8.22, help="log10 age of the break (default: 8.22)"
    )
    g.add_argument(
        "--age-alpha-young", type=float, default=0.0, help="slope below the break (default: 0)"
    )
    g.add_argument(
        "--age-support",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="support in log10 yr (default: 5 10.176 broken, 6 8.3 power law)",
    )
    g = p.add_argument_group("extinction p(A_V)")
    g.add_argument(
        "--av",
        choices=("estimate", "uniform"),
        default="estimate",
        help="estimate from the catalogue clusters in the high-completeness region (default) or "
        "uniform on [0, 3] mag",
    )
    g.add_argument("--av-bins", type=int, default=4, help="A_V bins on [0, 3] mag (default: 4)")
    g.add_argument(
        "--av-reference", type=float, default=3.0, help="A_V of the region's contour (default: 3)"
    )
    g.add_argument(
        "--av-level", type=float, default=0.5, help="p_obs level of the region (default: 0.5)"
    )
    g = p.add_argument_group("clipping of the per-cluster completeness")
    g.add_argument(
        "--age-clip",
        type=float,
        default=1e-10,
        help="lower clip of p_corr for the CAF (default: 1e-10)",
    )
    g.add_argument(
        "--age-min-mean",
        type=optional_float,
        default=1e-3,
        help="mask CAF bins whose mean p_corr is below this; 'none' to keep all (default: 1e-3)",
    )
    g.add_argument(
        "--mass-clip",
        type=float,
        default=1e-3,
        help="lower clip of p_corr for the CMF (default: 1e-3)",
    )
    g.add_argument(
        "--mass-min-mean",
        type=optional_float,
        default=None,
        help="mask CMF bins whose mean p_corr is below this (default: none)",
    )
    p.set_defaults(func=_cmd_correct)
    return p
