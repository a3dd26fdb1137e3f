"""The LEGUS catalogue pipeline steps: white light, detection mapping, photometry, cuts,
matching."""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest
from astropy.table import Table

from jaxcomp.ast.background import clipped_stats_rows
from jaxcomp.ast.field import BANDS, Field
from jaxcomp.ast.pipeline import (
    LEGUS_SEXTRACTOR,
    SEXTRACTOR_TO_PHOTUTILS,
    WHITE_LIGHT_SCALES,
    CutsConfig,
    PhotometryConfig,
    SExtractorConfig,
    aperture_corrections,
    aperture_photometry,
    apply_cuts,
    circle_pixel_overlap,
    detect,
    estimate_background,
    fast_median,
    match_injected,
    multi_peak_labels,
    passes_ci,
    passes_err,
    passes_mv,
    passes_nband,
    white_light,
)
from jaxcomp.ast.profiles import add_stamps, render_multiband


# ------------------------------------------------------------------ white light
def test_white_light_is_equation_19():
    rng = np.random.default_rng(0)
    shape = (40, 50)
    imgs = {b: rng.normal(1.0 + i, 0.1, shape).astype(np.float32) for i, b in enumerate(BANDS)}
    fp = np.ones(shape, bool)
    fp[:, :5] = False
    for b in BANDS:
        imgs[b][:, :5] = 1e6  # outside the footprint: must not enter the median
    wl = white_light(imgs, fp)
    expected = np.zeros(shape)
    for scales in WHITE_LIGHT_SCALES.values():
        num = np.zeros(shape)
        for b in BANDS:
            f = np.maximum(imgs[b].astype(np.float64) - np.median(imgs[b][fp]), 0.0)
            num += (f / scales[b]) ** 2
        expected += np.sqrt(num) / math.sqrt(sum(1.0 / scales[b] ** 2 for b in BANDS))
    expected /= len(WHITE_LIGHT_SCALES)
    expected[~fp] = 0
    np.testing.assert_allclose(wl, expected, rtol=1e-5, atol=1e-7)
    assert wl.dtype == np.float32
    # Table 1 of the paper
    assert WHITE_LIGHT_SCALES["21Myr"] == {
        "F275W": 55.8,
        "F336W": 45.3,
        "F435W": 44.2,
        "F555W": 65.7,
        "F814W": 29.3,
    }
    assert WHITE_LIGHT_SCALES["RGB"] == {
        "F275W": 0.5,
        "F336W": 0.8,
        "F435W": 3.1,
        "F555W": 11.2,
        "F814W": 13.7,
    }


def test_fast_median_is_exact():
    rng = np.random.default_rng(1)
    for n in (999, 1_000_000, 1_000_001):
        x = rng.lognormal(size=n).astype(np.float32)
        assert fast_median(x) == np.median(x)


# ------------------------------------------------------------------ detection
def test_sextractor_mapping_is_explicit():
    assert LEGUS_SEXTRACTOR == {
        "DETECT_MINAREA": 10,
        "DETECT_THRESH": 20.0,
        "ANALYSIS_THRESH": 25.0,
        "FILTER": "N",
        "DEBLEND_NTHRESH": 32,
        "DEBLEND_MINCONT": 0.005,
        "BACK_SIZE": 30,
        "BACK_FILTERSIZE": 1,
        "GAIN": 1.53,
    }
    assert set(SEXTRACTOR_TO_PHOTUTILS) == set(LEGUS_SEXTRACTOR)
    assert SEXTRACTOR_TO_PHOTUTILS["DETECT_MINAREA"][1:3] == ("n_pixels", 10)
    assert SEXTRACTOR_TO_PHOTUTILS["DEBLEND_NTHRESH"][1:3] == ("n_levels", 32)
    assert SEXTRACTOR_TO_PHOTUTILS["DEBLEND_MINCONT"][1:3] == ("contrast", 0.005)
    assert SEXTRACTOR_TO_PHOTUTILS["BACK_SIZE"][1:3] == ("box_size", 30)
    assert SEXTRACTOR_TO_PHOTUTILS["BACK_FILTERSIZE"][1:3] == ("filter_size", 1)
    assert SEXTRACTOR_TO_PHOTUTILS["ANALYSIS_THRESH"][0] == "not applied"
    assert SEXTRACTOR_TO_PHOTUTILS["GAIN"][0] == "not applied"
    p = SExtractorConfig().photutils_params()
    assert p["detect_sources"] == {"n_pixels": 10, "connectivity": 8}
    assert p["deblend_sources"] == {
        "n_pixels": 10,
        "n_levels": 32,
        "contrast": 0.005,
        "mode": "exponential",
        "connectivity": 8,
    }
    assert p["threshold_nsigma"] == 20.0
    assert p["Background2D"]["box_size"] == 30 and p["Background2D"]["filter_size"] == 1
    assert p["kernel"] is None
    # photutils' own default contrast differs: the mapping must not rely on it
    import inspect

    from photutils.segmentation import deblend_sources

    assert inspect.signature(deblend_sources).parameters["contrast"].default != 0.005


