"""Maximum-likelihood refits for :mod:`jaxcomp.demographics.sensitivity`: the
maximum-likelihood (= MAP under the flat priors) hyperparameters of a catalogue, their Laplace
covariance, and their derivatives with respect to the selection shift δ by the implicit function
theorem, ``dΛ̂/dδ = -H_ΛΛ⁻¹ H_Λδ``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .marginalise import SelectionGrid
from .models import PopulationModel
from .sensitivity_integrals import (
    _ZERO_SHIFT,
    ParameterSpace,
    _as_float64,
    _inverse,
    _shift,
    detection_fraction_shifted,
)

__all__ = ["MaximumLikelihood", "maximum_likelihood", "shift_sensitivity"]


@dataclasses.dataclass(frozen=True)
class MaximumLikelihood:
    """Maximum-likelihood hyperparameters of a catalogue and their Laplace covariance.

    With the flat priors of :class:`PopulationModel` this is also the MAP and the
    mean of the Laplace approximation to the posterior.

    Attributes
    ----------
    names : tuple of str
        Order of ``vector`` (:class:`ParameterSpace` without ``log10_N``).
    vector : numpy.ndarray
    params : dict
    hessian : numpy.ndarray
        Hessian of the negative log-likelihood at the optimum.
    covariance : numpy.ndarray
        Its inverse (the Laplace covariance).
    log_likelihood : float
    shift : tuple of float
    converged : bool
    """

    names: tuple[str, ...]
    vector: np.ndarray
    params: dict
    hessian: np.ndarray
    covariance: np.ndarray
    log_likelihood: float
    shift: tuple[float, float, float]
    converged: bool

    def sigma(self, name: str) -> float:
        return float(math.sqrt(self.covariance[self.names.index(name), self.names.index(name)]))

    def value(self, name: str) -> float:
        return float(self.vector[self.names.index(name)])


def _catalogue_theta(model: PopulationModel, catalogue) -> np.ndarray:
    if (
        model.measurement_error != "none"
        or model.per_object_p_obs
        or model.likelihood != "marginal"
    ):
        raise ValueError(
            "maximum_likelihood supports the default likelihood (marginal, no measurement errors, "
            "no per-object p_obs)"
        )
    from .likelihood import prepare_data

    return np.asarray(prepare_data(catalogue, model).theta, np.float64)


def _negative_log_likelihood(vector, shift, theta, grid, model: PopulationModel, n_gauss: int):
    """-ln L of the marginalised-N likelihood at a flat parameter vector (no log10_N)."""
    params = ParameterSpace(model, include_log10_n=False).to_params(vector)
    alpha = detection_fraction_shifted(model, params, grid, shift, n_gauss=n_gauss)
    return -(jnp.sum(model.log_density(params, theta)) - theta.shape[0] * jnp.log(alpha))


def _search_to_vector(z, n_scalars: int, n_bins: int):
    """Search coordinates -> parameter vector: A_V probabilities from softmax logits (last fixed at
    0)."""
    head = z[:n_scalars]
    if n_bins:
        logits = jnp.concatenate([z[n_scalars:], jnp.zeros(1, z.dtype)])
        head = jnp.concatenate([head, jax.nn.softmax(logits)[:-1]])
    return head


@partial(jax.jit, static_argnames=("model", "n_gauss"))
def _search_objective(z, shift, theta, grid, model, n_gauss):
    space = ParameterSpace(model, include_log10_n=False)
    n_scalars = len(space._scalars())
    n_bins = model.n_av_bins if model.av == "piecewise" else 0
    return jax.value_and_grad(
        lambda x: _negative_log_likelihood(
            _search_to_vector(x, n_scalars, n_bins), shift, theta, grid, model, n_gauss
        )
    )(z)


@partial(jax.jit, static_argnames=("model", "n_gauss"))
def _hessian(vector, shift, theta, grid, model, n_gauss):
    return jax.hessian(_negative_log_likelihood)(vector, shift, theta, grid, model, n_gauss)


@partial(jax.jit, static_argnames=("model", "n_gauss"))
def _mixed_derivative(vector, shift, theta, grid, model, n_gauss):
    """∂²(-ln L)/∂Λ∂δ, shape (p, 3)."""
    return jax.jacfwd(jax.grad(_negative_log_likelihood, argnums=0), argnums=1)(
        vector, shift, theta, grid, model, n_gauss
    )


def maximum_likelihood(
    model: PopulationModel,
    catalogue,
    grid: SelectionGrid,
    shift=_ZERO_SHIFT,
    *,
    init: Mapping | None = None,
    n_gauss: int = 8,
    max_iterations: int = 500,
) -> MaximumLikelihood:
    """Maximise the selection-normalised likelihood (marginalised over N) of a catalogue.

    ``ln L(Λ) = Σ_i ln p(θ_i | Λ) - N_obs ln α(Λ, δ)``, in float64, with
    L-BFGS-B inside the prior bounds (A_V bin probabilities kept in
    [1e-9, 1] and their sum below 1 by a softmax during the search); the
    Hessian at the optimum is exact (forward-over-reverse AD).

    Parameters
    ----------
    catalogue : table or mapping
        Columns ``log_mass``, ``log_age``, ``av`` (checked by
        :func:`~jaxcomp.demographics.prepare_data`).
    shift : array, shape (3,)
        Selection shift δ assumed in the fit.
    init : mapping, optional
        Starting hyperparameters (default: the centre of each prior, equal A_V weights).

    Returns
    -------
    MaximumLikelihood
    """
    from scipy.optimize import minimize

    theta_np = _catalogue_theta(model, catalogue)
    space = ParameterSpace(model, include_log10_n=False)
    scalars = space._scalars()
    n_bins = model.n_av_bins if model.av == "piecewise" else 0
    start = {name: 0.5 * sum(model.prior_bounds(name)) for name in scalars}
    if init is not None:
        start.update({k: float(v) for k, v in init.items() if k in scalars})
    z0 = [start[name] for name in scalars]
    if n_bins:
        weights = (
            np.full(n_bins, 1.0 / n_bins)
            if init is None or "av_weights" not in init
            else np.asarray(init["av_weights"], np.float64) / np.sum(init["av_weights"])
        )
        z0 += list(np.log(np.maximum(weights[:-1], 1e-9)) - math.log(max(weights[-1], 1e-9)))
    bounds = [model.prior_bounds(name) for name in scalars] + [(-20.0, 20.0)] * max(n_bins - 1, 0)
    with jax.enable_x64(True):
        theta = jnp.asarray(theta_np)
        grid64 = _as_float64(grid)
        shift64 = jnp.asarray(np.asarray(_shift(shift), np.float64))

        def fun(z):
            value, grad = _search_objective(jnp.asarray(z), shift64, theta, grid64, model, n_gauss)
            return float(value), np.asarray(grad, np.float64)

        result = minimize(
            fun,
            np.asarray(z0, np.float64),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iterations, "gtol": 1e-8},
        )
        vector = _search_to_vector(jnp.asarray(result.x), len(scalars), n_bins)
        hessian = np.asarray(_hessian(vector, shift64, theta, grid64, model, n_gauss))
        params = {k: np.asarray(v) for k, v in space.to_params(vector).items()}
    at_bound = [
        name for name, x, (lo, hi) in zip(scalars, result.x, bounds) if min(x - lo, hi - x) < 1e-6
    ]
    if at_bound:
        raise RuntimeError(
            f"the maximum-likelihood {at_bound} sit on their prior bounds; the Laplace "
            "approximation does not apply (widen the priors or use a simpler model)"
        )
    return MaximumLikelihood(
        space.names,
        np.asarray(vector),
        params,
        hessian,
        _inverse(hessian, space.names),
        -float(result.fun),
        tuple(float(x) for x in np.asarray(shift64)),
        bool(result.success),
    )


def shift_sensitivity(
    model: PopulationModel,
    catalogue,
    grid: SelectionGrid,
    estimate: MaximumLikelihood,
    *,
    n_gauss: int = 8,
) -> dict[str, np.ndarray]:
    """dΛ̂/dδ: how the maximum-likelihood hyperparameters move when the assumed selection shifts.

    By the implicit function theorem at the optimum, ``dΛ̂/dδ = -H_ΛΛ⁻¹ ∂²(-ln L)/∂Λ∂δ``.
    Multiply the ``log_mass`` column by 0.4 for the change per magnitude of depth.

    Returns
    -------
    dict
        ``{parameter name: array (3,)}``: the derivative with respect to
        (δ log M [per dex], δ log T [per dex], δ A_V [per mag]).
    """
    theta_np = _catalogue_theta(model, catalogue)
    space = ParameterSpace(model, include_log10_n=False)
    if tuple(estimate.names) != space.names:
        raise ValueError(f"the estimate has parameters {estimate.names}, the model {space.names}")
    with jax.enable_x64(True):
        mixed = np.asarray(
            _mixed_derivative(
                jnp.asarray(estimate.vector),
                jnp.asarray(estimate.shift),
                jnp.asarray(theta_np),
                _as_float64(grid),
                model,
                n_gauss,
            )
        )
    derivative = -np.linalg.solve(estimate.hessian, mixed)
    return {name: derivative[i] for i, name in enumerate(space.names)}
