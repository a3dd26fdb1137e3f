"""The detection threshold mapping and the ports of SExtractor's background, deblending and CLEAN.

The last test compares with SEP (``pip install sep``, in the ``test`` extra), SExtractor's own
background, extraction, deblending and CLEAN code as a library: on these five images SEP's
positions agree with Debian's ``source-extractor`` 2.x binary to 2e-5 px (checked when SEP
replaced the binary here); ``benchmarks/compare_sextractor.py`` is the full comparison with the
binary.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from jaxcomp.ast import pipeline as P
from jaxcomp.ast.pipeline import (
    SEXTRACTOR_PORT,
    SExtractorConfig,
    detect,
    estimate_background,
    global_background_rms,
    sextractor_background,
    sextractor_deblend,
)


# ------------------------------------------------------------------ the threshold
def _two_noise_regions(shape=(120, 240), seed=0):
    """Left half noise sigma 1, right half sigma 3 (like quiet disk vs bright arm)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, 1.0, shape)
    img[:, shape[1] // 2 :] *= 3.0
    return img.astype(np.float32)


def test_default_threshold_is_detect_thresh_times_the_global_rms():
    img = _two_noise_regions()
    cfg = SExtractorConfig()
    bkg, rms = estimate_background(img, None, cfg)
    g = global_background_rms(img, None, cfg)
    # one number, the median of the per-mesh clipped RMS (SExtractor's backsig)
    assert np.all(rms == np.float32(g)) and rms.strides == (0, 0)
    assert 1.0 < g < 3.0
    # SExtractor's median of the mesh sigmas: 4 x 8 meshes, half at ~1 and half at ~3
    b = cfg.back_size
    meshes = (
        img.reshape(img.shape[0] // b, b, img.shape[1] // b, b)
        .transpose(0, 2, 1, 3)
        .reshape(-1, b * b)
    )
    _, _, std, _ = P.clipped_stats_rows(meshes, 3.0, 10)
    assert g == pytest.approx(float(np.median(std)), rel=1e-6)


def test_a_source_on_a_noisy_region_is_judged_against_the_global_rms():
    img = _two_noise_regions()
    cfg = SExtractorConfig()
    g = global_background_rms(img, None, cfg)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    # a 25 x global-sigma plateau of 16 px on the sigma = 3 side: 25 g > 20 g, but < 20 x 3
    img2 = img.copy()
    img2[58:62, 178:182] += 25.0 * g + 0.0
    det, _ = detect(img2, None, cfg)
    assert np.any(np.hypot(det["x"] - 179.5, det["y"] - 59.5) < 1.0)
    former = dataclasses.replace(cfg, thresh_rms="map")
    det_map, _ = detect(img2, None, former)
    assert not np.any(np.hypot(det_map["x"] - 179.5, det_map["y"] - 59.5) < 1.0)
    with pytest.raises(ValueError, match="thresh_rms"):
        SExtractorConfig(thresh_rms="local")
    with pytest.raises(ValueError, match="global"):
        SExtractorConfig(deblend_impl="sextractor", thresh_rms="map")
    with pytest.raises(ValueError, match="clean"):
        SExtractorConfig(clean=True)


# ------------------------------------------------------------------ background port
def _backguess_reference(h, nlev, mean, qscale, qzero):
    """SExtractor's backguess() for one mesh, transcribed loop for loop (two-pointer median)."""
    nlm1 = nlev - 1
    lcut, hcut = 0, nlm1
    sig, sig1 = 10.0 * nlm1, 1.0
    mea = med = float(mean)
    n = 100
    while n > 0 and sig >= 0.1 and abs(sig / sig1 - 1.0) > 1e-4:
        n -= 1
        sig1 = sig
        tot = m1 = m2 = 0.0
        lowsum = highsum = 0
        lo, hi = lcut, hcut
        for i in range(lcut, hcut + 1):
            if lowsum < highsum:
                lowsum += int(h[lo])
                lo += 1
            else:
                highsum += int(h[hi])
                hi -= 1
            tot += h[i]
            m1 += h[i] * i
            m2 += h[i] * i * i
        den = 2.0 * max(int(h[lo]) if lo < len(h) else 0, int(h[hi]) if hi >= 0 else 0)
        med = (
            (hi + 0.5 + (highsum - lowsum) / den)
            if hi >= 0 and den > 0
            else (hi + 0.5 if hi >= 0 else 0.0)
        )
        if tot:
            mea = m1 / tot
            var = m2 / tot - mea * mea
        else:
            mea, var = 0.0, 0.0
        sig = math.sqrt(var) if var > 0 else 0.0
        f = med - 3.0 * sig
        lcut = int(f + 0.5) if f > 0 else 0
        f = med + 3.0 * sig
        hcut = (int(f + 0.5) if f > 0 else int(f - 0.5)) if f < nlm1 else nlm1
    if abs(sig) > 0:
        mode = qzero + ((2.5 * med - 1.5 * mea) if abs((mea - med) / sig) < 0.3 else med) * qscale
    else:
        mode = qzero + mea * qscale
    return mode, sig * qscale


def test_backguess_median_equals_the_two_pointer_walk():
    rng = np.random.default_rng(3)
    hs, nl = [], []
    for k in range(40):
        nlev = int(rng.integers(20, 300))
        centre = rng.uniform(0.3, 0.7) * nlev
        vals = rng.normal(centre, nlev / 10, 800)
        if k % 3 == 0:  # a source tail
            vals = np.concatenate([vals, rng.uniform(centre, nlev, 120)])
        h = np.bincount(np.clip(vals, 0, nlev - 1).astype(int), minlength=nlev)
        hs.append(h)
        nl.append(nlev)
    width = max(nl)
    H = np.zeros((len(hs), width), np.int32)
    for i, h in enumerate(hs):
        H[i, : h.size] = h
    nlev = np.array(nl)
    mean = np.full(len(hs), 0.5, np.float32)
    qs = np.full(len(hs), 0.01, np.float32)
    qz = np.zeros(len(hs), np.float32)
    mode, sig = P._sex_backguess(H, nlev, mean, qs, qz)
    for i in range(len(hs)):
        m_ref, s_ref = _backguess_reference(hs[i], nl[i], 0.5, 0.01, 0.0)
        assert mode[i] == pytest.approx(m_ref, rel=1e-5, abs=1e-7)
        assert sig[i] == pytest.approx(s_ref, rel=1e-5, abs=1e-7)


def test_sextractor_background_of_noise_on_a_gradient():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:200, :260]
    plane = 5.0 + 0.002 * xx + 0.004 * yy
    img = (plane + rng.normal(0, 1.0, plane.shape)).astype(np.float32)
    sb = sextractor_background(img, None, 30)
    assert sb["mesh"].shape == (7, 9)  # partial last meshes, as SExtractor
    assert sb["backsig"] == pytest.approx(1.0, rel=0.05)
    inner = (slice(15, 185), slice(15, 245))
    resid = np.abs(sb["background"][inner] - plane[inner])
    assert np.median(resid) < 0.08 and resid.max() < 0.4  # mode of 900 noisy pixels per mesh


def test_sextractor_spline_node_conventions_and_no_clipping():
    ny, nx, bw = 5, 6, 30
    j, i = np.mgrid[:ny, :nx].astype(float)
    mesh = (2.0 + 0.5 * i - 0.25 * j).astype(np.float32)
    img = P._sex_interpolate(mesh, (ny * bw, nx * bw), bw, bw)
    yy, xx = np.mgrid[: ny * bw, : nx * bw].astype(float)
    # linear meshes are reproduced exactly, with nodes at x = 14.5 + 30 i and y = 15 + 30 j
    np.testing.assert_allclose(
        img, 2.0 + 0.5 * (xx - 14.5) / bw - 0.25 * (yy - 15.0) / bw, atol=2e-5
    )
    # one bright mesh: the bicubic spline overshoots below the mesh minimum (SExtractor does not
    # clip)
    spike = np.zeros((ny, nx), np.float32)
    spike[2, 2] = 10.0
    out = P._sex_interpolate(spike, (ny * bw, nx * bw), bw, bw)
    assert out.min() < -0.5 and out.max() == pytest.approx(10.0, rel=0.05)


def test_sextractor_background_bad_meshes_take_the_nearest_valid_ones():
    rng = np.random.default_rng(5)
    img = rng.normal(0, 1, (90, 90)).astype(np.float32)
    img[:, 60:] += 7.0
    fp = np.ones(img.shape, bool)
    fp[:30, :30] = False  # mesh (0, 0) has no valid pixel
    sb = sextractor_background(img, fp, 30)
    m = sb["mesh"]
    assert m[0, 0] == pytest.approx((m[0, 1] + m[1, 0]) / 2, rel=1e-6)
    assert np.all(np.isfinite(sb["background"]))
    bkg, rms = estimate_background(img, fp, SExtractorConfig(background_impl="sextractor"))
    assert (
        np.all(bkg[~fp] == 0)
        and rms.strides == (0, 0)
        and float(rms[0, 0]) == pytest.approx(sb["backsig"])
    )


# ------------------------------------------------------------------ deblending port
def _gauss(shape, a, x0, y0, s):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    return a * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * s * s))


