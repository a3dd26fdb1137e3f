"""The field stars of the mock: seeded point sources following the young and old light.

Part of the mock field (:mod:`jaxcomp.ast.mock`, where the recipe is): ``N_STARS`` stars in
NGC 628C (other pointings: as many per unit diffuse light) with a power-law luminosity
function, young blue stars placed on the young diffuse light and evolved red ones on the old
disk (:func:`mock_field_stars`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..catalogues import BANDS
from .mock_diffuse import _DIFFUSE_CELL, _old_light, _young_map
from .mock_frame import _full_or_window
from .pointing import mock_pointing

__all__ = ["N_STARS", "mock_field_stars"]

#: Number of field stars in the full frame (m_F555W in [20.5, 28]).
N_STARS: int = 20000
_STAR_MAG_RANGE = (20.5, 28.0)
_STAR_LF_SLOPE = 0.35  # dlog10 N / dm
_STAR_YOUNG_FRACTION = 0.7
#: colours relative to F555W, blue to red: m_b - m_F555W
_YOUNG_STAR_COLOURS = {"F275W": -1.3, "F336W": -1.0, "F435W": -0.1, "F555W": 0.0}  # V-I drawn
_RED_STAR_COLOURS = {"F275W": 5.2, "F336W": 2.7, "F435W": 1.5, "F555W": 0.0}  # V-I drawn


def _n_stars(pointing: str) -> int:
    """``N_STARS`` in NGC 628C; elsewhere scaled by the pointing's young and old light (the same
    stars per unit diffuse light as in C)."""
    if pointing == "ngc628c":
        return N_STARS
    total = {}
    for p in ("ngc628c", pointing):
        ym = _young_map(p)
        c = _DIFFUSE_CELL
        gy = (np.arange(ym.shape[0]) + 0.5) * c - 0.5
        gx = (np.arange(ym.shape[1]) + 0.5) * c - 0.5
        total[p] = (ym.sum(), _old_light(gy[:, None], gx[None, :], p).sum())
    f = _STAR_YOUNG_FRACTION
    yc, oc = total["ngc628c"]
    yp, op = total[pointing]
    return int(round(N_STARS * (f * yp / yc + (1.0 - f) * op / oc)))


@lru_cache(maxsize=8)
def _stars_arrays(seed: int, pointing: str = "ngc628c") -> dict:
    pt = mock_pointing(pointing)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(3, *pt.seed_key)))
    n = _n_stars(pt.name)
    lo, hi = _STAR_MAG_RANGE
    # inverse CDF of dN/dm ~ 10^(a m) on [lo, hi]
    a = _STAR_LF_SLOPE * math.log(10.0)
    u = rng.random(n)
    mv = np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a
    young = rng.random(n) < _STAR_YOUNG_FRACTION
    c = _DIFFUSE_CELL
    ym = _young_map(pt.name)
    cy, cx = ym.shape
    gy = (np.arange(cy) + 0.5) * c - 0.5
    gx = (np.arange(cx) + 0.5) * c - 0.5
    om = _old_light(gy[:, None], gx[None, :], pt.name)
    x = np.empty(n)
    y = np.empty(n)
    for sel, dens in ((young, ym), (~young, om)):
        p = dens.ravel() / dens.sum()
        cells = rng.choice(p.size, size=int(sel.sum()), p=p)
        x[sel] = (cells % cx) * c + rng.random(cells.size) * c - 0.5
        y[sel] = (cells // cx) * c + rng.random(cells.size) * c - 0.5
    vi = np.where(young, rng.normal(-0.1, 0.15, n), rng.normal(1.8, 0.3, n))
    mags = {"F555W": mv, "F814W": mv - vi}
    for b in ("F275W", "F336W", "F435W"):
        mags[b] = mv + np.where(young, _YOUNG_STAR_COLOURS[b], _RED_STAR_COLOURS[b])
    inside = (x > -0.5) & (x < pt.shape[1] - 0.5) & (y > -0.5) & (y < pt.shape[0] - 0.5)
    return {
        "x": x[inside],
        "y": y[inside],
        "young": young[inside],
        "mags": {b: mags[b][inside] for b in BANDS},
    }


def mock_field_stars(
    seed: int = 0, window: tuple[int, int, int, int] | None = None, pointing: str = "ngc628c"
):
    """The field stars of the mock with ``seed`` (astropy Table: x, y, young, mag_<band>)."""
    from astropy.table import Table

    s = _stars_arrays(int(seed), mock_pointing(pointing).name)
    y0, y1, x0, x1 = _full_or_window(window, pointing)
    keep = (s["x"] >= x0 - 0.5) & (s["x"] < x1 - 0.5) & (s["y"] >= y0 - 0.5) & (s["y"] < y1 - 0.5)
    t = Table({"x": s["x"][keep] - x0, "y": s["y"][keep] - y0, "young": s["young"][keep]})
    for b in BANDS:
        t[f"mag_{b}"] = s["mags"][b][keep]
    return t
