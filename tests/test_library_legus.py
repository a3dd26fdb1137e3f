"""The library's photometry against the real LEGUS NGC 628C catalogue (issue 4, item 1).

Each class 1-3 cluster's magnitudes are predicted from its catalogue mass, age and
E(B-V) (A_V = 3.1 E(B-V), distance modulus 29.98, Milky Way extinction) with the
deterministic SSP mode of the like-for-like synthesis (Padova 2007, Kroupa 0.1-100 Msun),
and compared with the observed magnitudes: median offset within 0.3 mag and robust
scatter (1.4826 MAD) below 0.3 mag.  Measured (scripts/validate_legus_photometry.py):

=====  =============  =============  =============  =============
band   all            <10 Myr        10-100 Myr     >100 Myr
=====  =============  =============  =============  =============
F275W  +0.160 / 0.157 +0.167 / 0.153 +0.142 / 0.109 +0.160 / 0.291
F336W  +0.184 / 0.140 +0.253 / 0.165 +0.178 / 0.088 +0.151 / 0.098
F435W  +0.198 / 0.100 +0.180 / 0.195 +0.201 / 0.059 +0.200 / 0.033
F555W  +0.147 / 0.110 +0.157 / 0.291 +0.130 / 0.067 +0.159 / 0.047
F814W  +0.190 / 0.111 +0.265 / 0.481 +0.193 / 0.063 +0.125 / 0.099
=====  =============  =============  =============  =============

Everything passes except the F814W scatter below 10 Myr.  That failure is the 216
clusters the catalogue puts at 1-2 Myr: for them jaxcomp (no nebular emission) is
0.58-0.70 mag fainter in F814W than observed with a per-age scatter of only 0.02-0.07 mag,
while at 3-9 Myr the offset is +0.13 mag; the bimodality makes the <10 Myr scatter.  The
catalogue's Yggdrasil fits include nebular emission, which at 1-2 Myr is strongest in
F814W (Paschen continuum, [S III]), then F555W ([O III], H-beta), and weakest in F275W,
exactly the order of the 1-2 Myr offsets (F275W +0.22 ... F814W +0.69).  The test of
that bin is a strict xfail: it must be revisited if nebular emission is added.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxcomp.library.validation import (
    AGE_RANGES,
    MAX_MEDIAN_OFFSET_MAG,
    MAX_ROBUST_SCATTER_MAG,
    YOUNG_AGE_RANGES,
    catalogue_model_consistency,
    legus_photometry_comparison,
    robust_offset,
    summarise_comparison,
)

BANDS = ("F275W", "F336W", "F435W", "F555W", "F814W")


@pytest.fixture(scope="module")
def comparison():
    return legus_photometry_comparison("ngc628c", stochastic_seed=0, n_stochastic=1)


@pytest.fixture(scope="module")
def deterministic(comparison):
    summary = summarise_comparison(
        comparison, predictions=["det"], age_ranges=AGE_RANGES + YOUNG_AGE_RANGES
    )
    return {(r.band, r.age_range): r for r in summary.itertuples()}


def _passes(row):
    return (
        abs(row.median_offset_mag) < MAX_MEDIAN_OFFSET_MAG
        and row.robust_scatter_mag < MAX_ROBUST_SCATTER_MAG
    )


def test_sample_and_exclusions(comparison):
    meta = comparison.attrs["legus_comparison"]
    assert meta["n_clusters"] == 1017  # class 1-3 of NGC 628C
    assert meta["n_excluded_av_above_3"] == 6  # outside the 0-3 mag extinction tables
    assert int(comparison["usable"].sum()) == 1011
    assert meta["imf"] == {"kind": "kroupa2001", "min_mass": 0.1, "max_mass": 100.0}
    usable = comparison[comparison.usable]
    for band in BANDS:
        assert (
            np.isfinite(usable[f"det_{band}"]).all() and np.isfinite(usable[f"stoch_{band}"]).all()
        )


def test_catalogue_residual_is_model_minus_observed(comparison):
    """obs + resid is the catalogue's model: per unit mass it is constant at fixed (age, E(B-V))."""
    check = catalogue_model_consistency(comparison)
    for band in BANDS:
        assert check[band]["plus"] < 1e-3, (band, check[band])
        assert check[band]["minus"] > 0.02, (band, check[band])


@pytest.mark.parametrize("age_range", ["all", "10-100 Myr", ">100 Myr", "3-9 Myr"])
@pytest.mark.parametrize("band", BANDS)
def test_deterministic_reproduces_observed(deterministic, band, age_range):
    row = deterministic[(band, age_range)]
    assert row.n >= 150
    assert _passes(row), (band, age_range, row.median_offset_mag, row.robust_scatter_mag)


@pytest.mark.parametrize("band", ["F275W", "F336W", "F435W", "F555W"])
def test_deterministic_young_clusters(deterministic, band):
    row = deterministic[(band, "<10 Myr")]
    assert row.n >= 450
    assert _passes(row), (band, row.median_offset_mag, row.robust_scatter_mag)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "no nebular emission in jaxcomp: the catalogue's 1-2 Myr clusters (fitted with Yggdrasil "
        "including nebular light) are 0.6-0.7 mag brighter in F814W than the stellar prediction, "
        "while 3-9 Myr clusters agree to 0.13 mag; the mixture gives a robust scatter of 0.48 mag"
    ),
)
def test_deterministic_young_clusters_f814w(deterministic):
    assert _passes(deterministic[("F814W", "<10 Myr")])


def test_young_f814w_failure_is_the_nebular_age_range(comparison, deterministic):
    """Diagnosis of the xfail: a tight, band-ordered shift confined to the 1-2 Myr clusters."""
    young = deterministic[("F814W", "1-2 Myr")]
    assert young.median_offset_mag > 0.5 and young.robust_scatter_mag < 0.1
    offsets = [deterministic[(b, "1-2 Myr")].median_offset_mag for b in BANDS]
    assert offsets[-1] == max(offsets) and offsets[0] == min(offsets)  # red bands most, UV least
    assert deterministic[("F814W", "3-9 Myr")].median_offset_mag < 0.2
    # the shift is model-to-model: the catalogue's own fit reproduces the observations
    summary = summarise_comparison(comparison, predictions=["fit"], age_ranges=YOUNG_AGE_RANGES)
    fit_row = summary[(summary.band == "F814W") & (summary.age_range == "1-2 Myr")].iloc[0]
    assert abs(fit_row.median_offset_mag) < 0.05


def test_stochastic_mode_medians_at_10_myr_and_above(comparison):
    """One stochastic draw per cluster: medians still within 0.3 mag above 10 Myr (scatter is
    physical)."""
    usable = comparison.usable.to_numpy() & (comparison.log_age.to_numpy() >= 7.0)
    for band in BANDS:
        n, median, scatter = robust_offset(
            comparison[f"stoch_{band}"][usable] - comparison[f"obs_{band}"][usable]
        )
        assert n > 500 and abs(median) < MAX_MEDIAN_OFFSET_MAG, (band, median, scatter)
