"""Marginalised completeness: p_obs on a cached 3-D grid, integrated against population
distributions.

Tang et al. (2026, section 4.4.1, eq. 14-16) reduce the 3-D selection function
p_obs(log_mass, log_age, av) to one- and two-dimensional completeness functions
by integrating it against assumed intrinsic distributions:

* ``p_corr(log_age) = ∬ p_obs p(log_mass) p(av) d log_mass d av`` (eq. 16),
* ``p_corr(log_mass) = ∬ p_obs p(log_age) p(av) d log_age d av``,
* ``p_obs(log_mass, log_age | p(av)) = ∫ p_obs p(av) d av`` (eq. 14).

The network is evaluated once on a regular grid (:class:`SelectionGrid`, built
in bounded memory with :func:`jaxcomp.evaluate_in_chunks`); the integrals are
then pure, jitted functions of the grid and of the NumPyro distributions, so
they can be differentiated with respect to the population parameters
(``alpha``, ``log_mass_break``, A_V weights, ...).

Quadrature: p_obs is interpolated linearly between grid nodes (and held at its
edge value beyond the grid, like the ``"clip"`` domain policy), and the
product with the population density is integrated exactly for that
interpolant: each grid cell is split at the distribution's
:meth:`breakpoints` (support edges, age break, A_V bin edges) and integrated
with an 8-point Gauss-Legendre rule.  Truncation edges and the A_V histogram
bins therefore need not line up with grid nodes, and the weights of a
normalised distribution sum to one.
"""

from __future__ import annotations

import dataclasses
import warnings
from functools import partial
from pathlib import Path
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..selection.evaluate import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_POINTS_PER_CALL,
    evaluate_in_chunks,
)
from ..selection.function import SelectionFunction
from .distributions import AV_RANGE, LOG_AGE_RANGE, LOG_MASS_RANGE, PiecewiseConstantAV

__all__ = [
    "SelectionGrid",
    "quadrature_weights",
    "normalised_quadrature",
    "p_corr_log_age",
    "p_corr_log_mass",
    "p_obs_mass_age",
    "interpolate_marginal",
    "estimate_av_distribution",
    "AVEstimate",
    "PHYSICAL_AXES",
    "PAPER_GRID_SHAPE",
]

#: Names of the three grid axes, in the order of ``SelectionGrid.p_obs``.
PHYSICAL_AXES: tuple[str, str, str] = ("log_mass", "log_age", "av")
#: Grid of Tang et al. (2026, section 4.2): 500 x 500 x 50 in (log_mass, log_age, av).
PAPER_GRID_SHAPE: tuple[int, int, int] = (500, 500, 50)


# ---------------------------------------------------------------- the grid
def _p_obs(selection: SelectionFunction, points: jax.Array) -> jax.Array:
    """Ensemble-mean p_obs for points already in the selection function's input order."""
    return selection(points)


