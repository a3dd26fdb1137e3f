"""Smoke tests of the demographics benchmarks' baselines (no timing): same target, same maths."""

from __future__ import annotations

import numpy as np
import pytest

# benchmarks/ is on sys.path through [tool.pytest.ini_options] pythonpath (pyproject.toml)


def test_nuts_and_emcee_target_the_same_log_density():
    """emcee's callable, the fitter's NUTS potential and a hand-written density agree; transforms
    match NumPyro's."""
    import bench_nuts
    import jax
    from numpyro.infer.util import constrain_fn

    with jax.enable_x64(True):
        problem = bench_nuts.build_problem(
            n_obs=150, grid_shape=(41, 31, 7), seed=3, num_warmup=10, num_samples=10, num_chains=2
        )
        assert problem["dim"] == 7 and len(problem["reported"]) == 8
        check = bench_nuts.check_same_target(problem, n_points=4, seed=5)
        scale = max(1.0, max(abs(v) for v in check["log_density_reference"]))
        for key in ("emcee_vectorized", "emcee_per_walker", "nuts_potential"):
            assert check[f"max_abs_diff_{key}_vs_reference"] <= 1e-9 * scale, (key, check)
        # the log density is not flat: different points give different values
        assert np.ptp(check["log_density_reference"]) > 1.0

        # the benchmark's transform to reported (constrained) values is NumPyro's
        points = np.asarray(check["points"])
        mine = bench_nuts.constrain_flat(problem, points)
        fitter = problem["fitter"]
        theirs = jax.jit(
            jax.vmap(
                lambda z: constrain_fn(
                    fitter._model_fn, (problem["data"], fitter.grid), {}, problem["unravel"](z)
                )
            )
        )(points)
        for name in problem["model"].parameter_names:
            np.testing.assert_allclose(mine[name], np.asarray(theirs[name]), rtol=1e-12, atol=1e-12)


def test_numpy_marginalisation_matches_jaxcomp():
    """The numpy baseline of bench_marginalise reproduces SelectionGrid and the p_corr marginals
    within 1e-5."""
    import bench_marginalise as bm
    import bench_selection_throughput as throughput

    from jaxcomp.demographics import SelectionGrid
    from jaxcomp.demographics.marginalise import PHYSICAL_AXES

    sf = throughput.build_selection_function(3, 64, seed=2)
    params = throughput.numpy_parameters(sf)
    shape = (24, 20, 6)
    axes = [np.linspace(*sf.domain[name], n) for name, n in zip(PHYSICAL_AXES, shape)]
    order = [PHYSICAL_AXES.index(name) for name in sf.input_names]
    grid = SelectionGrid.from_selection(sf, shape=shape)
    p_np = throughput.numpy_p(params, bm.grid_points(axes, slice(0, shape[0]), order)).reshape(
        shape
    )
    p_jax = np.asarray(grid.p_obs)
    assert np.ptp(p_jax) > 0.05  # a non-trivial surface
    assert np.max(np.abs(p_jax - p_np)) <= 1e-5

    distributions = bm.jaxcomp_distributions(sf.domain["log_mass"], sf.domain["log_age"])
    marginals = bm.NumpyMarginals(axes, sf.domain["log_mass"], sf.domain["log_age"])
    for which in ("mass", "age", "av"):  # normalised densities: the weights sum to one
        assert marginals.weights(which).sum() == pytest.approx(1.0, abs=1e-5)
    jax_sums = bm.jaxcomp_marginals(grid, distributions)
    np_sums = {
        "eq. 14 p_obs(log M, log T)": marginals.p_obs_mass_age(p_jax),
        "eq. 16 p_corr(log T)": marginals.p_corr_log_age(p_jax),
        "p_corr(log M)": marginals.p_corr_log_mass(p_jax),
    }
    for name, expected in np_sums.items():
        got = np.asarray(jax_sums[name]())
        assert got.shape == expected.shape
        assert np.max(np.abs(got - expected)) <= 1e-5, name
