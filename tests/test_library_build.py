"""Rebuilding the shipped per-star photometry from the raw stellar inputs reproduces it.

Needs the raw inputs (isochrones, CK04 atmospheres, WM-basic spectra): found through
$JAXCOMP_STELLAR_RAW, ``shared/data/stellar`` beside the repository, or
``/work/shared/data/stellar``; skipped when none is present (users never have them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxcomp.library import StarPhotometry

REPO = Path(__file__).resolve().parents[1]


def _raw_directory():
    for candidate in (
        os.environ.get("JAXCOMP_STELLAR_RAW"),
        REPO.parent / "shared" / "data" / "stellar",
        "/work/shared/data/stellar",
    ):
        if candidate and (Path(candidate) / "isochrones" / "padova2007_z0.0190.dat").is_file():
            return Path(candidate)
    return None


RAW = _raw_directory()
pytestmark = pytest.mark.skipif(RAW is None, reason="raw stellar inputs not available")


def test_build_script_reproduces_shipped_padova_table(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "build_star_photometry.py"),
            "--raw-dir",
            str(RAW),
            "--isochrones",
            "padova2007_z0.0190",
            "--output-dir",
            str(tmp_path),
            "--extra-band",
            "wfc3_uvis_f555w",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    built_path = tmp_path / "star_photometry_padova2007_z0.0190_wfc3_uvis_f555w.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        built_path.name
    ]  # atomic: no temporaries left
    with_extra = StarPhotometry.load(path=built_path)
    assert with_extra.bands[-1] == "wfc3_uvis_f555w"
    sun = with_extra.star_magnitudes(
        0.0, np.log10(5772.0), 4.44, bands=["wfc3_uvis_f555w", "F555W"]
    )[0]
    assert abs(sun[0] - sun[1]) < 0.1  # WFC3/UVIS and ACS/WFC F555W (NGC628E uses the former)
    built = with_extra.select_bands(("F275W", "F336W", "F435W", "F555W", "F814W"))
    shipped = StarPhotometry.load("padova2007_z0.0190")
    np.testing.assert_allclose(built.magnitude, shipped.magnitude, atol=1e-5)
    np.testing.assert_allclose(
        built.extinction_coefficients, shipped.extinction_coefficients, atol=1e-5
    )
    np.testing.assert_allclose(built.band_grid.q_mag, shipped.band_grid.q_mag, atol=1e-9)
    assert built.provenance["isochrones"]["sha256"] == shipped.provenance["isochrones"]["sha256"]
    assert (
        built.provenance["atmospheres"]["files_sha256"]
        == shipped.provenance["atmospheres"]["files_sha256"]
    )
    checks = built.provenance["checks"]
    assert abs(checks["sun_1Lsun_5772K_logg4.44_absolute_mag"]["F555W"] - 4.83) < 0.05
    assert max(abs(v) for v in checks["vega_mag"].values()) < 1e-12
    wmb = built.provenance["atmospheres"]["wmbasic_check"]
    assert wmb["used"] is False and wmb["n_models"] == 33


def test_explicit_spectral_interpolation_matches_band_grid():
    """Interpolating spectra then projecting equals interpolating the band grid (linearity)."""
    from jaxcomp.library.band_projection import (
        compute_band_grid,
        extinction_curve,
        load_filter,
        spectral_interpolation_magnitudes,
    )
    from jaxcomp.library.stellar_grid import star_photometry_from_band_grid
    from jaxcomp.library.stellar_inputs import extend_grid_with_planck, read_ck04_grid

    ck, _ = read_ck04_grid(RAW / "atmospheres" / "ck04_solar")
    grid = extend_grid_with_planck(ck)
    filters = [load_filter(b) for b in ("F336W", "F814W")]
    rng = np.random.default_rng(0)
    log_l, log_t, log_g = (
        rng.uniform(-2, 5, 20),
        rng.uniform(3.35, 5.3, 20),
        rng.uniform(-0.5, 6, 20),
    )
    direct = spectral_interpolation_magnitudes(grid, filters, log_l, log_t, log_g)
    band_grid = compute_band_grid(grid, filters, extinction_curve(), [1.0])
    shortcut, _ = star_photometry_from_band_grid(band_grid, log_l, log_t, log_g)
    np.testing.assert_allclose(direct, shortcut, atol=1e-9)
