"""Gradient-based sensitivity of cluster demographics to the population and to the selection.

Everything here is a pure, differentiable JAX function of the population
hyperparameters Λ and of a **shift of the selection's inputs**
``δ = (δ log M [dex], δ log T [dex], δ A_V [mag])``: the selection that would
hold if every cluster were seen with its inputs displaced by δ,

    p_obs^δ(log M, log T, A_V) = p_obs(log M + δ_M, log T + δ_T, A_V + δ_A).

Two shifts have a direct physical reading:

* a **magnitude-limit (depth) offset** Δm [mag] (positive = deeper): at fixed
  age and extinction a cluster's magnitudes scale as -2.5 log M, so a survey
  Δm deeper sees a cluster of mass M as the original survey sees one of mass
  M · 10^(0.4 Δm): ``δ_M = 0.4 Δm`` (:func:`depth_shift`).  This is exact when
  the selection acts on magnitudes at fixed colours (every band deeper by the
  same Δm);
* an **extinction offset** δ_A [mag]: the selection of clusters that all carry
  δ_A more extinction than their catalogue A_V (e.g. an error in the foreground
  or in the extinction law's zero point).

The shift is applied to the population instead of the grid,
``∫ p_obs(θ + δ) p(θ|Λ) dθ = ∫ p_obs(θ') p(θ' - δ|Λ) dθ'``, i.e. the
quadrature weights of :func:`~jaxcomp.demographics.quadrature_weights` are taken
on the nodes ``x - δ``: the p_obs table is never interpolated, and the result is
smooth in δ (not piecewise linear between grid nodes).

Contents
--------
* :func:`expected_detected` (N_exp), :func:`detection_fraction_shifted` (α), and
  :func:`intensity_grid` (expected detected clusters per grid cell);
* :func:`corrected_bin_counts`: completeness-corrected counts per bin (eq. 17-18,
  clipped, unmasked) as a differentiable function of Λ and δ;
* :func:`fisher_information` and :func:`fisher_forecast`: the Fisher matrix of
  the inhomogeneous Poisson likelihood (``F = ∫ ∂λ ∂λᵀ / λ dθ``, by the same
  quadrature as N_exp) and σ(Λ) against survey depth;
* :func:`maximum_likelihood` and :func:`shift_sensitivity`: the maximum-likelihood
  (= MAP under the flat priors, = Laplace mean) hyperparameters of a catalogue, their
  Laplace covariance, and their derivatives with respect to δ by the implicit
  function theorem, ``dΛ̂/dδ = -H_ΛΛ⁻¹ H_Λδ``.

Parameter vectors
-----------------
Fisher matrices and optimisers work on a flat vector (:class:`ParameterSpace`):
the model's scalar hyperparameters in :attr:`PopulationModel.scalar_parameters`
order, then ``log10_N`` (Fisher only: the total number is always a parameter of
the Poisson process, whatever ``model.likelihood`` says), then, for a piecewise
p(A_V), the first K-1 bin probabilities ``av_weights[0..K-2]`` (the last is one
minus their sum).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from .distributions import PiecewiseConstantAV
from .marginalise import SelectionGrid, quadrature_weights
from .models import PopulationModel

__all__ = [
    "ParameterSpace",
    "FisherResult",
    "MaximumLikelihood",
    "depth_shift",
    "detection_fraction_shifted",
    "expected_detected",
    "intensity_grid",
    "corrected_bin_counts",
    "fisher_information",
    "fisher_forecast",
    "maximum_likelihood",
    "shift_sensitivity",
]

_ZERO_SHIFT = (0.0, 0.0, 0.0)
#: Fraction of a node spacing by which derivatives are taken off a quadrature tie (see
# ``_weights``).
_TIE_OFFSET = 0.6180339887e-3


def depth_shift(delta_mag) -> jax.Array:
    """Selection-input shift δ = (0.4 Δm, 0, 0) of a survey Δm [mag] deeper (Δm < 0: shallower)."""
    delta_mag = jnp.asarray(delta_mag)
    zero = jnp.zeros_like(delta_mag)
    return jnp.stack([0.4 * delta_mag, zero, zero], axis=-1)


def _shift(shift) -> jax.Array:
    shift = jnp.asarray(shift)
    if shift.shape != (3,):
        raise ValueError(
            f"shift must have shape (3,) for (log_mass [dex], log_age [dex], av [mag]), "
            f"got {shift.shape}"
        )
    return shift


# ------------------------------------------------------------------ parameters
@dataclasses.dataclass(frozen=True)
class ParameterSpace:
    """Flat-vector view of a model's hyperparameters (see the module docstring).

    Parameters
    ----------
    model : PopulationModel
    include_log10_n : bool
        Append ``log10_N`` after the scalar parameters (if the model does not already sample it).
    """

    model: PopulationModel
    include_log10_n: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the vector's entries."""
        names = list(self.model.scalar_parameters)
        if self.include_log10_n and "log10_N" not in names:
            names.append("log10_N")
        if self.model.av == "piecewise":
            names += [f"av_weights[{k}]" for k in range(self.model.n_av_bins - 1)]
        return tuple(names)

    @property
    def size(self) -> int:
        return len(self.names)

    def _scalars(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if not n.startswith("av_weights"))

    def to_vector(self, params: Mapping) -> jax.Array:
        """Flatten a parameter dict (``log10_N`` must be present if the space includes it)."""
        missing = [n for n in self._scalars() if n not in params]
        if missing:
            raise KeyError(f"parameters {missing} missing; the space has {self.names}")
        values = [jnp.asarray(params[n], jnp.result_type(float)) for n in self._scalars()]
        if self.model.av == "piecewise":
            if "av_weights" not in params:
                raise KeyError("parameter 'av_weights' missing (the model has a piecewise p(A_V))")
            weights = jnp.asarray(params["av_weights"], jnp.result_type(float))
            if weights.shape != (self.model.n_av_bins,):
                raise ValueError(
                    f"av_weights must have {self.model.n_av_bins} entries, got {weights.shape}"
                )
            weights = weights / jnp.sum(weights)
            values += list(weights[:-1])
        return jnp.stack(values)

    def to_params(self, vector) -> dict:
        """Inverse of :meth:`to_vector`."""
        vector = jnp.asarray(vector)
        if vector.shape != (self.size,):
            raise ValueError(
                f"parameter vector must have shape ({self.size},) for {self.names}, got "
                f"{vector.shape}"
            )
        scalars = self._scalars()
        params = {n: vector[i] for i, n in enumerate(scalars)}
        if self.model.av == "piecewise":
            free = vector[len(scalars) :]
            params["av_weights"] = jnp.concatenate([free, 1.0 - jnp.sum(free, keepdims=True)])
        return params


