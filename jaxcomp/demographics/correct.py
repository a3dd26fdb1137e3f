"""The completeness correction of a catalogue, in one place (Tang et al. 2026, eq. 14-18).

:func:`correct_catalogue` is the recipe of ``jaxcomp correct``, the workflow's ``correct``
stage, ``inference/ngc628_corrections.py`` and the notebooks:

1. the marginal completeness on the grid nodes, ``p_corr(log_age)`` over the assumed mass
   function and p(A_V) and ``p_corr(log_mass)`` over the assumed age distribution and p(A_V)
   (:func:`~jaxcomp.demographics.p_corr_log_age`, :func:`~jaxcomp.demographics.p_corr_log_mass`,
   eq. 14-16), computed in float64;
2. its value at each cluster, linear between the nodes and held constant beyond them
   (``numpy.interp`` in float64, the same rule as
   :func:`~jaxcomp.demographics.interpolate_marginal`);
3. the corrected counts per bin (:func:`~jaxcomp.demographics.corrected_age_function`,
   :func:`~jaxcomp.demographics.corrected_mass_function`, eq. 17-18).

With a member grid (:func:`~jaxcomp.demographics.member_selection_grid`: p_obs of every member of
a bootstrap ensemble) the correction uses the ensemble mean (the marginal is linear in p_obs, so
the mean grid's marginal is the mean of the members') and every member's marginal, computed with
one :func:`~jaxcomp.demographics.over_members`, goes to the tables as ``p_corr_members``: they gain
the selection's error bars ``n_corr_sel_err`` and ``n_corr_total_err``
(:func:`~jaxcomp.demographics.corrected_counts`).

Why float64: the two former copies of this recipe differed here (``jaxcomp correct`` in float64
with ``numpy.interp``, the workflow in JAX's default float32).  On a known selection surface on
the demo's 121 x 105 x 13 grid, against the exact marginal of the tabulated surface, the float32
recipe is off by up to 1.8e-6 (p_corr per cluster) and 6e-7 (corrected counts) relative, the
float64 one by 1.5e-8 and 1.2e-8 (``benchmarks/correction_precision.py``,
``benchmarks/results/2026-12-06_correction_precision.json``).  Both are far below the grid's
own interpolation error, but float64 costs nothing here (the grid stays as tabulated).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .catalogue import _values
from .corrections import (
    AGE_CLIP,
    AGE_MIN_MEAN,
    MASS_CLIP,
    corrected_age_function,
    corrected_mass_function,
)

__all__ = ["CorrectionResult", "correct_catalogue", "marginal_completeness"]


@dataclasses.dataclass(frozen=True)
class CorrectionResult:
    """What :func:`correct_catalogue` returns.

    Attributes
    ----------
    caf, cmf : astropy.table.Table
        The corrected age and mass functions (columns of
        :func:`~jaxcomp.demographics.corrected_counts`).
    log_age_nodes, p_corr_log_age : numpy.ndarray (float64)
        The grid's log_age nodes [log10 yr] and ``p_corr(log_age)`` there.
    log_mass_nodes, p_corr_log_mass : numpy.ndarray (float64)
        The grid's log_mass nodes [log10 Msun] and ``p_corr(log_mass)`` there.
    p_corr_age, p_corr_mass : numpy.ndarray (float64)
        The per-cluster values (before clipping), in catalogue order.
    p_corr_log_age_members, p_corr_log_mass_members : numpy.ndarray (float64) or None
        With a member grid: every member's marginal at the nodes, shape (n_members, n_nodes);
        ``None`` otherwise.
    p_corr_age_members, p_corr_mass_members : numpy.ndarray (float64) or None
        With a member grid: every member's per-cluster value, shape (n_members, n_clusters).
    """

    caf: object
    cmf: object
    log_age_nodes: np.ndarray
    p_corr_log_age: np.ndarray
    log_mass_nodes: np.ndarray
    p_corr_log_mass: np.ndarray
    p_corr_age: np.ndarray
    p_corr_mass: np.ndarray
    p_corr_log_age_members: np.ndarray | None = None
    p_corr_log_mass_members: np.ndarray | None = None
    p_corr_age_members: np.ndarray | None = None
    p_corr_mass_members: np.ndarray | None = None


def _float64(distribution):
    """``distribution`` with every parameter as a float64 array (call inside ``jax.enable_x64``)."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda leaf: jnp.asarray(np.asarray(leaf, np.float64)), distribution)


