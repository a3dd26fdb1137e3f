"""Validation of selection functions against repeated artificial cluster tests.

This module implements the validation of the C-4 paper (Tang et al. 2026,
section 4.1) and the completeness maps of its sections 4.2-4.3:

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
* Figures: :func:`plot_binned_comparison`, :func:`plot_z_hexbin` (Fig. 6, in
  ``z = atanh(2p - 1)``), :func:`plot_error_cdf` (Fig. 7),
  :func:`plot_validation_reliability`.
* Completeness maps: :func:`binned_completeness` (AST completeness in 2-D bins,
  Fig. 8 left), :func:`network_map` (the network on a fine grid at fixed or
  averaged A_V, Fig. 8 right), :func:`compare_completeness_maps` and
  :func:`plot_completeness_maps` (the two side by side in A_V slices), and
  :func:`plot_network_vs_magnitude_limit` (Fig. 9: the network at A_V = 0 with the
  loci where a fully sampled SSP reaches given V magnitudes,
  :func:`ssp_magnitude_function`, :func:`magnitude_limit_locus`).
* :func:`dominant_loss_step` and :func:`plot_dominant_loss_step` - which pipeline
  step (detection, error cut, CI cut, n-band cut, M_V cut) removes most of the
  lost clusters in each region of (log T, log M).

Everything except the figure functions is pure (tables in, arrays and frozen
dataclasses out); figures are written atomically with
:func:`jaxcomp._io.atomic_savefig`.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .calibration import CalibrationReport, calibration_report
from .inputs import LEGUS_BANDS, PHYSICAL_INPUTS

__all__ = [
    "PAPER_PERCENTILES",
    "PERCENTILES",
    "PIPELINE_STEPS",
    "DEFAULT_V_LIMITS",
    "NO_LOSS",
    "EMPTY_BIN",
    "CallableSelection",
    "BinnedComparison",
    "ValidationResult",
    "BinnedMap",
    "NetworkMap",
    "LossStepMap",
    "p_true_table",
    "binned_comparison",
    "binomial_floor",
    "validate_selection",
    "z_transform",
    "inverse_z_transform",
    "default_z_eps",
    "binned_completeness",
    "network_map",
    "compare_completeness_maps",
    "ssp_magnitude_function",
    "magnitude_limit_locus",
    "dominant_loss_step",
    "plot_binned_comparison",
    "plot_z_hexbin",
    "plot_error_cdf",
    "plot_validation_reliability",
    "plot_completeness_maps",
    "plot_network_vs_magnitude_limit",
    "plot_dominant_loss_step",
]

#: Percentiles of ``|p_hat - p_true|`` reported (paper section 4.1.2).
PERCENTILES: tuple[int, ...] = (50, 90, 95)

#: The paper's 50th/90th/95th percentiles of ``|p_hat - p_true|`` on its test set of
#: 5000 clusters x 100 repeats (Tang et al. 2026, section 4.1.2), for display.
PAPER_PERCENTILES: dict[str, dict[str, float]] = {
    "physical": {"p50": 0.007, "p90": 0.200, "p95": 0.356},
    "photometric": {"p50": 0.006, "p90": 0.177, "p95": 0.321},
}

#: The catalogue pipeline's steps, in order (the flag columns of a campaign's labels;
#: kept equal to :data:`jaxcomp.ast.pipeline.STAGES`, which a test checks).  The flag of
#: step k on an injected cluster means "reached step k": it passed steps 0..k.
PIPELINE_STEPS: tuple[str, ...] = ("detected", "passes_err", "passes_ci", "passes_nband", "passes_mv")

#: Default V-band (F555W) limits drawn by :func:`plot_network_vs_magnitude_limit`:
#: the catalogue's M_V <= -6 cut at the NGC 628 distance modulus 29.98 (m_V = 23.98), and
#: the 50% recovery magnitude of the Adamo+2017 single-band tests in NGC628C (25.58).
DEFAULT_V_LIMITS: dict[str, float] = {
    "M_V = -6 catalogue cut (m_V = 23.98)": 23.98,
    "F555W 50% single-band recovery, Adamo+17 (25.58)": 25.58,
}

#: Value of :attr:`LossStepMap.dominant` in a bin where no injected cluster was lost.
NO_LOSS: int = -1
#: Value of :attr:`LossStepMap.dominant` in a bin with no injected cluster.
EMPTY_BIN: int = -2

#: Columns of a labels table that vary between the repeats of one injected cluster.
_PER_INJECTION = frozenset({"frame", "repeat", "x", "y", "x_meas", "y_meas", "sep_px", "ci_meas", "design",
                            *PIPELINE_STEPS})
_OUTPUT = ("n_repeats", "n_detected", "p_true")
_PHYSICAL_NAMES = tuple(spec.name for spec in PHYSICAL_INPUTS)
_MAGNITUDE_COLUMNS = tuple(f"mag_{band}" for band in LEGUS_BANDS)


# ======================================================================================
# small helpers


def _to_pandas(table, what: str = "table"):
    """An astropy Table, pandas DataFrame, structured array or mapping as a DataFrame."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True)
    if hasattr(table, "to_pandas") and hasattr(table, "colnames"):
        return table.to_pandas().reset_index(drop=True)
    if getattr(getattr(table, "dtype", None), "names", None):
        return pd.DataFrame.from_records(table)
    if isinstance(table, Mapping):
        return pd.DataFrame({str(k): np.asarray(v) for k, v in table.items()})
    raise TypeError(f"{what} must be an astropy Table, pandas DataFrame, structured array or mapping of "
                    f"columns, got {type(table).__name__}")


def _require(df, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"the {what} lacks column(s) {missing}; it has {sorted(map(str, df.columns))}")


def _binary(values, name: str) -> np.ndarray:
    """0/1 (or boolean) column as int64; NaN or other values are errors."""
    raw = np.asarray(values)
    if raw.dtype == bool:
        return raw.astype(np.int64)
    try:
        numeric = raw.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"column {name!r} must hold 0/1 or booleans ({error})") from error
    if np.isnan(numeric).any():
        raise ValueError(f"column {name!r} has {int(np.isnan(numeric).sum())} NaN value(s); every injection "
                         "needs a 0/1 outcome")
    bad = ~np.isin(numeric, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"column {name!r} must hold only 0 and 1 (or booleans); found {np.unique(numeric[bad])[:5]}")
    return numeric.astype(np.int64)


def _percentile_dict(values: np.ndarray, qs: Sequence[int] = PERCENTILES) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in qs}


def default_min_count(n_test_clusters: int) -> int:
    """The paper's "omit bins with fewer than 80 of 5000 test clusters", scaled to ``n_test_clusters`` (>= 10)."""
    return max(10, int(round(80 * n_test_clusters / 5000)))


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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


# ======================================================================================
# predictors: a SelectionFunction, or a plain callable with named inputs


@dataclass(frozen=True)
class CallableSelection:
    """Wrap a plain function of named columns so it can be validated like a network.

    Parameters
    ----------
    function : callable
        Called as ``function(*columns)`` with one float64 array per name of
        ``input_names`` (in that order); must return probabilities in [0, 1] of the
        same length.  :class:`jaxcomp.selection.synthetic.LogisticSelection` is such a
        function of ``("log_mass", "log_age", "av")``.
    input_names : tuple of str
        Column names the function takes, in order.
    name : str
        Label used in reports and figures.

    Examples
    --------
    >>> from jaxcomp.selection.synthetic import LogisticSelection
    >>> truth = CallableSelection(LogisticSelection(), ("log_mass", "log_age", "av"), "truth")
    """

    function: Callable
    input_names: tuple[str, ...] = _PHYSICAL_NAMES
    name: str = "callable"

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"function must be callable, got {type(self.function).__name__}")
        names = tuple(str(n) for n in self.input_names)
        if not names:
            raise ValueError("input_names must name at least one column")
        object.__setattr__(self, "input_names", names)

    def predict(self, data, *, out_of_domain: str | None = None) -> np.ndarray:  # noqa: ARG002 - same API
        """Probabilities for a table holding the named columns."""
        from .function import columns_to_array

        values = columns_to_array(data, self.input_names)
        p = np.asarray(self.function(*values.T), dtype=np.float64).reshape(-1)
        if p.shape[0] != values.shape[0]:
            raise ValueError(f"{self.name}: the function returned {p.shape[0]} values for {values.shape[0]} rows")
        return p


