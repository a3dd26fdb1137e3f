"""Many fields in one hierarchical demographics model (issue 17)."""

import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomp.demographics import (
    LikelihoodGrid,
    MultiFieldModel,
    PopulationModel,
    SelectionGrid,
    log_likelihood,
    prepare_data,
    simulate_catalogue,
    stack_fields,
)
from jaxcomp.demographics.multifield_model import field_log_terms
from jaxcomp.errors import InputError
from jaxcomp.selection.synthetic import LogisticSelection

INFERENCE = Path(__file__).resolve().parents[1] / "inference"
POPULATION = PopulationModel(log_age_range=(6.0, 9.5))
TRUE = {
    "alpha_M": -2.0,
    "log_M_break": 5.3,
    "alpha_T": -0.8,
    "av_weights": np.array([0.3, 0.3, 0.2, 0.2]),
}


_single_field = jax.jit(functools.partial(log_likelihood, POPULATION))


@pytest.fixture(scope="module")
def fields():
    """Three fields of different depth (0, 1, 2 mag) and sizes."""
    catalogues, grids = [], []
    for f, (shift, n) in enumerate(zip((0.0, 1.0, 2.0), (120, 60, 90))):
        selection = LogisticSelection(log_mass_50_young=2.5 + 0.4 * shift, age_slope=0.6)
        grids.append(SelectionGrid.from_selection(selection, shape=(41, 26, 7)))
        catalogues.append(simulate_catalogue(POPULATION, TRUE, selection, n_obs=n, seed=f))
    return catalogues, grids


def test_stacked_log_density_is_the_sum_of_single_field_likelihoods(fields):
    """The vmapped, padded, masked density equals the single-field likelihood summed over fields,
    and its gradient matches central finite differences."""
    catalogues, grids = fields
    model = MultiFieldModel(POPULATION, "none")
    with jax.enable_x64(True):
        data, grid = stack_fields(["a", "b", "c"], catalogues, grids, model)
        assert data.mask.shape == (3, 120) and data.n_objects.tolist() == [120, 60, 90]
        params = {
            "alpha_M": jnp.array([-2.1, -1.9, -2.0]),
            "log_M_break": jnp.array([5.0, 5.5, 5.3]),
            "alpha_T": jnp.array([-0.7, -0.9, -0.8]),
            "av_weights": jnp.array([[0.25] * 4, [0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]]),
        }

        @jax.jit
        def total(p):
            terms, alpha = field_log_terms(model, p, data, grid)
            return jnp.sum(terms) - jnp.sum(data.mask.sum(axis=1) * jnp.log(alpha))

        reference = 0.0
        for f, (catalogue, selection_grid) in enumerate(zip(catalogues, grids)):
            single = LikelihoodGrid.build(
                selection_grid,
                POPULATION.av_edges,
                log_mass_range=POPULATION.log_mass_range,
                log_age_range=POPULATION.log_age_range,
            )
            reference += float(
                _single_field(
                    {k: v[f] for k, v in params.items()},
                    prepare_data(catalogue, POPULATION),
                    single,
                )
            )
        assert float(total(params)) == pytest.approx(reference, rel=1e-12)
        gradient = jax.jit(jax.grad(total))(params)
        step = 1e-5
        for name, f in (("alpha_M", 1), ("log_M_break", 2)):
            up = dict(params, **{name: params[name].at[f].add(step)})
            down = dict(params, **{name: params[name].at[f].add(-step)})
            assert float(gradient[name][f]) == pytest.approx(
                float(total(up) - total(down)) / (2 * step), rel=1e-6
            )


