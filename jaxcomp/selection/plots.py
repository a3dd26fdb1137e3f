"""Figures of the validation and the completeness maps (paper Figs. 3-9).

* :func:`plot_binned_comparison` (Figs. 3-5), :func:`plot_z_hexbin` (Fig. 6, in
  ``z = atanh(2p - 1)``: :func:`z_transform`, :func:`inverse_z_transform`,
  :func:`default_z_eps`), :func:`plot_error_cdf` (Fig. 7),
  :func:`plot_validation_reliability` - of :class:`~jaxcomp.selection.validation.ValidationResult`.
* :func:`plot_completeness_maps` (Fig. 8), :func:`plot_network_vs_magnitude_limit`
  (Fig. 9), :func:`plot_dominant_loss_step` - of the maps of :mod:`jaxcomp.selection.maps`.

Figures are written atomically with :func:`jaxcomp._io.atomic_savefig`. See
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._common import PAPER_PERCENTILES, PERCENTILES
from .inputs import LEGUS_BANDS
from .maps import (
    DEFAULT_V_LIMITS,
    NO_LOSS,
    BinnedMap,
    LossStepMap,
    NetworkMap,
    magnitude_limit_locus,
    network_map,
    ssp_magnitude_function,
)

if TYPE_CHECKING:
    from .validation import ValidationResult

__all__ = [
    "default_z_eps",
    "inverse_z_transform",
    "plot_binned_comparison",
    "plot_completeness_maps",
    "plot_dominant_loss_step",
    "plot_error_cdf",
    "plot_network_vs_magnitude_limit",
    "plot_validation_reliability",
    "plot_z_hexbin",
    "z_transform",
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


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


_AXIS_LABELS = {
    "log_mass": "log mass [Msun]",
    "log_age": "log age [yr]",
    "av": "A_V [mag]",
    **{f"mag_{b}": f"{b} [Vega mag]" for b in LEGUS_BANDS},
}
_KIND_COLOURS = {"physical": "C0", "photometric": "C1"}


def _named_results(results) -> list[tuple[str, ValidationResult]]:
    from .validation import (
        ValidationResult,  # at call time: validation re-exports this module
    )

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
    """Physical blue and photometric orange (as in the paper) for the first of each kind, then C2,
    C3..."""
    used, out, spare = set(), [], iter(f"C{k}" for k in range(2, 10))
    for _, result in items:
        colour = _KIND_COLOURS.get(result.kind)
        if colour is None or colour in used:
            colour = next(spare, "0.3")
        used.add(colour)
        out.append(colour)
    return out


def plot_binned_comparison(
    results, path, *, columns: Sequence[str] | None = None, title: str = ""
) -> Path:
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
        axis.errorbar(
            reference.centres[keep],
            reference.mean_true[keep],
            reference.sem_true[keep],
            fmt="o",
            color="k",
            ms=3.5,
            lw=0.8,
            label="p_true (measured)",
            zorder=3,
        )
        for colour, (label, result) in zip(_colours(items), items):
            comparison = result.binned.get(column)
            if comparison is None:
                continue
            k = comparison.kept
            axis.plot(
                comparison.centres[k],
                comparison.mean_predicted[k],
                "o",
                ms=3,
                color=colour,
                label=f"p_hat {label}",
                zorder=4,
                alpha=0.85,
            )
        axis.set_xlabel(_AXIS_LABELS.get(column, column))
        axis.set_ylabel("mean completeness")
        axis.set_ylim(-0.03, 1.03)
        omitted = int((~keep & (reference.counts > 0)).sum())
        axis.set_title(
            f"{column}: {int(keep.sum())} bins shown, {omitted} with < {reference.min_count} "
            "clusters omitted",
            fontsize=8,
        )
    for axis in axes.ravel()[n:]:
        axis.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="best")
    figure.suptitle(
        title
        or f"binned comparison on {first.n_clusters} test clusters "
        f"({first.n_injections} injections)",
        fontsize=10,
    )
    figure.tight_layout()
    return atomic_savefig(figure, path)


def plot_z_hexbin(
    result: ValidationResult,
    path,
    *,
    eps: float | None = None,
    extremes: str = "clip",
    gridsize: int = 40,
    mincnt: int = 30,
    title: str = "",
) -> Path:
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
            raise ValueError(
                "every cluster has p_true or p_hat exactly 0 or 1; use extremes='clip'"
            )
        z_true, z_hat = z_transform(p_true[keep]), z_transform(p_hat[keep])
        edge = None
        note = f"{int((~keep).sum())} clusters with p = 0 or 1 omitted"
    else:
        eps = default_z_eps(result.n_repeats) if eps is None else float(eps)
        z_true, z_hat = z_transform(p_true, eps), z_transform(p_hat, eps)
        edge = float(np.arctanh(1.0 - 2.0 * eps))
        note = (
            f"p clipped to [{eps:g}, {1 - eps:g}]: p = 0 / 1 on the dashed edges z = -/+{edge:.2f}"
        )
    figure, axis = plt.subplots(figsize=(5.8, 5.2))
    limit = float(max(np.max(np.abs(z_true)), np.max(np.abs(z_hat)))) * 1.05 + 1e-9
    hexes = axis.hexbin(
        z_hat,
        z_true,
        gridsize=int(gridsize),
        mincnt=int(mincnt),
        norm=LogNorm(),
        cmap="viridis",
        extent=(-limit, limit, -limit, limit),
    )
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
    axis.set_title(
        title
        or f"{result.name}: {result.n_clusters} test clusters; hexagons with < {mincnt} hidden\n"
        f"{note}",
        fontsize=8,
    )
    figure.tight_layout()
    return atomic_savefig(figure, path)


def plot_error_cdf(
    results,
    path,
    *,
    show_reference: bool = True,
    show_floor: bool = True,
    xscale: str = "log",
    xmin: float = 1e-4,
    title: str = "",
) -> Path:
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
        axis.step(
            errors,
            fraction,
            where="post",
            color=colour,
            lw=1.5,
            label=f"{label}: {p['p50']:.3f} / {p['p90']:.3f} / {p['p95']:.3f}",
        )
        for key, level in zip(("p50", "p90", "p95"), levels):
            axis.plot(
                max(p[key], xmin) if xscale == "log" else p[key],
                level,
                markers[key],
                color=colour,
                ms=5,
            )
            if show_floor:
                f = result.binomial_floor[key]
                axis.plot(
                    max(f, xmin) if xscale == "log" else f, level, "x", color=colour, ms=6, mew=1.2
                )
    handles, texts = axis.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    if show_floor:
        handles.append(Line2D([], [], ls="", marker="x", color="0.3"))
        texts.append("binomial-noise floor (network = truth)")
    if show_reference:
        reference_colours = {"physical": "k", "photometric": "0.55"}
        for kind in dict.fromkeys(
            r.kind for _, r in items
        ):  # each kind once, in order of appearance
            reference = PAPER_PERCENTILES.get(kind)
            if not reference:
                continue
            for key, level in zip(("p50", "p90", "p95"), levels):
                axis.plot(
                    reference[key],
                    level,
                    markers[key],
                    mfc="none",
                    mec=reference_colours[kind],
                    ms=9,
                    mew=1.1,
                )
            handles.append(
                Line2D([], [], ls="", marker="o", mfc="none", mec=reference_colours[kind])
            )
            texts.append(f"Tang+2026 {kind} network (100 repeats)")
    axis.legend(
        handles,
        texts,
        fontsize=7,
        loc="lower right",
        title="50th / 90th / 95th percentiles",
        title_fontsize=7,
    )
    axis.set_xscale(xscale)
    if xscale == "log":
        axis.set_xlim(xmin, 1.0)
    else:
        axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("|p_hat - p_true|")
    axis.set_ylabel("cumulative fraction of test clusters")
    axis.set_title(
        title
        or f"{items[0][1].n_clusters} test clusters, median "
        f"{int(np.median(items[0][1].n_repeats))} repeats",
        fontsize=9,
    )
    figure.tight_layout()
    return atomic_savefig(figure, path)


def plot_validation_reliability(result: ValidationResult, path, *, title: str = "") -> Path:
    """Reliability diagram of p_hat against the per-repeat labels (see :mod:`.calibration`)."""
    from .calibration import plot_reliability

    return plot_reliability(
        result.calibration,
        path,
        title=title or f"{result.name}: {result.n_injections} test injections",
    )


def plot_completeness_maps(
    pairs: Sequence[tuple[BinnedMap, NetworkMap]],
    path,
    *,
    min_count: int = 1,
    contours: Sequence[float] = (0.1, 0.5, 0.9),
    title: str = "",
) -> Path:
    """AST binned completeness (left) and the network (right), one row per A_V slice (paper Fig. 8).

    Parameters
    ----------
    pairs : sequence of (BinnedMap, NetworkMap)
        From :func:`~jaxcomp.selection.maps.compare_completeness_maps` (or built by hand).
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
    figure, axes = plt.subplots(
        len(pairs), 2, figsize=(10.5, 4.0 * len(pairs)), squeeze=False, layout="constrained"
    )
    mesh = None
    for row, (binned, grid) in zip(axes, pairs):
        values = np.where(binned.counts >= min_count, binned.completeness, np.nan)
        mesh = row[0].pcolormesh(
            binned.x_edges, binned.y_edges, values.T, vmin=0, vmax=1, cmap="viridis", shading="flat"
        )
        row[0].set_title(
            f"AST binned ({binned.selection}; {int(binned.counts.sum())} injections)", fontsize=8
        )
        row[1].pcolormesh(grid.x, grid.y, grid.p.T, vmin=0, vmax=1, cmap="viridis", shading="auto")
        row[1].set_title(f"network ({grid.describe()})", fontsize=8)
        for axis in row:
            if len(contours):
                axis.contour(
                    grid.x, grid.y, grid.p.T, levels=list(contours), colors="r", linewidths=0.8
                )
            axis.set_xlabel(_AXIS_LABELS.get(binned.x_name, binned.x_name))
            axis.set_ylabel(_AXIS_LABELS.get(binned.y_name, binned.y_name))
            axis.set_xlim(binned.x_edges[0], binned.x_edges[-1])
            axis.set_ylim(binned.y_edges[0], binned.y_edges[-1])
    figure.colorbar(mesh, ax=axes.ravel().tolist(), label="completeness", shrink=0.9)
    if title:
        figure.suptitle(title, fontsize=10)
    return atomic_savefig(figure, path)