def _wl_with(plateaus, shape=(120, 120), seed=2):
    rng = np.random.default_rng(seed)
    wl = rng.normal(0.0, 1.0, shape).astype(np.float32)
    for y, x, h, w, value in plateaus:
        wl[y : y + h, x : x + w] = value
    return wl


def test_detect_minarea_and_threshold_semantics():
    cfg = SExtractorConfig()
    # 9 connected pixels at 100 sigma: below DETECT_MINAREA; 10: detected
    det, _ = detect(_wl_with([(20, 20, 3, 3, 100.0), (70, 70, 2, 5, 100.0)]), None, cfg)
    assert len(det) == 1 and abs(det["x"][0] - 72) < 0.1
    # 12 pixels at 19 sigma: below DETECT_THRESH; at 22 sigma: detected
    det, _ = detect(_wl_with([(20, 20, 3, 4, 19.0), (70, 70, 3, 4, 22.0)]), None, cfg)
    assert len(det) == 1 and abs(det["y"][0] - 71) < 0.1


def test_detect_hands_the_mapped_parameters_to_photutils(monkeypatch):
    import photutils.segmentation as seg

    calls = {}
    real_detect, real_deblend = seg.detect_sources, seg.deblend_sources

    def spy_detect(data, threshold, **kw):
        calls["detect"] = dict(kw, threshold=threshold)
        return real_detect(data, threshold, **kw)

    def spy_deblend(data, segm, **kw):
        calls["deblend"] = kw
        return real_deblend(data, segm, **kw)

    # photutils' own detection and deblending or their faster equals (jaxcomp.ast.deblend_photutils)
    detection = importlib.import_module("jaxcomp.ast.detection")
    real_segments = detection.deblend_segments
    real_detect_segments = detection.detect_segments

    def spy_segments(data, segm, labels, **kw):
        calls["deblend"] = kw
        return real_segments(data, segm, labels, **kw)

    def spy_detect_segments(data, threshold, **kw):
        calls["detect"] = dict(kw, threshold=threshold)
        return real_detect_segments(data, threshold, **kw)

    monkeypatch.setattr(seg, "detect_sources", spy_detect)
    monkeypatch.setattr(seg, "deblend_sources", spy_deblend)
    monkeypatch.setattr(detection, "deblend_segments", spy_segments)
    monkeypatch.setattr(detection, "detect_segments", spy_detect_segments)
    yy, xx = np.mgrid[:120, :120]
    wl = _wl_with([])
    for cx in (55.0, 63.0):  # two touching blobs: one segment, two peaks
        wl += 300 * np.exp(-((xx - cx) ** 2 + (yy - 60) ** 2) / (2 * 2.0**2))
    cfg = SExtractorConfig()
    bkg, rms = estimate_background(wl, None, cfg)
    det, segm = detect(wl, None, cfg, background=(bkg, rms))
    assert calls["detect"]["n_pixels"] == 10 and calls["detect"]["connectivity"] == 8
    np.testing.assert_allclose(calls["detect"]["threshold"], 20 * rms)
    kw = calls["deblend"]
    assert (kw["n_pixels"], kw["n_levels"], kw["contrast"], kw["mode"], kw["connectivity"]) == (
        10,
        32,
        0.005,
        "exponential",
        8,
    )
    assert len(det) == 2  # deblended
    np.testing.assert_allclose(np.sort(det["x"]), [55.0, 63.0], atol=0.3)


