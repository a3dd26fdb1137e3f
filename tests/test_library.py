"""Tests of the cluster library stage (jaxcomp.library): stars, IMF, synthesis, library."""

from __future__ import annotations

import json
import math
import os
import shutil
import zipfile

import numpy as np
import pytest

from jaxcomp.library import (
    DEFAULT_BANDS,
    IMF,
    LIBRARY_COLUMNS,
    LibraryConfig,
    PopulationSynthesis,
    StarPhotometry,
    SynthesisOptions,
    cluster_magnitudes,
    generate_library,
    read_library,
    sample_imf,
    ssp_magnitudes,
    write_library,
)
from jaxcomp.library.photometry import ISOCHRONE_SETS

# Schlafly & Finkbeiner (2011, ApJ 737, 103) Table 6, R_V = 3.1 (F99 law, 7000 K source):
# A_b / E(B-V)_SFD; divided by Landolt V (2.742) this is A_b / A_V.
SF11_TABLE6_RV31 = {"F275W": 5.487, "F336W": 4.453, "F435W": 3.610, "F555W": 2.792, "F814W": 1.526}
SF11_LANDOLT_V = 2.742


@pytest.fixture(scope="module")
def photometry():
    return StarPhotometry.load()


@pytest.fixture(scope="module")
def model(photometry):
    return PopulationSynthesis(photometry)


# ------------------------------------------------------------------ stars and bands
def test_sun_through_pipeline(photometry):
    """A 1 L_sun, 5772 K, log g 4.44 star has M_V(F555W) within 0.05 mag of 4.83."""
    mags = photometry.star_magnitudes(0.0, math.log10(5772.0), 4.44)
    m_v = mags[0, photometry.bands.index("F555W")]
    assert abs(m_v - 4.83) < 0.05, m_v
    # the build recorded the same number from the raw spectra
    built = photometry.provenance["checks"]["sun_1Lsun_5772K_logg4.44_absolute_mag"]["F555W"]
    assert abs(built - m_v) < 1e-6


def test_vega_is_zero_in_every_band():
    """Vega magnitudes are defined by sedpy's CALSPEC Vega spectrum: Vega = 0 in all bands."""
    from sedpy import reference_spectra

    from jaxcomp.library.band_projection import load_filter, spectrum_magnitudes

    filters = [load_filter(b) for b in DEFAULT_BANDS]
    vega = reference_spectra.vega
    mags = spectrum_magnitudes(vega[:, 0], vega[:, 1], filters)
    np.testing.assert_allclose(mags, 0.0, atol=1e-12)
    fainter = spectrum_magnitudes(vega[:, 0], vega[:, 1] * 10**-0.4, filters)
    np.testing.assert_allclose(fainter, 1.0, atol=1e-12)


def test_unknown_sedpy_filter_is_refused():
    from jaxcomp.library.band_projection import load_filter

    with pytest.raises(ValueError, match="sedpy does not know the filter"):
        load_filter("hst_f999w_nonexistent")


def test_shipped_tables_and_provenance():
    for name in ISOCHRONE_SETS:
        table = StarPhotometry.load(name)
        assert table.bands == DEFAULT_BANDS
        prov = table.provenance
        assert len(prov["isochrones"]["sha256"]) == 64
        assert len(prov["atmospheres"]["files_sha256"]) == 76
        assert {"astro-sedpy", "dust-extinction", "numpy"} <= set(prov["versions"])
        assert prov["created_utc"][:2] == "20"
        assert prov["extinction"]["law"] == "F99" and prov["extinction"]["r_v"] == 3.1
        assert prov["checks"]["band_grid_vs_spectral_interpolation_max_abs_mag"] < 1e-6
        assert np.all(np.isfinite(table.magnitude))
        for sl in table.isochrone_slices():
            assert np.all(np.diff(table.initial_mass[sl]) >= 0)
    sizes = [os.path.getsize(_path(n)) for n in ISOCHRONE_SETS]
    assert sum(sizes) < 6e6


