"""AST campaigns: planning, bad inputs, resumability, executors (serial, process pool, Dask)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from jaxcomp._io import read_table
from jaxcomp.ast.campaign import run_campaign
from jaxcomp.ast.campaign_config import CampaignConfig, CampaignError
from jaxcomp.ast.campaign_plan import check_field_capacity, plan_campaign
from jaxcomp.ast.campaign_recovery import p_true, plot_recovery
from jaxcomp.ast.campaign_store import campaign_status
from jaxcomp.ast.field import BANDS, NGC628C_EXPTIMES, Field, default_wcs
from jaxcomp.ast.pipeline import STAGES

from .ast_campaign_helpers import tiny_config, tiny_field, tiny_library

REPO_ROOT = Path(__file__).resolve().parents[1]


def assert_same_labels(a, b):
    assert a.colnames == b.colnames
    for c in a.colnames:
        x, y = np.asarray(a[c]), np.asarray(b[c])
        if x.dtype.kind == "f":
            np.testing.assert_array_equal(x, y, err_msg=c)
        else:
            assert np.array_equal(x, y), c


@pytest.fixture(scope="module")
def field():
    return tiny_field()


@pytest.fixture(scope="module")
def library():
    return tiny_library()


@pytest.fixture(scope="module")
def reference(field, library, tmp_path_factory):
    """The uninterrupted serial run of the tiny campaign."""
    d = tmp_path_factory.mktemp("reference")
    return run_campaign(field, library, tiny_config(), d, executor="serial", progress=False), d


# ------------------------------------------------------------------ planning
def test_training_plan_uses_each_cluster_once_and_matches_radii(library):
    cfg = tiny_config()
    frames = plan_campaign(library, cfg)
    assert len(frames) == cfg.n_frames == 8
    rows = np.concatenate([f.rows for f in frames])
    assert len(np.unique(rows)) == rows.size == 8 * 20  # no cluster twice
    for f in frames:
        assert np.all(library["r_eff_pc"].to_numpy()[f.rows] == f.r_eff_pc)
    again = plan_campaign(library, cfg)  # deterministic
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(frames, again))
    other = plan_campaign(library, tiny_config(seed=6))
    assert not all(np.array_equal(a.rows, b.rows) for a, b in zip(frames, other))
    # excluded clusters are never drawn
    excl = library["cluster_id"].to_numpy()[rows]
    rows2 = np.concatenate([f.rows for f in plan_campaign(library, cfg, exclude=excl)])
    assert not np.isin(rows2, rows).any()


def test_test_design_reinjects_the_same_clusters(library):
    cfg = tiny_config(design="test", frames_per_reff=5)
    frames = plan_campaign(library, cfg)
    for i in range(2):
        block = frames[i * 5 : (i + 1) * 5]
        assert [f.repeat for f in block] == list(range(5))
        assert all(np.array_equal(block[0].rows, f.rows) for f in block)
    assert not np.intersect1d(frames[0].rows, frames[5].rows).size


def test_any_radius_mode_sets_the_frame_radius(library):
    lib = library.drop(columns=["r_eff_pc"])
    cfg = tiny_config(match_library_reff=False, r_eff_pc=(4.0,), frames_per_reff=2)
    frames = plan_campaign(lib, cfg)
    assert len(np.unique(np.concatenate([f.rows for f in frames]))) == 40


# ------------------------------------------------------------------ bad inputs, before any work
@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda df: df.drop(columns=["mag_F336W"]), r"lacks column\(s\) \['mag_F336W'\]"),
        (lambda df: df.drop(columns=["r_eff_pc"]), "match_library_reff=False"),
        (lambda df: df.drop(columns=["cluster_id"]), "cluster_id"),
        (lambda df: df.assign(cluster_id=0), "duplicates"),
        (lambda df: df.iloc[:100], "needs 80"),
        (lambda df: df.iloc[:0], "empty"),
    ],
)
def test_library_errors(field, library, tmp_path, mutate, match):
    with pytest.raises(CampaignError, match=match):
        run_campaign(
            field, mutate(library), tiny_config(), tmp_path / "c", executor="serial", progress=False
        )
    assert not (tmp_path / "c").exists()  # nothing was started


def test_field_too_small_and_config_errors(field, library, tmp_path):
    with pytest.raises(CampaignError, match="too small for 500 clusters"):
        check_field_capacity(field, CampaignConfig(clusters_per_frame=500))
    lib = library.copy()
    lib["r_eff_pc"] = 10
    with pytest.raises(CampaignError, match="too small"):
        run_campaign(
            field,
            lib,
            tiny_config(r_eff_pc=(10.0,), clusters_per_frame=300, frames_per_reff=1),
            tmp_path / "c",
            executor="serial",
            progress=False,
        )
    assert not (tmp_path / "c").exists()
    for kw, match in (
        (dict(design="both"), "design"),
        (dict(r_eff_pc=(0.0,)), "r_eff_pc"),
        (dict(frames_per_reff=0), "frames_per_reff"),
        (dict(seed=-1), "seed"),
        (dict(edge_margin_px=-1.0), "edge_margin_px"),
        (dict(edge_margin_px=True), "edge_margin_px"),
    ):
        with pytest.raises(CampaignError, match=match):
            tiny_config(**kw)
    with pytest.raises(CampaignError, match="must be a jaxcomp.ast.Field"):
        run_campaign(
            {"F555W": np.zeros((10, 10))}, library, tiny_config(), tmp_path / "c", progress=False
        )
    with pytest.raises(CampaignError, match="executor"):
        run_campaign(
            field, library, tiny_config(), tmp_path / "c", executor="threads", progress=False
        )
    with pytest.raises(CampaignError, match="scheduler="):
        run_campaign(field, library, tiny_config(), tmp_path / "c", executor="dask", progress=False)
    assert not (tmp_path / "c").exists()


def test_field_validation_covers_the_image_problems():
    """The Field refuses bad images when it is built, i.e. before any campaign work."""

    def images(shape=(64, 64)):
        return {b: np.ones(shape, np.float32) for b in BANDS}

    bad_shape = images()
    bad_shape["F814W"] = np.ones((64, 60), np.float32)
    nan = images()
    nan["F435W"][3, 4] = np.inf
    w = default_wcs((64, 64))
    w2 = default_wcs((64, 64))
    w2.wcs.crpix = [10.0, 10.0]
    cases = [
        (dict(images=bad_shape), "shape"),
        (dict(images={b: v for b, v in images().items() if b != "F275W"}), "missing band"),
        (dict(images=nan, footprint=np.ones((64, 64), bool)), "NaN/inf"),
        (dict(images=images(), exptimes=dict(NGC628C_EXPTIMES, F555W=-1.0)), "exptimes"),
        (dict(images=images(), psf=30.0), "not narrower than the frame"),
        (dict(images=images(), wcs={"F275W": w, "F336W": w2}), "WCS of F336W differs"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            Field(**kwargs)


# ------------------------------------------------------------------ serial runs, resume, manifest
def test_labels_table(reference, library):
    labels, d = reference
    cfg = tiny_config()
    assert len(labels) == cfg.n_frames * cfg.clusters_per_frame
    for col in (
        "cluster_id",
        "log_mass",
        "r_eff_pc",
        "frame",
        "repeat",
        "x",
        "y",
        *STAGES,
        "C",
        "mag_F555W_meas",
        "magerr_F814W_meas",
        "ci_meas",
        "design",
    ):
        assert col in labels.colnames, col
    assert np.all(np.diff(np.asarray(labels["frame"])) >= 0)
    assert np.bincount(np.asarray(labels["frame"])).tolist() == [20] * 8
    assert len(np.unique(np.asarray(labels["cluster_id"]))) == len(labels)  # training: no reuse
    # the tiny field's Gaussian PSF leaves 1-2 pc clusters below CI 1.4 (C is 0 or nearly so),
    # so the stages before the CI cut carry the non-trivial labels; C implies every stage
    assert 0 < np.mean(labels["detected"]) < 1 and 0 < np.mean(labels["passes_err"]) < 1
    stages = np.column_stack([np.asarray(labels[s], bool) for s in STAGES])
    np.testing.assert_array_equal(np.asarray(labels["C"], bool), stages.all(axis=1))
    assert campaign_status(d) == {
        "n_frames": 8,
        "n_done": 8,
        "finished": True,
        "config_hash": tiny_config().hash(),
    }
    assert_same_labels(read_table(d / "labels.parquet"), labels)


def test_rerun_skips_finished_frames_and_refuses_another_campaign(field, library, reference):
    labels, d = reference
    calls = []
    again = run_campaign(
        field,
        library,
        tiny_config(),
        d,
        executor="serial",
        progress=False,
        callback=lambda *a: calls.append(a),
    )
    assert calls == []  # nothing recomputed
    assert_same_labels(again, labels)
    before = sorted(p.stat().st_mtime_ns for p in (d / "frames").iterdir())
    with pytest.raises(CampaignError, match=r"different campaign.*seed: 5 -> 6"):
        run_campaign(field, library, tiny_config(seed=6), d, executor="serial", progress=False)
    with pytest.raises(CampaignError, match="the library differs"):
        run_campaign(field, library.iloc[:-1], tiny_config(), d, executor="serial", progress=False)
    with pytest.raises(CampaignError, match="the field differs"):
        run_campaign(
            tiny_field((300, 310)), library, tiny_config(), d, executor="serial", progress=False
        )
    assert sorted(p.stat().st_mtime_ns for p in (d / "frames").iterdir()) == before


def test_killed_campaign_resumes_to_identical_labels(field, library, reference, tmp_path):
    """Kill a campaign subprocess mid-run (SIGKILL), restart it, compare with the uninterrupted
    run."""
    labels, _ = reference
    d = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from jaxcomp.ast.campaign import run_campaign
        from tests.ast_campaign_helpers import tiny_config, tiny_field, tiny_library
        if __name__ == "__main__":
            run_campaign(tiny_field(), tiny_library(), tiny_config(), {str(d)!r},
                         executor="serial", progress=False)
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((d / "frames").glob("frame_*.parquet"))) >= 2:
                break
            time.sleep(0.005)
        assert proc.poll() is None, (
            f"the campaign finished or failed before it could be killed: {proc.stderr.read()}"
        )
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    done_before = len(list((d / "frames").glob("frame_*.parquet")))
    assert 2 <= done_before < 8 and not (d / "labels.parquet").exists()
    # a write interrupted mid-way leaves at most a temporary file, which the restart removes
    (d / "frames" / ".frame_000007.parquet.abcd.tmp.parquet").write_bytes(b"half a parquet file")
    calls = []
    resumed = run_campaign(
        field,
        library,
        tiny_config(),
        d,
        executor="serial",
        progress=False,
        callback=lambda frame, n, total: calls.append(frame),
    )
    assert len(calls) == 8 - done_before
    assert not list((d / "frames").glob(".frame_*"))
    assert_same_labels(resumed, labels)


def test_p_true_and_plot(field, library, tmp_path):
    cfg = tiny_config(design="test", frames_per_reff=3, r_eff_pc=(2.0,), clusters_per_frame=15)
    labels = run_campaign(field, library, cfg, tmp_path / "t", executor="serial", progress=False)
    assert np.all(np.asarray(labels["repeat"]) == np.repeat([0, 1, 2], 15))
    pt = p_true(labels)
    assert len(pt) == 15 and np.all(pt["n_injections"] == 3)
    assert set(np.round(np.asarray(pt["p_true"]) * 3).astype(int)) <= {0, 1, 2, 3}
    assert "log_mass" in pt.colnames
    out = plot_recovery(labels, tmp_path / "recovery.png")
    assert out.stat().st_size > 10_000


# ------------------------------------------------------------------ executors
def test_process_pool_from_a_plain_script_gives_identical_labels(reference, tmp_path):
    """The default executor (spawned processes) from a script without a __main__ guard."""
    labels, _ = reference
    script = tmp_path / "plain.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from jaxcomp.ast.campaign import run_campaign
        from tests.ast_campaign_helpers import tiny_config, tiny_field, tiny_library
        print("top level of the script")  # must run once, not again in every worker
        run_campaign(tiny_field(), tiny_library(), tiny_config(), {str(tmp_path / "p")!r},
                     n_workers=2, progress=False)
    """)
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("top level of the script") == 1
    import pyarrow.parquet as pq

    pids = {
        json.loads(pq.read_schema(p).metadata[b"jaxcomp_frame"])["pid"]
        for p in (tmp_path / "p" / "frames").glob("frame_*.parquet")
    }
    assert len(pids) == 2  # both workers ran frames
    assert_same_labels(read_table(tmp_path / "p" / "labels.parquet"), labels)


