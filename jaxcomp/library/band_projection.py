"""Project spectra through the HST filters: photon counts, extinction, Vega magnitudes.

Filter curves from astro-sedpy (:class:`Filter`, :func:`load_filter`), the photon-counting
band integral (:func:`photon_counts`), dust-extinction curves (:func:`extinction_curve`),
Vega magnitudes of spectra (:func:`spectrum_magnitudes`), and their application to every
node of an atmosphere grid: the band grid (:func:`compute_band_grid`), the ionising photon
rates (:func:`ionising_photon_grid`) and the slow reference by spectral interpolation
(:func:`spectral_interpolation_magnitudes`).  The method is described in
:mod:`jaxcomp.library.build` (steps 2-5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bands import sedpy_filter_name
from .physical_constants import _C_ANGSTROM, _H, L_SUN_ERG_S, LYMAN_LIMIT_ANGSTROM, TEN_PARSEC_CM
from .stellar_grid import BandGrid, _bilinear
from .stellar_inputs import AtmosphereGrid, sha256_file

__all__ = [
    "Filter",
    "load_filter",
    "photon_counts",
    "extinction_curve",
    "spectrum_magnitudes",
    "compute_band_grid",
    "ionising_photon_grid",
    "spectral_interpolation_magnitudes",
]


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Filter:
    """A filter throughput curve: ``wavelength`` [Angstrom] and detector ``transmission``."""

    name: str
    sedpy_name: str
    wavelength: np.ndarray
    transmission: np.ndarray
    sha256: str


def load_filter(band: str) -> Filter:
    """Load a filter curve from astro-sedpy by short band name or sedpy filter name.

    Raises
    ------
    ValueError
        If sedpy does not know the filter.
    """
    from sedpy import observate

    sedpy_name = sedpy_filter_name(band)
    if sedpy_name not in observate.list_available_filters():
        raise ValueError(
            f"sedpy does not know the filter {sedpy_name!r} (band {band!r}); "
            "see sedpy.observate.list_available_filters() for valid names"
        )
    f = observate.Filter(sedpy_name)
    return Filter(band, sedpy_name, np.asarray(f.wavelength, float), np.asarray(f.transmission, float), sha256_file(f.filename))


def _union_grid(filt: Filter, wavelength: np.ndarray) -> np.ndarray:
    lo, hi = filt.wavelength[0], filt.wavelength[-1]
    inside = wavelength[(wavelength > lo) & (wavelength < hi)]
    return np.unique(np.concatenate([filt.wavelength, inside]))


def _interp_last_axis(x_new: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Linear interpolation of y(..., n) sampled at x onto x_new, zero outside x."""
    index = np.clip(np.searchsorted(x, x_new) - 1, 0, x.size - 2)
    t = (x_new - x[index]) / (x[index + 1] - x[index])
    out = y[..., index] * (1.0 - t) + y[..., index + 1] * t
    outside = (x_new < x[0]) | (x_new > x[-1])
    out[..., outside] = 0.0
    return out


def photon_counts(
    wavelength: np.ndarray,
    flux_lambda: np.ndarray,
    filt: Filter,
    attenuation_curve=None,
    av: float | Sequence[float] = 0.0,
) -> np.ndarray:
    """Photon-counting band integral ``∫ λ F_λ 10^(-0.4 A_V k(λ)) T(λ) dλ``.

    Parameters
    ----------
    wavelength : numpy.ndarray, shape (n_wave,)
        Increasing wavelengths of the spectrum [Angstrom].
    flux_lambda : numpy.ndarray, shape (..., n_wave)
        Spectra [any F_λ unit].
    filt : Filter
        Filter curve.
    attenuation_curve : callable, optional
        ``k(λ) = A_λ / A_V`` for wavelengths in Angstrom (see :func:`extinction_curve`).
    av : float or sequence of float
        Visual extinctions [mag]; a sequence adds a trailing axis of that length.

    Returns
    -------
    numpy.ndarray
        Counts with shape ``flux_lambda.shape[:-1]`` (plus ``(len(av),)`` for a sequence).
        The spectrum must cover the filter; zero flux is assumed outside it.
    """
    grid = _union_grid(filt, wavelength)
    trans = np.interp(grid, filt.wavelength, filt.transmission, left=0.0, right=0.0)
    flux = _interp_last_axis(grid, wavelength, np.asarray(flux_lambda, dtype=float))
    weight = grid * trans
    avs = np.atleast_1d(np.asarray(av, dtype=float))
    if attenuation_curve is None:
        if np.any(avs != 0.0):
            raise ValueError("an attenuation_curve is needed for non-zero av")
        factors = np.ones((avs.size, grid.size))
    else:
        factors = 10.0 ** (-0.4 * avs[:, None] * attenuation_curve(grid)[None, :])
    counts = np.trapezoid(flux[..., None, :] * (weight * factors), grid, axis=-1)
    return counts if np.ndim(av) else counts[..., 0]


