"""The stages of a jaxcomp run, each a function of the configuration and the outputs of earlier
stages.

A stage writes into its own directory ``RUN_DIR/<stage>/`` and returns what the
report needs (title, description, metrics, figures, tables); the runner
(:mod:`jaxcomp.workflow.runner`) adds the fingerprint, the seed and the timing
and writes ``stage.json``.  Stages, in order:

=============  ==================================================================  ===============
stage          does                                                                 depends on
=============  ==================================================================  ===============
``field``      FITS fields only: the images read and checked, PSFs built from      -
               the stars where the files give none (``psf_<band>.fits``, the
               stars used, ``psf.png``)
``library``    the cluster library (uniform in log M, log T, A_V; stochastic IMF)   -
``ast_train``  training-design AST campaign (no cluster injected twice)             library
``ast_test``   test-design campaign (other clusters, re-injected: p_true)           library,
ast_train
``train``      physical and/or photometric selection functions                     ast_train
``validate``   the paper's section 4.1-4.3 validation on the test campaign         train, ast_test
``population`` a known population injected through the same pipeline (catalogue)   -
``correct``    completeness-corrected CAF and CMF of the catalogue (eq. 17-18)     train, population
``fit``        NUTS fit of the catalogue's mass and age functions                  train, population
=============  ==================================================================  ===============

With a FITS field, ``ast_train``, ``ast_test`` and ``population`` also depend on ``field``
(they inject with the PSFs it wrote).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..provenance import json_default
from .config import BANDS, NetworkKind, RunConfig
from .fields import fit_depends
from .multifield_stage import run_fit_fields

__all__ = ["STAGES", "Stage", "StageContext", "stage_seed"]


@dataclasses.dataclass(frozen=True)
class StageContext:
    """What a stage may use: the configuration, its directory, the run directory, options."""

    config: RunConfig
    run_dir: Path
    directory: Path
    seed: int
    progress: bool
    workers: int

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: its name, the configuration sections it reads, its upstream stages, its
    function."""

    name: str
    title: str
    sections: tuple[str, ...]
    depends: tuple[str, ...]
    run: Callable[[StageContext], dict]
    enabled: Callable[[RunConfig], bool] = lambda config: True


