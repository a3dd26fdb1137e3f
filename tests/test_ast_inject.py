"""Injection: positions, shot noise, and whole AST frames on small synthetic fields."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from jaxcomp.ast.field import BANDS, Field
from jaxcomp.ast.inject import (
    clear_baseline_cache,
    draw_positions,
    inject,
    position_density,
    prepare_field,
    run_frame,
)
from jaxcomp.ast.pipeline import STAGES
from jaxcomp.ast.synthetic import synthetic_field


# ------------------------------------------------------------------ positions
def test_positions_follow_density_footprint_and_spacing():
    shape = (300, 400)
    wl = np.ones(shape, np.float32)
    wl[:, 200:] = 10.0  # the right half is ten times brighter
    fp = np.ones(shape, bool)
    fp[:50, :] = False
    dens = position_density(wl, fp, sigma_px=5.0)
    assert dens.prob.sum() == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    x, y = draw_positions(dens, fp, 300, 6.0, rng)
    assert fp[np.rint(y).astype(int), np.rint(x).astype(int)].all()
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    d[np.diag_indices_from(d)] = np.inf
    assert d.min() >= 6.0
    assert np.mean(x > 200) > 0.8  # ~10/11 expected
    # reproducible
    x2, y2 = draw_positions(dens, fp, 300, 6.0, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)


def test_edge_margin_keeps_positions_away_from_the_image_edges():
    shape = (120, 160)
    fp = np.ones(shape, bool)
    wl = np.ones(shape, np.float32)
    wl[:, :8] = 1e3  # nearly all the density on the 8 px strip along the left edge
    dens = position_density(wl, fp, sigma_px=1.0)
    x, y = draw_positions(dens, fp, 40, 0.0, np.random.default_rng(1), edge_margin_px=5.0)
    distance = np.minimum.reduce([x + 0.5, y + 0.5, shape[1] - 0.5 - x, shape[0] - 0.5 - y])
    assert distance.min() >= 5.0
    assert np.mean(x < 8) > 0.5  # the density still rules inside the margin-free region
    x0, _ = draw_positions(dens, fp, 40, 0.0, np.random.default_rng(1))
    assert (
        np.minimum(x0 + 0.5, shape[1] - 0.5 - x0) < 5.0
    ).any()  # without the margin the strip's edge is used
    for bad in (-1.0, float("nan"), 60.0):
        with pytest.raises(ValueError, match="edge_margin_px"):
            draw_positions(dens, fp, 5, 0.0, np.random.default_rng(0), edge_margin_px=bad)


def test_too_small_field_is_a_clear_error():
    shape = (60, 60)
    fp = np.ones(shape, bool)
    dens = position_density(np.ones(shape, np.float32), fp, 8.0)
    with pytest.raises(ValueError, match="too small for 500 clusters"):
        draw_positions(dens, fp, 500, 15.8, np.random.default_rng(0))
    # below the packing bound but beyond what random sequential placement reaches
    with pytest.raises(ValueError, match="placed only"):
        draw_positions(dens, fp, 25, 12.0, np.random.default_rng(0), max_attempts=3000)


def test_density_is_the_smoothed_white_light():
    shape = (256, 256)
    wl = np.zeros(shape, np.float32)
    wl[128, 128] = 1.0
    dens = position_density(wl, np.ones(shape, bool), sigma_px=32.0)  # 4 px cells
    assert dens.block == 4
    p = dens.prob
    cy, cx = np.unravel_index(np.argmax(p), p.shape)
    assert (cy, cx) == (32, 32)
    # Gaussian profile with sigma 8 cells
    assert p[cy, cx + 8] / p[cy, cx] == pytest.approx(np.exp(-0.5), rel=0.05)


# ------------------------------------------------------------------ injection
def _blank_field(shape=(200, 200)):
    return Field({b: np.zeros(shape, np.float32) for b in BANDS})


def test_injection_adds_shot_noise_from_the_cluster_counts():
    field = _blank_field()
    n = 16
    g = np.meshgrid(np.arange(4) * 45 + 30.3, np.arange(4) * 45 + 30.6)
    x, y = g[0].ravel(), g[1].ravel()
    mags = {b: np.full(n, 24.0) for b in BANDS}
    noiseless = inject(field, x, y, mags, 1.0, np.random.default_rng(0), noise=False)
    sums = []
    for seed in range(20):
        out = inject(field, x, y, mags, 1.0, np.random.default_rng(seed))
        counts = out["F555W"].astype(np.float64) * field.exptimes["F555W"]
        np.testing.assert_allclose(counts, np.rint(counts), atol=1e-2)  # whole counts
        sums.append(float(out["F555W"].sum(dtype=np.float64)))
    expected = float(noiseless["F555W"].sum(dtype=np.float64))
    t = field.exptimes["F555W"]
    assert expected == pytest.approx(
        n * field.mag_to_rate("F555W", 24.0), rel=0.03
    )  # < 3% beyond stamps
    # Poisson: the total counts scatter by sqrt(N)
    assert np.mean(sums) == pytest.approx(expected, rel=4 / np.sqrt(expected * t * 20))
    assert np.std(sums) * t == pytest.approx(np.sqrt(expected * t), rel=0.4)
    # the field itself is untouched, NaN/absent magnitudes inject nothing
    assert not np.any(field.images["F555W"])
    none = inject(
        field, x, y, {b: np.full(n, np.nan) for b in BANDS}, 1.0, np.random.default_rng(0)
    )
    assert not np.any(none["F814W"])


# ------------------------------------------------------------------ frames
def _library(n, seed=0, bright=20.5, faint=27.5):
    rng = np.random.default_rng(seed)
    t = Table({"cluster_id": np.arange(n), "log_mass": rng.uniform(2, 8, n)})
    mv = np.linspace(bright, faint, n)
    for b, c in zip(BANDS, (-0.5, -0.3, 0.2, 0.0, -0.4)):
        t[f"mag_{b}"] = mv + c
    return t


@pytest.fixture(scope="module")
def small_field():
    rng = np.random.default_rng(11)
    n = 40
    src = {
        "x": rng.uniform(20, 380, n),
        "y": rng.uniform(20, 380, n),
        "r_eff_px": rng.uniform(0, 2.5, n),
    }
    for b in BANDS:
        src[f"mag_{b}"] = rng.uniform(20.5, 24.0, n)
    return synthetic_field((400, 400), seed=5, sources=src, name="small")


def test_run_frame_labels(small_field, tmp_path):
    lib = _library(60)
    t = run_frame(small_field, lib, 4.0, seed=7, frame=3)
    assert len(t) == 60
    for col in (
        "cluster_id",
        "log_mass",
        "mag_F555W",
        "r_eff_pc",
        "frame",
        "x",
        "y",
        *STAGES,
        "C",
        "mag_F555W_meas",
        "magerr_F555W_meas",
        "ci_meas",
        "x_meas",
        "y_meas",
        "sep_px",
    ):
        assert col in t.colnames, col
    assert np.all(t["frame"] == 3) and np.all(t["r_eff_pc"] == 4.0)
    assert t["x"].unit == "pix"
    C = np.asarray(t["C"])
    mv = np.asarray(t["mag_F555W"])
    # bright clusters (well above M_V = -6, m_V = 23.98) are recovered, faint ones are not
    assert C[mv < 22.5].mean() > 0.85
    assert not C[mv > 24.5].any()
    # recovered clusters are measured close to their true magnitude and position
    rec = C.astype(bool)
    assert np.all(np.asarray(t["sep_px"])[rec] <= 3.0)
    assert (
        np.median(
            np.abs(np.asarray(t["mag_F555W_meas"])[rec & (mv < 22.5)] - mv[rec & (mv < 22.5)])
        )
        < 0.2
    )
    # a recovered cluster passed every stage
    for s in STAGES:
        assert np.asarray(t[s])[rec].all()
    assert t.meta["n_sources_post"] >= t.meta["n_sources_pre"]
    assert "white_light" in t.meta["timings"] and "cpu_s" in t.meta["timings"]["detect"]
    # the labels table goes to Parquet and back (the stage's on-disk contract)
    from jaxcomp._io import read_table, write_table

    back = read_table(write_table(t, tmp_path / "labels.parquet"))
    np.testing.assert_array_equal(np.asarray(back["C"]), C)
    np.testing.assert_allclose(np.asarray(back["x"]), np.asarray(t["x"]))


def test_run_frame_is_reproducible_and_cached(small_field):
    clear_baseline_cache(small_field)
    base = prepare_field(small_field)
    assert prepare_field(small_field) is base
    lib = _library(30, seed=1)
    a = run_frame(small_field, lib, 3.0, seed=42)
    b = run_frame(small_field, lib, 3.0, seed=42)
    c = run_frame(small_field, lib, 3.0, seed=43)
    for col in ("x", "y", "C", "mag_F555W_meas"):
        np.testing.assert_array_equal(np.asarray(a[col]), np.asarray(b[col]))
    assert not np.array_equal(np.asarray(a["x"]), np.asarray(c["x"]))
    # a SeedSequence is not advanced by the frame: passing the same one twice repeats the frame,
    # and it draws what the integer seed does
    sequence = np.random.SeedSequence(42)
    d = run_frame(small_field, lib, 3.0, seed=sequence)
    e = run_frame(small_field, lib, 3.0, seed=sequence)
    assert sequence.n_children_spawned == 0
    for col in ("x", "y", "C"):
        np.testing.assert_array_equal(np.asarray(d[col]), np.asarray(e[col]))
        np.testing.assert_array_equal(np.asarray(d[col]), np.asarray(a[col]))


def test_cluster_on_a_preexisting_source_is_not_recovered(small_field):
    base = prepare_field(small_field)
    final = base.catalogue[np.asarray(base.catalogue["C"])]
    assert len(final) >= 3
    # two bright clusters: one exactly on an existing catalogue source, one in empty sky
    xs = np.array([float(final["x"][0]), 200.0])
    ys = np.array([float(final["y"][0]), 200.0])
    from scipy.spatial import cKDTree

    d, _ = cKDTree(np.c_[base.catalogue["x"], base.catalogue["y"]]).query([200.0, 200.0])
    if d < 10:  # keep the "empty" spot empty
        xs[1], ys[1] = 390.0 - 5, 10.0
    lib = _library(2, bright=20.5, faint=20.6)
    t = run_frame(small_field, lib, 3.0, seed=1, positions=(xs, ys))
    assert not t["C"][0] and t["C"][1]


def test_run_frame_input_errors(small_field):
    lib = _library(5)
    with pytest.raises(ValueError, match="r_eff_pc"):
        run_frame(small_field, lib)
    lib["r_eff_pc"] = 2.0
    with pytest.raises(ValueError, match="disagrees"):
        run_frame(small_field, lib, 3.0)
    lib.remove_column("mag_F336W")
    with pytest.raises(ValueError, match="mag_F336W"):
        run_frame(small_field, lib, 2.0)
    with pytest.raises(ValueError, match="too small"):
        run_frame(small_field, _library(2000), 10.0)


def test_shot_noise_drawn_band_by_band_equals_one_draw_per_stamp(small_field):
    """noisy_stamps draws each band's stamps in one call: the same numbers as stamp by stamp."""
    from jaxcomp.ast.inject import noisy_stamps
    from jaxcomp.ast.profiles import render_multiband

    rng = np.random.default_rng(3)
    x, y = rng.uniform(50, 350, 6), rng.uniform(50, 350, 6)
    mags = {b: rng.uniform(19.0, 23.0, 6) for b in BANDS}
    mags["F275W"][2] = np.nan  # no light in one band
    r_px = np.array([0.5, 0.5, 1.5, 1.5, 3.0, 3.0])
    got = noisy_stamps(small_field, x, y, mags, r_px, np.random.default_rng(9))
    rates = {
        b: small_field.mag_to_rate(b, np.where(np.isfinite(mags[b]), mags[b], np.inf))
        for b in BANDS
    }
    clean = render_multiband(x, y, rates, r_px, dict(small_field.psf))
    ref = np.random.default_rng(9)
    for b in BANDS:
        t = small_field.exptimes[b]
        assert len(got[b]) == len(clean[b])
        for st, st0 in zip(got[b], clean[b]):
            np.testing.assert_array_equal(st.data, ref.poisson(np.maximum(st0.data, 0.0) * t) / t)
