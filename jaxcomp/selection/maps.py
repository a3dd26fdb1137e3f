"""Completeness maps and where clusters are lost (paper sections 4.2-4.3).

* :func:`binned_completeness` - AST completeness in 2-D bins (Fig. 8 left),
  :class:`BinnedMap`.
* :func:`network_map` - a selection function on a fine grid at fixed or averaged A_V
  (Fig. 8 right), :class:`NetworkMap`; :func:`compare_completeness_maps` pairs the two
  in A_V slices.
* :func:`ssp_magnitude_function` and :func:`magnitude_limit_locus` - the loci where a
  fully sampled SSP reaches given V magnitudes (Fig. 9), :data:`DEFAULT_V_LIMITS`.
* :func:`dominant_loss_step` - which pipeline step (:data:`PIPELINE_STEPS`) removes most
  of the lost clusters in each (log T, log M) bin, :class:`LossStepMap`.

Pure: tables in, arrays and frozen dataclasses out; the figures are in
:mod:`jaxcomp.selection.map_plots`. See ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ..ast.field import DISTANCE_MODULUS
from ..ast.settings import CutsConfig
from ..catalogues import ADAMO17_PUBLISHED_50PCT_NGC628C
from ._common import (
    PIPELINE_STEPS,
    _as_predictor,
    _binary,
    _predict,
    _require,
    _to_pandas,
)

__all__ = [
    "DEFAULT_V_LIMITS",
    "EMPTY_BIN",
    "NO_LOSS",
    "BinnedMap",
    "LossStepMap",
    "NetworkMap",
    "binned_completeness",
    "compare_completeness_maps",
    "dominant_loss_step",
    "magnitude_limit_locus",
    "network_map",
    "ssp_magnitude_function",
]

_MV_CUT = CutsConfig.mv_max
_MV_CUT_APPARENT = round(DISTANCE_MODULUS + _MV_CUT, 2)
_V50_ADAMO17 = ADAMO17_PUBLISHED_50PCT_NGC628C["F555W"]

#: Default V-band (F555W) limits drawn by
#:func:`jaxcomp.selection.map_plots.plot_network_vs_magnitude_limit`:
#: the catalogue's M_V <= -6 cut (:attr:`jaxcomp.ast.settings.CutsConfig.mv_max`) at the NGC 628
#: distance modulus 29.98 (m_V = 23.98), and the 50% recovery magnitude of the Adamo+2017
#: single-band tests in NGC628C (25.58).
DEFAULT_V_LIMITS: dict[str, float] = {
    f"M_V = {_MV_CUT:g} catalogue cut (m_V = {_MV_CUT_APPARENT:.2f})": _MV_CUT_APPARENT,
    f"F555W 50% single-band recovery, Adamo+17 ({_V50_ADAMO17:.2f})": _V50_ADAMO17,
}

#: Value of :attr:`LossStepMap.dominant` in a bin where no injected cluster was lost.
NO_LOSS: int = -1
#: Value of :attr:`LossStepMap.dominant` in a bin with no injected cluster.
EMPTY_BIN: int = -2


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
        edges.append(
            np.linspace(float(r[0]), float(r[1]), int(b) + 1)
            if np.ndim(b) == 0
            else np.asarray(b, float)
        )
    for e in edges:
        if e.size < 2 or np.any(np.diff(e) <= 0) or not np.all(np.isfinite(e)):
            raise ValueError("bin edges must be finite and increasing (give bins and a range)")
    return edges


def binned_completeness(
    labels,
    x: str = "log_age",
    y: str = "log_mass",
    bins=30,
    *,
    range=None,
    label_column: str = "C",
    mask=None,
    selection: str = "all rows",
) -> BinnedMap:
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
    return BinnedMap(
        x,
        y,
        x_edges,
        y_edges,
        counts.astype(np.int64),
        hits.astype(np.int64),
        completeness,
        selection,
    )


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


def network_map(
    sf,
    x_grid=None,
    y_grid=None,
    *,
    x: str = "log_age",
    y: str = "log_mass",
    fixed: Mapping[str, float] | None = None,
    average: Mapping[str, Sequence[float]] | None = None,
    input_names: Sequence[str] | None = None,
    out_of_domain: str | None = "clip",
) -> NetworkMap:
    """Evaluate a selection function on a fine (x, y) grid at fixed (or averaged) other inputs.

    Parameters
    ----------
    sf : SelectionFunction or callable
        As in :func:`~jaxcomp.selection.validation.validate_selection`.
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
    fixed = (
        dict(fixed)
        if fixed is not None
        else (
            {"av": 0.0} if "av" in names and x != "av" and y != "av" and "av" not in average else {}
        )
    )
    for name in (x, y):
        if name not in names:
            raise ValueError(f"{name!r} is not an input of the selection function {names}")
    given = [x, y, *fixed, *average]
    if len(set(given)) != len(given):
        raise ValueError(
            f"an input is given more than once among the axes, fixed and averaged: {given}"
        )
    missing = [n for n in names if n not in given]
    unknown = [n for n in given if n not in names]
    if missing or unknown:
        raise ValueError(
            f"every input must be an axis, fixed or averaged: missing {missing}, unknown {unknown}"
        )
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
    return NetworkMap(
        x,
        y,
        x_grid,
        y_grid,
        p,
        {k: float(v) for k, v in fixed.items()},
        {k: v.tolist() for k, v in average.items()},
    )