def _path(name):
    from jaxcomp._data import data_path

    return data_path("stellar", f"star_photometry_{name}.npz")


def test_extinction_ratios_against_schlafly_finkbeiner(photometry):
    """A_band/A_V of a 7000 K, log g 4.5 star (F99, R_V=3.1) within 3% of SF11 Table 6."""
    log_t, log_g = math.log10(7000.0), 4.5
    plain = photometry.star_magnitudes(0.0, log_t, log_g)[0]
    extincted = photometry.star_magnitudes(0.0, log_t, log_g, av=1.0)[0]
    ratio = extincted - plain
    for i, band in enumerate(photometry.bands):
        published = SF11_TABLE6_RV31[band] / SF11_LANDOLT_V
        assert abs(ratio[i] / published - 1.0) < 0.03, (band, ratio[i], published)


def test_extinction_polynomials_accurate_between_nodes(photometry):
    """The stored per-star polynomials match the exact band extinction to < 0.002 mag on [0, 3]."""
    from jaxcomp.library.stellar_grid import star_photometry_from_band_grid

    grid = photometry.band_grid
    check = [
        i
        for i, a in enumerate(grid.av_nodes)
        if not np.any(np.isclose(a, photometry.extinction_fit_av))
    ]
    assert len(check) >= 3
    rows = np.arange(0, photometry.log_age.size, 7)
    _, exact = star_photometry_from_band_grid(
        grid, photometry.log_luminosity[rows], photometry.log_teff[rows], photometry.log_g[rows]
    )
    for i in check:
        approx = photometry.band_extinction(grid.av_nodes[i], rows)
        assert np.max(np.abs(approx - exact[..., i])) < 0.002


# ------------------------------------------------------------------------------ IMF
def test_imf_normalisation_and_shape():
    chab = IMF()
    assert chab.number_fraction_below(120.0) == pytest.approx(1.0)
    assert chab.mass_fraction_below(0.08) == pytest.approx(0.0)
    assert 0.6 < chab.mean_mass < 0.8
    # continuity of dN/dm at the Chabrier 1 Msun joint, and the Salpeter slope above it
    assert chab.dn_dm(np.array([1 - 1e-9]))[0] == pytest.approx(
        chab.dn_dm(np.array([1 + 1e-9]))[0], rel=1e-6
    )
    slope = np.log(chab.dn_dm(np.array([20.0]))[0] / chab.dn_dm(np.array([10.0]))[0]) / np.log(2.0)
    assert slope == pytest.approx(-2.35)
    kroupa = IMF("kroupa2001")
    slope = np.log(kroupa.dn_dm(np.array([0.4]))[0] / kroupa.dn_dm(np.array([0.2]))[0]) / np.log(
        2.0
    )
    assert slope == pytest.approx(-1.3)
    u = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(
        chab.number_fraction_below(chab.mass_at_number_fraction(u)), u, atol=1e-12
    )


def test_sample_imf_mass_budget_and_seed():
    imf = IMF()
    stars = sample_imf(1e4, imf, rng=7)
    assert abs(stars.sum() - 1e4) <= stars.max()
    assert stars.min() >= 0.08 and stars.max() <= 120.0
    np.testing.assert_array_equal(stars, sample_imf(1e4, imf, rng=np.random.default_rng(7)))
    assert not np.array_equal(stars, sample_imf(1e4, imf, rng=8))
    big = sample_imf(3e5, imf, rng=1)
    assert big.mean() == pytest.approx(imf.mean_mass, rel=0.03)
    with pytest.raises(ValueError, match="explicit random source"):
        sample_imf(100.0, imf, rng=None)


