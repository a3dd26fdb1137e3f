"""Band magnitudes of unit-luminosity stars on the (log Teff, log g) atmosphere grid.

A :class:`BandGrid` holds, for every node of the stellar-atmosphere grid, the absolute
Vega magnitude ``Q_band`` of a 1 L_sun star (its spectrum at 10 pc) without extinction
and behind dust screens of a few A_V.  Because the atmosphere spectra are normalised to
unit bolometric flux before interpolation, interpolating spectra bilinearly in
(log Teff, log g) and projecting through a filter commute; so any star's magnitude is
``M_band = -2.5 log10(L/L_sun) - 2.5 log10 Σ_k w_k 10^(-0.4 Q_band,k)`` with the
bilinear weights ``w_k`` of its (log Teff, log g), and the same holds for the extincted
fluxes.  Nodes outside the grid are clamped to its edges.

This module is numpy-only; building the grid from spectra is in
:mod:`jaxcomp.library.build`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BandGrid",
    "star_photometry_from_band_grid",
    "extinction_polynomial",
    "evaluate_extinction_polynomial",
]


@dataclass(frozen=True)
class BandGrid:
    """Band magnitudes of unit-luminosity stars on the atmosphere grid.

    Attributes
    ----------
    log_teff, log_g : numpy.ndarray
        Grid nodes (as in :class:`AtmosphereGrid`).
    bands : tuple of str
        Band names.
    q_mag : numpy.ndarray, shape (n_teff, n_g, n_bands)
        Absolute Vega magnitude of a 1 L_sun star [mag].
    av_nodes : numpy.ndarray, shape (n_av,)
        Visual extinctions [mag] of ``q_mag_extincted``.
    q_mag_extincted : numpy.ndarray, shape (n_teff, n_g, n_bands, n_av)
        The same behind a dust screen of A_V = ``av_nodes`` [mag].
    """

    log_teff: np.ndarray
    log_g: np.ndarray
    bands: tuple[str, ...]
    q_mag: np.ndarray
    av_nodes: np.ndarray
    q_mag_extincted: np.ndarray




def _bilinear(nodes_x, nodes_y, x, y):
    """Indices and weights of bilinear interpolation, clamped to the grid edges."""
    ix = np.clip(np.searchsorted(nodes_x, x) - 1, 0, nodes_x.size - 2)
    iy = np.clip(np.searchsorted(nodes_y, y) - 1, 0, nodes_y.size - 2)
    tx = np.clip((x - nodes_x[ix]) / (nodes_x[ix + 1] - nodes_x[ix]), 0.0, 1.0)
    ty = np.clip((y - nodes_y[iy]) / (nodes_y[iy + 1] - nodes_y[iy]), 0.0, 1.0)
    return ix, iy, tx, ty


def _interpolate_linear_flux(values_mag, ix, iy, tx, ty):
    lin = 10.0 ** (-0.4 * values_mag)
    tx = tx.reshape(tx.shape + (1,) * (lin.ndim - 2))
    ty = ty.reshape(ty.shape + (1,) * (lin.ndim - 2))
    out = (
        lin[ix, iy] * (1 - tx) * (1 - ty)
        + lin[ix + 1, iy] * tx * (1 - ty)
        + lin[ix, iy + 1] * (1 - tx) * ty
        + lin[ix + 1, iy + 1] * tx * ty
    )
    return out


def star_photometry_from_band_grid(band_grid: BandGrid, log_luminosity, log_teff, log_g):
    """Absolute Vega magnitudes and band extinctions of stars from a :class:`BandGrid`.

    Parameters
    ----------
    band_grid : BandGrid
        Unit-luminosity band magnitudes on the atmosphere grid.
    log_luminosity : array_like
        log10(L / L_sun).
    log_teff : array_like
        log10(Teff / K); clamped to the grid range.
    log_g : array_like
        log10(g / cm s^-2); clamped to the grid range.

    Returns
    -------
    magnitudes : numpy.ndarray, shape (n, n_bands)
        Absolute Vega magnitudes [mag].
    band_extinction : numpy.ndarray, shape (n, n_bands, n_av)
        ``A_band`` [mag] at ``band_grid.av_nodes``.
    """
    log_l = np.atleast_1d(np.asarray(log_luminosity, dtype=float))
    ix, iy, tx, ty = _bilinear(band_grid.log_teff, band_grid.log_g, np.atleast_1d(log_teff), np.atleast_1d(log_g))
    lin = _interpolate_linear_flux(band_grid.q_mag, ix, iy, tx, ty)
    lin_ext = _interpolate_linear_flux(band_grid.q_mag_extincted, ix, iy, tx, ty)
    mags = -2.5 * log_l[:, None] - 2.5 * np.log10(lin)
    band_extinction = -2.5 * np.log10(lin_ext / lin[..., None])
    return mags, band_extinction


def extinction_polynomial(av_nodes, band_extinction) -> np.ndarray:
    """Coefficients ``c_1..c_n`` of ``A_band = Σ_k c_k A_V^k`` through n nodes (no constant term).

    Parameters
    ----------
    av_nodes : sequence of float, length n
        Distinct, non-zero A_V [mag].
    band_extinction : numpy.ndarray, shape (..., n)
        Exact A_band [mag] at the nodes.

    Returns
    -------
    numpy.ndarray, shape (..., n)
        Polynomial coefficients, lowest power first.
    """
    av = np.asarray(av_nodes, dtype=float)
    design = np.stack([av**k for k in range(1, av.size + 1)], axis=1)
    return np.einsum("ij,...j->...i", np.linalg.inv(design), band_extinction)


def evaluate_extinction_polynomial(coefficients, av) -> np.ndarray:
    """``Σ_k c_k A_V^k`` for coefficients (..., n) and A_V values (m,) -> (..., m)."""
    av = np.atleast_1d(np.asarray(av, dtype=float))
    powers = np.stack([av**k for k in range(1, coefficients.shape[-1] + 1)], axis=0)
    return coefficients @ powers
