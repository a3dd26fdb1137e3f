"""Local re-processing of injected frames (jaxcomp.ast.local) against the full-frame pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

import jaxcomp.ast.local as local_module
from jaxcomp.ast import make_mock_field
from jaxcomp.ast.background import (
    background_meshes,
    interpolate_mesh,
    mesh_background,
    mesh_statistics,
    mesh_statistics_at,
    prepare_mesh,
)
from jaxcomp.ast.campaign_config import CampaignConfig, CampaignError
from jaxcomp.ast.campaign_plan import plan_campaign
from jaxcomp.ast.inject import prepare_field, run_frame
from jaxcomp.ast.local import _cut_segments, frame_windows, relevant_segments
from jaxcomp.ast.white_light import white_light
from jaxcomp.catalogues import BANDS

from .ast_campaign_helpers import tiny_library

LABELS = ("detected", "passes_err", "passes_ci", "passes_nband", "passes_mv", "C")


def test_windows_are_mesh_aligned_disjoint_and_cover_each_cluster():
    rng = np.random.default_rng(0)
    iy, ix = rng.integers(0, 700, 40), rng.integers(0, 650, 40)
    half = rng.integers(15, 70, 40)
    windows, owner = frame_windows((700, 650), iy, ix, half, 30, margin_px=40)
    assert (owner >= 0).all()
    for k, (y0, y1, x0, x1) in enumerate(windows):
        assert y0 % 30 == 0 and x0 % 30 == 0
        assert y1 % 30 == 0 or y1 == 700
        assert x1 % 30 == 0 or x1 == 650
        for j, (a0, a1, b0, b1) in enumerate(windows):
            if j != k:
                assert not (y0 < a1 and a0 < y1 and x0 < b1 and b0 < x1), "windows overlap"
    for i in range(40):
        y0, y1, x0, x1 = windows[owner[i]]
        reach = max(half[i], 40)
        assert y0 <= max(iy[i] - reach, 0) and y1 >= min(iy[i] + reach + 1, 700)
        assert x0 <= max(ix[i] - reach, 0) and x1 >= min(ix[i] + reach + 1, 650)


def test_window_statistics_and_background_equal_the_full_frames():
    rng = np.random.default_rng(1)
    img = (rng.normal(1.0, 0.1, (215, 187)) + np.linspace(0, 1, 187)[None, :]).astype(np.float32)
    img[100:110, 50:60] += 30.0
    full = mesh_statistics(img, 30)
    # a block on the mesh grid reaching the frame's last (partial) row and column
    block = mesh_statistics(img[60:215, 90:187], 30)
    for name in ("estimate", "std", "n_clipped", "n_good", "area"):
        np.testing.assert_array_equal(getattr(block, name), getattr(full, name)[2:, 3:])
    # a window of the interpolated map is the crop of the full map
    bkg, _ = mesh_background(img, 30)
    mesh = prepare_mesh(background_meshes(full, 10.0)[0])
    np.testing.assert_array_equal(
        interpolate_mesh(mesh, img.shape, 30, (60, 150, 30, 187)), bkg[60:150, 30:187]
    )


def test_statistics_of_listed_meshes_equal_the_full_computation():
    rng = np.random.default_rng(2)
    img = rng.normal(1.0, 0.2, (120, 150)).astype(np.float32)
    img[40:52, 70:80] += 50.0
    bad = np.zeros(img.shape, bool)
    bad[:, 140:] = True  # a masked gap, as in the mosaic
    full = mesh_statistics(img, 30, bad=bad)
    rows, cols = np.array([0, 1, 1, 3, 2]), np.array([0, 2, 4, 1, 2])
    some = mesh_statistics_at(img, 30, rows, cols, bad=bad)
    for name in ("estimate", "std", "n_clipped", "n_good"):
        np.testing.assert_array_equal(some[name], getattr(full, name)[rows, cols], err_msg=name)
    with pytest.raises(ValueError, match="multiple of the mesh size"):
        mesh_statistics_at(img[:100], 30, rows, cols, bad=bad[:100])


def test_relevant_segments_close_over_shared_pre_injection_sources():
    # boxes (y0, y1, x0, x1): A holds the cluster; B is 5 px from A but shares a
    # pre-injection source with it; C shares one with B (a chain); D is alone far away
    boxes = np.array(
        [[10, 14, 10, 14], [10, 14, 19, 22], [10, 14, 28, 31], [80, 90, 80, 90]], float
    )
    cluster = np.array([[12.0, 12.0]])
    pre = np.array([[12.0, 17.0], [12.0, 25.5], [50.0, 50.0]])
    np.testing.assert_array_equal(
        relevant_segments(boxes, cluster, pre, 4.0), [True, True, True, False]
    )
    # without the pre-injection sources only the cluster's own segment matters
    np.testing.assert_array_equal(
        relevant_segments(boxes, cluster, pre[2:], 4.0), [True, False, False, False]
    )
    # a segment whose box (not its centre) reaches the cluster counts
    np.testing.assert_array_equal(
        relevant_segments(boxes[:1] + [0, 0, 5, 5], cluster, pre[:0], 4.0), [True]
    )
    assert not relevant_segments(boxes, cluster[:0], pre, 4.0).any()


@pytest.mark.parametrize("n_clusters", [8, 15])
def test_keeping_only_the_relevant_segments_leaves_every_output_unchanged(
    mock_crop, monkeypatch, n_clusters
):
    """Deblending and measuring only the segments that can reach a cluster changes nothing."""
    field, baseline = mock_crop
    lib = _library_near_the_limit(n_clusters, seed=7)
    lib["r_eff_pc"] = 3.0
    pruned = run_frame(field, lib, 3.0, seed=5, baseline=baseline, reprocess="local")
    real = local_module.run_pipeline_local
    monkeypatch.setattr(
        local_module, "run_pipeline_local", lambda *a, **k: real(*a, **{**k, "pre_catalogue": None})
    )
    everything = run_frame(field, lib, 3.0, seed=5, baseline=baseline, reprocess="local")
    assert not pruned.meta["fallback"] and not everything.meta["fallback"]
    assert pruned.meta["n_sources_post"] < everything.meta["n_sources_post"]
    assert np.asarray(pruned["C"]).any()
    for col in everything.colnames:
        np.testing.assert_array_equal(
            np.asarray(pruned[col]), np.asarray(everything[col]), err_msg=col
        )


def test_white_light_of_a_window_is_that_window_of_the_white_light():
    """run_pipeline_local builds its mosaic's white light window by window."""
    rng = np.random.default_rng(2)
    shape = (300, 1000)  # several row chunks in white_light
    images = {b: rng.normal(0.1, 0.05, shape).astype(np.float32) for b in BANDS}
    footprint = np.ones(shape, bool)
    footprint[:40, 500:] = False
    medians = {b: 0.1 + 0.01 * i for i, b in enumerate(BANDS)}
    whole = white_light(images, footprint, medians=medians)
    assert whole.any() and not whole[~footprint].any()
    boxes = [
        (slice(0, 300), slice(0, 1000)),
        (slice(60, 250), slice(10, 490)),  # wholly inside the footprint
        (slice(20, 170), slice(450, 990)),
    ]
    for box in boxes:
        part = white_light(
            {b: img[box] for b, img in images.items()}, footprint[box], medians=medians
        )
        np.testing.assert_array_equal(part, whole[box])


