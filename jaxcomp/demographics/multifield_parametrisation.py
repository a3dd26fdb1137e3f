"""Centred and non-centred forms of the per-field values of partial pooling.

Under ``MultiFieldModel(pooling="partial")`` every field's value of a parameter is
``θ_f ~ N(mean_f, scatter)`` (``mean_f = a + b covariate_f`` with a covariate), and the A_V
bin log-odds of a field are ``N(μ, τ)`` per bin.  The sampler can see these values in two
equivalent coordinates (the same posterior; Papaspiliopoulos, Roberts & Sköld 2007,
Statistical Science 22, 59; Betancourt & Girolami 2015, in *Current Trends in Bayesian
Methodology*, arXiv:1312.0906):

* ``"non_centred"`` (default): sample sites ``<name>_z`` (``av_logit_z``) ``~ N(0, 1)`` and the
  deterministic ``θ_f = mean_f + scatter z_f``.  Best when each field's data constrain θ_f
  weakly compared with the scatter (few clusters per field, or a scatter comparable to the
  per-field uncertainty): the prior geometry (the funnel in ``scatter``) is then what NUTS
  has to cross, and z_f removes it.
* ``"centred"``: the per-field values themselves are the sample sites (``<name>`` and
  ``av_logit``), ``θ_f ~ N(mean_f, scatter)``.  Best when each field's data measure θ_f much
  better than the population scatter (e.g. ~1000 clusters per field measure ``alpha_M`` to
  ~0.03 against a scatter of ~0.15): the likelihood then pins θ_f, and in non-centred
  coordinates ``mean`` and every ``z_f`` are strongly correlated (moving the mean must be
  undone by every z_f), which costs leapfrog steps and effective samples of the means.

Both forms keep the per-field values under the parameter's name in the trace (a deterministic
site for non-centred, a sample site for centred), so everything downstream of the fit reads
the same names.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from ..errors import InputError

__all__ = ["PARAMETRISATIONS", "Parametrisation", "check_parametrisation", "field_normal"]

Parametrisation = Literal["non_centred", "centred"]
#: Coordinates of the per-field values under partial pooling.
PARAMETRISATIONS: tuple[str, ...] = ("non_centred", "centred")


def check_parametrisation(value) -> str:
    """``value`` if it is one of :data:`PARAMETRISATIONS`, else an :class:`InputError`."""
    if value not in PARAMETRISATIONS:
        raise InputError(
            f"parametrisation must be one of {PARAMETRISATIONS}, got {value!r}: 'centred' when "
            "each field's data measure its values much better than the population scatter, "
            "'non_centred' (default) otherwise"
        )
    return value


def field_normal(
    name: str,
    loc,
    scale,
    n_fields: int,
    parametrisation: Parametrisation,
    *,
    event_size: int | None = None,
):
    """Per-field values ``N(loc, scale)`` as NumPyro sites in the chosen coordinates.

    Parameters
    ----------
    name : str
        The per-field quantity (``"alpha_M"``, ``"av_logit"``, ...).  Centred: the sample
        site ``name``; non-centred: the sample site ``name + "_z"`` (the caller records the
        returned value under ``name`` if it wants it in the trace).
    loc : array, shape (n_fields,) or (n_fields, event_size)
        Each field's population mean (broadcastable).
    scale : scalar
        The population scatter (same units as the values).
    n_fields : int
    parametrisation : {"non_centred", "centred"}
    event_size : int, optional
        Length of a vector value per field (the A_V log-odds); None for a scalar.

    Returns
    -------
    jax.Array
        The per-field values, shape (n_fields,) or (n_fields, event_size).
    """
    shape = (n_fields,) if event_size is None else (n_fields, event_size)
    loc = jnp.broadcast_to(loc, shape)
    with numpyro.plate("field", n_fields):
        if parametrisation == "centred":
            prior = dist.Normal(loc, scale)
            return numpyro.sample(name, prior if event_size is None else prior.to_event(1))
        unit = dist.Normal(0.0, 1.0)
        if event_size is not None:
            unit = unit.expand([event_size]).to_event(1)
        return loc + scale * numpyro.sample(f"{name}_z", unit)
