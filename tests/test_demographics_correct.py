"""correct_catalogue (the one correction recipe) against a brute-force integral of a known
selection."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from jaxcomp.demographics import (
    PiecewiseConstantAV,
    PowerLawLogAge,
    SchechterLogMass,
    SelectionGrid,
    correct_catalogue,
)
from jaxcomp.selection.synthetic import LogisticSelection

MASS = (-2.0, 5.0, 2.0, 8.0)  # alpha, log_mass_break, support
AGE = (-0.8, 6.0, 10.0)  # alpha, support
AV_EDGES = np.array([0.0, 0.75, 1.5, 2.25, 3.0])
AV_WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])


def _brute_force(selection):
    """p_corr(log_age) and p_corr(log_mass) by dense midpoint sums with hand-written densities."""
    m = np.linspace(MASS[2], MASS[3], 3001)
    m = 0.5 * (m[1:] + m[:-1])
    p_m = 10 ** ((MASS[0] + 1) * m) * np.exp(-(10 ** (m - MASS[1])))  # Schechter dN/dlog M
    p_m /= p_m.sum()
    t = np.linspace(AGE[1], AGE[2], 2001)
    t = 0.5 * (t[1:] + t[:-1])
    p_t = 10 ** ((AGE[0] + 1) * t)  # power law dN/dlog T
    p_t /= p_t.sum()
    av = np.linspace(0.0, 3.0, 121)
    av = 0.5 * (av[1:] + av[:-1])
    p_av = AV_WEIGHTS[np.searchsorted(AV_EDGES, av) - 1]
    p_av = p_av / p_av.sum()

    def over_mass(log_age):
        return np.einsum("i,ik,k->", p_m, selection(m[:, None], log_age, av[None, :]), p_av)

    def over_age(log_mass):
        return np.einsum("j,jk,k->", p_t, selection(log_mass, t[:, None], av[None, :]), p_av)

    return over_mass, over_age


@pytest.fixture(scope="module")
def setup():
    selection = LogisticSelection.linear()
    axes = (np.linspace(2.0, 8.0, 241), np.linspace(5.0, 10.2, 105), np.linspace(0.0, 3.0, 25))
    grid = SelectionGrid.from_arrays(*axes, selection(*np.meshgrid(*axes, indexing="ij")))
    rng = np.random.default_rng(5)
    catalogue = Table(
        {
            "log_mass": rng.uniform(2.5, 6.0, 40),
            "log_age": rng.uniform(6.2, 9.9, 40),
            "av": rng.uniform(0, 3, 40),
        }
    )
    return selection, grid, catalogue


def test_correct_catalogue_matches_a_brute_force_integral(setup):
    selection, grid, catalogue = setup
    age_bins, mass_bins = np.arange(6.0, 10.01, 0.5), np.arange(2.5, 6.01, 0.5)
    result = correct_catalogue(
        catalogue,
        grid,
        mass_distribution=SchechterLogMass(*MASS),
        age_distribution=PowerLawLogAge(*AGE),
        av_distribution=PiecewiseConstantAV(AV_EDGES, AV_WEIGHTS),
        age_bins=age_bins,
        mass_bins=mass_bins,
        age_min_mean=None,
    )
    over_mass, over_age = _brute_force(selection)
    p_age = np.array([over_mass(t) for t in catalogue["log_age"]])
    p_mass = np.array([over_age(m) for m in catalogue["log_mass"]])
    assert result.p_corr_age.dtype == np.float64 and result.p_corr_mass.dtype == np.float64
    # the grid's linear interpolation of p_obs (0.025 dex in mass, a 0.3 dex wide logistic) is the
    # only approximation left: relative error ~ (0.025 / 0.3)^2 / 8 ~ 1e-3
    np.testing.assert_allclose(result.p_corr_age, p_age, rtol=3e-3, atol=1e-6)
    np.testing.assert_allclose(result.p_corr_mass, p_mass, rtol=3e-3, atol=1e-6)
    assert p_age.min() < 0.3 and p_mass.min() < 0.1  # the test covers incomplete regions
    # eq. 17 per bin from the reference values
    for table, values, p_ref, bins, clip in (
        (result.caf, catalogue["log_age"], p_age, age_bins, 1e-10),
        (result.cmf, catalogue["log_mass"], p_mass, mass_bins, 1e-3),
    ):
        index = np.digitize(values, bins) - 1
        for b in range(len(bins) - 1):
            inside = index == b
            if inside.sum() == 0:
                continue
            expected = inside.sum() / np.clip(p_ref[inside], clip, 1).mean()
            assert table["n_raw"][b] == inside.sum()
            assert table["n_corr"][b] == pytest.approx(expected, rel=5e-3)


def test_correct_catalogue_is_float64_even_with_float32_inputs(setup):
    """Distributions made of float32 arrays give the same answer as float64 ones (to float32
    rounding of their parameters), not a float32 computation."""
    import jax.numpy as jnp

    _, grid, catalogue = setup
    bins = np.arange(6.0, 10.01, 0.5)
    mass_bins = np.arange(2.5, 6.01, 0.5)
    kwargs = {"age_bins": bins, "mass_bins": mass_bins}
    a = correct_catalogue(
        catalogue,
        grid,
        mass_distribution=SchechterLogMass(-2.0, 5.0, 2.0, 8.0),
        age_distribution=PowerLawLogAge(-0.5, 6.0, 10.0),
        av_distribution=PiecewiseConstantAV(AV_EDGES, AV_WEIGHTS),
        **kwargs,
    )
    b = correct_catalogue(
        catalogue,
        grid,
        mass_distribution=SchechterLogMass(*(jnp.float32(v) for v in (-2.0, 5.0, 2.0, 8.0))),
        age_distribution=PowerLawLogAge(*(jnp.float32(v) for v in (-0.5, 6.0, 10.0))),
        av_distribution=PiecewiseConstantAV(
            jnp.asarray(AV_EDGES, jnp.float32), jnp.asarray(AV_WEIGHTS, jnp.float32)
        ),
        **kwargs,
    )
    assert a.p_corr_log_age.dtype == np.float64
    np.testing.assert_allclose(a.p_corr_log_age, b.p_corr_log_age, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.p_corr_log_mass, b.p_corr_log_mass, rtol=1e-12, atol=1e-14)


def test_correct_catalogue_with_a_member_grid_matches_one_correction_per_member(setup):
    """A member grid: the correction is the ensemble mean's and the selection's error bars are the
    spread of the corrections made with each member alone (the single-grid recipe)."""
    import jax.numpy as jnp

    from jaxcomp.demographics import stack_member_grids

    _, grid, catalogue = setup
    members = [
        SelectionGrid(grid.log_mass, grid.log_age, grid.av, grid.p_obs**gamma)
        for gamma in (0.7, 1.0, 1.4)  # members that differ most where p_obs is low
    ]
    mean = SelectionGrid(
        grid.log_mass, grid.log_age, grid.av, jnp.mean(jnp.stack([m.p_obs for m in members]), 0)
    )
    kwargs = dict(
        mass_distribution=SchechterLogMass(*MASS),
        age_distribution=PowerLawLogAge(*AGE),
        av_distribution=PiecewiseConstantAV(AV_EDGES, AV_WEIGHTS),
        age_bins=np.arange(6.0, 10.01, 0.5),
        mass_bins=np.arange(2.5, 6.01, 0.5),
        age_min_mean=None,
    )
    result = correct_catalogue(catalogue, stack_member_grids(members), **kwargs)
    single = [correct_catalogue(catalogue, m, **kwargs) for m in members]
    plain = correct_catalogue(catalogue, mean, **kwargs)
    # the marginal is linear in p_obs: the members' mean is the mean grid's (to float32 rounding of
    # the mean grid)
    np.testing.assert_allclose(result.p_corr_age, plain.p_corr_age, rtol=1e-6)
    np.testing.assert_allclose(result.p_corr_mass, plain.p_corr_mass, rtol=1e-6)
    for m, one in enumerate(single):
        np.testing.assert_allclose(result.p_corr_age_members[m], one.p_corr_age, rtol=1e-12)
        np.testing.assert_allclose(result.p_corr_mass_members[m], one.p_corr_mass, rtol=1e-12)
    assert plain.p_corr_age_members is None and "n_corr_sel_err" not in plain.caf.colnames
    for name in ("caf", "cmf"):
        table = getattr(result, name)
        n_raw = np.asarray(table["n_raw"], float)
        p_means = np.stack([np.asarray(getattr(one, name)["p_mean"], float) for one in single])
        occupied = n_raw > 0
        expected = np.std(n_raw[occupied] / p_means[:, occupied], axis=0, ddof=1)
        sel_err = np.asarray(table["n_corr_sel_err"], float)[occupied]
        np.testing.assert_allclose(sel_err, expected, rtol=1e-9)
        assert np.all(expected > 0)
        np.testing.assert_allclose(
            np.asarray(table["n_corr"], float),
            np.asarray(getattr(plain, name)["n_corr"], float),
            rtol=1e-6,
        )
