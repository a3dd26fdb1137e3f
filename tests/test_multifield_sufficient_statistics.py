"""The many-field sampler's likelihood from sufficient statistics equals the per-cluster form."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomp.demographics import (
    MultiFieldModel,
    PopulationModel,
    SelectionGrid,
    simulate_catalogue,
    stack_fields,
)
from jaxcomp.demographics.multifield_model import field_log_terms, field_summary_log_likelihoods
from jaxcomp.demographics.sufficient_statistics import is_summarisable, summarise_catalogue
from jaxcomp.errors import InputError
from jaxcomp.selection.synthetic import LogisticSelection

SCHECHTER = PopulationModel(log_age_range=(6.0, 9.5))
POWER_LAW = PopulationModel(mass="power_law", log_age_range=(6.0, 9.5))
TRUE = {"alpha_M": -2.0, "log_M_break": 5.3, "alpha_T": -0.8, "av_weights": np.full(4, 0.25)}
PARAMS = {
    "alpha_M": np.array([-2.1, -1.7]),
    "log_M_break": np.array([4.6, 5.5]),
    "alpha_T": np.array([-0.7, -1.2]),
    "av_weights": np.array([[0.25] * 4, [0.5, 0.3, 0.15, 0.05]]),
}


@pytest.fixture(scope="module")
def fields():
    catalogues, grids = [], []
    for f, (shift, n) in enumerate(zip((0.0, 1.5), (80, 50))):
        selection = LogisticSelection(log_mass_50_young=2.5 + 0.4 * shift, age_slope=0.6)
        grids.append(SelectionGrid.from_selection(selection, shape=(31, 21, 7)))
        catalogues.append(simulate_catalogue(SCHECHTER, TRUE, selection, n_obs=n, seed=10 + f))
    return catalogues, grids


@pytest.mark.parametrize("population", [SCHECHTER, POWER_LAW], ids=["schechter", "power_law"])
def test_summed_likelihood_and_gradient_equal_the_per_cluster_sum(fields, population):
    catalogues, grids = fields
    model = MultiFieldModel(population, "none")
    params = (
        PARAMS
        if population.mass == "schechter"
        else {k: v for k, v in PARAMS.items() if k != "log_M_break"}
    )
    with jax.enable_x64(True):
        params = {k: jnp.asarray(np.asarray(v), jnp.float64) for k, v in params.items()}
        data, grid = stack_fields(["a", "b"], catalogues, grids, model)
        assert data.summary is not None
        np.testing.assert_array_equal(np.asarray(data.summary.n_objects), [80, 50])
        np.testing.assert_array_equal(np.asarray(data.summary.av_counts).sum(axis=1), [80, 50])

        def per_cluster(p):
            terms, alpha = field_log_terms(model, p, data, grid)
            return jnp.sum(terms, axis=1) - data.mask.sum(axis=1) * jnp.log(alpha)

        def summed(p):
            return field_summary_log_likelihoods(model, p, data, grid)[0]

        np.testing.assert_allclose(summed(params), per_cluster(params), rtol=1e-13)
        reference = jax.grad(lambda p: jnp.sum(per_cluster(p)))(params)
        gradient = jax.grad(lambda p: jnp.sum(summed(p)))(params)
        for name in params:
            np.testing.assert_allclose(gradient[name], reference[name], rtol=1e-9, atol=1e-9)


def test_only_exact_exponential_family_catalogues_are_summarised(fields):
    catalogues, grids = fields
    for population in (
        dataclasses.replace(SCHECHTER, measurement_error="samples"),
        dataclasses.replace(SCHECHTER, age="broken_power_law"),
        dataclasses.replace(SCHECHTER, mass_dependent_age=True),
    ):
        assert not is_summarisable(population)
        with pytest.raises(ValueError, match="no catalogue summary"):
            summarise_catalogue(population, np.zeros((1, 3)))
    theta = np.array([[3.0, 7.0, 0.5], [9.0, 7.0, 0.5]])  # log_mass 9 outside [2, 8]
    assert summarise_catalogue(SCHECHTER, theta) is None
    assert summarise_catalogue(SCHECHTER, theta, mask=[True, False]).n_objects == 1
    model = MultiFieldModel(SCHECHTER, "none")
    data, grid = stack_fields(["a", "b"], catalogues, grids, model)
    with pytest.raises(InputError, match="no catalogue summary"):
        field_summary_log_likelihoods(model, PARAMS, dataclasses.replace(data, summary=None), grid)
