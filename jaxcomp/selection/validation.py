"""Validation of selection functions against repeated artificial cluster tests.

This module implements the validation of the C-4 paper (Tang et al. 2026,
section 4.1):

* :func:`p_true_table` - from a *test-design* campaign (the same library clusters
  re-injected in R frames, :class:`jaxcomp.ast.campaign.CampaignConfig` with
  ``design="test"``) to one row per test cluster with its measured recovery
  probability ``p_true = n_detected / n_repeats`` (paper eq. 10).
* :func:`validate_selection` - a network's prediction for every test cluster,
  the cluster-by-cluster error ``|p_hat - p_true|`` and its 50th/90th/95th
  percentiles (paper eq. 12, Fig. 7), the error expected from binomial noise
  alone, calibration against the per-repeat labels, and the binned comparisons
  of mean ``p_true`` and mean ``p_hat`` against log mass, log age (35 bins) and
  each magnitude (60 bins), with sparsely populated bins omitted (Figs. 3-5).
  Returns a :class:`ValidationResult` (frozen; ``to_dict`` / ``write_json``).

The completeness maps of sections 4.2-4.3 (:func:`binned_completeness`,
:func:`network_map`, :func:`compare_completeness_maps`, :func:`ssp_magnitude_function`,
:func:`magnitude_limit_locus`, :func:`dominant_loss_step`) are in
:mod:`jaxcomp.selection.maps`, the figures (``plot_*``, the ``z`` transform) in
:mod:`jaxcomp.selection.validation_plots` and :mod:`jaxcomp.selection.map_plots`, the
shared input adapters (:class:`CallableSelection`) and :data:`PIPELINE_STEPS` in
:mod:`jaxcomp.selection._common`; all are re-exported here, so
``from jaxcomp.selection.validation import plot_z_hexbin`` keeps working.
:data:`PIPELINE_STEPS` is :data:`jaxcomp.ast.cuts.STAGES` itself. See ``docs/architecture.md``.

Everything here is pure (tables in, arrays and frozen dataclasses out).

Notes
-----
``p_true`` is itself noisy: with R repeats its binomial standard error is
``sqrt(p (1 - p) / R)`` (0.05 at p = 0.5 for the paper's R = 100).  A perfect
network therefore does not reach ``|p_hat - p_true| = 0``;
:attr:`ValidationResult.binomial_floor` gives the percentiles that a network
equal to the truth would reach on the same clusters and repeats, which is the
scale against which the measured percentiles (and the paper's) should be read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._common import (
    _MAGNITUDE_COLUMNS,
    _PHYSICAL_NAMES,
    PAPER_PERCENTILES,
    PERCENTILES,
    PIPELINE_STEPS,
    CallableSelection,
    _as_predictor,
    _predict,
    _require,
    _to_pandas,
)
from .calibration import CalibrationReport, calibration_report
from .map_plots import (
    plot_completeness_maps,
    plot_dominant_loss_step,
    plot_network_vs_magnitude_limit,
)
from .maps import (
    DEFAULT_V_LIMITS,
    EMPTY_BIN,
    NO_LOSS,
    BinnedMap,
    LossStepMap,
    NetworkMap,
    binned_completeness,
    compare_completeness_maps,
    dominant_loss_step,
    magnitude_limit_locus,
    network_map,
    ssp_magnitude_function,
)
from .repeats import p_true_table
from .validation_plots import (
    default_z_eps,
    inverse_z_transform,
    plot_binned_comparison,
    plot_error_cdf,
    plot_validation_reliability,
    plot_z_hexbin,
    z_transform,
)

__all__ = [
    "DEFAULT_V_LIMITS",
    "EMPTY_BIN",
    "NO_LOSS",
    "PAPER_PERCENTILES",
    "PERCENTILES",
    "PIPELINE_STEPS",
    "BinnedComparison",
    "BinnedMap",
    "CallableSelection",
    "LossStepMap",
    "NetworkMap",
    "ValidationResult",
    "binned_comparison",
    "binned_completeness",
    "binomial_floor",
    "compare_completeness_maps",
    "default_z_eps",
    "dominant_loss_step",
    "inverse_z_transform",
    "magnitude_limit_locus",
    "network_map",
    "p_true_table",
    "plot_binned_comparison",
    "plot_completeness_maps",
    "plot_dominant_loss_step",
    "plot_error_cdf",
    "plot_network_vs_magnitude_limit",
    "plot_validation_reliability",
    "plot_z_hexbin",
    "ssp_magnitude_function",
    "validate_selection",
    "z_transform",
]


def _percentile_dict(values: np.ndarray, qs: Sequence[int] = PERCENTILES) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in qs}


def default_min_count(n_test_clusters: int) -> int:
    """The paper's "omit bins with fewer than 80 of 5000 test clusters", scaled to
    ``n_test_clusters`` (>= 10)."""
    return max(10, round(80 * n_test_clusters / 5000))


def _json_safe(value):
    """Nested structure with numpy types converted and non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _kind(input_names: Sequence[str]) -> str:
    names = tuple(input_names)
    if names and all(n.startswith("mag_") for n in names):
        return "photometric"
    if set(_PHYSICAL_NAMES) <= set(names):
        return "physical"
    return "custom"


