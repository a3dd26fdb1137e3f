"""Read the raw stellar inputs of the per-star photometry build.

FSPS-format isochrones (:func:`read_isochrones`), the Castelli & Kurucz (2004) atmosphere
grid (:class:`AtmosphereGrid`, :func:`read_ck04_grid`, gravity clamping) and its
Planck-ratio extension in Teff (:func:`extend_grid_with_planck`), with the SHA-256 file
digests (:func:`sha256_file`) that the build records.  The method is described in
:mod:`jaxcomp.library.build` (step 1).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .physical_constants import _C_ANGSTROM, _H, _K_B

__all__ = [
    "ISOCHRONE_COLUMNS",
    "AtmosphereGrid",
    "sha256_file",
    "read_isochrones",
    "read_ck04_grid",
    "extend_grid_with_planck",
]

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
