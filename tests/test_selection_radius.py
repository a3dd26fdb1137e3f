"""Radius-aware selection functions marginalised over the library's radius prescriptions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomp import RadiusMarginalisedSelection, RadiusPrior
from jaxcomp.demographics import SelectionGrid
from jaxcomp.library.library import LibraryConfig, _draw_radii
from jaxcomp.selection.inputs import PHYSICAL_INPUTS, InputSpec

from .test_selection_function import make_selection_function

RADIUS = InputSpec("r_eff_pc", "pc", (1.0, 10.0), description="effective radius [pc]")
RADII = np.arange(1.0, 11.0)


@pytest.fixture(scope="module")
def sf_r():
    # the radius in the middle of the inputs: the wrapper must put it in its place
    specs = (PHYSICAL_INPUTS[0], RADIUS, PHYSICAL_INPUTS[1], PHYSICAL_INPUTS[2])
    return make_selection_function(specs=specs, seed=4)


@pytest.mark.parametrize("out_of_range", ["clip", "redraw"])
@pytest.mark.parametrize("log_mass", [2.5, 4.0, 6.0, 7.8])
def test_k19_weights_are_the_librarys_radius_frequencies(out_of_range, log_mass):
    n = 200_000
    config = LibraryConfig(radius_model="K19", k19_out_of_range=out_of_range)
    drawn = _draw_radii(np.full(n, log_mass), config, np.random.default_rng(1))
    frequency = np.bincount(drawn, minlength=11)[1:] / n
    w = np.asarray(RadiusPrior("K19", k19_out_of_range=out_of_range).weights(log_mass, RADII))
    np.testing.assert_allclose(w.sum(), 1.0, atol=1e-6)
    tolerance = 5 * np.sqrt(frequency * (1 - frequency) / n) + 1e-4
    assert np.all(np.abs(w - frequency) <= tolerance), (w, frequency)


def test_flat_weights_and_a_subset_of_radii_renormalise():
    np.testing.assert_allclose(
        RadiusPrior().weights(jnp.zeros(3), RADII), np.full((3, 10), 0.1), atol=1e-7
    )
    w = np.asarray(RadiusPrior("K19").weights(4.0, [2.0, 5.0, 8.0]))
    full = np.asarray(RadiusPrior("K19").weights(4.0, RADII))
    np.testing.assert_allclose(w, full[[1, 4, 7]] / full[[1, 4, 7]].sum(), rtol=1e-5)


@pytest.mark.parametrize("model", ["flat", "K19"])
def test_marginal_is_the_weighted_average_over_radii(sf_r, model):
    f = RadiusMarginalisedSelection(sf_r, RADII, RadiusPrior(model))
    rng = np.random.default_rng(0)
    lm, la, av = rng.uniform(2, 8, 40), rng.uniform(5, 10, 40), rng.uniform(0, 3, 40)
    w = np.asarray(RadiusPrior(model).weights(lm, RADII))
    by_radius = np.stack(
        [
            np.asarray(
                sf_r(jnp.asarray(np.column_stack([lm, np.full(40, r), la, av]), jnp.float32))
            )
            for r in RADII
        ],
        axis=-1,
    )
    np.testing.assert_allclose(f(lm, la, av), (by_radius * w).sum(-1), rtol=1e-5, atol=1e-7)
    # broadcasting, as SelectionGrid evaluates it
    grid = np.asarray(f(lm[:5, None, None], la[None, :4, None], av[None, None, :3]))
    assert grid.shape == (5, 4, 3)
    np.testing.assert_allclose(grid[2, 3, 1], f(lm[2], la[3], av[1]), rtol=1e-6)


def test_gradient_matches_finite_differences(sf_r):
    f = RadiusMarginalisedSelection(sf_r, RADII, RadiusPrior("K19"))
    point = (4.3, 7.1, 1.2)
    grad = jax.grad(lambda *v: f(*v), argnums=(0, 1, 2))(*(jnp.float32(v) for v in point))
    fd = [
        (
            float(f(*[v + (h if i == k else 0.0) for i, v in enumerate(point)]))
            - float(f(*[v - (h if i == k else 0.0) for i, v in enumerate(point)]))
        )
        / (2 * h)
        for k, h in enumerate((1e-2, 1e-2, 1e-2))
    ]
    np.testing.assert_allclose(np.asarray(grad, float), fd, rtol=2e-2, atol=2e-4)


def test_selection_grid_accepts_it(sf_r):
    f = RadiusMarginalisedSelection(sf_r, RADII)
    grid = SelectionGrid.from_selection(f, shape=(7, 6, 3))
    expected = f(
        np.asarray(grid.log_mass)[:, None, None],
        np.asarray(grid.log_age)[None, :, None],
        np.asarray(grid.av)[None, None, :],
    )
    np.testing.assert_allclose(grid.p_obs, expected, rtol=1e-6)


def test_bad_inputs_are_clear_errors(sf_r):
    with pytest.raises(ValueError, match="needs .*r_eff_pc"):
        RadiusMarginalisedSelection(make_selection_function(), RADII)
    with pytest.raises(ValueError, match="reach outside the radii the network was trained on"):
        RadiusMarginalisedSelection(sf_r, [0.5, 2.0])
    with pytest.raises(ValueError, match="distinct positive radii"):
        RadiusMarginalisedSelection(sf_r, [2.0, 2.0])
    with pytest.raises(ValueError, match="model must be"):
        RadiusPrior("Ryon17")
