"""``jaxcomp ast run | status | plot``: artificial cluster test campaigns.

``jaxcomp ast run``      run or resume an artificial cluster test campaign
``jaxcomp ast status``   frames done in a campaign directory
``jaxcomp ast plot``     recovery fraction vs V and vs (log T, log M) of a labels table
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .argtypes import float_list
from .field import load_field

__all__ = ["add_ast_parser"]


def _cmd_ast_run(args) -> int:
    import numpy as np

    from .._io import read_table
    from ..ast.campaign import run_campaign
    from ..ast.campaign_config import CampaignConfig
    from ..ast.campaign_plan import validate_library
    from ..ast.campaign_recovery import plot_recovery

    library = read_table(args.library).to_pandas()
    config = CampaignConfig(
        design=args.design,
        r_eff_pc=args.reff,
        frames_per_reff=args.frames_per_reff,
        clusters_per_frame=args.clusters_per_frame,
        seed=args.seed,
        match_library_reff=not args.any_radius,
        noise=not args.no_noise,
        clusters_per_reff=args.test_clusters_per_reff,
        reprocess=args.reprocess,
        edge_margin_px=args.edge_margin_px,
    )
    library = validate_library(
        library, config
    )  # before the (slow) field: a bad library is refused at once
    field = load_field(args.field)
    exclude = None
    if args.exclude:
        exclude = np.unique(np.asarray(read_table(args.exclude)["cluster_id"]))
    executor = "serial" if args.serial else "process"
    labels = run_campaign(
        field,
        library,
        config,
        args.out,
        executor=executor,
        n_workers=args.workers,
        scheduler=args.scheduler,
        exclude=exclude,
        progress=not args.quiet,
    )
    out = Path(args.out)
    print(
        f"{out / 'labels.parquet'}: {len(labels)} labels from {config.n_frames} frames, "
        f"recovered fraction {float(np.mean(labels['C'])):.3f}"
    )
    if args.plot:
        plot_recovery(labels, out / "recovery.png", title=f"{field.name}: {config.design} campaign")
        print(f"saved {out / 'recovery.png'}")
    return 0


def _cmd_ast_status(args) -> int:
    from ..ast.campaign_store import campaign_status

    print(json.dumps(campaign_status(args.directory), indent=1))
    return 0


def _cmd_ast_plot(args) -> int:
    from .._io import read_table
    from ..ast.campaign_recovery import plot_recovery

    path = plot_recovery(read_table(args.labels), args.out, band=args.band)
    print(f"saved {path}")
    return 0


def add_ast_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``ast`` (subcommands ``run``, ``status``, ``plot``) to a ``jaxcomp`` subparsers
    object."""
    p = subparsers.add_parser("ast", help="artificial cluster test campaigns")
    sub = p.add_subparsers(dest="ast_command", required=True)
    r = sub.add_parser("run", help="run or resume a campaign (labels in OUT/labels.parquet)")
    r.add_argument(
        "--field",
        default="mock:small",
        help="FITS directory or mock:<size>[:seed=<n>] (default: %(default)s)",
    )
    r.add_argument("--library", required=True, help="cluster library (.parquet, .fits, ...)")
    r.add_argument("--out", required=True, help="campaign directory (resumable)")
    r.add_argument("--design", choices=("train", "test"), default="train")
    r.add_argument(
        "--reff",
        type=float_list,
        default=tuple(float(v) for v in range(1, 11)),
        help="radii in pc, comma-separated (default 1..10)",
    )
    r.add_argument(
        "--frames-per-reff", type=int, default=49, help="train: frames per radius; test: repeats"
    )
    r.add_argument("--clusters-per-frame", type=int, default=500)
    r.add_argument(
        "--test-clusters-per-reff",
        type=int,
        default=None,
        help="test design: distinct clusters per radius, spread over frames of "
        "--clusters-per-frame "
        "(default: one frame of --clusters-per-frame)",
    )
    r.add_argument(
        "--reprocess",
        choices=("full", "local"),
        default="full",
        help="rerun the pipeline on the whole frame (default) or on windows around the clusters",
    )
    r.add_argument(
        "--edge-margin-px",
        type=float,
        default=0.0,
        help="inject no cluster closer than this to the image's edges (for a crop of a larger "
        "frame; "
        "5 keeps the 4 px photometry aperture inside)",
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--any-radius",
        action="store_true",
        help="draw clusters from the whole library and give them the frame's radius",
    )
    r.add_argument("--no-noise", action="store_true", help="no shot noise on the injected clusters")
    r.add_argument(
        "--exclude", help="labels table whose cluster_id are not to be used (e.g. the training set)"
    )
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
