"""Sufficient statistics of exact catalogues: the sum over clusters of ln p(θ_i|Λ) in O(1).

For exact catalogue values (``measurement_error="none"``, no per-object p_obs) the
selection-normalised likelihood needs the clusters only through
``Σ_i ln p(θ_i|Λ)``.  For the population forms whose log densities are linear in a
few fixed functions of θ (exponential families), that sum depends on the catalogue
only through a handful of numbers computed once, before sampling
(:func:`summarise_catalogue`):

* Schechter mass function, ``ln f(x) = (α+1) ln10 x - 10^(x - b) - c(Λ)``:
  ``Σ_i ln f(x_i) = (α+1) ln10 Σ_i x_i - 10^(-b) Σ_i 10^(x_i) - N c(Λ)``
  (``x = log_mass`` [log10 Msun], ``b = log_M_break``, ``c`` the distribution's
  peak shift);
* power-law mass or age distribution, ``ln f(x) = β (x - x_top)``:
  ``β (Σ_i x_i - N x_top)``;
* piecewise-constant p(A_V): ``Σ_k n_k (ln q_k - ln Δ_k)`` with ``n_k`` the clusters
  per A_V bin.

The unnormalised densities ``f`` are the distributions' own ``_log_unnormalised``,
normalised by the quadrature that gives the detection fraction α(Λ)
(:func:`~jaxcomp.demographics.likelihood._terms_and_fraction`), so the sum equals the
per-cluster sum of that function up to floating-point rounding (the order of the
additions), but costs O(1) instead of O(N) per gradient evaluation: in the many-field
model (30 fields x 1000 clusters) that is what NUTS pays at every leapfrog step.

Not summarisable (:func:`is_summarisable` is False, the per-cluster form is used):
measurement errors, per-object p_obs, the broken power-law age distribution (its break
is a parameter) and the mass-dependent age slope.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .distributions import PowerLawLogAge, PowerLawLogMass, SchechterLogMass
from .likelihood import LikelihoodGrid, _normalisation
from .models import PopulationModel

__all__ = [
    "CatalogueSummary",
    "is_summarisable",
    "summarise_catalogue",
    "summed_log_density",
    "summary_log_likelihood",
]

LN10 = math.log(10.0)


class CatalogueSummary(eqx.Module):
    """Sufficient statistics of one exact catalogue (a pytree; any leading batch axes).

    Attributes
    ----------
    n_objects : jax.Array
        Number of clusters N.
    sum_log_mass : jax.Array
        ``Σ_i log_mass_i`` [log10 Msun].
    sum_mass : jax.Array
        ``Σ_i 10**log_mass_i`` [Msun].
    sum_log_age : jax.Array
        ``Σ_i log_age_i`` [log10 yr].
    av_counts : jax.Array, shape (..., n_bins)
        Clusters per A_V bin (the bins of ``PopulationModel.av_edges``).
    """

    n_objects: jax.Array
    sum_log_mass: jax.Array
    sum_mass: jax.Array
    sum_log_age: jax.Array
    av_counts: jax.Array


def is_summarisable(model: PopulationModel) -> bool:
    """True if ``Σ_i ln p(θ_i|Λ)`` of ``model`` depends on exact catalogues only through a
    :class:`CatalogueSummary` (see the module docstring)."""
    return (
        model.measurement_error == "none"
        and not model.per_object_p_obs
        and not model.mass_dependent_age
        and model.age == "power_law"
        and model.mass in ("schechter", "power_law")
    )


def summarise_catalogue(model: PopulationModel, theta, mask=None) -> CatalogueSummary | None:
    """The :class:`CatalogueSummary` of exact values ``theta`` (float64 on the host).

    Parameters
    ----------
    model : PopulationModel
        Must be :func:`is_summarisable`.
    theta : array, shape (n, 3)
        ``(log_mass [log10 Msun], log_age [log10 yr], av [mag])`` per cluster.
    mask : array of bool, shape (n,), optional
        The clusters to count (padding excluded); default all.

    Returns
    -------
    CatalogueSummary or None
        None if any counted value lies outside the model's support, where the per-cluster
        density is -inf: the caller then keeps the per-cluster form, which says so.
    """
    if not is_summarisable(model):
        raise ValueError(f"the model ({model.describe()}) has no catalogue summary")
    theta = np.asarray(theta, np.float64).reshape(-1, 3)
    mask = np.ones(theta.shape[0], bool) if mask is None else np.asarray(mask, bool)
    theta = theta[mask]
    log_mass, log_age, av = theta[:, 0], theta[:, 1], theta[:, 2]
    edges = np.asarray(model.av_edges, np.float64)
    inside = (
        (log_mass >= model.log_mass_range[0])
        & (log_mass <= model.log_mass_range[1])
        & (log_age >= model.log_age_range[0])
        & (log_age <= model.log_age_range[1])
        & (av >= edges[0])
        & (av <= edges[-1])
    )
    if not inside.all():
        return None
    # the bin of PopulationModel.av_log_density: right-closed search, last edge in the last bin
    index = np.clip(np.searchsorted(edges, av, side="right") - 1, 0, edges.shape[0] - 2)
    return CatalogueSummary(
        n_objects=jnp.asarray(float(theta.shape[0])),
        sum_log_mass=jnp.asarray(np.sum(log_mass)),
        sum_mass=jnp.asarray(np.sum(np.exp(LN10 * log_mass))),
        sum_log_age=jnp.asarray(np.sum(log_age)),
        av_counts=jnp.asarray(np.bincount(index, minlength=edges.shape[0] - 1).astype(np.float64)),
    )


def _summed_log_unnormalised(distribution, n, sum_x, sum_10_x=None):
    """``Σ_i distribution._log_unnormalised(x_i)`` from ``N``, ``Σ x_i`` (and ``Σ 10^x_i``)."""
    if isinstance(distribution, SchechterLogMass):
        alpha, log_mass_break = distribution.alpha, distribution.log_mass_break
        shift = distribution._log_peak(alpha, log_mass_break, distribution.low, distribution.high)
        return (alpha + 1.0) * LN10 * sum_x - jnp.exp(-LN10 * log_mass_break) * sum_10_x - n * shift
    if isinstance(distribution, (PowerLawLogMass, PowerLawLogAge)):
        beta = distribution._beta()
        top = jnp.where(beta > 0, distribution.high, distribution.low)
        return beta * (sum_x - n * top)
    raise TypeError(f"no catalogue summary for {type(distribution).__name__}")


def summed_log_density(
    model: PopulationModel,
    params,
    summary: CatalogueSummary,
    mass,
    age,
    log_norm_mass,
    log_norm_age,
) -> jax.Array:
    """``Σ_i ln p(θ_i|Λ)`` of a summarised catalogue, the unnormalised densities of ``mass`` and
    ``age`` normalised by ``log_norm_mass`` and ``log_norm_age`` (natural log)."""
    n = summary.n_objects
    total = _summed_log_unnormalised(mass, n, summary.sum_log_mass, summary.sum_mass)
    total = total + _summed_log_unnormalised(age, n, summary.sum_log_age)
    total = total - n * (log_norm_mass + log_norm_age)
    probabilities = model.av_probabilities(params)
    counts = summary.av_counts
    # empty bins contribute nothing, also where their probability is 0 (no 0 x -inf)
    log_q = jnp.log(jnp.where(counts > 0, probabilities, 1.0))
    log_width = jnp.log(jnp.diff(jnp.asarray(model.av_edges, log_q.dtype)))
    return total + jnp.sum(counts * (log_q - log_width))


def summary_log_likelihood(
    model: PopulationModel,
    params,
    summary: CatalogueSummary,
    grid: LikelihoodGrid,
    *,
    n_gauss: int = 8,
) -> tuple[jax.Array, jax.Array]:
    """Marginalised-N log-likelihood ``Σ_i ln p(θ_i|Λ) - N ln α(Λ)`` and α(Λ) of one field.

    Equal to :func:`~jaxcomp.demographics.log_likelihood` of the exact catalogue
    (``likelihood="marginal"``) up to rounding; one field's parameters, summary and grid
    (vmap over fields).
    """
    mass, age, log_norm_mass, log_norm_age, alpha = _normalisation(
        model, params, grid, n_gauss=n_gauss
    )
    terms = summed_log_density(model, params, summary, mass, age, log_norm_mass, log_norm_age)
    return terms - summary.n_objects * jnp.log(alpha), alpha
