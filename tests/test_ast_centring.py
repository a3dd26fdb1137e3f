"""IRAF apphot centroid recentring (jaxcomp.ast.centring) against a plain per-source port."""

import math

import numpy as np
import pytest

from jaxcomp.ast.centring import (
    CENTRING_BAD_DATA,
    CENTRING_BIG_SHIFT,
    CENTRING_LOW_SNR,
    CENTRING_NO_AREA,
    CENTRING_OK,
    CENTRING_OUT_OF_BOUNDS,
    iraf_centroid,
)


# ---------------------------------------------------------------- scalar reference
def _scalar_centroid(image, x0, y0, *, cbox=1.0, maxiter=3, maxshift=1.0, minsnr=1.0,
                     sigma=0.01, epadu=1.0):  # fmt: skip
    """One source, the IRAF way: 1-based logical coordinates, loops and early returns.

    Written from the description of apfitcen.x / apctrbuf.x / apmctr1d.x / apcsnratio.x
    (cthreshold = 0, emission, poisson noise, no datamin/datamax).
    """
    nlines, ncols = image.shape
    wx, wy = x0 + 1.0, y0 + 1.0
    capert = cbox / 2.0
    if capert <= 0.0:
        return x0, y0, 101
    width = 2 * int(max(1.0, capert)) + 1
    half = (width - 1) // 2

    def centre_1d(marg):
        n = len(marg)
        mean = sum(marg) / n
        v = [max(a - mean, 0.0) for a in marg]
        s0 = sum(v)
        if s0 == 0.0:
            return (n + 1) / 2.0, True
        c = sum((i + 1) * vi for i, vi in enumerate(v)) / s0
        var = sum((i + 1) ** 2 * vi for i, vi in enumerate(v)) / s0 - c * c
        if var <= 0.0:
            return c, False
        return c, math.sqrt(var / (s0 * epadu)) > n

    owx, owy = wx, wy
    niter = 0
    while True:
        if owx - half > ncols or owx + half < 1 or owy - half > nlines or owy + half < 1:
            return x0, y0, 101
        c1 = int(max(1.0, min(ncols, owx - half)) + 0.5)
        c2 = int(min(ncols, max(1.0, owx + half)) + 0.5)
        l1 = int(max(1.0, min(nlines, owy - half)) + 0.5)
        l2 = int(min(nlines, max(1.0, owy + half)) + 0.5)
        nx, ny = c2 - c1 + 1, l2 - l1 + 1
        box = [[float(image[j - 1, i - 1]) for i in range(c1, c2 + 1)] for j in range(l1, l2 + 1)]
        outside = nx < width or ny < width
        lo = min(min(row) for row in box)
        box = [[max(p - lo, 0.0) for p in row] for row in box]
        signal = sum(sum(row) for row in box)
        noise = math.sqrt(abs(signal / epadu) + nx * ny * sigma**2)
        snr = 0.0 if signal <= 0.0 else (signal / noise if noise > 0 else math.inf)
        lowsnr = snr < minsnr
        xmarg = [sum(box[j][i] for j in range(ny)) / ny for i in range(nx)]
        ymarg = [sum(box[j][i] for i in range(nx)) / nx for j in range(ny)]
        cxc, cyc = owx - c1 + 1.0, owy - l1 + 1.0
        xc, xindef = centre_1d(xmarg)
        yc, yindef = centre_1d(ymarg)
        xc = cxc if xindef else xc
        yc = cyc if yindef else yc
        xc = min(max(xc, 0.5), nx + 0.5)
        yc = min(max(yc, 0.5), ny + 0.5)
        xshift, yshift = xc - cxc, yc - cyc
        xcen, ycen = owx + xshift, owy + yshift
        niter += 1
        owx, owy = xcen, ycen
        if niter >= maxiter or (abs(xshift) < 1.0 and abs(yshift) < 1.0):
            break
    if lowsnr:
        code = 103
    elif abs(xcen - wx) > maxshift or abs(ycen - wy) > maxshift:
        code = 107
    elif outside:
        code = 102
    else:
        code = 0
    return xcen - 1.0, ycen - 1.0, code


# ---------------------------------------------------------------- images
def _gaussian(shape, x, y, fwhm, amp):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    s = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return amp * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / s**2)