# ======================================================================================
# 2. validation


@dataclass(frozen=True, eq=False)
class BinnedComparison:
    """Mean ``p_true`` and mean ``p_hat`` of test clusters in uniform bins of one column.

    Attributes
    ----------
    column : str
        The binned column (e.g. ``"log_age"`` or ``"mag_F555W"``).
    edges : ndarray, shape (n_bins + 1,)
        Uniform bin edges.
    counts : ndarray of int, shape (n_bins,)
        Test clusters per bin.
    mean_true, mean_predicted : ndarray, shape (n_bins,)
        Arithmetic means of ``p_true`` and ``p_hat`` per bin; NaN in bins holding
        fewer than ``min_count`` clusters (omitted, as in the paper).
    sem_true, sem_predicted : ndarray, shape (n_bins,)
        Standard errors of those means (scatter between clusters / sqrt(count)); NaN
        where omitted.
    min_count : int
        Bins with fewer clusters are omitted.
    n_excluded : int
        Clusters with a non-finite value of the column (not binned).
    """

    column: str
    edges: np.ndarray
    counts: np.ndarray
    mean_true: np.ndarray
    mean_predicted: np.ndarray
    sem_true: np.ndarray
    sem_predicted: np.ndarray
    min_count: int
    n_excluded: int = 0

    @property
    def centres(self) -> np.ndarray:
        """Bin centres."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    @property
    def kept(self) -> np.ndarray:
        """Bins with at least ``min_count`` clusters (the ones shown)."""
        return self.counts >= self.min_count

    @property
    def max_abs_difference(self) -> float:
        """Largest ``|mean_predicted - mean_true|`` over kept bins (NaN if none)."""
        if not self.kept.any():
            return float("nan")
        return float(np.max(np.abs(self.mean_predicted[self.kept] - self.mean_true[self.kept])))

    def to_dict(self) -> dict:
        """JSON-serialisable form (omitted bins as None)."""
        return _json_safe(
            {
                "column": self.column,
                "edges": self.edges,
                "counts": self.counts,
                "kept": self.kept,
                "mean_true": self.mean_true,
                "mean_predicted": self.mean_predicted,
                "sem_true": self.sem_true,
                "sem_predicted": self.sem_predicted,
                "min_count": self.min_count,
                "n_excluded": self.n_excluded,
                "n_kept_bins": int(self.kept.sum()),
                "max_abs_difference": self.max_abs_difference,
            }
        )


def binned_comparison(
    values,
    p_true,
    p_hat,
    *,
    n_bins: int,
    range: tuple[float, float] | None = None,
    min_count: int = 80,
    column: str = "",
) -> BinnedComparison:
    """Mean true and predicted completeness in ``n_bins`` uniform bins of ``values``.

    Parameters
    ----------
    values : array_like
        The binning variable per test cluster (non-finite values are excluded and
        counted in ``n_excluded``).
    p_true, p_hat : array_like
        Measured and predicted recovery probabilities per test cluster.
    n_bins : int
        Number of uniform bins (paper: 35 for log mass and log age, 60 for magnitudes).
    range : (float, float), optional
        Range of the bins (default: the finite values' min and max).
    min_count : int
        Bins with fewer clusters are omitted (their means are NaN); paper: 80.
    column : str
        Name recorded in the result.

    Returns
    -------
    BinnedComparison
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    p_true = np.asarray(p_true, dtype=np.float64).reshape(-1)
    p_hat = np.asarray(p_hat, dtype=np.float64).reshape(-1)
    if not (values.shape == p_true.shape == p_hat.shape):
        raise ValueError(
            f"values, p_true and p_hat differ in length: {values.size}, {p_true.size}, {p_hat.size}"
        )
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if int(min_count) < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError(f"column {column or 'values'!r} has no finite value to bin")
    v, t, h = values[finite], p_true[finite], p_hat[finite]
    lo, hi = (
        (float(v.min()), float(v.max())) if range is None else (float(range[0]), float(range[1]))
    )
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"range must be finite, got {(lo, hi)}")
    if hi <= lo:
        hi = lo + 1.0  # a constant column: one populated bin
    edges = np.linspace(lo, hi, int(n_bins) + 1)
    inside = (v >= lo) & (v <= hi)
    index = np.clip(np.searchsorted(edges, v[inside], side="right") - 1, 0, int(n_bins) - 1)
    counts = np.bincount(index, minlength=int(n_bins)).astype(np.int64)

    def mean_and_sem(x):
        s1 = np.bincount(index, weights=x[inside], minlength=int(n_bins))
        s2 = np.bincount(index, weights=x[inside] ** 2, minlength=int(n_bins))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / counts
            var = np.maximum(s2 / counts - mean**2, 0.0) * counts / np.maximum(counts - 1, 1)
            sem = np.sqrt(var / counts)
        shown = counts >= int(min_count)
        return np.where(shown, mean, np.nan), np.where(shown, sem, np.nan)

    mean_true, sem_true = mean_and_sem(t)
    mean_pred, sem_pred = mean_and_sem(h)
    return BinnedComparison(
        column=column,
        edges=edges,
        counts=counts,
        mean_true=mean_true,
        mean_predicted=mean_pred,
        sem_true=sem_true,
        sem_predicted=sem_pred,
        min_count=int(min_count),
        n_excluded=int((~finite).sum() + (~inside).sum()),
    )


