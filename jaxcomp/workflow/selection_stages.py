"""The selection-function stages: ``train`` (the networks) and ``validate`` (the paper's
section 4.1-4.3 validation on the test campaign), and where a run's networks are stored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..provenance import json_default
from ..survey import BANDS
from .config_sections import NetworkKind
from .library_stage import _library_provenance
from .stage_context import StageContext, _figure

__all__ = ["run_train", "run_validate"]


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
