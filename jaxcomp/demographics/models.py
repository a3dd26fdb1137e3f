"""Hierarchical population models of star clusters: p(log M, log T, A_V | Λ) and its hyperpriors.

A :class:`PopulationModel` fixes the functional forms and the priors of the
population ("hyper") parameters Λ of the inhomogeneous Poisson intensity

    dN/dθ(Λ) = N · p(log M | Λ_M) · p(log T | Λ_T [, log M]) · p(A_V | Λ_A),   θ = (log M, log T,
    A_V),

and how the likelihood treats the data (see :mod:`jaxcomp.demographics.likelihood`).

Functional forms (densities in ``log_mass`` [log10 Msun], ``log_age`` [log10 yr], ``av`` [mag]):

* mass: ``"schechter"`` (:class:`SchechterLogMass`, parameters ``alpha_M``, ``log_M_break``)
  or ``"power_law"`` (:class:`PowerLawLogMass`, ``alpha_M``); ``dN/dM ∝ M^alpha_M
  [exp(-M/M_break)]``;
* age: ``"power_law"`` (:class:`PowerLawLogAge`, ``alpha_T``) or ``"broken_power_law"``
  (:class:`BrokenPowerLawLogAge`: ``alpha_T_young`` below ``log_T_break``, ``alpha_T`` above,
  continuous); ``dN/dT ∝ T^alpha_T``;
* mass-dependent ages (disruption), optional: the (old-side) age slope is
  ``alpha_T(M) = alpha_T + beta_T (log M - pivot_log_mass)`` with ``pivot_log_mass = 4``;
  the age distribution is then normalised separately at every mass;
* extinction: ``"piecewise"`` (:class:`PiecewiseConstantAV` on ``av_edges`` with bin
  probabilities ``av_weights ~ Dirichlet(av_concentration)``) or ``"fixed"`` (the same
  histogram with the given ``av_weights``, e.g. from
  :func:`~jaxcomp.demographics.estimate_av_distribution`).

Default priors (all uniform unless stated; override with ``priors={name: (low, high)}``):

=================  ===============  ===================================================
parameter          prior            meaning
=================  ===============  ===================================================
``alpha_M``        U(-3, -1)        slope of dN/dM
``log_M_break``    U(3.5, 7.5)      log10 Schechter break mass [Msun]
``alpha_T``        U(-3, 1)         slope of dN/dT (above the break for the broken form)
``alpha_T_young``  U(-2, 1)         slope of dN/dT below the break
``log_T_break``    U(6.5, 9.5)      log10 age of the break [yr]
``beta_T``         U(-1, 1)         d alpha_T / d log10 M (mass-dependent form)
``av_weights``     Dirichlet(1)     A_V bin probabilities (``av="piecewise"``)
``log10_N``        U(0, 9)          log10 of the total number N (Poisson form only;
                                    a 1/N prior, so the posterior of Λ equals that of
                                    the marginalised-N form)
=================  ===============  ===================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from .distributions import (
    LOG_AGE_RANGE,
    LOG_MASS_RANGE,
    BrokenPowerLawLogAge,
    PowerLawLogAge,
    PowerLawLogMass,
    SchechterLogMass,
)

__all__ = ["PopulationModel", "DEFAULT_PRIORS", "THETA_COLUMNS", "DEFAULT_AV_EDGES"]

#: Order of the population variables on the last axis of ``theta`` arrays.
THETA_COLUMNS: tuple[str, str, str] = ("log_mass", "log_age", "av")
#: Four equal A_V bins on [0, 3] mag (Tang et al. 2026, sec. 4.4.1).
DEFAULT_AV_EDGES: tuple[float, ...] = (0.0, 0.75, 1.5, 2.25, 3.0)

#: Uniform prior bounds of the hyperparameters (see the module docstring).
DEFAULT_PRIORS: dict[str, tuple[float, float]] = {
    "alpha_M": (-3.0, -1.0),
    "log_M_break": (3.5, 7.5),
    "alpha_T": (-3.0, 1.0),
    "alpha_T_young": (-2.0, 1.0),
    "log_T_break": (6.5, 9.5),
    "beta_T": (-1.0, 1.0),
    "log10_N": (0.0, 9.0),
}

#: The string switches of :class:`PopulationModel` (the tuples below are derived from them).
MassForm = Literal["schechter", "power_law"]
AgeForm = Literal["power_law", "broken_power_law"]
AVForm = Literal["piecewise", "fixed"]
LikelihoodForm = Literal["marginal", "poisson"]
MeasurementErrorModel = Literal["none", "latent", "samples"]
_MASS_FORMS = get_args(MassForm)
_AGE_FORMS = get_args(AgeForm)
_AV_FORMS = get_args(AVForm)
_LIKELIHOODS = get_args(LikelihoodForm)
_ERRORS = get_args(MeasurementErrorModel)


@dataclasses.dataclass(frozen=True)
class PopulationModel:
    """Functional forms, supports, priors and likelihood options of a cluster population.

    Parameters
    ----------
    mass : {"schechter", "power_law"}
        Form of the mass function.
    age : {"power_law", "broken_power_law"}
        Form of the age distribution.
    av : {"piecewise", "fixed"}
        Piecewise-constant p(A_V) with Dirichlet-distributed bin probabilities, or a fixed
        histogram.
    av_edges : tuple of float
        A_V bin edges [mag] (support of p(A_V)).
    av_weights : tuple of float, optional
        Bin weights of the fixed p(A_V) (normalised internally); default equal.
    av_concentration : float
        Concentration of the symmetric Dirichlet prior on the A_V bin probabilities.
    mass_dependent_age : bool
        Let the (old-side) age slope depend on mass: ``alpha_T + beta_T (log M - pivot_log_mass)``.
    pivot_log_mass : float
        Pivot [log10 Msun] of the mass dependence.
    log_mass_range, log_age_range : tuple of float
        Supports of the mass [log10 Msun] and age [log10 yr] distributions.
    likelihood : {"marginal", "poisson"}
        ``"marginal"``: N marginalised with a 1/N prior,
        ``Σ ln p(θ_i|Λ) - N_obs ln ∫ p_obs p(θ|Λ) dθ``; ``"poisson"``: the
        inhomogeneous-Poisson form with N sampled (``log10_N``),
        ``Σ ln dN/dθ(θ_i) - N_exp``.
    measurement_error : {"none", "latent", "samples"}
        ``"none"``: catalogue values are the true values.  ``"latent"``: true
        values of ``error_columns`` are latent parameters sampled by NUTS, with a
        Gaussian (or split-Gaussian) measurement likelihood.  ``"samples"``: each
        object's integral ∫ p(d_i|θ) p(θ|Λ) dθ is an importance-sampling average
        over per-object samples of θ.
    error_columns : tuple of str
        Which of ``log_mass``, ``log_age``, ``av`` carry measurement error.
    asymmetric_errors : bool
        Use a split normal (σ_lo = best - lo, σ_hi = hi - best) instead of
        σ = (hi - lo) / 2.
    sigma_floor : tuple of float
        Minimum σ per column (log_mass [dex], log_age [dex], av [mag]); LEGUS
        quotes zero-width ranges for many ages, which sit on the model age grid.
    per_object_p_obs : bool
        Multiply each object's term by p_obs(θ_i) inside its measurement
        integral.  Wrong when selection acted on the data (the default
        assumption, Mandel, Farr & Gair 2019); right only if detection is
        independent of the measurement noise given θ.  Kept for comparison.
    priors : mapping, optional
        Uniform bounds overriding :data:`DEFAULT_PRIORS`.
    """

    mass: MassForm = "schechter"
    age: AgeForm = "power_law"
    av: AVForm = "piecewise"
    av_edges: tuple[float, ...] = DEFAULT_AV_EDGES
    av_weights: tuple[float, ...] | None = None
    av_concentration: float = 1.0
    mass_dependent_age: bool = False
    pivot_log_mass: float = 4.0
    log_mass_range: tuple[float, float] = LOG_MASS_RANGE
    log_age_range: tuple[float, float] = (6.0, LOG_AGE_RANGE[1])
    likelihood: LikelihoodForm = "marginal"
    measurement_error: MeasurementErrorModel = "none"
    error_columns: tuple[str, ...] = THETA_COLUMNS
    asymmetric_errors: bool = False
    sigma_floor: tuple[float, float, float] = (0.05, 0.1, 0.05)
    per_object_p_obs: bool = False
    priors: tuple[tuple[str, tuple[float, float]], ...] = ()

    def __post_init__(self):
        for name, value, allowed in (
            ("mass", self.mass, _MASS_FORMS),
            ("age", self.age, _AGE_FORMS),
            ("av", self.av, _AV_FORMS),
            ("likelihood", self.likelihood, _LIKELIHOODS),
            ("measurement_error", self.measurement_error, _ERRORS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        edges = tuple(float(e) for e in self.av_edges)
        if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:])):
            raise ValueError(
                f"av_edges must be strictly increasing with >= 2 entries, got {self.av_edges}"
            )
        object.__setattr__(self, "av_edges", edges)
        if self.av_weights is not None:
            weights = tuple(float(w) for w in self.av_weights)
            if len(weights) != len(edges) - 1 or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(
                    "av_weights needs one non-negative weight per A_V bin with a positive sum"
                )
            object.__setattr__(self, "av_weights", weights)
        unknown = set(self.error_columns) - set(THETA_COLUMNS)
        if unknown:
            raise ValueError(f"error_columns must be among {THETA_COLUMNS}, got {sorted(unknown)}")
        object.__setattr__(
            self, "error_columns", tuple(c for c in THETA_COLUMNS if c in self.error_columns)
        )
        priors = dict(self.priors.items() if isinstance(self.priors, Mapping) else self.priors)
        bad = set(priors) - set(DEFAULT_PRIORS)
        if bad:
            raise ValueError(f"unknown prior(s) {sorted(bad)}; known: {sorted(DEFAULT_PRIORS)}")
        for name, (low, high) in priors.items():
            if not high > low:
                raise ValueError(f"prior {name}: upper bound must exceed the lower one")
        object.__setattr__(
            self,
            "priors",
            tuple(sorted((k, (float(v[0]), float(v[1]))) for k, v in priors.items())),
        )
        for name in ("log_mass_range", "log_age_range"):
            low, high = getattr(self, name)
            if not high > low:
                raise ValueError(f"{name} must be (low, high) with high > low")
            object.__setattr__(self, name, (float(low), float(high)))

    # ----------------------------------------------------------- parameters
    def prior_bounds(self, name: str) -> tuple[float, float]:
        """Uniform prior bounds of a scalar hyperparameter."""
        return dict(self.priors).get(name, DEFAULT_PRIORS[name])

    @property
    def n_av_bins(self) -> int:
        return len(self.av_edges) - 1

    @property
    def scalar_parameters(self) -> tuple[str, ...]:
        """Names of the sampled scalar hyperparameters, in a fixed order."""
        names = ["alpha_M"]
        if self.mass == "schechter":
            names.append("log_M_break")
        names.append("alpha_T")
        if self.age == "broken_power_law":
            names += ["alpha_T_young", "log_T_break"]
        if self.mass_dependent_age:
            names.append("beta_T")
        if self.likelihood == "poisson":
            names.append("log10_N")
        return tuple(names)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """All sampled hyperparameters (``av_weights`` is a vector)."""
        return self.scalar_parameters + (("av_weights",) if self.av == "piecewise" else ())

    @property
    def latent_columns(self) -> tuple[str, ...]:
        """Columns whose true values are latent parameters (``measurement_error="latent"``)."""
        return self.error_columns if self.measurement_error == "latent" else ()

    def support(self, column: str) -> tuple[float, float]:
        """Support of the population distribution of ``column``."""
        return {
            "log_mass": self.log_mass_range,
            "log_age": self.log_age_range,
            "av": (self.av_edges[0], self.av_edges[-1]),
        }[column]

    def sample_hyperparameters(self) -> dict:
        """NumPyro ``sample`` statements of the hyperparameters; returns them in a dict.

        Call inside a NumPyro model (or under ``numpyro.handlers.seed`` to draw from the prior).
        """
        params = {}
        for name in self.scalar_parameters:
            low, high = self.prior_bounds(name)
            params[name] = numpyro.sample(name, dist.Uniform(low, high))
        if self.av == "piecewise":
            params["av_weights"] = numpyro.sample(
                "av_weights", dist.Dirichlet(jnp.full(self.n_av_bins, float(self.av_concentration)))
            )
        return params

    def sample_prior(self, seed: int | jax.Array) -> dict[str, np.ndarray]:
        """One draw of the hyperparameters from their prior (numpy values)."""
        key = jax.random.PRNGKey(seed) if isinstance(seed, (int, np.integer)) else seed
        with numpyro.handlers.seed(rng_seed=key):
            params = self.sample_hyperparameters()
        return {k: np.asarray(v) for k, v in params.items()}

    # -------------------------------------------------------- distributions
    def mass_distribution(self, params: Mapping):
        """p(log_mass | Λ_M) as a NumPyro distribution."""
        low, high = self.log_mass_range
        if self.mass == "schechter":
            return SchechterLogMass(
                params["alpha_M"], params["log_M_break"], low, high, validate_args=False
            )
        return PowerLawLogMass(params["alpha_M"], low, high, validate_args=False)

    def age_slope(self, params: Mapping, log_mass=None):
        """The (old-side) age slope, at ``log_mass`` for the mass-dependent form."""
        alpha = params["alpha_T"]
        if self.mass_dependent_age:
            if log_mass is None:
                raise ValueError("the mass-dependent age distribution needs log_mass")
            alpha = alpha + params["beta_T"] * (jnp.asarray(log_mass) - self.pivot_log_mass)
        return alpha

    def age_distribution(self, params: Mapping, log_mass=None):
        """p(log_age | Λ_T [, log_mass]) as a NumPyro distribution (batched over ``log_mass``)."""
        low, high = self.log_age_range
        alpha = self.age_slope(params, log_mass)
        if self.age == "broken_power_law":
            return BrokenPowerLawLogAge(
                alpha,
                params["log_T_break"],
                params["alpha_T_young"],
                low,
                high,
                validate_args=False,
            )
        return PowerLawLogAge(alpha, low, high, validate_args=False)

    def av_probabilities(self, params: Mapping) -> jax.Array:
        """Probability of each A_V bin, shape (n_bins,)."""
        if self.av == "piecewise":
            weights = params["av_weights"]
        else:
            weights = jnp.asarray(
                self.av_weights if self.av_weights is not None else np.ones(self.n_av_bins)
            )
        return weights / jnp.sum(weights)

    def av_log_density(self, params: Mapping, av) -> jax.Array:
        """ln p(A_V | Λ_A) (piecewise constant; -inf outside the edges)."""
        edges = jnp.asarray(self.av_edges)
        av = jnp.asarray(av)
        index = jnp.clip(
            jnp.searchsorted(edges, av, side="right", method="compare_all") - 1,
            0,
            self.n_av_bins - 1,
        )
        log_density = jnp.log(self.av_probabilities(params)) - jnp.log(jnp.diff(edges))
        inside = (av >= edges[0]) & (av <= edges[-1])
        return jnp.where(inside, log_density[index], -jnp.inf)

    def log_density(self, params: Mapping, theta) -> jax.Array:
        """ln p(θ | Λ) for ``theta[..., (log_mass, log_age, av)]`` (``-inf`` outside the
        support)."""
        theta = jnp.asarray(theta)
        log_mass, log_age, av = theta[..., 0], theta[..., 1], theta[..., 2]
        mass_term = self.mass_distribution(params)._log_density(log_mass)
        if self.mass_dependent_age:
            age_term = self.age_distribution(params, log_mass)._log_density(log_age)
        else:
            age_term = self.age_distribution(params)._log_density(log_age)
        return mass_term + age_term + self.av_log_density(params, av)

    def describe(self) -> str:
        """One line naming the model."""
        age = {"power_law": "power-law CAF", "broken_power_law": "broken-power-law CAF"}[self.age]
        mass = {"schechter": "Schechter CMF", "power_law": "power-law CMF"}[self.mass]
        extra = ", mass-dependent age slope" if self.mass_dependent_age else ""
        errors = (
            ""
            if self.measurement_error == "none"
            else f", measurement errors ({self.measurement_error})"
        )
        return f"{mass}, {age}, {self.av} p(A_V){extra}{errors}, {self.likelihood} likelihood"
