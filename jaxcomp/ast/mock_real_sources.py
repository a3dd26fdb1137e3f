"""The real sources of the mock: the LEGUS catalogue's sources as EFF clusters.

Part of the mock field (:mod:`jaxcomp.ast.mock`, where the recipe is): every catalogue source's
rendered magnitudes (masked ones filled from the median colours) and its EFF effective radius,
chosen so that the pipeline's noiseless concentration index equals the catalogue's
(:func:`mock_sources`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..catalogues import BANDS
from ._threads import single_threaded_blas
from .field import DISTANCE_MODULUS, PIXEL_SCALE_ARCSEC
from .mock_frame import _catalogue_arrays, _full_or_window
from .pointing import mock_pointing, mock_psfs
from .profiles import add_stamps, pc_per_pixel, render_multiband

__all__ = ["mock_sources"]

_CI_GRID_PX = np.geomspace(0.2, 12.0, 40)


@lru_cache(maxsize=2)
def _ci_table(pointing: str = "ngc628c") -> tuple[np.ndarray, np.ndarray]:
    """Noiseless pipeline CI (F555W, mock PSF) of EFF clusters on ``_CI_GRID_PX``."""
    with single_threaded_blas():
        return _ci_table_impl(pointing)


def _ci_table_impl(pointing: str = "ngc628c") -> tuple[np.ndarray, np.ndarray]:
    from .photometry import aperture_photometry
    from .settings import PhotometryConfig

    cfg = PhotometryConfig()
    psf = mock_psfs(pointing)[cfg.ci_band]
    # Only pixels within the 8 px sky annulus enter the CI; one cluster per 100 px cell, so
    # no stamp reaches a neighbour's annulus; two sub-pixel offsets per radius, averaged.
    offs = np.array([0.13, 0.37])
    n = _CI_GRID_PX.size
    cell = 100
    img = np.zeros((2 * cell, n * cell))
    xs = (np.arange(n) + 0.5) * cell
    for j, o in enumerate(offs):
        for k, r in enumerate(_CI_GRID_PX):
            st = render_multiband(
                [xs[k] + o], [(j + 0.5) * cell - o], {"b": [1.0]}, float(r), {"b": psf}
            )["b"]
            add_stamps(img, st)
    xx = np.concatenate([xs + o for o in offs])
    yy = np.concatenate([np.full(n, (j + 0.5) * cell - o) for j, o in enumerate(offs)])
    ph = aperture_photometry(
        {b: img for b in BANDS}, xx, yy, {b: 0.0 for b in BANDS}, {b: 1.0 for b in BANDS}, cfg
    )
    ci = np.asarray(ph["ci"], float).reshape(offs.size, n).mean(axis=0)
    return _CI_GRID_PX.copy(), ci


def _reff_from_ci(ci: np.ndarray, pointing: str = "ngc628c") -> np.ndarray:
    grid, table = _ci_table(pointing)
    if np.any(np.diff(table) <= 0):  # pragma: no cover - a property of the EFF profile
        raise RuntimeError("CI(r_eff) is not monotonic on the grid")
    r = np.interp(ci, table, grid, left=grid[0], right=grid[-1])
    # snap to the grid (nearest in log) so that the sources fall into few radius groups
    k = np.clip(
        np.rint(np.interp(np.log(r), np.log(grid), np.arange(grid.size))).astype(int),
        0,
        grid.size - 1,
    )
    return grid[k]


@lru_cache(maxsize=2)
def _sources_arrays(pointing: str = "ngc628c") -> dict:
    cat = _catalogue_arrays(pointing)
    m50 = mock_pointing(pointing).m50_target
    n = cat["x"].size
    mags = {}
    filled = {}
    mv = cat["mag_F555W_cat"]
    for b in BANDS:
        m = cat[f"mag_{b}_cat"].copy()
        miss = ~np.isfinite(m)
        if miss.any():
            both = np.isfinite(m) & np.isfinite(mv)
            colour = float(np.median(m[both] - mv[both]))
            fill = mv + colour
            undetected = miss & cat[f"in_footprint_{b}"] & ~cat[f"detected_{b}"]
            fill = np.where(undetected, np.maximum(fill, m50[b] + 0.5), fill)
            m[miss] = fill[miss]
        mags[b] = m
        filled[b] = miss
    r_px = _reff_from_ci(cat["ci_F555W"], pointing)
    return {"n": n, "mags": mags, "filled": filled, "r_eff_px": r_px}


def mock_sources(window: tuple[int, int, int, int] | None = None, pointing: str = "ngc628c"):
    """The real LEGUS sources of a pointing (default NGC628C) as placed in its mock (astropy Table).

    Columns: ``id, class_mode, x, y`` (0-based px in the window), ``ra_deg, dec_deg``,
    ``mag_<band>`` (the magnitudes rendered), ``filled_<band>`` (True where the
    catalogue magnitude was masked and filled), ``mag_<band>_cat`` (catalogue, NaN if
    masked), ``ci_F555W`` (catalogue), ``r_eff_px`` and ``r_eff_pc`` (EFF radius
    matching the CI). Only sources whose centre lies inside the window are listed.
    """
    from astropy.table import Column, Table

    cat = _catalogue_arrays(pointing)
    src = _sources_arrays(pointing)
    y0, y1, x0, x1 = _full_or_window(window, pointing)
    x, y = cat["x"], cat["y"]
    keep = (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)
    t = Table()
    t["id"] = cat["id"][keep]
    t["class_mode"] = cat["class_mode"][keep]
    t["x"] = Column(x[keep] - x0, unit="pix", description="0-based x in the field")
    t["y"] = Column(y[keep] - y0, unit="pix", description="0-based y in the field")
    t["ra_deg"] = Column(cat["ra_deg"][keep], unit="deg")
    t["dec_deg"] = Column(cat["dec_deg"][keep], unit="deg")
    for b in BANDS:
        t[f"mag_{b}"] = Column(
            src["mags"][b][keep], unit="mag", description="rendered total Vega magnitude"
        )
        t[f"filled_{b}"] = src["filled"][b][keep]
        t[f"mag_{b}_cat"] = Column(cat[f"mag_{b}_cat"][keep], unit="mag")
    t["ci_F555W"] = Column(cat["ci_F555W"][keep], unit="mag")
    t["r_eff_px"] = Column(src["r_eff_px"][keep], unit="pix")
    t["r_eff_pc"] = Column(
        src["r_eff_px"][keep] * pc_per_pixel(PIXEL_SCALE_ARCSEC, DISTANCE_MODULUS), unit="pc"
    )
    t.meta["window"] = [int(v) for v in (y0, y1, x0, x1)]
    t.meta["pointing"] = mock_pointing(pointing).name
    return t