def test_deblend_contrast_counts_the_flux_above_the_split_level():
    from photutils.segmentation import deblend_sources, detect_sources

    shape = (100, 140)
    for bx, n_sex in ((54, 1), (58, 2)):
        img = _gauss(shape, 200, 30, 50, 5) + _gauss(shape, 4, bx, 50, 4)
        segm = detect_sources(img, 0.2, n_pixels=10)
        assert segm.n_labels == 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ph = deblend_sources(
                img,
                segm,
                n_pixels=10,
                n_levels=32,
                contrast=0.005,
                mode="exponential",
                progress_bar=False,
            )
        new, pos, branch = sextractor_deblend(img, segm.data, segm.labels, 0.2)
        # photutils weighs the faint source's whole watershed basin: it splits it off at 0.5%;
        # SExtractor only its flux above the level where the two separate (too little at bx = 54)
        assert ph.n_labels == 2
        assert len(np.unique(new[new > 0])) == n_sex
        if n_sex == 2:
            xs = sorted(v[0] for v in pos.values())
            assert abs(xs[0] - 30) < 0.5 and abs(xs[1] - bx) < 1.0
            assert sorted(branch) == sorted(pos)


def test_deblend_branches_may_be_smaller_than_detect_minarea():
    # a compact bright knot of ~5 px above the saddle on a broad source: SExtractor keeps
    # branches of min(DETECT_MINAREA, 3) = 3 pixels (MAXDEBAREA)
    shape = (60, 80)
    img = _gauss(shape, 50, 30, 30, 5) + _gauss(shape, 40, 41, 30, 0.7)
    segm_data = (img > 0.5).astype(np.int32)
    new, pos, _ = sextractor_deblend(img, segm_data, np.array([1]), 0.5, minarea=10)
    assert len(np.unique(new[new > 0])) == 2
    assert min(abs(v[0] - 41) for v in pos.values()) < 0.3


