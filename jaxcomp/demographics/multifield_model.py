"""The hierarchical population model of several fields, each with its own selection function.

Each field ``f`` (a galaxy or a pointing) has its own catalogue and its own
:class:`~jaxcomp.demographics.SelectionGrid` (its own depth, extinction and
distance), and its own hyperparameters Λ_f (``alpha_M``, ``log_M_break``,
``alpha_T`` ... and the A_V bin probabilities) in the single-field
:class:`~jaxcomp.demographics.PopulationModel`.  The fields' likelihoods are the
single-field selection-normalised likelihood
(:func:`~jaxcomp.demographics.likelihood.log_likelihood`, marginalised-N form),
evaluated for all fields at once with ``jax.vmap`` over per-field grids stacked
into arrays and catalogues padded to a common length with a mask: one jitted log
density for any number of fields.

Pooling (``MultiFieldModel.pooling``), the limits of one model:

* ``"partial"``: ``θ_f ~ N(mean, scatter)``, sampled as ``θ_f = mean + scatter z_f``,
  ``z_f ~ N(0, 1)`` (non-centred, default) or directly (``parametrisation="centred"``, for
  fields whose data measure θ_f much better than the scatter; see
  :mod:`~jaxcomp.demographics.multifield_parametrisation`),
  ``mean ~ U(single-field prior bounds)``, ``scatter ~ HalfNormal(scale)``;
  A_V bin probabilities ``softmax([ℓ_f, 0])``, ``ℓ_f ~ N(μ, τ)`` per bin (logistic normal,
  ``μ ~ N(0, 1.5)``, ``τ ~ HalfNormal(scale)``, same parametrisation);
* ``"complete"``: one shared value (``scatter = 0``), the single-field priors;
* ``"none"``: independent per-field values with the single-field priors
  (``scatter → ∞``).

Optional covariate of one parameter (e.g. ``log_M_break`` against a star-formation
rate surface density): ``mean_f = a + b covariate_f`` with ``a`` the parameter's
``*_mean`` site and ``b ~ U(covariate_slope_prior)`` its ``*_slope`` site.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ..errors import InputError
from .likelihood import (
    LikelihoodGrid,
    PopulationData,
    _terms_and_fraction,
    prepare_data,
)
from .models import THETA_COLUMNS, PopulationModel
from .multifield_checks import _check_grid, _check_inside_grid, check_field, check_field_names
from .multifield_parametrisation import Parametrisation, check_parametrisation, field_normal
from .selection_uncertainty import member_likelihood_grid, n_members
from .sufficient_statistics import (
    CatalogueSummary,
    is_summarisable,
    summarise_catalogue,
    summary_log_likelihood,
)

__all__ = [
    "DEFAULT_SCATTER_SCALES",
    "POOLING_FORMS",
    "MultiFieldData",
    "MultiFieldModel",
    "check_field",
    "check_field_names",
    "field_log_terms",
    "field_summary_log_likelihoods",
    "multifield_model",
    "stack_fields",
]

Pooling = Literal["complete", "partial", "none"]
#: The pooling forms, from one shared value to independent fields.
POOLING_FORMS: tuple[str, ...] = ("complete", "partial", "none")

#: HalfNormal scales of the population scatters (same units as the parameters; ``av_logit``
#: is the scatter of the A_V bin log-odds).
DEFAULT_SCATTER_SCALES: dict[str, float] = {
    "alpha_M": 0.3,
    "log_M_break": 0.5,
    "alpha_T": 0.3,
    "alpha_T_young": 0.3,
    "log_T_break": 0.3,
    "beta_T": 0.2,
    "av_logit": 1.0,
}
#: σ of the Normal prior on the population mean of the A_V bin log-odds.
AV_LOGIT_PRIOR_SIGMA = 1.5


@dataclasses.dataclass(frozen=True)
class MultiFieldModel:
    """A :class:`PopulationModel` applied to several fields with pooled hyperparameters.

    Parameters
    ----------
    population : PopulationModel
        Functional forms, supports and (single-field) prior bounds of every field.
        Marginalised-N likelihood only; measurement errors ``"none"`` or ``"samples"``.
    pooling : {"complete", "partial", "none"}
        Shared values, population mean + scatter, or independent fields.
    scatter_scales : mapping, optional
        HalfNormal scales of the population scatters overriding :data:`DEFAULT_SCATTER_SCALES`.
    covariate_parameter : str, optional
        The parameter whose population mean depends linearly on the per-field covariate
        (``"complete"`` or ``"partial"`` pooling).
    covariate_slope_prior : (float, float)
        Uniform bounds of the covariate slope.
    parametrisation : {"non_centred", "centred"}
        Coordinates of the per-field values under partial pooling (same posterior):
        ``"non_centred"`` (default) for fields whose data constrain their values weakly
        against the scatter, ``"centred"`` for fields that measure them much better than the
        scatter (many clusters per field); ignored by the other pooling forms.
    """

    population: PopulationModel = dataclasses.field(default_factory=PopulationModel)
    pooling: Pooling = "partial"
    scatter_scales: tuple[tuple[str, float], ...] = ()
    covariate_parameter: str | None = None
    covariate_slope_prior: tuple[float, float] = (-3.0, 3.0)
    parametrisation: Parametrisation = "non_centred"

    def __post_init__(self):
        if self.pooling not in POOLING_FORMS:
            raise InputError(f"pooling must be one of {POOLING_FORMS}, got {self.pooling!r}")
        check_parametrisation(self.parametrisation)
        if self.population.likelihood != "marginal":
            raise InputError(
                "the multi-field model uses the marginalised-N likelihood; "
                "set PopulationModel(likelihood='marginal')"
            )
        if self.population.measurement_error == "latent":
            raise InputError(
                "the multi-field model takes measurement_error 'none' or 'samples', not 'latent'"
            )
        scales = dict(
            self.scatter_scales.items()
            if isinstance(self.scatter_scales, Mapping)
            else self.scatter_scales
        )
        unknown = set(scales) - set(DEFAULT_SCATTER_SCALES)
        if unknown:
            raise InputError(
                f"unknown scatter scale(s) {sorted(unknown)}; known: "
                f"{sorted(DEFAULT_SCATTER_SCALES)}"
            )
        if any(float(v) <= 0 for v in scales.values()):
            raise InputError("scatter scales must be positive")
        object.__setattr__(
            self, "scatter_scales", tuple(sorted((k, float(v)) for k, v in scales.items()))
        )
        if self.covariate_parameter is not None:
            if self.covariate_parameter not in self.field_parameters:
                raise InputError(
                    f"covariate_parameter must be one of {self.field_parameters}, "
                    f"got {self.covariate_parameter!r}"
                )
            if self.pooling == "none":
                raise InputError(
                    "a covariate needs a population mean: use pooling 'complete' or 'partial'"
                )
        low, high = (float(v) for v in self.covariate_slope_prior)
        if not high > low:
            raise InputError("covariate_slope_prior must be (low, high) with high > low")
        object.__setattr__(self, "covariate_slope_prior", (low, high))

    @property
    def field_parameters(self) -> tuple[str, ...]:
        """Scalar hyperparameters every field has (the population model's, in its order)."""
        return self.population.scalar_parameters

    @property
    def has_av_weights(self) -> bool:
        return self.population.av == "piecewise"

    def scatter_scale(self, name: str) -> float:
        return dict(self.scatter_scales).get(name, DEFAULT_SCATTER_SCALES[name])

    @property
    def population_parameters(self) -> tuple[str, ...]:
        """Scalar population-level sites (``*_mean``, ``*_scatter``, ``*_slope``)."""
        if self.pooling == "none":
            return ()
        names = []
        for name in self.field_parameters:
            names.append(f"{name}_mean")
            if name == self.covariate_parameter:
                names.append(f"{name}_slope")
            if self.pooling == "partial":
                names.append(f"{name}_scatter")
        if self.has_av_weights and self.pooling == "partial":
            names.append("av_logit_scatter")
        return tuple(names)

    def describe(self) -> str:
        extra = (
            f", {self.covariate_parameter} mean linear in the covariate"
            if self.covariate_parameter
            else ""
        )
        centred = self.pooling == "partial" and self.parametrisation == "centred"
        form = " (centred)" if centred else ""
        return (
            f"{self.pooling} pooling{form} over fields{extra}; per field: "
            f"{self.population.describe()}"
        )

    # ------------------------------------------------------------- priors
    def sample_field_parameters(self, n_fields: int, covariate=None) -> dict:
        """NumPyro sites of the population and per-field hyperparameters.

        Returns ``{name: (n_fields,)}`` and ``av_weights`` ``(n_fields, n_bins)``.
        """
        population = self.population
        params = {}
        for name in self.field_parameters:
            low, high = population.prior_bounds(name)
            if self.pooling == "none":
                with numpyro.plate("field", n_fields):
                    params[name] = numpyro.sample(name, dist.Uniform(low, high))
                continue
            centre = numpyro.sample(f"{name}_mean", dist.Uniform(low, high))
            if name == self.covariate_parameter:
                s_low, s_high = self.covariate_slope_prior
                centre = (
                    centre
                    + numpyro.sample(f"{name}_slope", dist.Uniform(s_low, s_high)) * covariate
                )
            centre = jnp.broadcast_to(centre, (n_fields,))
            if self.pooling == "partial":
                scatter = numpyro.sample(
                    f"{name}_scatter", dist.HalfNormal(self.scatter_scale(name))
                )
                centre = field_normal(name, centre, scatter, n_fields, self.parametrisation)
                if self.parametrisation == "centred":  # the sample site carries the name
                    params[name] = centre
                    continue
            params[name] = numpyro.deterministic(name, centre)
        if self.has_av_weights:
            n_bins = population.n_av_bins
            concentration = jnp.full(n_bins, float(population.av_concentration))
            if self.pooling == "none":
                with numpyro.plate("field", n_fields):
                    params["av_weights"] = numpyro.sample(
                        "av_weights", dist.Dirichlet(concentration)
                    )
            elif self.pooling == "complete":
                shared = numpyro.sample("av_weights_mean", dist.Dirichlet(concentration))
                params["av_weights"] = numpyro.deterministic(
                    "av_weights", jnp.broadcast_to(shared, (n_fields, n_bins))
                )
            else:
                mean = numpyro.sample(
                    "av_logit_mean",
                    dist.Normal(0.0, AV_LOGIT_PRIOR_SIGMA).expand([n_bins - 1]).to_event(1),
                )
                scatter = numpyro.sample(
                    "av_logit_scatter", dist.HalfNormal(self.scatter_scale("av_logit"))
                )
                logits = field_normal(
                    "av_logit", mean, scatter, n_fields, self.parametrisation, event_size=n_bins - 1
                )
                logits = jnp.concatenate([logits, jnp.zeros((n_fields, 1), logits.dtype)], axis=-1)
                params["av_weights"] = numpyro.deterministic(
                    "av_weights", jax.nn.softmax(logits, axis=-1)
                )
        return params


# ------------------------------------------------------------------- data
class MultiFieldData(eqx.Module):
    """Catalogues of several fields padded to a common length (a pytree).

    Attributes
    ----------
    objects : PopulationData
        Every array with a leading field axis: ``theta`` (n_fields, n_max, 3), ...;
        padded rows repeat the field's first cluster and are masked.
    mask : jax.Array, shape (n_fields, n_max)
        True for real clusters.
    covariate : jax.Array, shape (n_fields,)
        Per-field covariate (zeros if none).
    summary : CatalogueSummary, optional
        Every field's sufficient statistics (leading field axis) for exact catalogues of a
        summarisable population (:mod:`~jaxcomp.demographics.sufficient_statistics`): the
        sampler's likelihood then costs O(1) per field instead of O(N).  None otherwise.
    """

    objects: PopulationData
    mask: jax.Array
    covariate: jax.Array
    summary: CatalogueSummary | None = None

    @property
    def n_fields(self) -> int:
        return int(self.mask.shape[0])

    @property
    def n_objects(self) -> np.ndarray:
        return np.asarray(self.mask).sum(axis=1)


def _pad(values: np.ndarray, n_max: int) -> np.ndarray:
    pad = np.repeat(values[:1], n_max - values.shape[0], axis=0)
    return np.concatenate([values, pad], axis=0)


def stack_fields(
    names,
    catalogues,
    grids,
    model: MultiFieldModel,
    *,
    covariate=None,
    x64: bool = True,
    n_gauss_grid: int = 8,
    seed: int = 0,
    **prepare_kwargs,
) -> tuple[MultiFieldData, LikelihoodGrid]:
    """Validate the fields and stack their data and likelihood grids.

    Parameters
    ----------
    names : sequence of str
        Unique field names.
    catalogues : sequence of astropy.table.Table, mapping or PopulationData
    grids : sequence of SelectionGrid or LikelihoodGrid
        One per field; all must reduce to likelihood grids of the same shape (build them
        with the same ``shape=``).  Member grids
        (:func:`~jaxcomp.demographics.member_selection_grid`, the same number of members
        in every field) give a grid whose p_obs arrays are (n_fields, M, ...).
    model : MultiFieldModel
    covariate : sequence of float, optional
        Per-field covariate (needed when ``model.covariate_parameter`` is set).
    seed : int
        Base seed of :func:`prepare_data`'s per-object samples (field ``f`` uses ``seed + f``).
    **prepare_kwargs
        Passed to :func:`~jaxcomp.demographics.prepare_data`.

    Returns
    -------
    (MultiFieldData, LikelihoodGrid)
        The grid's arrays have a leading field axis.
    """
    names = [str(n) for n in names]
    catalogues, grids = list(catalogues), list(grids)
    if not names:
        raise InputError("no fields given")
    if len(catalogues) != len(names) or len(grids) != len(names):
        raise InputError(
            f"{len(names)} field names, {len(catalogues)} catalogues and {len(grids)} "
            "selection grids: "
            "give one catalogue and one grid per field"
        )
    check_field_names(names)
    population = model.population
    if model.covariate_parameter is not None:
        if covariate is None:
            raise InputError(
                f"the model's {model.covariate_parameter} depends on a covariate: pass covariate="
            )
        covariate = np.asarray(covariate, np.float64)
        if covariate.shape != (len(names),) or not np.all(np.isfinite(covariate)):
            raise InputError(
                f"covariate must hold one finite value per field ({len(names)}), got {covariate}"
            )
    else:
        covariate = np.zeros(len(names))
    datas, likelihood_grids = [], []
    with jax.enable_x64(x64):
        for f, (name, catalogue, grid) in enumerate(zip(names, catalogues, grids)):
            _check_grid(name, grid, population)
            if isinstance(catalogue, PopulationData):
                data = catalogue
            else:
                if len(catalogue[THETA_COLUMNS[0]]) == 0:
                    raise InputError(f"field {name!r} has no clusters; drop the field")
                try:
                    data = prepare_data(catalogue, population, seed=seed + f, **prepare_kwargs)
                except (ValueError, KeyError) as error:
                    raise InputError(f"field {name!r}: {error}") from error
            if data.n_objects == 0:
                raise InputError(f"field {name!r} has no clusters; drop the field")
            _check_inside_grid(name, np.asarray(data.theta, np.float64), grid)
            datas.append(data)
            if isinstance(grid, LikelihoodGrid):
                likelihood_grids.append(grid)
            else:
                build = member_likelihood_grid if n_members(grid) else LikelihoodGrid.build
                likelihood_grids.append(
                    build(
                        grid,
                        population.av_edges,
                        log_mass_range=population.log_mass_range,
                        log_age_range=population.log_age_range,
                        n_gauss=n_gauss_grid,
                    )
                )
        counts = [n_members(g) for g in likelihood_grids]
        if len(set(counts)) > 1:
            raise InputError(
                "the fields' grids have "
                + ", ".join(f"{n}: {c or 'no'} members" for n, c in zip(names, counts))
                + "; give every field a member grid with the same number of members "
                "(member_selection_grid) or every field a single grid"
            )
        reference = jax.tree.map(np.shape, likelihood_grids[0])
        for name, grid in zip(names[1:], likelihood_grids[1:]):
            if jax.tree.map(np.shape, grid) != reference:
                raise InputError(
                    f"field {name!r}: its grid has shapes {jax.tree.map(np.shape, grid)} but field "
                    f"{names[0]!r} has {reference}; build every field's SelectionGrid with "
                    "the same "
                    "shape= (node counts) so that the fields can be stacked"
                )
        stacked_grid = jax.tree.map(lambda *x: jnp.stack(x), *likelihood_grids)
        n_max = max(d.n_objects for d in datas)
        mask = np.zeros((len(names), n_max), bool)
        for f, d in enumerate(datas):
            mask[f, : d.n_objects] = True
        objects = jax.tree.map(
            lambda *x: jnp.asarray(np.stack([_pad(np.asarray(v), n_max) for v in x])), *datas
        )
        summary = None
        if is_summarisable(population):
            summaries = [
                summarise_catalogue(population, d.theta) for d in datas
            ]  # None for values outside the support: the per-cluster form reports -inf
            if all(s is not None for s in summaries):
                summary = jax.tree.map(lambda *x: jnp.stack(x), *summaries)
        stacked = MultiFieldData(
            objects=objects,
            mask=jnp.asarray(mask),
            covariate=jnp.asarray(covariate),
            summary=summary,
        )
    return stacked, stacked_grid


# ----------------------------------------------------------- likelihood
def field_log_terms(
    model: MultiFieldModel,
    params: Mapping,
    data: MultiFieldData,
    grid: LikelihoodGrid,
    n_gauss: int = 8,
):
    """Per-cluster terms ``ln p(θ_i|Λ_f)`` (n_fields, n_max; 0 on padding) and α_f (n_fields,).

    The single-field terms (:func:`~jaxcomp.demographics.likelihood.log_likelihood`'s) vmapped
    over the fields' data and grids.
    """
    population = model.population

    def one_field(field_params, objects, field_grid):
        return _terms_and_fraction(population, field_params, objects, field_grid, n_gauss=n_gauss)

    names = list(model.field_parameters) + (["av_weights"] if model.has_av_weights else [])
    field_params = {name: params[name] for name in names}
    terms, alpha = jax.vmap(one_field)(field_params, data.objects, grid)
    return jnp.where(data.mask, terms, 0.0), alpha


def field_summary_log_likelihoods(
    model: MultiFieldModel,
    params: Mapping,
    data: MultiFieldData,
    grid: LikelihoodGrid,
    n_gauss: int = 8,
):
    """Per-field ``Σ_i ln p(θ_i|Λ_f) - N_f ln α_f`` (n_fields,) and α_f (n_fields,) from the
    fields' sufficient statistics (``data.summary``): the same values as the sums of
    :func:`field_log_terms` up to rounding, in O(1) per field."""
    if data.summary is None:
        raise InputError(
            "these fields have no catalogue summary (measurement errors, per-object p_obs or a "
            "broken power-law / mass-dependent age model); use field_log_terms"
        )
    population = model.population

    def one_field(field_params, summary, field_grid):
        return summary_log_likelihood(
            population, field_params, summary, field_grid, n_gauss=n_gauss
        )

    names = list(model.field_parameters) + (["av_weights"] if model.has_av_weights else [])
    return jax.vmap(one_field)({name: params[name] for name in names}, data.summary, grid)


def multifield_model(
    model: MultiFieldModel,
    data: MultiFieldData,
    grid: LikelihoodGrid,
    n_gauss: int = 8,
    selection_uncertainty: str = "none",
):
    """NumPyro model of several fields: population and per-field priors, summed field likelihoods.

    ``model`` is static (bind it with ``functools.partial``); ``data`` and ``grid`` (stacked,
    see :func:`stack_fields`) are traced.  Deterministic sites: the per-field parameters
    and ``detected_fraction`` (n_fields,).

    ``selection_uncertainty="ensemble"`` (static) takes a stacked member grid (every field's
    :func:`~jaxcomp.demographics.member_selection_grid`) and averages each field's likelihood
    over its members
    (:func:`~jaxcomp.demographics.multifield_selection.field_ensemble_log_likelihoods`);
    ``detected_fraction`` is then ``Σ_m p(m|d_f, Λ_f) α_f,m``.
    """
    params = model.sample_field_parameters(data.mask.shape[0], data.covariate)
    if selection_uncertainty == "ensemble":
        from .multifield_selection import field_ensemble_log_likelihoods

        log_l, alpha = field_ensemble_log_likelihoods(model, params, data, grid, n_gauss=n_gauss)
        numpyro.deterministic("detected_fraction", alpha)
        numpyro.factor("selection_normalised_likelihood", jnp.sum(log_l))
        return
    if data.summary is not None:  # exact catalogues: the sufficient statistics, O(1) per field
        log_l, alpha = field_summary_log_likelihoods(model, params, data, grid, n_gauss=n_gauss)
        numpyro.deterministic("detected_fraction", alpha)
        numpyro.factor("selection_normalised_likelihood", jnp.sum(log_l))
        return
    terms, alpha = field_log_terms(model, params, data, grid, n_gauss=n_gauss)
    numpyro.deterministic("detected_fraction", alpha)
    n_obs = jnp.sum(data.mask, axis=1).astype(alpha.dtype)
    numpyro.factor(
        "selection_normalised_likelihood", jnp.sum(terms) - jnp.sum(n_obs * jnp.log(alpha))
    )
