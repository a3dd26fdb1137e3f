"""Population distributions: normalisation, sampling, gradients, validation, pytree behaviour."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from jaxcomp.demographics import (
    BrokenPowerLawLogAge,
    PiecewiseConstantAV,
    PowerLawLogAge,
    PowerLawLogMass,
    SchechterLogMass,
)

LN10 = np.log(10.0)


def _np_power(alpha):
    return lambda x: np.exp((alpha + 1) * LN10 * x)


def _np_schechter(alpha, log_break):
    return lambda x: np.exp((alpha + 1) * LN10 * x - 10.0 ** (x - log_break))


def _np_broken(alpha, log_break, alpha_young=0.0):
    return lambda x: np.exp(
        np.where(x < log_break, alpha_young + 1, alpha + 1) * LN10 * (x - log_break)
    )


def _np_histogram(edges, weights):
    edges, weights = np.asarray(edges, float), np.asarray(weights, float)
    density = weights / weights.sum() / np.diff(edges)
    return lambda x: density[
        np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(weights) - 1)
    ]


# name: (constructor, kwargs, independent NumPy density up to a constant, breakpoints)
CASES = {
    "adamo_mass": (PowerLawLogMass, dict(alpha=-2.09), _np_power(-2.09), [2.0, 8.0]),
    "flat_mass": (
        PowerLawLogMass,
        dict(alpha=-1.0, log_mass_min=3.0, log_mass_max=6.5),
        _np_power(-1.0),
        [3.0, 6.5],
    ),
    "rising_mass": (PowerLawLogMass, dict(alpha=0.5), _np_power(0.5), [2.0, 8.0]),
    "tang_mass": (
        SchechterLogMass,
        dict(alpha=-2.16, log_mass_break=5.61),
        _np_schechter(-2.16, 5.61),
        [2.0, 8.0],
    ),
    "schechter_low_break": (
        SchechterLogMass,
        dict(alpha=-1.5, log_mass_break=2.5),
        _np_schechter(-1.5, 2.5),
        [2.0, 8.0],
    ),
    "schechter_high_break": (
        SchechterLogMass,
        dict(alpha=-2.5, log_mass_break=9.0),
        _np_schechter(-2.5, 9.0),
        [2.0, 8.0],
    ),
    "adamo_age": (PowerLawLogAge, dict(alpha=-0.8), _np_power(-0.8), [6.0, 8.3]),
    "tang_age": (
        BrokenPowerLawLogAge,
        dict(),
        _np_broken(-1.41, 8.22),
        [5.0, 8.22, np.log10(1.5e10)],
    ),
    "break_outside": (
        BrokenPowerLawLogAge,
        dict(log_age_break=11.0),
        _np_broken(-1.41, 11.0),
        [5.0, np.log10(1.5e10)],
    ),
    "av_histogram": (
        PiecewiseConstantAV,
        dict(weights=[8.0, 4.0, 3.0, 2.0]),
        _np_histogram([0, 0.75, 1.5, 2.25, 3], [8, 4, 3, 2]),
        [0.0, 0.75, 1.5, 2.25, 3.0],
    ),
    "av_empty_bin": (
        PiecewiseConstantAV,
        dict(edges=[0.0, 0.5, 1.0, 3.0], weights=[1.0, 0.0, 2.0]),
        _np_histogram([0, 0.5, 1, 3], [1, 0, 2]),
        [0.0, 0.5, 1.0, 3.0],
    ),
}


def _quad(f, lo, hi, breakpoints):
    inner = [p for p in breakpoints if lo < p < hi]
    return integrate.quad(f, lo, hi, points=inner or None, limit=400, epsabs=0.0, epsrel=1e-12)[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_normalised_against_scipy_quad(name):
    cls, kwargs, f, breakpoints = CASES[name]
    lo, hi = breakpoints[0], breakpoints[-1]
    total = _quad(f, lo, hi, breakpoints)
    with jax.enable_x64(True):
        d = cls(**kwargs, validate_args=True)
        np.testing.assert_allclose(np.unique(np.asarray(d.breakpoints())), breakpoints, rtol=1e-12)
        x = np.linspace(lo, hi, 41)[1:-1] + 1e-3
        positive = f(x) > 0
        expected = np.log(f(x[positive]) / total)
        np.testing.assert_allclose(
            np.asarray(d.log_prob(x[positive])), expected, rtol=1e-6, atol=1e-6
        )
        # relative normalisation error < 1e-6
        assert np.max(np.abs(np.exp(np.asarray(d.log_prob(x[positive])) - expected) - 1)) < 1e-6
        # the CDF is the integral of the density
        for q in np.linspace(lo, hi, 5)[1:-1]:
            assert float(d.cdf(q)) == pytest.approx(
                _quad(f, lo, q, breakpoints) / total, rel=1e-6, abs=1e-12
            )
        # zero density outside the support (no warning without validation)
        unchecked = cls(**kwargs, validate_args=False)
        assert float(jnp.exp(unchecked.log_prob(lo - 0.1))) == 0.0
        assert float(jnp.exp(unchecked.log_prob(hi + 0.1))) == 0.0
        with pytest.warns(UserWarning, match="Out-of-support"):
            d.log_prob(hi + 0.1)


def test_schechter_normalisation_over_parameter_range():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        alphas, breaks = rng.uniform(-3.0, 0.0, 12), rng.uniform(1.0, 9.0, 12)
        log_norms = np.asarray(
            SchechterLogMass(jnp.asarray(alphas), jnp.asarray(breaks)).log_normaliser()
        )
        for alpha, log_break, log_norm in zip(alphas, breaks, log_norms):
            expected = _quad(_np_schechter(alpha, log_break), 2.0, 8.0, [])
            assert log_norm == pytest.approx(np.log(expected), abs=1e-9)


@pytest.mark.parametrize(
    "name",
    ["adamo_mass", "tang_mass", "schechter_high_break", "adamo_age", "tang_age", "av_empty_bin"],
)
def test_samples_follow_the_distribution(name):
    cls, kwargs, f, breakpoints = CASES[name]
    lo, hi = breakpoints[0], breakpoints[-1]
    with jax.enable_x64(True):
        d = cls(**kwargs)
        samples = np.asarray(d.sample(jax.random.PRNGKey(7), (20000,)))
        assert samples.shape == (20000,) and np.all((samples >= lo) & (samples <= hi))

        def cdf(x):
            return np.asarray(d.cdf(jnp.asarray(x)))  # checked against quad above

        assert stats.kstest(samples, cdf).pvalue > 1e-3
        # histogram of the samples against bin probabilities (chi-square)
        edges = np.linspace(lo, hi, 21)
        expected = np.diff(cdf(edges)) * samples.size
        counts, _ = np.histogram(samples, edges)
        use = expected > 5
        chi2 = np.sum((counts[use] - expected[use]) ** 2 / expected[use])
        assert stats.chi2.sf(chi2, use.sum() - 1) > 1e-3
        # icdf inverts cdf
        q = np.array([0.05, 0.3, 0.5, 0.9])
        np.testing.assert_allclose(np.asarray(d.cdf(d.icdf(q))), q, atol=1e-5)


def _finite_difference(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize(
    "make, theta0, values",
    [
        # PowerLawLogMass(alpha, log_mass_min, log_mass_max)
        (lambda t: PowerLawLogMass(t[0], t[1], t[2]), [-2.09, 2.5, 7.0], [3.7, 6.9]),
        # SchechterLogMass(alpha, log_mass_break, log_mass_min, log_mass_max)
        (lambda t: SchechterLogMass(t[0], t[1], t[2], t[3]), [-2.16, 5.61, 2.0, 8.0], [4.2, 5.9]),
        (lambda t: SchechterLogMass(t[0], t[1], t[2], t[3]), [-1.5, 4.0, 2.0, 6.0], [5.5]),
        # PowerLawLogAge(alpha, log_age_min, log_age_max)
        (lambda t: PowerLawLogAge(t[0], t[1], t[2]), [-0.8, 6.0, 8.3], [7.1]),
        # BrokenPowerLawLogAge(alpha, log_age_break, alpha_young, log_age_min, log_age_max)
        (
            lambda t: BrokenPowerLawLogAge(t[0], t[1], t[2], t[3], t[4]),
            [-1.41, 8.22, 0.0, 5.0, 10.1],
            [7.0, 8.9],
        ),
        # PiecewiseConstantAV weights
        (lambda t: PiecewiseConstantAV(weights=t), [8.0, 4.0, 3.0, 2.0], [0.3, 2.5]),
    ],
)
def test_log_prob_gradients_match_finite_differences(make, theta0, values):
    with jax.enable_x64(True):
        theta0 = jnp.asarray(theta0)
        f = jax.jit(lambda theta: make(theta).log_prob(jnp.asarray(values)))
        jacobian = np.asarray(jax.jit(jax.jacobian(f))(theta0))  # (n_values, n_params)
        assert np.all(np.isfinite(jacobian))
        for k in range(theta0.shape[0]):
            step = jnp.zeros_like(theta0).at[k].set(1.0)
            numeric = np.asarray(_finite_difference(lambda h: f(theta0 + h * step), 0.0))
            np.testing.assert_allclose(jacobian[:, k], numeric, rtol=1e-6, atol=1e-8)


def test_gradient_of_the_power_law_at_flat_slope_is_finite():
    with jax.enable_x64(True):
        for make in (PowerLawLogMass, PowerLawLogAge):

            def f(a):
                return make(a).log_prob(6.5 if make is PowerLawLogMass else 7.0)

            g = float(jax.grad(f)(-1.0))
            assert np.isfinite(g)
            assert g == pytest.approx(float(_finite_difference(f, -1.0, 1e-5)), rel=1e-6)
    g32 = jax.grad(lambda a: PowerLawLogMass(a).log_prob(4.0))(jnp.float32(-1.0))
    assert np.isfinite(float(g32))


def test_validation_rejects_bad_parameters():
    with pytest.raises(ValueError):
        PowerLawLogMass(-2.0, 5.0, 3.0, validate_args=True)
    with pytest.raises(ValueError):
        SchechterLogMass(jnp.nan, 5.0, validate_args=True)
    with pytest.raises(ValueError):
        BrokenPowerLawLogAge(log_age_min=9.0, log_age_max=6.0, validate_args=True)
    with pytest.raises(ValueError):
        PiecewiseConstantAV([0.0, 1.0, 3.0], [1.0, -1.0], validate_args=True)
    with pytest.raises(ValueError):
        PiecewiseConstantAV([0.0, 2.0, 1.0], [1.0, 1.0], validate_args=True)
    with pytest.raises(ValueError):
        PiecewiseConstantAV([0.0, 1.0, 3.0], [0.0, 0.0], validate_args=True)
    with pytest.raises(ValueError, match="one per bin"):
        PiecewiseConstantAV([0.0, 1.0, 3.0], [1.0, 1.0, 1.0])


def test_distributions_are_pytrees_for_jit_vmap_and_batches():
    @jax.jit
    def total_log_prob(distribution, x):
        return jnp.sum(distribution.log_prob(x))

    x = jnp.array([3.0, 4.0, 5.0])
    d = SchechterLogMass(-2.16, 5.61)
    np.testing.assert_allclose(total_log_prob(d, x), jnp.sum(d.log_prob(x)), rtol=1e-6)
    # a batch of slopes, by broadcasting and by vmap
    alphas = jnp.array([-2.5, -2.0, -1.5])
    batched = SchechterLogMass(alphas, 5.61)
    assert batched.batch_shape == (3,)
    by_vmap = jax.vmap(lambda a: SchechterLogMass(a, 5.61).log_prob(4.0))(alphas)
    np.testing.assert_allclose(batched.log_prob(4.0), by_vmap, rtol=1e-6)
    assert batched.sample(jax.random.PRNGKey(0), (5,)).shape == (5, 3)
    av = PiecewiseConstantAV(weights=jnp.ones((2, 4)))
    assert av.batch_shape == (2,)
    assert av.sample(jax.random.PRNGKey(1), (6,)).shape == (6, 2)


def test_default_precision_is_float32_and_finite():
    for d in (SchechterLogMass(-2.16, 5.61), BrokenPowerLawLogAge()):
        s = d.sample(jax.random.PRNGKey(0), (100,))
        assert s.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(d.log_prob(s))))


def test_numpyro_model_can_sample_population_parameters():
    import numpyro
    from numpyro.infer import Predictive

    def model():
        alpha = numpyro.sample("alpha", numpyro.distributions.Uniform(-3.0, -1.5))
        numpyro.sample("log_mass", SchechterLogMass(alpha, 5.0), sample_shape=(3,))

    draws = Predictive(model, num_samples=4)(jax.random.PRNGKey(0))
    assert draws["log_mass"].shape == (4, 3)


def test_import_changes_no_global_jax_config():
    code = (
        "import jax; before = jax.config.jax_enable_x64; import jaxcomp.demographics; "
        "assert jax.config.jax_enable_x64 == before == False; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