def binomial_floor(
    p, n_repeats, *, qs: Sequence[int] = PERCENTILES, n_draws: int = 200, seed: int = 0
) -> dict[str, float]:
    """Percentiles of ``|p_true - p|`` expected from binomial noise alone.

    If a network predicted every test cluster's exact recovery probability ``p``,
    its error would still be ``|k/R - p|`` with ``k ~ Binomial(R, p)``.  This draws
    ``n_draws`` such test campaigns and returns the percentiles of the pooled errors.

    Parameters
    ----------
    p : array_like
        Recovery probability per cluster (e.g. the network's prediction, or the truth).
    n_repeats : int or array_like
        Repeats R per cluster.
    qs : sequence of int
        Percentiles (default 50, 90, 95).
    n_draws : int
        Simulated campaigns.
    seed : int
        Seed of the draws.

    Returns
    -------
    dict
        ``{"p50": ..., "p90": ..., "p95": ...}``.
    """
    p = np.clip(np.asarray(p, dtype=np.float64).reshape(-1), 0.0, 1.0)
    r = np.broadcast_to(np.asarray(n_repeats, dtype=np.int64), p.shape)
    rng = np.random.default_rng(seed)
    k = rng.binomial(r, p, size=(int(n_draws), p.size))
    return _percentile_dict(np.abs(k / r - p).ravel(), qs)


