"""The multi-field model with each field's selection ensemble (issue 18 in the issue-17 model)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer.util import log_density
from scipy.interpolate import RegularGridInterpolator
from scipy.special import logsumexp

from jaxcomp.demographics import (
    LikelihoodGrid,
    MultiFieldFitter,
    MultiFieldModel,
    PopulationModel,
    SelectionGrid,
    field_selection_diagnostics,
    log_likelihood,
    prepare_data,
    simulate_catalogue,
    stack_fields,
    stack_member_grids,
)
from jaxcomp.demographics.multifield_model import multifield_model
from jaxcomp.errors import InputError
from jaxcomp.selection.synthetic import LogisticSelection

# a power-law CMF: cheaper to compile than a Schechter's, the same likelihood code path
POPULATION = PopulationModel(mass="power_law", age="power_law", log_age_range=(6.0, 9.5))
TRUE = {
    "alpha_M": -2.0,
    "alpha_T": -0.8,
    "av_weights": np.array([0.3, 0.3, 0.2, 0.2]),
}
SHAPE = (31, 21, 5)
NAMES = ["deep", "shallow"]
#: per field: the 50% mass limit of the field and its members' offsets from it [dex]
DEPTHS = (2.6, 3.2)
OFFSETS = (-0.08, 0.0, 0.08)


@pytest.fixture(scope="module")
def fields():
    """Two fields of different depth; each with 3 members differing in their mass limit."""
    catalogues, member_grids, single_grids = [], [], []
    for f, (depth, n) in enumerate(zip(DEPTHS, (90, 60))):
        grids = [
            SelectionGrid.from_selection(
                LogisticSelection(log_mass_50_young=depth + d, age_slope=0.6), shape=SHAPE
            )
            for d in OFFSETS
        ]
        member_grids.append(stack_member_grids(grids))
        single_grids.append(grids)
        truth = LogisticSelection(log_mass_50_young=depth, age_slope=0.6)
        catalogues.append(simulate_catalogue(POPULATION, TRUE, truth, n_obs=n, seed=10 + f))
    return catalogues, member_grids, single_grids


def _log_p_obs(grid: SelectionGrid, theta: np.ndarray) -> np.ndarray:
    """ln p_obs by scipy's trilinear interpolation (independent of SelectionGrid.interpolate)."""
    axes = tuple(np.asarray(getattr(grid, a), np.float64) for a in ("log_mass", "log_age", "av"))
    interpolator = RegularGridInterpolator(axes, np.asarray(grid.p_obs, np.float64))
    return np.log(np.maximum(interpolator(theta), 1e-30))


def _prior_points(model, data, grid, n_points, seed=0, selection_uncertainty="none"):
    """Sample-site values (and the per-field parameters) of prior draws of the model."""
    model_fn = functools.partial(
        multifield_model, model, selection_uncertainty=selection_uncertainty
    )
    points = []
    for k in range(n_points):
        with numpyro.handlers.block():
            trace = numpyro.handlers.trace(numpyro.handlers.seed(model_fn, seed + k)).get_trace(
                data, grid
            )
        sites = {n: s["value"] for n, s in trace.items() if s["type"] == "sample"}
        per_field = {
            n: np.asarray(trace[n]["value"]) for n in list(model.field_parameters) + ["av_weights"]
        }
        points.append((sites, per_field))
    return points


@pytest.fixture(scope="module")
def densities():
    """Jitted joint log densities (value and gradient) of the "none" and "ensemble" models, the
    grid an argument (one compilation each for every grid of one shape)."""
    model = MultiFieldModel(POPULATION, "partial")
    out = {}
    for mode in ("none", "ensemble"):
        model_fn = functools.partial(multifield_model, model, selection_uncertainty=mode)
        out[mode] = jax.jit(
            jax.value_and_grad(lambda p, d, g, f=model_fn: log_density(f, (d, g), {}, p)[0])
        )
    return model, out


def _brute_force(catalogue, grid: SelectionGrid, params, single) -> float:
    """The single-field ln L of one unpadded catalogue and one grid, plus Σ ln p_obs(θ_i)."""
    data = prepare_data(catalogue, POPULATION)
    likelihood_grid = LikelihoodGrid.build(
        grid,
        POPULATION.av_edges,
        log_mass_range=POPULATION.log_mass_range,
        log_age_range=POPULATION.log_age_range,
    )
    log_l = float(single(params, data, likelihood_grid))
    return log_l, log_l + float(np.sum(_log_p_obs(grid, np.asarray(data.theta))))


def test_identical_members_give_the_none_posterior(fields, densities):
    """M copies of one grid: the ensemble density is the "none" density plus the constant
    Σ ln p_obs(θ_i) (its gradient is the same): the same posterior."""
    catalogues, _, single_grids = fields
    model, density = densities
    plain = [grids[1] for grids in single_grids]
    copies = [stack_member_grids([g] * 3) for g in plain]
    with jax.enable_x64(True):
        data, grid = stack_fields(NAMES, catalogues, plain, model)
        _, member_grid = stack_fields(NAMES, catalogues, copies, model)
        assert member_grid.p_obs_binned.shape[:2] == (2, 3)
        constant = sum(
            float(np.sum(_log_p_obs(g, np.asarray(prepare_data(c, POPULATION).theta))))
            for g, c in zip(plain, catalogues)
        )
        differences = []
        for sites, _ in _prior_points(model, data, grid, 3):
            value_none, gradient_none = density["none"](sites, data, grid)
            value_ensemble, gradient_ensemble = density["ensemble"](sites, data, member_grid)
            differences.append(float(value_ensemble) - float(value_none))
            for name in sites:
                np.testing.assert_allclose(
                    np.asarray(gradient_ensemble[name]),
                    np.asarray(gradient_none[name]),
                    rtol=1e-9,
                    atol=1e-9,
                )
        assert np.ptp(differences) < 1e-8
        assert differences[0] == pytest.approx(constant, abs=1e-6)


