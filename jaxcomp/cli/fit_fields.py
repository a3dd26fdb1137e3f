"""``jaxcomp fit --field NAME CATALOGUE SELECTION ...``: several fields in one hierarchical fit.

Each ``--field`` names a field, its catalogue (a table file, or ``legus:NAME`` for a LEGUS
catalogue: ``legus:ngc628c``, ``legus:ngc628e`` or a ``.tab`` path) and its selection (a
physical selection-function artefact ``.safetensors``, tabulated on a ``--grid`` cached in
``--out`` as ``selection_grid_<sha>_<NM>x<NT>x<NA>.npz``, or a saved SelectionGrid ``.npz``).
The fields are fitted jointly with :class:`~jaxcomp.demographics.MultiFieldFitter`
(``--pooling partial`` by default); ``--compare-pooling`` fits all three pooling forms and
ranks them by PSIS-LOO.  The model options (``--mass``, ``--age``, ``--av``, the supports),
the catalogue options (``--classes``, ``--columns``, ``--drop-invalid``) and the sampler
options are those of the single-field fit and apply to every field.

Every input is read and checked (catalogues, artefacts, names, each grid's coverage of the
model's ranges) before the output directory is made; the run record ``fit.json`` and the
outputs (:mod:`jaxcomp.demographics.multifield_output`) follow the single-field fit's
conventions (:mod:`._demographics`).
"""

from __future__ import annotations

import sys
import time
import types
import warnings
from pathlib import Path

from ..demographics.multifield_model import POOLING_FORMS
from ..demographics.multifield_parametrisation import PARAMETRISATIONS
from ..errors import InputError
from ..provenance import file_sha256, jsonable, package_versions
from ._demographics import (
    grid_shape,
    load_selection,
    prepare_output,
    sampler_record,
    say_unless_quiet,
    selection_grid,
    write_record,
)

__all__ = ["add_field_arguments", "run_fit_fields"]

#: The prefix of a LEGUS catalogue in ``--field NAME CATALOGUE SELECTION``.
LEGUS_PREFIX = "legus:"


def add_field_arguments(parser) -> None:
    """The ``fields`` argument group of ``jaxcomp fit``."""
    g = parser.add_argument_group(
        "several fields (one hierarchical model; replaces CATALOGUE, --legus, --selection and "
        "--grid-file)"
    )
    g.add_argument(
        "--field",
        nargs=3,
        action="append",
        metavar=("NAME", "CATALOGUE", "SELECTION"),
        help="a field: its unique name, its catalogue (table file or legus:ngc628c, "
        "legus:ngc628e, legus:PATH.tab) and its selection (physical artefact .safetensors or "
        "saved SelectionGrid .npz); repeat for every field",
    )
    g.add_argument(
        "--pooling",
        choices=POOLING_FORMS,
        default=None,
        help="the fields' hyperparameters: one shared value (complete), population mean and "
        "scatter (partial, default) or independent (none)",
    )
    g.add_argument(
        "--compare-pooling",
        action="store_true",
        help="fit all three pooling forms and rank them by PSIS-LOO (loo.ecsv); --pooling "
        "chooses the one posterior.md shows",
    )
    g.add_argument(
        "--parametrisation",
        choices=PARAMETRISATIONS,
        default=None,
        help="coordinates of the per-field values under partial pooling (same posterior): "
        "non_centred (default) or centred (faster when every field has many clusters, e.g. "
        "~1000, that measure its values much better than the population scatter)",
    )


def _refuse_single_field_options(args) -> None:
    given = [
        option
        for option, value in (
            ("CATALOGUE", args.catalogue),
            ("--legus", args.legus),
            ("--selection", args.selection),
            ("--grid-file", args.grid_file),
            ("--stride", args.stride),
            ("--ppc-draws", args.ppc_draws),
        )
        if value is not None
    ]
    if given:
        raise InputError(
            f"{', '.join(given)} belong to the single-field fit; with --field give each field's "
            "catalogue and selection as --field NAME CATALOGUE SELECTION"
        )


def _load_field_catalogue(name: str, spec: str, args, say):
    from ..demographics.catalogue import load_catalogue

    legus = spec[len(LEGUS_PREFIX) :] if spec.startswith(LEGUS_PREFIX) else None
    try:
        return load_catalogue(
            None if legus else spec,
            legus=legus,
            classes=args.classes,
            columns=args.columns,
            drop_invalid=args.drop_invalid,
            say=lambda message: say(f"field {name!r}: {message}"),
        )
    except (OSError, ValueError) as error:
        raise InputError(f"field {name!r}: {error}") from None


