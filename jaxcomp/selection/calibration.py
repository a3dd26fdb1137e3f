"""Calibration diagnostics of predicted probabilities against binary labels.

A selection function is used as a probability inside likelihoods, so it must be
calibrated: among clusters given p = 0.3, 30% should be recovered.  This module
computes the reliability curve, the Brier score, the expected calibration error
(ECE) and the log loss on held-out labels, and draws the reliability diagram.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["CalibrationReport", "calibration_report", "plot_reliability"]

_EPS = 1e-7


@dataclass(frozen=True)
class CalibrationReport:
    """Calibration of probabilities ``p`` against labels ``y`` in {0, 1}.

    Attributes
    ----------
    bin_edges : ndarray
        Edges of the probability bins, length ``n_bins + 1``.
    mean_predicted : ndarray
        Mean predicted probability in each bin (NaN for empty bins).
    observed_fraction : ndarray
        Fraction of positive labels in each bin (NaN for empty bins).
    counts : ndarray
        Number of labels in each bin.
    brier : float
        Mean squared difference between p and y.
    ece : float
        Expected calibration error: count-weighted mean of
        ``|observed_fraction - mean_predicted|`` over bins.
    log_loss : float
        Mean binary cross-entropy (natural log), with p clipped to [1e-7, 1 - 1e-7].
    n : int
        Number of labels.
    base_rate : float
        Fraction of positive labels.
    """

    bin_edges: np.ndarray
    mean_predicted: np.ndarray
    observed_fraction: np.ndarray
    counts: np.ndarray
    brier: float
    ece: float
    log_loss: float
    n: int
    base_rate: float

    def summary(self) -> dict:
        """Scalar metrics as a JSON-serialisable dictionary."""
        return {
            "brier": self.brier,
            "ece": self.ece,
            "log_loss": self.log_loss,
            "n": self.n,
            "base_rate": self.base_rate,
        }

    def to_json(self) -> dict:
        """Everything, JSON-serialisable (NaN for empty bins becomes None)."""
        record = asdict(self)
        for key, value in record.items():
            if isinstance(value, np.ndarray):
                record[key] = [
                    None if not np.isfinite(v) else float(v) for v in value.astype(float)
                ]
        return record


def _check_probabilities_and_labels(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if p.shape != y.shape:
        raise ValueError(f"probabilities ({p.shape}) and labels ({y.shape}) differ in length")
    if p.size == 0:
        raise ValueError("no labels to assess calibration on")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be finite and within [0, 1]")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0 or 1")
    return p, y.astype(np.float64)


def calibration_report(
    probabilities, labels, *, n_bins: int = 15, strategy: Literal["uniform", "quantile"] = "uniform"
) -> CalibrationReport:
    """Reliability curve, Brier score, ECE and log loss.

    Parameters
    ----------
    probabilities : array_like
        Predicted probabilities in [0, 1].
    labels : array_like
        Observed outcomes, 0 or 1.
    n_bins : int
        Number of probability bins.
    strategy : {"uniform", "quantile"}
        Equal-width bins on [0, 1], or bins holding equal numbers of predictions.
    """
    p, y = _check_probabilities_and_labels(probabilities, labels)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
        edges[0], edges[-1] = 0.0, 1.0
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    n_used = len(edges) - 1
    counts = np.bincount(index, minlength=n_used).astype(np.int64)
    sum_p = np.bincount(index, weights=p, minlength=n_used)
    sum_y = np.bincount(index, weights=y, minlength=n_used)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = sum_p / counts
        observed = sum_y / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] * np.abs(observed[filled] - mean_predicted[filled])) / p.size)
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    log_loss = float(-np.mean(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped)))
    return CalibrationReport(
        bin_edges=edges,
        mean_predicted=mean_predicted,
        observed_fraction=observed,
        counts=counts,
        brier=float(np.mean((p - y) ** 2)),
        ece=ece,
        log_loss=log_loss,
        n=int(p.size),
        base_rate=float(y.mean()),
    )


def plot_reliability(report: CalibrationReport, path: str | Path, *, title: str = "") -> Path:
    """Draw the reliability diagram with a histogram of predictions; save to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .._io import atomic_savefig

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.8, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    filled = report.counts > 0
    top.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    top.plot(
        report.mean_predicted[filled],
        report.observed_fraction[filled],
        "o-",
        color="C0",
        label=f"ECE {report.ece:.4f}, Brier {report.brier:.4f}",
    )
    top.set_ylabel("observed recovered fraction")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    if title:
        top.set_title(title)
    centres = 0.5 * (report.bin_edges[1:] + report.bin_edges[:-1])
    bottom.bar(centres, report.counts, width=np.diff(report.bin_edges), color="C0", alpha=0.5)
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted p_obs")
    bottom.set_ylabel("count")
    figure.tight_layout()
    return atomic_savefig(figure, path)