def test_ensemble_density_is_a_brute_force_member_average_per_field(fields, densities):
    """Different members: the ensemble density minus the "none" density (same priors) is
    Σ_f [ln mean_m L_f,m - ln L_f(mean grid)], each L computed field by field and member by member
    with the single-field likelihood on the unpadded catalogue."""
    catalogues, member_grids, single_grids = fields
    model, density = densities
    mean_grids = [
        SelectionGrid(g.log_mass, g.log_age, g.av, jnp.mean(g.p_obs, 0)) for g in member_grids
    ]
    with jax.enable_x64(True):
        data, grid = stack_fields(NAMES, catalogues, member_grids, model)
        _, mean_grid = stack_fields(NAMES, catalogues, mean_grids, model)
        single = jax.jit(functools.partial(log_likelihood, POPULATION))
        spreads = []
        for sites, per_field in _prior_points(model, data, mean_grid, 2, seed=5):
            expected = 0.0
            for f, catalogue in enumerate(catalogues):
                params = {k: jnp.asarray(v[f]) for k, v in per_field.items()}
                member_log_l = np.array(
                    [_brute_force(catalogue, g, params, single)[1] for g in single_grids[f]]
                )
                spreads.append(np.ptp(member_log_l))
                expected += logsumexp(member_log_l) - np.log(len(member_log_l))
                expected -= _brute_force(catalogue, mean_grids[f], params, single)[0]
            value_ensemble = float(density["ensemble"](sites, data, grid)[0])
            value_none = float(density["none"](sites, data, mean_grid)[0])
            assert value_ensemble - value_none == pytest.approx(expected, abs=1e-6)
        assert max(spreads) > 1  # the members disagree: the average is not trivial


def test_bad_member_grids_are_refused(fields):
    catalogues, member_grids, single_grids = fields
    model = MultiFieldModel(POPULATION, "partial")
    with pytest.raises(InputError, match="shallow: no members"):
        stack_fields(NAMES, catalogues, [member_grids[0], single_grids[1][0]], model)
    two = stack_member_grids(single_grids[1][:2])
    with pytest.raises(InputError, match="deep: 3 members, shallow: 2 members"):
        stack_fields(NAMES, catalogues, [member_grids[0], two], model)
    fitter = MultiFieldFitter(model, selection_uncertainty="ensemble")
    with pytest.raises(InputError, match="member_selection_grid"):
        fitter.prepare(NAMES, catalogues, [g[0] for g in single_grids])
    with pytest.raises(InputError, match="selection_uncertainty must be one of"):
        MultiFieldFitter(model, selection_uncertainty="mean")


def test_ensemble_fit_reports_per_field_and_warns(fields):
    """A short NUTS fit (2 hyperparameters, complete pooling): per-field diagnostics and a
    warning that names the fields whose members disagree."""
    _, member_grids, single_grids = fields
    population = PopulationModel(
        mass="power_law",
        age="power_law",
        av="fixed",
        av_weights=(0.3, 0.3, 0.2, 0.2),
        log_age_range=(6.0, 9.5),
    )
    truth = {"alpha_M": -2.0, "alpha_T": -0.8}
    catalogues = [
        simulate_catalogue(
            population,
            truth,
            LogisticSelection(log_mass_50_young=d, age_slope=0.6),
            n_obs=n,
            seed=f,
        )
        for f, (d, n) in enumerate(zip(DEPTHS, (90, 60)))
    ]
    model = MultiFieldModel(population, "complete")
    fitter = MultiFieldFitter(
        model,
        num_warmup=60,
        num_samples=60,
        num_chains=1,
        chain_method="sequential",
        selection_uncertainty="ensemble",
        selection_variance_tolerance=1e-6,
    )
    data = fitter.prepare(NAMES, catalogues, member_grids)
    with pytest.warns(RuntimeWarning, match=r"matters for field\(s\) deep \(.*shallow") as record:
        result = fitter.fit(data, seed=1)
    assert any("run more injections" in str(w.message) for w in record)
    variance = result.log_likelihood_variance
    assert set(variance) == set(NAMES) and min(variance.values()) > 1e-6
    for name in NAMES:
        entry = result.selection_diagnostics[name]
        assert sum(entry["member_weights"]) == pytest.approx(1.0)
        assert set(entry["variance_share"]) == {
            "alpha_M",
            "alpha_T",
            "alpha_M_mean",
            "alpha_T_mean",
        }
        assert all(0 <= v <= 1 for v in entry["variance_share"].values())
    assert "log_likelihood" not in result.idata.groups() and "Var_members ln L" in result.report()
    assert result.selection_uncertainty == "ensemble" and np.all(
        np.isfinite(result.draws("alpha_M"))
    )
    # the same draws read as a "none" fit with the ensemble-mean grids: the same variance at the
    # median (it depends on the members only), other member weights
    with jax.enable_x64(True):
        as_none = field_selection_diagnostics(
            model,
            {
                k: np.asarray(result.idata.posterior[k])
                for k in ("alpha_M", "alpha_T", "alpha_M_mean", "alpha_T_mean")
            },
            data,
            fitter.member_grid,
            NAMES,
            selection_uncertainty="none",
            mean_grid=fitter.grid,
        )
    for name in NAMES:
        assert as_none[name]["log_likelihood_variance"] == pytest.approx(variance[name], rel=1e-9)
