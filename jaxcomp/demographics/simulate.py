"""Simulated cluster catalogues from a known population and a known selection (for validation).

* :func:`sample_population`: true (log_mass, log_age, av) drawn from a
  :class:`~jaxcomp.demographics.PopulationModel` at given hyperparameters;
* :func:`simulate_catalogue`: a population thinned by a selection function
  (the analytic :class:`~jaxcomp.selection.synthetic.LogisticSelection`, a
  :class:`~jaxcomp.demographics.SelectionGrid`, a
  :class:`~jaxcomp.SelectionFunction` or any callable ``f(log_mass, log_age, av)``),
  optionally with Gaussian measurement errors, acting either on the true values
  (``select_on="truth"``) or on the measured ones (``select_on="data"``, the
  assumption of the selection-normalised likelihood with measurement errors);
* :func:`smoothed_selection`: p_obs(θ) = E[p_sel(θ + ε)] of a selection acting on
  data with Gaussian noise ε, i.e. the detection probability an artificial-cluster
  test measures, by Gauss-Hermite quadrature.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from ..selection.function import SelectionFunction
from .distributions import PiecewiseConstantAV
from .marginalise import SelectionGrid
from .models import THETA_COLUMNS, PopulationModel

__all__ = [
    "sample_population",
    "simulate_catalogue",
    "smoothed_selection",
    "selection_probability",
    "SmoothedSelection",
]


def _key(seed) -> jax.Array:
    if isinstance(seed, (int, np.integer)):
        return jax.random.PRNGKey(int(seed))
    return seed


def sample_population(model: PopulationModel, params: Mapping, n: int, seed=0) -> np.ndarray:
    """``n`` true θ = (log_mass, log_age, av) from p(θ|Λ), shape (n, 3), float64.

    Ages are drawn conditionally on mass for the mass-dependent model.
    """
    k_mass, k_age, k_av = jax.random.split(_key(seed), 3)
    with jax.enable_x64(True):
        params = {k: jnp.asarray(np.asarray(v, np.float64)) for k, v in params.items()}
        log_mass = model.mass_distribution(params).sample(k_mass, (n,))
        if model.mass_dependent_age:
            log_age = model.age_distribution(params, log_mass).sample(k_age)
        else:
            log_age = model.age_distribution(params).sample(k_age, (n,))
        av = PiecewiseConstantAV(
            jnp.asarray(model.av_edges), model.av_probabilities(params)
        ).sample(k_av, (n,))
        return np.stack([np.asarray(log_mass), np.asarray(log_age), np.asarray(av)], axis=-1)


def selection_probability(selection, theta) -> np.ndarray:
    """p_obs at ``theta[..., (log_mass, log_age, av)]`` for any supported selection."""
    theta = np.asarray(theta, np.float64)
    if isinstance(selection, SelectionGrid):
        return np.asarray(
            selection.interpolate(*(jnp.asarray(theta[..., j], jnp.float32) for j in range(3))),
            np.float64,
        )
    if isinstance(selection, SelectionFunction):
        table = {
            name: theta[..., THETA_COLUMNS.index(name)].reshape(-1)
            for name in selection.input_names
        }
        return selection.predict(table, out_of_domain="clip").reshape(theta.shape[:-1])
    if callable(selection):
        return np.asarray(selection(theta[..., 0], theta[..., 1], theta[..., 2]), np.float64)
    raise TypeError(f"unsupported selection {type(selection).__name__}")


@dataclasses.dataclass(frozen=True)
class SmoothedSelection:
    """p_obs(θ) = E_ε[p_sel(θ + ε)], ε ~ N(0, diag(sigma²)); a callable ``f(log_mass, log_age,
    av)``."""

    selection: object
    sigma: tuple[float, float, float]
    n_nodes: int = 16

    def __call__(self, log_mass, log_age, av):
        x, w = np.polynomial.hermite_e.hermegauss(
            self.n_nodes
        )  # probabilists' Hermite: weight exp(-x²/2)
        w = w / w.sum()
        noisy = [j for j in range(3) if self.sigma[j] > 0]
        base = [np.asarray(v, np.float64) for v in (log_mass, log_age, av)]
        total = 0.0
        for index in np.ndindex(*(self.n_nodes,) * len(noisy)):
            shifted = list(base)
            weight = 1.0
            for j, k in zip(noisy, index):
                shifted[j] = base[j] + self.sigma[j] * x[k]
                weight *= w[k]
            total = total + weight * selection_probability(
                self.selection, np.stack(np.broadcast_arrays(*shifted), axis=-1)
            )
        return total


def smoothed_selection(selection, sigma, n_nodes: int = 16) -> SmoothedSelection:
    """The detection probability of true θ when ``selection`` acts on data θ + ε, ε ~ N(0, σ²).

    ``sigma``: one σ per column (log_mass [dex], log_age [dex], av [mag]); zero for exact columns.
    Use it (via :meth:`SelectionGrid.from_selection`) as the p_obs of the normalising integral
    of catalogues simulated with ``select_on="data"``.
    """
    sigma = tuple(float(s) for s in np.broadcast_to(np.asarray(sigma, np.float64), (3,)))
    return SmoothedSelection(selection, sigma, int(n_nodes))


def _jsonable(params: Mapping) -> dict:
    return {k: np.asarray(v).tolist() for k, v in params.items()}


def simulate_catalogue(
    model: PopulationModel,
    params: Mapping,
    selection,
    *,
    n_obs: int | None = None,
    n_total: int | None = None,
    seed: int = 0,
    measurement_sigma=None,
    select_on: Literal["truth", "data"] = "truth",
    batch_size: int = 65536,
    max_total: int = 10**9,
) -> Table:
    """A catalogue of detected clusters from a known population and selection.

    Parameters
    ----------
    model : PopulationModel
    params : mapping
        True hyperparameters (``alpha_M``, ``log_M_break``, ``alpha_T``, ``av_weights``, ...).
    selection : LogisticSelection, SelectionGrid, SelectionFunction or callable
        Detection probability p_sel of the values it acts on.
    n_obs : int, optional
        Draw clusters until exactly ``n_obs`` are detected (the first ``n_obs`` in draw
        order): a catalogue conditioned on its size, as the marginalised-N likelihood assumes.
    n_total : int, optional
        Instead, draw ``n_total`` clusters and keep the detected ones (Poisson-form tests:
        draw ``n_total`` itself from a Poisson distribution for a Poisson process).
    seed : int
    measurement_sigma : float or sequence of 3 floats, optional
        Gaussian measurement σ of (log_mass, log_age, av); the catalogue then holds the
        measured values, with ``<column>_lo/_hi`` = value ∓ σ, and the truth in ``true_<column>``.
    select_on : {"truth", "data"}
        Whether detection is drawn from p_sel(true θ) or p_sel(measured θ).
    batch_size : int
        Clusters drawn per batch (``n_obs`` mode).

    Returns
    -------
    astropy.table.Table
        Columns ``log_mass``, ``log_age``, ``av`` (+ errors, truth, ``p_sel``); ``meta`` records
        the truth, the seed, the number drawn and the selection.
    """
    if (n_obs is None) == (n_total is None):
        raise ValueError("give exactly one of n_obs or n_total")
    if select_on not in ("truth", "data"):
        raise ValueError(f"select_on must be 'truth' or 'data', got {select_on!r}")
    sigma = (
        None
        if measurement_sigma is None
        else np.broadcast_to(np.asarray(measurement_sigma, np.float64), (3,))
    )
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    kept_true, kept_obs, kept_p = [], [], []
    n_kept = 0
    n_drawn = 0
    size = int(n_total) if n_total is not None else int(batch_size)
    while True:
        key, sub = jax.random.split(key)
        truth = sample_population(model, params, size, sub)
        observed = truth if sigma is None else truth + sigma * rng.standard_normal(truth.shape)
        p = selection_probability(selection, truth if select_on == "truth" else observed)
        detected = rng.random(size) < p
        n_drawn += size
        kept_true.append(truth[detected])
        kept_obs.append(observed[detected])
        kept_p.append(p[detected])
        n_kept += int(detected.sum())
        if n_total is not None:
            break
        if n_kept >= n_obs:
            excess = n_kept - n_obs
            last = np.flatnonzero(detected)
            n_drawn -= (
                size - 1 - last[len(last) - 1 - excess]
            )  # clusters drawn up to the n_obs-th detection
            break
        if n_drawn >= max_total:
            raise RuntimeError(f"only {n_kept} of {n_obs} detected after {n_drawn} draws")
    truth = np.concatenate(kept_true)
    observed = np.concatenate(kept_obs)
    p = np.concatenate(kept_p)
    if n_obs is not None:
        truth, observed, p = truth[:n_obs], observed[:n_obs], p[:n_obs]
    table = Table()
    for j, name in enumerate(THETA_COLUMNS):
        table[name] = observed[:, j]
        if sigma is not None:
            table[f"{name}_lo"] = observed[:, j] - sigma[j]
            table[f"{name}_hi"] = observed[:, j] + sigma[j]
            table[f"true_{name}"] = truth[:, j]
    table["p_sel"] = p
    table.meta.update(
        {
            "truth": _jsonable(params),
            "seed": int(seed),
            "n_drawn": int(n_drawn),
            "select_on": select_on,
            "measurement_sigma": None if sigma is None else sigma.tolist(),
            "model": json.dumps(dataclasses.asdict(model)),
            "selection": repr(selection)
            if not isinstance(selection, (SelectionGrid, SelectionFunction))
            else type(selection).__name__,
        }
    )
    return table
