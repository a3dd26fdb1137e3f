"""End-to-end check of :mod:`jaxcomp.selection.validation` on real campaign tables.

Runs, on the embedded mock NGC 628C field (``mock:small``, 1500 x 1500 px):

1. a small cluster library (:func:`jaxcomp.library.generate_library`);
2. a training-design AST campaign (distinct clusters) and a test-design campaign
   (other clusters, each re-injected ``repeats`` times with new positions and noise);
3. small networks trained on the training labels (:mod:`jaxcomp.selection.training`):
   physical (log M, log T, A_V), photometric (five magnitudes), and physical plus the
   cluster radius (``physical+r_eff_pc``): the recovery of the mock field depends
   strongly on r_eff (compact clusters fail the CI >= 1.4 cut), which a network without
   r_eff cannot know, so this third network shows how much of the cluster-by-cluster
   error that accounts for;
4. the paper's section 4.1 validation of both on the test campaign
   (:func:`p_true_table`, :func:`validate_selection`), the completeness maps of
   sections 4.2-4.3 and the map of the pipeline step that loses most clusters.

This is a smoke test of the machinery on genuine campaign output, not a reproduction
of the paper's numbers: the campaigns are a few percent of the paper's (245,000
training labels, 5000 test clusters x 100 repeats), so the networks are rougher and
``p_true`` much noisier (see ``binomial_floor`` in the summary).  The paper drops bins
with fewer than 80 of its 5000 test clusters; here the threshold is scaled to the
same fraction of the test set (at least 10).

Usage::

    python scripts/validate_demo_campaign.py --out validate-demo            # ~3.5 min of CPU
    python scripts/validate_demo_campaign.py --out validate-demo-q --quick  # ~2 min of CPU

Campaign directories are resumable: a rerun with the same options reuses finished
frames.  Everything is seeded (``--seed``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SIZES = {
    # radii [pc], training frames per radius, clusters per frame, test clusters per radius, test
    # repeats
    "quick": dict(
        radii=(1.0, 3.0, 5.0),
        train_frames=6,
        per_frame=400,
        test_clusters=300,
        repeats=12,
        library=10_000,
        hidden=(64, 64),
        epochs=30,
        learning_rates=(1e-2,),
    ),
    "full": dict(
        radii=(1.0, 3.0, 5.0),
        train_frames=10,
        per_frame=500,
        test_clusters=400,
        repeats=20,
        library=20_000,
        hidden=(128, 128),
        epochs=60,
        learning_rates=(5e-3, 1e-2),
    ),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", default="validate-demo", help="output directory (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller campaigns and networks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=None, help="campaign processes (default: all cores)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from jaxcomp._io import atomic_write_text, write_table
    from jaxcomp.ast import CampaignConfig, make_mock_field, run_campaign
    from jaxcomp.catalogues import adamo17_50pct_magnitudes
    from jaxcomp.library import generate_library
    from jaxcomp.selection import validation as V
    from jaxcomp.selection.training import TrainConfig, train_selection_function

    size = SIZES["quick" if args.quick else "full"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    timings: dict[str, float] = {}
    start = time.perf_counter()

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 1)
        print(f"  {name}: {timings[name]} s", flush=True)
        return now

    t = time.perf_counter()
    print("[1/5] field and library", flush=True)
    field = make_mock_field("small", seed=args.seed)
    library = generate_library(size["library"], seed=args.seed)
    t = lap("field_and_library", t)

    print("[2/5] AST campaigns", flush=True)
    common = dict(r_eff_pc=size["radii"], match_library_reff=False)
    train_config = CampaignConfig(
        design="train",
        frames_per_reff=size["train_frames"],
        clusters_per_frame=size["per_frame"],
        seed=args.seed + 1,
        **common,
    )
    training = run_campaign(
        field,
        library,
        train_config,
        out / "campaign_train",
        n_workers=args.workers,
        progress=progress,
    )
    t = lap("train_campaign", t)
    test_config = CampaignConfig(
        design="test",
        frames_per_reff=size["repeats"],
        clusters_per_frame=size["test_clusters"],
        seed=args.seed + 2,
        **common,
    )
    test = run_campaign(
        field,
        library,
        test_config,
        out / "campaign_test",
        n_workers=args.workers,
        exclude=np.unique(np.asarray(training["cluster_id"])),
        progress=progress,
    )
    t = lap("test_campaign", t)
    overlap = np.intersect1d(
        np.asarray(training["cluster_id"]), np.asarray(test["cluster_id"])
    ).size
    if overlap:
        raise RuntimeError(f"{overlap} clusters are in both campaigns")

    print("[3/5] training the physical, photometric and physical+r_eff networks", flush=True)
    config = TrainConfig(
        hidden_widths=size["hidden"],
        epochs=size["epochs"],
        batch_size=1024,
        learning_rates=size["learning_rates"],
        weight_decays=(1e-3,),
        seed=args.seed,
    )
    physical = train_selection_function(
        training,
        "physical",
        config,
        progress=progress,
        provenance={"script": "validate_demo_campaign.py"},
    )
    physical.selection_function.save(out / "selection_physical.safetensors")
    mags = [f"mag_{b}" for b in ("F275W", "F336W", "F435W", "F555W", "F814W")]
    finite = np.all([np.isfinite(np.asarray(training[m], float)) for m in mags], axis=0)
    photometric = train_selection_function(
        training[finite],
        "photometric",
        config,
        progress=progress,
        provenance={"script": "validate_demo_campaign.py"},
    )
    photometric.selection_function.save(out / "selection_photometric.safetensors")
    with_radius = train_selection_function(
        training,
        "physical+r_eff_pc",
        config,
        progress=progress,
        provenance={"script": "validate_demo_campaign.py"},
    )
    with_radius.selection_function.save(out / "selection_physical_reff.safetensors")
    t = lap("training", t)

    print("[4/5] validation on the repeated injections", flush=True)
    table = V.p_true_table(test)
    write_table(table, out / "p_true.parquet")
    min_count = V.default_min_count(len(table))
    results = {
        "physical": V.validate_selection(
            physical.selection_function,
            table,
            name="physical",
            min_count=min_count,
            out_of_domain="clip",
            drop_nonfinite=True,
        ),
        "photometric": V.validate_selection(
            photometric.selection_function,
            table,
            name="photometric",
            min_count=min_count,
            out_of_domain="clip",
            drop_nonfinite=True,
        ),
        "physical+r_eff": V.validate_selection(
            with_radius.selection_function,
            table,
            name="physical+r_eff",
            min_count=min_count,
            out_of_domain="clip",
            drop_nonfinite=True,
        ),
    }
    for name, result in results.items():
        print("  " + result.summary(), flush=True)
        stem = name.replace("+", "_")
        result.write_json(out / f"validation_{stem}.json")
        write_table(result.per_cluster_table(), out / f"validation_{stem}_per_cluster.parquet")
    t = lap("validation", t)

    print("[5/5] figures", flush=True)
    sf = physical.selection_function
    v90 = adamo17_50pct_magnitudes(level=0.9)["F555W"]
    limits = {**V.DEFAULT_V_LIMITS, f"F555W 90% single-band recovery, Adamo+17 ({v90:.2f})": v90}
    figures = [
        V.plot_binned_comparison(results, out / "binned_comparison.png"),
        V.plot_z_hexbin(results["physical"], out / "z_hexbin_physical.png", mincnt=3),
        V.plot_z_hexbin(results["photometric"], out / "z_hexbin_photometric.png", mincnt=3),
        V.plot_error_cdf(results, out / "error_cdf.png"),
        V.plot_validation_reliability(results["physical"], out / "reliability_physical.png"),
        V.plot_validation_reliability(results["photometric"], out / "reliability_photometric.png"),
        V.plot_z_hexbin(results["physical+r_eff"], out / "z_hexbin_physical_reff.png", mincnt=3),
        V.plot_completeness_maps(
            V.compare_completeness_maps(training, sf, av_edges=(0, 1, 2, 3), bins=20),
            out / "completeness_maps.png",
            title="training campaign binned (left) vs physical network (right)",
        ),
        V.plot_network_vs_magnitude_limit(sf, out / "network_vs_v_limit.png", limits=limits),
        V.plot_dominant_loss_step(
            V.dominant_loss_step(training, bins=20, range=((5, 10.2), (2, 8))),
            out / "dominant_loss_step_train.png",
            min_count=5,
        ),
    ]
    loss = V.dominant_loss_step(training, bins=20, range=((5, 10.2), (2, 8)))
    t = lap("figures", t)

    summary = {
        "quick": args.quick,
        "seed": args.seed,
        "field": field.name,
        "library_clusters": size["library"],
        "train_campaign": {
            "config_hash": train_config.hash(),
            "frames": train_config.n_frames,
            "radii_pc": list(size["radii"]),
            "labels": len(training),
            "recovered_fraction": float(np.mean(training["C"])),
        },
        "test_campaign": {
            "config_hash": test_config.hash(),
            "frames": test_config.n_frames,
            "test_clusters": len(table),
            "repeats": size["repeats"],
            "injections": len(test),
            "recovered_fraction": float(np.mean(test["C"])),
        },
        "recovered_fraction_by_r_eff_train": {
            f"{r:g}": float(
                np.mean(np.asarray(training["C"])[np.asarray(training["r_eff_pc"]) == r])
            )
            for r in size["radii"]
        },
        "networks": {
            name: {
                "hidden": list(size["hidden"]),
                "epochs": size["epochs"],
                "best_learning_rate": r.best_learning_rate,
                "held_out_training_split": r.test_calibration.summary(),
            }
            for name, r in (
                ("physical", physical),
                ("photometric", photometric),
                ("physical+r_eff", with_radius),
            )
        },
        "min_count": min_count,
        "validation": {
            name: {
                "abs_p_hat_minus_p_true": r.percentiles,
                "binomial_floor": r.binomial_floor,
                "paper": r.paper_percentiles,
                "ece": r.calibration.ece,
                "brier": r.calibration.brier,
                "n_dropped": r.n_dropped,
                "binned_max_abs_difference": {c: b.max_abs_difference for c, b in r.binned.items()},
            }
            for name, r in results.items()
        },
        "lost_by_first_failing_step_train": loss.totals(),
        "seconds": {**timings, "total": round(time.perf_counter() - start, 1)},
        "figures": [p.name for p in figures],
    }
    summary["files"] = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    atomic_write_text(out / "summary.json", json.dumps(V._json_safe(summary), indent=1) + "\n")
    print(f"done in {summary['seconds']['total']} s -> {out}/summary.json", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
