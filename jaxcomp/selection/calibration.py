"""Calibration diagnostics of predicted probabilities against binary labels.

A selection function is used as a probability inside likelihoods, so it must be
calibrated: among clusters given p = 0.3, 30% should be recovered.  This module
computes the reliability curve, the Brier score, the expected calibration error
(ECE) and the log loss on held-out labels, and draws the reliability diagram.

:func:`ensemble_coverage` checks the other half of an ensemble's promise: that
the spread of its members is as wide as the error of its mean, by the coverage
of a known (synthetic) p_obs or of a test campaign's repeated-injection counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "CalibrationReport",
    "EnsembleCoverage",
    "calibration_report",
    "ensemble_coverage",
    "member_probabilities",
    "plot_reliability",
]

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


# ------------------------------------------------------- ensemble spread coverage
@dataclass(frozen=True)
class EnsembleCoverage:
    """How often the members' range covers the truth (:func:`ensemble_coverage`).

    Attributes
    ----------
    levels : tuple of float
        Nominal coverages (e.g. 0.68, 0.95).
    n_clusters, n_members : int
    interval_coverage : dict
        ``{level: fraction}`` of clusters whose reference probability (the known
        p_obs, or the measured ``n_detected / n_repeats``) lies within the
        members' range ``mean ± t sd`` at that level.
    predictive_coverage : dict or None
        ``{level: fraction}`` of clusters whose detected count falls in the
        central interval of the ensemble's predictive distribution of the count
        (the mixture over members of Binomial(n_repeats, p_m); randomised PIT).
        None without counts.
    plugin_coverage : dict or None
        The same for Binomial(n_repeats, ensemble mean): what one network (or a
        spread ignored) promises.
    mean_spread : float
        Mean over clusters of the members' standard deviation (ddof 1).
    seed : int
        Seed of the PIT randomisation.
    """

    levels: tuple[float, ...]
    n_clusters: int
    n_members: int
    interval_coverage: dict
    predictive_coverage: dict | None
    plugin_coverage: dict | None
    mean_spread: float
    seed: int

    def summary(self) -> dict:
        """JSON-serialisable record (levels as strings)."""

        def keyed(values):
            return None if values is None else {f"{k:g}": float(v) for k, v in values.items()}

        return {
            "levels": list(self.levels),
            "n_clusters": self.n_clusters,
            "n_members": self.n_members,
            "interval_coverage": keyed(self.interval_coverage),
            "predictive_coverage": keyed(self.predictive_coverage),
            "plugin_coverage": keyed(self.plugin_coverage),
            "mean_spread": self.mean_spread,
            "seed": self.seed,
        }


def member_probabilities(selection, data) -> np.ndarray:
    """p_obs of every ensemble member for a table, shape ``(n_members, n_rows)``.

    ``selection`` is a :class:`~jaxcomp.SelectionFunction`; ``data`` any table with
    its input columns (validated with :meth:`~jaxcomp.SelectionFunction.validate`,
    so units and domain are checked; values outside the domain follow its policy).
    """
    import jax

    values = selection.validate(data)
    logits = selection.member_logits(np.asarray(values, np.float32))
    return np.asarray(jax.nn.sigmoid(logits), np.float64)


def _randomised_pit(cdf_below, cdf_at, rng) -> np.ndarray:
    return cdf_below + rng.random(cdf_at.shape) * (cdf_at - cdf_below)


def ensemble_coverage(
    member_probabilities,
    p_reference=None,
    *,
    n_detected=None,
    n_repeats=None,
    levels=(0.68, 0.95),
    seed: int = 0,
) -> EnsembleCoverage:
    """Coverage of the truth by an ensemble's spread.

    Two checks, for one set of clusters:

    * **interval coverage**: is the reference probability inside the members'
      range ``mean ± t_{M-1} sd`` (``sd`` with ddof 1 over the ``M`` members,
      ``t`` the Student quantile for the level: the spread of a few members is
      itself uncertain; clipped to [0, 1])?  The reference is ``p_reference``
      (a known p_obs, e.g. :class:`~jaxcomp.selection.synthetic.LogisticSelection`)
      or, if not given, a test campaign's ``p_true = n_detected / n_repeats``
      (paper eq. 10).  A measured p_true carries its own binomial noise, so its
      coverage by a correct spread is *below* nominal; for test campaigns read
    * **predictive coverage**: the randomised probability integral transform of
      each ``n_detected`` under the ensemble's predictive distribution, the
      mixture over members of Binomial(n_repeats, p_m), falls in the central
      interval of each level.  For a correct ensemble this is nominal whatever
      the number of repeats; ``plugin_coverage``, the same under
      Binomial(n_repeats, mean p), shows what ignoring the spread promises.
      (With one repeat per cluster the two coincide: a mixture of Bernoullis is a
      Bernoulli.)

    Parameters
    ----------
    member_probabilities : array, shape (n_members, n_clusters)
        p_obs of each member (:func:`member_probabilities`); ``n_members >= 2``.
    p_reference : array, shape (n_clusters,), optional
        Known true p_obs.
    n_detected, n_repeats : array of int, shape (n_clusters,), optional
        Repeated-injection counts of a test campaign (``p_true_table`` columns).
    levels : sequence of float
        Nominal coverages in (0, 1).
    seed : int
        Seed of the PIT randomisation (recorded).

    Returns
    -------
    EnsembleCoverage
    """
    from scipy import stats

    p = np.asarray(member_probabilities, np.float64)
    if p.ndim != 2 or p.shape[0] < 2:
        raise ValueError(
            f"member_probabilities must have shape (n_members >= 2, n_clusters), got {p.shape}; "
            "train with TrainConfig(n_members=5, ensemble_resampling='bootstrap')"
        )
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("member probabilities must be finite and within [0, 1]")
    levels = tuple(float(level) for level in levels)
    if not levels or any(not 0 < level < 1 for level in levels):
        raise ValueError(f"levels must lie in (0, 1), got {levels}")
    n_members, n_clusters = p.shape
    counts = n_detected is not None or n_repeats is not None
    if counts:
        if n_detected is None or n_repeats is None:
            raise ValueError("give both n_detected and n_repeats (columns of p_true_table)")
        k = np.asarray(n_detected, np.float64)
        r = np.asarray(n_repeats, np.float64)
        if k.shape != (n_clusters,) or r.shape != (n_clusters,):
            raise ValueError(f"n_detected and n_repeats must have shape ({n_clusters},)")
        if (
            np.any(r < 1)
            or np.any(k < 0)
            or np.any(k > r)
            or np.any(k != np.round(k))
            or np.any(r != np.round(r))
        ):
            raise ValueError(
                "n_detected and n_repeats must be integers with 0 <= n_detected <= n_repeats >= 1"
            )
    if p_reference is None:
        if not counts:
            raise ValueError(
                "give p_reference (a known p_obs) or the counts n_detected and n_repeats"
            )
        reference = k / r
    else:
        reference = np.asarray(p_reference, np.float64)
        if reference.shape != (n_clusters,):
            raise ValueError(f"p_reference must have shape ({n_clusters},), got {reference.shape}")
    mean = p.mean(axis=0)
    sd = p.std(axis=0, ddof=1)
    interval = {}
    for level in levels:
        half = stats.t.ppf(0.5 + level / 2, n_members - 1) * sd
        inside = (reference >= np.clip(mean - half, 0, 1)) & (
            reference <= np.clip(mean + half, 0, 1)
        )
        interval[level] = float(inside.mean())
    predictive = plugin = None
    if counts:
        rng = np.random.default_rng(seed)
        u = rng.random(n_clusters)
        mix_at = stats.binom.cdf(k, r, p).mean(axis=0)
        mix_below = stats.binom.cdf(k - 1, r, p).mean(axis=0)
        one_at, one_below = stats.binom.cdf(k, r, mean), stats.binom.cdf(k - 1, r, mean)
        pit_mix = mix_below + u * (mix_at - mix_below)
        pit_one = one_below + u * (one_at - one_below)
        predictive = {level: float(np.mean(np.abs(pit_mix - 0.5) <= level / 2)) for level in levels}
        plugin = {level: float(np.mean(np.abs(pit_one - 0.5) <= level / 2)) for level in levels}
    return EnsembleCoverage(
        levels=levels,
        n_clusters=int(n_clusters),
        n_members=int(n_members),
        interval_coverage=interval,
        predictive_coverage=predictive,
        plugin_coverage=plugin,
        mean_spread=float(sd.mean()),
        seed=int(seed),
    )
