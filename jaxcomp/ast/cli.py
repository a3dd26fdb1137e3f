"""Command-line subcommands of the field and AST stages (wired into ``jaxcomp`` by :mod:`jaxcomp.cli`).

``jaxcomp field mock``   write the mock NGC 628C field as five FITS files (+ its truth table)
``jaxcomp field info``   describe a field (FITS directory or ``mock:<size>``)
``jaxcomp ast run``      run or resume an artificial cluster test campaign
``jaxcomp ast status``   frames done in a campaign directory
``jaxcomp ast plot``     recovery fraction vs V and vs (log T, log M) of a labels table

Field arguments accept a FITS directory (one file per band, see
:func:`jaxcomp.ast.field.read_field_fits`) or ``mock:small``, ``mock:legus``,
``mock:<ny>x<nx>`` with an optional ``:seed=<n>`` (e.g. ``mock:small:seed=1``).
Handlers return the exit status; errors are ``ValueError``/``FileNotFoundError`` with a
message (``jaxcomp.cli.main`` prints them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError

__all__ = ["add_field_parser", "add_ast_parser", "load_field"]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _size(text: str):
    if text in ("small", "legus"):
        return text
    try:
        ny, nx = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be 'small', 'legus' or <ny>x<nx>, got {text!r}") from None
    return (ny, nx)


def load_field(spec: str):
    """A Field from ``mock:<size>[:seed=<n>]`` or a FITS directory."""
    from .field import read_field_fits

    if spec.startswith("mock"):
        from .mock import make_mock_field

        parts = spec.split(":")
        size, seed = "small", 0
        try:
            if parts[0] != "mock":
                raise argparse.ArgumentTypeError(f"unknown field kind {parts[0]!r}")
            for p in parts[1:]:
                if p.startswith("seed="):
                    try:
                        seed = int(p.split("=", 1)[1])
                    except ValueError:
                        raise argparse.ArgumentTypeError(f"seed must be an integer, got {p!r}") from None
                elif p:
                    size = _size(p)
        except argparse.ArgumentTypeError as error:
            raise InputError(f"field {spec!r}: {error}; use mock:small, mock:legus or mock:<ny>x<nx>[:seed=<n>], "
                             "or a FITS directory") from None
        return make_mock_field(size, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"field {spec!r}: no such directory (or use mock:small / mock:legus)")
    return read_field_fits(path)


# ---------------------------------------------------------------------------------------
# jaxcomp field ...


def _cmd_field_mock(args) -> int:
    from .._io import write_table
    from .field import write_field_fits
    from .mock import make_mock_field, mock_truth

    out = Path(args.out)
    truth = out / f"{args.prefix}_truth.parquet"
    existing = [p for p in [truth, *(out / f"{args.prefix}_{b}.fits" for b in ("F275W", "F336W", "F435W", "F555W",
                                                                                 "F814W"))] if p.exists()]
    if existing and not args.overwrite:
        raise ValueError(f"{existing[0]} exists; pass --overwrite to replace the field in {out}")
    field = make_mock_field(args.size, seed=args.seed)
    paths = write_field_fits(field, out, prefix=args.prefix, overwrite=args.overwrite)
    write_table(mock_truth(field, include_stars=True), truth)
    print(f"wrote {field!r}\n  " + "\n  ".join(str(p) for p in paths.values()) + f"\n  {truth} (placed sources and stars)")
    return 0


def _cmd_field_info(args) -> int:
    import numpy as np

    field = load_field(args.field)
    info = {"name": field.name, "shape": list(field.shape), "footprint_px": int(field.footprint.sum()),
            "pixel_scale_arcsec": field.pixel_scale_arcsec, "distance_modulus": field.distance_modulus,
            "bands": {}}
    for b in field.bands:
        img = field.images[b][field.footprint]
        info["bands"][b] = {"zeropoint": field.zeropoints[b], "exptime_s": field.exptimes[b],
                            "psf": field.psf[b].describe(), "median": float(np.median(img)),
                            "p99": float(np.percentile(img, 99))}
    print(json.dumps(info, indent=1))
    return 0


def add_field_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``field`` (subcommands ``mock`` and ``info``) to a ``jaxcomp`` subparsers object."""
    p = subparsers.add_parser("field", help="images: the mock NGC 628C field, field information")
    sub = p.add_subparsers(dest="field_command", required=True)
    m = sub.add_parser("mock", help="write the mock NGC 628C field as FITS (+ truth table)")
    m.add_argument("--size", type=_size, default="small", help="small (1500x1500), legus (7040x6400) or <ny>x<nx>")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", required=True, help="output directory")
    m.add_argument("--prefix", default="ngc628c_mock", help="file name prefix (default: %(default)s)")
    m.add_argument("--overwrite", action="store_true")
    m.set_defaults(func=_cmd_field_mock)
    i = sub.add_parser("info", help="describe a field")
    i.add_argument("field", help="FITS directory or mock:<size>[:seed=<n>]")
    i.set_defaults(func=_cmd_field_info)
    return p


