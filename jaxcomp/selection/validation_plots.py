"""Figures of the validation of a selection function (paper Figs. 3-7).

:func:`plot_binned_comparison` (Figs. 3-5), :func:`plot_z_hexbin` (Fig. 6, in
``z = atanh(2p - 1)``: :func:`z_transform`, :func:`inverse_z_transform`,
:func:`default_z_eps`), :func:`plot_error_cdf` (Fig. 7) and
:func:`plot_validation_reliability`, all of
:class:`~jaxcomp.selection.validation.ValidationResult`.  The completeness-map figures
are in :mod:`jaxcomp.selection.map_plots`.

Figures are written atomically with :func:`jaxcomp._io.atomic_savefig`. See
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._common import PAPER_PERCENTILES, PERCENTILES
from ._plotting import _AXIS_LABELS, _pyplot

if TYPE_CHECKING:
    from .validation import ValidationResult

__all__ = [
    "default_z_eps",
    "inverse_z_transform",
    "plot_binned_comparison",
    "plot_error_cdf",
    "plot_validation_reliability",
    "plot_z_hexbin",
    "z_transform",
]


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
