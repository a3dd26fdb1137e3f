"""The diffuse light of the mock: old disk, bulge and young light following the clusters.

Part of the mock field (:mod:`jaxcomp.ast.mock`, where the recipe is): the F555W surface
brightness [counts/s/px] of the old exponential disk and Sersic bulge around the nucleus, and
of the young diffuse light that follows the catalogue's smoothed source density, on any window
of a pointing's frame; the colours of both components.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .field import DISTANCE_MODULUS, PIXEL_SCALE_ARCSEC
from .mock_frame import _catalogue_arrays
from .pointing import mock_pointing
from .profiles import pc_per_pixel

_ARCSEC2_PX = PIXEL_SCALE_ARCSEC**2  # arcsec^2 per pixel
_DISK_MU0_V = 21.0
_DISK_SCALE_PX = 70.0 / PIXEL_SCALE_ARCSEC
_BULGE_MU_E_V = 20.0
_BULGE_RE_PX = 12.0 / PIXEL_SCALE_ARCSEC
_BULGE_N = 2.0
_YOUNG_PEAK_MU_V = 21.5
_YOUNG_SMOOTH_PC = 200.0
_DIFFUSE_CELL = 8  # px per cell of the young-light map
# colours m_b - m_F555W of the diffuse components (Vega)
_OLD_COLOURS = {
    "F275W": 1.5 + 0.3 + 0.8,
    "F336W": 0.3 + 0.8,
    "F435W": 0.8,
    "F555W": 0.0,
    "F814W": -1.1,
}
_YOUNG_COLOURS = {
    "F275W": 0.0 - 0.9 + 0.0,
    "F336W": -0.9,
    "F435W": 0.0,
    "F555W": 0.0,
    "F814W": -0.3,
}


def _mu_to_rate(mu: float | np.ndarray, band: str = "F555W", pointing: str = "ngc628c"):
    """Surface brightness [mag/arcsec^2] -> counts/s per pixel."""
    zp = mock_pointing(pointing).zeropoints[band]
    return np.power(10.0, -0.4 * (np.asarray(mu) - zp)) * _ARCSEC2_PX


@lru_cache(maxsize=2)
def _young_map(pointing: str = "ngc628c") -> np.ndarray:
    """Young diffuse light in F555W [counts/s/px] on cells of ``_DIFFUSE_CELL`` px (full frame).

    The light follows the pointing's smoothed source density; one source density gives one surface
    brightness in every pointing (NGC 628C's 99.5th percentile is mu_V = ``_YOUNG_PEAK_MU_V``).
    """
    s = _source_density(pointing)
    peak = np.percentile(_source_density("ngc628c"), 99.5)
    return s / peak * float(_mu_to_rate(_YOUNG_PEAK_MU_V, "F555W", pointing))


@lru_cache(maxsize=2)
def _source_density(pointing: str) -> np.ndarray:
    """The catalogue's source counts per ``_DIFFUSE_CELL`` cell, smoothed by
    ``_YOUNG_SMOOTH_PC``."""
    from scipy.ndimage import gaussian_filter

    cat = _catalogue_arrays(pointing)
    c = _DIFFUSE_CELL
    ny, nx = mock_pointing(pointing).shape
    cy, cx = -(-ny // c), -(-nx // c)
    h = np.zeros((cy, cx))
    iy = np.clip((cat["y"] // c).astype(int), 0, cy - 1)
    ix = np.clip((cat["x"] // c).astype(int), 0, cx - 1)
    np.add.at(h, (iy, ix), 1.0)
    sigma_cells = _YOUNG_SMOOTH_PC / pc_per_pixel(PIXEL_SCALE_ARCSEC, DISTANCE_MODULUS) / c
    return gaussian_filter(h, sigma_cells, mode="constant")


def _old_light(yy: np.ndarray, xx: np.ndarray, pointing: str = "ngc628c") -> np.ndarray:
    """Old disk + bulge in F555W [counts/s/px] at pixel centres."""
    nx0, ny0 = mock_pointing(pointing).nucleus_px
    r = np.hypot(xx - nx0, yy - ny0)
    disk = float(_mu_to_rate(_DISK_MU0_V, "F555W", pointing)) * np.exp(-r / _DISK_SCALE_PX)
    bn = 2.0 * _BULGE_N - 1.0 / 3.0
    bulge = float(_mu_to_rate(_BULGE_MU_E_V, "F555W", pointing)) * np.exp(
        -bn * ((r / _BULGE_RE_PX) ** (1.0 / _BULGE_N) - 1.0)
    )
    return disk + bulge


def _lerp_axis(values: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` at fractional indices (clamped at the
    ends)."""
    n = values.shape[axis]
    c = np.clip(coords, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(c).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    f = c - i0
    a = np.take(values, i0, axis=axis)
    b = np.take(values, i1, axis=axis)
    shape = [1] * values.ndim
    shape[axis] = -1
    f = f.reshape(shape)
    return a * (1.0 - f) + b * f


def _diffuse_window(y0, y1, x0, x1, pointing: str = "ngc628c") -> tuple[np.ndarray, np.ndarray]:
    """(old, young) F555W diffuse light [counts/s/px] on the window's pixels."""
    yy = np.arange(y0, y1, dtype=np.float64)[:, None]
    xx = np.arange(x0, x1, dtype=np.float64)[None, :]
    old = _old_light(yy, xx, pointing)
    c = _DIFFUSE_CELL
    gy = (np.arange(y0, y1) + 0.5) / c - 0.5  # cell-centre coordinates of the pixel centres
    gx = (np.arange(x0, x1) + 0.5) / c - 0.5
    young = _lerp_axis(_lerp_axis(_young_map(pointing), gy, 0), gx, 1)
    return old, young
