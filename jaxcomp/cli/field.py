"""``jaxcomp field mock`` and ``jaxcomp field info``: the images of a field.

``jaxcomp field mock``   write a mock NGC 628 field (``--pointing ngc628c`` or ``ngc628e``) as five
                         FITS files (+ its truth table)
``jaxcomp field info``   describe a field (FITS directory or ``mock:<size>``)

Field arguments accept a FITS directory (one file per band, see
:func:`jaxcomp.ast.field_fits.read_field_fits`) or ``mock:small``, ``mock:legus``,
``mock:<ny>x<nx>`` with an optional ``:seed=<n>`` and ``:pointing=<ngc628c|ngc628e>`` (e.g.
``mock:small:seed=1:pointing=ngc628e``; default NGC 628C).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from .argtypes import field_size

__all__ = ["add_field_parser", "load_field"]


def load_field(spec: str):
    """A Field from ``mock:<size>[:seed=<n>]`` or a FITS directory."""
    from ..ast.field_fits import read_field_fits

    if spec.startswith("mock"):
        from ..ast.mock import make_mock_field
        from ..ast.pointing import MOCK_POINTINGS

        parts = spec.split(":")
        size, seed, pointing = "small", 0, "ngc628c"
        try:
            if parts[0] != "mock":
                raise argparse.ArgumentTypeError(f"unknown field kind {parts[0]!r}")
            for p in parts[1:]:
                if p.startswith("seed="):
                    try:
                        seed = int(p.split("=", 1)[1])
                    except ValueError:
                        raise argparse.ArgumentTypeError(
                            f"seed must be an integer, got {p!r}"
                        ) from None
                elif p.startswith("pointing="):
                    pointing = p.split("=", 1)[1].strip().lower()
                    if pointing not in MOCK_POINTINGS:
                        raise argparse.ArgumentTypeError(
                            f"pointing must be one of {sorted(MOCK_POINTINGS)}, got {pointing!r}"
                        )
                elif p:
                    size = field_size(p)
        except argparse.ArgumentTypeError as error:
            raise InputError(
                f"field {spec!r}: {error}; use mock:small, mock:legus or "
                "mock:<ny>x<nx>[:seed=<n>][:pointing=ngc628e], "
                "or a FITS directory"
            ) from None
        return make_mock_field(size, seed=seed, pointing=pointing)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"field {spec!r}: no such directory (or use mock:small / mock:legus)"
        )
    return read_field_fits(path)


def _cmd_field_mock(args) -> int:
    from .._io import write_table
    from ..ast.field_fits import write_field_fits
    from ..ast.mock import make_mock_field, mock_truth

    out = Path(args.out)
    if args.prefix is None:
        args.prefix = f"{args.pointing}_mock"
    truth = out / f"{args.prefix}_truth.parquet"
    existing = [
        p
        for p in [
            truth,
            *(
                out / f"{args.prefix}_{b}.fits"
                for b in ("F275W", "F336W", "F435W", "F555W", "F814W")
            ),
        ]
        if p.exists()
    ]
    if existing and not args.overwrite:
        raise ValueError(f"{existing[0]} exists; pass --overwrite to replace the field in {out}")
    field = make_mock_field(args.size, seed=args.seed, pointing=args.pointing)
    paths = write_field_fits(field, out, prefix=args.prefix, overwrite=args.overwrite)
    write_table(mock_truth(field, include_stars=True), truth)
    print(
        f"wrote {field!r}\n  "
        + "\n  ".join(str(p) for p in paths.values())
        + f"\n  {truth} (placed sources and stars)"
    )
    return 0


def _cmd_field_info(args) -> int:
    import numpy as np

    field = load_field(args.field)
    info = {
        "name": field.name,
        "shape": list(field.shape),
        "footprint_px": int(field.footprint.sum()),
        "pixel_scale_arcsec": field.pixel_scale_arcsec,
        "distance_modulus": field.distance_modulus,
        "bands": {},
    }
    for b in field.bands:
        img = field.images[b][field.footprint]
        info["bands"][b] = {
            "zeropoint": field.zeropoints[b],
            "exptime_s": field.exptimes[b],
            "psf": field.psf[b].describe(),
            "median": float(np.median(img)),
            "p99": float(np.percentile(img, 99)),
        }
    print(json.dumps(info, indent=1))
    return 0


def add_field_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``field`` (subcommands ``mock`` and ``info``) to a ``jaxcomp`` subparsers object."""
    p = subparsers.add_parser("field", help="images: the mock NGC 628 fields, field information")
    sub = p.add_subparsers(dest="field_command", required=True)
    m = sub.add_parser("mock", help="write a mock NGC 628 field as FITS (+ truth table)")
    m.add_argument(
        "--size",
        type=field_size,
        default="small",
        help="small (1500x1500), legus (7040x6400) or <ny>x<nx>",
    )
    m.add_argument("--seed", type=int, default=0)
    m.add_argument(
        "--pointing",
        choices=("ngc628c", "ngc628e"),
        default="ngc628c",
        help="LEGUS pointing of the mock (default: %(default)s)",
    )
    m.add_argument("--out", required=True, help="output directory")
    m.add_argument("--prefix", default=None, help="file name prefix (default: <pointing>_mock)")
    m.add_argument("--overwrite", action="store_true")
    m.set_defaults(func=_cmd_field_mock)
    i = sub.add_parser("info", help="describe a field")
    i.add_argument("field", help="FITS directory or mock:<size>[:seed=<n>][:pointing=<p>]")
    i.set_defaults(func=_cmd_field_info)
    return p
