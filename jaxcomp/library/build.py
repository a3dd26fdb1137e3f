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
import io
import json
import math
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._io import array_digest, atomic_write_bytes
from .band_projection import (
    _package_version,
    _vega,
    compute_band_grid,
    extinction_curve,
    ionising_photon_grid,
    load_filter,
    spectral_interpolation_magnitudes,
    spectrum_magnitudes,
)
from .bands import DEFAULT_BANDS
from .physical_constants import L_SUN_ERG_S, TEN_PARSEC_CM
from .stellar_grid import (
    _bilinear,
    evaluate_extinction_polynomial,
    extinction_polynomial,
    star_photometry_from_band_grid,
)
from .stellar_inputs import extend_grid_with_planck, read_ck04_grid, read_isochrones, sha256_file

__all__ = [
    "EXTINCTION_FIT_AV",
    "EXTINCTION_CHECK_AV",
    "FORMAT_VERSION",
    "build_star_photometry",
    "serialise_star_photometry",
    "write_star_photometry",
]

#: A_V [mag] at which band extinctions are computed exactly for the polynomial fit.
EXTINCTION_FIT_AV = (0.75, 1.5, 2.25, 3.0)
#: A_V [mag] at which the polynomial is checked against the exact band extinction.
EXTINCTION_CHECK_AV = (0.375, 1.125, 1.875, 2.625)


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
