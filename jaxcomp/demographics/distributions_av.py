"""The extinction distribution p(A_V) (see :mod:`jaxcomp.demographics.distributions`):
:class:`PiecewiseConstantAV`, a normalised histogram of ``av`` [mag] on bins.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro.distributions import constraints

from .distributions_base import _check, _float_dtype, _LogDensity, _uniform

__all__ = ["PiecewiseConstantAV"]


# ---------------------------------------------------------------- extinction
class PiecewiseConstantAV(_LogDensity):
    """Piecewise-constant extinction distribution p(A_V) (a normalised histogram).

    ``p(av) = weights_k / sum(weights) / (edges[k+1] - edges[k])`` for
    ``edges[k] <= av < edges[k+1]`` (the last bin includes its upper edge).
    Tang et al. (2026) use four equal bins on [0, 3] mag filled with the A_V
    of the catalogue clusters in the high-completeness region (see
    :func:`jaxcomp.demographics.estimate_av_distribution`).

    Parameters
    ----------
    edges : array, shape (n_bins + 1,)
        Strictly increasing bin edges [mag]; not batched.
    weights : array, shape batch_shape + (n_bins,)
        Non-negative bin weights (e.g. counts), normalised internally; their
        sum must be positive.  Default: equal weights (uniform on the edges).
    validate_args : bool, optional
        Check the edges are increasing and the weights non-negative with a
        positive sum.
    """

    arg_constraints = {
        "edges": constraints.ordered_vector,
        "weights": constraints.independent(constraints.nonnegative, 1),
    }
    reparametrized_params = ["weights"]

    def __init__(self, edges=(0.0, 0.75, 1.5, 2.25, 3.0), weights=None, *, validate_args=None):
        edges = jnp.asarray(edges, dtype=_float_dtype(edges))
        if edges.ndim != 1 or edges.shape[0] < 2:
            raise ValueError(
                f"edges must be one-dimensional with at least 2 entries, got shape {edges.shape}"
            )
        if weights is None:
            weights = jnp.ones(edges.shape[0] - 1, dtype=edges.dtype)
        weights = jnp.asarray(weights, dtype=_float_dtype(weights))
        if weights.ndim < 1 or weights.shape[-1] != edges.shape[0] - 1:
            raise ValueError(
                f"weights must have {edges.shape[0] - 1} entries along the last axis (one per "
                "bin), "
                f"got shape {weights.shape}"
            )
        self.edges = edges
        self.weights = weights
        super().__init__(batch_shape=weights.shape[:-1], validate_args=validate_args)
        if self._validate_args:
            _check(
                jnp.sum(weights, axis=-1) > 0,
                "PiecewiseConstantAV: the weights must have a positive sum",
            )

    @property
    def low(self):
        return self.edges[0]

    @property
    def high(self):
        return self.edges[-1]

    @property
    def n_bins(self) -> int:
        return int(self.edges.shape[0] - 1)

    @property
    def probabilities(self):
        """Probability of each bin, shape ``batch_shape + (n_bins,)``."""
        return self.weights / jnp.sum(self.weights, axis=-1, keepdims=True)

    @property
    def densities(self):
        """Density [1/mag] in each bin, shape ``batch_shape + (n_bins,)``."""
        return self.probabilities / jnp.diff(self.edges)

    def _bin_index(self, value):
        index = jnp.searchsorted(self.edges, value, side="right") - 1
        return jnp.clip(index, 0, self.n_bins - 1)

    def _log_density(self, value):
        value = jnp.asarray(value)
        index = self._bin_index(value)
        log_densities = jnp.log(self.densities)
        shape = jnp.broadcast_shapes(value.shape, self.batch_shape)
        log_densities = jnp.broadcast_to(log_densities, shape + (self.n_bins,))
        log_p = jnp.take_along_axis(
            log_densities, jnp.broadcast_to(index, shape)[..., None], axis=-1
        )[..., 0]
        return jnp.where(self._inside(value), log_p, -jnp.inf)

    def _cdf(self, value):
        """Cumulative probability ``P(X <= value)`` (exact)."""
        value = jnp.asarray(value)
        lower = self.edges[:-1]
        width = jnp.diff(self.edges)
        fraction = jnp.clip((value[..., None] - lower) / width, 0.0, 1.0)
        return jnp.sum(fraction * self.probabilities, axis=-1)

    def _icdf(self, q):
        """Quantile function (exact)."""
        q = jnp.asarray(q)
        probabilities = jnp.broadcast_to(
            self.probabilities, jnp.broadcast_shapes(q.shape, self.batch_shape) + (self.n_bins,)
        )
        cumulative = jnp.cumsum(probabilities, axis=-1)
        # first bin whose cumulative probability exceeds q (this skips empty bins)
        index = jnp.clip(jnp.sum(cumulative <= q[..., None], axis=-1), 0, self.n_bins - 1)
        before = (
            jnp.take_along_axis(cumulative, index[..., None], axis=-1)[..., 0]
            - jnp.take_along_axis(probabilities, index[..., None], axis=-1)[..., 0]
        )
        p_bin = jnp.take_along_axis(probabilities, index[..., None], axis=-1)[..., 0]
        r = jnp.clip((q - before) / jnp.where(p_bin > 0, p_bin, 1.0), 0.0, 1.0)
        return self.edges[index] + r * (self.edges[index + 1] - self.edges[index])

    def _sample(self, key, sample_shape=()):
        """Exact samples: a bin by its probability, then uniform within the bin."""
        shape = tuple(sample_shape) + self.batch_shape
        key_bin, key_within = jax.random.split(key)
        index = jax.random.categorical(key_bin, jnp.log(self.probabilities), shape=shape)
        u = _uniform(key_within, shape, self.edges.dtype)
        return self.edges[index] + u * (self.edges[index + 1] - self.edges[index])

    def breakpoints(self):
        """All bin edges, shape ``(n_bins + 1,)``."""
        return self.edges

    @property
    def mean(self):
        centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        return jnp.sum(self.probabilities * centres, axis=-1)