def _eff(shape, x, y, a, amp):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return amp * (1.0 + ((xx - x) ** 2 + (yy - y) ** 2) / a**2) ** -1.5


@pytest.mark.parametrize("box_px", [1.0, 4.5])
def test_matches_scalar_reference_on_random_sources(box_px):
    rng = np.random.default_rng(12 if box_px == 1.0 else 13)
    shape = (48, 52)
    xs, ys, gxs, gys, imgs, eps = [], [], [], [], [], []
    flags = []
    for _frame in range(10):
        img = 1.0 + rng.normal(0.0, 0.02, shape)
        n = 30
        x = rng.uniform(-0.5, shape[1] - 0.5, n)  # includes sources on the edges
        y = rng.uniform(-0.5, shape[0] - 0.5, n)
        for k in range(n):
            amp = 10 ** rng.uniform(-2.0, 1.5)  # down to S/N < 1
            if k % 2:
                img += _gaussian(shape, x[k], y[k], rng.uniform(1.2, 4.0), amp)
            else:
                img += _eff(shape, x[k], y[k], rng.uniform(0.7, 3.0), amp)
        r = rng.uniform(0.0, 1.6, n)
        phi = rng.uniform(0.0, 2.0 * math.pi, n)
        xs.append(x)
        ys.append(y)
        gxs.append(x + r * np.cos(phi))
        gys.append(y + r * np.sin(phi))
        imgs.append(img)
        eps.append(10 ** rng.uniform(-2.0, 3.5))  # epadu: LowSnr at the low end
    for img, gx, gy, ep in zip(imgs, gxs, gys, eps):
        xn, yn, fl = iraf_centroid(img, gx, gy, box_px=box_px, epadu=ep)
        for k in range(gx.size):
            rx, ry, rc = _scalar_centroid(img, gx[k], gy[k], cbox=box_px, epadu=ep)
            assert abs(xn[k] - rx) <= 1e-9 and abs(yn[k] - ry) <= 1e-9, (k, xn[k], yn[k], rx, ry)
            assert fl[k] == rc
        flags.append(fl)
    flags = np.concatenate(flags)
    assert flags.size == 300
    # the comparison covers the codes a real frame produces
    for code in (CENTRING_OK, CENTRING_OUT_OF_BOUNDS, CENTRING_LOW_SNR, CENTRING_BIG_SHIFT):
        assert np.any(flags == code), code


# ---------------------------------------------------------------- analytic cases
SHAPE = (31, 41)
X0, Y0 = 20.0, 15.0


def test_source_at_pixel_centre_returns_the_pixel_exactly():
    img = 100.0 + _gaussian(SHAPE, X0, Y0, 2.0, 1000.0)
    x, y, f = iraf_centroid(img, [X0 + 0.34], [Y0 + 0.35])
    assert x[0] == X0 and y[0] == Y0 and f[0] == CENTRING_OK
    # guess on the far side (+0.66): an asymmetric box, still the pixel (notes, case b)
    x, y, f = iraf_centroid(img, [X0 + 0.66], [Y0 + 0.35])
    assert x[0] == X0 and y[0] == Y0 and f[0] == CENTRING_OK


@pytest.mark.parametrize("guess_dx", [-0.4, 0.1, 0.45])
def test_source_at_pixel_corner_returns_the_half_integer(guess_dx):
    img = 100.0 + _gaussian(SHAPE, X0 + 0.5, Y0, 2.0, 1000.0)
    x, y, f = iraf_centroid(img, [X0 + 0.5 + guess_dx], [Y0 + 0.2])
    assert abs(x[0] - (X0 + 0.5)) < 1e-12 and y[0] == Y0 and f[0] == CENTRING_OK


def test_box_rounds_half_pixels_up():
    # a guess on a pixel edge (21.5) takes the box 21..23 (IRAF's int(v + 0.5)), which
    # locks on column 21; rounding half to even (box 20..22) would give the corner 20.5
    img = 100.0 + _gaussian(SHAPE, X0 + 0.5, Y0, 2.0, 1000.0)
    x, y, f = iraf_centroid(img, [X0 + 1.5], [Y0 + 0.5])
    assert x[0] == X0 + 1.0 and y[0] == Y0 and f[0] == CENTRING_OK
    assert (x[0], y[0], f[0]) == _scalar_centroid(img, X0 + 1.5, Y0 + 0.5)


