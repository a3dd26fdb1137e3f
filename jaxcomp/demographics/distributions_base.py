"""What the population distributions of :mod:`jaxcomp.demographics.distributions` share: the
default supports of the C-4 library (:data:`LOG_MASS_RANGE`, :data:`LOG_AGE_RANGE`,
:data:`AV_RANGE`), closed-form integrals, CDF and inverse CDF of ``p(x) ∝ exp(beta x)`` on an
interval, and :class:`_LogDensity`, the NumPyro base class of a density on a bounded interval of
a log variable (jit-compiled ``log_prob``, ``cdf``, ``icdf`` and ``sample``).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution, constraints

__all__ = ["AV_RANGE", "LOG_AGE_RANGE", "LOG_MASS_RANGE"]

LN10 = math.log(10.0)

#: Default log10 mass range [log10 Msun]: the C-4 artificial-cluster library (Tang+2026 sec. 3.2).
LOG_MASS_RANGE: tuple[float, float] = (2.0, 8.0)
#: Default log10 age range [log10 yr]: 1e5 to 1.5e10 yr, the C-4 library.
LOG_AGE_RANGE: tuple[float, float] = (5.0, math.log10(1.5e10))
#: Default A_V range [mag] of the C-4 library.
AV_RANGE: tuple[float, float] = (0.0, 3.0)


# --------------------------------------------------------------------- helpers
def _is_concrete(*values) -> bool:
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def _check(condition, message: str) -> None:
    """Raise ``ValueError(message)`` if a concrete ``condition`` is false anywhere."""
    if _is_concrete(condition) and not bool(np.all(np.asarray(condition))):
        raise ValueError(message)


def _log_sinhc(h):
    """``log(sinh(h) / h)``, stable for all real ``h`` and with finite gradients."""
    h = jnp.asarray(h)
    small = jnp.abs(h) < 0.1
    h_small = jnp.where(small, h, 0.0)
    h2 = h_small * h_small
    series = h2 * (1.0 / 6.0 + h2 * (-1.0 / 180.0 + h2 * (1.0 / 2835.0 - h2 / 37800.0)))
    a = jnp.abs(jnp.where(small, 1.0, h))
    large = a - math.log(2.0) + jnp.log1p(-jnp.exp(-2.0 * a)) - jnp.log(a)
    return jnp.where(small, series, large)


def _log_int_exp(beta, lower, upper):
    """``log ∫_lower^upper exp(beta x) dx`` (natural-log slope ``beta``), stable and differentiable.

    Returns ``-inf`` where ``upper <= lower``.
    """
    width = upper - lower
    positive = width > 0
    safe_width = jnp.where(positive, width, 1.0)
    value = jnp.log(safe_width) + beta * 0.5 * (lower + upper) + _log_sinhc(0.5 * beta * safe_width)
    return jnp.where(positive, value, -jnp.inf)


def _power_law_icdf(beta, lower, upper, u):
    """Inverse CDF of ``p(x) ∝ exp(beta x)`` on ``[lower, upper]`` at probability ``u``."""
    width = upper - lower
    z = beta * width
    tiny = jnp.abs(z) < 1e-6
    safe_beta = jnp.where(tiny, 1.0, beta)
    # beta < 0: x = lower + log1p(u expm1(beta L)) / beta   (expm1 in (-1, 0), no overflow)
    # beta > 0: mirror image, x = upper + log1p((1 - u) expm1(-beta L)) / beta
    neg = lower + jnp.log1p(u * jnp.expm1(jnp.minimum(safe_beta, 0.0) * width)) / safe_beta
    pos = upper + jnp.log1p((1.0 - u) * jnp.expm1(-jnp.maximum(safe_beta, 0.0) * width)) / safe_beta
    exact = jnp.where(safe_beta < 0, neg, pos)
    return jnp.clip(jnp.where(tiny, lower + u * width, exact), lower, upper)


def _power_law_cdf(beta, lower, upper, x):
    """CDF of ``p(x) ∝ exp(beta x)`` on ``[lower, upper]``."""
    xc = jnp.clip(x, lower, upper)
    inside = xc > lower
    safe_x = jnp.where(inside, xc, upper)
    value = jnp.exp(_log_int_exp(beta, lower, safe_x) - _log_int_exp(beta, lower, upper))
    return jnp.where(inside, value, 0.0)


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return nodes, weights


def _uniform(key, shape, dtype):
    return jax.random.uniform(key, shape, dtype=dtype, minval=0.0, maxval=1.0)


def _float_dtype(*values):
    return jnp.result_type(float, *(jnp.asarray(v) for v in values))


@jax.jit
def _jit_log_density(distribution, value):
    return distribution._log_density(value)


@jax.jit
def _jit_cdf(distribution, value):
    return distribution._cdf(value)


@jax.jit
def _jit_icdf(distribution, q):
    return distribution._icdf(q)


@partial(jax.jit, static_argnums=2)
def _jit_sample(distribution, key, sample_shape):
    return distribution._sample(key, sample_shape)


class _LogDensity(Distribution):
    """Shared machinery: a real-valued density on a bounded interval of a log variable."""

    # Subclasses define ``low`` and ``high`` (support edges), ``_log_density`` (normalised
    # log density, -inf outside the support, no validation) and ``breakpoints``.

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    # The public methods call jit-compiled versions of the private ones (the
    # distribution is a pytree argument), so eager use compiles one program per
    # method and shape instead of dispatching dozens of small operations.
    def log_prob(self, value):
        """Normalised log density at ``value`` (``-inf`` outside the support).

        With ``validate_args`` (NumPyro's default) values outside the support
        also trigger NumPyro's out-of-support warning.
        """
        value = jnp.asarray(value)
        log_p = _jit_log_density(self, value)
        if self._validate_args and _is_concrete(value, log_p):
            self._validate_sample(value)  # warns about out-of-support values
        return log_p

    def cdf(self, value):
        """Cumulative probability ``P(X <= value)``."""
        return _jit_cdf(self, jnp.asarray(value))

    def icdf(self, q):
        """Quantile function: the value with ``cdf(value) = q``."""
        return _jit_icdf(self, jnp.asarray(q))

    def sample(self, key, sample_shape=()):
        """Draw samples of shape ``sample_shape + batch_shape``."""
        return _jit_sample(self, key, tuple(sample_shape))

    def prob(self, value):
        """Normalised density at ``value``."""
        return jnp.exp(self.log_prob(value))

    def _log_unnormalised(self, value):
        """Log density up to a constant (``-inf`` outside the support), at most about 0 on it.

        Cheaper than :meth:`_log_density` where the normaliser is not closed-form:
        the likelihood normalises it by the same quadrature that gives the
        detection fraction (:func:`~jaxcomp.demographics.marginalise.normalised_quadrature`).
        """
        return self._log_density(value)

    def _inside(self, value):
        return (value >= self.low) & (value <= self.high)

    def _check_interval(self) -> None:
        if self._validate_args:
            _check(
                self.low < self.high,
                f"{type(self).__name__}: the lower support edge must be below the upper one",
            )
