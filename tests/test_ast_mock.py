"""The mock NGC 628C field: crops, FITS round trip, the sources it contains, its calibration."""

from __future__ import annotations

import numpy as np
import pytest

from jaxcomp.ast import mock, mock_frame
from jaxcomp.ast.field import BANDS
from jaxcomp.ast.field_fits import read_field_fits, write_field_fits
from jaxcomp.ast.mock import (
    MOCK_SHAPE,
    compare_with_truth,
    make_mock_field,
    mock_noise_calibration,
    mock_sources,
    mock_truth,
    mock_wcs,
    render_mock,
    small_window,
)
from jaxcomp.catalogues import ADAMO17_PUBLISHED_50PCT_NGC628C, read_legus

WINDOW = (3700, 3900, 3400, 3640)  # a 200 x 240 px piece of the busy region


def test_any_crop_is_the_same_pixels_as_the_full_frame():
    big = render_mock((3650, 3950, 3350, 3700), seed=0)
    small = render_mock(WINDOW, seed=0)
    for b in BANDS:
        np.testing.assert_array_equal(small[b], big[b][50:250, 50:290])
    # the seed changes the noise and the stars, not the real sources or the diffuse light
    a = render_mock(WINDOW, seed=0, noise=False, stars=False)
    b = render_mock(WINDOW, seed=1, noise=False, stars=False)
    np.testing.assert_array_equal(a["F555W"], b["F555W"])
    assert not np.array_equal(render_mock(WINDOW, seed=1)["F555W"], small["F555W"])


