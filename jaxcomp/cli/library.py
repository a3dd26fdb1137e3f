"""``jaxcomp library``: generate a cluster library, or import one (SLUG or a table) and validate it.

Generate (C-4 paper library: log M uniform on [2, 8], age log-uniform on 1e5-1.5e10 yr,
A_V uniform on [0, 3], stochastic photometry at the NGC 628 distance)::

    jaxcomp library --n 10000 --seed 1 --radius flat --out lib.parquet [--fits] [--workers 2]
    [--quiet]

Import and validate a library made elsewhere (a SLUG FITS output, or any Parquet / FITS /
ECSV / CSV table with the columns cluster_id, log_mass, log_age, av, r_eff_pc, mag_<band>)
and write it in jaxcomp's format::

    jaxcomp library --from run/LEGUS_cluster_prop.fits --out lib.parquet [--radius K19 --seed 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..survey import NGC628_DISTANCE_MODULUS
from .argtypes import non_negative_int, positive_int

__all__ = ["add_library_parser", "run_library"]


def add_library_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``library`` subcommand to an ``argparse`` subparsers object and return its parser."""
    from ..library.imf import IMF_KINDS
    from ..library.photometry import ISOCHRONE_SETS

    parser = subparsers.add_parser(
        "library",
        help="generate a synthetic cluster library, or import one (SLUG FITS or a table) and "
        "validate it",
        description=(
            "Generate the artificial-cluster library of the C-4 paper (stochastic HST photometry "
            "at the NGC 628 "
            "distance), or import and validate a library made elsewhere (--from)."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--n",
        type=positive_int,
        default=None,
        help="number of clusters to generate (default 10000)",
    )
    source.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        metavar="PATH",
        help="import a library: a SLUG <model>_cluster_prop.fits / _cluster_phot.fits (or model "
        "base "
        "name), or a Parquet/FITS/ECSV/CSV table with cluster_id, log_mass, log_age, av, "
        "r_eff_pc, mag_<band>",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="master seed (default %(default)s)"
    )
    parser.add_argument(
        "--radius",
        choices=("flat", "K19"),
        default="flat",
        help="effective-radius model (default %(default)s); for SLUG imports, how radii are drawn",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output library: .parquet (metadata in the schema) or .fits",
    )
    parser.add_argument(
        "--fits", action="store_true", help="also write a FITS copy beside a .parquet output"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="processes for the photometry (default 1)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--isochrones", choices=ISOCHRONE_SETS, default="padova2007_z0.0190")
    parser.add_argument("--imf", choices=IMF_KINDS, default="chabrier2005")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="fully sampled (non-stochastic) photometry instead of stochastic IMF sampling",
    )
    parser.add_argument(
        "--chunk-size", type=positive_int, default=10_000, help="clusters per seeded block"
    )
    parser.add_argument(
        "--slug-photometry",
        choices=("auto", "neb_ex", "ex", "neb", "intrinsic"),
        default="auto",
        help="SLUG imports: which photometry (default: with nebular emission and extinction if "
        "present)",
    )
    from ..library.library import LibraryConfig as _Lib  # the defaults' one home

    nebular = parser.add_argument_group(
        "nebular emission (clusters younger than --nebular-max-age-yr)"
    )
    nebular.add_argument(
        "--no-nebular", action="store_true", help="stellar light only (default: stars + nebular)"
    )
    nebular.add_argument(
        "--nebular-covering-fraction",
        type=float,
        default=_Lib.nebular_covering_fraction,
        help="fraction of ionising photons turned into nebular light, 0-1 (default %(default)s)",
    )
    nebular.add_argument(
        "--nebular-te-k",
        type=float,
        default=_Lib.nebular_te_k,
        help="electron temperature [K], 5000-25000 (default %(default)g)",
    )
    nebular.add_argument(
        "--nebular-ne-cm3",
        type=float,
        default=_Lib.nebular_ne_cm3,
        help="electron density [cm^-3], 100-1e4 (default %(default)g)",
    )
    nebular.add_argument(
        "--nebular-av-factor",
        type=float,
        default=_Lib.nebular_av_factor,
        help="nebular / stellar A_V, 1-3 (default %(default)s; the C-4 library used 2.1)",
    )
    nebular.add_argument(
        "--nebular-max-age-yr",
        type=float,
        default=_Lib.nebular_max_age_yr,
        help="no nebular light at or above this age [yr] (default %(default)g)",
    )
    parser.add_argument(
        "--slug-mass",
        choices=("birth", "target"),
        default="birth",
        help="SLUG imports: log_mass from BirthMass (default) or TargetMass",
    )
    parser.add_argument(
        "--distance-modulus",
        type=float,
        default=None,
        help=f"distance modulus [mag] (default {NGC628_DISTANCE_MODULUS:g}, NGC 628); added to "
        "SLUG's "
        "absolute magnitudes",
    )
    parser.set_defaults(func=run_library)
    return parser