# ------------------------------------------------------------------------ synthesis
def test_deterministic_mode_equals_ssp(model):
    ages = np.array([6.0, 6.73, 7.5, 8.4, 9.2, 10.0])
    for av in (0.0, 1.3, 3.0):
        ssp = model.ssp_magnitudes(ages, av)
        det = model.cluster_magnitudes(
            np.zeros(ages.size),
            ages,
            np.full(ages.size, av),
            rng=0,
            stochastic=False,
            distance_modulus=0.0,
        )
        assert np.max(np.abs(det - ssp)) < 1e-3
    # a 10^4 Msun cluster is 10 mag brighter than 1 Msun; distance modulus adds on
    apparent = cluster_magnitudes(4.0, 8.0, 0.5, rng=0, stochastic=False, model=model)
    np.testing.assert_allclose(
        apparent[0], ssp_magnitudes(8.0, 0.5, model=model)[0] - 10.0 + 29.98, atol=1e-3
    )


def test_age_interpolation_is_continuous(model):
    """SSP magnitudes are continuous across isochrone ages (fluxes blended in log age)."""
    nodes = model.isochrone_log_ages[5:-5:7]
    left = model.ssp_magnitudes(nodes - 1e-7)
    right = model.ssp_magnitudes(nodes + 1e-7)
    assert np.max(np.abs(left - right)) < 1e-4
    # a star dying between two isochrones fades out continuously
    top = model.photometry.initial_mass[model.photometry.isochrone_slices()[40]].max()
    ages = np.linspace(model.isochrone_log_ages[39], model.isochrone_log_ages[41], 9)
    flux = 10 ** (-0.4 * model.star_magnitudes(np.full(ages.size, top * 0.999), ages)[:, 3])
    assert np.all(np.isfinite(flux)) and np.all(flux >= 0)


def test_extinction_dims_clusters_by_band(model):
    plain = model.ssp_magnitudes(7.0, 0.0)[0]
    dusty = model.ssp_magnitudes(7.0, 2.0)[0]
    a_band = dusty - plain
    assert np.all(np.diff(a_band) < 0)  # bluer bands suffer more (F275W ... F814W)
    assert a_band[3] == pytest.approx(2.0 * 1.0, abs=0.1)


def test_stochastic_scatter_shrinks_as_inverse_sqrt_mass(model):
    """The flux scatter at fixed age falls roughly as M^-1/2 and its mean meets the SSP."""
    log_age, n_rep = 7.5, 160
    log_masses = np.array([4.5, 5.5, 6.5, 7.5])
    band = model.bands.index("F555W")
    rel_scatter, mean_offset = [], []
    ssp = model.ssp_magnitudes(log_age)[0, band]
    for i, lm in enumerate(log_masses):
        mags = model.cluster_magnitudes(
            np.full(n_rep, lm), log_age, 0.0, rng=100 + i, distance_modulus=0.0
        )[:, band]
        flux = 10 ** (-0.4 * (mags + 2.5 * lm))  # per Msun
        rel_scatter.append(flux.std() / flux.mean())
        mean_offset.append(-2.5 * np.log10(flux.mean()) - ssp)
    slope = np.polyfit(log_masses, np.log10(rel_scatter), 1)[0]
    assert -0.62 < slope < -0.38, (slope, rel_scatter)
    assert abs(mean_offset[-1]) < 0.01 and abs(mean_offset[-2]) < 0.01, mean_offset
    # M_V spread in magnitudes also shrinks
    assert rel_scatter[-1] < rel_scatter[0] / 10


