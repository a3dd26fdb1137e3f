"""Command-line subcommands of the demographics stage (wired into ``jaxcomp`` by :mod:`jaxcomp.cli`).

``jaxcomp correct``  completeness-corrected cluster age and mass functions (Tang et al. 2026, eq. 14-18)
``jaxcomp fit``      hierarchical fit of the mass and age functions (selection-normalised likelihood, NUTS)

Both read a cluster catalogue (any table :func:`jaxcomp._io.read_table` reads, with columns
``log_mass`` [log10 Msun], ``log_age`` [log10 yr] and ``av`` [mag]; other names are mapped
with ``--columns``; or a LEGUS catalogue with ``--legus ngc628c``) and a *physical*
selection function artefact (inputs ``log_mass``, ``log_age``, ``av``), tabulated once on a
:class:`~jaxcomp.demographics.SelectionGrid` that is cached in the output directory
(``selection_grid_<NM>x<NT>x<NA>.npz`` with a ``.json`` sidecar naming the artefact's
sha256) and reused while the artefact and the grid shape match; ``--grid-file`` uses a
saved grid instead.

Every run writes ``<command>.json`` into ``--out``: the configuration (options and the
sha256 of every input file), the versions, the outputs and the results.  An output
directory is reused only for the same configuration (a rerun, which reuses the cached
grid) or for the other command's run; anything else needs ``--overwrite``.

Handlers return the exit status; bad input raises ``ValueError`` / ``FileNotFoundError``
with a one-line message (``jaxcomp.cli.main`` prints it and exits with status 2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .._io import file_sha256 as _sha256
from .catalogue import NEEDED_COLUMNS, _values
from .catalogue import load_catalogue as _load_catalogue

__all__ = ["NEEDED_COLUMNS", "add_correct_parser", "add_fit_parser", "load_catalogue"]

_RECORDS = {"correct": "correct.json", "fit": "fit.json"}
_PAPER_GRID = (500, 500, 50)

# Assumed distributions of the corrections (Tang et al. 2026 / inference/ngc628_corrections.py).
_MASS_DEFAULTS = {
    "schechter": {"alpha": -2.16, "support": (2.0, 8.0), "reference": "Tang+2024"},
    "power_law": {"alpha": -2.09, "support": (2.0, 8.0), "reference": "Adamo+2017"},
}
_AGE_DEFAULTS = {
    "broken_power_law": {"alpha": -1.41, "support": (5.0, float(np.log10(1.5e10))), "reference": "Tang+2024"},
    "power_law": {"alpha": -0.8, "support": (6.0, 8.3), "reference": "Adamo+2017"},
}


# ---------------------------------------------------------------------------------------
# argument types


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _column_map(text: str) -> dict[str, str]:
    mapping = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        needed, _, given = part.partition("=")
        if needed not in NEEDED_COLUMNS or not given:
            raise argparse.ArgumentTypeError(
                f"expected NEEDED=COLUMN pairs with NEEDED one of {', '.join(NEEDED_COLUMNS)}, got {part!r}")
        mapping[needed] = given
    return mapping


def _optional_float(text: str) -> float | None:
    if text.lower() in ("none", "off", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


# ---------------------------------------------------------------------------------------
# inputs


def load_catalogue(args, *, say=print):
    """The catalogue of ``args`` with checked ``log_mass``, ``log_age``, ``av``; and its provenance.

    The checks are :func:`jaxcomp.demographics.catalogue.validate_catalogue`, shared with the
    workflow and the API: ``FileNotFoundError`` for a missing file, ``InputError`` (a
    ``ValueError``) for missing, duplicated or non-numeric columns, columns in the wrong units
    and (unless ``args.drop_invalid``) rows with NaN, masked or sentinel values.
    """
    return _load_catalogue(args.catalogue, legus=args.legus, classes=args.classes, columns=args.columns,
                           drop_invalid=args.drop_invalid, say=say)


def _load_selection(args, command: str):
    """The physical SelectionFunction of ``--selection`` (or None with ``--grid-file``) and its provenance."""
    from ..selection import SelectionFunction
    from .marginalise import PHYSICAL_AXES

    if args.selection is None and args.grid_file is None:
        raise ValueError("give --selection SF.safetensors (a physical selection function) or --grid-file GRID.npz")
    if args.grid_file is not None and args.grid is not None:
        raise ValueError("give --grid (nodes of a grid to compute) or --grid-file (a saved grid), not both")
    if args.grid_file is not None and not Path(args.grid_file).is_file():
        raise FileNotFoundError(f"selection grid not found: {args.grid_file}")
    if args.selection is None:
        return None, None
    path = Path(args.selection)
    if not path.is_file():
        raise FileNotFoundError(f"selection-function artefact not found: {path}")
    selection = SelectionFunction.load(path)
    if sorted(selection.input_names) != sorted(PHYSICAL_AXES):
        raise ValueError(
            f"{path} is a selection function of ({', '.join(selection.input_names)}); `jaxcomp {command}` needs a "
            f"physical one of (log_mass, log_age, av), e.g. `jaxcomp import-c4 DIR phys` or "
            f"`jaxcomp train LABELS --inputs physical`")
    return selection, {"path": str(path.resolve()), "sha256": _sha256(path), "repr": repr(selection)}


def _grid_shape(args) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in (args.grid or _PAPER_GRID))
    if any(n < 2 for n in shape):
        raise ValueError(f"--grid needs at least 2 nodes per axis, got {' '.join(map(str, shape))}")
    return shape


def _selection_grid(args, selection, selection_info, out: Path, *, progress: bool, say=print):
    """The SelectionGrid: from ``--grid-file``, the cache in ``out`` (same artefact and shape) or computed."""
    from .._io import atomic_write_text
    from .marginalise import SelectionGrid

    if args.grid_file is not None:
        path = Path(args.grid_file)
        try:
            grid = SelectionGrid.load(path)
        except Exception as error:  # np.load raises many types for a file that is not a grid
            raise ValueError(f"{path} is not a saved SelectionGrid (.npz from SelectionGrid.save): {error}") from None
        say(f"selection grid {grid.shape} from {path}")
        return grid, {"source": "grid_file", "path": str(path.resolve()), "shape": list(grid.shape)}
    shape = _grid_shape(args)
    name = f"selection_grid_{shape[0]}x{shape[1]}x{shape[2]}"
    path, sidecar = out / f"{name}.npz", out / f"{name}.json"
    key = {"selection_sha256": selection_info["sha256"], "shape": list(shape), "axes": "selection domain"}
    info = {"source": "cache", "path": str(path.resolve()), "shape": list(shape)}
    if path.is_file() and sidecar.is_file():
        try:
            cached = json.loads(sidecar.read_text())
            if {k: cached.get(k) for k in key} == key:
                grid = SelectionGrid.load(path)
                say(f"reusing the cached selection grid {path}")
                return grid, info
        except Exception:  # a damaged cache is recomputed
            pass
    say(f"evaluating the selection function on a {shape[0]} x {shape[1]} x {shape[2]} grid ...")
    start = time.perf_counter()
    grid = SelectionGrid.from_selection(selection, shape=shape, progress=progress)
    grid.save(path)  # atomic
    atomic_write_text(sidecar, json.dumps({**key, "selection_path": selection_info["path"]}, indent=1))
    info.update(source="computed", seconds=round(time.perf_counter() - start, 2))
    say(f"saved the selection grid to {path} ({info['seconds']:.1f} s)")
    return grid, info


# ---------------------------------------------------------------------------------------
# output directory and run record


def _jsonable(value):
    """Plain JSON types (arrays to lists, NaN and infinities to null)."""
    def clean(v):
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return clean(json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))))


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _prepare_output(out: Path, command: str, configuration: dict, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` that holds anything but runs of this configuration (unless ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    entries = {p.name for p in out.iterdir() if not p.name.startswith(".")} if out.is_dir() else set()
    own = _read_record(out / _RECORDS[command])
    if entries:
        known = {n for n in entries if n.startswith("selection_grid_")}
        for name in _RECORDS.values():
            record = _read_record(out / name)
            if record is not None and record.get("command") in _RECORDS:
                known |= {name, *record.get("outputs", [])}
        stray = sorted(entries - known)
        changed = []
        if own is not None and own.get("configuration") != configuration:
            previous = own.get("configuration") or {}
            changed = sorted(k for k in set(previous) | set(configuration) if previous.get(k) != configuration.get(k))
        if (stray or changed) and not overwrite:
            if changed:
                reason = (f"holds a `jaxcomp {command}` run with a different configuration "
                          f"(changed: {', '.join(changed)})")
            else:
                listed = ", ".join(stray[:3]) + (", ..." if len(stray) > 3 else "")
                reason = f"is not empty and holds files of no `jaxcomp {command}` run ({listed})"
            raise ValueError(f"output directory {out} {reason}; pass --overwrite to write over it, "
                             "or choose another --out")
        if changed and own is not None:  # --overwrite: remove the outputs of the replaced run
            for name in own.get("outputs", []):
                if name and "/" not in name and not name.startswith("."):
                    (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _versions() -> dict:
    import astropy
    import jax
    import numpyro

    from .._version import __version__

    versions = {"jaxcomp": __version__, "jax": jax.__version__, "numpyro": numpyro.__version__,
                "numpy": np.__version__, "astropy": astropy.__version__, "python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("arviz", "matplotlib"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            pass
    return versions


def _write_record(out: Path, command: str, record: dict) -> None:
    from .._io import atomic_write_text

    atomic_write_text(out / _RECORDS[command], json.dumps(_jsonable(record), indent=1) + "\n")


def _bins(spec, name: str) -> np.ndarray:
    lo, hi, width = spec
    if not (width > 0 and hi > lo):
        raise ValueError(f"--{name} needs LO < HI and WIDTH > 0, got {lo:g} {hi:g} {width:g}")
    edges = np.arange(lo, hi + 1e-9, width)
    if edges.shape[0] < 2:
        raise ValueError(f"--{name} {lo:g} {hi:g} {width:g} gives fewer than one bin")
    return edges


def _say(args):
    def say(message: str) -> None:
        if not args.quiet:
            print(message, flush=True)
    return say


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("catalogue", nargs="?",
                        help="cluster table (.parquet, .fits, .ecsv, .csv) with log_mass, log_age, av")
    parser.add_argument("--legus", metavar="NAME|PATH",
                        help="read a LEGUS catalogue instead of CATALOGUE (ngc628c, ngc628e or a .tab file)")
    parser.add_argument("--classes", type=_ints, default=(1, 2, 3),
                        help="LEGUS visual classes to keep (default: %(default)s)")
    parser.add_argument("--columns", type=_column_map, default={}, metavar="NEEDED=NAME,...",
                        help="take log_mass / log_age / av from other columns, e.g. log_mass=logM,av=AV")
    parser.add_argument("--drop-invalid", action="store_true",
                        help="drop rows with NaN, masked or sentinel values (e.g. -99) in the needed columns")
    parser.add_argument("--selection", metavar="SF.safetensors",
                        help="physical selection-function artefact (inputs log_mass, log_age, av)")
    parser.add_argument("--grid-file", metavar="GRID.npz", help="a saved SelectionGrid to use instead of "
                        "evaluating the selection function")
    parser.add_argument("--grid", type=int, nargs=3, metavar=("NM", "NT", "NA"), default=None,
                        help="grid nodes in (log_mass, log_age, av) over the selection domain "
                             "(default: the paper's 500 500 50); cached in --out")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an output directory that holds another configuration's results")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


# ---------------------------------------------------------------------------------------
# jaxcomp correct


_CORRECT_OUTPUTS = ["caf.ecsv", "cmf.ecsv", "caf.png", "cmf.png", "av_distribution.ecsv", "marginals_log_age.ecsv",
                    "marginals_log_mass.ecsv"]


def _correct_options(args) -> dict:
    mass = _MASS_DEFAULTS[args.mass_function]
    age = _AGE_DEFAULTS[args.age_function]
    options = {
        "age_bins": list(args.age_bins),
        "mass_bins": list(args.mass_bins),
        "mass_function": {"form": args.mass_function,
                          "alpha": mass["alpha"] if args.mass_alpha is None else args.mass_alpha,
                          "support": list(args.mass_support or mass["support"])},
        "age_function": {"form": args.age_function,
                         "alpha": age["alpha"] if args.age_alpha is None else args.age_alpha,
                         "support": list(args.age_support or age["support"])},
        "av": {"mode": args.av, "n_bins": args.av_bins, "reference": args.av_reference, "level": args.av_level},
        "age_clip": args.age_clip, "age_min_mean": args.age_min_mean,
        "mass_clip": args.mass_clip, "mass_min_mean": args.mass_min_mean,
    }
    if args.mass_function == "schechter":
        options["mass_function"]["log_mass_break"] = args.mass_break
    if args.age_function == "broken_power_law":
        options["age_function"].update(log_age_break=args.age_break, alpha_young=args.age_alpha_young)
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


def _distributions(options: dict):
    from .distributions import BrokenPowerLawLogAge, PowerLawLogAge, PowerLawLogMass, SchechterLogMass

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


def _describe(spec: dict, kind: str) -> str:
    if spec["form"] == "schechter":
        return f"Schechter, alpha_M = {spec['alpha']:g}, log M_break = {spec['log_mass_break']:g} on {spec['support']}"
    if spec["form"] == "broken_power_law":
        return (f"broken power law, alpha_T = {spec['alpha']:g} above log T = {spec['log_age_break']:g}, "
                f"{spec['alpha_young']:g} below, on {spec['support']}")
    return f"power law, alpha_{kind} = {spec['alpha']:g} on {spec['support']}"


def _cmd_correct(args) -> int:
    import jax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.table import Table

    from .._io import atomic_savefig, write_table
    from .corrections import corrected_age_function, corrected_mass_function, plot_corrected_distribution
    from .distributions import AV_RANGE, PiecewiseConstantAV
    from .marginalise import estimate_av_distribution, p_corr_log_age, p_corr_log_mass

    say = _say(args)
    start = time.perf_counter()
    options = _correct_options(args)
    age_bins, mass_bins = _bins(args.age_bins, "age-bins"), _bins(args.mass_bins, "mass-bins")
    selection, selection_info = _load_selection(args, "correct")
    catalogue, catalogue_info = load_catalogue(args, say=say)
    grid_file_sha = _sha256(Path(args.grid_file)) if args.grid_file else None
    configuration = _jsonable({
        "command": "correct", "catalogue_sha256": catalogue_info["sha256"], "legus": args.legus,
        "classes": catalogue_info["classes"], "columns": catalogue_info["columns"],
        "drop_invalid": bool(args.drop_invalid),
        "selection_sha256": None if selection_info is None else selection_info["sha256"],
        "grid_file_sha256": grid_file_sha, "grid": None if args.grid_file else list(_grid_shape(args)),
        **options})
    out = Path(args.out)
    _prepare_output(out, "correct", configuration, args.overwrite)
    record = {"command": "correct", "status": "running", "configuration": configuration,
              "inputs": {"catalogue": catalogue_info, "selection": selection_info,
                         "grid_file": None if grid_file_sha is None else {"path": str(Path(args.grid_file).resolve()),
                                                                          "sha256": grid_file_sha}},
              "versions": _versions(), "outputs": _CORRECT_OUTPUTS}
    _write_record(out, "correct", record)
    say(f"catalogue {catalogue_info['label']}: {len(catalogue)} clusters")
    grid, grid_info = _selection_grid(args, selection, selection_info, out, progress=not args.quiet, say=say)

    log_mass, log_age = catalogue["log_mass"], catalogue["log_age"]
    av_edges = np.linspace(*AV_RANGE, args.av_bins + 1)
    av_table = Table()
    av_table["av_lo"], av_table["av_hi"] = av_edges[:-1], av_edges[1:]
    if args.av == "estimate":
        try:
            estimate = estimate_av_distribution(selection if selection is not None else grid, catalogue,
                                                av_reference=args.av_reference, level=args.av_level,
                                                edges=av_edges, return_details=True)
        except ValueError as error:
            raise ValueError(f"{error}; use --av uniform (or a lower --av-level)") from None
        av = estimate.distribution
        av_table["count"] = estimate.counts
        av_info = {"mode": "estimate", "n_selected": estimate.n_selected, "counts": estimate.counts.tolist(),
                   "n_outside_range": estimate.n_outside_range}
        av_table.meta["definition"] = (f"catalogue clusters with p_obs(log_mass, log_age, A_V={args.av_reference:g}) "
                                       f">= {args.av_level:g} (Tang+2026 sec. 4.4.1)")
        say(f"p(A_V): {estimate.n_selected} clusters inside p_obs(A_V={args.av_reference:g}) >= {args.av_level:g} "
            f"({estimate.n_outside_range} with A_V outside [0, 3] mag dropped); counts per bin "
            f"{estimate.counts.tolist()}")
    else:
        av = PiecewiseConstantAV(av_edges)
        av_info = {"mode": "uniform"}
        av_table.meta["definition"] = f"uniform on [{AV_RANGE[0]:g}, {AV_RANGE[1]:g}] mag"
    av_table["probability"] = np.asarray(av.probabilities, np.float64)
    av_info["probabilities"] = np.asarray(av.probabilities, np.float64).round(5).tolist()
    with jax.enable_x64(True):
        av64 = PiecewiseConstantAV(np.asarray(av.edges, np.float64), np.asarray(av.weights, np.float64))
        mass64, age64 = _distributions(options)
        p_age = np.asarray(p_corr_log_age(grid, mass64, av64), np.float64)
        p_mass = np.asarray(p_corr_log_mass(grid, age64, av64), np.float64)
    marginal_age = Table({"log_age": np.asarray(grid.log_age, np.float64), "p_corr": p_age},
                         meta={"mass_function": _describe(options["mass_function"], "M")})
    marginal_mass = Table({"log_mass": np.asarray(grid.log_mass, np.float64), "p_corr": p_mass},
                          meta={"age_function": _describe(options["age_function"], "T")})

    # linear between nodes, held constant beyond them (interpolate_marginal, without a JAX compilation)
    p_i_age = np.interp(log_age, np.asarray(grid.log_age, np.float64), p_age)
    p_i_mass = np.interp(log_mass, np.asarray(grid.log_mass, np.float64), p_mass)
    caf = corrected_age_function(log_age, p_i_age, age_bins, clip=args.age_clip, min_mean=args.age_min_mean)
    cmf = corrected_mass_function(log_mass, p_i_mass, mass_bins, clip=args.mass_clip, min_mean=args.mass_min_mean)
    caf.meta["assumed_mass_function"] = _describe(options["mass_function"], "M")
    cmf.meta["assumed_age_function"] = _describe(options["age_function"], "T")
    for table in (caf, cmf):
        table.meta.update({"catalogue": catalogue_info["label"], "p_av": av_info["mode"],
                           "selection": None if selection_info is None else selection_info["path"]})
    write_table(caf, out / "caf.ecsv")
    write_table(cmf, out / "cmf.ecsv")
    write_table(av_table, out / "av_distribution.ecsv")
    write_table(marginal_age, out / "marginals_log_age.ecsv")
    write_table(marginal_mass, out / "marginals_log_mass.ecsv")

    name = catalogue_info["label"] if args.legus is None else args.legus
    for table, file, title, label in (
        (caf, "caf.png", f"{Path(name).name}: cluster age function", "corrected ("
         + _describe(options["mass_function"], "M").split(",")[0] + " CMF)"),
        (cmf, "cmf.png", f"{Path(name).name}: cluster mass function", "corrected ("
         + _describe(options["age_function"], "T").split(",")[0] + " CAF)"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        plot_corrected_distribution({label: table}, ax=ax, title=title)
        fig.tight_layout()
        atomic_savefig(fig, out / file, dpi=130)

    def totals(table):
        n_raw = _values(table["n_raw"])
        n_corr = _values(table["n_corr"])
        usable = np.isfinite(n_corr)
        return {"n_raw": int(n_raw.sum()), "n_corr": float(n_corr[usable].sum()),
                "n_masked_bins": int(np.sum(_values(table["masked"]) > 0)),
                "correction_range": [float(np.nanmin(_values(table["correction"]))),
                                     float(np.nanmax(_values(table["correction"])))]}

    results = {"n_clusters": int(len(catalogue)), "grid": grid_info, "av_distribution": av_info,
               "caf": totals(caf), "cmf": totals(cmf),
               "assumed_mass_function": _describe(options["mass_function"], "M"),
               "assumed_age_function": _describe(options["age_function"], "T")}
    record.update(status="complete", results=results, runtime_s=round(time.perf_counter() - start, 2))
    _write_record(out, "correct", record)
    print(f"wrote {out}: CAF {results['caf']['n_raw']} -> {results['caf']['n_corr']:.0f} clusters, "
          f"CMF {results['cmf']['n_raw']} -> {results['cmf']['n_corr']:.0f} clusters (raw -> corrected, "
          f"binned); see correct.json")
    return 0


def add_correct_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``correct`` (completeness-corrected CAF and CMF) to a ``jaxcomp`` subparsers object."""
    p = subparsers.add_parser(
        "correct", help="completeness-corrected cluster age and mass functions",
        description="Completeness-corrected cluster age function (CAF) and mass function (CMF) of a catalogue "
                    "(Tang et al. 2026, eq. 14-18): each cluster is weighted by 1/p_corr, the selection "
                    "function marginalised over an assumed mass (for the CAF) or age (for the CMF) "
                    "distribution and p(A_V).  Defaults follow the paper (inference/ngc628_corrections.py).")
    _common_arguments(p)
    g = p.add_argument_group("bins")
    g.add_argument("--age-bins", type=float, nargs=3, default=(6.0, 10.2, 0.3), metavar=("LO", "HI", "WIDTH"),
                   help="log10 age [yr] bins (default: %(default)s)")
    g.add_argument("--mass-bins", type=float, nargs=3, default=(2.0, 6.0, 0.25), metavar=("LO", "HI", "WIDTH"),
                   help="log10 mass [Msun] bins (default: %(default)s)")
    g = p.add_argument_group("assumed mass function (for the CAF correction)")
    g.add_argument("--mass-function", choices=("schechter", "power_law"), default="schechter",
                   help="schechter (Tang+2024, default) or power_law (Adamo+2017)")
    g.add_argument("--mass-alpha", type=float, default=None,
                   help="slope of dN/dM (default: -2.16 Schechter, -2.09 power law)")
    g.add_argument("--mass-break", type=float, default=5.61, help="log10 Schechter break mass (default: 5.61)")
    g.add_argument("--mass-support", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="support in log10 Msun (default: 2 8, the C-4 library)")
    g = p.add_argument_group("assumed age distribution (for the CMF correction)")
    g.add_argument("--age-function", choices=("broken_power_law", "power_law"), default="broken_power_law",
                   help="broken_power_law (Tang+2024, default) or power_law (Adamo+2017)")
    g.add_argument("--age-alpha", type=float, default=None,
                   help="slope of dN/dT (above the break; default: -1.41 broken, -0.8 power law)")
    g.add_argument("--age-break", type=float, default=8.22, help="log10 age of the break (default: 8.22)")
    g.add_argument("--age-alpha-young", type=float, default=0.0, help="slope below the break (default: 0)")
    g.add_argument("--age-support", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="support in log10 yr (default: 5 10.176 broken, 6 8.3 power law)")
    g = p.add_argument_group("extinction p(A_V)")
    g.add_argument("--av", choices=("estimate", "uniform"), default="estimate",
                   help="estimate from the catalogue clusters in the high-completeness region (default) or "
                        "uniform on [0, 3] mag")
    g.add_argument("--av-bins", type=int, default=4, help="A_V bins on [0, 3] mag (default: 4)")
    g.add_argument("--av-reference", type=float, default=3.0, help="A_V of the region's contour (default: 3)")
    g.add_argument("--av-level", type=float, default=0.5, help="p_obs level of the region (default: 0.5)")
    g = p.add_argument_group("clipping of the per-cluster completeness")
    g.add_argument("--age-clip", type=float, default=1e-10, help="lower clip of p_corr for the CAF (default: 1e-10)")
    g.add_argument("--age-min-mean", type=_optional_float, default=1e-3,
                   help="mask CAF bins whose mean p_corr is below this; 'none' to keep all (default: 1e-3)")
    g.add_argument("--mass-clip", type=float, default=1e-3, help="lower clip of p_corr for the CMF (default: 1e-3)")
    g.add_argument("--mass-min-mean", type=_optional_float, default=None,
                   help="mask CMF bins whose mean p_corr is below this (default: none)")
    p.set_defaults(func=_cmd_correct)
    return p


