"""Centred and non-centred per-field values of the multi-field model define the same posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density

from jaxcomp.demographics import (
    MultiFieldFitter,
    MultiFieldModel,
    PopulationModel,
    SelectionGrid,
    simulate_catalogue,
    stack_fields,
)
from jaxcomp.demographics.multifield_model import multifield_model
from jaxcomp.errors import InputError
from jaxcomp.selection.synthetic import LogisticSelection

#: The log-joint test's model: power laws and the piecewise p(A_V) (centred A_V log-odds).
PIECEWISE = PopulationModel(mass="power_law", age="power_law", log_age_range=(6.0, 9.5))
#: The NUTS comparison's model: two field parameters (alpha_M, alpha_T), fixed p(A_V).
POWER_LAW = PopulationModel(mass="power_law", age="power_law", av="fixed", log_age_range=(6.0, 9.5))
AV_WEIGHTS = np.array([0.3, 0.3, 0.2, 0.2])


def _fields(population, truths, sizes, seed=0, shape=(41, 26, 7)):
    catalogues, grids = [], []
    for f, (truth, n) in enumerate(zip(truths, sizes)):
        selection = LogisticSelection(log_mass_50_young=2.5 + 0.3 * f, age_slope=0.6)
        grids.append(SelectionGrid.from_selection(selection, shape=shape))
        catalogues.append(simulate_catalogue(population, truth, selection, n_obs=n, seed=seed + f))
    return catalogues, grids


@pytest.fixture(scope="module")
def three_fields():
    truth = {"alpha_M": -2.0, "alpha_T": -0.8, "av_weights": AV_WEIGHTS}
    return _fields(PIECEWISE, [truth] * 3, (40, 30, 50), shape=(21, 16, 7))


def test_centred_log_joint_is_the_non_centred_one_with_the_jacobian(three_fields):
    """ln p_centred(θ) = ln p_non-centred(z = (θ - mean_f)/scatter) - Σ ln scatter, with a
    covariate on alpha_T and the A_V log-odds; the per-field values are the same sites."""
    catalogues, grids = three_fields
    covariate = np.array([-1.0, 0.0, 2.0])
    z = {
        "alpha_M": np.array([0.5, -1.0, 0.2]),
        "alpha_T": np.array([0.0, 1.0, -1.0]),
        "av_logit": np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5], [0.0, -0.3, 0.2]]),
    }
    population = {
        "alpha_M_mean": -2.0,
        "alpha_M_scatter": 0.1,
        "alpha_T_mean": -0.8,
        "alpha_T_slope": 0.3,
        "alpha_T_scatter": 0.05,
        "av_logit_mean": np.array([0.2, -0.1, 0.3]),
        "av_logit_scatter": 0.4,
    }
    means = {
        "alpha_M": -2.0,
        "alpha_T": -0.8 + 0.3 * covariate,
        "av_logit": population["av_logit_mean"],
    }
    theta = {k: means[k] + population[f"{k}_scatter"] * v for k, v in z.items()}
    non_centred = {**population, **{f"{k}_z": v for k, v in z.items()}}
    centred = {**population, **theta}
    log_jacobian = sum(
        np.log(population[f"{k}_scatter"]) * np.size(v) for k, v in z.items()
    )  # Σ_f Σ_k ln scatter
    totals, traces, kinds = {}, {}, {}
    with jax.enable_x64(True):
        data, grid = stack_fields(
            ["a", "b", "c"],
            catalogues,
            grids,
            MultiFieldModel(PIECEWISE, covariate_parameter="alpha_T"),
            covariate=covariate,
        )  # the stacked data do not depend on the parametrisation
        for form, values in (("non_centred", non_centred), ("centred", centred)):
            model = MultiFieldModel(
                PIECEWISE, "partial", covariate_parameter="alpha_T", parametrisation=form
            )
            values = {k: jnp.asarray(v, jnp.float64) for k, v in values.items()}

            @jax.jit
            def joint(values, data, grid, model=model):
                total, trace = log_density(multifield_model, (model, data, grid), {}, values)
                return total, {k: site["value"] for k, site in trace.items()}

            total, traces[form] = joint(values, data, grid)
            totals[form] = float(total)
            kinds[form] = {k: site["type"] for k, site in _prior_trace(model).items()}
    assert totals["centred"] == pytest.approx(totals["non_centred"] - log_jacobian, rel=1e-12)
    assert kinds["centred"]["alpha_M"] == "sample" and "alpha_M_z" not in kinds["centred"]
    assert kinds["non_centred"]["alpha_M"] == "deterministic"
    for name in ("alpha_M", "alpha_T", "av_weights", "detected_fraction"):
        np.testing.assert_allclose(
            np.asarray(traces["centred"][name]),
            np.asarray(traces["non_centred"][name]),
            rtol=1e-12,
        )
    np.testing.assert_allclose(
        np.asarray(traces["centred"]["alpha_T"]), theta["alpha_T"], rtol=1e-12
    )


def test_parametrisation_only_changes_partial_pooling_and_bad_values_are_refused():
    for pooling in ("complete", "none"):
        sites = []
        for form in ("non_centred", "centred"):
            model = MultiFieldModel(POWER_LAW, pooling, parametrisation=form)
            trace = jax.tree.map(np.asarray, _prior_trace(model))
            sites.append({k: (v["type"], np.shape(v["value"])) for k, v in trace.items()})
        assert sites[0] == sites[1]
    with pytest.raises(InputError, match=r"parametrisation must be one of .*'centered'"):
        MultiFieldModel(POWER_LAW, parametrisation="centered")
    with pytest.raises(InputError, match="parametrisation"):
        MultiFieldModel(POWER_LAW, parametrisation=None)


def _prior_trace(model, n_fields=3):
    import numpyro

    with numpyro.handlers.seed(rng_seed=0):
        trace = numpyro.handlers.trace(model.sample_field_parameters).get_trace(
            n_fields, jnp.zeros(n_fields)
        )
    return {k: {"type": v["type"], "value": v["value"]} for k, v in trace.items()}


@pytest.fixture(scope="module")
def nuts_fits():
    """Both parametrisations on four fields of 400 clusters whose alpha_M, alpha_T scatter
    about the population (0.15, 0.1): the same data, sampler settings and seed (the A_V
    log-odds' centred sites are checked by the log-joint test)."""
    rng = np.random.default_rng(17)
    truths = [
        {
            "alpha_M": -2.0 + 0.15 * rng.standard_normal(),
            "alpha_T": -0.8 + 0.1 * rng.standard_normal(),
        }
        for _ in range(4)
    ]
    catalogues, grids = _fields(POWER_LAW, truths, (400,) * 4, seed=40, shape=(31, 21, 7))
    fits, starts = {}, {}
    for form in ("non_centred", "centred"):
        fitter = MultiFieldFitter(
            MultiFieldModel(POWER_LAW, "partial", parametrisation=form),
            num_warmup=200,
            num_samples=250,
            num_chains=2,
            target_accept_prob=0.95,
        )
        data = fitter.prepare([f"f{f}" for f in range(4)], catalogues, grids, seed=3)
        fitter.compile(data)
        with jax.enable_x64(True):
            starts[form] = fitter._constrain(fitter._init_params(data, 3), data, fitter.grid)
        fits[form] = fitter.fit(data, seed=3)
    return fits, starts


def test_both_parametrisations_start_at_the_same_point_and_agree_on_the_posterior(nuts_fits):
    fits, starts = nuts_fits
    for name in ("alpha_M_mean", "alpha_M_scatter", "alpha_M", "alpha_T"):
        np.testing.assert_allclose(
            np.asarray(starts["centred"][name]), np.asarray(starts["non_centred"][name]), rtol=1e-9
        )
    a, b = fits["non_centred"], fits["centred"]
    assert a.field_names == b.field_names and b.idata.posterior["alpha_M"].dims[-1] == "field"
    for name in ("alpha_M_mean", "alpha_T_mean", "alpha_M", "alpha_T", "alpha_M_scatter"):
        mean_a, mean_b = (np.mean(r.draws(name), axis=0) for r in (a, b))
        mcse = np.hypot(*(_mcse(r, name) for r in (a, b)))
        assert np.all(np.abs(mean_a - mean_b) < 4.0 * mcse + 1e-3), (name, mean_a, mean_b, mcse)
    # downstream: the per-cluster log-likelihood for LOO is there in both
    for result in (a, b):
        assert result.idata.log_likelihood["obs"].shape[-1] == 1600


def _mcse(result, name):
    import arviz as az

    return np.asarray(az.mcse(result.idata, var_names=[name], method="mean")[name])
