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
)
from jaxcomp.ast.field_fits import read_field_fits, write_field_fits
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


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda k: k["images"].pop("F336W"), "missing band"),
        (lambda k: k["images"].__setitem__("F999W", k["images"]["F555W"]), "unknown band"),
        (lambda k: k["images"].__setitem__("F814W", np.zeros((10, 10), np.float32)), "shape"),
        (lambda k: k.__setitem__("exptimes", dict(NGC628C_EXPTIMES, F435W=0.0)), "exptimes.*> 0"),
        (
            lambda k: k.__setitem__("zeropoints", dict(NGC628C_ZEROPOINTS, F435W=np.nan)),
            "zeropoints",
        ),
        (lambda k: k.__setitem__("psf", 40.0), "not narrower than the frame"),
        (lambda k: k.__setitem__("psf", {"F555W": 2.0}), "psf: missing"),
        (lambda k: k.__setitem__("pixel_scale_arcsec", -1.0), "pixel_scale"),
    ],
)
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
    f = Field(
        imgs,
        psf=psf,
        exptimes={b: 100.0 + i for i, b in enumerate(BANDS)},
        zeropoints={b: 20.0 + i for i, b in enumerate(BANDS)},
        distance_modulus=29.0,
        name="rt",
    )
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


def _strip_keys(path, *keys, wcs=False):
    from astropy.io import fits

    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    header = hdus[0].header
    for key in keys:
        header.remove(key, ignore_missing=True)
    if wcs:
        for key in (
            "CTYPE1",
            "CTYPE2",
            "CRVAL1",
            "CRVAL2",
            "CRPIX1",
            "CRPIX2",
            "CDELT1",
            "CDELT2",
            "CUNIT1",
            "CUNIT2",
            "PC1_1",
            "PC1_2",
            "PC2_1",
            "PC2_2",
            "LONPOLE",
            "LATPOLE",
            "RADESYS",
            "EQUINOX",
            "WCSAXES",
            "MJDREF",
            "DATEREF",
            "MJD-OBS",
            "DATE-OBS",
        ):
            header.remove(key, ignore_missing=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)


@pytest.fixture
def fits_dir(tmp_path):
    f = Field(_images(), psf=2.0, zeropoints={b: 20.0 + i for i, b in enumerate(BANDS)}, name="k")
    return f, write_field_fits(f, tmp_path), tmp_path


def test_fits_missing_zeropoint_or_exptime_is_an_error(fits_dir):
    f, paths, directory = fits_dir
    _strip_keys(paths["F435W"], "VEGAZPT")
    with pytest.raises(
        ValueError, match=r"k_F435W\.fits \(band F435W\): no VEGAZPT keyword.*zeropoints="
    ):
        read_field_fits(directory)
    # given explicitly, it is used (and no NGC 628C default sneaks in)
    g = read_field_fits(directory, zeropoints={"F435W": 24.5})
    assert g.zeropoints["F435W"] == 24.5 and g.zeropoints["F555W"] == f.zeropoints["F555W"]
    _strip_keys(paths["F814W"], "EXPTIME")
    with pytest.raises(
        ValueError, match=r"k_F814W\.fits \(band F814W\): no EXPTIME keyword.*exptimes="
    ):
        read_field_fits(directory, zeropoints={"F435W": 24.5})


def test_fits_missing_wcs_is_an_error(fits_dir):
    f, paths, directory = fits_dir
    _strip_keys(paths["F336W"], wcs=True)
    with pytest.raises(
        ValueError, match=r"k_F336W\.fits \(band F336W\): no celestial WCS.*CTYPE1.*wcs="
    ):
        read_field_fits(directory)
    g = read_field_fits(directory, wcs=f.wcs)
    assert np.allclose(g.wcs.wcs.crval, f.wcs.wcs.crval)


def test_fits_missing_distance_modulus_and_pixel_scale(fits_dir):
    f, paths, directory = fits_dir
    for path in paths.values():
        _strip_keys(path, "DISTMOD", "PIXSCALE")
    with pytest.raises(ValueError, match="no DISTMOD keyword.*distance_modulus="):
        read_field_fits(directory)
    g = read_field_fits(directory, distance_modulus=30.5)
    assert g.distance_modulus == 30.5
    # the pixel scale comes from the WCS when PIXSCALE is absent
    assert g.pixel_scale_arcsec == pytest.approx(f.pixel_scale_arcsec, rel=1e-6)


@pytest.mark.parametrize("fill", [-1.0, 0.0, np.nan])
def test_fits_band_without_positive_data_is_an_error(fits_dir, fill):
    from astropy.io import fits

    _, paths, directory = fits_dir
    with fits.open(paths["F555W"]) as hdul:
        hdus = [h.copy() for h in hdul]
    hdus[0].data = (
        np.full_like(hdus[0].data, fill) if fill != -1.0 else -np.abs(hdus[0].data) - 1e-3
    )
    fits.HDUList(hdus).writeto(paths["F555W"], overwrite=True)
    match = (
        "every pixel is NaN"
        if np.isnan(fill)
        else ("every pixel is zero;" if fill == 0 else "every pixel is zero or negative")
    )
    with pytest.raises(ValueError, match=rf"k_F555W\.fits \(band F555W\): {match}"):
        read_field_fits(directory)


def test_fits_truncated_file_names_the_file(fits_dir):
    _, paths, directory = fits_dir
    data = paths["F814W"].read_bytes()
    paths["F814W"].write_bytes(data[: len(data) // 2])
    for source in (directory, list(paths.values())):
        with pytest.raises(
            ValueError, match=r"k_F814W\.fits: cannot read this FITS file.*truncated"
        ):
            read_field_fits(source)
    paths["F814W"].write_bytes(data[:1000])  # not even a whole header
    with pytest.raises(ValueError, match=r"k_F814W\.fits: cannot read this FITS file"):
        read_field_fits(directory)
