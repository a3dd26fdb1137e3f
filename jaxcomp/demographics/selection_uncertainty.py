"""Selection-function uncertainty: per-member p_obs grids and the ensemble-averaged likelihood.

A selection function learned from a finite injection campaign is uncertain.  An
ensemble trained on bootstrap resamples of the labels
(``TrainConfig(ensemble_resampling="bootstrap")``) gives ``M`` equally plausible
selection functions ``s_m``.  This module is the one home of

* the **member grids**: p_obs of every member tabulated on one shared
  (log_mass, log_age, av) grid, stored as a :class:`SelectionGrid` (or a
  :class:`LikelihoodGrid`) whose p_obs carries a leading member axis
  (:func:`member_selection_grid`, :func:`stack_member_grids`,
  :func:`member_likelihood_grid`); the nodes are shared, so
* :func:`over_members` maps any function of a grid over the members with
  ``jax.vmap`` (the nodes stay unbatched: quadrature weights that depend only on
  the nodes and the population are computed once, not once per member), e.g. the
  multi-field model or the marginal completeness of the corrections;
* the **ensemble likelihood** (:func:`ensemble_log_likelihood`) and the
  diagnostics every fit reports (:func:`selection_diagnostics`).

What is averaged
----------------
The likelihood of the catalogue given the population Λ, with the selection
function unknown, is ``p(d|Λ) = ∫ p(d|Λ, s) p(s|injections) ds``.  With the
members as draws from p(s|injections) (the bootstrap approximation) and equal
weights this is ``(1/M) Σ_m L_m(Λ)``, i.e. ``ln L = logsumexp_m ln L_m - ln M``
of the **full per-member selection-normalised log-likelihood**
``ln L_m = Σ_i ln p_obs,m(θ_i) + Σ_i ln p(θ_i|Λ) - N_obs ln α_m(Λ)`` (Poisson form:
``Σ_i ln [N p_obs,m(θ_i) p(θ_i|Λ)] - N α_m(Λ)``).  The detected objects' own
``Σ_i ln p_obs,m(θ_i)``, dropped by a single-selection fit because it is constant in
Λ, is **not** constant across members and must stay: without it the average favours
the most pessimistic member (the smallest α_m), which biases α_M low (we measured this
in the coverage study before including the term).  With measurement errors the term is
evaluated at the catalogue values (the selection acted on the data); models with
``per_object_p_obs`` already carry it.
Averaging p_obs instead (one grid of the ensemble mean, ``"none"``) plugs a
point estimate into a likelihood that is strongly non-linear in α (``α^-N_obs``),
so it ignores the uncertainty; averaging ``ln L_m`` would be a geometric mean of
likelihoods, not a marginal likelihood.  The catalogue itself then weights the
members: ``p(m|d, Λ) = L_m / Σ L_m'``.  When the members disagree by many units of
``ln L`` the average is dominated by one member and is itself noisy (M is small):
hence the warning on ``Var_m ln L_m`` (Talbot & Golomb 2023, MNRAS 526, 3495,
recommend a variance of the log-likelihood estimator below about 1; Farr 2019,
RNAAS 3, 66, for the Monte Carlo analogue).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ..selection.function import SelectionFunction
from .likelihood import LikelihoodGrid, PopulationData, _combine, _terms_and_fraction
from .marginalise import PAPER_GRID_SHAPE, SelectionGrid
from .models import THETA_COLUMNS, PopulationModel

__all__ = [
    "SELECTION_UNCERTAINTY",
    "TALBOT_GOLOMB_VARIANCE",
    "MemberFits",
    "ensemble_log_likelihood",
    "ensemble_members",
    "fit_members",
    "mean_member_grid",
    "member_grid",
    "member_in_axes",
    "member_likelihood_grid",
    "member_log_likelihoods",
    "member_selection_grid",
    "n_members",
    "over_members",
    "plan_campaign_size",
    "selection_diagnostics",
    "stack_member_grids",
]

#: ``selection_uncertainty`` switch of the fits.
SELECTION_UNCERTAINTY = ("none", "ensemble")
#: Threshold on the variance of ln L across selection members above which a fit warns
#: (Talbot & Golomb 2023, MNRAS 526, 3495: keep the variance of the ln-likelihood estimator below
# ~1).
TALBOT_GOLOMB_VARIANCE = 1.0


# ------------------------------------------------------------------ grids
def n_members(grid: SelectionGrid | LikelihoodGrid) -> int | None:
    """Number of members of a member grid, ``None`` for an ordinary (single) grid."""
    p_obs = grid.p_obs_binned if isinstance(grid, LikelihoodGrid) else grid.p_obs
    return int(p_obs.shape[0]) if p_obs.ndim == 4 else None


def _single_member(selection: SelectionFunction, member: int) -> SelectionFunction:
    import equinox as eqx

    weights = jax.tree.map(lambda leaf: leaf[member : member + 1], selection.weights)
    return eqx.tree_at(lambda s: s.weights, selection, weights)


def ensemble_members(selection) -> list:
    """The members of an ensemble selection function, each a one-network selection function.

    Parameters
    ----------
    selection : SelectionFunction or RadiusMarginalisedSelection
        An ensemble network (``n_members >= 2``), or a radius-marginalised one around an
        ensemble network (each member is then that member averaged over the same radii
        with the same prior).
    """
    from ..selection.radius import RadiusMarginalisedSelection

    if isinstance(selection, RadiusMarginalisedSelection):
        return [
            RadiusMarginalisedSelection(member, selection.radii_pc, selection.prior)
            for member in ensemble_members(selection.selection)
        ]
    if not isinstance(selection, SelectionFunction):
        raise InputError(
            f"ensemble_members takes a SelectionFunction or RadiusMarginalisedSelection, got "
            f"{type(selection).__name__}"
        )
    if selection.n_members < 2:
        raise InputError(
            "this selection function has one network: selection uncertainty needs an "
            "ensemble; train with "
            "TrainConfig(n_members=5, ensemble_resampling='bootstrap')"
        )
    return [_single_member(selection, m) for m in range(selection.n_members)]


def member_selection_grid(
    selection: SelectionFunction | Sequence[Callable],
    log_mass=None,
    log_age=None,
    av=None,
    *,
    shape: tuple[int, int, int] = PAPER_GRID_SHAPE,
    progress: bool = False,
    **kwargs,
) -> SelectionGrid:
    """p_obs of every ensemble member on one grid: a :class:`SelectionGrid` with p_obs (M, n_mass,
    n_age, n_av).

    Parameters
    ----------
    selection : SelectionFunction, RadiusMarginalisedSelection or sequence of callables
        An ensemble network (each member's sigmoid(logit) is tabulated; their mean
        is the ensemble's p_obs), a radius-aware ensemble averaged over radii
        (:func:`ensemble_members`), or several selection functions / callables
        ``f(log_mass, log_age, av)`` (e.g. networks trained on independent campaigns).
    log_mass, log_age, av, shape, progress, **kwargs
        As :meth:`SelectionGrid.from_selection` (same nodes for every member).
    """
    from ..selection.radius import RadiusMarginalisedSelection

    if isinstance(selection, (SelectionFunction, RadiusMarginalisedSelection)):
        members = ensemble_members(selection)
    else:
        members = list(selection)
    grids = [
        SelectionGrid.from_selection(member, log_mass, log_age, av, shape=shape, **kwargs)
        for member in (members if not progress else _progress(members))
    ]
    return stack_member_grids(grids)


def _progress(items):
    from tqdm.auto import tqdm

    return tqdm(items, desc="member grids", unit="member")


def stack_member_grids(grids: Sequence[SelectionGrid]) -> SelectionGrid:
    """Stack single grids with identical nodes into one member grid (p_obs gets a leading member
    axis)."""
    grids = list(grids)
    if len(grids) < 2:
        raise InputError(f"a member grid needs at least 2 members, got {len(grids)}")
    first = grids[0]
    for index, grid in enumerate(grids):
        if n_members(grid) is not None:
            raise InputError(f"grid {index} is already a member grid; stack single grids")
        for name in ("log_mass", "log_age", "av"):
            if getattr(grid, name).shape != getattr(first, name).shape or not np.array_equal(
                np.asarray(getattr(grid, name)), np.asarray(getattr(first, name))
            ):
                raise InputError(
                    f"grid {index} has other {name} nodes than grid 0; build every member on the "
                    "same nodes (pass log_mass, log_age, av explicitly)"
                )
    return SelectionGrid(
        first.log_mass, first.log_age, first.av, jnp.stack([g.p_obs for g in grids])
    )


def member_grid(grid, m: int):
    """Member ``m`` of a member grid (:func:`member_selection_grid`) as an ordinary grid,
    ``SelectionGrid`` or ``LikelihoodGrid`` like ``grid``."""
    if isinstance(grid, LikelihoodGrid):
        return LikelihoodGrid(
            grid.log_mass,
            grid.log_age,
            grid.av_edges,
            grid.p_obs_binned[m],
            member_grid(grid.selection, m),
        )
    return SelectionGrid(grid.log_mass, grid.log_age, grid.av, grid.p_obs[m])


def mean_member_grid(grid):
    """The ensemble-mean grid (p_obs averaged over the member axis), same type as ``grid``."""
    if n_members(grid) is None:
        return grid
    if isinstance(grid, LikelihoodGrid):
        return LikelihoodGrid(
            grid.log_mass,
            grid.log_age,
            grid.av_edges,
            jnp.mean(grid.p_obs_binned, axis=0),
            mean_member_grid(grid.selection),
        )
    return SelectionGrid(grid.log_mass, grid.log_age, grid.av, jnp.mean(grid.p_obs, axis=0))


def member_likelihood_grid(grid: SelectionGrid, av_edges, **build_kwargs) -> LikelihoodGrid:
    """:meth:`LikelihoodGrid.build` for every member of a member grid, stacked (host-side, once
    per fit)."""
    count = n_members(grid)
    if count is None:
        raise InputError("member_likelihood_grid needs a member grid (member_selection_grid)")
    built = [
        LikelihoodGrid.build(member_grid(grid, m), av_edges, **build_kwargs) for m in range(count)
    ]
    first = built[0]
    selection = SelectionGrid(
        first.selection.log_mass,
        first.selection.log_age,
        first.selection.av,
        jnp.stack([b.selection.p_obs for b in built]),
    )
    return LikelihoodGrid(
        first.log_mass,
        first.log_age,
        first.av_edges,
        jnp.stack([b.p_obs_binned for b in built]),
        selection,
    )


def member_in_axes(grid):
    """``in_axes`` pytree for ``jax.vmap`` over the members: 0 on the p_obs arrays, None on the
    nodes."""
    if isinstance(grid, LikelihoodGrid):
        return LikelihoodGrid(None, None, None, 0, member_in_axes(grid.selection))
    return SelectionGrid(None, None, None, 0)


def over_members(function: Callable, grid, *args, **kwargs) -> jax.Array:
    """``function(member_grid, *args, **kwargs)`` for every member, stacked on a leading axis (one
    ``vmap``)."""
    if n_members(grid) is None:
        raise InputError(
            "over_members needs a member grid (member_selection_grid / member_likelihood_grid)"
        )
    return jax.vmap(lambda g: function(g, *args, **kwargs), in_axes=(member_in_axes(grid),))(grid)


# ------------------------------------------------------------- likelihood
def member_log_likelihoods(
    model: PopulationModel,
    params,
    data: PopulationData,
    grid: LikelihoodGrid,
    theta=None,
    *,
    n_gauss: int = 8,
):
    """ln L_m(Λ) of every member (shape (M,)) and α_m(Λ) (shape (M,)).

    ``ln L_m`` includes the detected objects' ``Σ_i ln p_obs,m(θ_i)`` (module docstring).
    Selection-independent per-object terms are computed once (``vmap`` batches only
    what depends on the member's p_obs).
    """

    def one(member_grid):
        terms, alpha = _terms_and_fraction(model, params, data, member_grid, theta, n_gauss=n_gauss)
        log_l = _combine(model, params, terms, alpha)
        if not model.per_object_p_obs:
            log_l = log_l + jnp.sum(member_grid.log_p_obs(data.theta))
        return log_l, alpha

    return over_members(one, grid)


def ensemble_log_likelihood(
    model: PopulationModel,
    params,
    data: PopulationData,
    grid: LikelihoodGrid,
    theta=None,
    *,
    n_gauss: int = 8,
) -> jax.Array:
    """``ln (1/M) Σ_m L_m(Λ)``: the likelihood averaged over the selection members (module
    docstring)."""
    log_l, _ = member_log_likelihoods(model, params, data, grid, theta, n_gauss=n_gauss)
    return jax.nn.logsumexp(log_l) - math.log(log_l.shape[0])


def _kish(weights: np.ndarray) -> float:
    return float(weights.sum() ** 2 / np.sum(weights**2)) if np.any(weights > 0) else 0.0


def selection_diagnostics(
    member_log_l: np.ndarray,
    fit_log_l: np.ndarray,
    draws: dict[str, np.ndarray],
    median_member_log_l: np.ndarray,
) -> dict:
    """Variance of ln L across members and the selection's share of each posterior variance.

    Parameters
    ----------
    member_log_l : array (S, M)
        ln L_m at every posterior draw.
    fit_log_l : array (S,)
        ln L the fit sampled with (the ensemble average for ``"ensemble"``, the
        ensemble-mean selection for ``"none"``).
    draws : dict of name -> array (S,)
        Scalar hyperparameter draws.
    median_member_log_l : array (M,)
        ln L_m at the posterior median.

    Returns
    -------
    dict
        ``log_likelihood_variance``: ``Var_m ln L_m`` at the posterior median (ddof 1);
        ``member_weights``: posterior probability of each member
        ``p(m|d) ∝ mean_s L_m(Λ_s) / L_fit(Λ_s)``; ``member_ess``: Kish effective
        sample size of each member's importance weights; ``variance_share``:
        per hyperparameter, ``Var_m(E[λ|m]) / Var(λ)`` by the law of total variance
        over the members (``Var = Σ p(m) Var(λ|m) + Σ p(m) (E[λ|m] - E[λ])²``), each
        member's posterior obtained by reweighting the draws with ``L_m / L_fit``.
        For an ``"ensemble"`` fit the decomposition is exact (the posterior is the
        mixture of the member posteriors with weights p(m|d)); for a ``"none"`` fit it
        is what the ensemble fit would give, reweighted from the plug-in posterior
        (reliable while ``member_ess`` is not small).
    """
    member_log_l = np.asarray(member_log_l, np.float64)
    log_ratio = member_log_l - np.asarray(fit_log_l, np.float64)[:, None]
    log_ratio -= np.max(log_ratio)
    ratio = np.exp(log_ratio)  # (S, M), relative to a common constant
    member_weights = ratio.mean(axis=0)
    member_weights = member_weights / member_weights.sum()
    share = {}
    for name, values in draws.items():
        values = np.asarray(values, np.float64)
        mean_m = (ratio * values[:, None]).sum(axis=0) / ratio.sum(axis=0)
        var_m = (ratio * (values[:, None] - mean_m) ** 2).sum(axis=0) / ratio.sum(axis=0)
        grand = float(np.sum(member_weights * mean_m))
        between = float(np.sum(member_weights * (mean_m - grand) ** 2))
        within = float(np.sum(member_weights * var_m))
        share[name] = between / (between + within) if between + within > 0 else 0.0
    return {
        "log_likelihood_variance": float(np.var(median_member_log_l, ddof=1)),
        "member_weights": member_weights.tolist(),
        "member_ess": [_kish(ratio[:, m]) for m in range(ratio.shape[1])],
        "variance_share": share,
    }


def warn_selection_variance(
    variances: dict[str, float],
    n_members: int,
    tolerance: float,
    selection_uncertainty: str,
    *,
    stacklevel: int = 4,
) -> None:
    """Warn when ``Var_m ln L_m`` at the posterior median exceeds ``tolerance`` (every fit's check).

    ``variances``: ``{label: variance}``, one entry ``{"": v}`` for a single catalogue, or
    one per field of a multi-field fit (the fields above the tolerance are named).
    """
    import warnings

    high = {k: v for k, v in variances.items() if v > tolerance}
    if not high:
        return
    if list(high) == [""]:
        where, value = "this catalogue", f" is {high['']:.3g}"
    else:
        where = "field(s) " + ", ".join(f"{k} ({v:.3g})" for k, v in high.items())
        value = " exceeds the tolerance"
    advice = (
        "fit with selection_uncertainty='ensemble', and " if selection_uncertainty == "none" else ""
    )
    warnings.warn(
        f"the selection function's uncertainty matters for {where}: the variance over the "
        f"{n_members} selection members of ln L at the posterior median{value} (tolerance "
        f"{tolerance:g}, Talbot & Golomb 2023); {advice}run more injections (a larger campaign) "
        "to shrink it",
        RuntimeWarning,
        stacklevel=stacklevel,
    )


def latent_theta(model: PopulationModel, data: PopulationData, samples: dict):
    """Per-draw true values (S, n, 3) with the latent columns from ``samples`` (None without
    latent values)."""
    if model.measurement_error != "latent":
        return None
    theta = np.broadcast_to(
        np.asarray(data.theta),
        (len(samples[f"{model.latent_columns[0]}_true"]),) + tuple(data.theta.shape),
    ).copy()
    for name in model.latent_columns:
        theta[:, :, THETA_COLUMNS.index(name)] = np.asarray(samples[f"{name}_true"])
    return theta


# ---------------------------------------------------------------- planning
def plan_campaign_size(
    campaign_sizes,
    selection_variances,
    *,
    target_sd: float,
    statistical_sd: float,
    fit_exponent: bool = False,
) -> dict:
    """Injections needed for a target posterior width of a hyperparameter (e.g. α_M).

    A selection function learned from ``N`` injections adds a variance ``V(N)`` to a
    hyperparameter's error; for an estimator whose sampling error is ``O(N^-1/2)``,
    ``V = c / N``.  Given ``V`` measured at several campaign sizes (e.g. the variance
    over replicates of the posterior mean with the campaign's selection minus the same
    with the exact selection, ``inference/selection_uncertainty_coverage.py``, or a
    bootstrap ensemble's between-member variance), fit ``c`` (and, with
    ``fit_exponent``, the power ``V = c N^-k``) by least squares in ``ln V``, and solve
    ``statistical_sd² + V(N) = target_sd²`` for ``N``.

    Parameters
    ----------
    campaign_sizes : array
        Number of injections (labels) of each measured campaign.
    selection_variances : array
        Selection-induced variance of the hyperparameter at each size (> 0 entries used).
    target_sd : float
        Wanted total posterior standard deviation.
    statistical_sd : float
        The standard deviation with an exact selection (the catalogue's own limit).
    fit_exponent : bool
        Fit the power ``k`` too (needs >= 2 sizes), instead of fixing ``k = 1``.

    Returns
    -------
    dict
        ``coefficient`` c, ``exponent`` k, ``n_injections`` (inf when ``target_sd <=
        statistical_sd``: no campaign reaches it), ``used_sizes``.
    """
    sizes = np.asarray(campaign_sizes, np.float64)
    variances = np.asarray(selection_variances, np.float64)
    if sizes.shape != variances.shape or sizes.ndim != 1:
        raise InputError(
            "campaign_sizes and selection_variances must be 1-d arrays of the same length"
        )
    use = np.isfinite(variances) & (variances > 0) & (sizes > 0)
    if use.sum() < (2 if fit_exponent else 1):
        raise InputError(
            f"need {'2' if fit_exponent else '1'} or more campaign sizes with a positive measured "
            "selection variance; run the coverage study with more replicates"
        )
    if target_sd <= 0 or statistical_sd < 0:
        raise InputError("target_sd must be > 0 and statistical_sd >= 0")
    log_n, log_v = np.log(sizes[use]), np.log(variances[use])
    if fit_exponent:
        slope, intercept = np.polyfit(log_n, log_v, 1)
        exponent = -float(slope)
    else:
        exponent, intercept = 1.0, float(np.mean(log_v + log_n))
    coefficient = float(np.exp(intercept))
    budget = target_sd**2 - statistical_sd**2
    needed = (
        float("inf")
        if budget <= 0 or exponent <= 0
        else float((coefficient / budget) ** (1.0 / exponent))
    )
    return {
        "coefficient": coefficient,
        "exponent": exponent,
        "n_injections": needed,
        "used_sizes": sizes[use].tolist(),
    }


# ------------------------------------------------------- per-member fits
@dataclasses.dataclass(frozen=True)
class MemberFits:
    """Posteriors of one catalogue fitted with each selection member (:func:`fit_members`).

    Attributes
    ----------
    draws : dict of name -> array (n_members, n_draws)
        Hyperparameter draws of every member's fit (chains concatenated).
    variance_share : dict
        Per hyperparameter, ``Var_m(E[λ|m]) / (Var_m(E[λ|m]) + mean_m Var(λ|m))``:
        the law of total variance over equally weighted members.
    fits : tuple of FitResult
    """

    draws: dict
    variance_share: dict
    fits: tuple

    def pooled(self, name: str) -> np.ndarray:
        """Draws of the equal-weight mixture of the member posteriors (the "cut" posterior)."""
        return np.asarray(self.draws[name]).reshape(-1)

    def interval(self, name: str, prob: float = 0.95) -> tuple[float, float]:
        """Equal-tailed interval of the pooled draws."""
        values = self.pooled(name)
        return tuple(float(v) for v in np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2]))


def fit_members(
    catalogue,
    selection_grid: SelectionGrid,
    model: PopulationModel | None = None,
    *,
    seed: int = 0,
    fitter=None,
    **fitter_kwargs,
) -> MemberFits:
    """Fit a catalogue once per selection member and pool the posteriors with equal weights.

    The pooled draws sample ``(1/M) Σ_m p(Λ | d, s_m)``: the posterior with the selection
    function's uncertainty taken from the injections alone and *not* updated by the
    catalogue (a "cut" of the feedback from the catalogue to the selection, Plummer 2015,
    Stat. Comput. 25, 37).  This differs from ``selection_uncertainty="ensemble"``, the
    full Bayesian average ``(1/M) Σ_m L_m``, in which the catalogue weights the members by
    their evidence; when the members disagree by many units of ln L that average collapses
    onto the single best-fitting member, while the cut posterior keeps their spread.  It
    costs ``M`` fits (one compiled sampler, reused: the grid is a traced argument).

    Parameters
    ----------
    catalogue : table or PopulationData
    selection_grid : SelectionGrid
        A member grid (:func:`member_selection_grid`).
    model : PopulationModel, optional
    seed : int
        Seed of every member's fit (the same, so the member fits differ only by the selection).
    fitter : PopulationFitter, optional
        Reuse a compiled ``"none"`` fitter (its grid is replaced in place).
    **fitter_kwargs
        :class:`~jaxcomp.demographics.PopulationFitter` options (when ``fitter`` is not given).
    """
    import warnings

    from .fit import PopulationFitter

    count = n_members(selection_grid)
    if count is None:
        raise InputError("fit_members needs a member grid (member_selection_grid)")
    if fitter is None:
        fitter = PopulationFitter(
            model or PopulationModel(), member_grid(selection_grid, 0), **fitter_kwargs
        )
    elif fitter.selection_uncertainty != "none":
        raise InputError("fit_members needs a fitter with selection_uncertainty='none'")
    fits = []
    for m in range(count):
        fitter.use_selection_grid(member_grid(selection_grid, m))
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", RuntimeWarning
            )  # e.g. the quadrature check, reported per fit
            fits.append(fitter.fit(catalogue, seed=seed, log_likelihood=False))
    names = fitter.model.scalar_parameters
    draws = {name: np.stack([fit.draws(name) for fit in fits]) for name in names}
    share = {}
    for name, values in draws.items():
        between = float(np.var(values.mean(axis=1)))
        within = float(np.mean(values.var(axis=1)))
        share[name] = between / (between + within) if between + within > 0 else 0.0
    return MemberFits(draws=draws, variance_share=share, fits=tuple(fits))