# ---------------------------------------------------------------------------------------
# jaxcomp ast ...


def _cmd_ast_run(args) -> int:
    import numpy as np

    from .._io import read_table
    from .campaign import CampaignConfig, plot_recovery, run_campaign, validate_library

    library = read_table(args.library).to_pandas()
    config = CampaignConfig(design=args.design, r_eff_pc=args.reff, frames_per_reff=args.frames_per_reff,
                            clusters_per_frame=args.clusters_per_frame, seed=args.seed,
                            match_library_reff=not args.any_radius, noise=not args.no_noise,
                            clusters_per_reff=args.test_clusters_per_reff, reprocess=args.reprocess,
                            edge_margin_px=args.edge_margin_px)
    library = validate_library(library, config)  # before the (slow) field: a bad library is refused at once
    field = load_field(args.field)
    exclude = None
    if args.exclude:
        exclude = np.unique(np.asarray(read_table(args.exclude)["cluster_id"]))
    executor = "serial" if args.serial else "process"
    labels = run_campaign(field, library, config, args.out, executor=executor, n_workers=args.workers,
                          scheduler=args.scheduler, exclude=exclude, progress=not args.quiet)
    out = Path(args.out)
    print(f"{out / 'labels.parquet'}: {len(labels)} labels from {config.n_frames} frames, "
          f"recovered fraction {float(np.mean(labels['C'])):.3f}")
    if args.plot:
        plot_recovery(labels, out / "recovery.png", title=f"{field.name}: {config.design} campaign")
        print(f"saved {out / 'recovery.png'}")
    return 0


def _cmd_ast_status(args) -> int:
    from .campaign import campaign_status

    print(json.dumps(campaign_status(args.directory), indent=1))
    return 0


def _cmd_ast_plot(args) -> int:
    from .._io import read_table
    from .campaign import plot_recovery

    path = plot_recovery(read_table(args.labels), args.out, band=args.band)
    print(f"saved {path}")
    return 0


def add_ast_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``ast`` (subcommands ``run``, ``status``, ``plot``) to a ``jaxcomp`` subparsers object."""
    p = subparsers.add_parser("ast", help="artificial cluster test campaigns")
    sub = p.add_subparsers(dest="ast_command", required=True)
    r = sub.add_parser("run", help="run or resume a campaign (labels in OUT/labels.parquet)")
    r.add_argument("--field", default="mock:small", help="FITS directory or mock:<size>[:seed=<n>] (default: %(default)s)")
    r.add_argument("--library", required=True, help="cluster library (.parquet, .fits, ...)")
    r.add_argument("--out", required=True, help="campaign directory (resumable)")
    r.add_argument("--design", choices=("train", "test"), default="train")
    r.add_argument("--reff", type=_floats, default=tuple(float(v) for v in range(1, 11)),
                   help="radii in pc, comma-separated (default 1..10)")
    r.add_argument("--frames-per-reff", type=int, default=49, help="train: frames per radius; test: repeats")
    r.add_argument("--clusters-per-frame", type=int, default=500)
    r.add_argument("--test-clusters-per-reff", type=int, default=None,
                   help="test design: distinct clusters per radius, spread over frames of --clusters-per-frame "
                        "(default: one frame of --clusters-per-frame)")
    r.add_argument("--reprocess", choices=("full", "local"), default="full",
                   help="rerun the pipeline on the whole frame (default) or on windows around the clusters")
    r.add_argument("--edge-margin-px", type=float, default=0.0,
                   help="inject no cluster closer than this to the image's edges (for a crop of a larger frame; "
                        "5 keeps the 4 px photometry aperture inside)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--any-radius", action="store_true",
                   help="draw clusters from the whole library and give them the frame's radius")
    r.add_argument("--no-noise", action="store_true", help="no shot noise on the injected clusters")
    r.add_argument("--exclude", help="labels table whose cluster_id are not to be used (e.g. the training set)")
    r.add_argument("--workers", type=int, help="local processes (default: all cores)")
    r.add_argument("--scheduler", help="dask.distributed scheduler address, e.g. tcp://host:8786")
    r.add_argument("--serial", action="store_true", help="run in this process (debugging)")
    r.add_argument("--plot", action="store_true", help="also save OUT/recovery.png")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_ast_run)
    s = sub.add_parser("status", help="frames done in a campaign directory")
    s.add_argument("directory")
    s.set_defaults(func=_cmd_ast_status)
    q = sub.add_parser("plot", help="recovery fraction vs V and vs (log T, log M)")
    q.add_argument("labels")
    q.add_argument("--out", required=True)
    q.add_argument("--band", default="F555W")
    q.set_defaults(func=_cmd_ast_plot)
    return p