def test_dask_cluster_with_a_worker_killed_mid_campaign(field, library, reference, tmp_path):
    import distributed  # in the test extra: a missing install must fail, not skip

    labels, _ = reference
    killed = {}
    small = tiny_config(design="test", r_eff_pc=(3.0,), frames_per_reff=2, clusters_per_frame=10)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):

        def kill_a_busy_worker(frame, n_done, n_total):
            if n_done == 1 and not killed:
                deadline = time.monotonic() + 10.0
                while True:  # wait until a worker holds a frame, so the kill interrupts real work
                    processing = client.processing()
                    busy = [w for w, tasks in processing.items() if tasks]
                    if busy or time.monotonic() > deadline:
                        busy = busy or list(processing)
                        break
                    time.sleep(0.05)
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                killed.update(address=busy[0], tasks=list(processing.get(busy[0], ())))
                os.kill(pid, signal.SIGKILL)

        # by scheduler address (run_campaign makes its own Client)
        out = run_campaign(
            field,
            library,
            tiny_config(),
            tmp_path / "d",
            scheduler=cluster.scheduler_address,
            progress=False,
            callback=kill_a_busy_worker,
        )
        # with a Client object as the executor
        other = run_campaign(field, library, small, tmp_path / "e", executor=client, progress=False)
    assert killed and killed["tasks"], "no frame was in flight on the killed worker"
    assert np.bincount(np.asarray(out["frame"])).tolist() == [20] * 8  # every frame exactly once
    assert_same_labels(out, labels)
    assert_same_labels(
        other,
        run_campaign(field, library, small, tmp_path / "s", executor="serial", progress=False),
    )
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["config_hash"] == tiny_config().hash()