@dataclass(frozen=True, eq=False)
class ValidationResult:
    """A selection function validated on repeated injections (paper section 4.1).

    Attributes
    ----------
    name : str
        Label of the network (``"physical"``, ``"photometric"`` or user-given).
    kind : str
        ``"physical"``, ``"photometric"`` or ``"custom"`` (chooses the paper reference).
    input_names : tuple of str
        The columns the network was evaluated on.
    cluster_id : ndarray
        Id of each test cluster (first id column), for joining.
    p_hat, p_true : ndarray
        Predicted and measured recovery probability per test cluster.
    n_repeats : ndarray of int
        Injections per test cluster.
    abs_error : ndarray
        ``|p_hat - p_true|`` per test cluster (paper eq. 12).
    percentiles : dict
        50th/90th/95th percentiles of ``abs_error`` (``"p50"``, ``"p90"``, ``"p95"``).
    binomial_floor : dict
        The same percentiles for a network equal to the truth, on these clusters and
        repeats (binomial noise of ``p_true`` alone; from :func:`binomial_floor` with
        ``p = p_hat``).
    reference : dict
        The paper's percentiles for both network kinds (:data:`PAPER_PERCENTILES`).
    calibration : CalibrationReport
        Reliability curve, Brier score, ECE and log loss of ``p_hat`` against every
        per-repeat label (each cluster contributes ``n_detected`` ones and
        ``n_repeats - n_detected`` zeros, which is exactly its injections' labels).
    binned : dict of str to BinnedComparison
        Binned comparisons (paper Figs. 3-5).
    min_count : int
        Bins with fewer clusters are omitted.
    n_dropped : int
        Test clusters dropped for non-finite inputs (``drop_nonfinite=True``).
    skipped_columns : tuple of str
        Default binned columns absent from the table.
    """

    name: str
    kind: str
    input_names: tuple[str, ...]
    cluster_id: np.ndarray
    p_hat: np.ndarray
    p_true: np.ndarray
    n_repeats: np.ndarray
    abs_error: np.ndarray
    percentiles: dict
    binomial_floor: dict
    reference: dict
    calibration: CalibrationReport
    binned: dict
    min_count: int
    n_dropped: int = 0
    skipped_columns: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_clusters(self) -> int:
        """Number of test clusters."""
        return int(self.p_true.size)

    @property
    def n_injections(self) -> int:
        """Number of injections (per-repeat labels)."""
        return int(self.n_repeats.sum())

    @property
    def paper_percentiles(self) -> dict | None:
        """The paper's percentiles for this kind of network (None for ``"custom"``)."""
        return self.reference.get(self.kind)

    def per_cluster_table(self):
        """Astropy Table ``cluster_id, n_repeats, p_true, p_hat, abs_error``."""
        from astropy.table import Table

        return Table(
            {
                "cluster_id": self.cluster_id,
                "n_repeats": self.n_repeats,
                "p_true": self.p_true,
                "p_hat": self.p_hat,
                "abs_error": self.abs_error,
            }
        )

    def summary(self) -> str:
        """One paragraph for logs."""
        p, f = self.percentiles, self.binomial_floor
        ref = self.paper_percentiles
        text = (
            f"{self.name} network on {self.n_clusters} test clusters ({self.n_injections} "
            "injections): "
            f"|p_hat - p_true| 50/90/95th percentiles {p['p50']:.3f} / {p['p90']:.3f} / "
            f"{p['p95']:.3f} "
            f"(binomial-noise floor {f['p50']:.3f} / {f['p90']:.3f} / {f['p95']:.3f}"
        )
        if ref:
            text += f"; paper {ref['p50']:.3f} / {ref['p90']:.3f} / {ref['p95']:.3f}"
        return text + f"); ECE {self.calibration.ece:.4f}, Brier {self.calibration.brier:.4f}"

    def to_dict(self, *, per_cluster: bool = False) -> dict:
        """JSON-serialisable summary; ``per_cluster=True`` adds the per-cluster arrays."""
        repeats = self.n_repeats
        record = {
            "name": self.name,
            "kind": self.kind,
            "input_names": list(self.input_names),
            "n_clusters": self.n_clusters,
            "n_injections": self.n_injections,
            "n_repeats": {
                "min": int(repeats.min()),
                "median": float(np.median(repeats)),
                "max": int(repeats.max()),
            },
            "n_dropped": self.n_dropped,
            "abs_p_hat_minus_p_true": self.percentiles,
            "binomial_floor": self.binomial_floor,
            "paper_reference": self.reference,
            "mean_p_true": float(self.p_true.mean()),
            "mean_p_hat": float(self.p_hat.mean()),
            "calibration": self.calibration.to_json(),
            "min_count": self.min_count,
            "binned": {name: comparison.to_dict() for name, comparison in self.binned.items()},
            "skipped_columns": list(self.skipped_columns),
        }
        if per_cluster:
            record["per_cluster"] = {
                "cluster_id": self.cluster_id,
                "n_repeats": self.n_repeats,
                "p_true": self.p_true,
                "p_hat": self.p_hat,
            }
        return _json_safe(record)

    def write_json(self, path, *, per_cluster: bool = False) -> Path:
        """Write :meth:`to_dict` as JSON, atomically."""
        from .._io import atomic_write_text

        return atomic_write_text(
            path, json.dumps(self.to_dict(per_cluster=per_cluster), indent=1) + "\n"
        )


