"""Marginalisation of p_obs over population distributions (Tang+2026 eq. 14-16) and the p(A_V)
estimate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from astropy.table import Table

from jaxcomp import SelectionFunction
from jaxcomp.demographics import (
    BrokenPowerLawLogAge,
    PiecewiseConstantAV,
    PowerLawLogAge,
    PowerLawLogMass,
    SchechterLogMass,
    SelectionGrid,
    estimate_av_distribution,
    interpolate_marginal,
    normalised_quadrature,
    p_corr_log_age,
    p_corr_log_mass,
    p_obs_mass_age,
    quadrature_weights,
)
from jaxcomp.selection.inputs import PHYSICAL_INPUTS
from jaxcomp.selection.network import NetworkConfig, init_network
from jaxcomp.selection.synthetic import LogisticSelection

SELECTION = LogisticSelection()


def _av(weights=(4.0, 3.0, 2.0, 1.0)) -> PiecewiseConstantAV:
    """p(A_V) in the current precision (build it inside ``jax.enable_x64`` for float64)."""
    return PiecewiseConstantAV([0.0, 0.75, 1.5, 2.25, 3.0], jnp.asarray(weights, dtype=float))


def _small_network(specs=PHYSICAL_INPUTS, seed=0) -> SelectionFunction:
    config = NetworkConfig(len(specs), (16, 16))
    weights = jax.tree.map(lambda leaf: leaf[None], init_network(config, seed)[1])
    lows = np.array([s.domain[0] for s in specs])
    highs = np.array([s.domain[1] for s in specs])
    return SelectionFunction.from_weights(
        input_specs=specs,
        mean=(lows + highs) / 2,
        scale=(highs - lows) / 3.5,
        network_config=config,
        weights=weights,
    )


@pytest.fixture(scope="module")
def logistic_grid() -> SelectionGrid:
    return SelectionGrid.from_selection(SELECTION, shape=(241, 61, 41))


def test_grid_from_a_network_matches_direct_evaluation_in_any_input_order():
    sf = _small_network()
    axes = (np.linspace(2, 8, 13), np.linspace(5, 10, 11), np.linspace(0, 3, 7))
    # several compiled blocks, the last one padded
    grid = SelectionGrid.from_selection(sf, *axes, chunk_size=64, points_per_call=256)
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32)
    np.testing.assert_allclose(np.asarray(grid.p_obs), np.asarray(sf(jnp.asarray(mesh))), atol=1e-6)
    assert grid.shape == (13, 11, 7)
    # a network whose inputs come in another order gives the same grid
    reordered = SelectionFunction.from_weights(
        input_specs=PHYSICAL_INPUTS[::-1],
        mean=sf.metadata["standardisation"]["mean"][::-1],
        scale=sf.metadata["standardisation"]["scale"][::-1],
        network_config=sf.network_config,
        weights=jax.tree.map(lambda w: w, sf.weights),
    )
    grid_r = SelectionGrid.from_selection(reordered, *axes)
    np.testing.assert_allclose(
        np.asarray(grid_r.p_obs), np.asarray(reordered(jnp.asarray(mesh[..., ::-1]))), atol=1e-6
    )


def test_grid_validation_save_and_load(tmp_path, logistic_grid):
    path = logistic_grid.save(tmp_path / "grid.npz")
    loaded = SelectionGrid.load(path)
    for name in ("log_mass", "log_age", "av", "p_obs"):
        np.testing.assert_array_equal(
            np.asarray(getattr(loaded, name)), np.asarray(getattr(logistic_grid, name))
        )
    with pytest.raises(ValueError, match="strictly increasing"):
        SelectionGrid.from_arrays([2, 1], [5, 6], [0, 3], np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        SelectionGrid.from_arrays([1, 2], [5, 6], [0, 3], np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        SelectionGrid.from_arrays([1, 2], [5, 6], [0, 3], np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="physical inputs"):
        from jaxcomp.selection.inputs import PHOTOMETRIC_INPUTS

        SelectionGrid.from_selection(_small_network(PHOTOMETRIC_INPUTS), shape=(2, 2, 2))


def test_grid_interpolation_reproduces_the_selection(logistic_grid):
    rng = np.random.default_rng(0)
    m, t, a = rng.uniform([2, 5, 0], [8, 10, 3], size=(500, 3)).T
    np.testing.assert_allclose(
        np.asarray(logistic_grid.interpolate(m, t, a)), SELECTION(m, t, a), atol=0.01
    )
    np.testing.assert_allclose(
        np.asarray(logistic_grid.at_av(3.0)), np.asarray(logistic_grid.p_obs[:, :, -1])
    )


@pytest.mark.parametrize(
    "distribution, nodes",
    [
        (SchechterLogMass(-2.16, 5.61), np.linspace(2, 8, 50)),
        (PowerLawLogMass(-2.09, 2.3, 7.7), np.linspace(2, 8, 37)),  # support edges between nodes
        (PowerLawLogAge(-0.8, 6.0, 8.3), np.linspace(5, 10.18, 40)),
        (BrokenPowerLawLogAge(), np.linspace(5, 10.18, 33)),
        ("av", np.linspace(0, 3, 9)),
        (PowerLawLogMass(-2.0, 1.0, 9.0), np.linspace(2, 8, 25)),  # support wider than the grid
    ],
)
def test_quadrature_weights_integrate_linear_functions_exactly(distribution, nodes):
    with jax.enable_x64(True):
        if distribution == "av":
            distribution = _av()
        else:  # rebuild in float64
            distribution = jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), distribution)
        w = np.asarray(quadrature_weights(distribution, jnp.asarray(nodes)))
        assert np.all(w >= 0)
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
        lo, hi = (float(v) for v in np.asarray(distribution.breakpoints())[[0, -1]])
        # f(x) = x on the grid, held constant beyond it: E[clip(x, nodes[0], nodes[-1])]
        kinks = np.asarray(distribution.breakpoints())
        x = np.unique(np.concatenate([np.linspace(lo, hi, 400001), kinks - 1e-12, kinks + 1e-12]))
        x = x[(x >= lo) & (x <= hi)]
        density = np.exp(np.asarray(distribution.log_prob(jnp.asarray(x))))
        expected = np.trapezoid(density * np.clip(x, nodes[0], nodes[-1]), x)
        assert float(w @ nodes) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "distribution, nodes",
    [
        (SchechterLogMass(-2.16, 5.61), np.linspace(2, 8, 121)),
        (
            SchechterLogMass(-0.5, 3.0),
            np.linspace(2, 8, 61),
        ),  # alpha > -1: the density peaks inside
        (PowerLawLogMass(-2.09, 2.3, 7.7), np.linspace(2, 8, 37)),
        (PowerLawLogAge(0.7, 6.0, 8.3), np.linspace(5, 10.18, 40)),
        (BrokenPowerLawLogAge(-1.4, 7.5, -0.2, 6.0, 9.5), np.linspace(6, 9.5, 49)),
    ],
)
def test_normalised_quadrature_matches_the_exact_normaliser(distribution, nodes):
    """w / sum(w) and ln f - log_norm agree with quadrature_weights and log_prob (the likelihood's
    fast path)."""
    with jax.enable_x64(True):
        distribution = jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), distribution)
        weights, log_norm = normalised_quadrature(distribution, jnp.asarray(nodes))
        assert float(jnp.sum(weights)) == pytest.approx(1.0, abs=1e-14)
        np.testing.assert_allclose(
            np.asarray(weights),
            np.asarray(quadrature_weights(distribution, jnp.asarray(nodes))),
            rtol=1e-9,
            atol=1e-15,
        )
        lo, hi = (float(v) for v in np.asarray(distribution.breakpoints())[[0, -1]])
        x = jnp.linspace(lo, hi, 97)
        np.testing.assert_allclose(
            np.asarray(distribution._log_unnormalised(x) - log_norm),
            np.asarray(distribution.log_prob(x)),
            rtol=0,
            atol=1e-9,
        )
        assert np.all(
            np.asarray(distribution._log_unnormalised(x)) <= 1e-6
        )  # shifted to peak near 0
        assert np.isneginf(
            np.asarray(distribution._log_unnormalised(jnp.asarray([lo - 0.1, hi + 0.1])))
        ).all()


def test_quadrature_weights_need_two_nodes():
    with pytest.raises(ValueError, match="at least 2 nodes"):
        quadrature_weights(PowerLawLogMass(-2.0), jnp.asarray([3.0]))


def test_linear_selection_is_marginalised_exactly():
    """p_obs linear in each variable: the interpolant is exact, so are the marginals."""
    m, t, a = np.linspace(2, 8, 31), np.linspace(5, 10, 21), np.linspace(0, 3, 13)

    def linear(lm, la, av):
        return 0.1 + 0.1 * (lm - 2) + 0.01 * (la - 5) - 0.02 * av

    with jax.enable_x64(True):
        grid = SelectionGrid.from_selection(linear, m, t, a)
        mass, age, av = SchechterLogMass(-2.16, 5.61), BrokenPowerLawLogAge(log_age_max=10.0), _av()
        mean_mass = float(quadrature_weights(mass, jnp.asarray(m)) @ m)
        mean_age = float(quadrature_weights(age, jnp.asarray(t)) @ t)
        mean_av = float(av.mean)
        expected_age = 0.1 + 0.1 * (mean_mass - 2) + 0.01 * (t - 5) - 0.02 * mean_av
        np.testing.assert_allclose(
            np.asarray(p_corr_log_age(grid, mass, av)), expected_age, rtol=2e-6
        )
        expected_mass = 0.1 + 0.1 * (m - 2) + 0.01 * (mean_age - 5) - 0.02 * mean_av
        np.testing.assert_allclose(
            np.asarray(p_corr_log_mass(grid, age, av)), expected_mass, rtol=2e-6
        )
        # float32 grid values limit the precision
        assert mean_av == pytest.approx((4 * 0.375 + 3 * 1.125 + 2 * 1.875 + 1 * 2.625) / 10)


def test_step_in_log_mass_gives_the_analytic_power_law_fraction():
    """p_obs = 1 above log M = 3.5: p_corr(log_age) = P(log M > 3.5) = 1 - CDF(3.5)."""

    def step(lm, la, av):
        return (lm > 3.5) + 0.0 * la + 0.0 * av

    nodes = np.linspace(2, 8, 601) + 0.005  # the step falls mid-cell
    with jax.enable_x64(True):
        grid = SelectionGrid.from_selection(
            step, nodes, np.linspace(5, 10, 3), np.linspace(0, 3, 3)
        )
        for alpha in (-2.09, -1.5):
            mass = PowerLawLogMass(alpha)
            beta = (alpha + 1) * np.log(10)
            analytic = (np.exp(beta * 8) - np.exp(beta * 3.5)) / (
                np.exp(beta * 8) - np.exp(beta * 2)
            )
            np.testing.assert_allclose(
                np.asarray(p_corr_log_age(grid, mass, _av())), analytic, rtol=2e-4
            )


def test_marginals_agree_with_monte_carlo_and_brute_force(logistic_grid):
    with jax.enable_x64(True):
        mass = SchechterLogMass(-2.16, 5.61)
        age = BrokenPowerLawLogAge()
        AV = _av()
        key_mass, key_age, key_av = jax.random.split(jax.random.PRNGKey(11), 3)
        n = 200_000
        log_mass = np.asarray(mass.sample(key_mass, (n,)))
        log_age = np.asarray(age.sample(key_age, (n,)))
        av = np.asarray(AV.sample(key_av, (n,)))
        p_age = np.asarray(p_corr_log_age(logistic_grid, mass, AV))
        p_mass = np.asarray(p_corr_log_mass(logistic_grid, age, AV))
        nodes_age, nodes_mass = (
            np.asarray(logistic_grid.log_age),
            np.asarray(logistic_grid.log_mass),
        )
        # brute force on a dense grid (trapezoid) for one age
        x = np.linspace(2, 8, 4001)
        dens = np.exp(np.asarray(mass.log_prob(jnp.asarray(x))))
        a_dense = np.linspace(0, 3, 601)
        dens_av = np.exp(np.asarray(AV.log_prob(jnp.asarray(a_dense))))
        for j in (10, 25, 40):
            mc_values = SELECTION(log_mass, nodes_age[j], av)
            mc, err = mc_values.mean(), mc_values.std() / np.sqrt(n)
            assert abs(p_age[j] - mc) < 4 * err + 3e-3 * mc
            inner = np.trapezoid(
                SELECTION(x[:, None], nodes_age[j], a_dense[None, :]) * dens_av, a_dense, axis=1
            )
            assert p_age[j] == pytest.approx(np.trapezoid(inner * dens, x), rel=3e-3)
        for i in (60, 120, 180):
            mc_values = SELECTION(nodes_mass[i], log_age, av)
            mc, err = mc_values.mean(), mc_values.std() / np.sqrt(n)
            assert abs(p_mass[i] - mc) < 4 * err + 3e-3 * mc


def test_two_dimensional_map_marginalises_over_av(logistic_grid):
    uniform = PiecewiseConstantAV([0.0, 3.0], [1.0])  # eq. 15
    with jax.enable_x64(True):
        plane = np.asarray(p_obs_mass_age(logistic_grid, uniform))
        av = np.asarray(logistic_grid.av)
        expected = np.trapezoid(np.asarray(logistic_grid.p_obs, np.float64), av, axis=2) / 3.0
        np.testing.assert_allclose(plane, expected, rtol=1e-6, atol=1e-9)
        assert plane.shape == logistic_grid.shape[:2]
        # any NumPyro distribution on a bounded interval works too
        numpyro_uniform = numpyro.distributions.Uniform(0.0, 3.0)
        np.testing.assert_allclose(
            np.asarray(p_obs_mass_age(logistic_grid, numpyro_uniform)), plane, rtol=1e-6
        )


def test_marginals_are_differentiable_in_population_parameters(logistic_grid):
    """Gradients w.r.t. alpha_M, log M_break, the A_V weights, alpha_T and log T_break."""
    with jax.enable_x64(True):

        def f(theta):
            av = PiecewiseConstantAV([0.0, 0.75, 1.5, 2.25, 3.0], theta[2:6])
            p_age = p_corr_log_age(logistic_grid, SchechterLogMass(theta[0], theta[1]), av)[30]
            p_mass = p_corr_log_mass(logistic_grid, BrokenPowerLawLogAge(theta[6], theta[7]), av)[
                120
            ]
            return p_age + 10.0 * p_mass

        theta = jnp.array([-2.16, 5.61, 4.0, 3.0, 2.0, 1.0, -1.41, 8.22])
        grad = np.asarray(jax.jit(jax.grad(f))(theta))
        f = jax.jit(f)
        for k in range(theta.shape[0]):
            step = jnp.zeros_like(theta).at[k].set(1e-6)
            numeric = (f(theta + step) - f(theta - step)) / 2e-6
            assert grad[k] == pytest.approx(float(numeric), rel=1e-5, abs=1e-10)
        assert np.all(grad != 0)


def test_interpolate_marginal_is_linear_and_clamped():
    nodes, values = jnp.array([1.0, 2.0, 3.0]), jnp.array([0.0, 1.0, 0.5])
    np.testing.assert_allclose(
        interpolate_marginal(nodes, values, jnp.array([0.0, 1.5, 2.5, 9.0])), [0.0, 0.5, 0.75, 0.5]
    )


def test_estimate_av_distribution_counts_clusters_inside_the_contour():
    # LogisticSelection at A_V = 3: 50% at log M = 4.2 for young ages
    table = Table(
        {
            "log_mass": [5.0, 5.0, 5.0, 5.0, 3.0, 6.5, 5.5],
            "log_age": [6.0, 6.0, 6.0, 6.0, 6.0, 6.2, 6.0],
            "av": [0.1, 0.2, 1.0, 2.9, 0.5, 3.5, np.nan],
        }
    )
    estimate = estimate_av_distribution(SELECTION, table, return_details=True)
    assert estimate.n_selected == 5  # low-mass row out, NaN row out
    assert estimate.counts.tolist() == [2, 1, 0, 1]  # A_V = 3.5 is outside [0, 3] and dropped
    assert estimate.n_outside_range == 1
    np.testing.assert_allclose(
        np.asarray(estimate.distribution.probabilities), [0.5, 0.25, 0.0, 0.25]
    )
    clipped = estimate_av_distribution(SELECTION, table, out_of_range="clip")
    np.testing.assert_allclose(np.asarray(clipped.probabilities), [0.4, 0.2, 0.0, 0.4])
    with pytest.raises(ValueError, match="no catalogue cluster"):
        estimate_av_distribution(SELECTION, table[4:5])


def test_estimate_av_distribution_ngc628c_with_c4(c4_checkpoint_dir):
    from jaxcomp.catalogues import read_legus
    from jaxcomp.selection.c4 import import_c4

    sf = import_c4(c4_checkpoint_dir, "phys")
    catalogue = read_legus("ngc628c")
    estimate = estimate_av_distribution(sf, catalogue, return_details=True)
    # Tang+2026 report 14 clusters inside their contour (drawn on a plotting grid); the C-4 network
    # evaluated at the catalogue masses and ages puts 20 (17 with A_V <= 3) above 0.5 at A_V = 3.
    assert estimate.n_selected == 20
    assert estimate.counts.tolist() == [8, 4, 3, 2]
    # the same set from a grid of the network (trilinear interpolation)
    grid = SelectionGrid.from_selection(
        sf, np.linspace(3.5, 6.5, 121), np.linspace(5.9, 8.5, 105), np.array([2.9, 3.0])
    )
    from_grid = estimate_av_distribution(grid, catalogue, return_details=True)
    inside = (
        (np.asarray(catalogue["log_mass"]) > 3.5)
        & (np.asarray(catalogue["log_mass"]) < 6.5)
        & (np.asarray(catalogue["log_age"]) > 5.9)
        & (np.asarray(catalogue["log_age"]) < 8.5)
    )
    np.testing.assert_allclose(
        from_grid.p_obs_reference[inside], estimate.p_obs_reference[inside], atol=0.03
    )