def test_sizes_and_errors():
    w = small_window()
    assert (w[1] - w[0], w[3] - w[2]) == mock.SMALL_SHAPE
    assert 0 <= w[0] and w[1] <= MOCK_SHAPE[0] and 0 <= w[2] and w[3] <= MOCK_SHAPE[1]
    cy = (w[0] + w[1]) // 2
    w2 = mock_frame._resolve_size((400, 600), None)
    assert (w2[1] - w2[0], w2[3] - w2[2]) == (400, 600) and abs((w2[0] + w2[1]) // 2 - cy) <= 1
    assert mock_frame._resolve_size("legus", None) == (0, MOCK_SHAPE[0], 0, MOCK_SHAPE[1])
    for bad in ("huge", (10, 10), (8000, 100)):
        with pytest.raises(ValueError):
            make_mock_field(bad)
    with pytest.raises(ValueError, match="seed"):
        make_mock_field("small", seed=-1)
    with pytest.raises(ValueError, match="not inside"):
        make_mock_field(window=(0, 100, 6350, 6450))


def test_mock_fits_round_trip_and_truth(tmp_path):
    field = make_mock_field(window=WINDOW, seed=3)
    assert field.shape == (200, 240) and field.footprint.all()
    np.testing.assert_array_equal(field.psf["F814W"].image, mock.mock_psfs()["F814W"].image)
    paths = write_field_fits(field, tmp_path, prefix="mock")
    back = read_field_fits(paths)
    for b in BANDS:
        np.testing.assert_array_equal(back.images[b], field.images[b])
        np.testing.assert_allclose(back.psf[b].image, field.psf[b].image, rtol=1e-12)
        assert back.zeropoints[b] == field.zeropoints[b] and back.exptimes[b] == field.exptimes[b]
    assert back.name == field.name
    # the truth table survives the round trip (it is keyed by the name)
    t1, t2 = mock_truth(field, include_stars=True), mock_truth(back, include_stars=True)
    assert len(t1) == len(t2) > 0 and np.array_equal(np.asarray(t1["x"]), np.asarray(t2["x"]))
    assert set(t1["kind"]) == {"source", "star"}
    sky = back.wcs.pixel_to_world_values(
        np.asarray(t2["x"][t2["kind"] == "source"]), np.asarray(t2["y"][t2["kind"] == "source"])
    )
    src = t2[t2["kind"] == "source"]
    assert np.allclose(sky[0], src["ra_deg"], atol=2e-5) and np.allclose(
        sky[1], src["dec_deg"], atol=2e-5
    )
    from jaxcomp.ast.synthetic import synthetic_field

    with pytest.raises(ValueError, match="not a jaxcomp mock field"):
        mock_truth(synthetic_field((64, 64)))


def test_the_real_catalogue_is_placed_as_delivered():
    cat = read_legus("ngc628c", classes=None)
    t = mock_sources()
    assert len(t) == len(cat) == 3080
    np.testing.assert_allclose(t["x"], np.asarray(cat["x_px"]) - 1)
    np.testing.assert_allclose(t["y"], np.asarray(cat["y_px"]) - 1)
    for b in BANDS:
        m = cat[f"mag_{b}"]
        assert int(t[f"filled_{b}"].sum()) == int(m.mask.sum())
        assert np.all(np.isfinite(t[f"mag_{b}"]))
        np.testing.assert_array_equal(np.asarray(t[f"mag_{b}"])[~m.mask], np.asarray(m)[~m.mask])
        undetected = np.asarray(cat[f"in_footprint_{b}"]) & ~np.asarray(cat[f"detected_{b}"])
        assert np.all(
            np.asarray(t[f"mag_{b}"])[undetected] >= ADAMO17_PUBLISHED_50PCT_NGC628C[b] + 0.5
        )
    # the WCS puts the catalogue's sky positions on its pixel positions
    x, y = mock_wcs().world_to_pixel_values(np.asarray(cat["ra_deg"]), np.asarray(cat["dec_deg"]))
    assert np.percentile(np.hypot(x - t["x"], y - t["y"]), 99) < 1.0
    # each source is as concentrated as LEGUS measured it: noiseless CI = catalogue CI
    from jaxcomp.ast.pipeline import PhotometryConfig, aperture_photometry
    from jaxcomp.ast.profiles import add_stamps, render_multiband

    pick = np.nonzero((t["ci_F555W"] > 1.45) & (t["ci_F555W"] < 2.15))[0][::400]
    img = np.zeros((80, 80 * pick.size))
    xs = 40.3 + 80 * np.arange(pick.size)
    for k, i in enumerate(pick):
        st = render_multiband(
            [xs[k]], [39.8], {"b": [1.0]}, float(t["r_eff_px"][i]), {"b": mock.mock_psfs()["F555W"]}
        )["b"]
        add_stamps(img, st)
    ph = aperture_photometry(
        {b: img for b in BANDS},
        xs,
        np.full(pick.size, 39.8),
        {b: 0.0 for b in BANDS},
        {b: 1.0 for b in BANDS},
        PhotometryConfig(),
    )
    np.testing.assert_allclose(ph["ci"], t["ci_F555W"][pick], atol=0.05)


def test_pipeline_on_the_unmodified_mock_finds_the_placed_clusters():
    from jaxcomp.ast.pipeline import run_pipeline

    field = make_mock_field((700, 700))
    res = run_pipeline(field)
    truth = mock_truth(field)
    cmp = compare_with_truth(res.catalogue, truth)
    assert cmp["n_placed"] > 80
    assert cmp["completeness_final_class1to3"] > 0.5  # 0.68 on the 1500 px crop
    assert cmp["purity_final"] > 0.9  # 0.99 on the 1500 px crop
    assert cmp["by_class"][1]["completeness_final"] > cmp["by_class"][0]["completeness_final"]


def test_calibrated_noise_reproduces_the_adamo17_50pct_magnitudes():
    """Small, fast single-band tests (12 windows x 16 clusters per band, a seed the calibration did
    not use)."""
    from jaxcomp.ast.single_band import mock_m50

    cal = mock_noise_calibration()
    assert cal["provenance"]["script"] == "scripts/calibrate_mock_noise.py"
    for b in BANDS:
        target = ADAMO17_PUBLISHED_50PCT_NGC628C[b]
        assert abs(cal["m50_mock"][b] - target) < 0.1, b
        fit = mock_m50(b, n_windows=12, seed=11)
        assert abs(fit["m50"] - target) < 0.3, (b, fit)