def _as_predictor(sf, input_names: Sequence[str] | None):
    """A SelectionFunction / object with ``predict`` and ``input_names``, or a wrapped callable."""
    if hasattr(sf, "predict") and hasattr(sf, "input_names"):
        if input_names is not None and tuple(input_names) != tuple(sf.input_names):
            raise ValueError(f"input_names {tuple(input_names)} differ from the selection function's "
                             f"{tuple(sf.input_names)}; omit input_names for a SelectionFunction")
        return sf
    if callable(sf):
        if input_names is None:
            raise ValueError("a plain callable needs input_names (the columns it takes, in order), or wrap it "
                             "in CallableSelection")
        return CallableSelection(sf, tuple(input_names), getattr(sf, "__name__", type(sf).__name__))
    raise TypeError(f"expected a SelectionFunction, an object with predict() and input_names, or a callable; "
                    f"got {type(sf).__name__}")


def _predict(predictor, data, out_of_domain: str | None) -> np.ndarray:
    kwargs = {} if out_of_domain is None else {"out_of_domain": out_of_domain}
    p = np.asarray(predictor.predict(data, **kwargs), dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(p)):
        raise ValueError(f"the selection function returned {int((~np.isfinite(p)).sum())} non-finite "
                         "probabilities (inputs outside its domain under the 'nan' policy?); pass "
                         "out_of_domain='clip' or restrict the test clusters")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("the selection function returned probabilities outside [0, 1]")
    return p


def _kind(input_names: Sequence[str]) -> str:
    names = tuple(input_names)
    if names and all(n.startswith("mag_") for n in names):
        return "photometric"
    if set(_PHYSICAL_NAMES) <= set(names):
        return "physical"
    return "custom"


# ======================================================================================
# 1. p_true from a repeated (test-design) campaign


def p_true_table(labels, id_column: str | Sequence[str] = "cluster_id", label_column: str = "C", *,
                 min_repeats: int = 2):
    """One row per re-injected test cluster with its measured recovery probability.

    Implements paper eq. 10, ``p_true = (1/N_rep) sum_n C_n``, on the labels of a
    test-design campaign (:class:`jaxcomp.ast.campaign.CampaignConfig` with
    ``design="test"``), in which each library cluster is injected in
    ``frames_per_reff`` frames with new positions and shot noise.

    Parameters
    ----------
    labels : astropy.table.Table, pandas.DataFrame or mapping
        Per-injection labels: the id column(s), the binary label (``C``: 1 if the
        injected cluster is in the final catalogue) and the cluster's properties
        (``log_mass, log_age, av, r_eff_pc, mag_<band>``, ...), as written by
        :func:`jaxcomp.ast.campaign.run_campaign` or
        :func:`jaxcomp.selection.synthetic.simulate_labels`.
    id_column : str or sequence of str
        Column(s) identifying one injected cluster (default ``"cluster_id"``; a
        campaign never gives two radii the same library cluster, so the id alone
        suffices; pass ``("cluster_id", "r_eff_pc")`` for concatenated campaigns).
    label_column : str
        The binary recovery label (default ``"C"``).
    min_repeats : int
        Fewest injections a cluster may have (default 2); a table where a cluster
        appears fewer times is refused.

    Returns
    -------
    astropy.table.Table
        Sorted by id, with the id column(s); every per-cluster column of ``labels``
        (all columns except the per-injection ones: ``frame, repeat, x, y``, the step
        flags, ``*_meas``, ``sep_px``, ``design`` and the label), taken from the
        cluster's first repeat (smallest ``repeat``, then ``frame``, else first row);
        ``n_repeats`` (injections), ``n_detected`` (injections with label 1, i.e.
        recovered into the final catalogue; not the ``detected`` step flag) and
        ``p_true = n_detected / n_repeats``.  A carried column whose name collides
        with these three (e.g. the analytic ``p_true`` of
        :func:`~jaxcomp.selection.synthetic.simulate_labels`) is renamed
        ``<name>_input``.  ``meta`` records the columns used and the totals.

    Raises
    ------
    KeyError
        A missing id or label column.
    ValueError
        An empty table; NaN ids or labels, or labels other than 0/1; clusters with
        fewer than ``min_repeats`` injections (e.g. a training-design campaign, in
        which no cluster is used twice); a cluster whose physical inputs or
        magnitudes differ between its repeats (the id does not identify one cluster).
    """
    from astropy.table import Table

    df = _to_pandas(labels, "labels")
    ids = (id_column,) if isinstance(id_column, str) else tuple(id_column)
    if not ids:
        raise ValueError("id_column must name at least one column")
    _require(df, [*ids, label_column], "labels table")
    if len(df) == 0:
        raise ValueError("the labels table is empty")
    if isinstance(min_repeats, bool) or int(min_repeats) < 1:
        raise ValueError(f"min_repeats must be a positive integer, got {min_repeats!r}")
    for name in ids:
        column = df[name]
        if column.isna().any():
            raise ValueError(f"id column {name!r} has {int(column.isna().sum())} missing value(s)")
    y = _binary(df[label_column].to_numpy(), label_column)

    # order: group, then repeat, then frame, then row  -> the first row of a group is its first repeat
    keys = [np.arange(len(df))]
    for name in ("frame", "repeat"):
        if name in df.columns and name not in ids:
            keys.append(df[name].to_numpy())
    group_codes = []
    for name in reversed(ids):
        group_codes.append(np.unique(df[name].to_numpy(), return_inverse=True)[1].reshape(-1))
    keys.extend(group_codes)
    order = np.lexsort(keys)
    df = df.iloc[order].reset_index(drop=True)
    y = y[order]
    group_matrix = np.stack([np.unique(df[name].to_numpy(), return_inverse=True)[1].reshape(-1) for name in ids], 1)
    new_group = np.ones(len(df), bool)
    new_group[1:] = np.any(group_matrix[1:] != group_matrix[:-1], axis=1)
    starts = np.flatnonzero(new_group)
    group = np.cumsum(new_group) - 1
    n_repeats = np.diff(np.append(starts, len(df)))
    n_detected = np.bincount(group, weights=y, minlength=starts.size).astype(np.int64)

    few = n_repeats < int(min_repeats)
    if few.any():
        if np.all(n_repeats == 1):
            design = f" (design column: {sorted(set(map(str, df['design'])))})" if "design" in df.columns else ""
            raise ValueError(
                f"every cluster of the {len(df)}-row labels table was injected once{design}: this looks like a "
                "training-design campaign, which has no repeats; p_true needs a test-design campaign "
                "(CampaignConfig(design='test'), each cluster re-injected frames_per_reff times)")
        raise ValueError(f"{int(few.sum())} of {starts.size} clusters have fewer than {min_repeats} injections "
                         f"(smallest: {int(n_repeats.min())}); pass min_repeats to accept them")

    carried = [c for c in df.columns
               if c not in ids and c != label_column and c not in _PER_INJECTION
               and not str(c).endswith("_meas") and not str(c).startswith("magerr_")]
    identity = [c for c in carried if c in (*_PHYSICAL_NAMES, "r_eff_pc", *_MAGNITUDE_COLUMNS)]
    varying = []
    for name in identity:
        values = df[name].to_numpy()
        first = values[starts][group]
        try:
            same = (values == first) | (np.isnan(values.astype(float)) & np.isnan(first.astype(float)))
        except (TypeError, ValueError):
            same = values == first
        if not np.all(same):
            varying.append(name)
    if varying:
        raise ValueError(
            f"column(s) {varying} differ between rows with the same {list(ids)}: the id does not identify one "
            "injected cluster (concatenated campaigns? pass id_column=('cluster_id', 'r_eff_pc') or a unique id)")

    out = Table()
    for name in ids:
        out[name] = df[name].to_numpy()[starts]
    for name in carried:
        target = f"{name}_input" if name in _OUTPUT else name
        out[target] = df[name].to_numpy()[starts]
    out["n_repeats"] = n_repeats.astype(np.int64)
    out["n_detected"] = n_detected
    out["p_true"] = n_detected / n_repeats
    out.meta.update({
        "id_columns": list(ids),
        "label_column": label_column,
        "n_clusters": int(starts.size),
        "n_injections": int(len(df)),
        "p_true_definition": "fraction of a cluster's repeated injections recovered (label = 1); Tang+2026 eq. 10",
    })
    source_meta = getattr(labels, "meta", None) or {}
    for key in ("campaign", "config_hash"):
        if key in source_meta:
            out.meta[key] = source_meta[key]
    return out


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
        return _json_safe({
            "column": self.column, "edges": self.edges, "counts": self.counts, "kept": self.kept,
            "mean_true": self.mean_true, "mean_predicted": self.mean_predicted, "sem_true": self.sem_true,
            "sem_predicted": self.sem_predicted, "min_count": self.min_count, "n_excluded": self.n_excluded,
            "n_kept_bins": int(self.kept.sum()), "max_abs_difference": self.max_abs_difference,
        })


