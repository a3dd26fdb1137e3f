"""The ``fit`` stage with ``[[fields]]``: several fields in one hierarchical model.

Each field's catalogue (:func:`read_field_catalogue`) is cut to the model's supports (the
``[population]`` mass and age ranges; A_V clipped to its range, as the single-field fit
does) and its selection tabulated on the ``[fit] grid`` (:func:`field_grid`: a network of
this run through :func:`jaxcomp.workflow.demographics_stages.selection_grid`, or an artefact,
cached in ``RUN_DIR/grids`` by its SHA-256).  The fields are fitted with
:func:`jaxcomp.demographics.fit_fields` (``[fit] pooling``) or, with ``compare_pooling``,
:func:`jaxcomp.demographics.compare_pooling`, and the stage writes the files of
:func:`jaxcomp.demographics.write_multifield_outputs` (per-field and population
posteriors, shrinkage plots, the PSIS-LOO table), which the report shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["field_grid", "field_model", "read_field_catalogue", "run_fit_fields"]


def field_model(config):
    """The per-field :class:`~jaxcomp.demographics.PopulationModel`: ``[fit]`` mass and age
    forms on the ``[population]`` ranges and A_V bins (those of the single-field fit)."""
    from ..demographics import PopulationModel
    from .population_stage import population_model

    reference = population_model(config)
    return PopulationModel(
        mass=config.fit.mass,
        age=config.fit.age,
        av="piecewise",
        av_edges=reference.av_edges,
        log_mass_range=reference.log_mass_range,
        log_age_range=reference.log_age_range,
    )


def read_field_catalogue(entry, population, run_dir: Path | None = None, say=lambda *a: None):
    """A field's checked catalogue inside the model's supports.

    Returns ``(table, theta, cuts)``: the astropy table, its (n, 3) ``log_mass``, ``log_age``,
    ``av`` and the counts of :func:`jaxcomp.demographics.restrict_to_model`.  ``run_dir`` is
    needed for ``catalogue = "population"`` (the run's simulated catalogue).
    """
    from .._io import read_table
    from ..demographics.catalogue import load_catalogue, restrict_to_model, validate_catalogue
    from ..demographics.multifield_model import THETA_COLUMNS

    label = f"field {entry.name!r}"
    try:
        if entry.catalogue == "population":
            path = Path(run_dir) / "population" / "catalogue.parquet"
            table = validate_catalogue(read_table(path), label=f"catalogue {path}")[0]
        elif entry.catalogue.startswith("legus:"):  # rows without a fit dropped, as [catalogue]
            table = load_catalogue(
                legus=entry.catalogue.removeprefix("legus:"),
                classes=(1, 2, 3),
                drop_invalid=True,
                say=lambda *a: None,
            )[0]
        else:
            table = load_catalogue(entry.catalogue, say=lambda *a: None)[0]
    except (OSError, ValueError) as error:
        raise type(error)(f"{label}: {error}") from None
    table, cuts = restrict_to_model(table, population, "clip", label=label, say=say)
    theta = np.stack([np.asarray(table[c], np.float64) for c in THETA_COLUMNS], axis=1)
    return table, theta, cuts


def field_grid(ctx, entry, shape):
    """The field's SelectionGrid on ``shape`` nodes: a network of this run or an artefact."""
    import hashlib

    from .._io import file_sha256
    from ..demographics import SelectionGrid
    from ..selection import SelectionFunction
    from .demographics_stages import selection_grid

    if entry.uses_network:
        return selection_grid(ctx, shape, entry.selection)
    path = Path(entry.selection)
    digest = hashlib.sha256(file_sha256(path).encode()).hexdigest()[:16]
    cache = ctx.run_dir / "grids" / f"artefact_{digest}_{'x'.join(str(s) for s in shape)}.npz"
    if cache.is_file():
        return SelectionGrid.load(cache)
    grid = SelectionGrid.from_selection(
        SelectionFunction.load(path), shape=tuple(shape), progress=ctx.progress
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    grid.save(cache)  # atomic
    return grid


def run_fit_fields(ctx) -> dict:
    """The ``fit`` stage of a configuration with ``[[fields]]``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from ..demographics import (
        MultiFieldModel,
        compare_pooling,
        fit_fields,
        write_multifield_outputs,
    )

    section = ctx.config.fit
    population = field_model(ctx.config)
    model = MultiFieldModel(
        population, pooling=section.pooling, parametrisation=section.parametrisation
    )
    names, catalogues, grids, notes, n_clusters, cuts = [], [], [], [], {}, {}
    for entry in ctx.config.fields:
        table, _, cuts[entry.name] = read_field_catalogue(
            entry, population, ctx.run_dir, say=notes.append
        )
        names.append(entry.name)
        catalogues.append(table)
        grids.append(field_grid(ctx, entry, section.grid))
        n_clusters[entry.name] = len(table)
    options = {
        "field_names": names,
        "num_warmup": section.warmup,
        "num_samples": section.samples,
        "num_chains": section.chains,
        "seed": ctx.seed,
        "progress": ctx.progress,
    }
    comparison = None
    if section.compare_pooling:
        results, comparison = compare_pooling(catalogues, grids, model, **options)
    else:
        results = {section.pooling: fit_fields(catalogues, grids, model, **options)}
    written = write_multifield_outputs(
        results, ctx.directory, main=section.pooling, comparison=comparison
    )
    main = results[section.pooling]
    metrics = {
        "fields": len(names),
        "clusters": n_clusters,
        "catalogue_cuts": cuts,
        "pooling": section.pooling,
        "parametrisation": section.parametrisation,
        "diagnostics": written["diagnostics"],
        "population_median": {
            name: float(np.median(main.draws(name))) for name in model.population_parameters
        },
    }
    if comparison is not None:
        metrics["loo"] = {
            str(pooling): {"elpd_loo": float(row["elpd_loo"]), "elpd_diff": float(row["elpd_diff"])}
            for pooling, row in comparison.iterrows()
        }
        notes.append(f"PSIS-LOO prefers {comparison.index[0]} pooling")
    sources = ", ".join(
        f"{e.name} ({e.catalogue if e.catalogue.startswith(('legus:', 'population')) else 'table'}"
        f", {e.selection if e.uses_network else 'artefact'})"
        for e in ctx.config.fields
    )
    outputs = {Path(name).stem: name for name in written["files"]}
    return {
        "description": (
            f"NumPyro NUTS fit ({section.chains} chains x {section.warmup} warm-up + "
            f"{section.samples} draws) of {len(names)} fields in one hierarchical model: "
            f"{model.describe()}; each field with its own selection function tabulated on a "
            f"grid: {sources}."
            + (
                " The three pooling forms (complete, partial, none) are compared by PSIS-LOO."
                if comparison is not None
                else ""
            )
        ),
        "metrics": metrics,
        "figures": written["figures"],
        "tables": written["tables"],
        "notes": notes,
        "outputs": outputs,
    }