def _write(frame, out: Path, fits_copy: bool) -> list[Path]:
    from ..library.external import write_library_fits
    from ..library.library import write_library

    suffix = out.suffix.lower()
    if suffix in (".fits", ".fit"):
        return [write_library_fits(frame, out)]
    if suffix not in (".parquet", ".pq"):
        raise ValueError(f"--out must end in .parquet or .fits, got {out.name!r}")
    written = [write_library(frame, out)]
    if fits_copy:
        written.append(write_library_fits(frame, out.with_suffix(".fits")))
    return written


def run_library(args: argparse.Namespace) -> int:
    """Handler of ``jaxcomp library``; returns the exit status (errors raise ValueError etc.)."""
    distance_modulus = (
        NGC628_DISTANCE_MODULUS if args.distance_modulus is None else args.distance_modulus
    )
    if args.out.suffix.lower() not in (".parquet", ".pq", ".fits", ".fit"):
        raise ValueError(f"--out must end in .parquet or .fits, got {args.out.name!r}")
    if args.fits and args.out.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(
            "--fits writes a FITS copy beside a .parquet output; with a .fits --out leave it out"
        )
    if args.source is not None:
        from ..library.external import _looks_like_slug, read_library_table

        slug_options = {}
        path = Path(args.source)
        if not path.exists() or _looks_like_slug(path):
            slug_options = {
                "photometry": args.slug_photometry,
                "mass": args.slug_mass,
                "distance_modulus": distance_modulus,
                "radius_model": args.radius,
                "seed": args.seed,
            }
        frame = read_library_table(path, **slug_options)
        written = _write(frame, args.out, args.fits)
        origin = frame.attrs.get("jaxcomp_library", {}).get("source", "table")
        print(
            f"imported {len(frame)} clusters from {path} ({origin}); bands "
            f"{[c[4:] for c in frame.columns if c.startswith('mag_')]}; wrote "
            f"{', '.join(map(str, written))}"
        )
        return 0

    from tqdm.auto import tqdm

    from ..library.library import LibraryConfig, generate_library

    n = 10_000 if args.n is None else args.n
    config = LibraryConfig(
        radius_model=args.radius,
        isochrones=args.isochrones,
        imf_kind=args.imf,
        stochastic=not args.deterministic,
        distance_modulus=distance_modulus,
        chunk_size=args.chunk_size,
        nebular=not args.no_nebular,
        nebular_covering_fraction=args.nebular_covering_fraction,
        nebular_te_k=args.nebular_te_k,
        nebular_ne_cm3=args.nebular_ne_cm3,
        nebular_av_factor=args.nebular_av_factor,
        nebular_max_age_yr=args.nebular_max_age_yr,
    )
    with tqdm(total=n, unit="cluster", desc="library", disable=args.quiet, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        frame = generate_library(
            n, config, seed=args.seed, n_workers=args.workers, progress=progress
        )
    written = _write(frame, args.out, args.fits)
    meta = frame.attrs["jaxcomp_library"]
    nebular_text = (
        "stellar light only"
        if args.no_nebular
        else f"nebular emission with covering fraction {args.nebular_covering_fraction:g}"
    )
    print(
        f"wrote {', '.join(map(str, written))}: {n} clusters, seed {args.seed}, radius model "
        f"{args.radius}, {nebular_text}, "
        f"{meta['n_age_clamped']} with ages outside the isochrones (flagged age_clamped)"
    )
    return 0
