"""Correlated noise of drizzled frames (jaxcomp.ast.drizzle_noise) and the mock's use of it."""

from __future__ import annotations

import numpy as np
import pytest

from jaxcomp.ast import mock_render
from jaxcomp.ast.drizzle_noise import (
    band_drop_size_px,
    correlate_normals,
    drizzle_covariance_1d,
    drizzle_noise_filter,
    noise_correlation_ratio,
)

DROPS = (0.3, 0.5, 0.8, 1.0, 0.05 / 0.0396, 1.7, 2.0, 3.4)


def test_covariance_of_a_one_pixel_drop_is_analytic():
    # tri_1 * tri_1 at lags 0, 1: integral (1-|x|)^2 = 2/3, integral (1-|x|)(1-|x-1|) = 1/6
    np.testing.assert_allclose(drizzle_covariance_1d(1.0), [2 / 3, 1 / 6], rtol=1e-10)


@pytest.mark.parametrize("drop", DROPS)
def test_filter_reproduces_the_covariance_and_fruchter_hook_ratio(drop):
    h = drizzle_noise_filter(drop)
    cov = drizzle_covariance_1d(drop)
    auto = np.correlate(h, h, "full")[h.size - 1 :]
    np.testing.assert_allclose(auto, cov / cov[0], atol=1e-10)
    assert np.sum(h**2) == pytest.approx(1.0, abs=1e-12)
    # the 2D noise correlation ratio (Fruchter & Hook 2002) is the square of the 1D one
    r = drop
    ratio = r / (1 - 1 / (3 * r)) if r >= 1 else 1 / (1 - r / 3)
    assert np.sum(h) ** 2 == pytest.approx(ratio, rel=1e-9)
    assert noise_correlation_ratio(drop) == pytest.approx(ratio, rel=1e-12)


def test_covariance_matches_a_brute_force_drizzle_of_white_noise():
    """Drizzle 1D white noise from many dithered input grids (random phases) with the exact
    overlap weights, and compare the output pixels' correlations with the model."""
    rng = np.random.default_rng(11)
    drop, n_out, n_dither = 0.05 / 0.0396, 400, 48  # ACS pixel onto the LEGUS grid, pixfrac 1
    edges = np.arange(n_out + 1, dtype=float)
    overlaps = []
    for _ in range(n_dither):
        centres = rng.uniform(0, drop) + drop * np.arange(-2, int(n_out / drop) + 3)
        lo = np.maximum(edges[:-1, None], centres[None, :] - drop / 2)
        hi = np.minimum(edges[1:, None], centres[None, :] + drop / 2)
        overlaps.append(np.clip(hi - lo, 0, None))  # output pixel i x input drop j
    w = np.concatenate(overlaps, axis=1)
    w /= w.sum(axis=1, keepdims=True)  # an output pixel is the weighted mean of its drops
    cov = w @ w.T  # of unit-variance independent input pixels
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    inner = np.arange(10, n_out - 10)
    model = drizzle_covariance_1d(drop)
    for k in (1, 2):
        assert np.mean(corr[inner, inner + k]) == pytest.approx(model[k] / model[0], abs=0.01)
    assert np.all(np.abs(corr[inner, inner + 3]) < 1e-12)


def test_correlate_normals_is_window_invariant_and_keeps_the_variance():
    rng = np.random.default_rng(3)
    h = drizzle_noise_filter(1.26)
    z = rng.standard_normal((500, 520))
    full = correlate_normals(z, h)
    part = correlate_normals(z[100:302, 50:253], h)
    np.testing.assert_array_equal(part, full[100:300, 50:251])
    assert full.std() == pytest.approx(1.0, abs=0.01)
    lag1 = np.mean(full[:, :-1] * full[:, 1:])
    cov = drizzle_covariance_1d(1.26)
    assert lag1 == pytest.approx(cov[1] / cov[0], abs=0.01)


def test_band_drop_sizes_follow_the_cameras():
    assert band_drop_size_px("F336W", 0.0396) == pytest.approx(1.0)
    assert band_drop_size_px("F555W", 0.0396) == pytest.approx(0.05 / 0.0396)
    assert band_drop_size_px("F555W", 0.0396, pixfrac=0.8) == pytest.approx(0.8 * 0.05 / 0.0396)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_drop_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="drop size"):
        drizzle_noise_filter(bad)


def test_unknown_band_is_refused():
    with pytest.raises(ValueError, match="unknown band 'F606W'"):
        band_drop_size_px("F606W", 0.0396)


def test_mock_noise_has_the_drizzled_covariance_per_band():
    win = (0, 512, 0, 512)
    kw = dict(sources=False, stars=False, diffuse=False, bands=("F336W", "F555W"))
    corr = mock_render.render_mock(win, seed=4, **kw)
    white = mock_render.render_mock(win, seed=4, noise_correlation="white", **kw)
    for band, drop in (("F336W", 1.0), ("F555W", 0.05 / 0.0396)):
        c, w = corr[band].astype(float), white[band].astype(float)
        assert c.std() == pytest.approx(w.std(), rel=0.02)  # the per-pixel variance is kept
        model = drizzle_covariance_1d(drop)
        for axis in (0, 1):
            a, b = np.moveaxis(c, axis, 0)[:-1], np.moveaxis(c, axis, 0)[1:]
            assert np.mean(a * b) / c.var() == pytest.approx(model[1] / model[0], abs=0.01)
        assert abs(np.mean(w[:, :-1] * w[:, 1:]) / w.var()) < 0.01
        # sums over 16 x 16 px boxes: the rms grows by the noise correlation ratio
        boxes = c.reshape(32, 16, 32, 16).sum(axis=(1, 3))
        assert boxes.std() / (16 * c.std()) == pytest.approx(noise_correlation_ratio(drop), rel=0.1)


def test_unknown_noise_correlation_is_refused():
    with pytest.raises(ValueError, match="noise_correlation must be 'drizzle' or 'white'"):
        mock_render.render_mock((0, 64, 0, 64), noise_correlation="pink")


def test_a_calibration_made_with_white_noise_is_refused(monkeypatch):
    from jaxcomp.ast import pointing

    payload = dict(pointing._noise_file_payload("ngc628c_mock_noise.json"))
    assert payload["noise_correlation"] == pointing.MOCK_NOISE_CORRELATION == "drizzle"
    del payload["noise_correlation"]  # as the files written before the noise was correlated
    monkeypatch.setattr(pointing, "_noise_file_payload", lambda name: payload)
    with pytest.raises(ValueError, match=r"made with 'white' noise.*calibrate_mock_noise.py"):
        pointing.background_rates("ngc628c")