def plot_network_vs_magnitude_limit(
    sf,
    path,
    *,
    mag_v: Callable | None = None,
    limits: Mapping[str, float] | None = None,
    av: float = 0.0,
    x_grid=None,
    y_grid=None,
    input_names: Sequence[str] | None = None,
    contours: Sequence[float] = (0.1, 0.5, 0.9),
    title: str = "",
) -> Path:
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

    grid = network_map(
        sf,
        x_grid,
        y_grid,
        x="log_age",
        y="log_mass",
        fixed={"av": float(av)},
        input_names=input_names,
    )
    mag_v = mag_v if mag_v is not None else ssp_magnitude_function("F555W", av=av)
    limits = dict(DEFAULT_V_LIMITS if limits is None else limits)
    figure, axis = plt.subplots(figsize=(6.6, 5.0))
    mesh = axis.pcolormesh(grid.x, grid.y, grid.p.T, vmin=0, vmax=1, cmap="viridis", shading="auto")
    figure.colorbar(mesh, ax=axis, label=f"p_obs (A_V = {av:g})")
    if len(contours):
        lines = axis.contour(
            grid.x, grid.y, grid.p.T, levels=list(contours), colors="w", linewidths=0.7
        )
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
    axis.set_title(
        title or f"network at A_V = {av:g} and constant-V loci (fully sampled SSP)", fontsize=9
    )
    figure.tight_layout()
    return atomic_savefig(figure, path)


