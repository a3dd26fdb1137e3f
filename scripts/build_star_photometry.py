#!/usr/bin/env python
"""Regenerate jaxcomp's per-star HST photometry tables from the raw stellar inputs.

For every isochrone point (FSPS-format Padova2007 / PARSEC isochrones) the absolute
Vega magnitudes in the LEGUS bands (and any extra sedpy band requested) are computed
from the Castelli & Kurucz (2004) atmospheres interpolated in (Teff, log g), scaled to
the star's luminosity and placed at 10 pc, together with per-star band extinction
polynomials for the Fitzpatrick (1999) R_V = 3.1 Milky Way law.  The method is
described in :mod:`jaxcomp.library.build`.  Output: compressed ``.npz`` files (float32
arrays + provenance JSON with input sha256s, package versions and date) written
atomically into ``data/stellar/``.

Needs astro-sedpy, dust-extinction and astropy, and the raw inputs (the ``stellar/``
folder of the project's shared data: isochrones/, atmospheres/ck04_solar/,
atmospheres/hot/).  Users of jaxcomp never need to run this.

Examples
--------
python scripts/build_star_photometry.py                      # all three isochrone sets
python scripts/build_star_photometry.py --isochrones padova2007_z0.0190 --extra-band wfc3_uvis_f555w
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxcomp.library.bands import DEFAULT_BANDS  # noqa: E402
from jaxcomp.library.build import build_star_photometry, write_star_photometry  # noqa: E402

ISOCHRONE_SETS = ("padova2007_z0.0190", "parsec_z0.0140", "parsec_z0.0200")


def default_raw_directory() -> Path:
    """Raw inputs: $JAXCOMP_STELLAR_RAW, else shared/data/stellar beside the repository, else
    /work/shared."""
    candidates = [
        os.environ.get("JAXCOMP_STELLAR_RAW"),
        REPO.parent / "shared" / "data" / "stellar",
        "/work/shared/data/stellar",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "isochrones").is_dir():
            return Path(candidate)
    raise SystemExit("raw stellar inputs not found; pass --raw-dir or set JAXCOMP_STELLAR_RAW")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--raw-dir", type=Path, default=None, help="folder with isochrones/ and atmospheres/"
    )
    parser.add_argument(
        "--isochrones", nargs="+", default=list(ISOCHRONE_SETS), choices=ISOCHRONE_SETS
    )
    parser.add_argument(
        "--extra-band",
        action="append",
        default=[],
        help="additional sedpy filter name (repeatable)",
    )
    parser.add_argument("--extinction-law", default="F99", choices=("F99", "G23", "CCM89", "F19"))
    parser.add_argument("--r-v", type=float, default=3.1)
    parser.add_argument("--output-dir", type=Path, default=REPO / "data" / "stellar")
    args = parser.parse_args(argv)

    raw = args.raw_dir or default_raw_directory()
    bands = list(DEFAULT_BANDS) + [b for b in args.extra_band if b not in DEFAULT_BANDS]
    suffix = "" if len(bands) == len(DEFAULT_BANDS) else "_" + "_".join(args.extra_band)
    if args.extinction_law != "F99" or args.r_v != 3.1:
        suffix += f"_{args.extinction_law}_rv{args.r_v:g}"
    for name in args.isochrones:
        start = time.perf_counter()
        table = build_star_photometry(
            raw / "isochrones" / f"{name}.dat",
            raw / "atmospheres" / "ck04_solar",
            bands=bands,
            extinction_law=args.extinction_law,
            r_v=args.r_v,
            hot_star_directory=raw / "atmospheres" / "hot",
        )
        path = write_star_photometry(table, args.output_dir / f"star_photometry_{name}{suffix}.npz")
        prov = table["provenance"]
        print(
            f"{path} ({path.stat().st_size / 1e6:.2f} MB, {table['log_age'].size} isochrone "
            "points, "
            f"{time.perf_counter() - start:.1f} s)"
        )
        print("  checks:", json.dumps(prov["checks"]))
        print(
            "  extinction polynomial max error [mag]:",
            json.dumps(
                prov["extinction"]["max_polynomial_error_mag_at_av_0.375_1.125_1.875_2.625"]
            ),
        )
        print(
            "  WM-basic minus CK04, max |diff| [mag]:",
            json.dumps(prov["atmospheres"]["wmbasic_check"]["max_abs_difference_mag"]),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