# ---------------------------------------------------------- shifted integrals
class _GeometricMean(eqx.Module):
    """Unnormalised density sqrt(p1 p2) of two distributions of one variable, for
    quadrature_weights."""

    first: object
    second: object

    @property
    def batch_shape(self):
        return ()

    def breakpoints(self):
        return jnp.sort(jnp.concatenate([self.first.breakpoints(), self.second.breakpoints()]))

    def _log_density(self, x):
        return 0.5 * (self.first._log_density(x) + self.second._log_density(x))


def _weights(
    model: PopulationModel, params: Mapping, grid: SelectionGrid, shift, n_gauss: int, params2=None
):
    """Quadrature weights on the mass, age and A_V nodes moved by ``-shift``.

    With ``params2`` the weights integrate sqrt(p(θ|params) p(θ|params2)) instead of p(θ|params).
    Returns ``(w_mass (n_m,), w_age (n_m, n_t) or (n_t,), w_av (n_a,))``.
    """
    shift = _shift(shift)
    leaves = jax.tree.leaves(params) + ([] if params2 is None else jax.tree.leaves(params2))
    dtype = jnp.result_type(grid.log_mass.dtype, shift.dtype, *leaves)
    axes = [axis.astype(dtype) for axis in (grid.log_mass, grid.log_age, grid.av)]
    exact = _weights_at(
        model, params, params2, [a - s for a, s in zip(axes, shift)], n_gauss, dtype
    )
    # The weights are continuously differentiable in the shift, but where a distribution's
    # breakpoint (a support edge, an A_V bin edge) falls exactly on a moved node -- as it does
    # at δ = 0 on the usual grids -- automatic differentiation through the clipping of the
    # quadrature sub-intervals returns a mixture of one-sided rules (off by up to 2x).  So the
    # derivatives are taken a tiny offset ε = 6e-4 of a node spacing away, where no tie occurs,
    # and the values at the exact shift: sg(w(δ)) + [w(δ + ε) - sg(w(δ + ε))], sg = stop_gradient.
    # The derivative error is O(ε · second derivative), ~1e-4 relative.
    offset = [_TIE_OFFSET * jnp.min(jnp.diff(a)) for a in axes]
    nudged = _weights_at(
        model, params, params2, [a - s - e for a, s, e in zip(axes, shift, offset)], n_gauss, dtype
    )
    sg = jax.lax.stop_gradient
    return tuple(sg(w) + (v - sg(v)) for w, v in zip(exact, nudged))


