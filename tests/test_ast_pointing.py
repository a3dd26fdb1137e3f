"""The pointing specs of the mock fields (NGC 628C and NGC 628E) and the NGC 628E mock."""

from __future__ import annotations

import numpy as np
import pytest

from jaxcomp.ast import mock, mock_render, mock_stars
from jaxcomp.ast.field import BANDS
from jaxcomp.ast.field_fits import read_field_fits, write_field_fits
from jaxcomp.ast.pointing import (
    ADAMO17_50PCT_NGC628E,
    MOCK_POINTINGS,
    background_rates,
    mock_noise_calibration,
    mock_pointing,
    mock_psf_digest,
)
from jaxcomp.catalogues import adamo17_50pct_magnitudes, read_legus

E_WINDOW = (3750, 3950, 4200, 4440)  # 200 x 240 px of the E frame's busiest region


@pytest.fixture(scope="module")
def e_field():
    return mock.make_mock_field(window=E_WINDOW, seed=3, pointing="ngc628e")


def test_each_pointing_wcs_puts_its_catalogue_on_its_pixels():
    from astropy.coordinates import SkyCoord

    nucleus = SkyCoord("01h36m41.745s", "+15d47m01.18s")
    for name, p in MOCK_POINTINGS.items():
        cat = read_legus(name, classes=None)
        x, y = p.wcs().world_to_pixel_values(np.asarray(cat["ra_deg"]), np.asarray(cat["dec_deg"]))
        d = np.hypot(x - (np.asarray(cat["x_px"]) - 1), y - (np.asarray(cat["y_px"]) - 1))
        assert np.percentile(d, 99) < 1.0, name
        # every source is inside the frame, and the nucleus is where the spec says
        assert np.all(np.asarray(cat["x_px"]) - 1 < p.shape[1])
        assert np.all(np.asarray(cat["y_px"]) - 1 < p.shape[0])
        nx, ny = p.wcs().world_to_pixel(nucleus)
        assert abs(nx - p.nucleus_px[0]) < 0.5 and abs(ny - p.nucleus_px[1]) < 0.5, name
    # the C spec is the module's C constants
    assert mock.MOCK_SHAPE == MOCK_POINTINGS["ngc628c"].shape
    assert mock.NUCLEUS_PX == MOCK_POINTINGS["ngc628c"].nucleus_px
    # each pointing's catalogue passed its own CI cut, which its pipeline configuration applies
    for name, p in MOCK_POINTINGS.items():
        ci = np.asarray(read_legus(name, classes=None)["ci_F555W"])
        assert ci.min() >= p.ci_min - 1e-9 and p.pipeline_config().cuts.ci_min == p.ci_min
    assert MOCK_POINTINGS["ngc628e"].ci_min == 1.3
    # E lies east of the nucleus: the nucleus is beyond the frame's east (high-x) edge
    e = MOCK_POINTINGS["ngc628e"]
    assert e.nucleus_px[0] > e.shape[1]


def test_e_targets_are_the_adamo17_e_curves():
    measured = adamo17_50pct_magnitudes("ngc628e")
    for b in BANDS:
        assert abs(ADAMO17_50PCT_NGC628E[b] - measured[b]) <= 0.005, b
    assert MOCK_POINTINGS["ngc628e"].m50_target == ADAMO17_50PCT_NGC628E


def test_unknown_pointing_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="ngc628e"):
        mock_pointing("ngc628w")
    with pytest.raises(ValueError, match="unknown mock pointing"):
        mock.make_mock_field((200, 200), pointing="m51")
    assert mock_pointing("NGC628-E").name == "ngc628e"


def test_the_e_catalogue_is_placed_as_delivered():
    cat = read_legus("ngc628e", classes=None)
    t = mock.mock_sources(pointing="ngc628e")
    assert len(t) == len(cat) == 593 and t.meta["pointing"] == "ngc628e"
    np.testing.assert_allclose(t["x"], np.asarray(cat["x_px"]) - 1)
    for b in BANDS:
        m = cat[f"mag_{b}"]
        assert int(t[f"filled_{b}"].sum()) == int(m.mask.sum())
        assert np.all(np.isfinite(t[f"mag_{b}"]))
        np.testing.assert_array_equal(np.asarray(t[f"mag_{b}"])[~m.mask], np.asarray(m)[~m.mask])
        undetected = np.asarray(cat[f"in_footprint_{b}"]) & ~np.asarray(cat[f"detected_{b}"])
        assert np.all(np.asarray(t[f"mag_{b}"])[undetected] >= ADAMO17_50PCT_NGC628E[b] + 0.5)
    # fewer field stars than C, in proportion to E's fainter diffuse light
    assert 0 < mock_stars._n_stars("ngc628e") < mock.N_STARS / 2


