"""NUTS fits of the hierarchical population model on simulated catalogues (short chains)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from jaxcomp.demographics import (
    PopulationFitter,
    PopulationModel,
    SelectionGrid,
    fit_population,
    simulate_catalogue,
    smoothed_selection,
)
from jaxcomp.selection.synthetic import LogisticSelection

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
TRUTH = {
    "alpha_M": -2.0,
    "log_M_break": 5.0,
    "alpha_T": -0.8,
    "av_weights": np.array([0.4, 0.3, 0.2, 0.1]),
}


@pytest.fixture(scope="module")
def recovery():
    selection = LogisticSelection()
    grid = SelectionGrid.from_selection(selection, shape=(121, 81, 13))
    model = PopulationModel(mass="schechter", age="power_law", av="piecewise")
    catalogue = simulate_catalogue(model, TRUTH, selection, n_obs=600, seed=11)
    result = fit_population(
        catalogue, grid, model, num_warmup=200, num_samples=200, num_chains=2, seed=5
    )
    return catalogue, result


def test_recovers_known_population(recovery):
    _, result = recovery
    for name in ("alpha_M", "log_M_break", "alpha_T"):
        low, high = result.interval(name, 0.95)
        assert low <= TRUTH[name] <= high, (name, low, high)
    weights = result.draws("av_weights")
    for k, true in enumerate(TRUTH["av_weights"]):
        assert np.quantile(weights[:, k], 0.0025) <= true <= np.quantile(weights[:, k], 0.9975)
    assert max(result.r_hat.values()) < 1.05
    assert min(result.ess_bulk.values()) > 100
    assert result.num_divergences <= 3
    assert result.interval("alpha_M", 0.95)[1] - result.interval("alpha_M", 0.95)[0] < 0.4


def test_inference_data_contents(recovery):
    catalogue, result = recovery
    idata = result.idata
    assert idata.attrs["seed"] == 5 and idata.posterior.attrs["seed"] == 5
    assert dict(idata.posterior.sizes)["chain"] == 2 and dict(idata.posterior.sizes)["draw"] == 200
    assert idata.log_likelihood["obs"].shape == (2, 200, len(catalogue))
    assert idata.sample_stats["diverging"].dtype == bool
    for column in ("log_mass", "log_age", "av"):
        np.testing.assert_allclose(idata.observed_data[column].values, catalogue[column])
    n_total = result.draws("n_total")
    assert np.median(n_total) == pytest.approx(catalogue.meta["n_drawn"], rel=0.3)
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(result.summary.columns)
    assert "divergences" in result.report()
    loo = result.loo()
    assert np.isfinite(loo.elpd_loo)


def test_posterior_predictive_histograms_and_plots(recovery):
    catalogue, result = recovery
    ppc = result.posterior_predictive(n_draws=20)
    for column in ("log_mass", "log_age"):
        entry = ppc[column]
        assert entry["replicated"].shape == (20, len(entry["edges"]) - 1)
        assert entry["replicated"].sum(axis=1).max() <= len(catalogue)
        assert entry["observed"].sum() == np.sum(
            (catalogue[column] >= entry["edges"][0]) & (catalogue[column] <= entry["edges"][-1])
        )
        # the observed histogram lies mostly inside the 99% predictive band
        low, high = np.quantile(entry["replicated"], [0.005, 0.995], axis=0)
        inside = (entry["observed"] >= low - 2) & (entry["observed"] <= high + 2)
        assert inside.mean() >= 0.8
    fig = result.plot_ppc(ppc=ppc)
    assert len(fig.axes) == 2
    fig = result.plot_pair(kind="scatter")
    assert len(fig.axes) >= 3
    matplotlib.pyplot.close("all")


def test_extra_p_obs_factor_is_biased_with_measurement_errors():
    """Selection acts on the measured values: the per-object term must not carry p_obs(θ).

    Ten catalogues of 300 clusters with Gaussian errors (0.3 dex in mass, 0.2 dex in
    age); detection from the logistic surface evaluated at the *measured* values, so the
    detection probability of a true θ is the surface smoothed by the errors (the grid).
    The correct likelihood recovers α_M and α_T; multiplying each object's integrand by
    p_obs(θ) biases both by many standard errors.
    """
    selection = LogisticSelection.linear()
    sigma = (0.3, 0.2, 0.0)
    grid = SelectionGrid.from_selection(
        smoothed_selection(selection, sigma, n_nodes=12), shape=(121, 61, 25)
    )
    base = dict(
        mass="power_law",
        age="power_law",
        av="fixed",
        log_age_range=(6.0, 9.0),
        measurement_error="samples",
        error_columns=("log_mass", "log_age"),
    )
    settings = dict(num_warmup=120, num_samples=120, num_chains=1)
    correct = PopulationFitter(PopulationModel(**base), grid, **settings)
    biased = PopulationFitter(PopulationModel(**base, per_object_p_obs=True), grid, **settings)
    truth = {"alpha_M": -2.0, "alpha_T": -0.8}
    means = {"correct": [], "biased": []}
    for seed in range(10):
        catalogue = simulate_catalogue(
            correct.model,
            truth,
            selection,
            n_obs=300,
            seed=seed,
            measurement_sigma=sigma,
            select_on="data",
        )
        for label, fitter in (("correct", correct), ("biased", biased)):
            result = fitter.fit(catalogue, seed=seed, n_object_samples=32, log_likelihood=False)
            means[label].append([result.mean("alpha_M"), result.mean("alpha_T")])
    for label in means:
        means[label] = np.asarray(means[label])
    for j, name in enumerate(("alpha_M", "alpha_T")):
        good = means["correct"][:, j]
        bad = means["biased"][:, j]
        se = max(good.std(ddof=1), bad.std(ddof=1)) / np.sqrt(len(good))
        assert abs(good.mean() - truth[name]) < max(4 * se, 0.03), (name, good.mean())
        assert abs(bad.mean() - truth[name]) > max(6 * se, 0.08), (name, bad.mean())


def test_sbc_script_small_run(tmp_path):
    spec = importlib.util.spec_from_file_location("sbc_script", REPO / "inference" / "sbc.py")
    sbc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sbc)
    model = PopulationModel(mass="power_law", age="power_law", av="fixed", log_age_range=(6.0, 9.5))
    results = sbc.run_sbc(
        n_catalogues=4,
        n_obs=100,
        num_warmup=150,
        num_samples=150,
        num_chains=1,
        n_rank_draws=19,
        n_rank_bins=4,
        grid_shape=(61, 36, 7),
        model=model,
        output_dir=tmp_path,
        verbose=False,
    )
    assert results["n_done"] == 4
    assert set(results["summary"]) == {"alpha_M", "alpha_T", "pooled"}
    for entry in results["summary"].values():
        assert 0.0 <= entry["coverage68"] <= entry["coverage95"] <= 1.0
        assert 0.0 <= entry["p_chi2"] <= 1.0 and 0.0 <= entry["p_ks"] <= 1.0
    assert all(0 <= r["params"]["alpha_M"]["rank"] <= 19 for r in results["replications"])
    assert (tmp_path / "sbc_results.json").is_file() and (tmp_path / "sbc_ranks.png").is_file()


def test_fine_grid_has_small_quadrature_error(recovery):
    _, result = recovery
    assert 0 <= result.quadrature_relative_error < 0.01
    assert "quadrature error" in result.report()


def test_coarse_grid_is_reported_with_its_quadrature_error():
    from jaxcomp.demographics.likelihood import LikelihoodGrid, quadrature_error

    selection = LogisticSelection()
    model = PopulationModel(mass="schechter", age="power_law", av="piecewise")
    fine = LikelihoodGrid.build(
        SelectionGrid.from_selection(selection, shape=(241, 161, 13)), model.av_edges
    )
    coarse_grid = SelectionGrid.from_selection(selection, shape=(9, 7, 5))
    coarse = LikelihoodGrid.build(coarse_grid, model.av_edges)
    alpha_fine, error_fine = quadrature_error(model, TRUTH, fine)
    alpha_coarse, error_coarse = quadrature_error(model, TRUTH, coarse)
    # the estimate is of the right size: the coarse grid's actual error against the fine grid
    actual = abs(alpha_coarse - alpha_fine)
    assert 0.3 * actual < error_coarse < 3 * actual and error_fine < 0.05 * actual
    catalogue = simulate_catalogue(model, TRUTH, selection, n_obs=200, seed=3)
    fitter = PopulationFitter(model, coarse_grid, num_warmup=30, num_samples=30, num_chains=1)
    with pytest.warns(RuntimeWarning, match="too coarse.*quadrature error"):
        result = fitter.fit(catalogue, seed=1)
    assert result.quadrature_relative_error > 0.01


def test_chain_methods_give_the_same_draws():
    """Each chain depends only on its key and start: threads, lax.map and vmap agree."""
    selection = LogisticSelection()
    grid = SelectionGrid.from_selection(selection, shape=(61, 41, 9))
    model = PopulationModel(mass="power_law", age="power_law", av="piecewise")
    catalogue = simulate_catalogue(
        model,
        {"alpha_M": -2.0, "alpha_T": -0.8, "av_weights": TRUTH["av_weights"]},
        selection,
        n_obs=150,
        seed=4,
    )
    draws = {}
    for method in ("parallel", "sequential", "vectorized"):
        fitter = PopulationFitter(
            model,
            grid,
            num_warmup=40,
            num_samples=30,
            num_chains=3,
            chain_method=method,
            num_workers=2,
        )
        result = fitter.fit(catalogue, seed=9, log_likelihood=False)
        draws[method] = np.asarray(result.idata.posterior["alpha_M"])
    assert draws["parallel"].shape == (3, 30)
    # distinct chains (not one chain copied), the same across methods up to rounding (the programs
    # are compiled separately; NUTS trajectories amplify last-bit differences: 1e-6 after 70 steps)
    assert not np.allclose(draws["parallel"][0], draws["parallel"][1], rtol=1e-3)
    np.testing.assert_allclose(draws["parallel"], draws["sequential"], rtol=1e-4)
    np.testing.assert_allclose(draws["parallel"], draws["vectorized"], rtol=1e-4)


def test_chain_method_and_workers_are_checked():
    grid = SelectionGrid.from_selection(LogisticSelection(), shape=(9, 7, 5))
    with pytest.raises(ValueError, match="chain_method must be one of"):
        PopulationFitter(PopulationModel(), grid, chain_method="pmap")
    with pytest.raises(ValueError, match="num_workers must be at least 1"):
        PopulationFitter(PopulationModel(), grid, num_workers=0)
