"""Field validation and FITS round trips."""

from __future__ import annotations

import numpy as np
import pytest

from jaxcomp.ast.field import (
    BANDS,
    NGC628C_EXPTIMES,
    NGC628C_ZEROPOINTS,
    Field,
    default_wcs,
    read_field_fits,
    write_field_fits,
)
from jaxcomp.ast.profiles import PSFModel


def _images(shape=(64, 80), value=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return {b: (value + 0.001 * rng.normal(size=shape)).astype(np.float32) for b in BANDS}


def test_defaults_are_ngc628c():
    f = Field(_images())
    assert dict(f.zeropoints) == NGC628C_ZEROPOINTS
    assert dict(f.exptimes) == NGC628C_EXPTIMES
    assert f.pixel_scale_arcsec == 0.0396 and f.distance_modulus == 29.98
    assert f.pc_per_px == pytest.approx(1.902, abs=1e-3)
    assert all(p.fwhm_px == 2.0 for p in f.psf.values())
    assert f.footprint.all() and f.shape == (64, 80)
    assert f.wcs.has_celestial
    # immutable
    with pytest.raises(ValueError):
        f.images["F555W"][0, 0] = 1.0
    with pytest.raises(Exception):
        f.name = "other"
    # magnitudes <-> rates
    assert f.mag_to_rate("F555W", 25.731) == pytest.approx(1.0)
    assert f.rate_to_mag("F555W", 1.0) == pytest.approx(25.731)
    assert f.mag_to_rate("F555W", np.nan) == 0.0


def test_nan_outside_footprint_is_masked():
    imgs = _images()
    for b in BANDS:
        imgs[b][:, :10] = np.nan
    imgs["F275W"][:5, :] = np.nan
    f = Field(imgs)
    assert not f.footprint[:, :10].any() and not f.footprint[:5].any()
    assert f.footprint[5:, 10:].all()


@pytest.mark.parametrize("mutate,match", [
    (lambda k: k["images"].pop("F336W"), "missing band"),
    (lambda k: k["images"].__setitem__("F999W", k["images"]["F555W"]), "unknown band"),
    (lambda k: k["images"].__setitem__("F814W", np.zeros((10, 10), np.float32)), "shape"),
    (lambda k: k.__setitem__("exptimes", dict(NGC628C_EXPTIMES, F435W=0.0)), "exptimes.*> 0"),
    (lambda k: k.__setitem__("zeropoints", dict(NGC628C_ZEROPOINTS, F435W=np.nan)), "zeropoints"),
    (lambda k: k.__setitem__("psf", 40.0), "not narrower than the frame"),
    (lambda k: k.__setitem__("psf", {"F555W": 2.0}), "psf: missing"),
    (lambda k: k.__setitem__("pixel_scale_arcsec", -1.0), "pixel_scale"),
])
def test_validation_errors(mutate, match):
    kwargs = {"images": _images()}
    mutate(kwargs)
    with pytest.raises(ValueError, match=match):
        Field(**kwargs)


def test_nan_inside_explicit_footprint_is_an_error():
    imgs = _images()
    imgs["F435W"][3, 4] = np.inf
    with pytest.raises(ValueError, match=r"F435W.*NaN/inf.*inside the footprint.*x=4, y=3"):
        Field(imgs, footprint=np.ones((64, 80), bool))
    # without an explicit footprint the pixel is simply excluded
    assert not Field(imgs).footprint[3, 4]


def test_wcs_must_agree():
    shape = (64, 80)
    w1 = default_wcs(shape)
    w2 = default_wcs(shape)
    w2.wcs.crpix = [w2.wcs.crpix[0] + 0.5, w2.wcs.crpix[1]]
    wcs = {b: w1 for b in BANDS}
    Field(_images(shape), wcs=wcs)
    wcs["F814W"] = w2
    with pytest.raises(ValueError, match="WCS of F814W differs"):
        Field(_images(shape), wcs=wcs)


def test_fits_round_trip(tmp_path):
    imgs = _images()
    imgs["F555W"][0, :] = np.nan
    psf = {b: 2.0 + 0.1 * i for i, b in enumerate(BANDS)}
    ov = 2
    yy, xx = np.mgrid[-8:9, -8:9] / ov
    psf["F814W"] = PSFModel(image=np.exp(-(xx**2 + yy**2) / 2), oversampling=ov)
    f = Field(imgs, psf=psf, exptimes={b: 100.0 + i for i, b in enumerate(BANDS)},
              zeropoints={b: 20.0 + i for i, b in enumerate(BANDS)}, distance_modulus=29.0, name="rt")
    paths = write_field_fits(f, tmp_path)
    assert sorted(paths) == sorted(BANDS)
    with pytest.raises(FileExistsError):
        write_field_fits(f, tmp_path)
    for source in (tmp_path, paths, list(paths.values())):
        g = read_field_fits(source)
        assert g.name == "rt" and g.distance_modulus == 29.0
        assert dict(g.exptimes) == dict(f.exptimes) and dict(g.zeropoints) == dict(f.zeropoints)
        np.testing.assert_array_equal(g.footprint, f.footprint)
        for b in BANDS:
            np.testing.assert_array_equal(g.images[b][g.footprint], f.images[b][f.footprint])
        assert g.psf["F435W"].fwhm_px == pytest.approx(2.2)
        np.testing.assert_allclose(g.psf["F814W"].image, f.psf["F814W"].image)
        assert g.psf["F814W"].oversampling == ov
        assert np.allclose(g.wcs.wcs.crval, f.wcs.wcs.crval)
    # overrides win over the headers
    g = read_field_fits(tmp_path, exptimes=NGC628C_EXPTIMES)
    assert dict(g.exptimes) == NGC628C_EXPTIMES


def test_fits_rejects_non_rates(tmp_path):
    from astropy.io import fits

    for b in BANDS:
        hdu = fits.PrimaryHDU(np.ones((32, 32), np.float32))
        hdu.header["BUNIT"] = "ELECTRONS"
        hdu.writeto(tmp_path / f"x_{b}.fits")
    with pytest.raises(ValueError, match="not a count rate"):
        read_field_fits(tmp_path)


def test_fits_missing_band(tmp_path):
    f = Field(_images())
    paths = write_field_fits(f, tmp_path)
    paths["F275W"].unlink()
    with pytest.raises(ValueError, match="F275W"):
        read_field_fits(tmp_path)


def test_crop():
    f = Field(_images())
    c = f.crop(10, 50, 5, 37)
    assert c.shape == (32, 40)
    np.testing.assert_array_equal(c.images["F555W"], f.images["F555W"][5:37, 10:50])
    # the WCS follows the crop
    assert np.allclose(c.wcs.pixel_to_world_values(0, 0), f.wcs.pixel_to_world_values(10, 5))