def test_a_segment_cut_by_an_inner_window_edge_flags_the_cluster_near_it():
    class Segm:
        def __init__(self, data):
            self.data = data

    seg = np.zeros((60, 200), np.int64)
    seg[20:30, 85:100] = 1  # window 0 is mosaic columns 0..89: this reaches its right edge
    seg[20:30, 0:10] = 2  # touches window 0's left edge, which is the frame's edge
    windows = [(0, 60, 0, 90), (0, 60, 300, 390)]
    origins = [(0, 0), (0, 100)]
    iy = np.array([25, 25, 25])
    ix = np.array([83, 5, 40])
    owner = np.array([0, 0, 0])
    flags = _cut_segments(Segm(seg), windows, origins, (60, 1000), iy, ix, owner, 3.0)
    assert flags.tolist() == [True, False, False]
    # the same with segment 1 deblended in two, given its pre-deblending components
    deblended = seg.copy()
    deblended[20:30, 85:92] = 3
    for components in (None, seg):
        again = _cut_segments(
            Segm(deblended), windows, origins, (60, 1000), iy, ix, owner, 3.0, components=components
        )
        assert again.tolist() == [True, False, False]


@pytest.fixture(scope="module")
def mock_crop():
    field = make_mock_field((600, 600), seed=0)
    return field, prepare_field(field)


def _library_near_the_limit(n, seed):
    rng = np.random.default_rng(seed)
    t = Table({"cluster_id": np.arange(n), "r_eff_pc": np.full(n, 1.0)})
    mv = rng.uniform(20.0, 25.5, n)
    for b, c in zip(BANDS, (-0.6, -0.4, 0.2, 0.0, -0.5)):
        t[f"mag_{b}"] = mv + c + rng.normal(0, 0.3, n)
    return t


