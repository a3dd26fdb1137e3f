"""Sensitivity study tools: shifted selection integrals, their gradients, Fisher forecasts, Laplace
sensitivities."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomp.demographics import (
    LikelihoodGrid,
    PopulationModel,
    SelectionGrid,
    corrected_counts,
    detection_fraction,
    interpolate_marginal,
    p_corr_log_mass,
    simulate_catalogue,
)
from jaxcomp.demographics.distributions import PiecewiseConstantAV, PowerLawLogAge
from jaxcomp.demographics.sensitivity import (
    ParameterSpace,
    corrected_bin_counts,
    depth_shift,
    detection_fraction_shifted,
    expected_detected,
    fisher_forecast,
    fisher_information,
    intensity_grid,
    maximum_likelihood,
    shift_sensitivity,
)
from jaxcomp.selection.synthetic import LogisticSelection

SELECTION = LogisticSelection(log_mass_50_young=2.5, age_slope=0.6)
MODEL = PopulationModel(mass="schechter", age="power_law", log_age_range=(6.0, 9.5))
TRUTH = {
    "alpha_M": -2.0,
    "log_M_break": 5.0,
    "alpha_T": -0.8,
    "av_weights": np.array([0.4, 0.3, 0.2, 0.1]),
}


@pytest.fixture(scope="module")
def grid():
    return SelectionGrid.from_selection(SELECTION, shape=(73, 45, 13))


def _grid64(grid):
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), grid)


def test_unshifted_fraction_equals_the_likelihood_grid(grid):
    expected = detection_fraction(MODEL, TRUTH, LikelihoodGrid.build(grid, MODEL.av_edges))
    assert float(detection_fraction_shifted(MODEL, TRUTH, grid)) == pytest.approx(
        float(expected), rel=1e-5
    )
    assert float(expected_detected(MODEL, TRUTH, grid, n_total=1000.0)) == pytest.approx(
        1000 * float(expected), rel=1e-5
    )
    assert float(jnp.sum(intensity_grid(MODEL, TRUTH, grid, n_total=1000.0))) == pytest.approx(
        1000 * float(expected), rel=1e-5
    )


def test_shift_equals_a_grid_of_the_shifted_selection():
    """α(δ) on the grid of p_obs equals α(0) on a grid of p_obs(θ + δ) tabulated exactly."""
    shape = (193, 113, 25)
    base = SelectionGrid.from_selection(SELECTION, shape=shape)
    # supports inside the grid by more than the shifts (beyond the grid p_obs is held constant,
    # while the exactly tabulated shifted selection is not: a different extrapolation)
    interior = PopulationModel(
        mass="schechter",
        age="power_law",
        log_mass_range=(2.3, 7.5),
        log_age_range=(6.2, 9.5),
        av_edges=(0.4, 0.95, 1.5, 2.05, 2.6),
    )
    for shift in ((0.13, 0.0, 0.0), (0.0, 0.0, 0.3), (-0.2, 0.1, -0.3)):
        moved = SelectionGrid.from_selection(
            lambda m, t, a, s=shift: SELECTION(m + s[0], t + s[1], a + s[2]), shape=shape
        )
        value = float(detection_fraction_shifted(interior, TRUTH, base, shift))
        reference = float(detection_fraction_shifted(interior, TRUTH, moved))
        assert value == pytest.approx(reference, rel=2e-3), shift
    # deeper survey -> more clusters, by a sizeable amount for one magnitude
    assert float(detection_fraction_shifted(interior, TRUTH, base, depth_shift(1.0))) > 1.3 * float(
        detection_fraction_shifted(interior, TRUTH, base)
    )
    np.testing.assert_allclose(np.asarray(depth_shift(1.0)), [0.4, 0.0, 0.0])


@pytest.mark.parametrize("shift0", [(0.0, 0.0, 0.0), (0.0123, -0.021, 0.0371)])
def test_gradients_match_finite_differences(grid, shift0):
    """Including δ = 0, where A_V bin edges and support edges sit exactly on grid nodes."""
    space = ParameterSpace(MODEL)
    with jax.enable_x64(True):
        g64 = _grid64(grid)
        vector = space.to_vector({**TRUTH, "log10_N": 4.0})
        shift0 = jnp.asarray(shift0, jnp.float64)

        def n_exp(v, s):
            return expected_detected(MODEL, space.to_params(v), g64, s)

        grad_v, grad_s = jax.grad(n_exp, argnums=(0, 1))(vector, shift0)
        h = 1e-5
        for i in range(space.size):
            e = jnp.zeros(space.size).at[i].set(h)
            fd = (n_exp(vector + e, shift0) - n_exp(vector - e, shift0)) / (2 * h)
            assert float(grad_v[i]) == pytest.approx(
                float(fd), rel=2e-3, abs=1e-6 * abs(float(n_exp(vector, shift0)))
            )
        for j in range(3):
            e = jnp.zeros(3).at[j].set(h)
            fd = (n_exp(vector, shift0 + e) - n_exp(vector, shift0 - e)) / (2 * h)
            assert float(grad_s[j]) == pytest.approx(float(fd), rel=2e-3)


def test_corrected_counts_match_the_table_and_have_correct_gradients(grid):
    rng = np.random.default_rng(3)
    log_mass = rng.uniform(2.5, 6.0, 300)
    bins = np.arange(2.5, 6.01, 0.5)
    age = PowerLawLogAge(TRUTH["alpha_T"], *MODEL.log_age_range)
    av = PiecewiseConstantAV(MODEL.av_edges, TRUTH["av_weights"])
    p_corr = p_corr_log_mass(grid, age, av)
    table = corrected_counts(
        log_mass,
        lambda x: interpolate_marginal(grid.log_mass, p_corr, x),
        bins,
        quantity="log_mass",
        clip=0.05,
        min_mean=None,
    )
    ours = corrected_bin_counts(MODEL, TRUTH, grid, log_mass, bins, quantity="log_mass", clip=0.05)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(table["n_corr"]), rtol=1e-5)
    with jax.enable_x64(True):
        g64 = _grid64(grid)

        def total(alpha_t, shift_av):
            params = {**TRUTH, "alpha_T": alpha_t}
            return jnp.sum(
                corrected_bin_counts(
                    MODEL,
                    params,
                    g64,
                    log_mass,
                    bins,
                    shift=jnp.stack([0.0, 0.0, shift_av]),
                    clip=0.05,
                )
            )

        grads = jax.grad(total, argnums=(0, 1))(-0.8, 0.05)
        h = 1e-5
        assert float(grads[0]) == pytest.approx(
            float((total(-0.8 + h, 0.05) - total(-0.8 - h, 0.05)) / (2 * h)), rel=1e-3
        )
        assert float(grads[1]) == pytest.approx(
            float((total(-0.8, 0.05 + h) - total(-0.8, 0.05 - h)) / (2 * h)), rel=1e-3
        )
        assert (
            float(grads[1]) > 0
        )  # more extinction assumed -> lower completeness -> more corrected clusters


def test_fisher_forecast_matches_the_spread_of_simulated_estimates(grid):
    """Simulation with known truth: Fisher σ vs the scatter and the Laplace σ of per-catalogue
    estimates."""
    fisher = fisher_information(MODEL, TRUTH, grid, n_total=6000)
    n_obs = int(round(fisher.n_expected))
    estimates, laplace = [], []
    for k in range(16):
        catalogue = simulate_catalogue(MODEL, TRUTH, SELECTION, n_obs=n_obs, seed=500 + k)
        fit = maximum_likelihood(MODEL, catalogue, grid, init=TRUTH)
        assert fit.converged
        estimates.append(fit.vector)
        laplace.append([fit.sigma(n) for n in fit.names])
    estimates, laplace = np.asarray(estimates), np.asarray(laplace)
    for i, name in enumerate(fit.names):
        predicted = fisher.sigma(name)
        # the observed-information (Laplace) σ of each catalogue scatters tightly around the
        # expected one
        assert np.median(laplace[:, i]) == pytest.approx(predicted, rel=0.12), name
        # and the estimates scatter by about σ (16 catalogues: the sample sd is good to ~18%)
        if (
            name != "log_M_break"
        ):  # a strongly non-Gaussian likelihood: only its Laplace σ is compared
            assert 0.6 < estimates[:, i].std(ddof=1) / predicted < 1.4, name
            assert (
                abs(estimates[:, i].mean() - fisher_truth(name))
                < 3 * predicted / np.sqrt(len(estimates)) + 0.3 * predicted
            )
    # σ shrinks as the survey deepens, and N_exp grows
    forecast = fisher_forecast(
        MODEL, TRUTH, grid, [-0.5, 0.0, 1.0], n_total=6000, parameters=["alpha_M"]
    )
    assert np.all(np.diff(forecast["sigma_alpha_M"]) < 0) and np.all(
        np.diff(forecast["n_expected"]) > 0
    )
    assert forecast["sigma_alpha_M"][1] == pytest.approx(fisher.sigma("alpha_M"), rel=1e-6)


def fisher_truth(name):
    if name.startswith("av_weights"):
        return TRUTH["av_weights"][int(name[len("av_weights[") : -1])]
    return TRUTH[name]


def test_shift_sensitivity_matches_refitting(grid):
    catalogue = simulate_catalogue(MODEL, TRUTH, SELECTION, n_obs=800, seed=11)
    fit = maximum_likelihood(MODEL, catalogue, grid, init=TRUTH)
    derivative = shift_sensitivity(MODEL, catalogue, grid, fit)
    h = 0.01
    for j in (0, 2):
        shift = np.zeros(3)
        shift[j] = h
        up = maximum_likelihood(MODEL, catalogue, grid, shift=shift, init=fit.params)
        down = maximum_likelihood(MODEL, catalogue, grid, shift=-shift, init=fit.params)
        for name in ("alpha_M", "alpha_T"):
            i = fit.names.index(name)
            finite = (up.vector[i] - down.vector[i]) / (2 * h)
            assert derivative[name][j] == pytest.approx(finite, rel=0.05, abs=0.02), (name, j)
    # a deeper survey than assumed leaves too many faint clusters unexplained: the fitted slope
    # steepens
    assert derivative["alpha_M"][0] > 0


def test_bad_inputs(grid):
    with pytest.raises(ValueError, match="shape \\(3,\\)"):
        detection_fraction_shifted(MODEL, TRUTH, grid, (0.1, 0.0))
    with pytest.raises(KeyError, match="n_total"):
        fisher_information(MODEL, TRUTH, grid)
    with pytest.raises(KeyError, match="log10_N"):
        expected_detected(MODEL, TRUTH, grid)
    with pytest.raises(ValueError, match="measurement errors"):
        maximum_likelihood(
            PopulationModel(measurement_error="latent"),
            {"log_mass": [3.0], "log_age": [7.0], "av": [0.5]},
            grid,
        )
    with pytest.raises(ValueError, match="finite"):
        corrected_bin_counts(MODEL, TRUTH, grid, [3.0, np.nan], [2.0, 4.0])
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        blind = SelectionGrid.from_arrays(
            grid.log_mass, grid.log_age, grid.av, np.zeros(grid.shape)
        )
        fisher_information(
            MODEL, TRUTH, blind, n_total=1e4
        )  # a survey that detects nothing constrains nothing