def test_flat_box_is_low_snr_and_keeps_the_guess():
    img = np.full(SHAPE, 3.0)
    gx, gy = np.array([X0 + 0.34, 7.5]), np.array([Y0 + 0.35, 9.5])
    x, y, f = iraf_centroid(img, gx, gy)
    assert np.array_equal(x, gx) and np.array_equal(y, gy)
    assert np.all(f == CENTRING_LOW_SNR)
    # a plateau edge inside the box: the two plateau columns count, a half-integer
    img = np.full(SHAPE, 100.0)
    img[11:20, 16:25] = 600.0  # plateau columns 16..24
    x, y, f = iraf_centroid(img, [24.3], [Y0 + 0.35])  # box columns 23, 24, 25
    assert x[0] == 23.5 and y[0] == Y0 + 0.35 and f[0] == CENTRING_OK


def test_big_shift_reports_the_star_pixel():
    img = 100.0 + _gaussian(SHAPE, X0, Y0, 2.0, 1000.0)
    x, y, f = iraf_centroid(img, [X0 + 1.4], [Y0])
    assert x[0] == X0 and y[0] == Y0 and f[0] == CENTRING_BIG_SHIFT
    # a larger maxshift accepts the same shift
    x, y, f = iraf_centroid(img, [X0 + 1.4], [Y0], max_shift_px=1.5)
    assert x[0] == X0 and f[0] == CENTRING_OK
    # one iteration only: the first box (X0 .. X0 + 2) already locks on X0
    x, y, f = iraf_centroid(img, [X0 + 1.6], [Y0], max_iter=1)
    assert x[0] == X0 + 1.0 and f[0] == CENTRING_OK


def test_source_at_the_edge_is_out_of_bounds():
    img = 100.0 + _gaussian(SHAPE, 0.0, Y0, 2.0, 1000.0)
    x, y, f = iraf_centroid(img, [0.3], [Y0 + 0.2])
    rx, ry, rc = _scalar_centroid(img, 0.3, Y0 + 0.2)
    assert f[0] == CENTRING_OUT_OF_BOUNDS == rc
    assert x[0] == rx == 0.0 and y[0] == ry == Y0


def test_box_off_the_image_is_no_area():
    img = 100.0 + _gaussian(SHAPE, X0, Y0, 2.0, 1000.0)
    gx, gy = np.array([-2.5, X0, np.nan]), np.array([Y0, SHAPE[0] + 1.2, Y0])
    x, y, f = iraf_centroid(img, gx, gy)
    assert np.all(f == CENTRING_NO_AREA)
    assert np.array_equal(x, gx, equal_nan=True) and np.array_equal(y, gy)


def test_nan_or_footprint_in_the_box_is_bad_data_and_keeps_the_input():
    img = 100.0 + _gaussian(SHAPE, X0, Y0, 2.0, 1000.0) + _gaussian(SHAPE, 30, 8, 2.0, 1000.0)
    img[int(Y0) + 1, int(X0) - 1] = np.nan
    gx, gy = np.array([X0 + 0.3, 30.2]), np.array([Y0 + 0.1, 8.3])
    x, y, f = iraf_centroid(img, gx, gy)
    assert f.tolist() == [CENTRING_BAD_DATA, CENTRING_OK]
    assert x[0] == gx[0] and y[0] == gy[0]
    # NaN met on the second pass (the first box is clean)
    x, y, f = iraf_centroid(img, [X0 - 1.6], [Y0 + 2.0])
    assert f[0] == CENTRING_BAD_DATA and x[0] == X0 - 1.6 and y[0] == Y0 + 2.0
    clean = 100.0 + _gaussian(SHAPE, X0, Y0, 2.0, 1000.0)
    fp = np.ones(SHAPE, bool)
    fp[int(Y0), int(X0) + 1] = False
    x, y, f = iraf_centroid(clean, [X0 + 0.3], [Y0 + 0.1], footprint=fp)
    assert f[0] == CENTRING_BAD_DATA and x[0] == X0 + 0.3


