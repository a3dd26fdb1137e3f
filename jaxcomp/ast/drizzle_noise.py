"""Correlated noise of drizzled frames: the pixel-to-pixel covariance that drizzling leaves.

A drizzled HST frame is made by dropping every native pixel, shrunk to ``pixfrac`` of its side,
onto the output grid, from several dithered exposures whose grids fall at all sub-pixel
phases. Each output pixel therefore averages the noise of input pixels that it shares with
its neighbours, and the noise of neighbouring output pixels is correlated (Casertano et al.
2000, AJ 120, 2747; Fruchter & Hook 2002, PASP 114, 144). The per-pixel rms that a sky
annulus measures then underestimates the noise of a sum over many pixels by the *noise
correlation ratio* R (Fruchter & Hook 2002, eq. 10, with r = drop size in output pixels):

    R = r / (1 - 1 / (3 r))   for r >= 1,        R = 1 / (1 - r / 3)   for r <= 1.

Model (the limit of many dithers at random phases, which gives exactly that R): the noise is a
white field on the sky convolved with the drop (a square of side r output pixels), integrated
over each output pixel. Along one axis the covariance of output pixels ``k`` apart is then the
triangle of the output pixel convolved with the triangle of the drop, evaluated at ``k``
(:func:`drizzle_covariance_1d`), and the 2D covariance is the product over the two axes.
:func:`drizzle_noise_filter` factorises it: a short 1D filter ``h`` whose autocorrelation is
that covariance, normalised so that ``sum(h**2) = 1`` (the per-pixel variance is kept, so a
frame's noise calibration keeps its meaning). Filtering white normals along both axes with
``h`` (:func:`correlate_normals`) gives noise with the drizzled covariance, and
``sum(h)**2 = R``.

LEGUS frames are drizzled to 0.0396"/px with AstroDrizzle's default ``final_pixfrac = 1``
(:data:`jaxcomp.ast.hst_psf.DRIZZLE_PIXFRAC`, the same drop the PSF model uses), so the drop is
1 output pixel for WFC3/UVIS (R = 1.50) and 0.050/0.0396 = 1.26 output pixels for ACS/WFC
(R = 1.72).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import integrate

from .hst_psf import DRIZZLE_PIXFRAC, INSTRUMENT_OF_BAND

__all__ = [
    "band_drop_size_px",
    "correlate_normals",
    "drizzle_covariance_1d",
    "drizzle_noise_filter",
    "noise_correlation_ratio",
]


def _check_drop(drop_px: float) -> float:
    drop = float(drop_px)
    if not (math.isfinite(drop) and drop > 0):
        raise ValueError(f"drop size must be a finite number of output pixels > 0, got {drop_px!r}")
    return drop


def noise_correlation_ratio(drop_px: float) -> float:
    """Fruchter & Hook (2002) noise correlation ratio R for a drop of ``drop_px`` output pixels:
    the rms of a sum over a large area divided by the per-pixel rms times sqrt(area)."""
    r = _check_drop(drop_px)
    return r / (1.0 - 1.0 / (3.0 * r)) if r >= 1.0 else 1.0 / (1.0 - r / 3.0)


def _triangle(x, width: float):
    """Autocorrelation of a unit-height box of ``width``: ``max(width - |x|, 0)``."""
    return np.maximum(width - np.abs(x), 0.0)


def drizzle_covariance_1d(drop_px: float) -> np.ndarray:
    """Covariance of output pixels along one axis at lags ``0, 1, ..., K`` (unnormalised):
    ``C(k) = integral tri_1(x) tri_drop(x - k) dx``, zero beyond ``K = ceil(1 + drop) - 1``."""
    drop = _check_drop(drop_px)
    lags = np.arange(math.ceil(1.0 + drop))
    out = []
    for k in lags:
        lo, hi = max(-1.0, k - drop), min(1.0, k + drop)
        if hi <= lo:
            out.append(0.0)
            continue
        pts = sorted({p for p in (0.0, float(k)) if lo < p < hi})
        val, _ = integrate.quad(
            lambda x, k=k: _triangle(x, 1.0) * _triangle(x - k, drop),
            lo,
            hi,
            points=pts or None,
            epsabs=1e-14,
            epsrel=1e-12,
        )
        out.append(val)
    cov = np.asarray(out)
    return cov[: np.max(np.nonzero(cov > 1e-15 * cov[0])[0]) + 1]


@functools.lru_cache(maxsize=16)
def _filter(drop_px: float) -> tuple[float, ...]:
    cov = drizzle_covariance_1d(drop_px)
    if cov.size == 1:
        return (1.0,)
    # spectral factorisation: the Laurent polynomial sum_k c_|k| z^k has its roots in pairs
    # (z, 1/z); the filter takes the ones inside the unit circle (minimum phase)
    laurent = np.concatenate([cov[::-1], cov[1:]])
    roots = np.roots(laurent)
    inside = roots[np.abs(roots) < 1.0]
    h = np.real(np.poly(inside))
    h = h / math.sqrt(np.sum(h**2))
    return tuple(float(v) for v in h)


def drizzle_noise_filter(drop_px: float) -> np.ndarray:
    """The 1D filter ``h`` (``sum(h**2) = 1``) whose autocorrelation is the normalised
    :func:`drizzle_covariance_1d` of a drop of ``drop_px`` output pixels."""
    return np.asarray(_filter(_check_drop(drop_px)))


def band_drop_size_px(
    band: str, pixel_scale_arcsec: float, pixfrac: float = DRIZZLE_PIXFRAC
) -> float:
    """Side of a drizzle drop of ``band`` in output pixels: ``pixfrac`` times the band's native
    pixel (:data:`jaxcomp.ast.hst_psf.INSTRUMENT_OF_BAND`) over the output pixel."""
    if band not in INSTRUMENT_OF_BAND:
        raise ValueError(f"unknown band {band!r}; known: {sorted(INSTRUMENT_OF_BAND)}")
    return pixfrac * INSTRUMENT_OF_BAND[band].native_pixel_arcsec / pixel_scale_arcsec


def correlate_normals(normals: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Filter a field of white standard normals along both axes with ``h``.

    ``normals`` has shape ``(ny + len(h) - 1, nx + len(h) - 1)``; the result ``(ny, nx)`` has
    unit variance per pixel and the covariance ``h * h`` (autocorrelation) along each axis.
    Pixel ``(i, j)`` uses ``normals[i : i + len(h), j : j + len(h)]`` only, so any window of a
    frame gets the same values as the whole frame does.
    """
    h = np.asarray(h, normals.dtype)
    m = h.size
    ny, nx = normals.shape[0] - m + 1, normals.shape[1] - m + 1
    if ny < 1 or nx < 1:
        raise ValueError(f"normals {normals.shape} too small for a filter of {m} taps")
    rows = h[0] * normals[:ny]
    for j in range(1, m):
        rows += h[j] * normals[j : j + ny]
    out = h[0] * rows[:, :nx]
    for j in range(1, m):
        out += h[j] * rows[:, j : j + nx]
    return out
