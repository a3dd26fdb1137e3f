"""Masking a PSF star's neighbours (jaxcomp.ast.epsf_neighbours)."""

from __future__ import annotations

import numpy as np

from jaxcomp.ast.epsf_neighbours import neighbour_mask


def _gauss(shape, x0, y0, sigma, flux):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    r2 = (xx - x0) ** 2 + (yy - y0) ** 2
    return flux * np.exp(-0.5 * r2 / sigma**2) / (2 * np.pi * sigma**2)


def _mask(residual, rms=1.0, **kw):
    opts = dict(threshold_sigma=3.0, protect_radius_px=4.0, dilate_px=2)
    opts.update(kw)
    return neighbour_mask(residual, rms, (23.0, 23.0), **opts)


def test_pure_noise_is_almost_never_masked():
    """White noise alone: a 3-sigma, 5-pixel region of the smoothed noise is rare (masking
    positive noise would bias the wings low)."""
    rng = np.random.default_rng(1)
    fractions = [_mask(rng.normal(0.0, 1.0, (47, 47))).mean() for _ in range(50)]
    assert np.mean(fractions) < 0.01, np.mean(fractions)


def test_a_faint_extended_neighbour_is_masked_with_its_margin():
    rng = np.random.default_rng(2)
    neighbour = _gauss((47, 47), 36.0, 30.0, 2.0, 400.0)  # peak ~16 sigma, 2 px sigma
    residual = neighbour + rng.normal(0.0, 1.0, (47, 47))
    mask = _mask(residual)
    yy, xx = np.mgrid[0:47, 0:47]
    d = np.hypot(xx - 36.0, yy - 30.0)
    assert mask[d <= 4.0].all()  # where its light is above ~2 sigma per pixel
    assert neighbour[~mask].sum() < 0.05 * neighbour.sum()  # >95% of its light masked
    assert not mask[np.hypot(xx - 23.0, yy - 23.0) <= 4.0].any()  # the star's core is protected
    assert mask.mean() < 0.15  # and not much else


def test_the_threshold_and_the_margin_are_the_options():
    rng = np.random.default_rng(3)
    residual = _gauss((47, 47), 36.0, 30.0, 2.0, 400.0) + rng.normal(0.0, 1.0, (47, 47))
    loose, strict = _mask(residual, threshold_sigma=2.0), _mask(residual, threshold_sigma=8.0)
    assert loose.sum() > _mask(residual).sum() > strict.sum()
    assert _mask(residual, dilate_px=0).sum() < _mask(residual).sum()
    # the noise scale sets the threshold: the same neighbour (smoothed S/N ~2) in 20x the
    # noise is not found
    faint = _gauss((47, 47), 36.0, 30.0, 2.0, 400.0) + rng.normal(0.0, 20.0, (47, 47))
    assert not _mask(faint, rms=20.0)[27:34, 33:40].any()


def test_concentration_excess_tells_a_compact_cluster_from_a_star():
    """A star drawn from its own model scatters about 0 in units of sigma_CI (the noise model
    is right); a source 25% broader than the PSF stands out by many sigma."""
    from jaxcomp.ast.epsf_neighbours import concentration_excess

    rng = np.random.default_rng(4)
    shape, centre, rms = (47, 47), (23.3, 22.8), 2.0
    model = _gauss(shape, *centre, 1.0, 5000.0)
    stars = [
        concentration_excess(model + rng.normal(0.0, rms, shape), model, centre, rms, None)
        for _ in range(300)
    ]
    assert abs(np.mean(stars)) < 0.2 and 0.85 < np.std(stars) < 1.15, (
        np.mean(stars),
        np.std(stars),
    )
    broad = _gauss(shape, *centre, 1.25, 5000.0) + rng.normal(0.0, rms, shape)
    assert concentration_excess(broad, model, centre, rms, None) > 5.0
    assert np.isnan(concentration_excess(-model, model, centre, rms, None))