# ---------------------------------------------------------------------------------------
# jaxcomp fit


_FIT_OUTPUTS = ["posterior.ecsv", "posterior.md", "report.txt", "pair.png", "ppc.png", "idata.nc", "idata.json"]


def _fit_model(args):
    from .models import PopulationModel

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
    return PopulationModel(mass=args.mass, age=args.age, av=av, log_mass_range=mass_range,
                           log_age_range=age_range, priors=priors)


def _restrict(catalogue, model, av_policy: str, say):
    """Rows inside the model's mass and age supports; A_V outside the edges clipped or dropped."""
    log_mass, log_age, av = (np.asarray(catalogue[c], np.float64) for c in NEEDED_COLUMNS)
    inside = ((log_mass >= model.log_mass_range[0]) & (log_mass <= model.log_mass_range[1])
              & (log_age >= model.log_age_range[0]) & (log_age <= model.log_age_range[1]))
    low, high = model.av_edges[0], model.av_edges[-1]
    av_outside = (av < low) | (av > high)
    counts = {"outside_mass_age_support": int((~inside).sum()), "av_outside": int((av_outside & inside).sum()),
              "av_policy": av_policy}
    if counts["outside_mass_age_support"]:
        say(f"dropped {counts['outside_mass_age_support']} clusters outside log M in {model.log_mass_range}, "
            f"log T in {model.log_age_range} (--log-mass-range / --log-age-range)")
    if av_policy == "drop":
        inside &= ~av_outside
    catalogue = catalogue[inside]
    if av_policy == "clip":
        catalogue["av"] = np.clip(np.asarray(catalogue["av"], np.float64), low, high)
    if counts["av_outside"]:
        say(f"{'clipped' if av_policy == 'clip' else 'dropped'} {counts['av_outside']} clusters with A_V outside "
            f"[{low:g}, {high:g}] mag (--av-out-of-range)")
    if len(catalogue) == 0:
        raise ValueError(f"no catalogue cluster lies inside log M in {model.log_mass_range}, log T in "
                         f"{model.log_age_range}; change --log-mass-range / --log-age-range")
    return catalogue, counts


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
    table = Table(names=("parameter", "mean", "sd", "q025", "q16", "median", "q84", "q975", "r_hat", "ess_bulk",
                         "ess_tail"), dtype=(str, *(float,) * 10))
    for name, draws in rows:
        q = np.quantile(draws, [0.025, 0.16, 0.5, 0.84, 0.975])
        stats = summary.loc[name] if name in summary.index else None
        pick = (lambda key: float(stats[key]) if stats is not None and key in stats else np.nan)
        table.add_row((name, float(np.mean(draws)), float(np.std(draws, ddof=1)), *q.tolist(), pick("r_hat"),
                       pick("ess_bulk"), pick("ess_tail")))
    table.meta.update({"model": result.model.describe(), "n_objects": int(result.data.n_objects),
                       "seed": int(result.seed), "num_divergences": int(result.num_divergences),
                       "intervals": "equal-tailed 68% (q16-q84) and 95% (q025-q975)"})
    return table