def test_bad_fields_name_the_field(fields):
    catalogues, grids = fields
    model = MultiFieldModel(POPULATION, "partial")
    with pytest.raises(InputError, match="'a' is given more than once"):
        stack_fields(["a", "a", "c"], catalogues, grids, model)
    with pytest.raises(InputError, match="field 'b' has no clusters"):
        stack_fields(
            ["a", "b", "c"], [catalogues[0], catalogues[1][:0], catalogues[2]], grids, model
        )
    other_edges = LikelihoodGrid.build(grids[2], (0.0, 1.0, 2.0, 3.0))
    with pytest.raises(InputError, match="field 'c': its likelihood grid has A_V edges"):
        stack_fields(["a", "b", "c"], catalogues, [grids[0], grids[1], other_edges], model)
    narrow_av = SelectionGrid.from_selection(
        LogisticSelection(), av=np.linspace(0.0, 2.0, 5), shape=(41, 26, 5)
    )
    with pytest.raises(InputError, match="field 'b': its selection grid covers av"):
        stack_fields(["a", "b", "c"], catalogues, [grids[0], narrow_av, grids[2]], model)
    narrow_mass = SelectionGrid.from_selection(
        LogisticSelection(), log_mass=np.linspace(3.0, 8.0, 41), shape=(41, 26, 7)
    )
    with pytest.raises(InputError, match="field 'a': its selection grid covers log_mass"):
        stack_fields(["a", "b", "c"], catalogues, [narrow_mass, grids[1], grids[2]], model)
    outside = catalogues[1].copy()
    outside["log_age"][0] = 10.1  # outside the model's age support (6, 9.5)
    with pytest.raises(InputError, match="field 'b':.*outside the population support"):
        stack_fields(["a", "b", "c"], [catalogues[0], outside, catalogues[2]], grids, model)
    wide = PopulationModel(log_age_range=(5.0, 10.0))
    coarse = SelectionGrid.from_selection(LogisticSelection(), shape=(31, 26, 7))
    with pytest.raises(InputError, match="field 'c': its grid has shapes"):
        stack_fields(["a", "b", "c"], catalogues, [grids[0], grids[1], coarse], model)
    with pytest.raises(InputError, match="covariate"):
        stack_fields(
            ["a", "b", "c"],
            catalogues,
            grids,
            MultiFieldModel(POPULATION, covariate_parameter="log_M_break"),
        )
    with pytest.raises(InputError, match="pooling must be one of"):
        MultiFieldModel(POPULATION, "some")
    with pytest.raises(InputError, match="covariate needs a population mean"):
        MultiFieldModel(wide, "none", covariate_parameter="log_M_break")


def test_simulation_script_recovers_the_population_quickly(tmp_path):
    """The inference/ many-field script end to end on 3 small fields (partial pooling only)."""
    sys.path.insert(0, str(INFERENCE))
    try:
        import multifield_simulation
    finally:
        sys.path.remove(str(INFERENCE))
    summary = multifield_simulation.main(
        [
            "--n-fields",
            "3",
            "--n-min",
            "150",
            "--n-max",
            "300",
            "--num-warmup",
            "150",
            "--num-samples",
            "150",
            "--num-chains",
            "2",
            "--grid",
            "41",
            "26",
            "7",
            "--poolings",
            "partial",
            "--seed",
            "3",
            "--quiet",
            "--target-accept",
            "0.95",
            "-o",
            str(tmp_path),
        ]
    )
    fit = summary["fits"]["partial"]
    assert fit["divergences"] == 0
    assert fit["population"]["alpha_M_mean"]["inside_95"]
    assert fit["alpha_M_rms_error"] < 0.2
    assert len(fit["alpha_M_field_means"]) == 3 and np.isfinite(fit["elpd_loo"])
    assert (tmp_path / "multifield_simulation.json").exists()


