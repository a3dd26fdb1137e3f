#!/usr/bin/env python
"""A physical selection function for one mock LEGUS NGC 628 pointing (C or E), as the demo trains.

On the pointing's mock field (:func:`jaxcomp.ast.make_mock_field`, ``pointing=...``; by default the
1500 x 1500 px crop of its busiest region, as the demo uses for C), with the pointing's own
catalogue cuts (:meth:`jaxcomp.ast.pointing.MockPointing.pipeline_config`: CI >= 1.3 in E,
1.4 in C):

1. a cluster library (:func:`jaxcomp.library.generate_library`, default configuration);
2. a training campaign (distinct clusters, ``--train-frames`` frames of ``--per-frame`` clusters
   per radius) and a test campaign (``--test-clusters`` other clusters per radius, each
   injected ``--test-repeats`` times), both with the demo's local reprocessing;
3. a physical network (log M, log T, A_V; :func:`jaxcomp.selection.training.
   train_selection_function`, the demo's hyperparameters), validated on the repeated
   injections (:func:`jaxcomp.selection.validation.validate_selection`).

Writes ``selection_<pointing>_physical.safetensors`` and ``selection_<pointing>.json`` (campaign
sizes, timings, recovered fractions, validation) to ``--out``; the campaign directories (large,
resumable) go to ``--work``.  ``--estimate N`` only times N training frames and extrapolates.

Usage::

    nice -n 10 python inference/ngc628_pointing_selection.py --pointing ngc628e \\
        --out inference/results/ngc628_joint --work /tmp/ngc628e_campaigns
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pointing", default="ngc628e", choices=("ngc628c", "ngc628e"))
    parser.add_argument("--size", default="small", help="'small', 'legus' or NYxNX")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--library", type=int, default=20000, help="library clusters")
    parser.add_argument("--radii", type=float, nargs="+", default=[float(r) for r in range(1, 11)])
    parser.add_argument("--per-frame", type=int, default=25, help="clusters per frame")
    parser.add_argument("--train-frames", type=int, default=60, help="training frames per radius")
    parser.add_argument("--test-clusters", type=int, default=100, help="test clusters per radius")
    parser.add_argument("--test-repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--estimate", type=int, default=0, help="only time this many frames")
    parser.add_argument("--out", type=Path, default=Path("inference/results/ngc628_joint"))
    parser.add_argument("--work", type=Path, default=Path("ngc628_pointing_campaigns"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from jaxcomp._io import atomic_write_text
    from jaxcomp.ast import CampaignConfig, make_mock_field, mock_pointing, run_campaign
    from jaxcomp.library import generate_library
    from jaxcomp.selection import validation as V
    from jaxcomp.selection.training import TrainConfig, train_selection_function

    pointing = mock_pointing(args.pointing)
    size = args.size
    if size not in ("small", "legus"):
        size = tuple(int(v) for v in size.lower().split("x"))
    progress = not args.no_progress
    work = args.work / pointing.name
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = round(now - t, 1)
        print(f"  {name}: {timings[name]} s", flush=True)
        t = now

    field = make_mock_field(size, seed=args.seed, pointing=pointing.name)
    library = generate_library(args.library, seed=args.seed)
    lap("field_and_library")
    common = dict(
        r_eff_pc=tuple(args.radii),
        clusters_per_frame=args.per_frame,
        pipeline=pointing.pipeline_config(),
        reprocess="local",
        edge_margin_px=5.0,
    )
    if args.estimate:
        probe = CampaignConfig(
            design="train",
            frames_per_reff=args.estimate,
            seed=args.seed + 101,
            **{**common, "r_eff_pc": (3.0,)},
        )
        run_campaign(
            field, library, probe, work / "estimate", n_workers=args.workers, progress=progress
        )
        lap("estimate")
        per_frame = timings["estimate"] / args.estimate
        n_train = args.train_frames * len(args.radii)
        n_test = args.test_repeats * len(args.radii) * -(-args.test_clusters // args.per_frame)
        print(
            f"{per_frame:.1f} s per frame (wall, {args.workers} workers) -> training "
            f"{n_train} frames ~{n_train * per_frame / 60:.1f} min, test {n_test} frames "
            f"~{n_test * per_frame / 60:.1f} min",
            flush=True,
        )
        return {"seconds_per_frame": per_frame}

    train_config = CampaignConfig(
        design="train", frames_per_reff=args.train_frames, seed=args.seed + 1, **common
    )
    training = run_campaign(
        field, library, train_config, work / "train", n_workers=args.workers, progress=progress
    )
    lap("train_campaign")
    test_config = CampaignConfig(
        design="test",
        frames_per_reff=args.test_repeats,
        clusters_per_reff=args.test_clusters,
        seed=args.seed + 2,
        **common,
    )
    test = run_campaign(
        field,
        library,
        test_config,
        work / "test",
        n_workers=args.workers,
        exclude=np.unique(np.asarray(training["cluster_id"])),
        progress=progress,
    )
    lap("test_campaign")

    config = TrainConfig(
        hidden_widths=(256, 256),
        epochs=args.epochs,
        batch_size=2048,
        learning_rates=(5e-3, 1e-2),
        weight_decays=(1e-3,),
        seed=args.seed,
    )
    provenance = {
        "script": "inference/ngc628_pointing_selection.py",
        "field": field.name,
        "pointing": pointing.name,
        "ci_min": pointing.ci_min,
        "train_campaign_hash": train_config.hash(),
    }
    physical = train_selection_function(
        training, "physical", config, progress=progress, provenance=provenance
    )
    net_path = args.out / f"selection_{pointing.name}_physical.safetensors"
    physical.selection_function.save(net_path)
    lap("training")

    table = V.p_true_table(test)
    result = V.validate_selection(
        physical.selection_function,
        table,
        name=f"{pointing.name} physical",
        min_count=V.default_min_count(len(table)),
        out_of_domain="clip",
        drop_nonfinite=True,
    )
    print("  " + result.summary(), flush=True)
    validation_path = args.out / f"selection_{pointing.name}_validation.json"
    result.write_json(validation_path)
    lap("validation")

    c = np.asarray(training["C"], bool)
    radius = np.asarray(training["r_eff_pc"], float)
    summary = {
        "pointing": pointing.name,
        "field": field.name,
        "ci_min": pointing.ci_min,
        "library_clusters": args.library,
        "train_campaign": {
            "config_hash": train_config.hash(),
            "frames": train_config.n_frames,
            "labels": int(len(training)),
            "recovered_fraction": float(c.mean()),
            "recovered_fraction_by_radius": {
                f"{r:g}": float(c[radius == r].mean()) for r in np.unique(radius)
            },
        },
        "test_campaign": {
            "config_hash": test_config.hash(),
            "frames": test_config.n_frames,
            "labels": int(len(test)),
            "clusters": int(len(table)),
        },
        "network": {
            "path": net_path.name,
            "hidden": list(config.hidden_widths),
            "epochs": config.epochs,
        },
        "validation": json.loads(validation_path.read_text())
        if validation_path.is_file()
        else None,
        "timings_s": timings,
        "workers": args.workers,
    }
    atomic_write_text(
        args.out / f"selection_{pointing.name}.json", json.dumps(summary, indent=1, default=float)
    )
    print(f"wrote {args.out / f'selection_{pointing.name}.json'}")
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
