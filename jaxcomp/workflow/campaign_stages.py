"""The AST campaign stages ``ast_train`` and ``ast_test``, and the campaign settings every
campaign of a run shares (the ``population`` stage's too)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .field_stage import load_field
from .library_stage import _read_library
from .stage_context import StageContext, _figure

__all__ = ["run_ast_test", "run_ast_train"]


def _campaign_settings(ctx: StageContext) -> dict:
    """The ``CampaignConfig`` settings every campaign of the run shares (training, test,
    population)."""
    section = ctx.config.campaign
    settings = {
        "seed": ctx.seed,
        "reprocess": section.reprocess,
        "edge_margin_px": section.edge_margin_px,
    }
    from ..ast import DEFAULT_CONFIG

    settings["pipeline"] = dataclasses.replace(
        DEFAULT_CONFIG,
        photometry=dataclasses.replace(DEFAULT_CONFIG.photometry, centring=section.centring),
    )
    return settings


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