# ------------------------------------------------------------------ CLEAN
def _wing_field(faint_amp, d, seed=5):
    shape = (120, 160)
    rng = np.random.default_rng(seed)
    img = (
        _gauss(shape, 300, 60, 60, 5)
        + _gauss(shape, faint_amp, 60 + d, 60, 2.5)
        + rng.normal(0, 0.05, shape)
        + 1.0
    )
    return img.astype(np.float32)


def test_clean_merges_a_faint_detection_into_a_bright_neighbours_wing():
    on = SEXTRACTOR_PORT.sextractor
    off = dataclasses.replace(on, clean=False)
    img = _wing_field(1.6, 24)
    t_on, seg_on = detect(img, None, on)
    t_off, _ = detect(img, None, off)
    assert len(t_off) == 2 and len(t_on) == 1
    # the survivor keeps its position and gains the flux and area of the merged one
    bright = int(np.argmin(np.hypot(t_off["x"] - 60, t_off["y"] - 60)))
    assert float(t_on["x"][0]) == pytest.approx(float(t_off["x"][bright]))
    assert int(t_on["area_px"][0]) == int(np.sum(t_off["area_px"]))
    assert int(seg_on.n_labels) == 1
    # brighter or farther: kept
    assert len(detect(_wing_field(2.5, 24), None, on)[0]) == 2
    assert len(detect(_wing_field(1.6, 34), None, on)[0]) == 2


