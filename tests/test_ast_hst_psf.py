"""Physical HST PSFs (jaxcomp.ast.hst_psf): diffraction against the analytic Airy law, the
ePSF's normalisation and centring, published widths, and the shipped mock PSF file."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j0, j1

from jaxcomp.ast import hst_psf, mock
from jaxcomp.ast.profiles import PSFModel, point_source_stamps

BANDS = ("F275W", "F336W", "F435W", "F555W", "F814W")


def _encircled(profile_fn, r_max, n=200_000):
    r = np.linspace(0.0, r_max, n)
    return r, np.concatenate(
        [
            [0.0],
            np.cumsum(0.5 * (profile_fn(r[1:]) * r[1:] + profile_fn(r[:-1]) * r[:-1]) * np.diff(r)),
        ]
    ) * 2 * np.pi


def test_unobscured_airy_encircled_energy_is_rayleighs_law():
    # EE(v) = 1 - J0(v)^2 - J1(v)^2 for a clear circular pupil (Born & Wolf 8.5.2)
    lam = 555.0
    r, ee = _encircled(lambda t: hst_psf.annular_airy(t, lam, obscuration=0.0), 1.0)
    v = np.pi * 2.4 * r * np.pi / (180 * 3600) / (lam * 1e-9)
    expected = 1 - j0(v) ** 2 - j1(v) ** 2
    np.testing.assert_allclose(ee[::5000], expected[::5000], atol=2e-4)


def test_obscured_airy_has_unit_flux_and_moves_light_to_the_rings():
    lam = 555.0
    r, ee = _encircled(lambda t: hst_psf.annular_airy(t, lam), 20.0, n=2_000_000)
    assert ee[-1] == pytest.approx(1.0, abs=3e-3)  # the r^-3 wings beyond 20" hold < 0.3%
    _, ee0 = _encircled(lambda t: hst_psf.annular_airy(t, lam, obscuration=0.0), 0.06)
    k = np.searchsorted(r, 0.06)
    assert ee[k] < ee0[-1] - 0.05  # the obscuration takes light out of the core


@pytest.fixture(scope="module")
def epsfs():
    return {b: hst_psf.hst_epsf(b) for b in BANDS}


def test_epsf_is_normalised_centred_and_symmetric(epsfs):
    for img in epsfs.values():
        ov = 4
        assert img.shape[0] % 2 == 1 and img.shape == img.shape[::-1]
        assert img.sum() == pytest.approx(ov * ov)
        c = img.shape[0] // 2
        assert np.unravel_index(np.argmax(img), img.shape) == (c, c)
        np.testing.assert_allclose(img, img[::-1, ::-1], atol=1e-12 * img.max())
        np.testing.assert_allclose(img, img.T, atol=1e-12 * img.max())
        assert img.min() >= 0


def _fwhm_arcsec(img, ov=4, scale=0.0396):
    c = img.shape[0] // 2
    prof = img[c, c:]
    half = prof[0] / 2
    i = int(np.argmax(prof < half))
    x = (i - 1) + (prof[i - 1] - half) / (prof[i - 1] - prof[i])
    return 2 * x / ov * scale


def test_widths_match_the_instrument_handbooks(epsfs):
    # ACS IHB 5.6: WFC FWHM in F550M 0.10-0.13" over the field (pixelated, charge diffusion
    # included)
    assert 0.095 <= _fwhm_arcsec(epsfs["F555W"]) <= 0.13
    # WFC3 IHB 6.6: UVIS FWHM before pixelation 0.067-0.083" (200-500 nm); the 0.04" pixel,
    # the drizzle drop and the fitted residual blur of the drizzled frames (0.020") widen it
    for b in ("F275W", "F336W"):
        assert 0.075 <= _fwhm_arcsec(epsfs[b]) <= 0.10
    # the UV bands have the most light scattered out of the core (Marechal: w/lambda largest)
    peak = {b: epsfs[b].max() for b in BANDS}
    assert peak["F275W"] < peak["F336W"]


def test_point_source_stamps_carry_the_epsf(epsfs):
    psf = PSFModel(image=epsfs["F555W"], oversampling=4)
    st = point_source_stamps([10.0, 20.3], [10.0, 5.45], psf)
    np.testing.assert_allclose(st.data.sum(axis=(1, 2)), 1.0)
    c = st.half_size
    # a star on a pixel centre: the ePSF's central sample is that pixel's flux
    assert st.data[0, c, c] == pytest.approx(
        epsfs["F555W"][60, 60] / epsfs["F555W"][::4, ::4].sum(), rel=1e-6
    )
    g = point_source_stamps([3.2], [4.9], 2.3)  # a Gaussian FWHM still works
    assert g.data.sum() == pytest.approx(1.0, abs=1e-8)


def test_shipped_mock_psfs_are_this_model(epsfs):
    shipped = mock._psf_images()
    for b in BANDS:
        np.testing.assert_allclose(shipped[b], epsfs[b], rtol=1e-10, atol=1e-14)
    assert mock.mock_noise_calibration()["psf_sha256"] == mock.mock_psf_digest()


def _field_with_psf(band_psf):
    from jaxcomp.ast.field import Field

    imgs = {b: np.zeros((64, 64), np.float32) for b in BANDS}
    psf = {b: 2.0 for b in BANDS}
    psf["F336W"] = band_psf
    return Field(
        images=imgs,
        zeropoints={b: 25.0 for b in BANDS},
        exptimes={b: 1000.0 for b in BANDS},
        psf=psf,
    )


def test_bad_psf_images_are_refused_naming_the_band():
    yy, xx = np.mgrid[-7:8, -7:8]
    good = np.exp(-(xx**2 + yy**2) / 4.0)
    good /= good.sum()
    _field_with_psf(good)  # a clean ePSF at pixel sampling is accepted
    cases = {
        "not normalised": good * 3.0,
        "not centred": np.roll(good, 2, axis=1),
        "NaN": np.where(xx == 3, np.nan, good),
        "negative wings": good - 0.05 * good.max() * (np.hypot(xx, yy) > 5),
    }
    cases["negative wings"] /= cases["negative wings"].sum()
    for what, img in cases.items():
        with pytest.raises(ValueError, match="F336W") as err:
            _field_with_psf(img)
        assert what.split()[-1] in str(err.value), (what, err.value)
    big = np.ones((71, 71)) / 71**2
    with pytest.raises(ValueError, match="F336W"):
        _field_with_psf(big)


def _c4_measured_ci(psf, r_eff_px, band):
    """Noiseless median CI of a cluster measured as C-4 measured its injections.

    The cluster sits on a pixel centre (BAOlab ``mksynth``); the photometry starts
    (-0.55, -0.44) px from it (C-4's matched white-light coordinates), at 8 starts within
    0.1 px of that, and each aperture goes to IRAF's centroid (3x3 box) there; IRAF aperture
    weights, 7-8 px "mode" sky (``scripts/fit_psf_residual_blur.py`` uses 200 random starts).
    """
    from jaxcomp.ast.c4_reference import C4_START_OFFSET_PX
    from jaxcomp.ast.centring import iraf_centroid
    from jaxcomp.ast.photometry import aperture_photometry
    from jaxcomp.ast.profiles import add_stamps, render_multiband
    from jaxcomp.ast.settings import PhotometryConfig

    img = np.zeros((91, 91))
    add_stamps(
        img, render_multiband([45.0], [45.0], {"b": [1e5]}, float(r_eff_px), {"b": psf})["b"]
    )
    d = np.array([-0.1, -0.05, 0.0, 0.05])
    dx, dy = C4_START_OFFSET_PX
    sx, sy = np.meshgrid(45.0 + dx + d, 45.0 + dy + d[::-1])
    x, y, _ = iraf_centroid(img, sx.ravel()[::2], sy.ravel()[::2], epadu=1000.0)
    ph = aperture_photometry(
        {b: img for b in BANDS},
        x,
        y,
        {b: 25.0 for b in BANDS},
        {b: 1000.0 for b in BANDS},
        PhotometryConfig(ci_band=band, centring="none"),
    )
    return float(np.median(np.asarray(ph["ci"], float)))


def test_mock_psfs_give_the_real_frames_concentration_indices():
    """Real NGC 628C injections of the C-4 pipeline (data/legus/c4_ngc628c_injection_ci.csv).

    F336W (WFC3, radii converted at the frame's scale): the mock at the nominal radius.
    F555W and F814W (ACS): C-4 converted r_eff with 0.05"/px, so its clusters were
    0.0396/0.05 of the nominal radius on the 0.0396"/px frame; the mock at that radius. All
    measured as C-4 measured them (:func:`_c4_measured_ci`). The residual blurs were fitted to
    these medians (scripts/fit_psf_residual_blur.py, 2026-12-07): noiseless model minus real
    F336W +0.005/+0.004 at 1/3 pc, F555W -0.006/-0.007/-0.007/-0.018/+0.019 at 1/2/3/5/10 pc,
    F814W -0.003/+0.007/+0.007 at 1/3/10 pc.
    """
    from jaxcomp.ast.c4_reference import C4_ACS_RADIUS_FACTOR as acs
    from jaxcomp.ast.c4_reference import c4_median_ci
    from jaxcomp.ast.profiles import reff_pc_to_px

    psfs = mock.mock_psfs()
    for band, radii, shrink in (
        ("F336W", (1, 3), 1.0),
        ("F555W", (1, 2, 3, 5, 10), acs),
        ("F814W", (1, 3, 10), acs),
    ):
        for r in radii:
            real, n = c4_median_ci(band)[r]
            assert n >= 20
            ci = _c4_measured_ci(psfs[band], float(reff_pc_to_px(r)) * shrink, band)
            assert abs(ci - real) < 0.03, (band, r, ci, real)