def binned_comparison(values, p_true, p_hat, *, n_bins: int, range: tuple[float, float] | None = None,
                      min_count: int = 80, column: str = "") -> BinnedComparison:
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
        raise ValueError(f"values, p_true and p_hat differ in length: {values.size}, {p_true.size}, {p_hat.size}")
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if int(min_count) < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError(f"column {column or 'values'!r} has no finite value to bin")
    v, t, h = values[finite], p_true[finite], p_hat[finite]
    lo, hi = (float(v.min()), float(v.max())) if range is None else (float(range[0]), float(range[1]))
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
            var = np.maximum(s2 / counts - mean ** 2, 0.0) * counts / np.maximum(counts - 1, 1)
            sem = np.sqrt(var / counts)
        shown = counts >= int(min_count)
        return np.where(shown, mean, np.nan), np.where(shown, sem, np.nan)

    mean_true, sem_true = mean_and_sem(t)
    mean_pred, sem_pred = mean_and_sem(h)
    return BinnedComparison(column=column, edges=edges, counts=counts, mean_true=mean_true,
                            mean_predicted=mean_pred, sem_true=sem_true, sem_predicted=sem_pred,
                            min_count=int(min_count), n_excluded=int((~finite).sum() + (~inside).sum()))


def binomial_floor(p, n_repeats, *, qs: Sequence[int] = PERCENTILES, n_draws: int = 200,
                   seed: int = 0) -> dict[str, float]:
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

        return Table({"cluster_id": self.cluster_id, "n_repeats": self.n_repeats, "p_true": self.p_true,
                      "p_hat": self.p_hat, "abs_error": self.abs_error})

    def summary(self) -> str:
        """One paragraph for logs."""
        p, f = self.percentiles, self.binomial_floor
        ref = self.paper_percentiles
        text = (f"{self.name} network on {self.n_clusters} test clusters ({self.n_injections} injections): "
                f"|p_hat - p_true| 50/90/95th percentiles {p['p50']:.3f} / {p['p90']:.3f} / {p['p95']:.3f} "
                f"(binomial-noise floor {f['p50']:.3f} / {f['p90']:.3f} / {f['p95']:.3f}")
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
            "n_repeats": {"min": int(repeats.min()), "median": float(np.median(repeats)), "max": int(repeats.max())},
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
            record["per_cluster"] = {"cluster_id": self.cluster_id, "n_repeats": self.n_repeats,
                                     "p_true": self.p_true, "p_hat": self.p_hat}
        return _json_safe(record)

    def write_json(self, path, *, per_cluster: bool = False) -> Path:
        """Write :meth:`to_dict` as JSON, atomically."""
        from .._io import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(per_cluster=per_cluster), indent=1) + "\n")


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
            raise ValueError(f"{int(bad.sum())} test cluster(s) have NaN or infinite values in {columns}; remove "
                             "them or pass drop_nonfinite=True")
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

    # per-repeat labels: cluster i has n_det[i] ones and n_rep[i] - n_det[i] zeros, all predicted p_hat[i]
    row_p = np.repeat(p_hat, n_rep)
    row_y = (np.arange(n_rep.sum()) - np.repeat(np.cumsum(n_rep) - n_rep, n_rep) < np.repeat(n_det, n_rep))
    calibration = calibration_report(row_p, row_y.astype(np.int8), n_bins=n_calibration_bins,
                                     strategy=calibration_strategy)

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
            df[column].to_numpy(dtype=np.float64), p_true, p_hat,
            n_bins=int((n_bins or {}).get(column, _default_n_bins(column))),
            range=(ranges or {}).get(column), min_count=min_count, column=column)

    id_name = (p_true_table.meta.get("id_columns", ["cluster_id"])[0]
               if hasattr(p_true_table, "meta") and p_true_table.meta else "cluster_id")
    cluster_id = df[id_name].to_numpy() if id_name in df.columns else np.arange(len(df))
    return ValidationResult(
        name=name or getattr(predictor, "name", None) or kind, kind=kind, input_names=names,
        cluster_id=cluster_id, p_hat=p_hat, p_true=p_true, n_repeats=n_rep, abs_error=abs_error, percentiles=_percentile_dict(abs_error),
        binomial_floor=binomial_floor(p_hat, n_rep, n_draws=floor_draws, seed=seed),
        reference={k: dict(v) for k, v in PAPER_PERCENTILES.items()}, calibration=calibration,
        binned=binned, min_count=int(min_count), n_dropped=n_dropped, skipped_columns=skipped)


# ======================================================================================
# the z = atanh(2p - 1) transform (paper eq. 11)


def default_z_eps(n_repeats) -> float:
    """Default clipping ``eps = 1 / (2 R_max)``: half a recovery out of the most repeats.

    With R = 100 repeats ``eps = 0.005`` and ``|z| <= atanh(0.99) = 2.65``; a cluster
    recovered in none (all) of its repeats lands at ``z = -2.65`` (``+2.65``), just
    beyond the ``z`` of one recovery (one loss) in 100, ``atanh(-0.98) = -2.30``.
    """
    r = int(np.max(np.asarray(n_repeats)))
    if r < 1:
        raise ValueError("n_repeats must be >= 1")
    return 0.5 / r


def z_transform(p, eps: float | None = None) -> np.ndarray:
    """``z = atanh(2p - 1)`` (paper eq. 11), with optional clipping of p.

    Parameters
    ----------
    p : array_like
        Probabilities in [0, 1].
    eps : float, optional
        If given (0 < eps < 0.5), p is first clipped to ``[eps, 1 - eps]`` so that
        p = 0 and 1 map to the finite ``-/+ atanh(1 - 2 eps)``; otherwise they map to
        ``-/+ inf``.

    Returns
    -------
    numpy.ndarray
        z, with the inverse :func:`inverse_z_transform` (exact for p inside the clip).
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be finite and within [0, 1]")
    if eps is not None:
        if not 0.0 < float(eps) < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {eps}")
        p = np.clip(p, float(eps), 1.0 - float(eps))
    with np.errstate(divide="ignore"):
        return np.arctanh(2.0 * p - 1.0)


def inverse_z_transform(z) -> np.ndarray:
    """``p = (1 + tanh z) / 2``, the inverse of :func:`z_transform` (``+/-inf`` -> 1/0)."""
    return 0.5 * (1.0 + np.tanh(np.asarray(z, dtype=np.float64)))


# ======================================================================================
# 4. completeness maps (paper sections 4.2-4.3)


@dataclass(frozen=True, eq=False)
class BinnedMap:
    """AST completeness (mean label) in 2-D bins.

    Arrays are indexed ``[i_x, i_y]``; draw with ``pcolormesh(x_edges, y_edges, completeness.T)``.

    Attributes
    ----------
    x_name, y_name : str
        The binned columns.
    x_edges, y_edges : ndarray
        Bin edges.
    counts : ndarray of int
        Injections per bin.
    n_recovered : ndarray of int
        Injections with label 1 per bin.
    completeness : ndarray
        ``n_recovered / counts`` (NaN in empty bins).
    selection : str
        Description of the rows used (e.g. an A_V slice).
    """

    x_name: str
    y_name: str
    x_edges: np.ndarray
    y_edges: np.ndarray
    counts: np.ndarray
    n_recovered: np.ndarray
    completeness: np.ndarray
    selection: str = "all rows"

    @property
    def standard_error(self) -> np.ndarray:
        """Binomial standard error of each bin's completeness (NaN in empty bins)."""
        c = self.completeness
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(c * (1 - c) / self.counts)