def test_lutz_pixel_order_and_the_mthresh_heap():
    m = np.zeros((4, 6), bool)
    m[0, 2:4] = True
    m[1, 1:5] = True
    m[2, 2] = True
    m[3, 3] = True
    order = P._lutz_order(m)
    assert order == [(1, 1), (0, 2), (0, 3), (1, 2), (1, 3), (1, 4), (2, 2), (3, 3)]
    assert sorted(order) == sorted(zip(*np.nonzero(m)))
    # exactly minarea pixels: the heap is never sorted, mthresh is the first pixel
    assert P._sex_mthresh([5.0, 1.0, 9.0], 3) == 5.0
    # minarea + 1: the extra pixel is skipped (the heap gets sorted instead)
    assert P._sex_mthresh([5.0, 1.0, 9.0, 100.0], 3) == 1.0
    assert P._sex_mthresh([5.0, 1.0, 9.0, 100.0, 7.0], 3) == 5.0
    assert P._sex_mthresh([1.0, 2.0], 3) == 0.0


# ------------------------------------------------------------------ against SExtractor's library
# (SEP)
def _run_sep(img, clean):
    """Positions (0-based x, y) of SEP with the LEGUS-like settings of SEXTRACTOR_PORT.

    SExtractor's ``BACK_SIZE 30``, ``BACK_FILTERSIZE 1``, ``DETECT_THRESH 20`` (times the global
    background RMS), ``DETECT_MINAREA 10``, no filter, ``DEBLEND_NTHRESH 32``,
    ``DEBLEND_MINCONT 0.005``, ``CLEAN`` with ``CLEAN_PARAM 1``.
    """
    import sep

    data = np.asarray(np.asarray(img, np.float32), np.float64)
    background = sep.Background(data, bw=30, bh=30, fw=1, fh=1)
    sep.set_extract_pixstack(3_000_000)
    objects = sep.extract(
        data - background.back(),
        20.0,
        err=background.globalrms,
        minarea=10,
        filter_kernel=None,
        deblend_nthresh=32,
        deblend_cont=0.005,
        clean=clean,
        clean_param=1.0,
    )
    return np.column_stack([np.asarray(objects["x"], float), np.asarray(objects["y"], float)])


def _same_positions(a, b, tol=2e-3):
    from scipy.spatial import cKDTree

    if len(a) != len(b):
        return False
    d, _ = cKDTree(b).query(a)
    return bool(np.all(d < tol))


def test_the_port_reproduces_sextractor_on_the_mock_white_light():
    from jaxcomp.ast.mock import make_mock_field
    from jaxcomp.ast.pipeline import white_light

    wl = white_light(make_mock_field((450, 450)).images)
    for clean in (False, True):
        cfg = dataclasses.replace(SEXTRACTOR_PORT.sextractor, clean=clean)
        det, _ = detect(wl, None, cfg)
        ours = np.column_stack([np.asarray(det["x"]), np.asarray(det["y"])])
        theirs = _run_sep(wl, clean)
        assert len(ours) > 30
        assert _same_positions(ours, theirs), (clean, len(ours), len(theirs))
    # the synthetic deblending and CLEAN cases give SExtractor's answers too
    for img, clean in (
        (
            _gauss((100, 140), 200, 30, 50, 5)
            + _gauss((100, 140), 4, 54, 50, 4)
            + np.random.default_rng(1).normal(0, 0.01, (100, 140)),
            False,
        ),
        (_wing_field(1.6, 24), True),
        (_wing_field(1.6, 24), False),
    ):
        cfg = dataclasses.replace(SEXTRACTOR_PORT.sextractor, clean=clean)
        det, _ = detect(np.asarray(img, np.float32), None, cfg)
        ours = np.column_stack([np.asarray(det["x"]), np.asarray(det["y"])])
        assert _same_positions(ours, _run_sep(img, clean))