def plot_dominant_loss_step(
    loss: LossStepMap, path, *, min_count: int = 1, show_completeness: bool = True, title: str = ""
) -> Path:
    """Map of the step that removes most lost clusters per bin (categorical colours).

    Parameters
    ----------
    loss : LossStepMap
        From :func:`~jaxcomp.selection.maps.dominant_loss_step`.
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
    palette = [
        "#1b9e77",
        "#d95f02",
        "#7570b3",
        "#e7298a",
        "#66a61e",
        "#e6ab02",
        "#a6761d",
        "#666666",
    ]
    colours = [palette[k % len(palette)] for k in range(n_steps)] + ["#e8e8e8"]  # last: no loss
    codes = np.where(
        loss.dominant >= 0, loss.dominant, np.where(loss.dominant == NO_LOSS, n_steps, -1)
    ).astype(float)
    codes[(loss.counts < max(int(min_count), 1)) | (codes < 0)] = np.nan
    figure, axis = plt.subplots(figsize=(10.2, 5.2))
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-0.5, n_steps + 1.5), cmap.N)
    axis.pcolormesh(loss.x_edges, loss.y_edges, codes.T, cmap=cmap, norm=norm, shading="flat")
    totals = loss.totals()
    n_bins = {k: int(np.sum(codes == k)) for k in range(n_steps + 1)}
    handles = [
        Patch(
            facecolor=colours[k],
            edgecolor="0.4",
            label=f"{s} ({totals[s]} lost, dominant in {n_bins[k]} bins)",
        )
        for k, s in enumerate(loss.steps)
    ]
    handles.append(
        Patch(facecolor=colours[-1], edgecolor="0.4", label=f"none lost ({n_bins[n_steps]} bins)")
    )
    if show_completeness:
        with np.errstate(invalid="ignore", divide="ignore"):
            completeness = np.where(loss.counts > 0, 1 - loss.n_lost / loss.counts, np.nan)
        xc = 0.5 * (loss.x_edges[1:] + loss.x_edges[:-1])
        yc = 0.5 * (loss.y_edges[1:] + loss.y_edges[:-1])
        if np.isfinite(completeness).sum() > 3 and np.nanmax(completeness) > np.nanmin(
            completeness
        ):
            lines = axis.contour(
                xc,
                yc,
                np.ma.masked_invalid(completeness).T,
                levels=[0.1, 0.5, 0.9],
                colors="k",
                linewidths=0.8,
            )
            axis.clabel(lines, fontsize=6, fmt="%.1f")
    axis.legend(
        handles=handles,
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        title="first failing step (most frequent)",
        title_fontsize=7,
    )
    axis.set_xlabel(_AXIS_LABELS.get(loss.x_name, loss.x_name))
    axis.set_ylabel(_AXIS_LABELS.get(loss.y_name, loss.y_name))
    axis.set_title(
        title
        or f"{int(loss.counts.sum())} injections, {int(loss.n_lost.sum())} lost; "
        "contours: recovered fraction",
        fontsize=9,
    )
    figure.tight_layout()
    return atomic_savefig(figure, path)
