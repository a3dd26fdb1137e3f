"""The embedded demo: ``jaxcomp demo``.

Runs what exists of the pipeline end to end on data the package makes itself
(no downloads).  At present: labels from a known selection surface in the
design of the paper's artificial cluster tests (a training campaign of distinct
clusters and a test campaign of clusters re-injected many times, which gives
p_true), a physical selection function trained on them, and its validation
(|p_hat - p_true| percentiles as in the paper's section 4.1, calibration, maps).
Every random draw comes from ``seed``, recorded in ``summary.json``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import atomic_write_text
from ._version import __version__
from .selection.calibration import calibration_report, plot_reliability
from .selection.synthetic import LogisticSelection, simulate_labels
from .selection.training import TrainConfig, plot_loss_curves, train_selection_function

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo campaigns and of the network."""

    n_train_clusters: int
    n_test_clusters: int
    test_repeats: int
    train: TrainConfig

    @classmethod
    def full(cls, seed: int = 0) -> DemoConfig:
        """Paper-sized training campaign (245,000 clusters), 500 x 100 test injections."""
        return cls(245_000, 500, 100, TrainConfig(hidden_widths=(512, 512), epochs=40,
                                                  learning_rates=(5e-3, 1e-2), weight_decays=(1e-3,),
                                                  seed=seed))

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        """A small run of well under a minute, for tests and a first look."""
        return cls(40_000, 200, 50, TrainConfig(hidden_widths=(64, 64), epochs=12, batch_size=2048,
                                                learning_rates=(1e-2,), weight_decays=(1e-3,), seed=seed))


def _percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 95)}


def _plot_validation(path: Path, test, p_hat, p_true, selection, sf) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ._io import atomic_savefig

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4.2))
    errors = np.sort(np.abs(p_hat - p_true))
    left.plot(errors, np.arange(1, errors.size + 1) / errors.size)
    left.set_xscale("log")
    left.set_xlabel("|p_hat - p_true|")
    left.set_ylabel("cumulative fraction of test clusters")
    left.set_title("accuracy on repeated injections")

    log_mass = np.linspace(2, 8, 121)
    log_age = np.linspace(5, 10.17, 105)
    grid_mass, grid_age = np.meshgrid(log_mass, log_age, indexing="ij")
    points = np.stack([grid_mass, grid_age, np.zeros_like(grid_mass)], axis=-1).reshape(-1, 3)
    predicted = sf.predict(dict(log_mass=points[:, 0], log_age=points[:, 1], av=points[:, 2]),
                           out_of_domain="clip").reshape(grid_mass.shape)
    mesh = middle.pcolormesh(grid_age, grid_mass, predicted, shading="auto", vmin=0, vmax=1, cmap="viridis")
    middle.contour(grid_age, grid_mass, selection(grid_mass, grid_age, 0.0), levels=[0.1, 0.5, 0.9],
                   colors="w", linestyles="--", linewidths=1)
    middle.contour(grid_age, grid_mass, predicted, levels=[0.1, 0.5, 0.9], colors="r", linewidths=0.8)
    figure.colorbar(mesh, ax=middle, label="p_obs (A_V = 0)")
    middle.set_xlabel("log age [yr]")
    middle.set_ylabel("log mass [Msun]")
    middle.set_title("network (red) vs true surface (white)")

    right.scatter(p_true, p_hat, s=4, alpha=0.5)
    right.plot([0, 1], [0, 1], color="0.5", lw=1)
    right.set_xlabel("p_true (fraction recovered over repeats)")
    right.set_ylabel("p_hat (network)")
    right.set_title(f"{len(test)} test clusters")
    figure.tight_layout()
    return atomic_savefig(figure, path)


def run_demo(out: str | Path = "jaxcomp-demo", *, quick: bool = False, seed: int = 0,
             progress: bool = True) -> dict:
    """Run the embedded demo and write its outputs into ``out``.

    Parameters
    ----------
    out : path
        Output directory (created).
    quick : bool
        Small campaigns and network (about a minute on a laptop).
    seed : int
        Master seed; the training and test campaigns use ``seed`` and ``seed + 1``.
    progress : bool
        Show progress bars.

    Returns
    -------
    dict
        The summary also written to ``out/summary.json``.
    """
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = DemoConfig.quick(seed) if quick else DemoConfig.full(seed)
    selection = LogisticSelection()
    log = print if progress else (lambda *args, **kwargs: None)

    log(f"[1/3] simulating labels: {config.n_train_clusters} training clusters, "
        f"{config.n_test_clusters} test clusters x {config.test_repeats} injections (seed {seed})")
    training_labels = simulate_labels(config.n_train_clusters, seed=seed, selection=selection)
    test_labels = simulate_labels(config.n_test_clusters, repeats=config.test_repeats, seed=seed + 1,
                                  selection=selection)

    log("[2/3] training the physical selection function")
    result = train_selection_function(training_labels, "physical", config.train, progress=progress,
                                      provenance={"labels": "jaxcomp demo: LogisticSelection()",
                                                  "seed": seed})
    sf = result.selection_function
    sf.save(out / "selection_physical.safetensors")
    plot_loss_curves(result, out / "loss_curves.png")

    log("[3/3] validating on repeated injections")
    first = np.unique(np.asarray(test_labels["cluster_id"]), return_index=True)[1]
    per_cluster = test_labels[first]
    recovered = np.bincount(np.asarray(test_labels["cluster_id"]), weights=np.asarray(test_labels["C"]))
    p_true = recovered / config.test_repeats
    p_hat = sf.predict(per_cluster, out_of_domain="clip")
    row_p = sf.predict(test_labels, out_of_domain="clip")
    report = calibration_report(row_p, np.asarray(test_labels["C"]))
    plot_reliability(report, out / "reliability.png", title="repeated-injection test labels")
    _plot_validation(out / "validation.png", per_cluster, p_hat, p_true, selection, sf)
    exact = np.abs(p_hat - np.asarray(per_cluster["p_true"]))

    summary = {
        "jaxcomp_version": __version__,
        "python": platform.python_version(),
        "seed": seed,
        "quick": quick,
        "campaigns": {"train_clusters": config.n_train_clusters, "test_clusters": config.n_test_clusters,
                      "test_repeats": config.test_repeats},
        "selection_truth": repr(selection),
        "training": {"best_learning_rate": result.best_learning_rate,
                     "best_weight_decay": result.best_weight_decay,
                     "held_out": result.test_calibration.summary()},
        "validation": {
            "abs_p_hat_minus_p_true": _percentiles(np.abs(p_hat - p_true)),
            "abs_p_hat_minus_exact_p": _percentiles(exact),
            "paper_physical_network": {"p50": 0.007, "p90": 0.200, "p95": 0.356},
            "calibration": report.summary(),
        },
        "seconds": round(time.perf_counter() - start, 1),
        "outputs": sorted(p.name for p in out.iterdir() if not p.name.startswith(".")),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    percentiles = summary["validation"]["abs_p_hat_minus_p_true"]
    log(f"done in {summary['seconds']} s -> {out}/\n"
        f"  |p_hat - p_true| 50/90/95th percentiles: {percentiles['p50']:.3f} / {percentiles['p90']:.3f} / "
        f"{percentiles['p95']:.3f} (paper physical network: 0.007 / 0.200 / 0.356)\n"
        f"  calibration on {report.n} test injections: ECE {report.ece:.4f}, Brier {report.brier:.4f}")
    return summary
