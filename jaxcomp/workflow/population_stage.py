"""The ``population`` stage: a known population injected through the same pipeline (the
simulated catalogue), and that population's model and true values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..provenance import json_default
from ..survey import BANDS
from .campaign_stages import _campaign_settings, _executor
from .config import RunConfig
from .field_stage import load_field
from .library_stage import _library_config
from .stage_context import StageContext, _figure

__all__ = ["population_model", "population_truth", "run_population"]


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
