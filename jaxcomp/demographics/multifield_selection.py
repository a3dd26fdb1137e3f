"""Selection-function uncertainty in the multi-field model: per-field ensemble likelihoods.

Each field ``f`` has its own selection ensemble (``M`` members, e.g. a bootstrap
ensemble trained on that field's injection campaign,
:func:`~jaxcomp.demographics.member_selection_grid`).  The fields' member grids are
stacked by :func:`~jaxcomp.demographics.stack_fields` into one
:class:`~jaxcomp.demographics.LikelihoodGrid` whose p_obs arrays carry a field and a
member axis, (n_fields, M, ...).

The likelihood of field ``f`` is the single-field ensemble likelihood
(:mod:`jaxcomp.demographics.selection_uncertainty`): the **full** per-member
selection-normalised log-likelihood (marginalised-N form) including the detected
clusters' own ``Σ_i ln p_obs,f,m(θ_i)``,

``ln L_f,m = Σ_i ln p_obs,f,m(θ_i) + Σ_i ln p(θ_i|Λ_f) - N_obs,f ln α_f,m(Λ_f)``,

averaged over the members, ``ln L_f = logsumexp_m ln L_f,m - ln M``; the fields'
selection functions are taken as independent (each from its own campaign), so the
total is ``Σ_f ln L_f``: every field's selection is marginalised separately.  (Fields
that share one network, i.e. the *same* member draw, would need the average of the
product over fields instead; that is not what this module computes.)

With identical members ``ln L_f`` equals the ``"none"`` likelihood of that grid plus the
constant ``Σ_i ln p_obs,f(θ_i)``: the same posterior.  The diagnostics of a fit
(:func:`field_selection_diagnostics`) are those of a single-field fit, per field: the
variance over field ``f``'s members of ``ln L_f,m`` at the posterior median, and the
share of each parameter's posterior variance due to field ``f``'s selection (the draws
reweighted by ``L_f,m / L_f``, exact for the ensemble fit: the posterior given member
``m`` of field ``f`` is the fitted one times ``L_f,m / L_f``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .likelihood import LikelihoodGrid, _terms_and_fraction
from .marginalise import SelectionGrid
from .multifield_model import MultiFieldData, MultiFieldModel
from .selection_uncertainty import over_members, selection_diagnostics, warn_selection_variance

__all__ = [
    "field_ensemble_log_likelihoods",
    "field_member_log_likelihoods",
    "field_members",
    "field_selection_diagnostics",
    "mean_field_member_grid",
]


def field_members(grid: LikelihoodGrid) -> int | None:
    """Members per field of a stacked field grid (p_obs (n_fields, M, ...)); None for single
    grids."""
    return int(grid.p_obs_binned.shape[1]) if grid.p_obs_binned.ndim == 5 else None


def mean_field_member_grid(grid: LikelihoodGrid) -> LikelihoodGrid:
    """The stacked field grid of the ensemble means (p_obs averaged over the member axis)."""
    if field_members(grid) is None:
        return grid
    selection = grid.selection
    return LikelihoodGrid(
        grid.log_mass,
        grid.log_age,
        grid.av_edges,
        jnp.mean(grid.p_obs_binned, axis=1),
        SelectionGrid(
            selection.log_mass, selection.log_age, selection.av, jnp.mean(selection.p_obs, axis=1)
        ),
    )


def _field_params(model: MultiFieldModel, params) -> dict:
    names = list(model.field_parameters) + (["av_weights"] if model.has_av_weights else [])
    return {name: params[name] for name in names}


def field_member_log_likelihoods(
    model: MultiFieldModel,
    params,
    data: MultiFieldData,
    grid: LikelihoodGrid,
    n_gauss: int = 8,
):
    """``ln L_f,m`` (n_fields, M) and ``α_f,m`` (n_fields, M) of every field and member.

    ``params``: the per-field parameters (n_fields,) (and ``av_weights`` (n_fields,
    n_bins)); ``grid``: a stacked member grid (:func:`~jaxcomp.demographics.stack_fields`
    of member grids).  Padded clusters are masked out; the per-member terms are the
    single-field ones (module docstring), vmapped over fields and members.
    """
    population = model.population

    def one_field(field_params, objects, mask, field_grid):
        n_obs = jnp.sum(mask)

        def one_member(member_grid):
            terms, alpha = _terms_and_fraction(
                population, field_params, objects, member_grid, n_gauss=n_gauss
            )
            log_l = jnp.sum(jnp.where(mask, terms, 0.0)) - n_obs * jnp.log(alpha)
            if not population.per_object_p_obs:
                log_p_obs = member_grid.log_p_obs(objects.theta)
                log_l = log_l + jnp.sum(jnp.where(mask, log_p_obs, 0.0))
            return log_l, alpha

        return over_members(one_member, field_grid)

    return jax.vmap(one_field)(_field_params(model, params), data.objects, data.mask, grid)


def field_ensemble_log_likelihoods(
    model: MultiFieldModel,
    params,
    data: MultiFieldData,
    grid: LikelihoodGrid,
    n_gauss: int = 8,
):
    """``ln L_f = ln (1/M) Σ_m L_f,m`` (n_fields,) and the member-weighted detected fraction
    ``Σ_m p(m|d_f, Λ_f) α_f,m`` (n_fields,)."""
    log_l, alpha = field_member_log_likelihoods(model, params, data, grid, n_gauss=n_gauss)
    weighted_alpha = jnp.sum(jax.nn.softmax(log_l, axis=1) * alpha, axis=1)
    return jax.nn.logsumexp(log_l, axis=1) - math.log(log_l.shape[1]), weighted_alpha


def _field_plain_log_likelihoods(model, params, data, grid, n_gauss=8):
    """``Σ_i ln p(θ_i|Λ_f) - N_obs,f ln α_f`` (n_fields,) with a single grid per field."""
    from .multifield_model import field_log_terms

    terms, alpha = field_log_terms(model, params, data, grid, n_gauss=n_gauss)
    return jnp.sum(terms, axis=1) - jnp.sum(data.mask, axis=1) * jnp.log(alpha)


def _posterior_median(model: MultiFieldModel, flat: dict) -> dict:
    median = {name: np.median(flat[name], axis=0) for name in model.field_parameters}
    if model.has_av_weights:
        weights = np.median(flat["av_weights"], axis=0)
        median["av_weights"] = weights / weights.sum(axis=-1, keepdims=True)
    return median


def field_selection_diagnostics(
    model: MultiFieldModel,
    samples: dict,
    data: MultiFieldData,
    member_grid: LikelihoodGrid,
    field_names,
    *,
    selection_uncertainty: str,
    mean_grid: LikelihoodGrid | None = None,
    n_gauss: int = 8,
    tolerance: float | None = None,
) -> dict:
    """Per field, :func:`~jaxcomp.demographics.selection_diagnostics` of a multi-field fit.

    Parameters
    ----------
    model : MultiFieldModel
    samples : dict
        Posterior draws, each (chains, draws, ...) (per-field sites (..., n_fields)).
    data : MultiFieldData
    member_grid : LikelihoodGrid
        The stacked member grid.
    field_names : sequence of str
    selection_uncertainty : {"none", "ensemble"}
        How the fit used the members: the ensemble average, or ``mean_grid`` (the
        ensemble-mean grid of every field) as exact.
    mean_grid : LikelihoodGrid, optional
        Needed for ``"none"``.
    n_gauss : int
    tolerance : float, optional
        Warn (naming the fields) when a field's ``Var_m ln L_f,m`` exceeds it.

    Returns
    -------
    dict
        ``{field name: {"log_likelihood_variance", "member_weights", "member_ess",
        "variance_share"}}``: ``Var_m ln L_f,m`` at the posterior median of the field's
        parameters (ddof 1); the shares of the field's parameters and of the population
        parameters.
    """
    names = list(model.field_parameters) + (["av_weights"] if model.has_av_weights else [])
    first = np.asarray(samples[names[0]])
    n_draws = first.shape[0] * first.shape[1]
    flat = {
        k: np.asarray(samples[k]).reshape((n_draws,) + np.shape(samples[k])[2:])
        for k in list(names) + list(model.population_parameters)
    }
    median = _posterior_median(model, flat)
    rows = {k: np.concatenate([flat[k], np.asarray(median[k], flat[k].dtype)[None]]) for k in names}
    n_rows = n_draws + 1
    members = int(member_grid.p_obs_binned.shape[1])
    per_row = int(np.prod(np.shape(data.objects.theta)[:2])) * members
    if data.objects.samples is not None:
        per_row *= int(data.objects.samples.shape[2])
    block = min(n_rows, max(1, int(2e7 // max(1, per_row))))

    member_fn = jax.jit(
        jax.vmap(
            lambda p, d, g: field_member_log_likelihoods(model, p, d, g, n_gauss=n_gauss)[0],
            in_axes=(0, None, None),
        )
    )
    plain_fn = jax.jit(
        jax.vmap(
            lambda p, d, g: _field_plain_log_likelihoods(model, p, d, g, n_gauss=n_gauss),
            in_axes=(0, None, None),
        )
    )
    member_log_l, fit_log_l = [], []
    for start in range(0, n_rows, block):
        index = np.minimum(np.arange(start, start + block), n_rows - 1)  # last block padded
        part = {k: jnp.asarray(rows[k][index]) for k in names}
        member = np.asarray(member_fn(part, data, member_grid))  # (block, F, M)
        if selection_uncertainty == "ensemble":
            single = np.logaddexp.reduce(member, axis=2) - np.log(members)
        else:
            single = np.asarray(plain_fn(part, data, mean_grid))
        keep = min(block, n_rows - start)
        member_log_l.append(member[:keep])
        fit_log_l.append(single[:keep])
    member_log_l, fit_log_l = np.concatenate(member_log_l), np.concatenate(fit_log_l)
    out = {}
    for f, name in enumerate(field_names):
        draws = {p: flat[p][:, f] for p in model.field_parameters}
        draws.update({p: flat[p] for p in model.population_parameters})
        out[str(name)] = selection_diagnostics(
            member_log_l[:-1, f], fit_log_l[:-1, f], draws, member_log_l[-1, f]
        )
    if tolerance is not None:
        warn_selection_variance(
            {k: v["log_likelihood_variance"] for k, v in out.items()},
            members,
            tolerance,
            selection_uncertainty,
            stacklevel=4,
        )
    return out
