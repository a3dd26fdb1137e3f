"""Build the per-star HST photometry table from the raw stellar inputs.

This module is used by ``scripts/build_star_photometry.py``; users of the shipped
tables never need it or the raw files.  It needs ``astro-sedpy`` (filter curves and
the Vega spectrum), ``dust-extinction`` (the extinction curve) and astropy (FITS).

Method
------
1. **Atmospheres.**  The Castelli & Kurucz (2004) ATLAS9 [M/H]=0 grid (76 Teff from
   3500 to 50000 K by 11 log g from 0 to 5) is read and every spectrum is normalised
   to unit bolometric flux, ``∫ S(λ) dλ = 1``.  Gravities that the atlas lacks at a
   given Teff (all-zero columns, e.g. log g < 5 at 50000 K) are filled with the nearest
   available gravity at that Teff (gravity clamping).  Outside 3500-50000 K the grid is
   extended with the edge model multiplied by the Planck ratio ``B_λ(T)/B_λ(T_edge)``
   and renormalised (cool TP-AGB stars down to 2000 K; hot post-AGB and Wolf-Rayet-like
   stars up to 10^5.45 K).  The WM-basic hot-star spectra (Smith et al. 2002; layout as
   FSPS reads it, see :mod:`jaxcomp.library.wmbasic`) are *not* used: at fixed bolometric
   flux their optical magnitudes scatter by up to ~0.2 mag against the CK04 models with
   no monotonic trend in gravity, and their hydrogen-ionising photon rates change a fully
   sampled population's Q(H0) by at most 0.03 dex at 1-5 Myr (``scripts/decompose_q_h0.py``);
   hot stars therefore use the CK04 grid (clamped to its gravities).
   :func:`jaxcomp.library.wmbasic.compare_wmbasic` measures the difference and the build
   records it.
2. **Bands.**  For every grid node and band the photon-counting integral
   ``∫ λ S(λ) T(λ) dλ`` is evaluated on the union of the filter and spectrum
   wavelength grids (both linearly interpolated) and turned into
   ``Q_band(Teff, log g) = -2.5 log10[(L_sun / 4π (10 pc)^2) ∫λ S T dλ / ∫λ F_Vega T dλ]``,
   the absolute Vega magnitude of a 1 L_sun star of that Teff and gravity.  Vega is
   sedpy's ``alpha_lyr_stis_005`` CALSPEC spectrum, so Vega has magnitude 0 in every
   band by construction.
3. **Stars.**  Interpolating unit-bolometric spectra linearly in (log Teff, log g) and
   projecting through a filter commute (both are linear and every node integrates
   to one), so a star's magnitude is exactly
   ``M_band = -2.5 log10(L/L_sun) - 2.5 log10 Σ_k w_k 10^(-0.4 Q_band,k)`` with the
   bilinear weights ``w_k`` of its (log Teff, log g): the atmosphere interpolated in
   (Teff, log g), scaled to ``R^2 = L / (4π σ Teff^4)`` and placed at 10 pc.
4. **Extinction.**  The same projection with the spectrum multiplied by
   ``10^(-0.4 A_V k(λ))`` (``k = A_λ/A_V`` of the chosen law, default Fitzpatrick 1999
   with R_V = 3.1 from ``dust_extinction``) gives each star's band extinction
   ``A_band(A_V)`` through its own spectrum and the filter; it is stored as the quartic
   ``A_band = Σ_{k=1..4} c_k A_V^k`` through the exact values at A_V = 0.75, 1.5, 2.25
   and 3 mag (exact interpolation; the build measures the error half-way between the
   nodes: at most ~0.001 mag, for cool stars in F275W whose counts come partly from
   the filter's red leak; a cubic through A_V = 1, 2, 3 would err by 0.006 mag).
   Because extinction is linear in flux, summing extincted stellar fluxes gives the
   extincted cluster photometry through the cluster's spectrum shape exactly.
5. **Ionising photons.**  For every grid node the hydrogen-ionising photon rate of a
   1 L_sun star, ``q_H0 = L_sun ∫_{λ < 911.75 Å} S(λ) λ / (h c) dλ`` [s^-1], is integrated
   from the same unit-bolometric spectrum (trapezoid on the atlas wavelengths, whose
   grid starts at 90.9 Å) and stored as ``grid_log_q_h0``.  The integral is linear in
   the spectrum, so a star's rate is exactly ``Q(H0) = (L/L_sun) Σ_k w_k q_H0,k`` with the
   same bilinear weights as its band fluxes.  The nebular emission of
   :mod:`jaxcomp.library.nebular` is driven by the sum of these rates over a cluster's stars.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import platform
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import array_digest, atomic_write_bytes
from .bands import DEFAULT_BANDS, sedpy_filter_name
from .stellar_grid import (
    BandGrid,
    _bilinear,
    evaluate_extinction_polynomial,
    extinction_polynomial,
    star_photometry_from_band_grid,
)

__all__ = [
    "L_SUN_ERG_S",
    "TEN_PARSEC_CM",
    "AtmosphereGrid",
    "BandGrid",
    "read_isochrones",
    "read_ck04_grid",
    "extend_grid_with_planck",
    "load_filter",
    "photon_counts",
    "extinction_curve",
    "compute_band_grid",
    "ionising_photon_grid",
    "star_photometry_from_band_grid",
    "extinction_polynomial",
    "evaluate_extinction_polynomial",
    "spectrum_magnitudes",
    "build_star_photometry",
    "serialise_star_photometry",
]

#: Nominal solar luminosity (IAU 2015 resolution B3) [erg s^-1].
L_SUN_ERG_S = 3.828e33
#: 10 parsec [cm].
TEN_PARSEC_CM = 10.0 * 3.0856775814913673e18
_SIGMA_SB = 5.670374419e-5  # erg s^-1 cm^-2 K^-4
_H = 6.62607015e-27  # erg s
_C_ANGSTROM = 2.99792458e18  # Angstrom s^-1
_K_B = 1.380649e-16  # erg K^-1
#: Hydrogen ionisation edge [Angstrom] (13.598 eV).
LYMAN_LIMIT_ANGSTROM = 911.75

#: A_V [mag] at which band extinctions are computed exactly for the polynomial fit.
EXTINCTION_FIT_AV = (0.75, 1.5, 2.25, 3.0)
#: A_V [mag] at which the polynomial is checked against the exact band extinction.
EXTINCTION_CHECK_AV = (0.375, 1.125, 1.875, 2.625)

_COOL_EXTENSION_TEFF = (2000.0, 2250.0, 2500.0, 2750.0, 3000.0, 3250.0)
_HOT_EXTENSION_LOG_TEFF_STEP = 0.025
_HOT_EXTENSION_LOG_TEFF_MAX = 5.45

ISOCHRONE_COLUMNS = (
    "log_age", "initial_mass", "current_mass", "log_luminosity", "log_teff", "log_g", "composition", "phase",
)


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- inputs
def read_isochrones(path: str | Path) -> dict[str, np.ndarray]:
    """Read an FSPS-format isochrone file.

    Parameters
    ----------
    path : str or Path
        Whitespace table with columns log10(age/yr), initial mass [Msun], current
        mass [Msun], log10(L/Lsun), log10(Teff/K), log g [cgs], composition flag,
        evolutionary phase; ``#`` lines are comments.

    Returns
    -------
    dict of str -> numpy.ndarray
        One array per column (names in :data:`ISOCHRONE_COLUMNS`), rows in file order.

    Raises
    ------
    ValueError
        If the file does not have 8 numeric columns, or initial mass decreases
        within an isochrone.
    """
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.shape[1] != len(ISOCHRONE_COLUMNS):
        raise ValueError(f"isochrone file {path} has {data.shape[1]} columns, expected {len(ISOCHRONE_COLUMNS)}")
    out = {name: data[:, i].copy() for i, name in enumerate(ISOCHRONE_COLUMNS)}
    ages = out["log_age"]
    for age in np.unique(ages):
        mass = out["initial_mass"][ages == age]
        if np.any(np.diff(mass) < 0):
            raise ValueError(f"initial mass decreases within the log age {age} isochrone of {path}")
    return out


@dataclass(frozen=True)
class AtmosphereGrid:
    """Stellar atmosphere spectra on a rectangular (log Teff, log g) grid.

    Attributes
    ----------
    log_teff : numpy.ndarray, shape (n_teff,)
        log10 effective temperature nodes [K], increasing.
    log_g : numpy.ndarray, shape (n_g,)
        Surface gravity nodes log10(g / cm s^-2), increasing.
    wavelength : numpy.ndarray, shape (n_wave,)
        Wavelength [Angstrom].
    flux : numpy.ndarray, shape (n_teff, n_g, n_wave)
        Spectral shape normalised to unit bolometric flux [Angstrom^-1].
    origin : numpy.ndarray of str, shape (n_teff, n_g)
        ``"ck04"`` (model from the atlas), ``"ck04_gravity_clamped"`` (filled from the
        nearest available gravity), ``"planck_cool"`` / ``"planck_hot"`` (Planck-ratio
        extension of the edge model).
    """

    log_teff: np.ndarray
    log_g: np.ndarray
    wavelength: np.ndarray
    flux: np.ndarray
    origin: np.ndarray


def read_ck04_grid(directory: str | Path) -> tuple[AtmosphereGrid, dict[str, str]]:
    """Read the Castelli & Kurucz (2004) solar-metallicity atlas.

    Parameters
    ----------
    directory : str or Path
        Folder with ``ckp00_<Teff>.fits`` files (WAVELENGTH [Angstrom] and g00..g50
        FLAM surface-flux columns).

    Returns
    -------
    grid : AtmosphereGrid
        Unit-bolometric spectra, missing gravities filled by gravity clamping.
    file_hashes : dict of str -> str
        SHA-256 of every file read, by file name.
    """
    from astropy.io import fits

    directory = Path(directory)
    files = sorted(directory.glob("ckp00_*.fits"), key=lambda p: int(re.findall(r"_(\d+)\.fits$", p.name)[0]))
    if not files:
        raise ValueError(f"no ckp00_<Teff>.fits files found in {directory}")
    teff = []
    spectra = []
    present = []
    wavelength = None
    gravity_columns = None
    hashes = {}
    for path in files:
        hashes[path.name] = sha256_file(path)
        with fits.open(path) as hdul:
            table = hdul[1].data
            names = [c for c in table.columns.names if c.lower().startswith("g")]
            if gravity_columns is None:
                gravity_columns = names
            elif names != gravity_columns:
                raise ValueError(f"{path.name} has gravity columns {names}, expected {gravity_columns}")
            wave = np.asarray(table["WAVELENGTH"], dtype=float)
            if wavelength is None:
                wavelength = wave
            elif not np.array_equal(wave, wavelength):
                raise ValueError(f"{path.name} has a different wavelength grid from {files[0].name}")
            block = np.stack([np.asarray(table[c], dtype=float) for c in names])
        teff.append(float(re.findall(r"_(\d+)\.fits$", path.name)[0]))
        present.append(block.max(axis=1) > 0)
        spectra.append(block)
    flux = np.stack(spectra)  # (n_teff, n_g, n_wave)
    present = np.stack(present)
    log_g = np.array([int(c[1:]) / 10.0 for c in gravity_columns])
    origin = np.where(present, "ck04", "ck04_gravity_clamped").astype("U24")
    for i in range(flux.shape[0]):
        have = np.flatnonzero(present[i])
        if have.size == 0:
            raise ValueError(f"no gravity available at Teff {teff[i]} K")
        for j in range(flux.shape[1]):
            if not present[i, j]:
                flux[i, j] = flux[i, have[np.argmin(np.abs(have - j))]]
    flux = flux / np.trapezoid(flux, wavelength, axis=-1)[..., None]
    return AtmosphereGrid(np.log10(np.array(teff)), log_g, wavelength, flux, origin), hashes


def _planck_lambda(wavelength_angstrom: np.ndarray, teff: float) -> np.ndarray:
    """Planck B_λ up to a constant factor, computed stably in log space."""
    x = _H * _C_ANGSTROM / (wavelength_angstrom * _K_B * teff)
    return wavelength_angstrom**-5 / np.expm1(np.minimum(x, 700.0))


def extend_grid_with_planck(grid: AtmosphereGrid) -> AtmosphereGrid:
    """Extend the atmosphere grid below its coolest and above its hottest Teff.

    Each added node is the edge model (at the same gravity) times the Planck ratio
    ``B_λ(T) / B_λ(T_edge)``, renormalised to unit bolometric flux.  Cool nodes are at
    2000-3250 K (every 250 K); hot nodes every 0.025 dex in log Teff up to 10^5.45 K.
    """
    wave = grid.wavelength
    t_cool_edge = 10 ** grid.log_teff[0]
    t_hot_edge = 10 ** grid.log_teff[-1]
    cool = [t for t in _COOL_EXTENSION_TEFF if t < t_cool_edge * 0.999]
    n_hot = int(math.floor((_HOT_EXTENSION_LOG_TEFF_MAX - grid.log_teff[-1]) / _HOT_EXTENSION_LOG_TEFF_STEP + 1e-9))
    hot = [10 ** (grid.log_teff[-1] + _HOT_EXTENSION_LOG_TEFF_STEP * (k + 1)) for k in range(n_hot)]

    def scaled(edge_flux, t_new, t_edge):
        ratio = _planck_lambda(wave, t_new) / _planck_lambda(wave, t_edge)
        out = edge_flux * ratio[None, :]
        return out / np.trapezoid(out, wave, axis=-1)[:, None]

    cool_flux = [scaled(grid.flux[0], t, t_cool_edge) for t in cool]
    hot_flux = [scaled(grid.flux[-1], t, t_hot_edge) for t in hot]
    n_g = grid.log_g.size
    flux = np.concatenate([np.stack(cool_flux)] + [grid.flux] + [np.stack(hot_flux)], axis=0) if cool and hot else grid.flux
    log_teff = np.concatenate([np.log10(cool), grid.log_teff, np.log10(hot)])
    origin = np.concatenate(
        [np.full((len(cool), n_g), "planck_cool", dtype="U24"), grid.origin, np.full((len(hot), n_g), "planck_hot", dtype="U24")]
    )
    return AtmosphereGrid(log_teff, grid.log_g, wave, flux, origin)


# ------------------------------------------------------------------- filters and dust
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


# ------------------------------------------------------------------------------ build
def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def build_star_photometry(
    isochrone_path: str | Path,
    atmosphere_directory: str | Path,
    bands: Sequence[str] = DEFAULT_BANDS,
    extinction_law: str = "F99",
    r_v: float = 3.1,
    hot_star_directory: str | Path | None = None,
    n_spectral_checks: int = 200,
    seed: int = 0,
) -> dict:
    """Compute the per-star photometry table of one isochrone set.

    Parameters
    ----------
    isochrone_path : str or Path
        FSPS-format isochrone file (e.g. ``padova2007_z0.0190.dat``).
    atmosphere_directory : str or Path
        Folder with the CK04 ``ckp00_*.fits`` files.
    bands : sequence of str
        Short band names (see :mod:`jaxcomp.library.bands`) or sedpy filter names.
    extinction_law : str
        dust_extinction law name (default ``"F99"``, Fitzpatrick 1999).
    r_v : float
        R_V of the law (default 3.1, the Milky Way average).
    hot_star_directory : str or Path, optional
        WM-basic folder; if given, :func:`jaxcomp.library.wmbasic.compare_wmbasic` is recorded
        in the provenance.
    n_spectral_checks : int
        Number of random isochrone points re-computed by explicit spectral
        interpolation to verify the band-grid shortcut.
    seed : int
        Seed of that random choice.

    Returns
    -------
    dict
        Arrays (see :func:`serialise_star_photometry` for the keys) and a
        ``"provenance"`` dict.
    """
    isochrone_path = Path(isochrone_path)
    iso = read_isochrones(isochrone_path)
    ck_grid, ck_hashes = read_ck04_grid(atmosphere_directory)
    grid = extend_grid_with_planck(ck_grid)
    filters = [load_filter(b) for b in bands]
    curve = extinction_curve(extinction_law, r_v)
    av_nodes = np.array(EXTINCTION_FIT_AV + EXTINCTION_CHECK_AV)
    band_grid = compute_band_grid(grid, filters, curve, av_nodes)

    mags, band_ext = star_photometry_from_band_grid(band_grid, iso["log_luminosity"], iso["log_teff"], iso["log_g"])
    grid_log_q_h0 = ionising_photon_grid(grid)
    n_fit = len(EXTINCTION_FIT_AV)
    coefficients = extinction_polynomial(av_nodes[:n_fit], band_ext[..., :n_fit])
    fit_error = np.abs(evaluate_extinction_polynomial(coefficients, av_nodes[n_fit:]) - band_ext[..., n_fit:])

    # verify the band-grid shortcut against explicit spectral interpolation
    rng = np.random.default_rng(seed)
    pick = rng.choice(iso["log_age"].size, size=min(n_spectral_checks, iso["log_age"].size), replace=False)
    direct = spectral_interpolation_magnitudes(
        grid, filters, iso["log_luminosity"][pick], iso["log_teff"][pick], iso["log_g"][pick]
    )
    spectral_check = float(np.max(np.abs(direct - mags[pick])))

    sun_mags, _ = star_photometry_from_band_grid(band_grid, 0.0, math.log10(5772.0), 4.44)
    vega_wave, vega_flux, vega_file = _vega()
    vega_mags = spectrum_magnitudes(vega_wave, vega_flux, filters)

    # A_band / A_V of a 7000 K, log g 4.5 star (cf. Schlafly & Finkbeiner 2011)
    _, ext_7000 = star_photometry_from_band_grid(band_grid, 0.0, math.log10(7000.0), 4.5)
    coef_7000 = extinction_polynomial(av_nodes[:n_fit], ext_7000[..., :n_fit])[0]  # (n_bands, n_fit)
    ratio_av1 = evaluate_extinction_polynomial(coef_7000, 1.0)[:, 0]
    log_t_lo, log_t_hi = grid.log_teff[0], grid.log_teff[-1]
    clamped_t = int(np.sum((iso["log_teff"] < log_t_lo) | (iso["log_teff"] > log_t_hi)))
    clamped_g = int(np.sum((iso["log_g"] < grid.log_g[0]) | (iso["log_g"] > grid.log_g[-1])))

    provenance = {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "builder": "jaxcomp.library.build.build_star_photometry",
        "command": " ".join(sys.argv),
        "isochrones": {"file": isochrone_path.name, "sha256": sha256_file(isochrone_path)},
        "atmospheres": {
            "library": "Castelli & Kurucz (2004) ATLAS9 [M/H]=0 (ck04_solar)",
            "files_sha256": ck_hashes,
            "gravity_rule": "missing gravities clamped to the nearest available gravity at that Teff",
            "teff_extension": "Planck-ratio scaling of the 3500 K (cool) and 50000 K (hot) models",
            "grid_log_teff_range": [float(log_t_lo), float(log_t_hi)],
            "n_points_teff_outside_grid_clamped": clamped_t,
            "n_points_log_g_outside_0_5_clamped": clamped_g,
            "hot_stars": "CK04 (clamped gravity); WM-basic not used",
        },
        "filters": {f.name: {"sedpy_name": f.sedpy_name, "sha256": f.sha256} for f in filters},
        "vega": {"file": Path(vega_file).name, "sha256": sha256_file(vega_file)},
        "extinction": {
            "law": extinction_law,
            "r_v": r_v,
            "package": "dust-extinction",
            "normalisation": "A_lambda / A_V = 1 at 5500 Angstrom",
            "parameterisation": "A_band = sum_k c_k A_V**k (k = 1..4) through exact values at A_V = 0.75, 1.5, 2.25, 3",
            "max_polynomial_error_mag_at_av_0.375_1.125_1.875_2.625": {
                b: float(fit_error[:, i].max()) for i, b in enumerate(band_grid.bands)
            },
            "a_band_over_a_v_7000K_logg4.5_av1": {b: float(ratio_av1[i]) for i, b in enumerate(band_grid.bands)},
            "a_band_over_a_v_7000K_logg4.5_av_to_0": {b: float(coef_7000[i, 0]) for i, b in enumerate(band_grid.bands)},
        },
        "constants": {"L_sun_erg_s": L_SUN_ERG_S, "ten_parsec_cm": TEN_PARSEC_CM},
        "checks": {
            "sun_1Lsun_5772K_logg4.44_absolute_mag": {b: float(sun_mags[0, i]) for i, b in enumerate(band_grid.bands)},
            "vega_mag": {b: float(vega_mags[i]) for i, b in enumerate(band_grid.bands)},
            "band_grid_vs_spectral_interpolation_max_abs_mag": spectral_check,
            "n_spectral_checks": int(pick.size),
            "log_q_h0_per_lsun_at_log_g_4": {
                f"{t:.0f}K": float(_bilinear_log_q(grid.log_teff, grid.log_g, grid_log_q_h0, math.log10(t), 4.0))
                for t in (20000.0, 30000.0, 40000.0, 50000.0)
            },
        },
        "ionising_photons": {
            "quantity": "grid_log_q_h0 = log10 of the H-ionising photon rate [s^-1] of a 1 L_sun star per node",
            "integral": "L_sun * trapezoid(S(lambda) lambda / (h c)) over the atlas wavelengths <= 911.75 Angstrom",
            "per_star": "Q(H0) = (L/L_sun) * sum_k w_k 10**grid_log_q_h0_k (bilinear weights of the band grid)",
        },
        "versions": {
            "jaxcomp": _jaxcomp_version(),
            "astro-sedpy": _package_version("astro-sedpy"),
            "dust-extinction": _package_version("dust-extinction"),
            "numpy": np.__version__,
            "astropy": _package_version("astropy"),
            "python": platform.python_version(),
        },
    }
    if hot_star_directory is not None:
        from .wmbasic import compare_wmbasic

        provenance["atmospheres"]["wmbasic_check"] = compare_wmbasic(hot_star_directory, band_grid, filters)

    return {
        "bands": np.array(band_grid.bands),
        "sedpy_names": np.array([f.sedpy_name for f in filters]),
        "log_age": iso["log_age"],
        "initial_mass": iso["initial_mass"],
        "current_mass": iso["current_mass"],
        "log_luminosity": iso["log_luminosity"],
        "log_teff": iso["log_teff"],
        "log_g": iso["log_g"],
        "phase": iso["phase"],
        "magnitude": mags,
        "extinction_coefficients": coefficients,
        "grid_log_teff": band_grid.log_teff,
        "grid_log_g": band_grid.log_g,
        "grid_q_mag": band_grid.q_mag,
        "grid_av": band_grid.av_nodes,
        "extinction_fit_av": np.array(EXTINCTION_FIT_AV),
        "grid_q_mag_extincted": band_grid.q_mag_extincted,
        "grid_log_q_h0": grid_log_q_h0,
        "provenance": provenance,
    }


def _bilinear_log_q(nodes_teff, nodes_g, log_q, log_teff, log_g) -> float:
    ix, iy, tx, ty = _bilinear(nodes_teff, nodes_g, np.atleast_1d(log_teff), np.atleast_1d(log_g))
    lin = 10.0**log_q
    value = (lin[ix, iy] * (1 - tx) * (1 - ty) + lin[ix + 1, iy] * tx * (1 - ty)
             + lin[ix, iy + 1] * (1 - tx) * ty + lin[ix + 1, iy + 1] * tx * ty)
    return float(np.log10(value[0]))


def _jaxcomp_version() -> str:
    from .._version import __version__

    return __version__


#: dtypes of the serialised arrays (float32 where 1e-6 relative precision is ample).
_STORED_DTYPES = {
    "log_age": np.float32,
    "initial_mass": np.float64,  # ties between phases are resolved only at ~1e-8 relative
    "current_mass": np.float32,
    "log_luminosity": np.float32,
    "log_teff": np.float32,
    "log_g": np.float32,
    "phase": np.int8,
    "magnitude": np.float32,
    "grid_log_teff": np.float64,
    "grid_log_g": np.float64,
    "grid_q_mag": np.float64,
    "grid_av": np.float64,
    "extinction_fit_av": np.float64,
    "grid_q_mag_extincted": np.float64,
    "grid_log_q_h0": np.float64,
}

FORMAT_VERSION = 1


def serialise_star_photometry(table: dict) -> bytes:
    """Serialise a built table to compressed ``.npz`` bytes (no pickled objects).

    Per-star extinction polynomials are not stored: they follow exactly from each
    star's (log Teff, log g) and the stored band grid (``grid_q_mag_extincted`` at
    ``grid_av``), and :class:`jaxcomp.library.StarPhotometry` recomputes them on load.
    The archive holds the arrays of :data:`_STORED_DTYPES`, ``bands`` and
    ``sedpy_names`` (unicode arrays), ``format_version`` and ``provenance_json`` (the
    provenance plus a ``content_sha256`` over all arrays, which the loader verifies).
    """
    arrays = {name: np.ascontiguousarray(np.asarray(table[name]).astype(dtype)) for name, dtype in _STORED_DTYPES.items()}
    arrays["bands"] = np.asarray(table["bands"]).astype("U32")
    arrays["sedpy_names"] = np.asarray(table["sedpy_names"]).astype("U64")
    names = sorted(arrays)
    provenance = dict(table["provenance"])
    provenance["content_sha256"] = array_digest(*(arrays[n] for n in names))
    provenance["format_version"] = FORMAT_VERSION
    arrays["provenance_json"] = np.array(json.dumps(provenance, sort_keys=True))
    arrays["format_version"] = np.array(FORMAT_VERSION, dtype=np.int32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def write_star_photometry(table: dict, path: str | Path) -> Path:
    """Write a built table atomically (temporary file + ``os.replace``), world-readable."""
    import os

    path = atomic_write_bytes(path, serialise_star_photometry(table))
    os.chmod(path, 0o644)
    return path