def test_low_snr_follows_sigma_and_epadu():
    img = 100.0 + _gaussian(SHAPE, X0, Y0, 2.0, 2.0)  # box signal 3.5 data units
    _, _, f = iraf_centroid(img, [X0 + 0.2], [Y0], epadu=1.0)  # S/N 1.9
    assert f[0] == CENTRING_OK
    _, _, f = iraf_centroid(img, [X0 + 0.2], [Y0], epadu=1.0, sigma=2.0)  # S/N 0.56
    assert f[0] == CENTRING_LOW_SNR
    _, _, f = iraf_centroid(img, [X0 + 0.2], [Y0], epadu=0.1)  # S/N 0.59
    assert f[0] == CENTRING_LOW_SNR


def test_bad_arguments():
    img = np.zeros(SHAPE)
    with pytest.raises(ValueError, match="max_iter"):
        iraf_centroid(img, [1.0], [1.0], max_iter=0)
    with pytest.raises(ValueError, match="epadu must be > 0"):
        iraf_centroid(img, [1.0], [1.0], epadu=0.0)
    with pytest.raises(ValueError, match="differ in length"):
        iraf_centroid(img, [1.0, 2.0], [1.0])
    x, y, f = iraf_centroid(img, [3.0], [4.0], box_px=0.0)
    assert f[0] == CENTRING_NO_AREA and x[0] == 3.0


# ---------------------------------------------------------------- in the pipeline
def _centring_config(centring="iraf_centroid", **kw):
    import dataclasses

    from jaxcomp.ast import DEFAULT_CONFIG

    return dataclasses.replace(
        DEFAULT_CONFIG,
        photometry=dataclasses.replace(DEFAULT_CONFIG.photometry, centring=centring, **kw),
    )


@pytest.fixture(scope="module")
def mock_runs():
    from jaxcomp.ast import make_mock_field, run_pipeline

    field = make_mock_field("small", seed=0)
    return (
        field,
        run_pipeline(field, config=_centring_config("none")).catalogue,
        run_pipeline(field).catalogue,
    )


def test_pipeline_apertures_sit_at_each_band_centroid(mock_runs):
    from jaxcomp.ast import BANDS

    field, off, on = mock_runs
    assert not any(c.startswith(("x_", "y_", "centring_flag_")) for c in off.colnames)
    # detection unchanged; the photometry is measured elsewhere
    for col in ("source_id", "x", "y", "area_px", "wl_flux"):
        np.testing.assert_array_equal(np.asarray(on[col]), np.asarray(off[col]), err_msg=col)
    assert not np.array_equal(np.asarray(on["flux_r1_F555W"]), np.asarray(off["flux_r1_F555W"]))
    x, y = np.asarray(on["x"]), np.asarray(on["y"])
    for b in BANDS:
        xb, yb = np.asarray(on[f"x_{b}"]), np.asarray(on[f"y_{b}"])
        flag = np.asarray(on[f"centring_flag_{b}"])
        assert set(flag.tolist()) <= {0, 101, 102, 103, 107, 108}
        ok = flag == CENTRING_OK
        assert ok.mean() > 0.85, b
        # an accepted centroid moved at most max_shift (1 px) per axis from the detection
        assert np.all(np.hypot(xb - x, yb - y)[ok] <= 1.5), b
        assert np.all(np.maximum(np.abs(xb - x), np.abs(yb - y))[flag == 107] > 1.0), b
        assert np.mean(np.hypot(xb - x, yb - y) <= 1.5) > 0.9, b
        # the apertures are where the columns say: the band's photometry there
        ph = _photometry_at(field, b, xb[:50], yb[:50])
        np.testing.assert_allclose(ph, np.asarray(on[f"flux_r3_{b}"])[:50], rtol=1e-12)
    bright = np.asarray(on["mag_F555W"]) < 23.0
    assert bright.sum() > 100
    ci_on, ci_off = np.asarray(on["ci"])[bright], np.asarray(off["ci"])[bright]
    assert np.all(np.isfinite(ci_on))
    assert abs(np.median(ci_on - ci_off)) < 0.02


def _photometry_at(field, band, x, y):
    """The 3 px flux of ``band`` at (x, y) without centring (the same aperture code)."""
    from jaxcomp.ast import aperture_photometry

    ph = aperture_photometry(
        field.images, x, y, field.zeropoints, field.exptimes,
        _centring_config("none").photometry, footprint=field.footprint,
    )  # fmt: skip
    return np.asarray(ph[f"flux_r3_{band}"])