def _markdown(table) -> str:
    lines = [f"Posterior of {table.meta['model']} ({table.meta['n_objects']} clusters, seed {table.meta['seed']}, "
             f"{table.meta['num_divergences']} divergences)", "",
             "| parameter | median | 68% interval | 95% interval | mean | sd | r_hat | ESS bulk | ESS tail |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        big = abs(row["median"]) >= 1000

        def f(value):
            return f"{value:.4g}" if big else f"{value:.3f}"

        lines.append(f"| {row['parameter']} | {f(row['median'])} | [{f(row['q16'])}, {f(row['q84'])}] | "
                     f"[{f(row['q025'])}, {f(row['q975'])}] | {f(row['mean'])} | {f(row['sd'])} | "
                     f"{row['r_hat']:.3f} | {row['ess_bulk']:.0f} | {row['ess_tail']:.0f} |")
    return "\n".join(lines) + "\n"


def _save_idata(idata, out: Path) -> dict:
    """InferenceData as netCDF if a back end is installed, else as ArviZ JSON."""
    tmp = out / ".idata.tmp.nc"
    try:
        idata.to_netcdf(str(tmp))
        os.replace(tmp, out / "idata.nc")
        return {"file": "idata.nc", "format": "netcdf"}
    except Exception as error:  # no netCDF back end (netCDF4, h5netcdf or scipy) or an unwritable attribute
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
    finally:
        tmp.unlink(missing_ok=True)
    try:
        from .._io import atomic_write_text

        tmp_json = out / ".idata.tmp.json"
        idata.to_json(str(tmp_json))
        atomic_write_text(out / "idata.json", tmp_json.read_text())
        tmp_json.unlink(missing_ok=True)
        return {"file": "idata.json", "format": "arviz-json", "netcdf_error": reason}
    except Exception as error:
        return {"file": None, "netcdf_error": reason, "json_error": str(error).splitlines()[0]}


def _cmd_fit(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .._io import atomic_savefig, atomic_write_text, write_table
    from .fit import PopulationFitter

    say = _say(args)
    start = time.perf_counter()
    for name in ("chains", "warmup", "samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1")
    model = _fit_model(args)
    selection, selection_info = _load_selection(args, "fit")
    catalogue, catalogue_info = load_catalogue(args, say=say)
    catalogue, restricted = _restrict(catalogue, model, args.av_out_of_range, say)
    grid_file_sha = _sha256(Path(args.grid_file)) if args.grid_file else None
    sampler = {"chains": args.chains, "warmup": args.warmup, "samples": args.samples, "seed": args.seed,
               "chain_method": args.chain_method, "target_accept": args.target_accept,
               "max_tree_depth": args.max_tree_depth, "stride": list(args.stride) if args.stride else None}
    options = {"mass": args.mass, "age": args.age, "av": args.av, "log_mass_range": list(model.log_mass_range),
               "log_age_range": list(model.log_age_range), "av_out_of_range": args.av_out_of_range,
               "priors": {name: list(model.prior_bounds(name)) for name in model.scalar_parameters},
               "ppc_draws": args.ppc_draws, **sampler}
    configuration = _jsonable({
        "command": "fit", "catalogue_sha256": catalogue_info["sha256"], "legus": args.legus,
        "classes": catalogue_info["classes"], "columns": catalogue_info["columns"],
        "drop_invalid": bool(args.drop_invalid),
        "selection_sha256": None if selection_info is None else selection_info["sha256"],
        "grid_file_sha256": grid_file_sha, "grid": None if args.grid_file else list(_grid_shape(args)), **options})
    out = Path(args.out)
    _prepare_output(out, "fit", configuration, args.overwrite)
    record = {"command": "fit", "status": "running", "seed": args.seed, "configuration": configuration,
              "model": model.describe(),
              "inputs": {"catalogue": catalogue_info, "selection": selection_info,
                         "grid_file": None if grid_file_sha is None else {"path": str(Path(args.grid_file).resolve()),
                                                                          "sha256": grid_file_sha}},
              "catalogue_cuts": restricted, "versions": _versions(), "outputs": _FIT_OUTPUTS}
    _write_record(out, "fit", record)
    grid, grid_info = _selection_grid(args, selection, selection_info, out, progress=not args.quiet, say=say)
    stride = tuple(args.stride) if args.stride else tuple(max(1, int(round(n / 250))) for n in grid.shape[:2])

    say(f"fitting {model.describe()} to {len(catalogue)} clusters: {args.chains} chain(s) x "
        f"({args.warmup} warmup + {args.samples} samples), seed {args.seed} (compiling, then sampling) ...")
    fitter = PopulationFitter(model, grid, num_warmup=args.warmup, num_samples=args.samples,
                              num_chains=args.chains, chain_method=args.chain_method,
                              target_accept_prob=args.target_accept, max_tree_depth=args.max_tree_depth,
                              mass_stride=stride[0], age_stride=stride[1], progress=not args.quiet)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fitter.fit(catalogue, seed=args.seed)
    # the sampler's own warnings (divergences, a too-coarse grid) go to stderr and the record; the rest is noise
    fit_warnings = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)))
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
        fig = result.plot_ppc(n_draws=args.ppc_draws, title=f"{catalogue_info['label']}: {model.describe()}")
        atomic_savefig(fig, out / "ppc.png", dpi=120)
    idata_info = _save_idata(result.idata, out)
    if idata_info["file"] is None or idata_info["format"] != "netcdf":
        say(f"InferenceData not saved as netCDF ({idata_info['netcdf_error']})"
            + (f"; wrote {idata_info['file']} instead" if idata_info["file"] else ""))

    summary = result.summary
    finite = (lambda values: [float(v) for v in values if np.isfinite(v)])
    diagnostics = {
        "num_divergences": int(result.num_divergences),
        "max_r_hat": max(finite(summary["r_hat"]), default=float("nan")),
        "min_ess_bulk": min(finite(summary["ess_bulk"]), default=float("nan")),
        "min_ess_tail": min(finite(summary["ess_tail"]), default=float("nan")),
        "r_hat": result.r_hat, "ess_bulk": result.ess_bulk,
        "ess_tail": {str(k): float(v) for k, v in summary["ess_tail"].items()},
        "sampling_s": round(float(result.runtime_s), 2),
        "quadrature_relative_error": float(getattr(result, "quadrature_relative_error", float("nan"))),
        "warnings": fit_warnings,
    }
    medians = {row["parameter"]: [float(row["q16"]), float(row["median"]), float(row["q84"])] for row in table}
    record.update(status="complete", grid=grid_info, stride=list(stride), n_clusters=int(len(catalogue)),
                  diagnostics=diagnostics, posterior_q16_median_q84=medians, idata=idata_info,
                  runtime_s=round(time.perf_counter() - start, 2))
    _write_record(out, "fit", record)
    scalar = ", ".join(f"{name} = {medians[name][1]:.3f} [{medians[name][0]:.3f}, {medians[name][2]:.3f}]"
                       for name in model.scalar_parameters)
    r_hat = f"{diagnostics['max_r_hat']:.3f}" if np.isfinite(diagnostics["max_r_hat"]) else "n/a"
    print(f"wrote {out}: {scalar} (median, 68%); {diagnostics['num_divergences']} divergences, "
          f"max r_hat {r_hat}, min ESS {diagnostics['min_ess_bulk']:.0f}")
    return 0