def _canonical(segm_data):
    """Segmentation up to relabelling: each pixel -> first flat index of its segment."""
    lab = segm_data.ravel()
    idx = np.flatnonzero(lab)
    first = np.full(lab.max() + 1, -1)
    order = np.argsort(lab[idx], kind="stable")
    u, fi = np.unique(lab[idx][order], return_index=True)
    first[u] = idx[order][fi]
    out = np.zeros(lab.shape, np.int64)
    out[idx] = first[lab[idx]]
    return out


def _busy_field(shape=(300, 300), n=250, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, shape[1], n)
    y = rng.uniform(0, shape[0], n)
    # plus close pairs, which need deblending
    npair = n // 10
    x = np.concatenate([x, x[:npair] + rng.uniform(4, 7, npair)])
    y = np.concatenate([y, y[:npair] + rng.uniform(-1, 1, npair)])
    fluxes = {b: 10 ** rng.uniform(-1.0, 1.0, x.size) for b in BANDS}
    stamps = render_multiband(x, y, fluxes, rng.uniform(0, 2, x.size), {b: 2.0 for b in BANDS})
    imgs = {}
    for b in BANDS:
        img = rng.normal(0.05, 0.01, shape)
        add_stamps(img, stamps[b])
        imgs[b] = img.astype(np.float32)
    return imgs


def test_deblend_prefilter_gives_identical_segmentation():
    imgs = _busy_field()
    wl = white_light(imgs)
    fast, slow = SExtractorConfig(), SExtractorConfig(deblend_prefilter=False)
    _, s1 = detect(wl, None, fast)
    _, s2 = detect(wl, None, slow)
    assert s1.n_labels == s2.n_labels > 20
    np.testing.assert_array_equal(_canonical(s1.data), _canonical(s2.data))
    # and some segments really were deblended
    from photutils.segmentation import detect_sources

    bkg, rms = estimate_background(wl, None, fast)
    raw = detect_sources(wl - bkg, 20 * rms, n_pixels=10)
    assert s2.n_labels > raw.n_labels
    assert 0 < multi_peak_labels(wl - bkg, raw.data).size < raw.n_labels


def test_deblend_relabelled_equals_photutils_deblend_sources():
    """The detection's own relabelling of deblend_sources(relabel=False) is photutils'."""
    from photutils.segmentation import deblend_sources, detect_sources

    from jaxcomp.ast.detection import _deblend_relabelled

    imgs = _busy_field()
    wl = white_light(imgs)
    cfg = SExtractorConfig()
    params = cfg.photutils_params()["deblend_sources"]
    bkg, rms = estimate_background(wl, None, cfg)
    data = wl - bkg
    raw = detect_sources(data, cfg.detect_thresh * rms, n_pixels=cfg.detect_minarea)
    peaks = np.intersect1d(multi_peak_labels(data, raw.data), raw.labels)
    gappy = raw.copy()
    gappy.remove_labels(raw.labels[1::3], relabel=False)  # input labels not consecutive
    cases = [
        (raw, raw.labels),
        (raw, peaks),
        (raw, np.setdiff1d(raw.labels, peaks)[:5]),  # single-peak segments: nothing split
        (gappy, np.intersect1d(peaks, gappy.labels)),
    ]
    n_split = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for segm, labels in cases:
            want = deblend_sources(data, segm, labels=labels, progress_bar=False, **params)
            got = _deblend_relabelled(data, segm, labels, params)
            assert got.data.dtype == want.data.dtype
            np.testing.assert_array_equal(got.data, want.data)
            np.testing.assert_array_equal(got.labels, np.unique(want.data[want.data > 0]))
            assert got.labels.dtype == want.labels.dtype
            assert got.parent_to_deblended_labels.keys() == want.parent_to_deblended_labels.keys()
            for k, v in want.parent_to_deblended_labels.items():
                np.testing.assert_array_equal(got.parent_to_deblended_labels[k], v)
            n_split += len(want.parent_to_deblended_labels) > 0
    assert n_split >= 2