def stage_seed(run_seed: int, stage: str) -> int:
    """The seed of a stage: a fixed function of the run's seed and the stage's name."""
    digest = hashlib.sha256(f"jaxcomp:{run_seed}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _figure(path: Path, caption: str) -> dict:
    return {"path": path.name if path.parent.name else str(path), "caption": caption}


# ------------------------------------------------------------------ field
_PSF_FILE = "psf_{band}.fits"


def load_field(config: RunConfig, run_dir: str | os.PathLike | None = None):
    """The field of the run (built from the seed for the mock; read from FITS otherwise).

    For a FITS field, the PSFs the ``field`` stage built from the stars
    (``RUN_DIR/field/psf_<band>.fits``) are used when ``run_dir`` is given, so every stage
    injects with the same PSFs; without them, they are built again.
    """
    from ..ast import make_mock_field

    section = config.field
    if section.kind == "fits":
        return _read_fits_field(section, run_dir)[0]
    size = section.size
    if size not in ("small", "legus"):
        ny, nx = (int(v) for v in size.lower().split("x"))
        size = (ny, nx)
    return make_mock_field(size, seed=config.run.seed, pointing=section.pointing)


def _read_fits_field(section, run_dir=None, *, rebuild: bool = False):
    """``(field, {band: EPSFResult})`` of a ``[field] kind = "fits"`` section."""
    from ..ast import read_field_fits
    from ..ast.profiles import PSFModel

    kwargs = {}
    if section.zeropoints:
        kwargs["zeropoints"] = dict(zip(BANDS, section.zeropoints))
    if section.distance_modulus:
        kwargs["distance_modulus"] = section.distance_modulus
    if section.psf == "gaussian":
        psf = dict(zip(BANDS, section.psf_fwhm_px))
    else:
        psf = "stars" if section.psf == "stars" else None
        if run_dir is not None and not rebuild:
            from astropy.io import fits

            saved = {}
            for band in BANDS:
                path = Path(run_dir) / "field" / _PSF_FILE.format(band=band)
                if path.is_file():
                    with fits.open(path) as hdul:
                        saved[band] = PSFModel(
                            image=np.asarray(hdul[0].data, float),
                            oversampling=int(hdul[0].header["PSFOVERS"]),
                        )
            if saved and (section.psf == "auto" or len(saved) == len(BANDS)):
                psf = saved  # "auto": the other bands' PSFs come from their files
    return read_field_fits(
        section.directory,
        psf=psf,
        epsf_selection=section.epsf_selection(),
        return_epsf=True,
        **kwargs,
    )


def run_field(ctx: StageContext) -> dict:
    """The FITS field: read and checked once, its PSFs built from the stars where the files give
    none."""
    from astropy.io import fits

    from ..ast.epsf import plot_epsf, psf_encircled_energy

    section = ctx.config.field
    field, built = _read_fits_field(section, rebuild=True)
    figures, tables, outputs, metrics = [], [], {}, {"shape": list(field.shape), "name": field.name}
    psf_metrics = {}
    for band in BANDS:
        ee = psf_encircled_energy(field.psf[band], (1.0, 2.0, 3.0, 4.0))
        entry = {
            "source": "stars" if band in built else "given",
            "psf": field.psf[band].describe(),
            "encircled_energy_1_2_3_4px": [round(float(v), 5) for v in ee],
            "ci_mag": round(float(-2.5 * np.log10(ee[0] / ee[2])), 4),
        }
        if band in built:
            result = built[band]
            header = fits.Header()
            header["BAND"] = (band, "band")
            header["PSFOVERS"] = (result.psf.oversampling, "PSF samples per image pixel")
            header["NSTARS"] = (result.n_used, "stars stacked")
            fits.PrimaryHDU(np.asarray(result.psf.image, np.float64), header=header).writeto(
                ctx.directory / _PSF_FILE.format(band=band), overwrite=True
            )
            name = f"psf_stars_{band}.ecsv"
            result.stars.write(ctx.directory / name, format="ascii.ecsv", overwrite=True)
            tables.append(
                {
                    "path": name,
                    "max_rows": 15,
                    "caption": f"{band}: the ePSF candidates, used or the "
                    "cut that rejected them (first rows).",
                }
            )
            outputs[f"psf_{band}"] = _PSF_FILE.format(band=band)
            entry["stars_used"] = result.n_used
        psf_metrics[band] = entry
    metrics["psf"] = psf_metrics
    if built:
        figure = plot_epsf(
            built, ctx.directory / "psf.png", title=f"{field.name}: effective PSFs from the stars"
        )
        figures.append(
            _figure(
                Path(figure),
                "Effective PSFs built from the frame's stars (log scale) and their "
                "encircled energy against radius.",
            )
        )
    described = ", ".join(f"{b} {'from the stars' if b in built else 'given'}" for b in BANDS)
    return {
        "description": f"Five FITS images from {section.directory} ({field.shape[1]} x "
        f"{field.shape[0]} px); "
        f"PSFs: {described}.",
        "metrics": metrics,
        "figures": figures,
        "tables": tables,
        "outputs": outputs,
    }


# ------------------------------------------------------------------ library
def _library_config(config: RunConfig, **overrides):
    from ..library import LibraryConfig

    lib = config.library
    kwargs = dict(
        log_mass_range=tuple(lib.log_mass_range),
        age_range_yr=(10.0 ** lib.log_age_range[0], 10.0 ** lib.log_age_range[1]),
        av_range=tuple(lib.av_range),
        radius_model=lib.radius_model,
        bands=tuple(lib.bands),
        nebular=lib.nebular,
        nebular_covering_fraction=lib.nebular_covering_fraction,
        nebular_te_k=lib.nebular_te_k,
        nebular_ne_cm3=lib.nebular_ne_cm3,
        nebular_av_factor=lib.nebular_av_factor,
    )
    kwargs.update(overrides)
    return LibraryConfig(**kwargs)


def _library_provenance(config: RunConfig) -> dict:
    """The library settings a network's labels were made with (recorded in the artefact header)."""
    lib = _library_config(config)
    keys = (
        "isochrones",
        "imf_kind",
        "imf_min_mass",
        "imf_max_mass",
        "stochastic",
        "nebular",
        "nebular_covering_fraction",
        "nebular_te_k",
        "nebular_ne_cm3",
        "nebular_av_factor",
        "nebular_max_age_yr",
    )
    return {k: getattr(lib, k) for k in keys}


def _tqdm_callback(enabled: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="cluster", disable=not enabled, smoothing=0.1)

    def update(done, n):
        bar.update(done - bar.n)
        if done >= n:
            bar.close()

    return update


def run_library(ctx: StageContext) -> dict:
    from ..library import generate_library, write_library

    n = ctx.config.library.n_clusters
    library = generate_library(
        n,
        _library_config(ctx.config),
        seed=ctx.seed,
        n_workers=ctx.workers,
        progress=_tqdm_callback(ctx.progress, n, "library"),
    )
    if ctx.config.library.radius_model == "flat":
        # flat over the campaign's radii (the photometry does not depend on the radius)
        rng = np.random.default_rng(np.random.SeedSequence(ctx.seed, spawn_key=(7,)))
        library["r_eff_pc"] = rng.choice(np.asarray(ctx.config.campaign.r_eff_pc), size=n).astype(
            np.int64
        )
    write_library(library, ctx.directory / "library.parquet")
    counts = library["r_eff_pc"].value_counts().sort_index()
    return {
        "description": (
            f"{n} clusters with log M uniform on {list(ctx.config.library.log_mass_range)}, log T "
            f"uniform on {list(ctx.config.library.log_age_range)}, A_V uniform on "
            f"{list(ctx.config.library.av_range)} mag, radii '{ctx.config.library.radius_model}'"
            + (
                f" over {list(ctx.config.campaign.r_eff_pc)} pc"
                if ctx.config.library.radius_model == "flat"
                else ""
            )
            + "; "
            "stars drawn from the Chabrier (2005) IMF, Padova isochrones, Milky Way extinction, "
            "distance modulus 29.98."
        ),
        "metrics": {
            "n_clusters": n,
            "clusters_per_radius": {f"{int(r)} pc": int(c) for r, c in counts.items()},
            "age_clamped": int(library["age_clamped"].sum()),
        },
        "outputs": {"library": "library.parquet"},
    }


def _read_library(ctx: StageContext):
    from ..library import read_library

    return read_library(ctx.stage_dir("library") / "library.parquet")


# ------------------------------------------------------------------ campaigns
def _campaign_settings(ctx: StageContext) -> dict:
    """The ``CampaignConfig`` settings every campaign of the run shares (training, test,
    population)."""
    section = ctx.config.campaign
    return {
        "seed": ctx.seed,
        "reprocess": section.reprocess,
        "edge_margin_px": section.edge_margin_px,
    }


def _campaign_config(ctx: StageContext, design: str):
    from ..ast import CampaignConfig

    section = ctx.config.campaign
    if design == "train":
        return CampaignConfig(
            design="train",
            r_eff_pc=tuple(section.r_eff_pc),
            frames_per_reff=section.train_frames_per_reff,
            clusters_per_frame=section.clusters_per_frame,
            **_campaign_settings(ctx),
        )
    return CampaignConfig(
        design="test",
        r_eff_pc=tuple(section.r_eff_pc),
        frames_per_reff=section.test_repeats,
        clusters_per_frame=section.clusters_per_frame,
        clusters_per_reff=section.test_clusters_per_reff,
        **_campaign_settings(ctx),
    )


def _campaign_metrics(labels) -> dict:
    c = np.asarray(labels["C"], bool)
    radius = np.asarray(labels["r_eff_pc"], float)
    return {
        "injections": int(c.size),
        "recovered_fraction": float(c.mean()),
        "recovered_fraction_by_radius": {
            f"{r:g} pc": float(c[radius == r].mean()) for r in np.unique(radius)
        },
    }


def _executor(ctx: StageContext) -> dict:
    """Local process pool, or the Dask scheduler of ``[run] scheduler``."""
    return {"scheduler": ctx.config.run.scheduler} if ctx.config.run.scheduler else {}


def _run_campaign_stage(ctx: StageContext, design: str, exclude=None) -> tuple[dict, object]:
    from .._io import write_table
    from ..ast import plot_recovery, run_campaign

    field = load_field(ctx.config, ctx.run_dir)
    config = _campaign_config(ctx, design)
    labels = run_campaign(
        field,
        _read_library(ctx),
        config,
        ctx.directory / "campaign",
        n_workers=ctx.workers,
        exclude=exclude,
        progress=ctx.progress,
        **_executor(ctx),
    )
    write_table(labels, ctx.directory / "labels.parquet")
    figure = plot_recovery(
        labels,
        ctx.directory / "recovery.png",
        title=f"{design} campaign on {field.name}: recovery fraction",
    )
    metrics = {
        "frames": config.n_frames,
        "clusters_per_frame": config.clusters_per_frame,
        "campaign_config_hash": config.hash(),
        **_campaign_metrics(labels),
    }
    return {
        "metrics": metrics,
        "figures": [
            _figure(
                Path(figure),
                "Recovery fraction against the injected V "
                "magnitude per radius, and in (log T, log M).",
            )
        ],
        "outputs": {"labels": "labels.parquet", "campaign": "campaign"},
    }, labels


def run_ast_train(ctx: StageContext) -> dict:
    section = ctx.config.campaign
    result, _ = _run_campaign_stage(ctx, "train")
    result["description"] = (
        f"Training design: {section.train_frames_per_reff} frames per radius x "
        f"{len(section.r_eff_pc)} radii x {section.clusters_per_frame} clusters, no library "
        "cluster injected twice; each frame rerun through the LEGUS selection pipeline "
        "(white light, detection, photometry, error / CI / N-band / M_V cuts, 3 px match)."
    )
    return result


def run_ast_test(ctx: StageContext) -> dict:
    from .._io import read_table

    section = ctx.config.campaign
    train_ids = np.unique(
        np.asarray(read_table(ctx.stage_dir("ast_train") / "labels.parquet")["cluster_id"])
    )
    result, _ = _run_campaign_stage(ctx, "test", exclude=train_ids)
    result["description"] = (
        f"Test design: {section.test_clusters_per_reff} clusters per radius (none used in "
        f"training), each re-injected in {section.test_repeats} frames with new positions and "
        "noise, so that p_true (the recovered fraction of its repeats) is measured per cluster."
    )
    return result


# ------------------------------------------------------------------ networks
def _network_path(ctx: StageContext, kind: NetworkKind) -> Path:
    return ctx.stage_dir("train") / f"selection_{kind.replace('+', '_')}.safetensors"


def run_train(ctx: StageContext) -> dict:
    from .._io import read_table
    from ..selection.training import TrainConfig, plot_loss_curves, train_selection_function

    section = ctx.config.networks
    labels = read_table(ctx.stage_dir("ast_train") / "labels.parquet")
    config = TrainConfig(
        hidden_widths=tuple(section.hidden),
        epochs=section.epochs,
        batch_size=section.batch_size,
        learning_rates=tuple(section.learning_rates),
        weight_decays=tuple(section.weight_decays),
        n_members=section.members,
        seed=ctx.seed,
    )
    metrics, figures, outputs = {}, [], {}
    for kind in section.inputs:
        table = labels
        if kind.startswith(
            "photometric"
        ):  # clusters too faint for a magnitude (inf) cannot be inputs
            finite = np.all(
                [np.isfinite(np.asarray(labels[f"mag_{b}"], float)) for b in BANDS], axis=0
            )
            table = labels[finite]
        result = train_selection_function(
            table,
            kind,
            config,
            progress=ctx.progress,
            provenance={
                "workflow_run": ctx.config.run.name,
                "stage": "train",
                "library": _library_provenance(ctx.config),
            },
        )
        path = _network_path(ctx, kind)
        result.selection_function.save(path)
        curves = plot_loss_curves(result, ctx.directory / f"loss_{kind}.png")
        figures.append(
            _figure(Path(curves), f"{kind} network: training and validation loss per epoch.")
        )
        calibration = result.test_calibration
        metrics[kind] = {
            "labels": len(table),
            "best_learning_rate": result.best_learning_rate,
            "best_weight_decay": result.best_weight_decay,
            "held_out_ece": calibration.ece,
            "held_out_brier": calibration.brier,
            "held_out_log_loss": calibration.log_loss,
        }
        outputs[kind] = path.name
    return {
        "description": (
            f"Networks {list(section.inputs)}: MLP {list(section.hidden)} with GELU, AdamW with "
            f"warm-up and cosine decay, batch {section.batch_size}, {section.epochs} epochs, grid "
            f"over learning rates {list(section.learning_rates)} and weight decays "
            f"{list(section.weight_decays)}, best epoch on a validation split by cluster."
        ),
        "metrics": metrics,
        "figures": figures,
        "outputs": outputs,
    }


def _base_kind(kind: str) -> str:
    """``"physical"`` or ``"photometric"``: the paper's network that ``kind`` extends."""
    return kind.split("+")[0]


def _load_network(ctx: StageContext, kind: NetworkKind):
    from ..selection import SelectionFunction

    return SelectionFunction.load(_network_path(ctx, kind))


# ------------------------------------------------------------------ validation
def run_validate(ctx: StageContext) -> dict:
    from .._io import read_table, write_table
    from ..selection import validation as V

    test = read_table(ctx.stage_dir("ast_test") / "labels.parquet")
    train = read_table(ctx.stage_dir("ast_train") / "labels.parquet")
    table = V.p_true_table(test)
    write_table(table, ctx.directory / "p_true.parquet")
    min_count = ctx.config.validation.min_count or V.default_min_count(len(table))
    networks = {kind: _load_network(ctx, kind) for kind in ctx.config.networks.inputs}
    results = {}
    for kind, sf in networks.items():
        results[kind] = V.validate_selection(
            sf,
            table,
            name=kind,
            kind=_base_kind(kind),
            min_count=min_count,
            out_of_domain="clip",
            drop_nonfinite=True,
        )
        results[kind].write_json(ctx.directory / f"validation_{kind}.json")
    figures = [
        _figure(
            V.plot_error_cdf(results, ctx.directory / "error_cdf.png"),
            "Cumulative distribution of |p_hat - p_true| with the 50th/90th/95th percentiles, the "
            "paper's "
            "values and the binomial floor of the repeats.",
        ),
        _figure(
            V.plot_binned_comparison(results, ctx.directory / "binned_comparison.png"),
            "Mean p_true (points) and mean predicted p (lines) in bins of log mass, log age (35 "
            "bins) and "
            f"each magnitude (60 bins); bins with fewer than {min_count} test clusters omitted.",
        ),
    ]
    for kind, result in results.items():
        figures.append(
            _figure(
                V.plot_z_hexbin(result, ctx.directory / f"z_hexbin_{kind}.png", mincnt=2),
                f"{kind}: z = atanh(2p - 1), true against predicted.",
            )
        )
        figures.append(
            _figure(
                V.plot_validation_reliability(result, ctx.directory / f"reliability_{kind}.png"),
                f"{kind}: reliability curve against the per-repeat labels.",
            )
        )
    if "physical" in results:
        sf = networks["physical"]
        pairs = V.compare_completeness_maps(train, sf, av_edges=(0.0, 1.0, 2.0, 3.0), bins=20)
        figures.append(
            _figure(
                V.plot_completeness_maps(
                    pairs,
                    ctx.directory / "completeness_maps.png",
                    title="training campaign (left) vs physical network (right)",
                ),
                "Completeness in (log T, log M) in A_V slices: binned AST recovery against the "
                "network evaluated on a fine grid (sections 4.2-4.3).",
            )
        )
        figures.append(
            _figure(
                V.plot_network_vs_magnitude_limit(sf, ctx.directory / "network_vs_v_limit.png"),
                "Physical network at A_V = 0 against the locus of the V-band magnitude limits "
                "(fully sampled SSP).",
            )
        )
    loss = V.dominant_loss_step(train, bins=20, range=((5.0, 10.2), (2.0, 8.0)))
    figures.append(
        _figure(
            V.plot_dominant_loss_step(loss, ctx.directory / "dominant_loss_step.png", min_count=5),
            "The pipeline step that removes most of the lost clusters in each (log T, log M) bin "
            "(training campaign).",
        )
    )
    metrics = {
        "test_clusters": len(table),
        "repeats_median": float(np.median(np.asarray(table["n_repeats"]))),
        "min_count": min_count,
        "percentiles": {k: r.percentiles for k, r in results.items()},
        "paper": {k: V.PAPER_PERCENTILES[_base_kind(k)] for k in results},
        "binomial_floor": {k: r.binomial_floor for k, r in results.items()},
        "ece": {k: r.calibration.ece for k, r in results.items()},
        "brier": {k: r.calibration.brier for k, r in results.items()},
        "lost_by_first_failing_step": loss.totals(),
    }
    return {
        "description": (
            "The paper's section 4.1 validation on the test campaign: p_true per test cluster "
            "from its repeats, |p_hat - p_true| percentiles, binned comparisons, calibration; "
            "completeness maps and the dominant loss step."
        ),
        "metrics": json.loads(json.dumps(metrics, default=json_default)),
        "figures": figures,
        "outputs": {"p_true": "p_true.parquet"},
    }


# ------------------------------------------------------------------ population
def population_model(config: RunConfig):
    """The :class:`~jaxcomp.demographics.PopulationModel` of ``[population]`` (A_V uniform, 4
    bins)."""
    from ..demographics import PopulationModel

    pop = config.population
    edges = tuple(float(e) for e in np.linspace(*pop.av_range, 5))
    return PopulationModel(
        mass=pop.mass,
        age=pop.age,
        av="piecewise",
        av_edges=edges,
        log_mass_range=tuple(pop.log_mass_range),
        log_age_range=tuple(pop.log_age_range),
    )


def population_truth(config: RunConfig) -> dict:
    pop = config.population
    truth = {"alpha_M": pop.alpha_M, "alpha_T": pop.alpha_T, "av_weights": np.full(4, 0.25)}
    if pop.mass == "schechter":
        truth["log_M_break"] = pop.log_M_break
    return truth


def run_population(ctx: StageContext) -> dict:
    from .._io import write_table
    from ..ast import CampaignConfig, plot_recovery, run_campaign
    from ..demographics import sample_population
    from ..library import library_from_properties

    pop = ctx.config.population
    radii = tuple(ctx.config.campaign.r_eff_pc)
    per_frame = pop.clusters_per_frame
    frames_per_radius = max(1, math.ceil(pop.n_clusters / (len(radii) * per_frame)))
    n = frames_per_radius * len(radii) * per_frame
    theta = sample_population(
        population_model(ctx.config), population_truth(ctx.config), n, seed=ctx.seed
    )
    rng = np.random.default_rng(np.random.SeedSequence(ctx.seed, spawn_key=(1,)))
    r_eff = rng.permutation(
        np.repeat(np.asarray(radii, float), n // len(radii))
    )  # equal numbers per radius
    library = library_from_properties(
        theta[:, 0],
        theta[:, 1],
        theta[:, 2],
        _library_config(ctx.config),
        seed=ctx.seed,
        r_eff_pc=r_eff,
        n_workers=ctx.workers,
    )
    config = CampaignConfig(
        design="train",
        r_eff_pc=radii,
        frames_per_reff=frames_per_radius,
        clusters_per_frame=per_frame,
        **_campaign_settings(ctx),
    )
    labels = run_campaign(
        load_field(ctx.config, ctx.run_dir),
        library,
        config,
        ctx.directory / "campaign",
        n_workers=ctx.workers,
        progress=ctx.progress,
        **_executor(ctx),
    )
    write_table(labels, ctx.directory / "injected.parquet")
    detected = labels[np.asarray(labels["C"], bool)]
    catalogue = detected[
        ["cluster_id", "log_mass", "log_age", "av", "r_eff_pc"]
        + [f"mag_{b}_meas" for b in BANDS if f"mag_{b}_meas" in detected.colnames]
    ]
    catalogue.meta.update(
        {
            "truth": json.loads(json.dumps(population_truth(ctx.config), default=json_default)),
            "n_injected": n,
            "seed": ctx.seed,
        }
    )
    write_table(catalogue, ctx.directory / "catalogue.parquet")
    figure = plot_recovery(
        labels, ctx.directory / "recovery.png", title="simulated population: recovery"
    )
    return {
        "description": (
            f"{n} clusters drawn from a known population ({pop.mass} CMF with alpha_M = "
            f"{pop.alpha_M}"
            + (f", log M_break = {pop.log_M_break}" if pop.mass == "schechter" else "")
            + f" on log M in {list(pop.log_mass_range)}; power-law CAF dN/dT ∝ T^{pop.alpha_T} on "
            f"log T in {list(pop.log_age_range)}; A_V uniform on {list(pop.av_range)}), given "
            f"photometry by the library code, injected {per_frame} per frame into "
            f"{config.n_frames} "
            "frames of the field and passed through the same pipeline; the catalogue is the "
            "recovered clusters with their true log M, log T and A_V (SED-fitting errors are not "
            "modelled)."
        ),
        "metrics": {
            "injected": n,
            "detected": len(catalogue),
            "detected_fraction": len(catalogue) / n,
            "truth": catalogue.meta["truth"],
        },
        "figures": [_figure(Path(figure), "Recovery of the simulated population.")],
        "outputs": {"catalogue": "catalogue.parquet", "injected": "injected.parquet"},
    }


# ------------------------------------------------------------------ catalogue and grid
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


# ------------------------------------------------------------------ the list
def _uses_population(config: RunConfig) -> bool:
    return config.population.enabled and (config.catalogue.source == "population")


STAGES: tuple[Stage, ...] = (
    Stage(
        "field",
        "Field: FITS images and their PSFs",
        ("field",),
        (),
        run_field,
        enabled=lambda c: c.field.kind == "fits",
    ),
    Stage("library", "Cluster library", ("run", "library", "campaign"), (), run_library),
    Stage(
        "ast_train",
        "Artificial cluster tests: training campaign",
        ("run", "field", "campaign"),
        ("library",),
        run_ast_train,
    ),
    Stage(
        "ast_test",
        "Artificial cluster tests: test campaign",
        ("run", "field", "campaign"),
        ("library", "ast_train"),
        run_ast_test,
    ),
    Stage("train", "Selection functions", ("run", "networks"), ("ast_train",), run_train),
    Stage(
        "validate",
        "Validation (paper sections 4.1-4.3)",
        ("validation",),
        ("train", "ast_test", "ast_train"),
        run_validate,
    ),
    Stage(
        "population",
        "Simulated catalogue",
        ("run", "field", "library", "campaign", "population"),
        (),
        run_population,
        enabled=lambda c: c.population.enabled,
    ),
    Stage(
        "correct",
        "Completeness-corrected age and mass functions",
        ("correct", "catalogue", "population"),
        ("train",),
        run_correct,
        enabled=lambda c: c.correct.enabled,
    ),
    Stage(
        "fit",
        "Hierarchical fit (NUTS)",
        ("fit", "catalogue", "population", "run", "fields"),
        ("train",),
        run_fit,
        enabled=lambda c: c.fit.enabled,
    ),
)


def stage_depends(stage: Stage, config: RunConfig) -> tuple[str, ...]:
    """Upstream stages, including the population stage when the catalogue is the simulated one
    (with ``[[fields]]``: :func:`jaxcomp.workflow.fields.fit_depends`)."""
    if stage.name == "fit" and config.fields:
        return fit_depends(config)
    if stage.name in ("correct", "fit") and _uses_population(config):
        return stage.depends + ("population",)
    if "field" in stage.sections and stage.name != "field" and config.field.kind == "fits":
        return stage.depends + ("field",)
    return stage.depends


def n_workers(config: RunConfig) -> int:
    if config.run.workers:
        return config.run.workers
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