def marginal_completeness(
    grid, mass_distribution, age_distribution, av_distribution, *, n_gauss: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """``p_corr(log_age)`` and ``p_corr(log_mass)`` on the grid's nodes, in float64.

    Parameters
    ----------
    grid : SelectionGrid
        p_obs on the (log_mass, log_age, av) grid, or a member grid
        (:func:`~jaxcomp.demographics.member_selection_grid`).
    mass_distribution, age_distribution, av_distribution
        The assumed distributions of log_mass [log10 Msun], log_age [log10 yr] and av [mag].
    n_gauss : int
        Gauss-Legendre points per sub-interval of the quadrature.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``p_corr`` at ``grid.log_age`` (over mass and A_V) and at ``grid.log_mass`` (over age
        and A_V), float64; for a member grid every member's, shapes (n_members, n_age) and
        (n_members, n_mass).
    """
    import jax

    from .marginalise import p_corr_log_age, p_corr_log_mass
    from .selection_uncertainty import n_members, over_members

    with jax.enable_x64(True):
        mass, age, av = (
            _float64(d) for d in (mass_distribution, age_distribution, av_distribution)
        )
        if n_members(grid) is None:
            p_age = p_corr_log_age(grid, mass, av, n_gauss=n_gauss)
            p_mass = p_corr_log_mass(grid, age, av, n_gauss=n_gauss)
        else:
            p_age = over_members(p_corr_log_age, grid, mass, av, n_gauss=n_gauss)
            p_mass = over_members(p_corr_log_mass, grid, age, av, n_gauss=n_gauss)
        p_age, p_mass = np.asarray(p_age, np.float64), np.asarray(p_mass, np.float64)
    return p_age, p_mass


def correct_catalogue(
    catalogue,
    grid,
    *,
    mass_distribution,
    age_distribution,
    av_distribution,
    age_bins,
    mass_bins,
    age_clip: float = AGE_CLIP,
    age_min_mean: float | None = AGE_MIN_MEAN,
    mass_clip: float = MASS_CLIP,
    mass_min_mean: float | None = None,
) -> CorrectionResult:
    """Completeness-corrected age and mass functions of a catalogue (eq. 14-18).

    Parameters
    ----------
    catalogue : astropy.table.Table or mapping of arrays
        Columns ``log_age`` [log10 yr] and ``log_mass`` [log10 Msun] (e.g. from
        :func:`~jaxcomp.demographics.load_catalogue`); masked values count as missing.
    grid : SelectionGrid
        p_obs on the (log_mass, log_age, av) grid, or a member grid
        (:func:`~jaxcomp.demographics.member_selection_grid`): the correction then uses the
        ensemble mean and the tables carry the selection's error bars (module docstring).
    mass_distribution : distribution in log_mass
        The assumed mass function, marginalised over for the age function.
    age_distribution : distribution in log_age
        The assumed age distribution, marginalised over for the mass function.
    av_distribution : distribution in av
        p(A_V), marginalised over for both.
    age_bins, mass_bins : array
        Bin edges in log10 yr and log10 Msun.
    age_clip, age_min_mean, mass_clip, mass_min_mean
        Lower clip of the per-cluster completeness and the mean below which a bin is masked
        (defaults: the paper's, see :mod:`jaxcomp.demographics.corrections`).

    Returns
    -------
    CorrectionResult
    """
    p_age, p_mass = marginal_completeness(
        grid, mass_distribution, age_distribution, av_distribution
    )
    age_nodes = np.asarray(grid.log_age, np.float64)
    mass_nodes = np.asarray(grid.log_mass, np.float64)
    log_age = _values(catalogue["log_age"])
    log_mass = _values(catalogue["log_mass"])
    members = {}
    if p_age.ndim == 2:  # a member grid: the ensemble mean corrects, the members give the spread
        p_age_members, p_mass_members = p_age, p_mass
        p_age, p_mass = p_age_members.mean(axis=0), p_mass_members.mean(axis=0)
        members = {
            "p_corr_log_age_members": p_age_members,
            "p_corr_log_mass_members": p_mass_members,
            "p_corr_age_members": np.stack(
                [np.interp(log_age, age_nodes, p) for p in p_age_members]
            ),
            "p_corr_mass_members": np.stack(
                [np.interp(log_mass, mass_nodes, p) for p in p_mass_members]
            ),
        }
    # linear between the nodes, held constant beyond them (interpolate_marginal's rule); NaN stays
    # NaN
    p_i_age = np.interp(log_age, age_nodes, p_age)
    p_i_mass = np.interp(log_mass, mass_nodes, p_mass)
    caf = corrected_age_function(
        log_age,
        p_i_age,
        age_bins,
        clip=age_clip,
        min_mean=age_min_mean,
        p_corr_members=members.get("p_corr_age_members"),
    )
    cmf = corrected_mass_function(
        log_mass,
        p_i_mass,
        mass_bins,
        clip=mass_clip,
        min_mean=mass_min_mean,
        p_corr_members=members.get("p_corr_mass_members"),
    )
    return CorrectionResult(
        caf=caf,
        cmf=cmf,
        log_age_nodes=age_nodes,
        p_corr_log_age=p_age,
        log_mass_nodes=mass_nodes,
        p_corr_log_mass=p_mass,
        p_corr_age=p_i_age,
        p_corr_mass=p_i_mass,
        **members,
    )