def test_small_clusters_are_stochastic_and_reproducible(model):
    a = model.cluster_magnitudes(np.full(50, 3.0), 6.8, 1.0, rng=5)
    b = model.cluster_magnitudes(np.full(50, 3.0), 6.8, 1.0, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a[:, 0].std() > 0.2  # 1000 Msun at 6 Myr: a few massive stars dominate


def test_cost_is_bounded_at_high_mass(model):
    info = model.stochastic_threshold(np.array([4.0, 6.0, 8.0]), 7.0)
    assert info["fully_drawn"][0] and not info["fully_drawn"][2]
    assert info["expected_stochastic_stars"][2] <= model.options.max_stochastic_stars * (1 + 1e-6)
    assert info["expected_stochastic_stars"][1] <= model.options.max_stochastic_stars * (1 + 1e-6)


# ------------------------------------------------------------------------ bad input
def test_bad_inputs_raise_clear_errors(model, photometry):
    with pytest.raises(ValueError, match=r"outside the isochrone grid.*age_out_of_range='clamp'"):
        model.cluster_magnitudes(4.0, 5.2, 0.0, rng=0)
    with pytest.raises(ValueError, match="outside the isochrone grid"):
        model.ssp_magnitudes(10.3)
    with pytest.raises(ValueError, match=r"A_V must be >= 0 mag"):
        model.cluster_magnitudes(4.0, 7.0, -0.1, rng=0)
    with pytest.raises(ValueError, match="exceeds the 3.0 mag range"):
        model.ssp_magnitudes(7.0, 3.5)
    with pytest.raises(ValueError, match=r"unknown band name.*F999W.*--extra-band"):
        StarPhotometry.load(bands=["F555W", "F999W"])
    with pytest.raises(ValueError, match="unknown band name"):
        PopulationSynthesis(photometry, bands=["V"])
    with pytest.raises(ValueError, match=r"upper mass limit .* is not above the lower limit.*swap"):
        IMF(min_mass=100.0, max_mass=0.5)
    with pytest.raises(ValueError, match=r"initial masses must lie in .* Msun"):
        model.star_magnitudes(500.0, 7.0)
    with pytest.raises(ValueError, match=r"initial masses must lie in .* Msun"):
        model.star_magnitudes(0.01, 7.0)
    with pytest.raises(ValueError, match="log_mass must be finite"):
        model.cluster_magnitudes(np.nan, 7.0, 0.0, rng=0)
    with pytest.raises(ValueError, match="unknown isochrone set"):
        StarPhotometry.load("mist_v1")
    with pytest.raises(ValueError, match="explicit random source"):
        model.cluster_magnitudes(4.0, 7.0, 0.0, rng=None)
    # clamping is explicit and flagged-by-caller
    clamped = model.cluster_magnitudes(
        4.0, 5.2, 0.0, rng=0, age_out_of_range="clamp", stochastic=False
    )
    youngest = model.cluster_magnitudes(
        4.0, model.isochrone_log_ages[0], 0.0, rng=0, stochastic=False
    )
    np.testing.assert_allclose(clamped, youngest)


def test_corrupt_data_files_raise(tmp_path):
    garbage = tmp_path / "star_photometry_garbage.npz"
    garbage.write_bytes(b"not a zip archive at all")
    with pytest.raises(ValueError, match=r"corrupt or not a jaxcomp table.*build_star_photometry"):
        StarPhotometry.load(path=garbage)
    # a well-formed archive whose magnitudes were edited fails the checksum
    source = _path("padova2007_z0.0190")
    with np.load(source, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["magnitude"] = arrays["magnitude"] + np.float32(0.1)
    edited = tmp_path / "star_photometry_edited.npz"
    np.savez_compressed(edited, **arrays)
    with pytest.raises(ValueError, match="fails its content checksum"):
        StarPhotometry.load(path=edited)
    # a truncated copy
    truncated = tmp_path / "star_photometry_truncated.npz"
    truncated.write_bytes(source.read_bytes()[:5000])
    with pytest.raises(ValueError, match="corrupt"):
        StarPhotometry.load(path=truncated)
    # a file missing an array
    missing = tmp_path / "star_photometry_missing.npz"
    shutil.copy(source, missing)
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(missing, "w") as zout:
        for item in zin.infolist():
            if item.filename != "grid_q_mag.npy":
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(ValueError, match="missing arrays"):
        StarPhotometry.load(path=missing)


# -------------------------------------------------------------------------- library
def test_generate_library_columns_seed_and_ranges(model, tmp_path):
    stellar_150 = LibraryConfig(chunk_size=150, nebular=False)
    frame = generate_library(400, stellar_150, seed=11, model=model)
    assert tuple(frame.columns) == LIBRARY_COLUMNS
    assert list(frame.columns[:10]) == [
        "cluster_id",
        "log_mass",
        "log_age",
        "av",
        "r_eff_pc",
        "mag_F275W",
        "mag_F336W",
        "mag_F435W",
        "mag_F555W",
        "mag_F814W",
    ]
    meta = frame.attrs["jaxcomp_library"]
    assert meta["seed"] == 11 and meta["config"]["radius_model"] == "flat"
    assert frame["log_mass"].between(2, 8).all() and frame["av"].between(0, 3).all()
    assert frame["log_age"].between(5.0, math.log10(1.5e10)).all()
    assert set(frame["r_eff_pc"]) <= set(range(1, 11))
    grid = model.isochrone_log_ages
    expected_clamped = (frame["log_age"] < grid[0]) | (frame["log_age"] > grid[-1])
    assert (frame["age_clamped"] == expected_clamped).all() and meta[
        "n_age_clamped"
    ] == expected_clamped.sum()
    assert np.isfinite(frame.filter(like="mag_").to_numpy()).all()
    again = generate_library(400, stellar_150, seed=11, model=model)
    np.testing.assert_array_equal(frame.drop(columns=[]).to_numpy(), again.to_numpy())
    other = generate_library(400, stellar_150, seed=12, model=model)
    assert not np.array_equal(frame["mag_F555W"].to_numpy(), other["mag_F555W"].to_numpy())

    path = write_library(frame, tmp_path / "library.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["library.parquet"]  # no temporary left behind
    back = read_library(path)
    assert back.equals(frame) and back.attrs["jaxcomp_library"]["seed"] == 11
    with pytest.raises(ValueError, match="Parquet"):
        write_library(frame, tmp_path / "library.csv")


def test_k19_radii_follow_mass(model):
    config = LibraryConfig(radius_model="K19", chunk_size=1000, nebular=False)
    frame = generate_library(1500, config, seed=3, model=model)
    low = frame[frame.log_mass < 3]["r_eff_pc"].mean()
    high = frame[frame.log_mass > 7]["r_eff_pc"].mean()
    assert 1 <= frame["r_eff_pc"].min() and frame["r_eff_pc"].max() <= 10
    assert high > low + 3
    with pytest.raises(ValueError, match="radius_model"):
        LibraryConfig(radius_model="gaussian")
    with pytest.raises(ValueError, match="av_range"):
        LibraryConfig(av_range=(-1.0, 3.0))


def test_library_metadata_is_json(model):
    frame = generate_library(20, LibraryConfig(nebular=False), seed=0, model=model)
    text = json.dumps(frame.attrs["jaxcomp_library"])
    assert "content_sha256" in text and "nebular_emission" in text


def test_synthesis_options_validate():
    with pytest.raises(ValueError, match="variance_tolerance"):
        SynthesisOptions(variance_tolerance=0.0)
    with pytest.raises(ValueError, match="sampling"):
        SynthesisOptions(sampling="poisson")


def test_library_from_properties_matches_generate_library():
    """Same properties and seed -> the same stochastic photometry; bad inputs are refused."""
    from jaxcomp.library import LibraryConfig, generate_library, library_from_properties

    config = LibraryConfig(log_mass_range=(2.0, 4.0))
    reference = generate_library(40, config, seed=7)
    again = library_from_properties(
        reference["log_mass"],
        reference["log_age"],
        reference["av"],
        config,
        seed=7,
        r_eff_pc=reference["r_eff_pc"],
    )
    for column in reference.columns:
        np.testing.assert_array_equal(
            np.asarray(again[column]), np.asarray(reference[column]), err_msg=column
        )
    drawn = library_from_properties(np.full(5, 6.0), np.full(5, 7.0), np.zeros(5), config, seed=1)
    assert set(np.asarray(drawn["r_eff_pc"])) <= set(range(1, 11))
    with pytest.raises(ValueError, match="av must be >= 0"):
        library_from_properties([3.0], [7.0], [-0.1], config)
    with pytest.raises(ValueError, match="NaN"):
        library_from_properties([np.nan], [7.0], [0.1], config)
