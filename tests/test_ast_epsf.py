"""Effective PSFs built from a frame's own stars (jaxcomp.ast.epsf) and read_field_fits without a
PSF."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxcomp.ast.epsf import (
    EPSFError,
    EPSFStarSelection,
    build_epsf,
    plot_epsf,
    psf_encircled_energy,
)
from jaxcomp.ast.field import BANDS
from jaxcomp.ast.field_fits import read_field_fits, write_field_fits

RADII = (1.0, 2.0, 3.0, 4.0)


def _strip_psf(paths):
    """Remove every PSF the files carry (PSFFWHM keyword, PSF extension): the reader must build
    them."""
    from astropy.io import fits

    for path in paths.values():
        with fits.open(path) as hdul:
            hdus = [h.copy() for h in hdul if h.name != "PSF"]
        hdus[0].header.remove("PSFFWHM", ignore_missing=True)
        fits.HDUList(hdus).writeto(path, overwrite=True)


def _ci(ee):
    return -2.5 * math.log10(ee[0] / ee[2])


@pytest.fixture(scope="module")
def mock_read_back(tmp_path_factory):
    from jaxcomp.ast import make_mock_field

    field = make_mock_field("small")
    directory = tmp_path_factory.mktemp("mockfits")
    paths = write_field_fits(field, directory, prefix="mock")
    _strip_psf(paths)
    back, built = read_field_fits(directory, return_epsf=True)
    return field, back, built


def test_epsf_recovers_the_mock_psf(mock_read_back):
    """The ePSF built from the mock's field stars matches the PSF they were rendered with, in every
    band.

    Compared through rendered point sources (whatever kind of PSF the mock uses): the
    concentration index m(1 px) - m(3 px) within 0.02 mag and the encircled energy at 1-4 px within
    5% (relative; the issue's 2% is the next test). Before the neighbours were masked, the
    compact clusters rejected and the stack smoothed, seed 0 was off by up to 3.3% (F555W): the
    clusters' light around the stars biased the wings, clusters passing for stars broadened the
    core. Measured 2026-12-07 after those changes, EE at 1/2/3/4 px, seed 0: F275W -0.8/+0.0/
    +0.2/-0.1%, F336W -0.6/-0.1/+0.1/-0.0%, F435W -0.0/+0.4/+0.6/+0.7%, F555W -0.5/-0.1/+0.3/
    +0.4%, F814W -0.5/+0.2/+0.6/+0.6%; over seeds 0-3 (20 band-seeds) at most 1.3% (F435W, seed 2,
    4 px) and 1.28% at 1 px (F814W, seed 2).
    """
    field, back, built = mock_read_back
    assert sorted(built) == sorted(BANDS)
    for b in BANDS:
        result = built[b]
        assert back.psf[b] is result.psf and not result.psf.is_gaussian
        assert result.psf.image.shape[0] % 2 == 1 and result.psf.image.min() >= 0
        assert result.n_used >= result.selection.min_stars
        true_ee = psf_encircled_energy(field.psf[b], RADII)
        got_ee = psf_encircled_energy(result.psf, RADII)
        np.testing.assert_allclose(got_ee, true_ee, rtol=0.05, err_msg=f"{b} encircled energy")
        assert abs(_ci(got_ee) - _ci(true_ee)) < 0.02, (b, _ci(got_ee), _ci(true_ee))


def test_epsf_encircled_energy_within_two_percent(mock_read_back):
    """Issue 13's requirement: the encircled energy at 1, 2, 3 and 4 px within 2% in every band
    (measured on seed 0: within 0.81%; over seeds 0-3, within 1.3%: see the test above)."""
    field, _, built = mock_read_back
    for b in BANDS:
        np.testing.assert_allclose(
            psf_encircled_energy(built[b].psf, RADII),
            psf_encircled_energy(field.psf[b], RADII),
            rtol=0.02,
            err_msg=f"{b} encircled energy",
        )


def test_epsf_star_table(mock_read_back, tmp_path):
    _, _, built = mock_read_back
    t = built["F555W"].stars
    for col in ("x", "y", "mag", "ci", "roundness1", "roundness2", "used", "reason"):
        assert col in t.colnames
    used = t[t["used"]]
    assert set(t["reason"][~t["used"]]) <= {
        "edge",
        "saturated",
        "magnitude",
        "snr",
        "isolation",
        "roundness",
        "ci",
        "max_stars",
        "extended",
        "builder",
    }
    sel = built["F555W"].selection
    assert np.all(used["snr"] >= sel.min_snr) and np.all(
        used["nearest_px"] > sel.isolation_radius_px
    )
    assert np.all((used["ci"] >= sel.ci_range[0]) & (used["ci"] <= sel.ci_range[1]))
    # the stellar locus is tight: the stars used agree in CI
    assert np.ptp(used["ci"]) <= 2 * sel.ci_clip_mag + 1e-9
    path = plot_epsf(built, tmp_path / "psf.png", title="mock")
    assert (tmp_path / "psf.png").stat().st_size > 1000 and path.endswith("psf.png")


def _few_stars_image(n_stars=3, shape=(200, 200), seed=1):
    from jaxcomp.ast.profiles import add_stamps, render_stamps

    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, 0.01, shape)
    xs = rng.uniform(30, shape[1] - 30, n_stars)
    ys = rng.uniform(30, shape[0] - 30, n_stars)
    add_stamps(img, render_stamps(xs, ys, np.full(n_stars, 50.0), 0.0, 2.0))
    return img


def test_too_few_stars_is_a_clear_error():
    with pytest.raises(EPSFError) as info:
        build_epsf(_few_stars_image(), "F336W", 23.48, exptime=1000.0, source="frame_F336W.fits")
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "F336W" in message and "frame_F336W.fits" in message
    assert "only 3 usable star(s), at least 10 needed" in message
    assert "3 candidate(s) detected" in message and "passed 'isolation'" in message
    assert "psf=" in message and "PSF" in message and "[field]" in message
    # the minimum is configurable
    r = build_epsf(
        _few_stars_image(n_stars=3),
        "F336W",
        23.48,
        exptime=1000.0,
        selection=EPSFStarSelection(min_stars=3, max_stars=10),
    )
    assert r.n_used == 3 and r.psf.oversampling == 3


def test_too_few_stars_through_read_field_fits(tmp_path):
    from jaxcomp.ast import Field

    images = {b: _few_stars_image(seed=i).astype(np.float32) for i, b in enumerate(BANDS)}
    write_field_fits(Field(images), tmp_path, prefix="few")
    paths = {b: tmp_path / f"few_{b}.fits" for b in BANDS}
    _strip_psf(paths)
    with pytest.raises(EPSFError, match="F275W.*few_F275W.fits"):
        read_field_fits(tmp_path)
    # a PSF argument (or a FITS PSF) needs no stars
    f = read_field_fits(tmp_path, psf=2.0)
    assert all(p.fwhm_px == 2.0 for p in f.psf.values())
    # some bands given, the rest built: the stars of these frames are too few for the default
    # minimum
    with pytest.raises(EPSFError, match="F814W") as info:
        read_field_fits(tmp_path, psf={b: 2.0 for b in BANDS[:4]})
    assert "F275W" not in str(info.value)
    f, built = read_field_fits(
        tmp_path,
        psf={b: 2.0 for b in BANDS[:4]},
        return_epsf=True,
        epsf_selection={"min_stars": 1, "oversampling": 1},
    )
    assert list(built) == ["F814W"] and f.psf["F814W"] is built["F814W"].psf


def test_selection_is_validated():
    with pytest.raises(ValueError, match="cutout_px must be odd"):
        EPSFStarSelection(cutout_px=24)
    with pytest.raises(ValueError, match="mag_range"):
        EPSFStarSelection(mag_range=(25.0, 20.0))
    with pytest.raises(ValueError, match="wing_weighting must be 'inverse_variance' or 'none'"):
        EPSFStarSelection(wing_weighting="median")
    with pytest.raises(ValueError, match="neighbour_mask_sigma must be >= 0"):
        EPSFStarSelection(neighbour_mask_sigma=-1.0)
    with pytest.raises(ValueError, match="extended_sigma must be >= 0"):
        EPSFStarSelection(extended_sigma=-3.0)
    with pytest.raises(ValueError, match="neighbour_dilate_px must be an integer >= 0"):
        EPSFStarSelection(neighbour_dilate_px=1.5)
    with pytest.raises(ValueError, match="unknown ePSF selection option"):
        EPSFStarSelection.from_mapping({"isolation": 3})
    s = EPSFStarSelection(ci_range=[0.5, 1.2])
    assert s.ci_range == (0.5, 1.2) and s.to_dict()["ci_range"] == (0.5, 1.2)


def test_psf_stars_ignores_the_files_psfs(tmp_path):
    from jaxcomp.ast import Field

    images = {
        b: _few_stars_image(n_stars=4, seed=10 + i).astype(np.float32) for i, b in enumerate(BANDS)
    }
    write_field_fits(Field(images, psf=2.5), tmp_path)  # PSFFWHM = 2.5 in every file
    assert all(p.fwhm_px == 2.5 for p in read_field_fits(tmp_path).psf.values())
    f, built = read_field_fits(
        tmp_path,
        psf="stars",
        epsf_selection=EPSFStarSelection(min_stars=1, oversampling=1),
        return_epsf=True,
    )
    assert sorted(built) == sorted(BANDS) and all(not p.is_gaussian for p in f.psf.values())
    with pytest.raises(ValueError, match="'stars'"):
        read_field_fits(tmp_path, psf="star")


def test_stellar_locus_is_the_most_concentrated_populated_peak():
    from jaxcomp.ast.epsf import _ci_locus

    rng = np.random.default_rng(0)
    stars = rng.normal(1.2, 0.02, 30)
    clusters = rng.normal(1.5, 0.05, 120)  # more numerous and also peaked
    outliers = np.array([0.35, 0.4])  # two hot pixels: fewer than min_stars
    assert abs(_ci_locus(np.concatenate([stars, clusters, outliers]), 0.1, 10) - 1.2) < 0.03


def _gaussian_star(x, y, flux, sigma_px=1.5, size=31):
    """Pixel-integrated circular Gaussian (analytic: normal CDF differences) on a size x size
    cutout."""
    from scipy.special import ndtr

    edges = np.arange(size + 1) - 0.5
    px = np.diff(ndtr((edges - x) / sigma_px))
    py = np.diff(ndtr((edges - y) / sigma_px))
    return flux * py[:, None] * px[None, :]


def test_weighted_wing_profile_lets_the_bright_stars_set_the_wings():
    from jaxcomp.ast.epsf_wings import weighted_wing_profile

    rng = np.random.default_rng(3)
    ov, n_bins = 3, 60
    centres = [(15.2, 14.9), (14.7, 15.4), (15.0, 15.0)]
    bright = [_gaussian_star(x, y, 1000.0) for x, y in centres[:2]]
    # the faint star's local background is off by 0.05 per pixel (5% of its flux over the cutout)
    faint = _gaussian_star(*centres[2], 100.0) + 0.05
    stamps = [s + rng.normal(0.0, 0.01, s.shape) for s in bright] + [faint]
    fluxes, noise = np.array([1000.0, 1000.0, 100.0]), np.array([0.01, 0.01, 1.0])
    # the truth: the same bins of the noiseless, unit-flux bright stars
    truth = weighted_wing_profile(
        [b / 1000.0 for b in bright], centres[:2], np.ones(2), np.ones(2), ov, n_bins
    )
    got = weighted_wing_profile(stamps, centres, fluxes, noise, ov, n_bins)
    wings = slice(4 * ov, n_bins)  # every star has pixels in these bins (4-20 px)
    assert np.max(np.abs(got - truth)[wings]) < 3e-5
    equal = weighted_wing_profile(stamps, centres, fluxes, fluxes / 100.0, ov, n_bins)
    # equal weights: the faint star's pedestal shows
    assert np.max(np.abs(equal - truth)[wings]) > 1e-4
    # a neighbour's light in a bright star's cutout is rejected
    stamps[0][3:6, 3:6] += 0.5
    np.testing.assert_allclose(
        weighted_wing_profile(stamps, centres, fluxes, noise, ov, n_bins), got, atol=3e-5
    )