def _check_axis(name: str, values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.shape[0] < 2:
        raise ValueError(
            f"grid axis {name!r} must be one-dimensional with >= 2 points, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
        raise ValueError(f"grid axis {name!r} must be finite and strictly increasing")
    return values


class SelectionGrid(eqx.Module):
    """p_obs tabulated once on a regular (log_mass, log_age, av) grid; immutable.

    Attributes
    ----------
    log_mass : jax.Array, shape (n_mass,)
        Nodes in log10 mass [log10 Msun], strictly increasing.
    log_age : jax.Array, shape (n_age,)
        Nodes in log10 age [log10 yr], strictly increasing.
    av : jax.Array, shape (n_av,)
        Nodes in V-band extinction A_V [mag], strictly increasing.
    p_obs : jax.Array, shape (n_mass, n_age, n_av)
        Detection probability at every node (float32).

    Notes
    -----
    An :class:`equinox.Module`: a pytree of arrays that can be passed as a
    traced argument into ``jax.jit`` code (its values are never folded into a
    compiled program).  Build one with :meth:`from_selection`; save and load
    it with :meth:`save` / :meth:`load` (``.npz``, no pickle).
    """

    log_mass: jax.Array
    log_age: jax.Array
    av: jax.Array
    p_obs: jax.Array

    # ---------------------------------------------------------------- build
    @classmethod
    def from_arrays(cls, log_mass, log_age, av, p_obs) -> SelectionGrid:
        """Validate and wrap precomputed axes and p_obs values (float32)."""
        axes = [
            _check_axis(name, values)
            for name, values in zip(PHYSICAL_AXES, (log_mass, log_age, av))
        ]
        p_obs = np.asarray(p_obs, dtype=np.float32)
        shape = tuple(a.shape[0] for a in axes)
        if p_obs.shape != shape:
            raise ValueError(
                f"p_obs has shape {p_obs.shape}, expected {shape} (log_mass, log_age, av)"
            )
        if not np.all(np.isfinite(p_obs)):
            raise ValueError(
                "p_obs has NaN or infinite values; use a selection function with the 'clip' domain "
                "policy or a grid inside its domain"
            )
        if np.any(p_obs < 0) or np.any(p_obs > 1):
            raise ValueError("p_obs must lie in [0, 1]")
        return cls(*(jnp.asarray(a, jnp.float32) for a in axes), jnp.asarray(p_obs))

    @classmethod
    def from_selection(
        cls,
        selection,
        log_mass=None,
        log_age=None,
        av=None,
        *,
        shape: tuple[int, int, int] = PAPER_GRID_SHAPE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        points_per_call: int = DEFAULT_POINTS_PER_CALL,
        progress: bool = False,
    ) -> SelectionGrid:
        """Evaluate a selection function on a regular grid, in bounded memory.

        Parameters
        ----------
        selection : SelectionFunction or callable
            A :class:`~jaxcomp.SelectionFunction` with inputs ``log_mass``,
            ``log_age`` and ``av`` (any order), evaluated with jitted chunks; or
            any callable ``f(log_mass, log_age, av) -> p_obs`` that broadcasts
            NumPy arrays (e.g. :class:`jaxcomp.selection.synthetic.LogisticSelection`).
        log_mass, log_age, av : array, optional
            Grid nodes [log10 Msun], [log10 yr], [mag].  Default: ``shape``
            uniformly spaced nodes over the selection function's domain (or the
            C-4 library ranges [2, 8], [5, log10 1.5e10], [0, 3] for a callable).
        shape : tuple of int
            Number of nodes per axis when an axis is not given; default the
            paper's 500 x 500 x 50.
        chunk_size, points_per_call : int
            Passed to :func:`~jaxcomp.evaluate_in_chunks`; at most
            ``points_per_call`` points are materialised at a time, so the
            500 x 500 x 50 grid needs ~ 60 MB (the result) plus one block.
        progress : bool
            Show a progress bar.

        Returns
        -------
        SelectionGrid
        """
        is_network = isinstance(selection, SelectionFunction)
        if is_network:
            names = selection.input_names
            if sorted(names) != sorted(PHYSICAL_AXES):
                raise ValueError(
                    f"the selection function takes {names}; a SelectionGrid needs the physical "
                    "inputs "
                    f"{PHYSICAL_AXES} (use the physical network, not the photometric one)"
                )
            domain = selection.domain
            ranges = [domain[name] for name in PHYSICAL_AXES]
        elif callable(selection):
            ranges = [LOG_MASS_RANGE, LOG_AGE_RANGE, AV_RANGE]
        else:
            raise TypeError(
                "selection must be a SelectionFunction or a callable, got "
                f"{type(selection).__name__}"
            )
        given = (log_mass, log_age, av)
        axes = [
            _check_axis(name, np.linspace(*limits, n) if values is None else values)
            for name, values, limits, n in zip(PHYSICAL_AXES, given, ranges, shape)
        ]
        n_mass, n_age, n_av = (a.shape[0] for a in axes)
        total = n_mass * n_age * n_av
        if is_network:
            order = [PHYSICAL_AXES.index(name) for name in selection.input_names]
            block = max(chunk_size, (int(points_per_call) // chunk_size) * chunk_size)
            block = min(block, -(-total // chunk_size) * chunk_size)
            out = np.empty(total, dtype=np.float32)
            starts = range(0, total, block)
            for start in tqdm(starts, disable=not progress, desc="p_obs grid", unit="block"):
                flat = np.arange(start, start + block)
                flat = np.minimum(flat, total - 1)  # pad the last block to the same compiled shape
                i, j, k = np.unravel_index(flat, (n_mass, n_age, n_av))
                columns = (axes[0][i], axes[1][j], axes[2][k])
                points = np.stack([columns[o] for o in order], axis=-1).astype(np.float32)
                values = evaluate_in_chunks(
                    _p_obs,
                    selection,
                    points,
                    chunk_size=chunk_size,
                    points_per_call=block,
                    progress=False,
                )
                stop = min(start + block, total)
                out[start:stop] = values[: stop - start]
            p_obs = out.reshape(n_mass, n_age, n_av)
        else:
            p_obs = np.empty((n_mass, n_age, n_av), dtype=np.float32)
            rows = max(1, int(points_per_call) // (n_age * n_av))
            for start in range(0, n_mass, rows):
                stop = min(start + rows, n_mass)
                p_obs[start:stop] = np.broadcast_to(
                    np.asarray(
                        selection(
                            axes[0][start:stop, None, None],
                            axes[1][None, :, None],
                            axes[2][None, None, :],
                        )
                    ),
                    (stop - start, n_age, n_av),
                )
        return cls.from_arrays(*axes, p_obs)

    # ------------------------------------------------------------- queries
    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of nodes along (log_mass, log_age, av)."""
        return tuple(int(n) for n in self.p_obs.shape)

    def at_av(self, av: float) -> jax.Array:
        """p_obs(log_mass, log_age) at fixed A_V [mag], linear in A_V between nodes; shape (n_mass,
        n_age)."""
        av = jnp.clip(jnp.asarray(av, self.av.dtype), self.av[0], self.av[-1])
        k = jnp.clip(jnp.searchsorted(self.av, av, side="right") - 1, 0, self.av.shape[0] - 2)
        t = (av - self.av[k]) / (self.av[k + 1] - self.av[k])
        return (1 - t) * self.p_obs[:, :, k] + t * self.p_obs[:, :, k + 1]

    def interpolate(self, log_mass, log_age, av) -> jax.Array:
        """Trilinear interpolation of p_obs (clamped to the grid edges); broadcasts its
        arguments."""
        values = []
        weights = []
        coordinates = jnp.broadcast_arrays(
            jnp.asarray(log_mass), jnp.asarray(log_age), jnp.asarray(av)
        )
        for axis, x in zip((self.log_mass, self.log_age, self.av), coordinates):
            x = jnp.clip(x, axis[0], axis[-1])
            i = jnp.clip(jnp.searchsorted(axis, x, side="right") - 1, 0, axis.shape[0] - 2)
            values.append(i)
            weights.append((x - axis[i]) / (axis[i + 1] - axis[i]))
        (i, j, k), (ti, tj, tk) = values, weights
        result = 0.0
        for di, wi in ((0, 1 - ti), (1, ti)):
            for dj, wj in ((0, 1 - tj), (1, tj)):
                for dk, wk in ((0, 1 - tk), (1, tk)):
                    result = result + wi * wj * wk * self.p_obs[i + di, j + dj, k + dk]
        return result

    # ------------------------------------------------------------------ I/O
    def save(self, path) -> Path:
        """Write the axes and p_obs to an ``.npz`` file (no pickle), atomically (temporary file and
        rename)."""
        import io

        from .._io import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            log_mass=np.asarray(self.log_mass),
            log_age=np.asarray(self.log_age),
            av=np.asarray(self.av),
            p_obs=np.asarray(self.p_obs),
        )
        return atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path) -> SelectionGrid:
        """Read a grid written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays(data["log_mass"], data["log_age"], data["av"], data["p_obs"])


# ------------------------------------------------------------ quadrature
def _density_parts(distribution):
    """Increasing breakpoints and an unchecked log density (-inf outside the support).

    The distributions of this package provide both; any other NumPyro
    distribution with a bounded interval support (``Uniform``,
    ``TruncatedNormal`` with finite bounds, ...) is treated as smooth inside it.
    """
    if hasattr(distribution, "breakpoints") and hasattr(distribution, "_log_density"):
        return jnp.asarray(distribution.breakpoints()), distribution._log_density
    support = distribution.support
    lower = getattr(support, "lower_bound", None)
    upper = getattr(support, "upper_bound", None)
    if lower is None or upper is None:
        raise TypeError(
            f"{type(distribution).__name__} has support {support}; marginalisation needs a bounded "
            "interval"
        )

    def log_density(x):
        inside = (x >= lower) & (x <= upper)
        return jnp.where(inside, distribution.log_prob(jnp.clip(x, lower, upper)), -jnp.inf)

    return jnp.stack(jnp.broadcast_arrays(jnp.asarray(lower), jnp.asarray(upper))), log_density


@partial(jax.jit, static_argnames=("n_gauss",))
def quadrature_weights(distribution, nodes: jax.Array, *, n_gauss: int = 8) -> jax.Array:
    """Weights ``w_k`` with ``∫ f(x) p(x) dx = Σ_k w_k f(x_k)`` for ``f`` linear between nodes.

    ``f`` is held constant beyond the first and last node (the mass of ``p``
    outside the grid goes to the end nodes).  Every cell between nodes is
    split at the distribution's :meth:`breakpoints` (increasing: support edges
    and kinks) and integrated with an ``n_gauss``-point Gauss-Legendre rule,
    so truncation edges, the age break and A_V bin edges are handled exactly
    wherever they fall.

    Parameters
    ----------
    distribution : numpyro.distributions.Distribution
        A scalar (``batch_shape == ()``) distribution: one of
        :mod:`jaxcomp.demographics.distributions` (which declare their kinks
        with ``breakpoints()``), or any NumPyro distribution on a bounded
        interval (e.g. ``Uniform``), assumed smooth inside it.
    nodes : array, shape (n,)
        Strictly increasing nodes (same variable and unit as the distribution).
    n_gauss : int
        Gauss-Legendre points per sub-interval.

    Returns
    -------
    jax.Array, shape (n,)
        Non-negative weights; their sum is the quadrature of ``∫ p dx``
        (1 to rounding for the normalised distributions of this package).
    """
    nodes, breakpoints, log_density, dtype = _quadrature_inputs(
        distribution, nodes, "quadrature_weights"
    )
    return _cell_weights(log_density, breakpoints, nodes, n_gauss, dtype)


@partial(jax.jit, static_argnames=("n_gauss",))
def normalised_quadrature(
    distribution, nodes: jax.Array, *, n_gauss: int = 8
) -> tuple[jax.Array, jax.Array]:
    """Quadrature weights normalised to sum to 1, and the log normaliser they imply.

    The same rule as :func:`quadrature_weights`, applied to the distribution's
    unnormalised density ``f`` (``_log_unnormalised``, where it has one):
    ``w_k = W_k / Σ W``, ``log_norm = ln Σ W`` (natural log), so that
    ``ln p(x) = ln f(x) - log_norm`` is normalised by the same quadrature as the
    weights.  For the Schechter mass function this saves the separate
    normalising integral in every likelihood evaluation; for the closed-form
    distributions it agrees with the exact normaliser to the quadrature error.

    Returns
    -------
    weights : jax.Array, shape (n,)
    log_norm : jax.Array, shape ()
    """
    nodes, breakpoints, log_density, dtype = _quadrature_inputs(
        distribution, nodes, "normalised_quadrature"
    )
    log_f = getattr(distribution, "_log_unnormalised", log_density)
    weights = _cell_weights(log_f, breakpoints, nodes, n_gauss, dtype)
    total = jnp.sum(weights)
    return weights / total, jnp.log(total)


def _quadrature_inputs(distribution, nodes, caller: str):
    if distribution.batch_shape != ():
        raise ValueError(
            f"{caller} needs a scalar distribution, got batch shape {distribution.batch_shape}"
        )
    nodes = jnp.asarray(nodes)
    if nodes.ndim != 1 or nodes.shape[0] < 2:
        raise ValueError(f"{caller} needs at least 2 nodes in a 1-D array, got shape {nodes.shape}")
    dtype = jnp.result_type(
        nodes.dtype, *(jnp.asarray(leaf).dtype for leaf in jax.tree.leaves(distribution))
    )
    breakpoints, log_density = _density_parts(distribution)
    return (
        nodes.astype(dtype),
        breakpoints.astype(dtype),
        log_density,
        dtype,
    )  # breakpoints increasing


def _cell_weights(log_density, breakpoints, nodes, n_gauss: int, dtype):
    """Weights of ``exp(log_density)`` against the hat functions of ``nodes`` (tails to the end
    nodes)."""
    t, gw = (jnp.asarray(v, dtype) for v in np.polynomial.legendre.leggauss(n_gauss))
    n = nodes.shape[0]
    # Every sub-interval between consecutive points of {nodes, breakpoints}, plus the stretches of
    # the
    # support below the first and above the last node: n + m + 1 sub-intervals for m breakpoints (a
    # breakpoint on a node or outside the support only adds an empty one), each integrated with an
    # n_gauss-point Gauss-Legendre rule.  One sort and one fused pass keep the number of XLA kernels
    # small, which is what a single gradient evaluation inside NUTS pays for on a CPU.
    edges = jnp.sort(
        jnp.concatenate(
            [
                jnp.minimum(breakpoints[:1], nodes[:1]),
                nodes,
                breakpoints,
                jnp.maximum(breakpoints[-1:], nodes[-1:]),
            ]
        )
    )
    left, right = edges[:-1], edges[1:]
    half, mid = 0.5 * (right - left), 0.5 * (right + left)
    x = mid[:, None] + half[:, None] * t  # (n + m + 1, G)
    mass = half[:, None] * gw * jnp.exp(log_density(x))
    # The cell of each sub-interval; the part of p below the first node goes to node 0 (frac clipped
    # to 0) and above the last node to node n - 1 (frac clipped to 1): p_obs held constant there.
    cell = jnp.clip(jnp.searchsorted(nodes, mid, method="compare_all") - 1, 0, n - 2)
    lower, upper = nodes[cell], nodes[cell + 1]
    frac = jnp.clip((x - lower[:, None]) / (upper - lower)[:, None], 0.0, 1.0)
    to_left = jnp.sum(mass * (1.0 - frac), axis=1)
    to_right = jnp.sum(mass * frac, axis=1)
    return jnp.zeros(n, dtype).at[cell].add(to_left).at[cell + 1].add(to_right)


def _grid_dtype(grid: SelectionGrid, *distributions):
    return jnp.result_type(
        grid.p_obs.dtype,
        *(jnp.asarray(leaf).dtype for d in distributions for leaf in jax.tree.leaves(d)),
    )


@partial(jax.jit, static_argnames=("n_gauss",))
def p_corr_log_age(
    grid: SelectionGrid, mass_distribution, av_distribution, *, n_gauss: int = 8
) -> jax.Array:
    """Completeness marginalised over mass and extinction, on the grid's log_age nodes (eq. 16).

    ``p_corr(log_age) = ∬ p_obs(log_mass, log_age, av) p(log_mass) p(av) d log_mass d av``.

    Parameters
    ----------
    grid : SelectionGrid
        p_obs on the (log_mass, log_age, av) grid.
    mass_distribution : distribution in log_mass [log10 Msun]
        E.g. :class:`SchechterLogMass` or :class:`PowerLawLogMass` (scalar).
    av_distribution : distribution in av [mag]
        E.g. :class:`PiecewiseConstantAV` (scalar).
    n_gauss : int
        Gauss-Legendre points per sub-interval (see :func:`quadrature_weights`).

    Returns
    -------
    jax.Array, shape (n_age,)
        Marginal completeness at ``grid.log_age``; pure and differentiable in the
        distributions' parameters.
    """
    dtype = _grid_dtype(grid, mass_distribution, av_distribution)
    w_mass = quadrature_weights(mass_distribution, grid.log_mass.astype(dtype), n_gauss=n_gauss)
    w_av = quadrature_weights(av_distribution, grid.av.astype(dtype), n_gauss=n_gauss)
    # two matrix products over the contiguous layout: the one-shot einsum("i,ijk,k->j") made XLA
    # copy (transpose) the whole grid first, 8x slower than numpy (benchmarks/bench_marginalise.py)
    n_mass, n_age, n_av = grid.p_obs.shape
    over_mass = w_mass @ grid.p_obs.astype(dtype).reshape(n_mass, n_age * n_av)
    return over_mass.reshape(n_age, n_av) @ w_av


@partial(jax.jit, static_argnames=("n_gauss",))
def p_corr_log_mass(
    grid: SelectionGrid, age_distribution, av_distribution, *, n_gauss: int = 8
) -> jax.Array:
    """Completeness marginalised over age and extinction, on the grid's log_mass nodes.

    ``p_corr(log_mass) = ∬ p_obs(log_mass, log_age, av) p(log_age) p(av) d log_age d av``
    (the analogue of eq. 16 for the mass function).

    Parameters
    ----------
    grid : SelectionGrid
        p_obs on the (log_mass, log_age, av) grid.
    age_distribution : distribution in log_age [log10 yr]
        E.g. :class:`BrokenPowerLawLogAge` or :class:`PowerLawLogAge` (scalar).
    av_distribution : distribution in av [mag]
        E.g. :class:`PiecewiseConstantAV` (scalar).
    n_gauss : int
        Gauss-Legendre points per sub-interval.

    Returns
    -------
    jax.Array, shape (n_mass,)
        Marginal completeness at ``grid.log_mass``.
    """
    dtype = _grid_dtype(grid, age_distribution, av_distribution)
    w_age = quadrature_weights(age_distribution, grid.log_age.astype(dtype), n_gauss=n_gauss)
    w_av = quadrature_weights(av_distribution, grid.av.astype(dtype), n_gauss=n_gauss)
    return jnp.einsum("j,ijk,k->i", w_age, grid.p_obs.astype(dtype), w_av)


@partial(jax.jit, static_argnames=("n_gauss",))
def p_obs_mass_age(grid: SelectionGrid, av_distribution, *, n_gauss: int = 8) -> jax.Array:
    """Completeness on the (log_mass, log_age) plane marginalised over p(av) (eq. 14).

    With ``PiecewiseConstantAV(edges=[0, 3])`` (uniform on [0, 3] mag) this is eq. 15.

    Returns
    -------
    jax.Array, shape (n_mass, n_age)
    """
    dtype = _grid_dtype(grid, av_distribution)
    w_av = quadrature_weights(av_distribution, grid.av.astype(dtype), n_gauss=n_gauss)
    return jnp.einsum("ijk,k->ij", grid.p_obs.astype(dtype), w_av)


def interpolate_marginal(nodes, p_corr, x) -> jax.Array:
    """Linear interpolation of a marginal completeness at ``x`` (held constant beyond the nodes).

    Parameters
    ----------
    nodes : array, shape (n,)
        Grid nodes (``grid.log_age`` or ``grid.log_mass``).
    p_corr : array, shape (n,)
        Marginal completeness at the nodes.
    x : array
        Where to evaluate (same unit as ``nodes``).
    """
    return jnp.interp(jnp.asarray(x), jnp.asarray(nodes), jnp.asarray(p_corr))


# --------------------------------------------------------- p(A_V) estimate
@dataclasses.dataclass(frozen=True)
class AVEstimate:
    """Result of :func:`estimate_av_distribution`.

    Attributes
    ----------
    distribution : PiecewiseConstantAV
        The normalised histogram p(A_V).
    edges : numpy.ndarray
        Bin edges [mag].
    counts : numpy.ndarray
        Number of selected clusters per bin.
    selected : numpy.ndarray of bool
        Per catalogue row: finite (log_mass, log_age, av) and p_obs(log_mass,
        log_age, A_V = av_reference) >= level.
    p_obs_reference : numpy.ndarray
        p_obs at ``av_reference`` for each catalogue row (NaN for rows without values).
    n_outside_range : int
        Selected clusters whose A_V falls outside the edges (dropped or clipped).
    """

    distribution: PiecewiseConstantAV
    edges: np.ndarray
    counts: np.ndarray
    selected: np.ndarray
    p_obs_reference: np.ndarray
    n_outside_range: int

    @property
    def n_selected(self) -> int:
        """Number of clusters inside the high-completeness region."""
        return int(np.sum(self.selected))


def _column(catalogue, name: str) -> np.ndarray:
    column = catalogue[name]
    values = np.ma.filled(np.ma.asarray(getattr(column, "value", column), dtype=np.float64), np.nan)
    return np.asarray(values, dtype=np.float64)


def estimate_av_distribution(
    selection,
    catalogue,
    *,
    av_reference: float = 3.0,
    level: float = 0.5,
    edges=None,
    n_bins: int = 4,
    av_range: tuple[float, float] = AV_RANGE,
    out_of_range: Literal["drop", "clip"] = "drop",
    return_details: bool = False,
):
    """p(A_V) from the catalogue clusters in the high-completeness region (Tang et al. 2026, sec.
    4.4.1).

    The region is the inside of the contour ``p_obs(log_mass, log_age,
    A_V = av_reference) = level`` in the (log_mass, log_age) plane; a cluster
    is inside when its p_obs at its catalogue mass and age and at
    ``A_V = av_reference`` is at least ``level`` (evaluated directly, which is
    the same set as a contour drawn on a fine grid).  The A_V values of those
    clusters are histogrammed into ``n_bins`` equal bins on ``av_range``.

    Parameters
    ----------
    selection : SelectionFunction, SelectionGrid or callable
        p_obs with physical inputs: a network (evaluated with
        :meth:`~jaxcomp.SelectionFunction.predict`, inputs clipped to its domain),
        a :class:`SelectionGrid` (trilinear interpolation) or a callable
        ``f(log_mass, log_age, av)``.
    catalogue : astropy.table.Table or mapping
        Columns ``log_mass`` [log10 Msun], ``log_age`` [log10 yr], ``av`` [mag];
        masked or non-finite rows are ignored.
    av_reference : float
        A_V [mag] at which the region is defined (3, the top of the library range).
    level : float
        Contour level (0.5).
    edges : array, optional
        Bin edges [mag]; default ``n_bins`` equal bins on ``av_range``.
    n_bins : int
        Number of bins when ``edges`` is not given (4 in the paper).
    av_range : tuple of float
        Range of the default bins [mag].
    out_of_range : {"drop", "clip"}
        What to do with selected clusters whose A_V lies outside the edges:
        ignore them (``numpy.histogram`` semantics) or count them in the end bins.
    return_details : bool
        Also return an :class:`AVEstimate` with counts and the selection mask.

    Returns
    -------
    PiecewiseConstantAV or AVEstimate
        The distribution, or the full :class:`AVEstimate` if ``return_details``.

    Raises
    ------
    ValueError
        If no cluster (or none within the edges) lies in the region.
    """
    if out_of_range not in ("drop", "clip"):
        raise ValueError(f"out_of_range must be 'drop' or 'clip', got {out_of_range!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    edges = (
        np.linspace(*av_range, n_bins + 1) if edges is None else np.asarray(edges, dtype=np.float64)
    )
    if edges.ndim != 1 or edges.shape[0] < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be a strictly increasing 1-d array with at least 2 entries")
    log_mass, log_age, av = (_column(catalogue, name) for name in PHYSICAL_AXES)
    finite = np.isfinite(log_mass) & np.isfinite(log_age) & np.isfinite(av)
    if not finite.any():
        raise ValueError("the catalogue has no row with finite log_mass, log_age and av")
    p_ref = np.full(log_mass.shape, np.nan)
    m, t = log_mass[finite], log_age[finite]
    a = np.full(m.shape, float(av_reference))
    if isinstance(selection, SelectionFunction):
        domain = selection.domain
        table = {
            "log_mass": np.clip(m, *domain["log_mass"]),
            "log_age": np.clip(t, *domain["log_age"]),
            "av": np.clip(a, *domain["av"]),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_ref[finite] = selection.predict(table, out_of_domain="clip")
    elif isinstance(selection, SelectionGrid):
        p_ref[finite] = np.asarray(selection.interpolate(m, t, a))
    elif callable(selection):
        p_ref[finite] = np.asarray(selection(m, t, a), dtype=np.float64)
    else:
        raise TypeError(
            "selection must be a SelectionFunction, SelectionGrid or callable, got "
            f"{type(selection)}"
        )
    selected = finite & (np.nan_to_num(p_ref, nan=-1.0) >= level)
    values = av[selected]
    outside = (values < edges[0]) | (values > edges[-1])
    if out_of_range == "clip":
        values = np.clip(values, edges[0], edges[-1])
    counts, _ = np.histogram(values, bins=edges)
    if counts.sum() == 0:
        raise ValueError(
            f"no catalogue cluster (of {int(finite.sum())}) lies inside p_obs(A_V={av_reference}) "
            f">= {level} "
            "with A_V inside the bin edges; p(A_V) cannot be estimated"
        )
    distribution = PiecewiseConstantAV(edges, counts.astype(np.float64))
    if not return_details:
        return distribution
    return AVEstimate(
        distribution=distribution,
        edges=edges,
        counts=counts,
        selected=selected,
        p_obs_reference=p_ref,
        n_outside_range=int(outside.sum()),
    )
