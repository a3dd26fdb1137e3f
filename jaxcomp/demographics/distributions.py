"""Population distributions of cluster mass, age and extinction as NumPyro distributions.

Every distribution here is a density in a *log* physical variable (or in A_V),
following the conventions of Tang et al. (2026, section 4.4.1):

* mass: ``x = log_mass`` [log10 Msun], ``p(x) ∝ M^(α+1) exp(-M / M_break)``
  (Schechter) or ``p(x) ∝ M^(α+1)`` (power law), so that ``dN/dM ∝ M^α``;
* age: ``x = log_age`` [log10 yr], ``p(x) ∝ T^(α+1)`` (``dN/dT ∝ T^α``),
  optionally broken at ``log_age_break`` (Tang et al. 2024: ``p ∝ T`` below
  log T = 8.22, ``∝ T^(α_T+1)`` above, continuous at the break);
* extinction: ``av`` [mag], piecewise constant on bins (a normalised histogram).

All of them are truncated to a finite support, are JAX pytrees whose parameters
are traced (so ``jax.grad`` of ``log_prob`` with respect to ``alpha``,
``log_mass_break`` etc. works and they can be passed into ``jax.jit``), and
validate their arguments when ``validate_args=True``.  Power laws are
normalised and sampled in closed form; the Schechter form is normalised by a
fixed composite Gauss-Legendre rule (relative error below 1e-9 in float64 for
the parameter ranges of interest, see :class:`SchechterLogMass`) and sampled by
an inverse CDF on a fine grid with piecewise log-linear density.

Each distribution also exposes :meth:`breakpoints`: the support edges and any
interior points where the density or its slope is discontinuous.  The
marginalisation code (:mod:`jaxcomp.demographics.marginalise`) splits its
quadrature cells there, so truncation edges and kinks are integrated exactly.
"""

from .distributions_av import PiecewiseConstantAV
from .distributions_base import AV_RANGE, LOG_AGE_RANGE, LOG_MASS_RANGE
from .distributions_power_law import BrokenPowerLawLogAge, PowerLawLogAge, PowerLawLogMass
from .distributions_schechter import SchechterLogMass

__all__ = [
    "PowerLawLogMass",
    "SchechterLogMass",
    "PowerLawLogAge",
    "BrokenPowerLawLogAge",
    "PiecewiseConstantAV",
    "LOG_MASS_RANGE",
    "LOG_AGE_RANGE",
    "AV_RANGE",
]