def _load_field_selection(name: str, spec: str, args):
    """``(selection, selection_info, grid)``: an artefact (grid computed later) or a saved
    grid."""
    from ..demographics.marginalise import SelectionGrid

    path = Path(spec)
    if path.suffix == ".npz":
        if not path.is_file():
            raise InputError(f"field {name!r}: selection grid not found: {path}")
        try:
            grid = SelectionGrid.load(path)
        except Exception as error:  # np.load raises many types for a file that is not a grid
            raise InputError(
                f"field {name!r}: {path} is not a saved SelectionGrid (.npz from "
                f"SelectionGrid.save): {error}"
            ) from None
        info = {"grid_file": str(path.resolve()), "grid_file_sha256": file_sha256(path)}
        return None, info, grid
    local = types.SimpleNamespace(selection=spec, grid_file=None, grid=args.grid)
    try:
        selection, info = load_selection(local, "fit")
    except (OSError, ValueError) as error:
        raise InputError(f"field {name!r}: {error}") from None
    return selection, info, None


def run_fit_fields(args, population) -> int:
    """``jaxcomp fit`` with ``--field``: the jointly fitted fields (``population`` is the
    per-field :class:`~jaxcomp.demographics.PopulationModel` of the model options)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from ..demographics import (
        MultiFieldFitter,
        MultiFieldModel,
        compare_pooling,
        write_multifield_outputs,
    )
    from ..demographics.multifield_model import THETA_COLUMNS, check_field, check_field_names
    from .fit import _restrict

    say = say_unless_quiet(args)
    start = time.perf_counter()
    _refuse_single_field_options(args)
    if args.pooling is None:
        args.pooling = "partial"
    if args.parametrisation is None:
        args.parametrisation = "non_centred"
    names = check_field_names(spec[0] for spec in args.field)
    model = MultiFieldModel(population, pooling=args.pooling, parametrisation=args.parametrisation)

    fields = []
    for name, catalogue_spec, selection_spec in args.field:
        catalogue, catalogue_info = _load_field_catalogue(name, catalogue_spec, args, say)
        try:
            catalogue, cuts = _restrict(
                catalogue, population, args.av_out_of_range, say, label=f"field {name!r}"
            )
        except ValueError as error:
            raise InputError(str(error)) from None
        selection, selection_info, grid = _load_field_selection(name, selection_spec, args)
        theta = np.stack([np.asarray(catalogue[c], np.float64) for c in THETA_COLUMNS], axis=1)
        check_field(name, selection if grid is None else grid, population, theta)
        fields.append(
            {
                "name": name,
                "catalogue": catalogue,
                "catalogue_info": catalogue_info,
                "cuts": cuts,
                "selection": selection,
                "selection_info": selection_info,
                "grid": grid,
            }
        )
    computed = any(f["grid"] is None for f in fields)
    sampler = sampler_record(args)
    configuration = jsonable(
        {
            "command": "fit",
            "fields": [
                {
                    "name": f["name"],
                    "catalogue_sha256": f["catalogue_info"]["sha256"],
                    "legus": f["catalogue_info"]["legus"],
                    "selection_sha256": (f["selection_info"] or {}).get("sha256"),
                    "grid_file_sha256": (f["selection_info"] or {}).get("grid_file_sha256"),
                }
                for f in fields
            ],
            "classes": list(args.classes),
            "columns": dict(args.columns),
            "drop_invalid": bool(args.drop_invalid),
            "grid": list(grid_shape(args)) if computed else None,
            "pooling": args.pooling,
            "compare_pooling": bool(args.compare_pooling),
            "parametrisation": args.parametrisation,
            "mass": args.mass,
            "age": args.age,
            "av": args.av,
            "log_mass_range": list(population.log_mass_range),
            "log_age_range": list(population.log_age_range),
            "av_out_of_range": args.av_out_of_range,
            "priors": {
                name: list(population.prior_bounds(name)) for name in population.scalar_parameters
            },
            **sampler,
        }
    )
    out = Path(args.out)
    prepare_output(out, "fit", configuration, args.overwrite)
    poolings = list(POOLING_FORMS) if args.compare_pooling else [args.pooling]
    outputs = [
        "posterior_fields.ecsv",
        "posterior_population.ecsv",
        "posterior.md",
        "report.txt",
        *(f"shrinkage_{p}.png" for p in model.field_parameters),
        *(f"idata_{p}.{ext}" for p in poolings for ext in ("nc", "json")),
        *(["loo.ecsv"] if args.compare_pooling else []),
    ]
    record = {
        "command": "fit",
        "status": "running",
        "seed": args.seed,
        "configuration": configuration,
        "model": model.describe(),
        "inputs": {
            "fields": [
                {
                    "name": f["name"],
                    "catalogue": f["catalogue_info"],
                    "selection": f["selection_info"],
                }
                for f in fields
            ]
        },
        "catalogue_cuts": {f["name"]: f["cuts"] for f in fields},
        "versions": package_versions(),
        "outputs": outputs,
    }
    write_record(out, "fit", record)
    grids, grid_info = [], {}
    for f in fields:
        if f["grid"] is not None:
            grids.append(f["grid"])
            grid_info[f["name"]] = {"source": "grid_file", "path": f["selection_info"]["grid_file"]}
            continue
        local = types.SimpleNamespace(grid_file=None, grid=args.grid)
        grid, info = selection_grid(
            local,
            f["selection"],
            f["selection_info"],
            out,
            progress=not args.quiet,
            say=say,
            tag=f["selection_info"]["sha256"][:12],
        )
        grids.append(grid)
        grid_info[f["name"]] = info
    catalogues = [f["catalogue"] for f in fields]
    n_clusters = {f["name"]: len(f["catalogue"]) for f in fields}
    say(
        f"fitting {model.describe()} to {len(fields)} fields ({sum(n_clusters.values())} "
        f"clusters): {', '.join(poolings)} pooling, {args.chains} chain(s) x ({args.warmup} "
        f"warmup + {args.samples} samples), seed {args.seed} ..."
    )
    options = {
        "num_warmup": args.warmup,
        "num_samples": args.samples,
        "num_chains": args.chains,
        "chain_method": args.chain_method,
        "target_accept_prob": args.target_accept,
        "max_tree_depth": args.max_tree_depth,
        "progress": not args.quiet,
    }
    comparison = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.compare_pooling:
            results, comparison = compare_pooling(
                catalogues, grids, model, field_names=names, seed=args.seed, **options
            )
        else:
            fitter = MultiFieldFitter(model, **options)
            data = fitter.prepare(names, catalogues, grids, seed=args.seed)
            results = {args.pooling: fitter.fit(data, seed=args.seed)}
    fit_warnings = list(
        dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning))
    )
    for message in fit_warnings:
        print(f"jaxcomp fit: warning: {message}", file=sys.stderr, flush=True)
    main = results[args.pooling]
    say(main.report())
    written = write_multifield_outputs(results, out, main=args.pooling, comparison=comparison)

    def interval(draws):
        return [float(v) for v in np.quantile(draws, [0.16, 0.5, 0.84])]

    population_posterior = {
        name: interval(main.draws(name)) for name in main.model.population_parameters
    }
    field_posterior = {
        field: {name: interval(main.draws(name)[:, f]) for name in main.model.field_parameters}
        for f, field in enumerate(main.field_names)
    }
    loo = None
    if comparison is not None:
        loo = {
            str(pooling): {
                key: (bool(row[key]) if key == "warning" else float(row[key]))
                for key in ("rank", "elpd_loo", "p_loo", "elpd_diff", "dse", "weight", "warning")
            }
            for pooling, row in comparison.iterrows()
        }
    record.update(
        status="complete",
        grids=grid_info,
        n_clusters=n_clusters,
        diagnostics={**written["diagnostics"], "warnings": fit_warnings},
        population_q16_median_q84=population_posterior,
        fields_q16_median_q84=field_posterior,
        loo=loo,
        idata=written["idata"],
        outputs=sorted(set(outputs) | set(written["files"])),
        runtime_s=round(time.perf_counter() - start, 2),
    )
    write_record(out, "fit", record)
    diagnostics = written["diagnostics"][args.pooling]
    summary = ", ".join(
        f"{name} = {q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}]"
        for name, q in population_posterior.items()
        if name.endswith("_mean")
    )
    best = f"; best by PSIS-LOO: {comparison.index[0]} pooling" if comparison is not None else ""
    r_hat = diagnostics["max_r_hat"]
    print(
        f"wrote {out}: {len(fields)} fields, {args.pooling} pooling"
        + (f": {summary} (median, 68%)" if summary else "")
        + f"; {diagnostics['num_divergences']} divergences, max r_hat "
        + (f"{r_hat:.3f}" if r_hat is not None else "n/a")
        + best
    )
    return 0