def extinction_curve(law: str = "F99", r_v: float = 3.1):
    """Return ``k(λ) = A_λ / A_V`` of a dust_extinction Milky Way law as a function of λ [Angstrom].

    Parameters
    ----------
    law : {"F99", "G23", "CCM89", "F19"}
        Fitzpatrick (1999), Gordon et al. (2023), Cardelli, Clayton & Mathis (1989)
        or Fitzpatrick et al. (2019); all normalised to 1 at 5500 Angstrom.
    r_v : float
        Total-to-selective extinction ratio.

    Returns
    -------
    callable
        ``curve(wavelength_angstrom) -> numpy.ndarray``; it raises ValueError for a
        wavelength outside the law's validity range.
    """
    import astropy.units as u
    from dust_extinction import parameter_averages

    known = ("F99", "G23", "CCM89", "F19")
    if law not in known:
        raise ValueError(f"unknown extinction law {law!r}; choose one of {known}")
    model = getattr(parameter_averages, law)(Rv=r_v)
    x_lo, x_hi = model.x_range  # inverse microns

    def curve(wavelength_angstrom):
        wave = np.asarray(wavelength_angstrom, dtype=float)
        x = 1e4 / wave
        if np.any(x < x_lo * (1 - 1e-9)) or np.any(x > x_hi * (1 + 1e-9)):
            raise ValueError(
                f"the {law} extinction law is defined for {1e4 / x_hi:.0f}-{1e4 / x_lo:.0f} Angstrom; "
                f"the band spans {wave.min():.0f}-{wave.max():.0f} Angstrom (use law='G23' for 912 A - 32 micron)"
            )
        return np.asarray(model(np.clip(x, x_lo, x_hi) / u.micron), dtype=float)

    curve.law = law
    curve.r_v = r_v
    curve.version = _package_version("dust-extinction")
    return curve


def _vega():
    from sedpy import reference_spectra

    return np.asarray(reference_spectra.vega[:, 0], float), np.asarray(reference_spectra.vega[:, 1], float), reference_spectra.vega_file


def spectrum_magnitudes(wavelength, flux_lambda, filters: Sequence[Filter]) -> np.ndarray:
    """Vega magnitudes of spectra [F_λ in erg s^-1 cm^-2 Angstrom^-1] in several filters.

    Returns an array of shape ``flux_lambda.shape[:-1] + (n_filters,)``; Vega itself
    (sedpy's CALSPEC spectrum) has magnitude 0 in every band.
    """
    vega_wave, vega_flux, _ = _vega()
    out = []
    for f in filters:
        out.append(-2.5 * np.log10(photon_counts(wavelength, flux_lambda, f) / photon_counts(vega_wave, vega_flux, f)))
    return np.stack(out, axis=-1)


# --------------------------------------------------------------------------- band grid
def compute_band_grid(
    grid: AtmosphereGrid, filters: Sequence[Filter], attenuation_curve, av_nodes: Sequence[float]
) -> BandGrid:
    """Project every grid spectrum through every filter, without and with extinction."""
    vega_wave, vega_flux, _ = _vega()
    scale = L_SUN_ERG_S / (4.0 * math.pi * TEN_PARSEC_CM**2)
    avs = np.asarray(av_nodes, dtype=float)
    q = np.empty(grid.flux.shape[:2] + (len(filters),))
    q_ext = np.empty(grid.flux.shape[:2] + (len(filters), avs.size))
    for b, f in enumerate(filters):
        vega_counts = photon_counts(vega_wave, vega_flux, f)
        counts = photon_counts(grid.wavelength, grid.flux, f, attenuation_curve, np.concatenate([[0.0], avs]))
        q[..., b] = -2.5 * np.log10(scale * counts[..., 0] / vega_counts)
        q_ext[..., b, :] = -2.5 * np.log10(scale * counts[..., 1:] / vega_counts)
    return BandGrid(grid.log_teff, grid.log_g, tuple(f.name for f in filters), q, avs, q_ext)


def ionising_photon_grid(grid: AtmosphereGrid) -> np.ndarray:
    """log10 of the hydrogen-ionising photon rate of a 1 L_sun star at every grid node.

    Returns
    -------
    numpy.ndarray, shape (n_teff, n_g)
        ``log10(q_H0 / s^-1)`` with ``q_H0 = L_sun ∫_{λ<911.75 Å} S(λ) λ/(hc) dλ`` for the
        unit-bolometric spectra ``S``; nodes without ionising flux get -300.
    """
    wave = grid.wavelength
    edge = wave <= LYMAN_LIMIT_ANGSTROM
    if edge.sum() < 2:
        raise ValueError("the atmosphere grid does not extend below the Lyman limit (911.75 Angstrom)")
    photons = np.trapezoid(grid.flux[..., edge] * wave[edge], wave[edge], axis=-1) / (_H * _C_ANGSTROM)
    q = L_SUN_ERG_S * photons
    return np.where(q > 0, np.log10(np.maximum(q, 1e-300)), -300.0)


def spectral_interpolation_magnitudes(grid: AtmosphereGrid, filters, log_luminosity, log_teff, log_g):
    """Reference implementation: interpolate the spectra themselves, then project.

    Used by the build to verify :func:`star_photometry_from_band_grid` (the two agree
    to rounding because projection is linear).  Slow; meant for a few stars.
    """
    ix, iy, tx, ty = _bilinear(grid.log_teff, grid.log_g, np.atleast_1d(log_teff), np.atleast_1d(log_g))
    s = (
        grid.flux[ix, iy] * ((1 - tx) * (1 - ty))[:, None]
        + grid.flux[ix + 1, iy] * (tx * (1 - ty))[:, None]
        + grid.flux[ix, iy + 1] * ((1 - tx) * ty)[:, None]
        + grid.flux[ix + 1, iy + 1] * (tx * ty)[:, None]
    )
    flux_10pc = s * (10 ** np.atleast_1d(log_luminosity) * L_SUN_ERG_S / (4 * math.pi * TEN_PARSEC_CM**2))[:, None]
    return spectrum_magnitudes(grid.wavelength, flux_10pc, filters)
