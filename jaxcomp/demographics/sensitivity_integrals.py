"""The population integrals of :mod:`jaxcomp.demographics.sensitivity` with the selection's
inputs shifted by δ: N_exp, the detected fraction α, the detected intensity per grid cell and
the completeness-corrected bin counts as differentiable functions of Λ and δ, and the flat
parameter vector (:class:`ParameterSpace`) that the Fisher and maximum-likelihood modules use.

See :mod:`jaxcomp.demographics.sensitivity` for the shift δ and its physical readings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .distributions import PiecewiseConstantAV
from .marginalise import SelectionGrid, quadrature_weights
from .models import PopulationModel

__all__ = [
    "ParameterSpace",
    "corrected_bin_counts",
    "depth_shift",
    "detection_fraction_shifted",
    "expected_detected",
    "intensity_grid",
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


# ----------------------------------------------- shared by the Fisher and ML modules
def _as_float64(grid: SelectionGrid) -> SelectionGrid:
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), grid)


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