def _av_distribution(model, params, dtype):
    return PiecewiseConstantAV(
        jnp.asarray(model.av_edges, dtype),
        model.av_probabilities(params).astype(dtype),
        validate_args=False,
    )


def _weights_at(model: PopulationModel, params: Mapping, params2, nodes, n_gauss: int, dtype):
    mass_nodes, age_nodes, av_nodes = nodes

    def combine(make):
        return make(params) if params2 is None else _GeometricMean(make(params), make(params2))

    w_mass = quadrature_weights(combine(model.mass_distribution), mass_nodes, n_gauss=n_gauss)
    if model.mass_dependent_age:
        # the age distribution of a cluster whose (shifted) mass is the node's
        w_age = jax.vmap(
            lambda m: quadrature_weights(
                combine(lambda p: model.age_distribution(p, m)), age_nodes, n_gauss=n_gauss
            )
        )(mass_nodes)
    else:
        w_age = quadrature_weights(combine(model.age_distribution), age_nodes, n_gauss=n_gauss)
    w_av = quadrature_weights(
        combine(lambda p: _av_distribution(model, p, dtype)), av_nodes, n_gauss=n_gauss
    )
    return w_mass, w_age, w_av


def _contract(p_obs, w_mass, w_age, w_av):
    if w_age.ndim == 2:
        return jnp.einsum("ijk,i,ij,k->", p_obs, w_mass, w_age, w_av)
    return jnp.einsum("ijk,i,j,k->", p_obs, w_mass, w_age, w_av)


def detection_fraction_shifted(
    model: PopulationModel,
    params: Mapping,
    grid: SelectionGrid,
    shift=_ZERO_SHIFT,
    *,
    n_gauss: int = 8,
) -> jax.Array:
    """α(Λ, δ) = ∫ p_obs(θ + δ) p(θ | Λ) dθ on the full 3-D selection grid.

    Parameters
    ----------
    model : PopulationModel
    params : mapping
        Hyperparameters (``alpha_M``, ``log_M_break``, ``alpha_T``, ``av_weights``, ...).
    grid : SelectionGrid
        p_obs on (log_mass, log_age, av) nodes.
    shift : array, shape (3,)
        δ = (δ log M [dex], δ log T [dex], δ A_V [mag]); see :func:`depth_shift`.
    n_gauss : int
        Gauss-Legendre points per quadrature sub-interval.

    Returns
    -------
    jax.Array
        Scalar in [0, 1], differentiable in ``params`` and ``shift``.
    """
    w_mass, w_age, w_av = _weights(model, params, grid, shift, n_gauss)
    return _contract(grid.p_obs.astype(w_mass.dtype), w_mass, w_age, w_av)


def expected_detected(
    model: PopulationModel,
    params: Mapping,
    grid: SelectionGrid,
    shift=_ZERO_SHIFT,
    *,
    n_total=None,
    n_gauss: int = 8,
) -> jax.Array:
    """N_exp(Λ, δ) = N · α(Λ, δ); ``n_total`` defaults to ``10 ** params["log10_N"]``."""
    if n_total is None:
        if "log10_N" not in params:
            raise KeyError(
                "give n_total or params['log10_N'] (the total number of clusters in the population)"
            )
        n_total = 10.0 ** params["log10_N"]
    return n_total * detection_fraction_shifted(model, params, grid, shift, n_gauss=n_gauss)


def intensity_grid(
    model: PopulationModel,
    params: Mapping,
    grid: SelectionGrid,
    shift=_ZERO_SHIFT,
    *,
    n_total=None,
    n_gauss: int = 8,
) -> jax.Array:
    """Expected number of detected clusters attached to each grid node, shape (n_mass, n_age, n_av).

    ``λ_ijk = N p_obs,ijk w^M_i w^T_j w^A_k``; its sum is :func:`expected_detected`.
    The weights are the linear-interpolation ("tent") quadrature weights of
    :func:`~jaxcomp.demographics.quadrature_weights`, so ``λ_ijk`` is the
    expected count in a soft bin centred on the node.
    """
    if n_total is None:
        n_total = 10.0 ** params["log10_N"]
    w_mass, w_age, w_av = _weights(model, params, grid, shift, n_gauss)
    p_obs = grid.p_obs.astype(w_mass.dtype)
    if w_age.ndim == 2:
        return n_total * p_obs * w_mass[:, None, None] * w_age[:, :, None] * w_av[None, None, :]
    return n_total * p_obs * w_mass[:, None, None] * w_age[None, :, None] * w_av[None, None, :]


