"""Figures of the completeness maps of :mod:`jaxcomp.selection.maps` (paper Figs. 8-9).

:func:`plot_completeness_maps` (Fig. 8: AST binned against the network),
:func:`plot_network_vs_magnitude_limit` (Fig. 9: the network against constant-V loci) and
:func:`plot_dominant_loss_step` (the pipeline step that loses most clusters per bin).  The
validation figures are in :mod:`jaxcomp.selection.validation_plots`.

Figures are written atomically with :func:`jaxcomp._io.atomic_savefig`. See
``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ._plotting import _AXIS_LABELS, _pyplot
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

__all__ = [
    "plot_completeness_maps",
    "plot_dominant_loss_step",
    "plot_network_vs_magnitude_limit",
]


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
