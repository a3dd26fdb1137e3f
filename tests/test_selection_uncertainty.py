"""Selection-function uncertainty: bootstrap ensembles, spread coverage, the ensemble likelihood
(issue 18)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

from jaxcomp.demographics import (
    PopulationFitter,
    PopulationModel,
    SelectionGrid,
    ensemble_log_likelihood,
    fit_members,
    fit_population,
    log_likelihood,
    member_likelihood_grid,
    member_selection_grid,
    over_members,
    p_corr_log_age,
    prepare_data,
    selection_diagnostics,
    simulate_catalogue,
    stack_member_grids,
)
from jaxcomp.demographics.distributions import PiecewiseConstantAV, SchechterLogMass
from jaxcomp.demographics.likelihood import LikelihoodGrid
from jaxcomp.errors import InputError
from jaxcomp.selection import TrainConfig, ensemble_coverage, train_selection_function
from jaxcomp.selection.synthetic import LogisticSelection, simulate_labels
from jaxcomp.selection.training import bootstrap_rows

TRUTH = {
    "alpha_M": -2.0,
    "log_M_break": 5.0,
    "alpha_T": -0.8,
    "av_weights": np.array([0.4, 0.3, 0.2, 0.1]),
}
SHAPE = (41, 31, 7)


# ------------------------------------------------------------------ training
def test_bootstrap_resamples_whole_clusters():
    groups = np.repeat(np.arange(50), 3)  # 50 clusters injected 3 times each
    rows = np.flatnonzero(groups % 5 != 0)  # a "training split" of 40 clusters
    picked = bootstrap_rows(groups, rows, seed=1, member=2)
    assert picked.size == rows.size  # same number of clusters, same repeats each
    drawn = np.bincount(groups[picked], minlength=50)
    assert np.all(drawn % 3 == 0) and np.all(drawn[groups[rows]] >= 0) and drawn[::5].sum() == 0
    assert drawn.sum() // 3 == 40 and np.unique(groups[picked]).size < 40  # with replacement
    np.testing.assert_array_equal(picked, bootstrap_rows(groups, rows, seed=1, member=2))
    assert not np.array_equal(picked, bootstrap_rows(groups, rows, seed=1, member=3))


def test_bootstrap_config_is_checked_and_recorded():
    with pytest.raises(ValueError, match="ensemble_resampling"):
        TrainConfig(ensemble_resampling="jackknife")
    with pytest.raises(ValueError, match="n_members >= 2"):
        TrainConfig(ensemble_resampling="bootstrap")
    assert "ensemble_resampling" not in TrainConfig().to_json()  # old records and digests unchanged
    labels = simulate_labels(300, repeats=2, seed=4)
    config = TrainConfig(
        hidden_widths=(8,),
        epochs=2,
        batch_size=256,
        learning_rates=(1e-2,),
        weight_decays=(1e-3,),
        n_members=2,
        ensemble_resampling="bootstrap",
        seed=2,
    )
    trained = train_selection_function(labels, config=config, progress=False)
    training = trained.selection_function.metadata["training"]
    assert (
        training["ensemble_resampling"] == "bootstrap"
        and len(training["bootstrap_rows_sha256"]) == 2
    )
    assert training["config"]["ensemble_resampling"] == "bootstrap"
    assert [m["member"] for m in training["members"]] == [1, 2]
    coverage = training["test_spread_coverage"]  # the test split's repeated injections
    assert coverage == trained.test_spread_coverage and coverage["n_members"] == 2
    assert all(0 <= v <= 1 for v in coverage["predictive_coverage"].values())
    selection = trained.selection_function
    assert selection.n_members == 2
    members = member_selection_grid(selection, shape=(9, 7, 3))
    mean = SelectionGrid.from_selection(selection, shape=(9, 7, 3))
    assert members.p_obs.shape == (2, 9, 7, 3)
    np.testing.assert_allclose(np.asarray(members.p_obs).mean(0), np.asarray(mean.p_obs), atol=1e-6)
    assert np.ptp(np.asarray(members.p_obs), axis=0).max() > 1e-3  # the members differ
    with pytest.raises(InputError, match="other log_mass nodes"):
        stack_member_grids([mean, SelectionGrid.from_selection(selection, shape=(8, 7, 3))])


# ------------------------------------------------------------------ coverage
def test_spread_coverage_is_nominal_for_a_calibrated_ensemble_and_low_for_an_overconfident_one():
    rng = np.random.default_rng(0)
    n, m, sigma = 20000, 5, 0.03
    p_true = rng.uniform(0.2, 0.8, n)
    # member mean - truth ~ N(0, sigma^2) independent of the members' spread sd ~ sigma: exactly
    # Student t
    offset = rng.normal(0, sigma * np.sqrt(1 - 1 / m), n)
    members = p_true + offset + rng.normal(0, sigma, (m, n))
    result = ensemble_coverage(members, p_true)
    for level in (0.68, 0.95):
        assert abs(result.interval_coverage[level] - level) < 3 * np.sqrt(level * (1 - level) / n)
    overconfident = p_true + offset * 2 + rng.normal(0, sigma / 3, (m, n))
    assert ensemble_coverage(overconfident, p_true).interval_coverage[0.68] < 0.3


def test_predictive_coverage_of_repeated_injections():
    """Counts k ~ Binomial(R, p) with p scattered like the members: the mixture covers, the mean
    does not."""
    rng = np.random.default_rng(1)
    n, m, repeats = 4000, 400, 40
    centre = rng.uniform(-1.5, 1.5, n)
    members = 1 / (1 + np.exp(-(centre + rng.normal(0, 0.6, (m, n)))))
    p_true = 1 / (1 + np.exp(-(centre + rng.normal(0, 0.6, n))))
    k = rng.binomial(repeats, p_true)
    result = ensemble_coverage(members, n_detected=k, n_repeats=np.full(n, repeats))
    for level in (0.68, 0.95):
        assert abs(result.predictive_coverage[level] - level) < 0.03
        assert result.plugin_coverage[level] < level - 0.08
    # the measured p_true = k/R is noisy: the interval coverage of it is below the predictive one
    assert result.interval_coverage[0.68] < result.predictive_coverage[0.68]
    with pytest.raises(ValueError, match="n_members >= 2"):
        ensemble_coverage(members[:1], p_true)
    with pytest.raises(ValueError, match="both n_detected and n_repeats"):
        ensemble_coverage(members, n_detected=k)


# ------------------------------------------------------------- likelihood
@pytest.fixture(scope="module")
def member_setup():
    # a power-law CMF (the same likelihood code path as a Schechter's, faster to compile)
    model = PopulationModel(mass="power_law", age="power_law", av="piecewise")
    selections = [LogisticSelection(log_mass_50_young=3.0 + d) for d in (-0.1, 0.0, 0.1)]
    grids = [SelectionGrid.from_selection(s, shape=SHAPE) for s in selections]
    catalogue = simulate_catalogue(model, TRUTH, selections[1], n_obs=150, seed=3)
    return model, selections, grids, stack_member_grids(grids), catalogue


def test_ensemble_likelihood_is_the_mean_of_member_likelihoods(member_setup):
    model, _, grids, members, catalogue = member_setup
    with jax.enable_x64(True):
        data = prepare_data(catalogue, model)
        stacked = member_likelihood_grid(members, model.av_edges)
        singles = [LikelihoodGrid.build(g, model.av_edges) for g in grids]
        params = {k: jax.numpy.asarray(v) for k, v in TRUTH.items()}
        single = jax.jit(lambda p, d, g: log_likelihood(model, p, d, g))
        singles = dict(zip(map(id, grids), singles))
        ensemble = jax.jit(lambda p, d, g: ensemble_log_likelihood(model, p, d, g))
        # ln L_m keeps the detected objects' ln p_obs,m(θ_i): constant in Λ, not across members
        per_member = np.array(
            [
                float(single(params, data, singles[id(g)]))
                + float(
                    np.sum(
                        np.log(
                            np.maximum(np.asarray(g.interpolate(*np.asarray(data.theta).T)), 1e-30)
                        )
                    )
                )
                for g in grids
            ]
        )
        expected = np.log(np.mean(np.exp(per_member - per_member.max()))) + per_member.max()
        assert float(ensemble(params, data, stacked)) == pytest.approx(expected, abs=1e-6)
        assert np.ptp(per_member) > 1  # the members disagree: the test is not trivial
        same = member_likelihood_grid(stack_member_grids([grids[1]] * 3), model.av_edges)
        assert float(ensemble(params, data, same)) == pytest.approx(per_member[1], abs=1e-6)
        # over_members maps any grid function: the marginal completeness of every member
        mass = SchechterLogMass(-2.0, 5.0, 2.0, 8.0)
        av = PiecewiseConstantAV(jax.numpy.asarray([0.0, 1.5, 3.0]))
        mapped = np.asarray(over_members(p_corr_log_age, members, mass, av))
        for m, grid in enumerate(grids):
            np.testing.assert_allclose(
                mapped[m], np.asarray(p_corr_log_age(grid, mass, av)), rtol=1e-6
            )


def test_variance_share_by_the_law_of_total_variance():
    """Two member posteriors N(0, 1) and N(2, 1), equal evidence: between = within = 1, share
    1/2."""
    rng = np.random.default_rng(3)
    draws = np.concatenate([rng.normal(0, 1, 100000), rng.normal(2, 1, 100000)])
    member = np.stack([stats.norm.logpdf(draws, 0, 1), stats.norm.logpdf(draws, 2, 1)], axis=1)
    fit = np.logaddexp.reduce(member, axis=1) - np.log(2)
    out = selection_diagnostics(member, fit, {"x": draws}, np.array([0.0, 2.0]))
    assert out["variance_share"]["x"] == pytest.approx(0.5, abs=0.01)
    np.testing.assert_allclose(out["member_weights"], [0.5, 0.5], atol=0.01)
    assert out["log_likelihood_variance"] == pytest.approx(2.0)


def test_ensemble_fit_reports_and_warns(member_setup):
    _, selections, grids, members, _ = member_setup
    with pytest.raises(InputError, match="member_selection_grid"):
        PopulationFitter(PopulationModel(), grids[1], selection_uncertainty="ensemble")
    with pytest.raises(ValueError, match="selection_uncertainty must be one of"):
        PopulationFitter(PopulationModel(), members, selection_uncertainty="mean")
    # a small model (2 hyperparameters) keeps the NUTS compilation short
    model = PopulationModel(
        mass="power_law", age="power_law", av="fixed", av_weights=(0.4, 0.3, 0.2, 0.1)
    )
    catalogue = simulate_catalogue(
        model, {"alpha_M": -2.0, "alpha_T": -0.8}, selections[1], n_obs=150, seed=3
    )
    with pytest.warns(RuntimeWarning, match="variance over the 3 selection members of ln L"):
        result = fit_population(
            catalogue,
            members,
            model,
            num_warmup=60,
            num_samples=60,
            num_chains=1,
            seed=2,
            selection_uncertainty="ensemble",
            chain_method="sequential",
            dense_mass=False,
            quadrature_tolerance=0.05,
        )
    diagnostics = result.selection_diagnostics
    assert result.log_likelihood_variance > 1 and result.selection_uncertainty == "ensemble"
    assert set(diagnostics["variance_share"]) == {"alpha_M", "alpha_T"}
    assert all(0 <= v <= 1 for v in diagnostics["variance_share"].values())
    assert sum(diagnostics["member_weights"]) == pytest.approx(1.0)
    assert "log_likelihood" not in result.idata.groups() and "Var_members ln L" in result.report()
    assert np.all(np.isfinite(result.draws("alpha_M")))
    # one fit per member (one compiled sampler), pooled with equal weights: the "cut" posterior
    fitter = PopulationFitter(
        model,
        grids[0],
        num_warmup=60,
        num_samples=60,
        num_chains=1,
        chain_method="sequential",
        dense_mass=False,
    )
    members_fit = fit_members(catalogue, members, fitter=fitter, seed=2)
    means = members_fit.draws["alpha_M"].mean(axis=1)
    assert members_fit.draws["alpha_M"].shape == (3, 60) and members_fit.pooled(
        "alpha_M"
    ).shape == (180,)
    assert np.ptp(means) > 3 * members_fit.draws["alpha_M"].std(axis=1).mean() / np.sqrt(20)
    between, within = np.var(means), np.mean(members_fit.draws["alpha_M"].var(axis=1))
    assert members_fit.variance_share["alpha_M"] == pytest.approx(between / (between + within))
    lo, hi = members_fit.interval("alpha_M", 0.95)
    assert lo < means.min() and hi > means.max()


# ------------------------------------------------------------ corrections
def test_corrections_carry_the_selection_spread():
    from jaxcomp.demographics import corrected_age_function

    rng = np.random.default_rng(5)
    log_age = rng.uniform(6.0, 9.0, 400)
    p_mean = np.clip(1.2 - 0.12 * log_age, 0.05, 1.0)
    factors = np.array([0.8, 0.9, 1.0, 1.1, 1.2])  # member m sees p_corr * f_m everywhere
    members = p_mean[None] * factors[:, None]
    bins = np.linspace(6.0, 9.0, 7)
    plain = corrected_age_function(log_age, p_mean, bins)
    table = corrected_age_function(log_age, p_mean, bins, p_corr_members=members)
    for name in plain.colnames:  # the paper's columns are unchanged
        np.testing.assert_array_equal(np.asarray(plain[name]), np.asarray(table[name]))
    n_raw = np.asarray(table["n_raw"], float)
    expected = np.std(
        n_raw[:, None] / (np.asarray(table["p_mean"])[:, None] * factors), axis=1, ddof=1
    )
    np.testing.assert_allclose(np.asarray(table["n_corr_sel_err"]), expected, rtol=1e-10)
    np.testing.assert_allclose(
        np.asarray(table["n_corr_total_err"]), np.hypot(table["n_corr_err"], expected), rtol=1e-10
    )
    with pytest.raises(ValueError, match="n_members >= 2"):
        corrected_age_function(log_age, p_mean, bins, p_corr_members=members[:1])


def test_campaign_planning_inverts_a_known_scaling():
    from jaxcomp.demographics import plan_campaign_size

    sizes = np.array([3000.0, 10000.0, 30000.0])
    variances = 0.6 / sizes  # V = c / N with c = 0.6
    plan = plan_campaign_size(sizes, variances, target_sd=0.05, statistical_sd=0.03)
    assert plan["coefficient"] == pytest.approx(0.6) and plan["exponent"] == 1.0
    assert plan["n_injections"] == pytest.approx(0.6 / (0.05**2 - 0.03**2))
    fitted = plan_campaign_size(
        sizes, 2.0 * sizes**-0.7, target_sd=0.05, statistical_sd=0.03, fit_exponent=True
    )
    assert fitted["exponent"] == pytest.approx(0.7) and fitted["coefficient"] == pytest.approx(2.0)
    assert (
        plan_campaign_size(sizes, variances, target_sd=0.03, statistical_sd=0.03)["n_injections"]
        == np.inf
    )
    with pytest.raises(InputError, match="positive measured"):
        plan_campaign_size(sizes, np.zeros(3), target_sd=0.05, statistical_sd=0.03)
