"""Power-law population distributions (see :mod:`jaxcomp.demographics.distributions`):
:class:`PowerLawLogMass` and :class:`PowerLawLogAge` (``dN/dM ∝ M^α``, ``dN/dT ∝ T^α``, truncated
to a support) and :class:`BrokenPowerLawLogAge` (Tang et al. 2024: broken at ``log_age_break``,
continuous there), normalised and sampled in closed form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes

from .distributions_base import (
    LN10,
    LOG_AGE_RANGE,
    LOG_MASS_RANGE,
    _float_dtype,
    _log_int_exp,
    _LogDensity,
    _power_law_cdf,
    _power_law_icdf,
    _uniform,
)

__all__ = ["BrokenPowerLawLogAge", "PowerLawLogAge", "PowerLawLogMass"]


# --------------------------------------------------------------- power laws
class _TruncatedLogPowerLaw(_LogDensity):
    """``p(x) ∝ 10**((alpha + 1) x)`` on ``[low, high]``, in closed form."""

    def _beta(self):
        return (self.alpha + 1.0) * LN10

    def log_normaliser(self):
        """log ∫ 10**((alpha+1) x) dx over the support (natural log)."""
        return _log_int_exp(self._beta(), self.low, self.high)

    def _log_density(self, value):
        value = jnp.asarray(value)
        log_p = self._beta() * value - self.log_normaliser()
        return jnp.where(self._inside(value), log_p, -jnp.inf)

    def _log_unnormalised(self, value):
        value = jnp.asarray(value)
        beta = self._beta()
        top = jnp.where(beta > 0, self.high, self.low)  # where the density peaks
        return jnp.where(self._inside(value), beta * (value - top), -jnp.inf)

    def _cdf(self, value):
        """Cumulative probability ``P(X <= value)`` (exact)."""
        return _power_law_cdf(self._beta(), self.low, self.high, jnp.asarray(value))

    def _icdf(self, q):
        """Quantile function (exact)."""
        return _power_law_icdf(self._beta(), self.low, self.high, jnp.asarray(q))

    def _sample(self, key, sample_shape=()):
        """Exact inverse-CDF samples, shape ``sample_shape + batch_shape``."""
        shape = tuple(sample_shape) + self.batch_shape
        return self._icdf(_uniform(key, shape, _float_dtype(self.alpha)))

    def breakpoints(self):
        """Support edges ``[low, high]``, shape ``batch_shape + (2,)``."""
        return jnp.stack(jnp.broadcast_arrays(self.low, self.high), axis=-1)

    @property
    def mean(self):
        beta = self._beta()
        # E[x] = d/dbeta log Z
        return jax.grad(lambda b: jnp.sum(_log_int_exp(b, self.low, self.high)))(
            beta * jnp.ones_like(self.low)
        )


class PowerLawLogMass(_TruncatedLogPowerLaw):
    """Truncated power-law mass function as a density in ``log_mass``.

    ``p(log_mass) ∝ M^(alpha + 1)`` on ``[log_mass_min, log_mass_max]``, i.e.
    ``dN/dM ∝ M^alpha`` (Adamo et al. 2017 for NGC 628: ``alpha = -2.09``).

    Parameters
    ----------
    alpha : float or array
        Slope of dN/dM (dimensionless); ``alpha = -1`` is flat in log mass.
    log_mass_min, log_mass_max : float or array
        Support [log10 Msun]; default the C-4 library range [2, 8].
    validate_args : bool, optional
        Check that parameters are finite and ``log_mass_min < log_mass_max``.
    """

    arg_constraints = {
        "alpha": constraints.real,
        "log_mass_min": constraints.real,
        "log_mass_max": constraints.real,
    }
    reparametrized_params = ["alpha", "log_mass_min", "log_mass_max"]

    def __init__(
        self,
        alpha=-2.0,
        log_mass_min=LOG_MASS_RANGE[0],
        log_mass_max=LOG_MASS_RANGE[1],
        *,
        validate_args=None,
    ):
        self.alpha, self.log_mass_min, self.log_mass_max = promote_shapes(
            alpha, log_mass_min, log_mass_max
        )
        batch_shape = lax.broadcast_shapes(
            jnp.shape(alpha), jnp.shape(log_mass_min), jnp.shape(log_mass_max)
        )
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)
        self._check_interval()

    @property
    def low(self):
        return self.log_mass_min

    @property
    def high(self):
        return self.log_mass_max


class PowerLawLogAge(_TruncatedLogPowerLaw):
    """Truncated power-law age distribution as a density in ``log_age``.

    ``p(log_age) ∝ T^(alpha + 1)`` on ``[log_age_min, log_age_max]``, i.e.
    ``dN/dT ∝ T^alpha`` (Adamo et al. 2017 for NGC 628: ``alpha = -0.8`` on
    log T in [6.0, 8.3], the defaults).

    Parameters
    ----------
    alpha : float or array
        Slope of dN/dT (dimensionless); ``alpha = -1`` is flat in log age.
    log_age_min, log_age_max : float or array
        Support [log10 yr].
    validate_args : bool, optional
        Check that parameters are finite and ``log_age_min < log_age_max``.
    """

    arg_constraints = {
        "alpha": constraints.real,
        "log_age_min": constraints.real,
        "log_age_max": constraints.real,
    }
    reparametrized_params = ["alpha", "log_age_min", "log_age_max"]

    def __init__(self, alpha=-0.8, log_age_min=6.0, log_age_max=8.3, *, validate_args=None):
        self.alpha, self.log_age_min, self.log_age_max = promote_shapes(
            alpha, log_age_min, log_age_max
        )
        batch_shape = lax.broadcast_shapes(
            jnp.shape(alpha), jnp.shape(log_age_min), jnp.shape(log_age_max)
        )
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)
        self._check_interval()

    @property
    def low(self):
        return self.log_age_min

    @property
    def high(self):
        return self.log_age_max


class BrokenPowerLawLogAge(_LogDensity):
    """Broken power-law age distribution as a density in ``log_age``, continuous at the break.

    ``p(log_age) ∝ (T / T_break)^(alpha_young + 1)`` for ``log_age < log_age_break``
    and ``∝ (T / T_break)^(alpha + 1)`` above, on ``[log_age_min, log_age_max]``.
    The defaults are the Tang et al. (2024) NGC 628 fit used by Tang et al.
    (2026): ``p ∝ T`` (``alpha_young = 0``) below log T = 8.22 and
    ``alpha = -1.41`` above.  The support defaults to the C-4 library ages
    (1e5 to 1.5e10 yr; the papers do not state it).  A break outside the
    support reduces to a single power law.  Normalised and sampled exactly.

    Parameters
    ----------
    alpha : float or array
        Slope of dN/dT above the break (dimensionless).
    log_age_break : float or array
        Break age [log10 yr].
    alpha_young : float or array
        Slope of dN/dT below the break.
    log_age_min, log_age_max : float or array
        Support [log10 yr].
    validate_args : bool, optional
        Check that parameters are finite and ``log_age_min < log_age_max``.
    """

    arg_constraints = {
        "alpha": constraints.real,
        "log_age_break": constraints.real,
        "alpha_young": constraints.real,
        "log_age_min": constraints.real,
        "log_age_max": constraints.real,
    }
    reparametrized_params = ["alpha", "log_age_break", "alpha_young", "log_age_min", "log_age_max"]

    def __init__(
        self,
        alpha=-1.41,
        log_age_break=8.22,
        alpha_young=0.0,
        log_age_min=LOG_AGE_RANGE[0],
        log_age_max=LOG_AGE_RANGE[1],
        *,
        validate_args=None,
    ):
        (self.alpha, self.log_age_break, self.alpha_young, self.log_age_min, self.log_age_max) = (
            promote_shapes(alpha, log_age_break, alpha_young, log_age_min, log_age_max)
        )
        batch_shape = lax.broadcast_shapes(
            *(jnp.shape(v) for v in (alpha, log_age_break, alpha_young, log_age_min, log_age_max))
        )
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)
        self._check_interval()

    @property
    def low(self):
        return self.log_age_min

    @property
    def high(self):
        return self.log_age_max

    def _slopes(self):
        """Natural-log slopes below and above the break."""
        return (self.alpha_young + 1.0) * LN10, (self.alpha + 1.0) * LN10

    def _log_kinked(self, value):
        """Unnormalised log density, 0 at the break (no support check)."""
        beta_young, beta_old = self._slopes()
        dx = value - self.log_age_break
        return jnp.where(dx < 0, beta_young * dx, beta_old * dx)

    def _segments(self):
        """Natural-log slopes, clipped break and log masses of the two segments (x measured from the
        break)."""
        beta_young, beta_old = self._slopes()
        x_break = jnp.clip(self.log_age_break, self.low, self.high)
        log_z_young = _log_int_exp(
            beta_young, self.low - self.log_age_break, x_break - self.log_age_break
        )
        log_z_old = _log_int_exp(
            beta_old, x_break - self.log_age_break, self.high - self.log_age_break
        )
        return beta_young, beta_old, x_break, log_z_young, log_z_old

    def log_normaliser(self):
        """log of the integral of the unnormalised density over the support (natural log)."""
        *_, log_z_young, log_z_old = self._segments()
        return jnp.logaddexp(log_z_young, log_z_old)

    def _log_density(self, value):
        value = jnp.asarray(value)
        *_, log_z_young, log_z_old = self._segments()
        log_p = self._log_kinked(value) - jnp.logaddexp(log_z_young, log_z_old)
        return jnp.where(self._inside(value), log_p, -jnp.inf)

    def _log_unnormalised(self, value):
        value = jnp.asarray(value)
        x_break = jnp.clip(self.log_age_break, self.low, self.high)
        peak = jnp.maximum(
            jnp.maximum(self._log_kinked(self.low), self._log_kinked(self.high)),
            self._log_kinked(x_break),
        )
        return jnp.where(
            self._inside(value), self._log_kinked(value) - lax.stop_gradient(peak), -jnp.inf
        )

    def _young_fraction(self):
        *_, log_z_young, log_z_old = self._segments()
        return jnp.exp(log_z_young - jnp.logaddexp(log_z_young, log_z_old))

    def _cdf(self, value):
        """Cumulative probability ``P(X <= value)`` (exact)."""
        value = jnp.asarray(value)
        beta_young, beta_old, x_break, _, _ = self._segments()
        f_young = self._young_fraction()
        below = f_young * _power_law_cdf(beta_young, self.low, x_break, value)
        above = (1.0 - f_young) * _power_law_cdf(beta_old, x_break, self.high, value)
        return jnp.clip(below + above, 0.0, 1.0)

    def _icdf(self, q):
        """Quantile function (exact)."""
        q = jnp.asarray(q)
        beta_young, beta_old, x_break, _, _ = self._segments()
        f_young = self._young_fraction()
        safe_young = jnp.where(f_young > 0, f_young, 1.0)
        safe_old = jnp.where(f_young < 1, 1.0 - f_young, 1.0)
        young = _power_law_icdf(beta_young, self.low, x_break, jnp.clip(q / safe_young, 0.0, 1.0))
        old = _power_law_icdf(
            beta_old, x_break, self.high, jnp.clip((q - f_young) / safe_old, 0.0, 1.0)
        )
        return jnp.where(q < f_young, young, old)

    def _sample(self, key, sample_shape=()):
        """Exact inverse-CDF samples, shape ``sample_shape + batch_shape``."""
        shape = tuple(sample_shape) + self.batch_shape
        return self._icdf(_uniform(key, shape, _float_dtype(self.alpha)))

    def breakpoints(self):
        """``[low, break (clipped to the support), high]``, shape ``batch_shape + (3,)``."""
        x_break = jnp.clip(self.log_age_break, self.low, self.high)
        return jnp.stack(jnp.broadcast_arrays(self.low, x_break, self.high), axis=-1)