def corrected_bin_counts(
    model: PopulationModel,
    params: Mapping,
    grid: SelectionGrid,
    values,
    bins,
    *,
    quantity: str = "log_mass",
    shift=_ZERO_SHIFT,
    clip: float | None = None,
    n_gauss: int = 8,
) -> jax.Array:
    """Completeness-corrected counts per bin, ``n_raw / mean_{i in bin} max(p_corr(x_i), clip)``,
    differentiable.

    The ``n_corr`` column of :func:`~jaxcomp.demographics.corrected_counts` (eq. 17-18)
    as a function of Λ and δ.  For the mass function
    ``p_corr(log M) = ∬ p_obs^δ p(log T | Λ_T) p(A_V | Λ_A)`` (the age and
    extinction distributions of ``params``), for the age function
    ``p_corr(log T) = ∬ p_obs^δ p(log M | Λ_M) p(A_V | Λ_A)``, linearly
    interpolated at each cluster's value.  No masking (see
    :func:`~jaxcomp.demographics.corrected_counts` for the tables with masks and bands).

    Parameters
    ----------
    values : array, shape (n,)
        log_mass [log10 Msun] or log_age [log10 yr] of the observed clusters (finite).
    bins : array, shape (n_bins + 1,)
        Increasing bin edges; clusters outside are not counted.
    quantity : {"log_mass", "log_age"}
    clip : float, optional
        Lower clip of p_corr; default :data:`~jaxcomp.demographics.MASS_CLIP` or ``AGE_CLIP``.

    Returns
    -------
    jax.Array, shape (n_bins,)
    """
    from .corrections import AGE_CLIP, MASS_CLIP

    if quantity not in ("log_mass", "log_age"):
        raise ValueError(f"quantity must be 'log_mass' or 'log_age', got {quantity!r}")
    if model.mass_dependent_age:
        raise NotImplementedError("corrected counts assume separable mass and age distributions")
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValueError("values must be a one-dimensional array of finite numbers")
    bins = np.asarray(bins, np.float64)
    if bins.ndim != 1 or bins.shape[0] < 2 or np.any(np.diff(bins) <= 0):
        raise ValueError("bins must be a strictly increasing 1-d array with at least 2 edges")
    clip = (MASS_CLIP if quantity == "log_mass" else AGE_CLIP) if clip is None else clip
    shift = _shift(shift)
    w_mass, w_age, w_av = _weights(model, params, grid, shift, n_gauss)
    p_obs = grid.p_obs.astype(w_mass.dtype)
    if quantity == "log_mass":
        p_corr = jnp.einsum("ijk,j,k->i", p_obs, w_age, w_av)
        nodes = grid.log_mass.astype(w_mass.dtype) - shift[0]
    else:
        p_corr = jnp.einsum("ijk,i,k->j", p_obs, w_mass, w_av)
        nodes = grid.log_age.astype(w_mass.dtype) - shift[1]
    p = jnp.maximum(jnp.interp(jnp.asarray(values), nodes, p_corr), clip)
    inside = (values >= bins[0]) & (values <= bins[-1])
    index = np.clip(np.searchsorted(bins, values, side="right") - 1, 0, bins.shape[0] - 2)
    n_raw = np.bincount(index[inside], minlength=bins.shape[0] - 1).astype(np.float64)
    p_sum = jnp.zeros(bins.shape[0] - 1, p.dtype).at[index].add(jnp.where(inside, p, 0.0))
    # n_corr = n_raw / mean(p) = n_raw² / Σ p in each occupied bin, 0 in empty ones
    return jnp.where(n_raw > 0, n_raw**2 / jnp.where(n_raw > 0, p_sum, 1.0), 0.0)


# -------------------------------------------------------------------- Fisher
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


def _inverse(matrix: np.ndarray, names: Sequence[str]) -> np.ndarray:
    eigenvalues = np.linalg.eigvalsh(matrix)
    if eigenvalues[0] <= eigenvalues[-1] * 1e-13:
        raise np.linalg.LinAlgError(
            f"the Fisher matrix of {tuple(names)} is singular (eigenvalues {eigenvalues[0]:.3g} .. "
            f"{eigenvalues[-1]:.3g}): a parameter is not constrained by this population and "
            "selection "
            "(e.g. a Schechter break far above the mass range)"
        )
    return np.linalg.inv(matrix)


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


# ------------------------------------------------------ maximum likelihood
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


def _as_float64(grid: SelectionGrid) -> SelectionGrid:
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), grid)


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
