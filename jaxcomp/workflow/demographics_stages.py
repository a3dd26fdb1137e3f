"""The demographics stages ``correct`` (completeness-corrected CAF and CMF) and ``fit`` (NUTS fit
of the mass and age functions), and what both read: the catalogue and the selection grid."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from .config_sections import NetworkKind
from .multifield_stage import run_fit_fields
from .population_stage import population_model, population_truth
from .selection_stages import _load_network, _network_path
from .stage_context import StageContext, _figure

__all__ = [
    "demographics_selection",
    "load_catalogue",
    "run_correct",
    "run_fit",
    "selection_grid",
]


def load_catalogue(ctx: StageContext):
    """The catalogue to correct and fit, as an astropy Table with log_mass, log_age, av.

    Checked by :func:`jaxcomp.demographics.validate_catalogue`, the loader of ``jaxcomp correct``
    and ``jaxcomp fit``: the same inputs are refused with the same messages.
    """
    from .._io import read_table
    from ..demographics.catalogue import load_catalogue as load_checked
    from ..demographics.catalogue import validate_catalogue

    source = ctx.config.catalogue.source
    if source == "population":
        path = ctx.stage_dir("population") / "catalogue.parquet"
        return validate_catalogue(read_table(path), label=f"catalogue {path}")[0]
    if source == "legus:ngc628c":  # the shipped catalogue has rows without a fit: drop those
        return load_checked(
            legus="ngc628c", classes=(1, 2, 3), drop_invalid=True, say=lambda *a: None
        )[0]
    return load_checked(source)[0]


def demographics_selection(ctx: StageContext, kind: NetworkKind):
    """The p_obs(log M, log T, A_V) of ``kind``: the physical network, or the radius-aware one
    averaged over the campaign's radii with the library's radius prescription."""
    from ..selection import RadiusMarginalisedSelection, RadiusPrior

    network = _load_network(ctx, kind)
    if kind == "physical":
        return network
    prior = RadiusPrior(ctx.config.library.radius_model)
    return RadiusMarginalisedSelection(network, ctx.config.campaign.r_eff_pc, prior)


def selection_grid(ctx: StageContext, shape, kind: NetworkKind = "physical") -> object:
    """p_obs of ``kind`` (:func:`demographics_selection`) on a grid, cached in ``RUN_DIR/grids`` by
    network hash, radius prior and shape."""
    from ..demographics import SelectionGrid

    path = _network_path(ctx, kind)
    record = path.read_bytes()
    if kind != "physical":
        record += json.dumps(
            [ctx.config.library.radius_model, list(ctx.config.campaign.r_eff_pc)]
        ).encode()
    digest = hashlib.sha256(record).hexdigest()[:16]
    cache = (
        ctx.run_dir
        / "grids"
        / f"{kind.replace('+', '_')}_{digest}_{'x'.join(str(s) for s in shape)}.npz"
    )
    if cache.is_file():
        return SelectionGrid.load(cache)
    grid = SelectionGrid.from_selection(
        demographics_selection(ctx, kind), shape=tuple(shape), progress=ctx.progress
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    grid.save(cache)
    return grid


def _bins(low, high, width):
    return np.round(np.arange(low, high + 0.5 * width, width), 6)


def _selection_words(kind: str) -> str:
    if kind == "physical":
        return "physical network"
    return (
        "radius-aware physical network averaged over the campaign's radii "
        "(library radius prescription)"
    )


# ------------------------------------------------------------------ correction
def run_correct(ctx: StageContext) -> dict:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .._io import atomic_savefig, read_table, write_table
    from ..demographics import PiecewiseConstantAV, correct_catalogue, plot_corrected_distribution

    catalogue = load_catalogue(ctx)
    grid = selection_grid(ctx, ctx.config.correct.grid, ctx.config.correct.selection)
    model = population_model(ctx.config)
    truth = population_truth(ctx.config)
    av = PiecewiseConstantAV(np.asarray(model.av_edges), np.asarray(truth["av_weights"]))
    pop = ctx.config.population
    age_bins = (
        np.asarray(ctx.config.correct.age_bins)
        if ctx.config.correct.age_bins
        else _bins(pop.log_age_range[0], pop.log_age_range[1], 0.25)
    )
    mass_bins = (
        np.asarray(ctx.config.correct.mass_bins)
        if ctx.config.correct.mass_bins
        else _bins(pop.log_mass_range[0], pop.log_mass_range[1], 0.25)
    )
    result = correct_catalogue(
        catalogue,
        grid,
        mass_distribution=model.mass_distribution(truth),
        age_distribution=model.age_distribution(truth),
        av_distribution=av,
        age_bins=age_bins,
        mass_bins=mass_bins,
    )
    caf, cmf = result.caf, result.cmf
    metrics = {"clusters": len(catalogue)}
    injected_path = ctx.stage_dir("population") / "injected.parquet"
    comparison = {}
    if ctx.config.catalogue.source == "population" and injected_path.is_file():
        injected = read_table(injected_path)
        for name, table, column, bins in (
            ("caf", caf, "log_age", age_bins),
            ("cmf", cmf, "log_mass", mass_bins),
        ):
            true_counts, _ = np.histogram(np.asarray(injected[column], float), bins=bins)
            table["n_injected"] = true_counts
            corrected = np.ma.filled(np.ma.asarray(table["n_corr"], float), np.nan)
            error = np.ma.filled(np.ma.asarray(table["n_corr_err"], float), np.nan)
            usable = (true_counts > 0) & np.isfinite(corrected) & (np.asarray(table["n_raw"]) >= 5)
            pulls = (corrected[usable] - true_counts[usable]) / np.maximum(error[usable], 1e-12)
            comparison[name] = {
                "bins_compared": int(usable.sum()),
                "median_ratio_corrected_to_injected": float(
                    np.median(corrected[usable] / true_counts[usable])
                )
                if usable.any()
                else None,
                "rms_pull": float(np.sqrt(np.mean(pulls**2))) if usable.any() else None,
            }
        metrics["against_injected"] = comparison
    write_table(caf, ctx.directory / "caf.ecsv")
    write_table(cmf, ctx.directory / "cmf.ecsv")
    figures = []
    for name, table, column in (("caf", caf, "log_age"), ("cmf", cmf, "log_mass")):
        ax = plot_corrected_distribution(
            table, title=f"{name.upper()}: raw and completeness-corrected"
        )
        if "n_injected" in table.colnames:
            centre = np.asarray(table[f"{column}_centre"])
            width = np.asarray(table["width"])
            ax.plot(
                centre,
                np.asarray(table["n_injected"]) / width,
                "k--",
                lw=1,
                label="injected (truth)",
            )
            ax.legend(fontsize="small")
        atomic_savefig(ax.figure, ctx.directory / f"{name}.png", dpi=120)
        plt.close("all")
        figures.append(
            _figure(
                ctx.directory / f"{name}.png",
                f"{'Age' if name == 'caf' else 'Mass'} function of the catalogue: raw, corrected "
                "(16th-84th percentile band of p_corr) and, for the simulated catalogue, the "
                "injected truth.",
            )
        )
    return {
        "description": (
            f"Completeness-corrected age and mass functions (eq. 17-18) with the "
            f"{_selection_words(ctx.config.correct.selection)}, marginalised over the population's "
            "mass (for the CAF) or age (for the CMF) "
            "distribution and p(A_V)."
        ),
        "metrics": metrics,
        "figures": figures,
        "tables": [
            {"path": "caf.ecsv", "caption": "Corrected age function."},
            {"path": "cmf.ecsv", "caption": "Corrected mass function."},
        ],
    }


# ------------------------------------------------------------------ fit
def _finite_max(values):
    values = np.asarray(values, float)
    return float(np.max(values[np.isfinite(values)])) if np.isfinite(values).any() else None


def run_fit(ctx: StageContext) -> dict:
    if ctx.config.fields:  # several fields in one model
        return run_fit_fields(ctx)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from .._io import atomic_savefig, atomic_write_text, write_table
    from ..demographics import PopulationFitter, PopulationModel

    catalogue = load_catalogue(ctx)
    section = ctx.config.fit
    pop = ctx.config.population
    reference = population_model(ctx.config)
    model = PopulationModel(
        mass=section.mass,
        age=section.age,
        av="piecewise",
        av_edges=reference.av_edges,
        log_mass_range=reference.log_mass_range,
        log_age_range=reference.log_age_range,
    )
    inside = (
        (np.asarray(catalogue["log_mass"], float) >= pop.log_mass_range[0])
        & (np.asarray(catalogue["log_mass"], float) <= pop.log_mass_range[1])
        & (np.asarray(catalogue["log_age"], float) >= pop.log_age_range[0])
        & (np.asarray(catalogue["log_age"], float) <= pop.log_age_range[1])
    )
    catalogue = catalogue[inside]
    catalogue["av"] = np.clip(np.asarray(catalogue["av"], float), *pop.av_range)
    grid = selection_grid(ctx, section.grid, section.selection)
    fitter = PopulationFitter(
        model,
        grid,
        num_warmup=section.warmup,
        num_samples=section.samples,
        num_chains=section.chains,
        progress=ctx.progress,
    )
    result = fitter.fit(catalogue, seed=ctx.seed)
    from astropy.table import Table

    summary = Table.from_pandas(result.summary.reset_index().rename(columns={"index": "parameter"}))
    write_table(summary, ctx.directory / "posterior_summary.ecsv")
    atomic_write_text(ctx.directory / "report.txt", result.report() + "\n")
    figures = []
    atomic_savefig(
        result.plot_ppc(n_draws=100, title="posterior predictive check"), ctx.directory / "ppc.png"
    )
    figures.append(
        _figure(
            ctx.directory / "ppc.png",
            "Observed log M and log T histograms against 100 posterior predictive catalogues.",
        )
    )
    truth = population_truth(ctx.config) if ctx.config.catalogue.source == "population" else {}
    pair = result.plot_pair(reference={k: v for k, v in truth.items() if k != "av_weights"} or None)
    atomic_savefig(pair, ctx.directory / "pair.png")
    figures.append(
        _figure(ctx.directory / "pair.png", "Posterior of the hyperparameters (truth marked).")
    )
    recovery = {}
    for name in model.scalar_parameters:
        if name in truth:
            low, high = result.interval(name, 0.95)
            recovery[name] = {
                "truth": float(truth[name]),
                "median": float(np.median(result.draws(name))),
                "low95": float(low),
                "high95": float(high),
            }
    metrics = {
        "clusters": len(catalogue),
        "divergences": result.num_divergences,
        "max_r_hat": _finite_max(result.summary["r_hat"]),  # None for a single chain
        "min_ess_bulk": float(np.nanmin(result.summary["ess_bulk"])),
        "quadrature_relative_error": result.quadrature_relative_error,
        "sampling_seconds": result.runtime_s,
    }
    if recovery:
        metrics["recovery"] = recovery
    partial = ctx.directory / ".posterior.nc.tmp"
    try:
        result.idata.to_netcdf(partial)
        os.replace(partial, ctx.directory / "posterior.nc")
        outputs = {"inference_data": "posterior.nc"}
    except Exception as error:  # netCDF back end not installed
        outputs = {"inference_data": f"not written ({type(error).__name__}: {error})"}
    finally:
        partial.unlink(missing_ok=True)
    return {
        "description": (
            f"NumPyro NUTS fit ({section.chains} chains x {section.warmup} warm-up + "
            f"{section.samples} draws) of {model.describe()}, with the selection-normalised "
            f"likelihood and the p_obs of the {_selection_words(section.selection)} tabulated on a "
            "grid."
        ),
        "metrics": metrics,
        "figures": figures,
        "outputs": outputs,
        "tables": [
            {"path": "posterior_summary.ecsv", "caption": "ArviZ summary of the posterior."}
        ],
    }