def _xy_edges(x, y, bins, range):
    if isinstance(bins, (int, np.integer)):
        bins = (int(bins), int(bins))
    if range is None:
        range = ((np.nanmin(x), np.nanmax(x)), (np.nanmin(y), np.nanmax(y)))
    edges = []
    for b, r in zip(bins, range):
        edges.append(np.linspace(float(r[0]), float(r[1]), int(b) + 1) if np.ndim(b) == 0 else np.asarray(b, float))
    for e in edges:
        if e.size < 2 or np.any(np.diff(e) <= 0) or not np.all(np.isfinite(e)):
            raise ValueError("bin edges must be finite and increasing (give bins and a range)")
    return edges


def binned_completeness(labels, x: str = "log_age", y: str = "log_mass", bins=30, *,
                        range=None, label_column: str = "C", mask=None, selection: str = "all rows") -> BinnedMap:
    """AST completeness in 2-D bins: recovered fraction of the injections per bin.

    Paper section 4.2 (Fig. 8, left) uses the training campaign in 30 x 30 bins over
    log T in [6, 10] and log M in [2, 7]; the result depends on the campaign's
    A_V distribution, so compare it with a network averaged over the same A_V
    (see :func:`compare_completeness_maps`).

    Parameters
    ----------
    labels : table
        Per-injection labels with columns ``x``, ``y`` and ``label_column``.
    x, y : str
        Columns binned on the horizontal and vertical axes.
    bins : int, (int, int) or (array, array)
        Number of bins per axis, or explicit edges.
    range : ((float, float), (float, float)), optional
        Ranges of x and y (default: the data's); rows outside are ignored.
    label_column : str
        The binary label.
    mask : array of bool, optional
        Rows to use (e.g. an A_V slice).
    selection : str
        Description of ``mask`` stored in the result.

    Returns
    -------
    BinnedMap
    """
    df = _to_pandas(labels, "labels")
    _require(df, [x, y, label_column], "labels table")
    label = _binary(df[label_column].to_numpy(), label_column)
    xv = df[x].to_numpy(dtype=np.float64)
    yv = df[y].to_numpy(dtype=np.float64)
    use = np.isfinite(xv) & np.isfinite(yv)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != use.shape:
            raise ValueError(f"mask has shape {mask.shape}, the table {use.shape}")
        use &= mask
    if not use.any():
        raise ValueError(f"no rows to bin ({selection})")
    x_edges, y_edges = _xy_edges(xv[use], yv[use], bins, range)
    counts, _, _ = np.histogram2d(xv[use], yv[use], [x_edges, y_edges])
    hits, _, _ = np.histogram2d(xv[use], yv[use], [x_edges, y_edges], weights=label[use])
    with np.errstate(invalid="ignore", divide="ignore"):
        completeness = np.where(counts > 0, hits / counts, np.nan)
    return BinnedMap(x, y, x_edges, y_edges, counts.astype(np.int64), hits.astype(np.int64), completeness,
                     selection)


@dataclass(frozen=True, eq=False)
class NetworkMap:
    """A selection function evaluated on a regular 2-D grid.

    Attributes
    ----------
    x_name, y_name : str
        Grid axes.
    x, y : ndarray
        Grid points.
    p : ndarray, shape (x.size, y.size)
        Probability at each grid point (averaged over ``averaged`` if any).
    fixed : dict
        Inputs held fixed.
    averaged : dict
        Inputs averaged over, ``{name: [values...]}`` (a uniform prior on a grid,
        paper eq. 15).
    """

    x_name: str
    y_name: str
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    fixed: dict
    averaged: dict

    def describe(self) -> str:
        """Short text for titles."""
        parts = [f"{k} = {v:g}" for k, v in self.fixed.items()]
        parts += [f"{k} averaged over [{min(v):g}, {max(v):g}]" for k, v in self.averaged.items()]
        return ", ".join(parts)


def network_map(sf, x_grid=None, y_grid=None, *, x: str = "log_age", y: str = "log_mass",
                fixed: Mapping[str, float] | None = None, average: Mapping[str, Sequence[float]] | None = None,
                input_names: Sequence[str] | None = None, out_of_domain: str | None = "clip") -> NetworkMap:
    """Evaluate a selection function on a fine (x, y) grid at fixed (or averaged) other inputs.

    Parameters
    ----------
    sf : SelectionFunction or callable
        As in :func:`validate_selection`.
    x_grid, y_grid : array_like, optional
        Grid points (default: 200 points over the paper's Fig. 8 ranges, log T in
        [6, 10] and log M in [2, 7], when x and y are ``log_age`` and ``log_mass``).
    x, y : str
        Input names of the two axes.
    fixed : mapping, optional
        Values of the other inputs (default ``{"av": 0.0}`` when ``av`` is an input not
        on an axis nor averaged).
    average : mapping of name to values, optional
        Inputs averaged over these values with equal weight (e.g.
        ``{"av": np.linspace(0, 3, 50)}``: the uniform A_V prior of paper eq. 15).
    input_names : sequence of str, optional
        Only for a plain callable.
    out_of_domain : str, optional
        Domain policy for ``sf.predict`` (default ``"clip"``: grid corners outside the
        training domain take the edge value without a warning).

    Returns
    -------
    NetworkMap
    """
    predictor = _as_predictor(sf, input_names)
    names = tuple(predictor.input_names)
    defaults = {"log_age": (6.0, 10.0), "log_mass": (2.0, 7.0)}
    if x_grid is None:
        if x not in defaults:
            raise ValueError(f"give x_grid for {x!r}")
        x_grid = np.linspace(*defaults[x], 200)
    if y_grid is None:
        if y not in defaults:
            raise ValueError(f"give y_grid for {y!r}")
        y_grid = np.linspace(*defaults[y], 200)
    x_grid = np.asarray(x_grid, dtype=np.float64).reshape(-1)
    y_grid = np.asarray(y_grid, dtype=np.float64).reshape(-1)
    average = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in (average or {}).items()}
    fixed = dict(fixed) if fixed is not None else ({"av": 0.0} if "av" in names and x != "av" and y != "av"
                                                    and "av" not in average else {})
    for name in (x, y):
        if name not in names:
            raise ValueError(f"{name!r} is not an input of the selection function {names}")
    given = [x, y, *fixed, *average]
    if len(set(given)) != len(given):
        raise ValueError(f"an input is given more than once among the axes, fixed and averaged: {given}")
    missing = [n for n in names if n not in given]
    unknown = [n for n in given if n not in names]
    if missing or unknown:
        raise ValueError(f"every input must be an axis, fixed or averaged: missing {missing}, unknown {unknown}")
    axes = [x_grid, y_grid, *average.values()]
    mesh = np.meshgrid(*axes, indexing="ij")
    columns = {x: mesh[0].ravel(), y: mesh[1].ravel()}
    for k, m in zip(average, mesh[2:]):
        columns[k] = m.ravel()
    for k, v in fixed.items():
        columns[k] = np.full(mesh[0].size, float(v))
    p = _predict(predictor, columns, out_of_domain).reshape(mesh[0].shape)
    if average:
        p = p.reshape(x_grid.size, y_grid.size, -1).mean(axis=-1)
    return NetworkMap(x, y, x_grid, y_grid, p, {k: float(v) for k, v in fixed.items()},
                      {k: v.tolist() for k, v in average.items()})


