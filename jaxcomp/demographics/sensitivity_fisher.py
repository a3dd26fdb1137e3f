"""Fisher forecasts for :mod:`jaxcomp.demographics.sensitivity`: the Fisher matrix of the
inhomogeneous Poisson likelihood of a selected catalogue (``F = ∫ ∂λ ∂λᵀ / λ dθ``, by the same
quadrature as N_exp) and the forecast σ of the hyperparameters against survey depth.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from .marginalise import SelectionGrid
from .models import PopulationModel
from .sensitivity_integrals import (
    _ZERO_SHIFT,
    ParameterSpace,
    _as_float64,
    _contract,
    _inverse,
    _shift,
    _weights,
    depth_shift,
    expected_detected,
)

__all__ = ["FisherResult", "fisher_forecast", "fisher_information"]


@dataclasses.dataclass(frozen=True)
class FisherResult:
    """Fisher matrix of the Poisson likelihood at one set of hyperparameters.

    Attributes
    ----------
    names : tuple of str
        Parameter order (:class:`ParameterSpace`).
    matrix : numpy.ndarray, shape (p, p)
        Fisher information.
    covariance : numpy.ndarray, shape (p, p)
        Its inverse, the Cramér-Rao covariance (marginalised over the other parameters).
    n_expected : float
        Expected number of detected clusters N_exp.
    shift : tuple of float
        The selection shift δ used.
    """

    names: tuple[str, ...]
    matrix: np.ndarray
    covariance: np.ndarray
    n_expected: float
    shift: tuple[float, float, float]

    def sigma(self, name: str) -> float:
        """Forecast standard deviation of one parameter, marginalised over the others."""
        return float(math.sqrt(self.covariance[self.names.index(name), self.names.index(name)]))

    def sigma_fixed(self, name: str) -> float:
        """Standard deviation with every other parameter held fixed (1/sqrt(F_ii))."""
        i = self.names.index(name)
        return float(1.0 / math.sqrt(self.matrix[i, i]))


def _fisher_matrix_function(model: PopulationModel, grid64: SelectionGrid, n_gauss: int):
    """A jitted ``(vector, shift) -> 4 d²H/dΛ'dΛ''`` (float64; call it under ``jax.enable_x64``)."""
    space = ParameterSpace(model)
    p_obs = grid64.p_obs

    def overlap(v1, v2, shift):
        p1, p2 = space.to_params(v1), space.to_params(v2)
        weights = _weights(model, p1, grid64, shift, n_gauss, params2=p2)
        return 10.0 ** (0.5 * (p1["log10_N"] + p2["log10_N"])) * _contract(p_obs, *weights)

    return jax.jit(
        lambda vector, shift: (
            4.0 * jax.jacfwd(jax.grad(overlap, argnums=1), argnums=0)(vector, vector, shift)
        )
    )


def fisher_information(
    model: PopulationModel,
    params: Mapping,
    grid: SelectionGrid,
    shift=_ZERO_SHIFT,
    *,
    n_total=None,
    n_gauss: int = 8,
    _matrix_function=None,
) -> FisherResult:
    """Fisher matrix of the inhomogeneous Poisson likelihood of a catalogue selected by ``grid``.

    For intensity ``λ(θ) = N p_obs(θ + δ) p(θ | Λ)`` the Fisher information is
    ``F_ab = ∫ ∂_a λ ∂_b λ / λ dθ = 4 ∫ ∂_a √λ ∂_b √λ dθ``.  It is computed as
    ``F_ab = 4 ∂²H / ∂Λ'_a ∂Λ''_b`` at ``Λ' = Λ'' = Λ`` with
    ``H(Λ', Λ'') = ∫ √(λ_Λ' λ_Λ'') dθ``, an integral of the same form as N_exp
    (p_obs on the grid times a product of one-dimensional densities), so it uses
    the same exact quadrature (no binning of the scores).  Because N is a free
    parameter (``log10_N``), the shape parameters' marginal σ equal those of
    the likelihood marginalised over N.

    Parameters
    ----------
    model : PopulationModel
    params : mapping
        Fiducial hyperparameters; ``log10_N`` is needed unless ``n_total`` is given.
    grid : SelectionGrid
    shift : array, shape (3,)
        Selection shift δ (e.g. :func:`depth_shift` for a deeper survey).
    n_total : float, optional
        Total number of clusters N (sets ``log10_N``).

    Returns
    -------
    FisherResult
    """
    params = dict(params)
    if n_total is not None:
        params["log10_N"] = math.log10(float(n_total))
    if "log10_N" not in params:
        raise KeyError("give n_total or params['log10_N']")
    space = ParameterSpace(model)
    shift = _shift(shift)
    with jax.enable_x64(True):
        vector = jnp.asarray(np.asarray(space.to_vector(params), np.float64))
        grid64 = _as_float64(grid)
        shift64 = jnp.asarray(np.asarray(shift, np.float64))
        matrix_function = _matrix_function or _fisher_matrix_function(model, grid64, n_gauss)
        matrix = np.asarray(matrix_function(vector, shift64))
        matrix = 0.5 * (matrix + matrix.T)
        n_expected = float(
            expected_detected(model, space.to_params(vector), grid64, shift64, n_gauss=n_gauss)
        )
    covariance = _inverse(matrix, space.names)
    return FisherResult(
        space.names, matrix, covariance, n_expected, tuple(float(x) for x in np.asarray(shift))
    )


def fisher_forecast(
    model: PopulationModel,
    params: Mapping,
    grid: SelectionGrid,
    depth_offsets_mag,
    *,
    n_total=None,
    parameters: Sequence[str] | None = None,
    n_gauss: int = 8,
) -> Table:
    """Forecast σ of the hyperparameters against survey depth.

    Parameters
    ----------
    depth_offsets_mag : sequence of float
        Depth offsets Δm [mag] relative to the survey the grid describes (positive = deeper).
    parameters : sequence of str, optional
        Which σ to report (default: the model's scalar parameters).

    Returns
    -------
    astropy.table.Table
        One row per offset: ``delta_mag``, ``log_mass_shift`` (0.4 Δm), ``n_expected``
        (detected clusters), and ``sigma_<name>`` (marginalised) and
        ``sigma_fixed_<name>`` (others fixed) for each parameter.
    """
    parameters = tuple(parameters or model.scalar_parameters)
    rows = []
    with jax.enable_x64(True):  # one compiled Fisher matrix for every depth
        matrix_function = _fisher_matrix_function(model, _as_float64(grid), n_gauss)
    for delta in np.atleast_1d(np.asarray(depth_offsets_mag, np.float64)):
        result = fisher_information(
            model,
            params,
            grid,
            depth_shift(float(delta)),
            n_total=n_total,
            n_gauss=n_gauss,
            _matrix_function=matrix_function,
        )
        row = {
            "delta_mag": float(delta),
            "log_mass_shift": 0.4 * float(delta),
            "n_expected": result.n_expected,
        }
        for name in parameters:
            row[f"sigma_{name}"] = result.sigma(name)
            row[f"sigma_fixed_{name}"] = result.sigma_fixed(name)
        rows.append(row)
    table = Table(rows=rows)
    table["delta_mag"].unit = "mag"
    table["log_mass_shift"].unit = "dex"
    table.meta.update(
        {
            "model": model.describe(),
            "fiducial": {k: np.asarray(v).tolist() for k, v in params.items()},
            "n_total": None if n_total is None else float(n_total),
        }
    )
    return table