def test_photometry_centring_matches_iraf_centroid_per_band():
    """aperture_photometry centres each band on iraf_centroid(image, x, y, epadu = t)."""
    from jaxcomp.ast import BANDS, aperture_photometry
    from jaxcomp.ast.synthetic import synthetic_field

    rng = np.random.default_rng(0)
    x = rng.uniform(10, 110, 20)
    y = rng.uniform(10, 110, 20)
    sources = {"x": x + rng.uniform(-1, 1, 20), "y": y + rng.uniform(-1, 1, 20)}
    sources["r_eff_px"] = np.full(20, 0.5)
    for b in BANDS:
        sources[f"mag_{b}"] = rng.uniform(19.0, 24.0, 20)
    field = synthetic_field(shape=(120, 120), seed=4, sources=sources)
    cfg = _centring_config(centring_max_shift_px=0.8).photometry
    ph = aperture_photometry(field.images, x, y, field.zeropoints, field.exptimes, cfg)
    for b in BANDS:
        xb, yb, fb = iraf_centroid(
            field.images[b], x, y, max_shift_px=0.8, sigma=0.01, epadu=field.exptimes[b]
        )
        np.testing.assert_array_equal(np.asarray(ph[f"x_{b}"]), xb)
        np.testing.assert_array_equal(np.asarray(ph[f"y_{b}"]), yb)
        np.testing.assert_array_equal(np.asarray(ph[f"centring_flag_{b}"]), fb)
    np.testing.assert_array_equal(np.asarray(ph["x"]), x)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"centring": "centroid"}, "centring must be 'iraf_centroid'"),
        ({"centring_box_px": 0.0}, "centring_box_px must be"),
        ({"centring_box_px": float("nan")}, "centring_box_px must be"),
        ({"centring_max_iter": 0}, "centring_max_iter must be"),
        ({"centring_max_iter": 2.5}, "centring_max_iter must be"),
        ({"centring_max_shift_px": -1.0}, "centring_max_shift_px must be"),
    ],
)
def test_photometry_config_checks_the_centring(kw, message):
    from jaxcomp.ast import PhotometryConfig

    with pytest.raises(ValueError, match=message):
        PhotometryConfig(**kw)


def test_local_reprocessing_maps_the_band_centres_back_to_the_frame(monkeypatch):
    """reprocess='local' runs the photometry on a mosaic of windows: its per-band aperture
    centres must come back in frame pixels, where the full rerun puts them."""
    from astropy.table import Table

    import jaxcomp.ast.local as local_module
    from jaxcomp.ast import BANDS, make_mock_field, run_pipeline
    from jaxcomp.ast.inject import prepare_field, run_frame

    field = make_mock_field((600, 600), seed=0)
    cfg = _centring_config()
    rng = np.random.default_rng(5)
    lib = Table({"cluster_id": np.arange(8), "r_eff_pc": np.full(8, 3.0)})
    for b, c in zip(BANDS, (-0.6, -0.4, 0.2, 0.0, -0.5)):
        lib[f"mag_{b}"] = rng.uniform(20.0, 22.5, 8) + c
    results = []
    real = local_module.run_pipeline_local

    def spy(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(local_module, "run_pipeline_local", spy)
    out, injected = run_frame(
        field,
        lib,
        3.0,
        seed=2,
        config=cfg,
        baseline=prepare_field(field, cfg),
        reprocess="local",
        return_images=True,
    )
    assert not out.meta["fallback"] and results[-1].catalogue is not None
    local = results[-1].catalogue
    full = run_pipeline(field, injected, cfg).catalogue
    assert len(local) >= 8
    d = np.hypot(
        np.asarray(local["x"])[:, None] - np.asarray(full["x"])[None, :],
        np.asarray(local["y"])[:, None] - np.asarray(full["y"])[None, :],
    )
    k = d.argmin(axis=1)
    assert np.all(d[np.arange(len(local)), k] < 0.2)
    for b in BANDS:
        for axis in ("x", "y"):
            a = np.asarray(local[f"{axis}_{b}"])
            c = np.asarray(full[f"{axis}_{b}"])[k]
            assert np.all(np.abs(a - c) < 1.0), (b, axis)
            assert np.mean(np.abs(a - c) < 1e-6) > 0.8, (b, axis)