def test_fast_background_matches_photutils():
    imgs = _busy_field(shape=(157, 211))  # partial boxes on both axes
    wl = white_light(imgs)
    fp = np.ones(wl.shape, bool)
    fp[:40, :70] = False
    for footprint in (None, fp):
        b1, r1 = estimate_background(wl, footprint, SExtractorConfig(background_impl="photutils"))
        b2, r2 = estimate_background(wl, footprint, SExtractorConfig())
        np.testing.assert_allclose(b2, b1, rtol=1e-5, atol=1e-6 * np.abs(b1).max())
        np.testing.assert_allclose(r2, r1, rtol=1e-5, atol=1e-6 * np.abs(r1).max())


def test_clipped_stats_match_astropy():
    from astropy.stats import sigma_clipped_stats

    rng = np.random.default_rng(4)
    v = rng.normal(size=(20, 300))
    v[:, ::7] = np.nan
    v[:5, :25] += 40  # outliers
    mean, med, std, n = clipped_stats_rows(v, 3.0, 10)
    for i in range(20):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m, md, s = sigma_clipped_stats(v[i], sigma=3, maxiters=10)
        assert (mean[i], med[i], std[i]) == pytest.approx((m, md, s), rel=1e-10, abs=1e-12)


# ------------------------------------------------------------------ photometry
def test_exact_aperture_overlap_matches_photutils():
    from photutils.aperture import CircularAperture
    from photutils.aperture import aperture_photometry as ap

    rng = np.random.default_rng(5)
    img = rng.normal(size=(60, 60))
    x, y = rng.uniform(12, 48, 50), rng.uniform(12, 48, 50)
    ph = aperture_photometry(
        {b: img for b in BANDS},
        x,
        y,
        {b: 0.0 for b in BANDS},
        {b: 1.0 for b in BANDS},
        PhotometryConfig(aperture_weights="exact", centring="none"),
    )
    for r in (1, 3, 4):
        ref = np.asarray(ap(img, CircularAperture(np.c_[x, y], r), method="exact")["aperture_sum"])
        mine = np.asarray(ph[f"flux_r{r}_F555W"]) + math.pi * r * r * np.asarray(ph["sky_F555W"])
        np.testing.assert_allclose(mine, ref, atol=1e-9)
    assert circle_pixel_overlap(-10, 10, -10, 10, 3.0) == pytest.approx(math.pi * 9)


def _iraf_apmeasure(img, x, y, radius):
    """IRAF apphot's aperture sum and area, pixel by pixel as in ``apmeasure.x``."""
    total = area = 0.0
    for j in range(img.shape[0]):
        for i in range(img.shape[1]):
            r = math.sqrt((i - x) ** 2 + (j - y) ** 2) - 0.5
            if r > radius:
                continue
            w = max(0.0, min(1.0, radius - r))
            total += w * img[j, i]
            area += w
    return total, area


def test_iraf_aperture_weights_match_iraf_apmeasure():
    rng = np.random.default_rng(6)
    img = rng.normal(size=(40, 40)) + 5.0
    x, y = rng.uniform(12, 28, 12), rng.uniform(12, 28, 12)
    ph = aperture_photometry(
        {b: img for b in BANDS},
        x,
        y,
        {b: 0.0 for b in BANDS},
        {b: 1.0 for b in BANDS},
        PhotometryConfig(centring="none"),
    )
    for r in (1, 3, 4):
        for k in range(12):
            total, area = _iraf_apmeasure(img, x[k], y[k], float(r))
            mine = ph[f"flux_r{r}_F555W"][k] + area * ph["sky_F555W"][k]
            assert mine == pytest.approx(total, abs=1e-9)
    # a centred source: the 1 px aperture counts 1 + 4 x 0.5 + 4 x (1.5 - sqrt 2) px
    assert _iraf_apmeasure(np.ones((5, 5)), 2.0, 2.0, 1.0)[1] == pytest.approx(
        3.0 + 4 * (1.5 - math.sqrt(2))
    )
    with pytest.raises(ValueError, match="aperture_weights"):
        PhotometryConfig(aperture_weights="photutils")