def _default_n_bins(column: str) -> int:
    """Paper section 4.1.1: 35 bins in log mass / log age, 60 in magnitudes."""
    return 60 if column.startswith("mag_") else 35


def validate_selection(
    sf,
    p_true_table,
    *,
    input_names: Sequence[str] | None = None,
    name: str | None = None,
    kind: str | None = None,
    out_of_domain: str | None = None,
    drop_nonfinite: bool = False,
    binned_columns: Sequence[str] | None = None,
    n_bins: Mapping[str, int] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    min_count: int = 80,
    n_calibration_bins: int = 15,
    calibration_strategy: str = "uniform",
    floor_draws: int = 200,
    seed: int = 0,
) -> ValidationResult:
    """Validate a selection function on a repeated-injection test set (paper section 4.1).

    Parameters
    ----------
    sf : SelectionFunction, object with ``predict(table)`` and ``input_names``, or callable
        The network.  It is evaluated with ``sf.predict`` on the columns named by its
        ``input_names``.  A plain callable (e.g. the analytic
        :class:`~jaxcomp.selection.synthetic.LogisticSelection`) needs ``input_names``
        and is called as ``sf(*columns)``; see :class:`CallableSelection`.
    p_true_table : table
        Output of :func:`p_true_table`: one row per test cluster with the input
        columns, ``n_repeats``, ``n_detected`` and ``p_true``.
    input_names : sequence of str, optional
        Only for a plain callable: the columns it takes.
    name : str, optional
        Label (default: the network kind).
    kind : {"physical", "photometric", "custom"}, optional
        Which paper reference applies.  Default, from the input names: all ``mag_*``
        gives ``"photometric"``; ``log_mass, log_age, av`` (possibly with more, e.g.
        ``r_eff_pc``) gives ``"physical"``; anything else ``"custom"`` (no reference).
    out_of_domain : {"clip", "nan", "error"}, optional
        Domain policy passed to ``sf.predict`` (default: the artefact's own).
    drop_nonfinite : bool
        Drop test clusters with NaN/inf inputs (e.g. a magnitude of a band without
        light) instead of raising; the number is recorded in ``n_dropped``.
    binned_columns : sequence of str, optional
        Columns for the binned comparisons (default: ``log_mass``, ``log_age`` and
        ``mag_<band>`` for the five LEGUS bands, those present in the table).
    n_bins : mapping, optional
        Bins per column (default 35 for log mass / log age and other columns, 60 for
        magnitudes, as in the paper).
    ranges : mapping, optional
        ``(lo, hi)`` per column (default: the column's finite range).
    min_count : int
        Bins with fewer test clusters are omitted (paper: 80).
    n_calibration_bins : int
        Probability bins of the reliability curve.
    calibration_strategy : {"uniform", "quantile"}
        Probability binning of the reliability curve.
    floor_draws : int
        Simulated campaigns for :attr:`ValidationResult.binomial_floor`.
    seed : int
        Seed of those simulations.

    Returns
    -------
    ValidationResult

    Raises
    ------
    KeyError
        Missing input, ``p_true``, ``n_repeats`` or ``n_detected`` columns, or a
        requested binned column absent from the table.
    ValueError
        An empty table, inconsistent counts (``n_detected > n_repeats``,
        ``p_true != n_detected / n_repeats``), non-finite inputs (unless
        ``drop_nonfinite``), or non-finite / out-of-range predictions.
    """
    predictor = _as_predictor(sf, input_names)
    names = tuple(predictor.input_names)
    df = _to_pandas(p_true_table, "p_true table")
    _require(df, ["n_repeats", "n_detected", "p_true"], "p_true table (make it with p_true_table)")
    _require(df, list(names), "p_true table")
    if len(df) == 0:
        raise ValueError("the p_true table is empty")
    n_rep = df["n_repeats"].to_numpy()
    n_det = df["n_detected"].to_numpy()
    p_true = df["p_true"].to_numpy(dtype=np.float64)
    for label, values in (("n_repeats", n_rep), ("n_detected", n_det), ("p_true", p_true)):
        if not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
            raise ValueError(f"column {label!r} has NaN or infinite values")
    n_rep, n_det = n_rep.astype(np.int64), n_det.astype(np.int64)
    if np.any(n_rep < 1) or np.any(n_det < 0) or np.any(n_det > n_rep):
        raise ValueError("need 1 <= n_repeats and 0 <= n_detected <= n_repeats for every cluster")
    if not np.allclose(p_true, n_det / n_rep, rtol=0, atol=1e-9):
        raise ValueError("p_true differs from n_detected / n_repeats; was the table edited?")

    inputs = np.stack([df[c].to_numpy(dtype=np.float64) for c in names], axis=1)
    bad = ~np.all(np.isfinite(inputs), axis=1)
    n_dropped = 0
    if bad.any():
        columns = sorted({names[j] for j in np.nonzero(~np.isfinite(inputs))[1]})
        if not drop_nonfinite:
            raise ValueError(
                f"{int(bad.sum())} test cluster(s) have NaN or infinite values in {columns}; "
                "remove "
                "them or pass drop_nonfinite=True"
            )
        n_dropped = int(bad.sum())
        if n_dropped == len(df):
            raise ValueError(f"every test cluster has non-finite values in {columns}")
        df = df.loc[~bad].reset_index(drop=True)
        n_rep, n_det, p_true = n_rep[~bad], n_det[~bad], p_true[~bad]

    p_hat = _predict(predictor, df, out_of_domain)
    abs_error = np.abs(p_hat - p_true)
    kind = kind or _kind(names)
    if kind not in ("physical", "photometric", "custom"):
        raise ValueError(f"kind must be 'physical', 'photometric' or 'custom', got {kind!r}")

    # per-repeat labels: cluster i has n_det[i] ones and n_rep[i] - n_det[i] zeros, all predicted
    # p_hat[i]
    row_p = np.repeat(p_hat, n_rep)
    row_y = np.arange(n_rep.sum()) - np.repeat(np.cumsum(n_rep) - n_rep, n_rep) < np.repeat(
        n_det, n_rep
    )
    calibration = calibration_report(
        row_p, row_y.astype(np.int8), n_bins=n_calibration_bins, strategy=calibration_strategy
    )

    if binned_columns is None:
        wanted = ("log_mass", "log_age", *_MAGNITUDE_COLUMNS)
        columns = [c for c in wanted if c in df.columns]
        skipped = tuple(c for c in wanted if c not in df.columns)
    else:
        columns = list(binned_columns)
        _require(df, columns, "p_true table (binned_columns)")
        skipped = ()
    binned = {}
    for column in columns:
        binned[column] = binned_comparison(
            df[column].to_numpy(dtype=np.float64),
            p_true,
            p_hat,
            n_bins=int((n_bins or {}).get(column, _default_n_bins(column))),
            range=(ranges or {}).get(column),
            min_count=min_count,
            column=column,
        )

    id_name = (
        p_true_table.meta.get("id_columns", ["cluster_id"])[0]
        if hasattr(p_true_table, "meta") and p_true_table.meta
        else "cluster_id"
    )
    cluster_id = df[id_name].to_numpy() if id_name in df.columns else np.arange(len(df))
    return ValidationResult(
        name=name or getattr(predictor, "name", None) or kind,
        kind=kind,
        input_names=names,
        cluster_id=cluster_id,
        p_hat=p_hat,
        p_true=p_true,
        n_repeats=n_rep,
        abs_error=abs_error,
        percentiles=_percentile_dict(abs_error),
        binomial_floor=binomial_floor(p_hat, n_rep, n_draws=floor_draws, seed=seed),
        reference={k: dict(v) for k, v in PAPER_PERCENTILES.items()},
        calibration=calibration,
        binned=binned,
        min_count=int(min_count),
        n_dropped=n_dropped,
        skipped_columns=skipped,
    )