def compare_completeness_maps(labels, sf, *, av_edges: Sequence[float] = (0.0, 3.0), av_column: str = "av",
                              x: str = "log_age", y: str = "log_mass", bins=30,
                              x_range: tuple[float, float] = (6.0, 10.0), y_range: tuple[float, float] = (2.0, 7.0),
                              n_grid: int = 200, n_av: int = 10, label_column: str = "C",
                              input_names: Sequence[str] | None = None) -> list[tuple[BinnedMap, NetworkMap]]:
    """AST completeness and the network, side by side, in slices of A_V (paper Fig. 8).

    For each A_V slice ``[a, b)`` (the last one closed), the AST injections with A_V in
    the slice are binned (:func:`binned_completeness`) and the network is averaged over
    ``n_av`` A_V values uniform in the slice (:func:`network_map`), which matches the
    uniform A_V distribution of the campaign inside the slice.

    Returns
    -------
    list of (BinnedMap, NetworkMap)
        One pair per slice.
    """
    df = _to_pandas(labels, "labels")
    _require(df, [av_column], "labels table")
    av = df[av_column].to_numpy(dtype=np.float64)
    av_edges = np.asarray(av_edges, dtype=np.float64)
    if av_edges.size < 2 or np.any(np.diff(av_edges) <= 0):
        raise ValueError(f"av_edges must be increasing with at least two values, got {av_edges}")
    pairs = []
    for i, (lo, hi) in enumerate(zip(av_edges[:-1], av_edges[1:])):
        last = i == av_edges.size - 2
        mask = (av >= lo) & ((av <= hi) if last else (av < hi))
        text = f"{lo:g} <= A_V {'<=' if last else '<'} {hi:g}"
        binned = binned_completeness(df, x, y, bins, range=(x_range, y_range), label_column=label_column,
                                     mask=mask, selection=text)
        grid = network_map(sf, np.linspace(*x_range, n_grid), np.linspace(*y_range, n_grid), x=x, y=y,
                           fixed={}, average={av_column: np.linspace(lo, hi, n_av)}, input_names=input_names)
        pairs.append((binned, grid))
    return pairs


def ssp_magnitude_function(band: str = "F555W", *, av: float = 0.0, distance_modulus: float | None = None,
                           model=None, n_ages: int = 600, log_age_range: tuple[float, float] = (5.0, 10.2)):
    """Apparent magnitude of a fully sampled cluster, ``mag(log_mass, log_age)``, from the library.

    Uses :meth:`jaxcomp.library.PopulationSynthesis.ssp_magnitudes` (Padova 2007 +
    Chabrier 2005 by default): the fully sampled SSP magnitude per Msun formed,
    tabulated on ``n_ages`` log ages and interpolated linearly, minus
    ``2.5 log_mass``.  Ages outside the isochrone grid (10^5.5 - 10^10.15 yr) take the
    nearest isochrone (the library generator's ``"clamp"`` policy).  Nebular emission
    is not included (see :mod:`jaxcomp.library.synthesis`).

    Parameters
    ----------
    band : str
        Band (default F555W, the LEGUS V band).
    av : float
        Extinction A_V [mag] in [0, 3].
    distance_modulus : float, optional
        Default: NGC 628's 29.98 mag.
    model : PopulationSynthesis, optional
        Reuse a built synthesis model (building one takes about a second).
    n_ages : int
        Tabulation points in log age.
    log_age_range : (float, float)
        Tabulated range; outside it the edge values are used.

    Returns
    -------
    callable
        ``mag_v(log_mass, log_age)`` (numpy, broadcasting) in Vega mag.
    """
    from ..library import NGC628_DISTANCE_MODULUS, PopulationSynthesis

    model = model if model is not None else PopulationSynthesis()
    if band not in model.bands:
        raise ValueError(f"band {band!r} is not one of the model's {model.bands}")
    dm = NGC628_DISTANCE_MODULUS if distance_modulus is None else float(distance_modulus)
    ages = np.linspace(*log_age_range, int(n_ages))
    table = model.ssp_magnitudes(ages, float(av), distance_modulus=dm, age_out_of_range="clamp")
    per_msun = table[:, model.bands.index(band)]

    def mag(log_mass, log_age):
        """Apparent Vega magnitude of a fully sampled cluster of given log mass and log age."""
        log_mass, log_age = np.broadcast_arrays(np.asarray(log_mass, float), np.asarray(log_age, float))
        return np.interp(log_age, ages, per_msun) - 2.5 * log_mass

    mag.band, mag.av, mag.distance_modulus = band, float(av), dm
    return mag


def magnitude_limit_locus(mag_fn: Callable, limit: float, log_age, *,
                          log_mass_range: tuple[float, float] = (0.0, 10.0), n_mass: int = 2001) -> np.ndarray:
    """log mass at which ``mag_fn(log_mass, log_age)`` equals ``limit``, per log age.

    The magnitude is evaluated on ``n_mass`` log masses at each age and the first
    crossing from fainter to brighter than ``limit`` is interpolated linearly; ages
    without a crossing in ``log_mass_range`` give NaN.  For a fully sampled SSP the
    locus is exactly ``(m_1Msun(T) - limit) / 2.5``; this works for any callable.

    Returns
    -------
    numpy.ndarray
        log mass of the locus at each ``log_age``.
    """
    log_age = np.asarray(log_age, dtype=np.float64).reshape(-1)
    masses = np.linspace(*log_mass_range, int(n_mass))
    grid_m, grid_t = np.meshgrid(masses, log_age, indexing="ij")
    mags = np.asarray(mag_fn(grid_m, grid_t), dtype=np.float64).reshape(grid_m.shape)
    brighter = mags <= limit
    out = np.full(log_age.size, np.nan)
    for j in range(log_age.size):
        cross = np.flatnonzero(~brighter[:-1, j] & brighter[1:, j])
        if cross.size:
            i = int(cross[0])
            m0, m1 = mags[i, j], mags[i + 1, j]
            w = (m0 - limit) / (m0 - m1) if m0 != m1 else 0.0
            out[j] = masses[i] + w * (masses[i + 1] - masses[i])
    return out


# ======================================================================================
# 5. which step removes most clusters


@dataclass(frozen=True, eq=False)
class LossStepMap:
    """The first failing pipeline step of lost injections, per 2-D bin.

    Arrays are indexed ``[i_x, i_y]`` (``step_counts`` has a leading step axis).

    Attributes
    ----------
    x_name, y_name : str
        Binned columns.
    x_edges, y_edges : ndarray
        Bin edges.
    steps : tuple of str
        Step flag columns, in pipeline order.
    counts : ndarray of int
        Injections per bin.
    n_lost : ndarray of int
        Injections not recovered (label 0) per bin.
    step_counts : ndarray of int, shape (n_steps, n_x, n_y)
        Lost injections whose first failing step is each step.
    dominant : ndarray of int
        Index into ``steps`` of the most frequent first failing step (ties go to the
        earlier step), :data:`NO_LOSS` (-1) where nothing was lost and
        :data:`EMPTY_BIN` (-2) where nothing was injected.
    """

    x_name: str
    y_name: str
    x_edges: np.ndarray
    y_edges: np.ndarray
    steps: tuple[str, ...]
    counts: np.ndarray
    n_lost: np.ndarray
    step_counts: np.ndarray
    dominant: np.ndarray

    @property
    def dominant_fraction(self) -> np.ndarray:
        """Share of the lost injections removed by the dominant step (NaN without losses)."""
        top = self.step_counts.max(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_lost > 0, top / self.n_lost, np.nan)

    def dominant_names(self) -> np.ndarray:
        """``dominant`` as names: the step, ``"none lost"`` or ``""`` (empty bin)."""
        names = np.array([*self.steps, "none lost", ""], dtype=object)
        return names[np.where(self.dominant >= 0, self.dominant,
                              np.where(self.dominant == NO_LOSS, len(self.steps), len(self.steps) + 1))]

    def totals(self) -> dict[str, int]:
        """Lost injections per first failing step over the whole map."""
        return {s: int(c) for s, c in zip(self.steps, self.step_counts.sum(axis=(1, 2)))}