def add_fit_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``fit`` (hierarchical population fit with NUTS) to a ``jaxcomp`` subparsers object."""
    p = subparsers.add_parser(
        "fit", help="fit the cluster mass and age functions (selection-normalised likelihood, NUTS)",
        description="Hierarchical Bayesian fit of the mass and age functions and p(A_V) of a catalogue with the "
                    "selection-normalised likelihood (N marginalised), sampled with NumPyro NUTS; see "
                    "jaxcomp.demographics.fit_population and inference/ngc628_fit.py.")
    _common_arguments(p)
    g = p.add_argument_group("model")
    g.add_argument("--mass", choices=("schechter", "power_law"), default="schechter",
                   help="mass function (default: %(default)s)")
    g.add_argument("--age", choices=("power_law", "broken_power_law"), default="power_law",
                   help="age distribution (default: %(default)s)")
    g.add_argument("--av", choices=("piecewise", "uniform"), default="piecewise",
                   help="p(A_V): 4 bins on [0, 3] mag with Dirichlet(1) weights (default) or fixed uniform")
    g.add_argument("--log-mass-range", type=float, nargs=2, default=(2.0, 8.0), metavar=("LO", "HI"),
                   help="mass support [log10 Msun]; clusters outside are dropped (default: %(default)s)")
    g.add_argument("--log-age-range", type=float, nargs=2, default=(6.0, round(float(np.log10(1.5e10)), 4)),
                   metavar=("LO", "HI"), help="age support [log10 yr]; clusters outside are dropped "
                                              "(default: %(default)s)")
    g.add_argument("--av-out-of-range", choices=("clip", "drop"), default="clip",
                   help="clusters with A_V outside [0, 3] mag: clip to the edge (default) or drop")
    g = p.add_argument_group("sampler")
    g.add_argument("--chains", type=int, default=4)
    g.add_argument("--warmup", type=int, default=500)
    g.add_argument("--samples", type=int, default=500)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--chain-method", choices=("parallel", "sequential", "vectorized"), default="parallel",
                   help="parallel: one thread per CPU core (default); sequential; vectorized (GPU)")
    g.add_argument("--target-accept", type=float, default=0.8)
    g.add_argument("--max-tree-depth", type=int, default=8)
    g.add_argument("--stride", type=int, nargs=2, default=None, metavar=("MASS", "AGE"),
                   help="keep every k-th grid node in the normalising sum (default: about 250 nodes per axis)")
    g.add_argument("--ppc-draws", type=int, default=200, help="posterior draws for the predictive check")
    p.set_defaults(func=_cmd_fit)
    return p
