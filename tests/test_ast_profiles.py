"""EFF profiles: analytic half-light radius, flux conservation, sub-pixel centroids, PSF paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from jaxcomp.ast.profiles import (
    FWHM_TO_SIGMA,
    PSFModel,
    add_stamps,
    eff_box_fraction,
    eff_core_radius,
    eff_enclosed_fraction,
    pc_per_pixel,
    reff_pc_to_px,
    render_multiband,
    render_stamps,
)


def _moments(stamp):
    d = stamp.data[0]
    R = stamp.half_size
    yy, xx = np.mgrid[-R : R + 1, -R : R + 1]
    tot = d.sum()
    return tot, (d * xx).sum() / tot + stamp.ix[0], (d * yy).sum() / tot + stamp.iy[0]


def test_half_light_radius_is_a_sqrt3_analytically():
    from scipy.integrate import quad

    a = 1.7
    # cumulative flux of the gamma=3 EFF is 1 - (1 + r^2/a^2)^-1/2
    for r in (0.3, 1.0, a * math.sqrt(3), 7.0, 40.0):
        val, _ = quad(lambda t: t * (1 + t**2 / a**2) ** -1.5 / a**2, 0, r, epsabs=1e-13)
        assert eff_enclosed_fraction(r, a) == pytest.approx(val, abs=1e-10)
    assert eff_enclosed_fraction(a * math.sqrt(3), a) == pytest.approx(0.5, abs=1e-15)
    assert eff_core_radius(math.sqrt(3)) == pytest.approx(1.0)


def test_box_fraction_integrates_to_one_and_matches_quadrature():
    a = 0.8
    assert eff_box_fraction(-1e7, 1e7, -1e7, 1e7, a) == pytest.approx(1.0, abs=1e-6)
    # a pixel away from the centre against a fine quadrature
    x = np.linspace(1.5, 2.5, 801)
    y = np.linspace(-0.3, 0.7, 801)
    X, Y = np.meshgrid(x, y)
    f = a / (2 * np.pi * (a * a + X * X + Y * Y) ** 1.5)
    quad = np.trapezoid(np.trapezoid(f, x, axis=1), y)
    assert eff_box_fraction(1.5, 2.5, -0.3, 0.7, a) == pytest.approx(quad, rel=1e-6)
    # point source limit
    assert eff_box_fraction(-0.5, 0.5, -0.5, 0.5, 0.0) == pytest.approx(1.0)
    assert eff_box_fraction(0.5, 1.5, -0.5, 0.5, 0.0) == pytest.approx(0.0)


def test_pixel_scale_conversion():
    assert pc_per_pixel(0.0396, 29.98) == pytest.approx(1.902, abs=1e-3)
    assert reff_pc_to_px(1.902, 0.0396, 29.98) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("reff_px", [0.0, 0.3, 1.6, 5.3])
def test_flux_conservation(reff_px):
    st = render_stamps([40.37], [51.81], [3.0], reff_px, 2.0)[0]
    tot = st.data[0].sum()
    R = st.half_size
    # the stamp holds exactly the flux of the stamp box (PSF spill inside the padding)
    dx, dy = 40.37 - st.ix[0], 51.81 - st.iy[0]
    inside = eff_box_fraction(
        -R - 0.5 - dx, R + 0.5 - dx, -R - 0.5 - dy, R + 0.5 - dy, eff_core_radius(reff_px)
    )
    assert tot == pytest.approx(3.0 * inside, rel=1e-10)
    assert st.outside_fraction[0] == pytest.approx(1 - inside, abs=1e-12)
    assert np.all(st.data >= 0)
    # the default stamp keeps >= 95% of the light
    assert inside > 0.95


@pytest.mark.parametrize("x,y", [(30.0, 30.0), (30.25, 29.9), (30.5, 30.5), (29.77, 30.13)])
def test_centroid_at_subpixel_positions(x, y):
    # compact profiles: the stamp's flux-weighted centroid is the position
    for reff in (0.0, 0.5):
        st = render_stamps([x], [y], [1.0], reff, 2.0, half_size=60)[0]
        _, cx, cy = _moments(st)
        assert cx == pytest.approx(x, abs=2e-3)
        assert cy == pytest.approx(y, abs=2e-3)
    # extended profiles: the r^-3 wings make the moments of a pixel-centred stamp
    # slightly biased by the truncation, so check the exact mirror symmetry instead:
    # a cluster at c + d is the mirror image of one at c - d
    for reff in (2.0, 5.0):
        d = x - round(x)
        p = render_stamps([30 + d], [30.0], [1.0], reff, 2.0, half_size=40)[0]
        m = render_stamps([30 - d], [30.0], [1.0], reff, 2.0, half_size=40)[0]
        if p.ix[0] == m.ix[0]:
            np.testing.assert_allclose(p.data[0][:, ::-1], m.data[0], atol=1e-12)
        else:  # d = +-0.5 rounds to different pixels: compare on a canvas
            ip = add_stamps(np.zeros((61, 61)), [p])
            im = add_stamps(np.zeros((61, 61)), [m])
            np.testing.assert_allclose(ip[:, ::-1][:, 1:], im[:, :-1], atol=1e-12)


def test_half_light_radius_recovered_with_tiny_psf():
    x0, y0, reff = 130.3, 129.6, 8.0
    st = render_stamps([x0], [y0], [1.0], reff, 0.01, half_size=128)[0]
    d = st.data[0]
    R = st.half_size
    yy, xx = np.mgrid[-R : R + 1, -R : R + 1]
    r = np.hypot(xx + st.ix[0] - x0, yy + st.iy[0] - y0).ravel()
    order = np.argsort(r)
    cum = np.cumsum(d.ravel()[order])
    r_half = np.interp(0.5, cum, r[order])  # half of the TOTAL flux (1), not of the stamp
    assert r_half == pytest.approx(reff, rel=0.01)


def test_psf_width_matches_gaussian_for_point_source():
    fwhm = 2.4
    st = render_stamps([20.0], [20.0], [1.0], 0.0, fwhm, half_size=20)[0]
    d = st.data[0]
    R = st.half_size
    yy, xx = np.mgrid[-R : R + 1, -R : R + 1]
    var_x = (d * xx**2).sum() / d.sum()
    # pixel integration adds 1/12 px^2 to the variance
    assert var_x == pytest.approx((fwhm * FWHM_TO_SIGMA) ** 2 + 1 / 12, rel=2e-3)


def test_epsf_image_path_agrees_with_gaussian_path():
    s = 2.0 * FWHM_TO_SIGMA
    ov = 4
    off = np.arange(-12 * ov, 12 * ov + 1) / ov
    g1 = ndtr((off + 0.5) / s) - ndtr((off - 0.5) / s)  # pixel-integrated Gaussian = its ePSF
    epsf = PSFModel(image=np.outer(g1, g1), oversampling=ov)
    for reff in (0.0, 0.5, 2.5):
        a = render_stamps([10.3], [10.1], [1.0], reff, 2.0, half_size=30)[0].data[0]
        b = render_stamps([10.3], [10.1], [1.0], reff, epsf, half_size=30)[0].data[0]
        assert np.abs(a - b).max() < 1e-3 * a.max()
        assert a.sum() == pytest.approx(b.sum(), rel=1e-9)


def test_multiband_shares_geometry_and_scales_flux():
    out = render_multiband(
        [10.2, 30.7], [15.1, 22.9], {"a": [1.0, 2.0], "b": [3.0, 0.0]}, 1.5, {"a": 2.0, "b": 2.5}
    )
    sa, sb = out["a"][0], out["b"][0]
    assert sa.data.shape == sb.data.shape
    total = sa.data.sum(axis=(1, 2)) / (1 - sa.outside_fraction)  # flux to infinity
    np.testing.assert_allclose(total, [1.0, 2.0], rtol=1e-10)
    assert sb.data[1].sum() == 0.0
    img = np.zeros((40, 50))
    add_stamps(img, out["a"])  # clipped at the edges without error
    assert 0 < img.sum() <= 3.0


def test_add_stamps_into_a_window_equals_the_frame_cropped():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(-5, 85, 12), rng.uniform(-5, 65, 12)  # some beyond the frame
    stamps = render_multiband(x, y, {"a": rng.uniform(1, 5, 12)}, [0.5] * 6 + [2.0] * 6, {"a": 2.0})
    frame = add_stamps(np.full((60, 80), 0.25, np.float32), stamps["a"])
    for y0, y1, x0, x1 in ((0, 60, 0, 80), (10, 30, 20, 70), (45, 60, 0, 15), (5, 6, 77, 80)):
        window = add_stamps(
            np.full((y1 - y0, x1 - x0), 0.25, np.float32), stamps["a"], origin=(y0, x0)
        )
        np.testing.assert_array_equal(window, frame[y0:y1, x0:x1])


def test_invalid_inputs():
    with pytest.raises(ValueError, match="r_eff_px"):
        render_stamps([1.0], [1.0], [1.0], -1.0, 2.0)
    with pytest.raises(ValueError, match="oversample"):
        render_stamps([1.0], [1.0], [1.0], 1.0, 2.0, oversample=4)
    with pytest.raises(ValueError, match="FWHM"):
        PSFModel(fwhm_px=0.0)
    with pytest.raises(ValueError, match="odd"):
        PSFModel(image=np.ones((4, 4)))