# ------------------------------------------------------------------ command line
def test_cli_field_and_ast_subcommands(library, tmp_path, capsys):
    import argparse

    from jaxcomp.cli.ast import add_ast_parser
    from jaxcomp.cli.field import add_field_parser

    parser = argparse.ArgumentParser(prog="jaxcomp")
    sub = parser.add_subparsers(dest="command", required=True)
    add_field_parser(sub)
    add_ast_parser(sub)

    def run(*argv):
        args = parser.parse_args([str(a) for a in argv])
        return args.func(args)

    assert run("field", "mock", "--size", "200x240", "--seed", "2", "--out", tmp_path / "f") == 0
    assert (
        len(list((tmp_path / "f").glob("*.fits"))) == 5
        and (tmp_path / "f" / "ngc628c_mock_truth.parquet").exists()
    )
    assert run("field", "info", tmp_path / "f") == 0
    assert '"shape": [\n  200,\n  240\n ]' in capsys.readouterr().out
    library.to_parquet(tmp_path / "lib.parquet")
    assert (
        run(
            "ast",
            "run",
            "--field",
            tmp_path / "f",
            "--library",
            tmp_path / "lib.parquet",
            "--out",
            tmp_path / "c",
            "--reff",
            "1,2",
            "--frames-per-reff",
            "2",
            "--clusters-per-frame",
            "10",
            "--serial",
            "--quiet",
            "--plot",
        )
        == 0
    )
    assert (tmp_path / "c" / "labels.parquet").exists() and (
        tmp_path / "c" / "recovery.png"
    ).exists()
    assert run("ast", "status", tmp_path / "c") == 0
    assert '"n_done": 4' in capsys.readouterr().out
    assert run("ast", "plot", tmp_path / "c" / "labels.parquet", "--out", tmp_path / "r.png") == 0
    # a test design spreading 12 clusters per radius over frames of 5, rerun locally
    assert (
        run(
            "ast",
            "run",
            "--field",
            tmp_path / "f",
            "--library",
            tmp_path / "lib.parquet",
            "--out",
            tmp_path / "t",
            "--design",
            "test",
            "--reff",
            "1",
            "--frames-per-reff",
            "2",
            "--clusters-per-frame",
            "5",
            "--test-clusters-per-reff",
            "12",
            "--reprocess",
            "local",
            "--edge-margin-px",
            "20",
            "--serial",
            "--quiet",
        )
        == 0
    )
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert (
        summary["n_frames"] == 2 * 3
        and summary["n_clusters"] == 24
        and summary["reprocess"] == "local"
    )
    labels = read_table(tmp_path / "t" / "labels.parquet")
    ny, nx = 200, 240  # the mock field made above
    x, y = np.asarray(labels["x"]), np.asarray(labels["y"])
    assert np.minimum.reduce([x + 0.5, y + 0.5, nx - 0.5 - x, ny - 0.5 - y]).min() >= 20.0
    with pytest.raises(CampaignError, match="different campaign"):
        run(
            "ast",
            "run",
            "--field",
            tmp_path / "f",
            "--library",
            tmp_path / "lib.parquet",
            "--out",
            tmp_path / "c",
            "--reff",
            "1,2",
            "--frames-per-reff",
            "2",
            "--clusters-per-frame",
            "10",
            "--seed",
            "9",
            "--serial",
            "--quiet",
        )