def test_e_field_round_trip_truth_and_independent_noise(e_field, tmp_path):
    assert e_field.name == "ngc628e-mock:seed=3:window=3750,3950,4200,4440"
    assert e_field.shape == (200, 240)
    paths = write_field_fits(e_field, tmp_path, prefix="e")
    back = read_field_fits(paths)
    spec = mock.mock_spec(back)
    assert spec is not None and spec.pointing == "ngc628e"
    truth = mock.mock_truth(back, include_stars=True)
    src = truth[truth["kind"] == "source"]
    assert len(src) > 0 and set(np.asarray(src["id"])) <= set(
        np.asarray(read_legus("ngc628e", classes=None)["id"])
    )
    # any crop is the same pixels as a bigger one
    big = mock.render_mock((3700, 4000, 4150, 4500), seed=3, pointing="ngc628e")
    for b in BANDS:
        np.testing.assert_array_equal(e_field.images[b], big[b][50:250, 50:290])
    # same seed, same window numbers as a C crop: the noise differs (the E seed key)
    zc = next(mock_render._tile_normals(3, 3, 0, 64, 0, 64))[2]
    ze = next(mock_render._tile_normals(3, 3, 0, 64, 0, 64, MOCK_POINTINGS["ngc628e"].seed_key))[2]
    assert not np.array_equal(zc, ze)


def test_e_noise_calibration_reaches_the_adamo17_e_magnitudes():
    cal = mock_noise_calibration("ngc628e")
    assert cal["psf_sha256"] == mock_psf_digest("ngc628e")
    assert cal["provenance"]["mock"]["pointing"] == "ngc628e"
    assert cal["m50_target"] == ADAMO17_50PCT_NGC628E
    for b in BANDS:
        assert abs(cal["m50_mock"][b] - ADAMO17_50PCT_NGC628E[b]) < 0.3, b
    rates = background_rates("ngc628e")
    assert all(rates[b] > 0 for b in BANDS)
    # small fresh tests with a seed the calibration did not use (12 windows x 16 clusters)
    from jaxcomp.ast.single_band import mock_m50

    for b in ("F336W", "F555W"):  # E's shallowest band relative to C, and the CI band
        fit = mock_m50(b, n_windows=12, seed=11, pointing="ngc628e")
        assert abs(fit["m50"] - ADAMO17_50PCT_NGC628E[b]) < 0.3, (b, fit)


def test_workflow_and_cli_choose_the_pointing():
    from jaxcomp.cli.field import load_field
    from jaxcomp.errors import InputError
    from jaxcomp.workflow.config import ConfigError, FieldSection

    e = FieldSection(kind="mock", size="200x200", pointing="ngc628e")
    e.check()
    assert e.plain()["pointing"] == "ngc628e"
    assert "pointing" not in FieldSection(kind="mock").plain()  # C runs keep their fingerprints
    with pytest.raises(ConfigError, match="pointing"):
        FieldSection(kind="fits", directory="x", pointing="ngc628e").check()
    import tomllib

    from jaxcomp._data import data_path
    from jaxcomp.workflow.config import parse_config

    data = tomllib.loads(data_path("workflows", "demo_quick.toml").read_text())
    data["field"]["pointing"] = "ngc628e"
    assert parse_config(data).to_dict()["field"]["pointing"] == "ngc628e"
    data["field"]["pointing"] = "m51"
    with pytest.raises(ConfigError, match=r"\[field\] pointing must be"):
        parse_config(data)
    f = load_field("mock:200x200:seed=1:pointing=ngc628e")
    assert f.name.startswith("ngc628e-mock:seed=1:")
    with pytest.raises(InputError, match="pointing"):
        load_field("mock:200x200:pointing=ngc628w")
