"""Analysis of a campaign's labels: per-cluster recovery probability and recovery plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..survey import NGC628_DISTANCE_MODULUS
from .cuts import STAGES

__all__ = ["p_true", "plot_recovery"]


def p_true(labels, group: Sequence[str] = ("cluster_id", "r_eff_pc")):
    """Measured recovery probability of each re-injected cluster (test design).

    Returns an astropy Table with the ``group`` columns, ``n_injections``,
    ``n_recovered`` and ``p_true`` (plus the first value of the other library columns).
    """
    from astropy.table import Table

    df = labels.to_pandas() if hasattr(labels, "to_pandas") else labels
    g = df.groupby(list(group), sort=True)
    out = g["C"].agg(n_injections="size", n_recovered="sum").reset_index()
    out["p_true"] = out["n_recovered"] / out["n_injections"]
    first = g.first().reset_index()
    keep = [
        c
        for c in first.columns
        if c not in out.columns
        and not c.endswith("_meas")
        and c not in ("frame", "repeat", "x", "y", "sep_px", "design", *STAGES, "C")
    ]
    for c in keep:
        out[c] = first[c].to_numpy()
    return Table.from_pandas(out)


def plot_recovery(labels, path, *, band: str = "F555W", title: str | None = None):
    """Recovery fraction vs V magnitude (per radius) and vs (log T, log M); saved to ``path``.

    Left: fraction of clusters with C = 1 in 0.25 mag bins of ``mag_<band>`` (the true,
    injected magnitude), one line per r_eff, with binomial errors, and the M_V = -6 cut.
    Right: the mean of C in bins of ``log_age`` x ``log_mass`` (if the labels have them),
    with the number of clusters per bin as contours. Returns the path.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from .._io import atomic_savefig

    df = labels.to_pandas() if hasattr(labels, "to_pandas") else labels
    col = f"mag_{band}"
    if col not in df.columns or "C" not in df.columns:
        raise ValueError(f"labels need {col!r} and 'C' columns")
    has_phys = "log_mass" in df.columns and "log_age" in df.columns
    fig, axes = plt.subplots(
        1, 2 if has_phys else 1, figsize=(12 if has_phys else 6.5, 4.6), squeeze=False
    )
    ax = axes[0, 0]
    m = df[col].to_numpy(float)
    c = df["C"].to_numpy(bool)
    ok = np.isfinite(m)
    if not ok.any():
        raise ValueError(f"no finite {col} in the labels")
    edges = np.arange(math.floor(m[ok].min() * 4) / 4, m[ok].max() + 0.25, 0.25)
    radii = sorted(df["r_eff_pc"].unique()) if "r_eff_pc" in df.columns else [None]
    for r in radii:
        sel = ok & ((df["r_eff_pc"].to_numpy() == r) if r is not None else True)
        idx = np.digitize(m[sel], edges) - 1
        n = np.bincount(idx, minlength=edges.size)[: edges.size - 1]
        k = np.bincount(idx, weights=c[sel], minlength=edges.size)[: edges.size - 1]
        good = n > 0
        frac = np.divide(k, n, out=np.zeros_like(k), where=good)
        err = np.sqrt(np.maximum(frac * (1 - frac), 0.25 / np.maximum(n, 1)) / np.maximum(n, 1))
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(
            centres[good],
            frac[good],
            err[good],
            ms=3,
            fmt="o-",
            lw=1,
            label=f"r_eff = {r:g} pc" if r is not None else None,
        )
    dm = NGC628_DISTANCE_MODULUS
    ax.axvline(dm - 6.0, color="k", ls=":", lw=0.8, label="M_V = -6")
    ax.set_xlabel(f"injected {band} [Vega mag]")
    ax.set_ylabel("recovered fraction (C = 1)")
    ax.set_ylim(-0.03, 1.03)
    if len(radii) > 1 or radii[0] is not None:
        ax.legend(fontsize=7, ncol=2)
    if has_phys:
        ax2 = axes[0, 1]
        la = df["log_age"].to_numpy(float)
        lm = df["log_mass"].to_numpy(float)
        xe = np.linspace(np.nanmin(la), np.nanmax(la), 26)
        ye = np.linspace(np.nanmin(lm), np.nanmax(lm), 26)
        n, _, _ = np.histogram2d(la, lm, [xe, ye])
        k, _, _ = np.histogram2d(la, lm, [xe, ye], weights=c.astype(float))
        frac = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        im = ax2.pcolormesh(xe, ye, frac.T, vmin=0, vmax=1, cmap="viridis", shading="flat")
        fig.colorbar(im, ax=ax2, label="recovered fraction")
        ax2.set_xlabel("log age [yr]")
        ax2.set_ylabel("log mass [Msun]")
        ax2.set_title(f"{len(df)} clusters")
    fig.suptitle(title or "artificial cluster recovery")
    fig.tight_layout()
    return atomic_savefig(fig, Path(path))