def _flat_field(shape=(160, 160), sky=0.05):
    return Field({b: np.full(shape, sky, np.float32) for b in BANDS})


def _photometry_of(field, x, y, mags, reff_pc, apcor):
    rates = {b: field.mag_to_rate(b, np.full(len(x), mags[b])) for b in BANDS}
    stamps = render_multiband(x, y, rates, field.r_eff_px(reff_pc), dict(field.psf))
    imgs = {}
    for b in BANDS:
        img = np.array(field.images[b], dtype=np.float64)
        add_stamps(img, stamps[b])
        imgs[b] = img
    return aperture_photometry(
        imgs, x, y, field.zeropoints, field.exptimes, PhotometryConfig(), apcor
    )


def test_isolated_cluster_magnitude_within_001_after_aperture_correction():
    field = _flat_field()
    cfg = PhotometryConfig()
    apcor = aperture_corrections(field, cfg)
    assert all(-0.4 < v < -0.25 for v in apcor.values())  # 3 pc EFF, 2 px Gaussian PSF
    mags = {"F275W": 21.3, "F336W": 21.8, "F435W": 22.6, "F555W": 22.4, "F814W": 22.0}
    x = np.array([40.0, 80.37, 120.71])
    y = np.array([40.0, 79.52, 40.13])
    ph = _photometry_of(field, x, y, mags, cfg.apcor_reff_pc, apcor)
    for b in BANDS:
        np.testing.assert_allclose(ph[f"mag_{b}"], mags[b], atol=0.01)
        assert np.all(ph[f"magerr_{b}"] < 0.05)
    assert np.all((ph["sky_F555W"] > 0.05) & (ph["sky_F555W"] < 0.07))  # flat sky + the EFF wing
    # explicit corrections override the computed ones
    assert aperture_corrections(
        field, PhotometryConfig(aperture_corrections=tuple((b, -0.3) for b in BANDS))
    ) == {b: -0.3 for b in BANDS}


def test_concentration_index_rises_with_radius():
    field = _flat_field()
    mags = dict.fromkeys(BANDS, 20.0)
    cis = []
    for reff in (0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0):
        ph = _photometry_of(field, np.array([80.2]), np.array([79.9]), mags, max(reff, 1e-9), {})
        cis.append(float(ph["ci"][0]))
    assert np.all(np.diff(cis) > 0.05)
    assert cis[0] == pytest.approx(0.92, abs=0.05)  # point source, 2 px FWHM Gaussian
    assert cis[0] < 1.4 < cis[-1]


def test_photometry_outside_footprint_is_invalid():
    imgs = {b: np.full((60, 60), 0.05, np.float32) for b in BANDS}
    fp = np.ones((60, 60), bool)
    fp[:, 40:] = False
    ph = aperture_photometry(
        imgs,
        [20.0, 38.0],
        [30.0, 30.0],
        dict.fromkeys(BANDS, 25.0),
        dict.fromkeys(BANDS, 100.0),
        PhotometryConfig(),
        None,
        fp,
    )
    assert np.isfinite(ph["flux_r4_F555W"][0]) and not np.isfinite(ph["flux_r4_F555W"][1])
    assert np.isinf(ph["magerr_F555W"][1])


# ------------------------------------------------------------------ cuts
def _cut_table():
    """Rows: pass all; fail err(V) alone; fail CI alone; fail n-band alone; fail M_V alone;
    fail err(B and I) (which also leaves only 3 good bands)."""
    good = 0.05
    rows = [
        dict(zip(BANDS, [good] * 5), ci=1.6, mv=22.0),
        dict(zip(BANDS, [good, good, good, 0.4, good]), ci=1.6, mv=22.0),
        dict(zip(BANDS, [good] * 5), ci=1.3, mv=22.0),
        dict(zip(BANDS, [0.5, np.inf, good, good, good]), ci=1.6, mv=22.0),
        dict(zip(BANDS, [good] * 5), ci=1.6, mv=24.0),
        dict(zip(BANDS, [good, good, 0.31, good, np.nan]), ci=1.6, mv=22.0),
    ]
    t = Table()
    for b in BANDS:
        t[f"magerr_{b}"] = [r[b] for r in rows]
        t[f"mag_{b}"] = [22.0] * len(rows)
    t["mag_F555W"] = [r["mv"] for r in rows]
    t["ci"] = [r["ci"] for r in rows]
    return t