@pytest.mark.parametrize("r_eff_pc", [1.0, 4.0, 9.0])
def test_local_and_full_reprocessing_give_the_same_labels(mock_crop, r_eff_pc):
    """At about 3x the paper's density (8 clusters on 600 x 600 px) every label agrees."""
    field, baseline = mock_crop
    seen, dmag = [], []
    for frame in range(3):
        lib = _library_near_the_limit(8, seed=frame)
        lib["r_eff_pc"] = r_eff_pc
        full = run_frame(field, lib, r_eff_pc, seed=frame, baseline=baseline)
        local = run_frame(field, lib, r_eff_pc, seed=frame, baseline=baseline, reprocess="local")
        assert local.meta["reprocess"] == "local" and not local.meta["fallback"]
        np.testing.assert_array_equal(np.asarray(local["x"]), np.asarray(full["x"]))
        for col in LABELS:
            np.testing.assert_array_equal(
                np.asarray(local[col]), np.asarray(full[col]), err_msg=col
            )
        seen.append(np.column_stack([np.asarray(full[c]) for c in LABELS]))
        for b in BANDS:
            a, c = np.asarray(full[f"mag_{b}_meas"]), np.asarray(local[f"mag_{b}_meas"])
            np.testing.assert_array_equal(np.isnan(a), np.isnan(c))
            dmag.append(np.abs(a - c)[np.isfinite(a)])
    seen, dmag = np.concatenate(seen), np.concatenate(dmag)
    # measured magnitudes: the white light's band medians are the pre-injection frame's in
    # the local mode, which can move a faint source's barycentre by a few hundredths of a px
    assert np.median(dmag) < 1e-3 and dmag.max() < 0.1
    assert seen[:, 0].any() and not seen[:, -1].all(), "the frames must test both outcomes"


def test_local_reprocessing_of_a_crowded_frame_runs_in_full(mock_crop):
    field, baseline = mock_crop
    lib = _library_near_the_limit(150, seed=3)
    out = run_frame(field, lib, 1.0, seed=0, baseline=baseline, reprocess="local")
    assert out.meta["fallback"]
    with pytest.raises(ValueError, match="reprocess must be"):
        run_frame(field, lib[:3], 1.0, seed=0, baseline=baseline, reprocess="windows")


def test_test_design_spreads_a_radius_over_several_frames_per_repeat():
    lib = tiny_library(400)
    cfg = CampaignConfig(
        design="test",
        r_eff_pc=(1.0, 2.0),
        frames_per_reff=3,
        clusters_per_frame=20,
        clusters_per_reff=50,
        seed=1,
    )
    assert cfg.frames_per_repeat == 3 and cfg.n_frames == 2 * 3 * 3
    frames = plan_campaign(lib, cfg)
    assert [f.frame for f in frames] == list(range(cfg.n_frames))
    for r in (1.0, 2.0):
        per_repeat = {}
        for f in frames:
            if f.r_eff_pc == r:
                assert len(f.rows) <= 20
                per_repeat.setdefault(f.repeat, []).append(f.rows)
        sets = [np.sort(np.concatenate(v)) for v in per_repeat.values()]
        assert len(sets) == 3 and all(len(s) == 50 and len(np.unique(s)) == 50 for s in sets)
        assert all(np.array_equal(s, sets[0]) for s in sets), (
            "every repeat injects the same clusters"
        )
    with pytest.raises(CampaignError, match="clusters_per_reff is for the test design"):
        CampaignConfig(design="train", clusters_per_reff=10)
    with pytest.raises(CampaignError, match="reprocess must be"):
        CampaignConfig(reprocess="fast")


def test_local_reprocessing_respects_the_footprint():
    """A frame with a masked border and a chip gap (NaN outside the footprint), as real LEGUS
    mosaics have: local and full reruns agree on every label."""
    import dataclasses

    from jaxcomp.ast.field import Field

    base_field = make_mock_field((480, 480), seed=1)
    footprint = np.ones(base_field.shape, bool)
    footprint[:, :70] = False  # outside the mosaic
    footprint[230:242, :] = False  # a chip gap across the frame
    images = {
        b: np.where(footprint, img, np.float32(np.nan)).astype(np.float32)
        for b, img in base_field.images.items()
    }
    field = Field(
        **{
            **{f.name: getattr(base_field, f.name) for f in dataclasses.fields(Field)},
            "images": images,
            "footprint": footprint,
        }
    )
    baseline = prepare_field(field)
    same, seen = 0, 0
    for frame in range(3):
        lib = _library_near_the_limit(8, seed=10 + frame)
        lib["r_eff_pc"] = 3.0
        full = run_frame(field, lib, 3.0, seed=frame, baseline=baseline)
        local = run_frame(field, lib, 3.0, seed=frame, baseline=baseline, reprocess="local")
        assert footprint[
            np.asarray(full["y"]).round().astype(int), np.asarray(full["x"]).round().astype(int)
        ].all()
        rows = np.all([np.asarray(local[c]) == np.asarray(full[c]) for c in LABELS], axis=0)
        same += int(rows.sum())
        seen += rows.size
    assert same == seen