def dominant_loss_step(labels, bins=30, *, x: str = "log_age", y: str = "log_mass", range=None,
                       steps: Sequence[str] = PIPELINE_STEPS, label_column: str = "C") -> LossStepMap:
    """Which pipeline step removes most of the lost clusters, in each (x, y) bin.

    The step flags of a campaign's labels are cumulative: the flag of step k is True
    if the list of sources that passed steps 0..k gained a source at the injected
    position (see :func:`jaxcomp.ast.pipeline.match_injected`).  For each lost
    injection (label 0), the *first failing step* is the first step whose flag is
    False; this function counts, per bin, the lost injections attributed to each
    step and reports the most frequent one.

    Parameters
    ----------
    labels : table
        Per-injection labels (training or test campaign) with ``x``, ``y``, the
        label and the step flag columns.
    bins : int, (int, int) or (array, array)
        Bins per axis or edges.
    x, y : str
        Binned columns (default log age horizontally, log mass vertically).
    range : ((float, float), (float, float)), optional
        Ranges of x and y.
    steps : sequence of str
        Step flag columns in pipeline order (default :data:`PIPELINE_STEPS`).
    label_column : str
        The binary label.

    Returns
    -------
    LossStepMap

    Raises
    ------
    KeyError
        Missing columns.
    ValueError
        Flags or labels that are NaN or not 0/1, or a lost injection (label 0) whose
        flags are all True (no step failed: the table is inconsistent).
    """
    df = _to_pandas(labels, "labels")
    steps = tuple(steps)
    if not steps:
        raise ValueError("steps must name at least one flag column")
    _require(df, [x, y, label_column, *steps], "labels table")
    label = _binary(df[label_column].to_numpy(), label_column)
    flags = np.stack([_binary(df[s].to_numpy(), s) for s in steps], axis=1).astype(bool)
    xv = df[x].to_numpy(dtype=np.float64)
    yv = df[y].to_numpy(dtype=np.float64)
    lost = label == 0
    inconsistent = lost & flags.all(axis=1)
    if inconsistent.any():
        raise ValueError(f"{int(inconsistent.sum())} injection(s) have {label_column} = 0 but pass every step "
                         f"{list(steps)}; the flags and the label disagree")
    first_fail = np.argmax(~flags, axis=1)  # first False; meaningful for lost rows
    use = np.isfinite(xv) & np.isfinite(yv)
    if not use.any():
        raise ValueError(f"no finite ({x}, {y}) values to bin")
    x_edges, y_edges = _xy_edges(xv[use], yv[use], bins, range)
    counts, _, _ = np.histogram2d(xv[use], yv[use], [x_edges, y_edges])
    n_lost, _, _ = np.histogram2d(xv[use & lost], yv[use & lost], [x_edges, y_edges])
    step_counts = np.zeros((len(steps), x_edges.size - 1, y_edges.size - 1), dtype=np.int64)
    for k in np.arange(len(steps)):
        rows = use & lost & (first_fail == k)
        step_counts[k] = np.histogram2d(xv[rows], yv[rows], [x_edges, y_edges])[0].astype(np.int64)
    dominant = np.argmax(step_counts, axis=0)  # ties -> earliest step
    dominant = np.where(n_lost > 0, dominant, np.where(counts > 0, NO_LOSS, EMPTY_BIN)).astype(np.int64)
    return LossStepMap(x, y, x_edges, y_edges, steps, counts.astype(np.int64), n_lost.astype(np.int64),
                       step_counts, dominant)


# ======================================================================================
# 3. figures

_AXIS_LABELS = {"log_mass": "log mass [Msun]", "log_age": "log age [yr]", "av": "A_V [mag]",
                **{f"mag_{b}": f"{b} [Vega mag]" for b in LEGUS_BANDS}}
_KIND_COLOURS = {"physical": "C0", "photometric": "C1"}


def _named_results(results) -> list[tuple[str, ValidationResult]]:
    if isinstance(results, ValidationResult):
        return [(results.name, results)]
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    else:
        items = [(r.name, r) for r in results]
    if not items:
        raise ValueError("no validation results to plot")
    for label, result in items:
        if not isinstance(result, ValidationResult):
            raise TypeError(f"{label!r} is a {type(result).__name__}, not a ValidationResult")
    return items


def _colours(items: Sequence[tuple[str, ValidationResult]]) -> list[str]:
    """Physical blue and photometric orange (as in the paper) for the first of each kind, then C2, C3..."""
    used, out, spare = set(), [], iter(f"C{k}" for k in range(2, 10))
    for _, result in items:
        colour = _KIND_COLOURS.get(result.kind)
        if colour is None or colour in used:
            colour = next(spare, "0.3")
        used.add(colour)
        out.append(colour)
    return out