def test_each_cut_alone():
    t = _cut_table()
    apply_cuts(t, 29.98)
    np.testing.assert_array_equal(t["passes_err"], [1, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(t["passes_ci"], [1, 1, 0, 1, 1, 1])
    np.testing.assert_array_equal(t["passes_nband"], [1, 1, 1, 0, 1, 0])
    np.testing.assert_array_equal(t["passes_mv"], [1, 1, 1, 1, 0, 1])
    np.testing.assert_array_equal(t["C"], [1, 0, 0, 0, 0, 0])
    assert t["detected"].all()


def test_cut_boundaries():
    t = _cut_table()[:1]
    t["ci"] = [1.4]
    for b in BANDS:
        t[f"magerr_{b}"] = [0.3]
    assert passes_ci(t)[0] and passes_err(t)[0] and passes_nband(t)[0]
    t["ci"] = [np.nan]
    assert not passes_ci(t)[0]
    t["mag_F555W"] = [23.97]
    assert passes_mv(t, 29.98)[0]
    t["mag_F555W"] = [23.99]
    assert not passes_mv(t, 29.98)[0]
    t["mag_F555W"] = [np.nan]
    assert not passes_mv(t, 29.98)[0]
    # NGC628E uses CI >= 1.3
    t["ci"] = [1.35]
    assert passes_ci(t, CutsConfig(ci_min=1.3))[0] and not passes_ci(t)[0]


# ------------------------------------------------------------------ matching
def _cat(xy, final=None, detected_only=None):
    t = Table()
    t["x"] = [p[0] for p in xy]
    t["y"] = [p[1] for p in xy]
    n = len(xy)
    fin = np.ones(n, bool) if final is None else np.asarray(final, bool)
    for s in ("detected", "passes_err", "passes_ci", "passes_nband"):
        t[s] = np.ones(n, bool)
    t["passes_mv"] = fin
    t["C"] = fin
    for b in BANDS:
        t[f"mag_{b}"] = np.arange(n, dtype=float) + 20
        t[f"magerr_{b}"] = np.full(n, 0.1)
    t["ci"] = np.full(n, 1.5)
    return t


def test_match_ignores_preexisting_sources():
    pre = _cat([(100, 100), (50, 50), (400, 400)], final=[True, True, False])
    post = _cat([(100.5, 100), (200, 200), (50.2, 50), (52, 50), (400.3, 400)])
    inj_x = [101.0, 200.5, 300.0, 52.2, 400.5]
    inj_y = [100.0, 200.0, 300.0, 50.0, 400.0]
    m = match_injected(inj_x, inj_y, post, pre, 3.0)
    # 1: lands on a catalogue source that was already there -> not recovered
    # 2: a new source -> recovered; 3: nothing there
    # 4: deblended from a pre-existing neighbour: the neighbour claims the closer source
    # 5: boosts a pre-existing detection (not in the final catalogue) into the catalogue:
    #    the final list gained a source there (C), the detection list did not (detected)
    np.testing.assert_array_equal(m["C"], [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(m["detected"], [0, 1, 0, 1, 0])
    assert m["x_meas"][1] == 200 and m["sep_px"][1] == pytest.approx(0.5)
    assert m["mag_F555W_meas"][3] == 23.0  # row 3 of post
    assert np.isnan(m["mag_F555W_meas"][2])
    # without a pre-injection catalogue every nearby source counts
    np.testing.assert_array_equal(
        match_injected(inj_x, inj_y, post, None, 3.0)["C"], [1, 1, 0, 1, 1]
    )
    # empty catalogues
    empty = post[:0]
    assert not match_injected(inj_x, inj_y, empty, pre, 3.0)["C"].any()