def compare_completeness_maps(
    labels,
    sf,
    *,
    av_edges: Sequence[float] = (0.0, 3.0),
    av_column: str = "av",
    x: str = "log_age",
    y: str = "log_mass",
    bins=30,
    x_range: tuple[float, float] = (6.0, 10.0),
    y_range: tuple[float, float] = (2.0, 7.0),
    n_grid: int = 200,
    n_av: int = 10,
    label_column: str = "C",
    input_names: Sequence[str] | None = None,
) -> list[tuple[BinnedMap, NetworkMap]]:
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
    for i, (lo, hi) in enumerate(pairwise(av_edges)):
        last = i == av_edges.size - 2
        mask = (av >= lo) & ((av <= hi) if last else (av < hi))
        text = f"{lo:g} <= A_V {'<=' if last else '<'} {hi:g}"
        binned = binned_completeness(
            df,
            x,
            y,
            bins,
            range=(x_range, y_range),
            label_column=label_column,
            mask=mask,
            selection=text,
        )
        grid = network_map(
            sf,
            np.linspace(*x_range, n_grid),
            np.linspace(*y_range, n_grid),
            x=x,
            y=y,
            fixed={},
            average={av_column: np.linspace(lo, hi, n_av)},
            input_names=input_names,
        )
        pairs.append((binned, grid))
    return pairs


def ssp_magnitude_function(
    band: str = "F555W",
    *,
    av: float = 0.0,
    distance_modulus: float | None = None,
    model=None,
    n_ages: int = 600,
    log_age_range: tuple[float, float] = (5.0, 10.2),
):
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
        log_mass, log_age = np.broadcast_arrays(
            np.asarray(log_mass, float), np.asarray(log_age, float)
        )
        return np.interp(log_age, ages, per_msun) - 2.5 * log_mass

    mag.band, mag.av, mag.distance_modulus = band, float(av), dm
    return mag


def magnitude_limit_locus(
    mag_fn: Callable,
    limit: float,
    log_age,
    *,
    log_mass_range: tuple[float, float] = (0.0, 10.0),
    n_mass: int = 2001,
) -> np.ndarray:
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
        return names[
            np.where(
                self.dominant >= 0,
                self.dominant,
                np.where(self.dominant == NO_LOSS, len(self.steps), len(self.steps) + 1),
            )
        ]

    def totals(self) -> dict[str, int]:
        """Lost injections per first failing step over the whole map."""
        return {s: int(c) for s, c in zip(self.steps, self.step_counts.sum(axis=(1, 2)))}


def dominant_loss_step(
    labels,
    bins=30,
    *,
    x: str = "log_age",
    y: str = "log_mass",
    range=None,
    steps: Sequence[str] = PIPELINE_STEPS,
    label_column: str = "C",
) -> LossStepMap:
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
        raise ValueError(
            f"{int(inconsistent.sum())} injection(s) have {label_column} = 0 but pass every step "
            f"{list(steps)}; the flags and the label disagree"
        )
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
    dominant = np.where(n_lost > 0, dominant, np.where(counts > 0, NO_LOSS, EMPTY_BIN)).astype(
        np.int64
    )
    return LossStepMap(
        x,
        y,
        x_edges,
        y_edges,
        steps,
        counts.astype(np.int64),
        n_lost.astype(np.int64),
        step_counts,
        dominant,
    )