def plot_binned_comparison(results, path, *, columns: Sequence[str] | None = None, title: str = "") -> Path:
    """Mean p_true (black) and mean p_hat of each network per bin (paper Figs. 3-5).

    Parameters
    ----------
    results : ValidationResult, sequence or mapping of label to ValidationResult
        One or several networks validated on the same test table (e.g. physical and
        photometric); ``p_true`` is drawn from the first.
    path : path
        Output image (format from the suffix).
    columns : sequence of str, optional
        Binned columns to draw (default: every column of the first result).
    title : str
        Figure title.

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    from .._io import atomic_savefig

    items = _named_results(results)
    first = items[0][1]
    columns = list(columns) if columns is not None else list(first.binned)
    if not columns:
        raise ValueError("no binned comparisons to draw")
    n = len(columns)
    ncols = 2 if n > 1 else 1
    nrows = -(-n // ncols)
    figure, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.0 * nrows), squeeze=False)
    for axis, column in zip(axes.ravel(), columns):
        if column not in first.binned:
            raise KeyError(f"no binned comparison for {column!r}; have {list(first.binned)}")
        reference = first.binned[column]
        keep = reference.kept
        axis.errorbar(reference.centres[keep], reference.mean_true[keep], reference.sem_true[keep], fmt="o",
                      color="k", ms=3.5, lw=0.8, label="p_true (measured)", zorder=3)
        for colour, (label, result) in zip(_colours(items), items):
            comparison = result.binned.get(column)
            if comparison is None:
                continue
            k = comparison.kept
            axis.plot(comparison.centres[k], comparison.mean_predicted[k], "o", ms=3, color=colour,
                      label=f"p_hat {label}", zorder=4, alpha=0.85)
        axis.set_xlabel(_AXIS_LABELS.get(column, column))
        axis.set_ylabel("mean completeness")
        axis.set_ylim(-0.03, 1.03)
        omitted = int((~keep & (reference.counts > 0)).sum())
        axis.set_title(f"{column}: {int(keep.sum())} bins shown, {omitted} with < {reference.min_count} "
                       "clusters omitted", fontsize=8)
    for axis in axes.ravel()[n:]:
        axis.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="best")
    figure.suptitle(title or f"binned comparison on {first.n_clusters} test clusters "
                             f"({first.n_injections} injections)", fontsize=10)
    figure.tight_layout()
    return atomic_savefig(figure, path)


def plot_z_hexbin(result: ValidationResult, path, *, eps: float | None = None, extremes: str = "clip",
                  gridsize: int = 40, mincnt: int = 30, title: str = "") -> Path:
    """Hexbin of z(p_true) against z(p_hat), ``z = atanh(2p - 1)`` (paper Fig. 6).

    Parameters
    ----------
    result : ValidationResult
    path : path
        Output image.
    eps : float, optional
        Clipping of p before the transform (``extremes="clip"``): both p_true and p_hat
        are clipped to ``[eps, 1 - eps]``, so clusters recovered in none or all of their
        repeats (p_true = 0 or 1, z = -/+ inf) are drawn on the edge lines
        ``z = -/+ atanh(1 - 2 eps)`` (dashed).  Default :func:`default_z_eps`:
        ``1 / (2 R)`` for R repeats (0.005, |z| <= 2.65 for R = 100).
    extremes : {"clip", "omit"}
        ``"omit"`` drops clusters with p_true or p_hat exactly 0 or 1, as the paper does
        (no clipping then).
    gridsize : int
        Hexagons across the x axis.
    mincnt : int
        Hexagons with fewer clusters are not drawn (paper: 30).
    title : str
        Axes title.

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    from .._io import atomic_savefig

    if extremes not in ("clip", "omit"):
        raise ValueError(f"extremes must be 'clip' or 'omit', got {extremes!r}")
    p_true, p_hat = result.p_true, result.p_hat
    if extremes == "omit":
        keep = (p_true > 0) & (p_true < 1) & (p_hat > 0) & (p_hat < 1)
        if not keep.any():
            raise ValueError("every cluster has p_true or p_hat exactly 0 or 1; use extremes='clip'")
        z_true, z_hat = z_transform(p_true[keep]), z_transform(p_hat[keep])
        edge = None
        note = f"{int((~keep).sum())} clusters with p = 0 or 1 omitted"
    else:
        eps = default_z_eps(result.n_repeats) if eps is None else float(eps)
        z_true, z_hat = z_transform(p_true, eps), z_transform(p_hat, eps)
        edge = float(np.arctanh(1.0 - 2.0 * eps))
        note = f"p clipped to [{eps:g}, {1 - eps:g}]: p = 0 / 1 on the dashed edges z = -/+{edge:.2f}"
    figure, axis = plt.subplots(figsize=(5.8, 5.2))
    limit = float(max(np.max(np.abs(z_true)), np.max(np.abs(z_hat)))) * 1.05 + 1e-9
    hexes = axis.hexbin(z_hat, z_true, gridsize=int(gridsize), mincnt=int(mincnt), norm=LogNorm(),
                        cmap="viridis", extent=(-limit, limit, -limit, limit))
    figure.colorbar(hexes, ax=axis, label="test clusters per hexagon", pad=0.14)
    axis.plot([-limit, limit], [-limit, limit], ls="--", color="0.25", lw=1.0, label="one-to-one")
    if edge is not None:
        for value in (-edge, edge):
            axis.axhline(value, color="0.5", ls="--", lw=0.7)
            axis.axvline(value, color="0.5", ls="--", lw=0.7)
    axis.set_xlim(-limit, limit)
    axis.set_ylim(-limit, limit)
    axis.set_xlabel("z(p_hat) = atanh(2 p_hat - 1)")
    axis.set_ylabel("z(p_true) = atanh(2 p_true - 1)")
    ticks = [p for p in (0.01, 0.1, 0.5, 0.9, 0.99) if abs(np.arctanh(2 * p - 1)) < limit]

    def forward(p):
        return np.arctanh(np.clip(2 * np.asarray(p, float) - 1, -1 + 1e-12, 1 - 1e-12))

    top = axis.secondary_xaxis("top", functions=(inverse_z_transform, forward))
    right = axis.secondary_yaxis("right", functions=(inverse_z_transform, forward))
    for secondary in (top, right):
        secondary.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        secondary.tick_params(labelsize=7)
    top.set_xlabel("p_hat", fontsize=8)
    right.set_ylabel("p_true", fontsize=8)
    axis.set_title(title or f"{result.name}: {result.n_clusters} test clusters; hexagons with < {mincnt} hidden\n"
                   f"{note}", fontsize=8)
    figure.tight_layout()
    return atomic_savefig(figure, path)


def plot_error_cdf(results, path, *, show_reference: bool = True, show_floor: bool = True,
                   xscale: str = "log", xmin: float = 1e-4, title: str = "") -> Path:
    """Cumulative distribution of ``|p_hat - p_true|`` with percentiles marked (paper Fig. 7).

    Parameters
    ----------
    results : ValidationResult, sequence or mapping of label to ValidationResult
        One curve per network (physical blue, photometric orange, as in the paper).
    path : path
        Output image.
    show_reference : bool
        Mark the paper's 50/90/95th percentiles of the same network kind (open symbols).
    show_floor : bool
        Mark the binomial-noise floor percentiles (crosses).
    xscale : {"log", "linear"}
        x axis scale; on a log axis errors below ``xmin`` are drawn at ``xmin``.
    xmin : float
        Left edge of a log axis.
    title : str
        Axes title.

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    from .._io import atomic_savefig

    items = _named_results(results)
    figure, axis = plt.subplots(figsize=(6.4, 4.6))
    levels = [q / 100 for q in PERCENTILES]
    for level in levels:
        axis.axhline(level, color="0.6", ls="--", lw=0.8)
    markers = {"p50": "o", "p90": "s", "p95": "D"}
    for colour, (label, result) in zip(_colours(items), items):
        errors = np.sort(result.abs_error)
        if xscale == "log":
            errors = np.maximum(errors, xmin)
        fraction = np.arange(1, errors.size + 1) / errors.size
        p = result.percentiles
        axis.step(errors, fraction, where="post", color=colour, lw=1.5,
                  label=f"{label}: {p['p50']:.3f} / {p['p90']:.3f} / {p['p95']:.3f}")
        for key, level in zip(("p50", "p90", "p95"), levels):
            axis.plot(max(p[key], xmin) if xscale == "log" else p[key], level, markers[key], color=colour, ms=5)
            if show_floor:
                f = result.binomial_floor[key]
                axis.plot(max(f, xmin) if xscale == "log" else f, level, "x", color=colour, ms=6, mew=1.2)
    handles, texts = axis.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    if show_floor:
        handles.append(Line2D([], [], ls="", marker="x", color="0.3"))
        texts.append("binomial-noise floor (network = truth)")
    if show_reference:
        reference_colours = {"physical": "k", "photometric": "0.55"}
        for kind in dict.fromkeys(r.kind for _, r in items):  # each kind once, in order of appearance
            reference = PAPER_PERCENTILES.get(kind)
            if not reference:
                continue
            for key, level in zip(("p50", "p90", "p95"), levels):
                axis.plot(reference[key], level, markers[key], mfc="none", mec=reference_colours[kind], ms=9,
                          mew=1.1)
            handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec=reference_colours[kind]))
            texts.append(f"Tang+2026 {kind} network (100 repeats)")
    axis.legend(handles, texts, fontsize=7, loc="lower right", title="50th / 90th / 95th percentiles",
                title_fontsize=7)
    axis.set_xscale(xscale)
    if xscale == "log":
        axis.set_xlim(xmin, 1.0)
    else:
        axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("|p_hat - p_true|")
    axis.set_ylabel("cumulative fraction of test clusters")
    axis.set_title(title or f"{items[0][1].n_clusters} test clusters, median "
                   f"{int(np.median(items[0][1].n_repeats))} repeats", fontsize=9)
    figure.tight_layout()
    return atomic_savefig(figure, path)


def plot_validation_reliability(result: ValidationResult, path, *, title: str = "") -> Path:
    """Reliability diagram of p_hat against the per-repeat labels (see :mod:`.calibration`)."""
    from .calibration import plot_reliability

    return plot_reliability(result.calibration, path, title=title or
                            f"{result.name}: {result.n_injections} test injections")


def plot_completeness_maps(pairs: Sequence[tuple[BinnedMap, NetworkMap]], path, *, min_count: int = 1,
                           contours: Sequence[float] = (0.1, 0.5, 0.9), title: str = "") -> Path:
    """AST binned completeness (left) and the network (right), one row per A_V slice (paper Fig. 8).

    Parameters
    ----------
    pairs : sequence of (BinnedMap, NetworkMap)
        From :func:`compare_completeness_maps` (or built by hand).
    path : path
        Output image.
    min_count : int
        Bins with fewer injections are left blank.
    contours : sequence of float
        Levels of the network contours drawn on both panels (red).
    title : str
        Figure title.

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    from .._io import atomic_savefig

    if not pairs:
        raise ValueError("no maps to draw")
    figure, axes = plt.subplots(len(pairs), 2, figsize=(10.5, 4.0 * len(pairs)), squeeze=False,
                                layout="constrained")
    mesh = None
    for row, (binned, grid) in zip(axes, pairs):
        values = np.where(binned.counts >= min_count, binned.completeness, np.nan)
        mesh = row[0].pcolormesh(binned.x_edges, binned.y_edges, values.T, vmin=0, vmax=1, cmap="viridis",
                                 shading="flat")
        row[0].set_title(f"AST binned ({binned.selection}; {int(binned.counts.sum())} injections)", fontsize=8)
        row[1].pcolormesh(grid.x, grid.y, grid.p.T, vmin=0, vmax=1, cmap="viridis", shading="auto")
        row[1].set_title(f"network ({grid.describe()})", fontsize=8)
        for axis in row:
            if len(contours):
                axis.contour(grid.x, grid.y, grid.p.T, levels=list(contours), colors="r", linewidths=0.8)
            axis.set_xlabel(_AXIS_LABELS.get(binned.x_name, binned.x_name))
            axis.set_ylabel(_AXIS_LABELS.get(binned.y_name, binned.y_name))
            axis.set_xlim(binned.x_edges[0], binned.x_edges[-1])
            axis.set_ylim(binned.y_edges[0], binned.y_edges[-1])
    figure.colorbar(mesh, ax=axes.ravel().tolist(), label="completeness", shrink=0.9)
    if title:
        figure.suptitle(title, fontsize=10)
    return atomic_savefig(figure, path)


