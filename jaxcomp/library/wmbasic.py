"""WM-basic hot-star spectra (Smith, Norris & Crowther 2002): reading and checks.

The raw inputs hold the solar-metallicity WM-basic O-star grid that FSPS distributes
(``SPECTRA/Hot_spectra/WMBASIC_z0.0200.spec`` and ``WMBASIC.teff``; the FSPS README names
them "the libraries for O stars ... from Smith et al. 2002", the grid Starburst99 uses for
its ``PAU+SMI`` atmospheres).  Layout, as FSPS's ``sps_setup.f90`` reads it: one row per
wavelength [Angstrom], then 11 spectra (the ``wmbasic.teff`` log Teff nodes, 25000-50000 K)
at log g = 3.5, then 11 at log g = 4.0, then 11 at log g = 4.5; fluxes per unit frequency.

The star tables do not use these spectra (hot stars use the CK04 atlas, see
:mod:`jaxcomp.library.build`); they serve as an independent check of the band magnitudes
(:func:`compare_wmbasic`, recorded in the build provenance) and of the hydrogen-ionising
photon rates (``scripts/decompose_q_h0.py``).  Functions here import
:mod:`jaxcomp.library.stellar_inputs` and :mod:`jaxcomp.library.band_projection` when called
(:mod:`jaxcomp.library.build` imports this module lazily).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .physical_constants import _C_ANGSTROM

__all__ = ["WMBASIC_LOG_G", "compare_wmbasic", "read_wmbasic_grid"]

#: Surface gravities log10(g / cm s^-2) of the three blocks of the WM-basic file.
WMBASIC_LOG_G = (3.5, 4.0, 4.5)
_MIN_WAVELENGTH_ANGSTROM = 90.0  # the grid's first points are zeros below this


def read_wmbasic_grid(hot_directory: str | Path):
    """Read the WM-basic grid as a :class:`~jaxcomp.library.stellar_inputs.AtmosphereGrid`.

    Parameters
    ----------
    hot_directory : str or Path
        Folder with ``wmbasic_z0.0200.spec`` (any ``wmbasic_*.spec``; the first in name
        order is read) and ``wmbasic.teff``.

    Returns
    -------
    grid : AtmosphereGrid
        Nodes (11 log Teff) x (3 log g), spectra converted from F_ν to F_λ and normalised
        to unit bolometric flux [Angstrom^-1] on the file's wavelengths above 90 Angstrom;
        ``origin`` is ``"wmbasic"``.
    hashes : dict
        sha256 of the files read, by file name.

    Raises
    ------
    FileNotFoundError
        If the folder holds no ``wmbasic_*.spec`` or no ``wmbasic.teff``.
    ValueError
        If the file does not hold 3 x (number of Teff nodes) spectra.
    """
    from .stellar_inputs import AtmosphereGrid, sha256_file

    hot_directory = Path(hot_directory)
    spec_files = sorted(hot_directory.glob("wmbasic_*.spec"))
    teff_file = hot_directory / "wmbasic.teff"
    if not spec_files or not teff_file.is_file():
        raise FileNotFoundError(
            f"{hot_directory} must hold wmbasic_*.spec and wmbasic.teff (the FSPS WM-basic "
            "hot-star grid); pass the raw inputs' atmospheres/hot folder"
        )
    data = np.loadtxt(spec_files[0])
    log_teff = np.atleast_1d(np.loadtxt(teff_file))
    wave = data[:, 0]
    f_nu = data[:, 1:]
    n_t = log_teff.size
    if f_nu.shape[1] != n_t * len(WMBASIC_LOG_G):
        raise ValueError(
            f"WM-basic file {spec_files[0].name} has {f_nu.shape[1]} spectra, expected "
            f"{n_t * len(WMBASIC_LOG_G)} (3 gravities x {n_t} Teff)"
        )
    keep = wave > _MIN_WAVELENGTH_ANGSTROM
    wave = wave[keep]
    f_lam = f_nu[keep] * _C_ANGSTROM / wave[:, None] ** 2
    f_lam = f_lam / np.trapezoid(f_lam, wave, axis=0)[None, :]
    # columns: block (gravity) major, Teff minor -> (n_teff, n_g, n_wave)
    flux = f_lam.T.reshape(len(WMBASIC_LOG_G), n_t, wave.size).transpose(1, 0, 2)
    grid = AtmosphereGrid(
        log_teff=log_teff,
        log_g=np.array(WMBASIC_LOG_G),
        wavelength=wave,
        flux=flux,
        origin=np.full((n_t, len(WMBASIC_LOG_G)), "wmbasic"),
    )
    return grid, {p.name: sha256_file(p) for p in (*spec_files, teff_file)}


def compare_wmbasic(hot_directory: str | Path, band_grid, filters: Sequence) -> dict:
    """Compare WM-basic hot-star band magnitudes with the CK04 grid at equal Teff and gravity.

    Each WM-basic spectrum (:func:`read_wmbasic_grid`) is projected like the CK04 models;
    the result is the difference of 1 L_sun magnitudes (WM-basic minus CK04).

    Returns
    -------
    dict
        ``{"max_abs_difference_mag": {band: float}, "median_difference_mag": {band: float},
        "n_models": int, "layout_assumed": str, "file_sha256": dict, "used": False}``.
    """
    from .band_projection import _vega, photon_counts
    from .physical_constants import L_SUN_ERG_S, TEN_PARSEC_CM
    from .stellar_grid import star_photometry_from_band_grid

    grid, hashes = read_wmbasic_grid(hot_directory)
    spectra = grid.flux.reshape(-1, grid.wavelength.size)  # (n_teff * n_g, n_wave), Teff major
    vega_wave, vega_flux, _ = _vega()
    scale = L_SUN_ERG_S / (4.0 * math.pi * TEN_PARSEC_CM**2)
    q_wmb = np.stack(
        [
            -2.5
            * np.log10(
                scale
                * photon_counts(grid.wavelength, spectra, f)
                / photon_counts(vega_wave, vega_flux, f)
            )
            for f in filters
        ],
        axis=-1,
    )  # (n_teff * n_g, n_bands)
    diffs = []
    for it, log_teff in enumerate(grid.log_teff):
        for ig, log_g in enumerate(grid.log_g):
            mags_ck, _ = star_photometry_from_band_grid(band_grid, 0.0, log_teff, log_g)
            diffs.append(q_wmb[it * grid.log_g.size + ig] - mags_ck[0])
    diffs = np.array(diffs)
    return {
        "max_abs_difference_mag": {
            b: float(np.max(np.abs(diffs[:, i]))) for i, b in enumerate(band_grid.bands)
        },
        "median_difference_mag": {
            b: float(np.median(diffs[:, i])) for i, b in enumerate(band_grid.bands)
        },
        "n_models": int(diffs.shape[0]),
        "layout_assumed": "wavelength, then 3 blocks (log g 3.5, 4.0, 4.5) of 11 Teff "
        "(wmbasic.teff), F_nu (FSPS sps_setup.f90)",
        "file_sha256": hashes,
        "used": False,
    }