def test_partial_pooling_log_joint_with_covariate_matches_a_hand_written_reference(fields):
    """Non-centred per-field values, the covariate and the A_V logistic normal, against scipy priors
    plus the single-field likelihoods."""
    from numpyro.infer.util import log_density
    from scipy import stats

    catalogues, grids = fields
    model = MultiFieldModel(
        POPULATION, "partial", covariate_parameter="log_M_break", scatter_scales={"alpha_M": 0.2}
    )
    covariate = np.array([-1.0, 0.0, 2.0])
    with jax.enable_x64(True):
        data, grid = stack_fields(["a", "b", "c"], catalogues, grids, model, covariate=covariate)
        values = {
            "alpha_M_mean": -2.0,
            "alpha_M_scatter": 0.1,
            "alpha_M_z": np.array([0.5, -1.0, 0.2]),
            "log_M_break_mean": 5.2,
            "log_M_break_slope": 0.3,
            "log_M_break_scatter": 0.2,
            "log_M_break_z": np.array([1.0, 0.0, -0.5]),
            "alpha_T_mean": -0.8,
            "alpha_T_scatter": 0.05,
            "alpha_T_z": np.array([0.0, 1.0, -1.0]),
            "av_logit_mean": np.array([0.2, -0.1, 0.3]),
            "av_logit_scatter": 0.4,
            "av_logit_z": np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5], [0.0, -0.3, 0.2]]),
        }
        values = {k: jnp.asarray(v, jnp.float64) for k, v in values.items()}
        from jaxcomp.demographics import multifield_model as mf

        @jax.jit
        def joint(values, data, grid):
            total, trace = log_density(mf.multifield_model, (model, data, grid), {}, values)
            return total, trace["log_M_break"]["value"], trace["av_weights"]["value"]

        total, field_log_m_break, field_weights = joint(values, data, grid)
        alpha_m = -2.0 + 0.1 * np.array([0.5, -1.0, 0.2])
        log_m_break = 5.2 + 0.3 * covariate + 0.2 * np.array([1.0, 0.0, -0.5])
        alpha_t = -0.8 + 0.05 * np.array([0.0, 1.0, -1.0])
        logits = np.concatenate(
            [np.array([0.2, -0.1, 0.3]) + 0.4 * np.asarray(values["av_logit_z"]), np.zeros((3, 1))],
            axis=1,
        )
        weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(np.asarray(field_log_m_break), log_m_break, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(field_weights), weights, rtol=1e-12)
        prior = (
            stats.uniform(-3, 2).logpdf(-2.0)
            + stats.halfnorm(scale=0.2).logpdf(0.1)
            + stats.uniform(3.5, 4).logpdf(5.2)
            + stats.uniform(-3, 6).logpdf(0.3)
            + stats.halfnorm(scale=0.5).logpdf(0.2)
            + stats.uniform(-3, 4).logpdf(-0.8)
            + stats.halfnorm(scale=0.3).logpdf(0.05)
            + stats.norm(0, 1.5).logpdf([0.2, -0.1, 0.3]).sum()
            + stats.halfnorm(scale=1.0).logpdf(0.4)
            + sum(
                stats.norm().logpdf(np.asarray(values[k])).sum()
                for k in ("alpha_M_z", "log_M_break_z", "alpha_T_z", "av_logit_z")
            )
        )
        likelihood = 0.0
        for f, (catalogue, selection_grid) in enumerate(zip(catalogues, grids)):
            single = LikelihoodGrid.build(
                selection_grid,
                POPULATION.av_edges,
                log_mass_range=POPULATION.log_mass_range,
                log_age_range=POPULATION.log_age_range,
            )
            params = {
                "alpha_M": alpha_m[f],
                "log_M_break": log_m_break[f],
                "alpha_T": alpha_t[f],
                "av_weights": jnp.asarray(weights[f]),
            }
            likelihood += float(_single_field(params, prepare_data(catalogue, POPULATION), single))
        assert float(total) == pytest.approx(prior + likelihood, rel=1e-10)


def test_shrinkage_plot_orders_fields_and_marks_the_population_mean():
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    from jaxcomp.demographics import MultiFieldResult, plot_shrinkage

    rng = np.random.default_rng(0)
    names = ("a", "b", "c")

    def result(pooling, centres, spread):
        posterior = {"alpha_M": centres + spread * rng.standard_normal((2, 50, 3))}
        if pooling == "partial":
            posterior["alpha_M_mean"] = -2.0 + 0.01 * rng.standard_normal((2, 50))
        idata = az.from_dict(
            posterior=posterior, dims={"alpha_M": ["field"]}, coords={"field": list(names)}
        )
        return MultiFieldResult(
            idata=idata,
            summary=None,
            num_divergences=0,
            runtime_s=0.0,
            model=MultiFieldModel(POPULATION, pooling),
            field_names=names,
            n_objects=np.array([10, 10, 10]),
            seed=0,
        )

    results = {
        "none": result("none", np.array([-1.7, -2.4, -2.0]), 0.2),
        "partial": result("partial", np.array([-1.9, -2.1, -2.0]), 0.05),
    }
    fig = plot_shrinkage(results, truth=[-1.8, -2.2, -2.0])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "b",
        "c",
        "a",
    ]  # by the no-pooling median
    assert any(
        np.allclose(line.get_ydata(), -2.0, atol=0.01)
        for line in ax.get_lines()
        if line.get_ls() == "--"
    )
    with pytest.raises(InputError, match="different fields"):
        other = result("partial", np.zeros(3), 0.1)
        other.field_names = ("x", "y", "z")
        plot_shrinkage({"none": results["none"], "partial": other})
