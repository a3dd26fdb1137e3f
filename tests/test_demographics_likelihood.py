"""The selection-normalised likelihood: normalising integral, gradients, data preparation (no
NUTS)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.table import Table

from jaxcomp.demographics import (
    LikelihoodGrid,
    PopulationModel,
    SelectionGrid,
    detection_fraction,
    expected_number,
    log_likelihood,
    pointwise_log_likelihood,
    prepare_data,
    sample_population,
    smoothed_selection,
)
from jaxcomp.selection.synthetic import LogisticSelection

SELECTION = LogisticSelection()
TRUTH = {
    "alpha_M": -2.0,
    "log_M_break": 4.8,
    "alpha_T": -0.9,
    "alpha_T_young": -0.2,
    "log_T_break": 7.6,
    "beta_T": 0.3,
    "log10_N": 5.0,
    "av_weights": np.array([0.4, 0.3, 0.2, 0.1]),
}


@pytest.fixture(scope="module")
def grid() -> SelectionGrid:
    return SelectionGrid.from_selection(SELECTION, shape=(241, 121, 13))


FULL = dict(
    mass="schechter",
    age="broken_power_law",
    mass_dependent_age=True,
    likelihood="poisson",
    log_age_range=(6.0, 9.5),
)


@pytest.fixture(scope="module")
def population() -> np.ndarray:
    """Draws from the most general population (one compiled sampler for the whole module)."""
    return sample_population(PopulationModel(**FULL), TRUTH, 200_000, seed=3)


def _catalogue(theta, width=None) -> Table:
    """The first rows of ``population``, shifted up in mass so that they look detected."""
    theta = np.array(theta[:40])
    table = Table(
        {
            "log_mass": np.clip(theta[:, 0] + 1.0, 2.1, 7.9),
            "log_age": theta[:, 1],
            "av": np.clip(theta[:, 2], 0.05, 2.95),
        }
    )
    if width:
        for name in ("log_mass", "log_age", "av"):
            table[f"{name}_lo"] = table[name] - width
            table[f"{name}_hi"] = table[name] + width
    return table


def _params(model, values=TRUTH):
    return {k: jnp.asarray(values[k], dtype=float) for k in model.parameter_names}


def test_detection_fraction_and_n_exp_match_monte_carlo(grid, population):
    """α(Λ) = ∫ p_obs p(θ|Λ) dθ from the grid quadrature equals a Monte Carlo average of p_obs.

    Schechter CMF, broken-power-law CAF with a mass-dependent slope, non-uniform p(A_V).
    """
    model = PopulationModel(**FULL)
    with jax.enable_x64(True):
        lgrid = LikelihoodGrid.build(grid, model.av_edges)
        n_exp = float(jax.jit(expected_number, static_argnums=0)(model, _params(model), lgrid))
    alpha = n_exp / 10.0 ** TRUTH["log10_N"]  # N_exp = N α
    theta = population
    p_grid = np.asarray(
        grid.interpolate(*(jnp.asarray(theta[:, j], jnp.float32) for j in range(3)))
    )
    p_true = SELECTION(*theta.T)
    se = p_grid.std() / np.sqrt(len(p_grid))
    assert 0.005 < alpha < 0.5
    assert abs(alpha - p_grid.mean()) < 4 * se  # the quadrature of the gridded p_obs
    assert abs(alpha - p_true.mean()) < 4 * se + 0.01 * alpha  # and the analytic surface


def test_log_likelihood_forms_and_pointwise_sum(grid, population):
    catalogue = _catalogue(population)
    theta = np.stack([np.asarray(catalogue[c]) for c in ("log_mass", "log_age", "av")], axis=-1)
    n = len(theta)
    with jax.enable_x64(True):
        for likelihood in ("marginal", "poisson"):
            model = PopulationModel(likelihood=likelihood)
            lgrid = LikelihoodGrid.build(grid, model.av_edges)
            data = prepare_data(catalogue, model)

            @jax.jit
            def evaluate(params, data, lgrid):
                return (
                    log_likelihood(model, params, data, lgrid),
                    pointwise_log_likelihood(model, params, data, lgrid),
                    detection_fraction(model, params, lgrid),
                    model.log_density(params, data.theta),
                )

            total, pointwise, alpha, density = (
                np.asarray(v) for v in evaluate(_params(model), data, lgrid)
            )
            assert pointwise.shape == (n,)
            assert pointwise.sum() == pytest.approx(total, rel=1e-10)
            if likelihood == "marginal":
                expected = density.sum() - n * np.log(alpha)
            else:
                n_total = 10.0 ** TRUTH["log10_N"]
                expected = n * np.log(n_total) + density.sum() - n_total * alpha
            assert float(total) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "mass, age, form",
    [
        ("schechter", "power_law", "none"),
        ("schechter", "broken_power_law", "samples"),
        ("power_law", "broken_power_law", "latent"),
        ("power_law", "power_law", "none"),
    ],
)
def test_one_pass_likelihood_equals_the_separate_terms(grid, population, mass, age, form):
    """log_likelihood (normalisers shared with the quadrature) = object terms + detection fraction,
    with gradients."""
    from jaxcomp.demographics.likelihood import _combine, object_log_terms

    model = PopulationModel(
        mass=mass, age=age, likelihood="poisson", measurement_error=form, log_age_range=(6.0, 9.5)
    )
    catalogue = _catalogue(population, width=0.1)
    with jax.enable_x64(True):
        lgrid = LikelihoodGrid.build(grid, model.av_edges, log_age_range=model.log_age_range)
        data = prepare_data(catalogue, model, n_object_samples=8)
        theta = data.theta + 0.01 if form == "latent" else None

        def separate(params):
            terms = object_log_terms(model, params, data, lgrid, theta)
            return _combine(model, params, terms, detection_fraction(model, params, lgrid))

        def one_pass(params):
            return log_likelihood(model, params, data, lgrid, theta)

        params = _params(model)
        expected, expected_grad = jax.jit(jax.value_and_grad(separate))(params)
        value, gradient = jax.jit(jax.value_and_grad(one_pass))(params)
        assert float(value) == pytest.approx(float(expected), rel=1e-10)
        for name in params:
            np.testing.assert_allclose(
                np.asarray(gradient[name]), np.asarray(expected_grad[name]), rtol=1e-8, atol=1e-8
            )


@pytest.mark.parametrize("form", ["none", "samples"])
def test_gradient_matches_finite_differences(grid, population, form):
    """d ln L / d Λ (all hyperparameters of the most general model) against central differences."""
    model = PopulationModel(**FULL, measurement_error=form)
    catalogue = _catalogue(population, width=0.1)
    with jax.enable_x64(True):
        lgrid = LikelihoodGrid.build(grid, model.av_edges, mass_stride=4, age_stride=2)
        data = prepare_data(catalogue, model, n_object_samples=16)

        def f(flat):
            params = {
                "alpha_M": flat[0],
                "log_M_break": flat[1],
                "alpha_T": flat[2],
                "alpha_T_young": flat[3],
                "log_T_break": flat[4],
                "beta_T": flat[5],
                "log10_N": flat[6],
                "av_weights": flat[7:11],
            }
            return log_likelihood(model, params, data, lgrid)

        x0 = jnp.asarray([-2.0, 4.8, -0.9, -0.2, 7.63, 0.3, 3.0, 0.4, 0.3, 0.2, 0.1])
        h = 1e-5
        steps = h * jnp.eye(x0.shape[0])

        @jax.jit
        def value_grad_and_differences(x0):
            value, gradient = jax.value_and_grad(f)(x0)
            values = jax.vmap(f)(jnp.concatenate([x0 + steps, x0 - steps]))
            return value, gradient, (values[: x0.shape[0]] - values[x0.shape[0] :]) / (2 * h)

        value, gradient, numeric = value_grad_and_differences(x0)
        assert np.isfinite(float(value))
        assert gradient.dtype == jnp.float64
        np.testing.assert_allclose(
            np.asarray(gradient),
            np.asarray(numeric),
            rtol=1e-5,
            atol=1e-5 * max(1.0, abs(float(value))),
        )


def test_prepare_data_sigmas_supports_and_samples():
    catalogue = Table(
        {
            "log_mass": [3.0, 4.0, 5.0],
            "log_mass_lo": [2.8, 4.0, np.nan],
            "log_mass_hi": [3.4, 4.0, np.nan],
            "log_age": [6.0, 7.0, 8.0],
            "log_age_lo": [6.0, 6.9, 7.7],
            "log_age_hi": [6.2, 7.1, 8.3],
            "av": [0.0, 1.0, 3.5],
            "av_lo": [0.0, 0.8, 3.0],
            "av_hi": [0.2, 1.2, 4.0],
        }
    )
    with pytest.raises(ValueError, match="outside the population support"):
        prepare_data(catalogue, PopulationModel())
    exact = prepare_data(catalogue, PopulationModel(), av_out_of_range="clip")
    assert float(exact.theta[2, 2]) == 3.0
    model = PopulationModel(measurement_error="samples", sigma_floor=(0.05, 0.1, 0.05))
    data = prepare_data(catalogue, model, n_object_samples=200, seed=1)
    sig = np.asarray(data.sigma_lo)
    assert sig[0, 0] == pytest.approx(0.3) and sig[1, 0] == pytest.approx(
        0.05
    )  # (hi - lo)/2, then the floor
    assert sig[2, 0] == pytest.approx(np.median([0.3, 0.0]))  # missing range: median of the others
    assert sig[1, 1] == pytest.approx(0.1)  # floor on log_age
    samples = np.asarray(data.samples)
    assert samples.shape == (3, 200, 3)
    assert (
        samples[..., 1].min() >= 6.0 and samples[..., 2].max() <= 3.0
    )  # truncated to the supports
    assert abs(samples[1, :, 0].mean() - 4.0) < 0.02 and abs(samples[1, :, 0].std() - 0.05) < 0.01
    asym = prepare_data(
        catalogue, PopulationModel(measurement_error="latent", asymmetric_errors=True)
    )
    assert float(asym.sigma_lo[0, 0]) == pytest.approx(0.2) and float(
        asym.sigma_hi[0, 0]
    ) == pytest.approx(0.4)


def test_smoothed_selection_is_the_convolution_of_the_data_selection():
    selection = LogisticSelection.linear()
    smooth = smoothed_selection(selection, (0.3, 0.0, 0.0), n_nodes=24)
    rng = np.random.default_rng(0)
    m, t, a = 3.0, 7.0, 1.0
    draws = selection(m + 0.3 * rng.standard_normal(400_000), t, a)
    assert float(smooth(m, t, a)) == pytest.approx(draws.mean(), abs=3e-3)
    assert float(smooth(m, t, a)) != pytest.approx(float(selection(m, t, a)), abs=1e-3)


def test_model_options_are_validated():
    with pytest.raises(ValueError, match="mass must be"):
        PopulationModel(mass="lognormal")
    with pytest.raises(ValueError, match="unknown prior"):
        PopulationModel(priors={"alpha": (0, 1)})
    model = PopulationModel(
        age="broken_power_law",
        mass_dependent_age=True,
        likelihood="poisson",
        priors={"alpha_M": (-2.5, -1.5)},
    )
    assert model.parameter_names == (
        "alpha_M",
        "log_M_break",
        "alpha_T",
        "alpha_T_young",
        "log_T_break",
        "beta_T",
        "log10_N",
        "av_weights",
    )
    assert model.prior_bounds("alpha_M") == (-2.5, -1.5)
    assert hash(model) == hash(
        PopulationModel(
            age="broken_power_law",
            mass_dependent_age=True,
            likelihood="poisson",
            priors={"alpha_M": (-2.5, -1.5)},
        )
    )
    draw = model.sample_prior(0)
    assert -2.5 <= float(draw["alpha_M"]) <= -1.5 and np.isclose(np.sum(draw["av_weights"]), 1.0)


def test_grid_cropped_to_the_support_gives_the_same_detection_fraction(grid):
    model = PopulationModel(
        mass="schechter", age="power_law", log_mass_range=(3.7, 8.0), log_age_range=(6.0, 8.3)
    )
    with jax.enable_x64(True):
        full = LikelihoodGrid.build(grid, model.av_edges)
        cropped = LikelihoodGrid.build(
            grid,
            model.av_edges,
            log_mass_range=model.log_mass_range,
            log_age_range=model.log_age_range,
        )
        alpha = jax.jit(detection_fraction, static_argnums=0)
        params = _params(model)
        assert cropped.p_obs_binned.shape[0] < full.p_obs_binned.shape[0]
        assert float(cropped.log_mass[0]) <= 3.7 < float(cropped.log_mass[1])
        assert float(cropped.log_age[-2]) < 8.3 <= float(cropped.log_age[-1])
        assert float(alpha(model, params, cropped)) == pytest.approx(
            float(alpha(model, params, full)), rel=1e-12
        )