def plot_network_vs_magnitude_limit(sf, path, *, mag_v: Callable | None = None,
                                    limits: Mapping[str, float] | None = None, av: float = 0.0,
                                    x_grid=None, y_grid=None, input_names: Sequence[str] | None = None,
                                    contours: Sequence[float] = (0.1, 0.5, 0.9), title: str = "") -> Path:
    """The network at fixed A_V with loci of constant V magnitude (paper Fig. 9).

    Parameters
    ----------
    sf : SelectionFunction or callable
        A physical network (inputs ``log_mass, log_age, av``).
    path : path
        Output image.
    mag_v : callable, optional
        ``mag_v(log_mass, log_age)``: V (F555W) magnitude of a cluster; default
        :func:`ssp_magnitude_function` at the same ``av`` (fully sampled SSP from
        :mod:`jaxcomp.library`, NGC 628 distance).
    limits : mapping of label to magnitude, optional
        Loci drawn where ``mag_v`` equals each magnitude (default
        :data:`DEFAULT_V_LIMITS`: the M_V = -6 cut, m_V = 23.98, and the 50% single-band
        recovery magnitude 25.58 of Adamo+2017; the paper's 90% locus is
        ``adamo17_50pct_magnitudes(level=0.9)["F555W"]``, about 25.04).
    av : float
        A_V at which the network (and default magnitudes) are evaluated (paper: 0).
    x_grid, y_grid : array_like, optional
        log age and log mass grids (default 200 points over [6, 10] x [2, 7]).
    input_names : sequence of str, optional
        Only for a plain callable.
    contours : sequence of float
        Network contour levels (white).
    title : str
        Axes title.

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    from .._io import atomic_savefig

    grid = network_map(sf, x_grid, y_grid, x="log_age", y="log_mass", fixed={"av": float(av)},
                       input_names=input_names)
    mag_v = mag_v if mag_v is not None else ssp_magnitude_function("F555W", av=av)
    limits = dict(DEFAULT_V_LIMITS if limits is None else limits)
    figure, axis = plt.subplots(figsize=(6.6, 5.0))
    mesh = axis.pcolormesh(grid.x, grid.y, grid.p.T, vmin=0, vmax=1, cmap="viridis", shading="auto")
    figure.colorbar(mesh, ax=axis, label=f"p_obs (A_V = {av:g})")
    if len(contours):
        lines = axis.contour(grid.x, grid.y, grid.p.T, levels=list(contours), colors="w", linewidths=0.7)
        axis.clabel(lines, fontsize=6, fmt="%.1f")
    styles = [("r", "-"), ("orange", "--"), ("m", ":"), ("c", "-.")]
    for i, (label, value) in enumerate(limits.items()):
        locus = magnitude_limit_locus(mag_v, float(value), grid.x)
        colour, style = styles[i % len(styles)]
        axis.plot(grid.x, locus, color=colour, ls=style, lw=1.6, label=label)
    axis.set_xlim(grid.x[0], grid.x[-1])
    axis.set_ylim(grid.y[0], grid.y[-1])
    axis.set_xlabel(_AXIS_LABELS["log_age"])
    axis.set_ylabel(_AXIS_LABELS["log_mass"])
    axis.legend(fontsize=7, loc="upper left")
    axis.set_title(title or f"network at A_V = {av:g} and constant-V loci (fully sampled SSP)", fontsize=9)
    figure.tight_layout()
    return atomic_savefig(figure, path)


def plot_dominant_loss_step(loss: LossStepMap, path, *, min_count: int = 1, show_completeness: bool = True,
                            title: str = "") -> Path:
    """Map of the step that removes most lost clusters per bin (categorical colours).

    Parameters
    ----------
    loss : LossStepMap
        From :func:`dominant_loss_step`.
    path : path
        Output image.
    min_count : int
        Bins with fewer injections are left blank.
    show_completeness : bool
        Overlay the 10/50/90% contours of the binned completeness ``1 - n_lost / counts``.
    title : str
        Axes title.

    Returns
    -------
    pathlib.Path
    """
    plt = _pyplot()
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    from .._io import atomic_savefig

    n_steps = len(loss.steps)
    palette = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    colours = [palette[k % len(palette)] for k in range(n_steps)] + ["#e8e8e8"]  # last: no loss
    codes = np.where(loss.dominant >= 0, loss.dominant, np.where(loss.dominant == NO_LOSS, n_steps, -1)).astype(float)
    codes[(loss.counts < max(int(min_count), 1)) | (codes < 0)] = np.nan
    figure, axis = plt.subplots(figsize=(10.2, 5.2))
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-0.5, n_steps + 1.5), cmap.N)
    axis.pcolormesh(loss.x_edges, loss.y_edges, codes.T, cmap=cmap, norm=norm, shading="flat")
    totals = loss.totals()
    n_bins = {k: int(np.sum(codes == k)) for k in range(n_steps + 1)}
    handles = [Patch(facecolor=colours[k], edgecolor="0.4",
                     label=f"{s} ({totals[s]} lost, dominant in {n_bins[k]} bins)") for k, s in enumerate(loss.steps)]
    handles.append(Patch(facecolor=colours[-1], edgecolor="0.4", label=f"none lost ({n_bins[n_steps]} bins)"))
    if show_completeness:
        with np.errstate(invalid="ignore", divide="ignore"):
            completeness = np.where(loss.counts > 0, 1 - loss.n_lost / loss.counts, np.nan)
        xc = 0.5 * (loss.x_edges[1:] + loss.x_edges[:-1])
        yc = 0.5 * (loss.y_edges[1:] + loss.y_edges[:-1])
        if np.isfinite(completeness).sum() > 3 and np.nanmax(completeness) > np.nanmin(completeness):
            lines = axis.contour(xc, yc, np.ma.masked_invalid(completeness).T, levels=[0.1, 0.5, 0.9],
                                 colors="k", linewidths=0.8)
            axis.clabel(lines, fontsize=6, fmt="%.1f")
    axis.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                title="first failing step (most frequent)", title_fontsize=7)
    axis.set_xlabel(_AXIS_LABELS.get(loss.x_name, loss.x_name))
    axis.set_ylabel(_AXIS_LABELS.get(loss.y_name, loss.y_name))
    axis.set_title(title or f"{int(loss.counts.sum())} injections, {int(loss.n_lost.sum())} lost; "
                   "contours: recovered fraction", fontsize=9)
    figure.tight_layout()
    return atomic_savefig(figure, path)
