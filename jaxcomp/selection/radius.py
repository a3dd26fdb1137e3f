"""Selection functions that know the cluster radius, marginalised over a radius prior.

The effective radius decides whether a cluster survives the concentration-index cut
(on the mock NGC 628C field a 1 pc cluster has CI = 1.27 < 1.4 and is lost at any
mass), yet a catalogue gives no radius for most clusters, and the paper's networks take
none: they learn p_obs averaged over the radius mixture of the training campaign. A
network trained on ``physical+r_eff_pc`` (or ``photometric+r_eff_pc``) learns the sharp
function of the radius instead, and the average is then taken explicitly::

    p_obs(log M, log T, A_V) = sum_r w_r(log M) p_obs(log M, log T, A_V, r)

over the campaign's radii, with the weights of the radius prescription of the library
(paper section 3.2.1): ``"flat"`` (equal weights) or ``"K19"`` (log10 r_eff =
0.14 log10 M + N(0, 0.21), rounded to whole pc, clipped or redrawn into 1..10 pc:
the weights depend on the mass). Changing the prescription is then a change of
weights, not a new campaign (the paper re-ran its ASTs for its appendix C).

:class:`RadiusMarginalisedSelection` is a pure JAX callable ``f(log_mass, log_age, av)``
(broadcasting, jit-able, differentiable) that :class:`jaxcomp.demographics.SelectionGrid`
and user models accept wherever a physical selection function is expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from .function import SelectionFunction

__all__ = ["RadiusPrior", "RadiusMarginalisedSelection"]

_PHYSICAL = ("log_mass", "log_age", "av")


@dataclass(frozen=True)
class RadiusPrior:
    """p(r_eff | log M) on whole-pc radii (the library's prescriptions).

    Parameters
    ----------
    model : {"flat", "K19"}
        Equal weights, or log10 r_eff = ``k19_slope`` log10 M + N(0, ``k19_scatter_dex``)
        rounded to the nearest whole pc.
    k19_slope, k19_scatter_dex : float
        The K19 relation (defaults 0.14 and 0.21 dex, as the library's).
    k19_out_of_range : {"clip", "redraw"}
        K19 radii rounding below 1 pc or above 10 pc are set to 1 or 10 pc ("clip", the
        library's default) or drawn again ("redraw").
    """

    model: Literal["flat", "K19"] = "flat"
    k19_slope: float = 0.14
    k19_scatter_dex: float = 0.21
    k19_out_of_range: Literal["clip", "redraw"] = "clip"

    def __post_init__(self):
        if self.model not in ("flat", "K19"):
            raise ValueError(f"model must be 'flat' or 'K19', got {self.model!r}")
        if self.k19_out_of_range not in ("clip", "redraw"):
            raise ValueError(
                f"k19_out_of_range must be 'clip' or 'redraw', got {self.k19_out_of_range!r}"
            )
        if not (math.isfinite(self.k19_scatter_dex) and self.k19_scatter_dex > 0):
            raise ValueError(f"k19_scatter_dex must be > 0, got {self.k19_scatter_dex}")

    def weights(self, log_mass, radii_pc) -> jax.Array:
        """Weights of ``radii_pc`` (whole pc in 1..10) at ``log_mass``, shape ``(..., n_radii)``,
        summing to 1.

        With K19, a radius outside ``radii_pc`` (a campaign that injected only some
        radii) loses its weight and the rest are renormalised.
        """
        radii = jnp.asarray(radii_pc, dtype=jnp.float32)
        log_mass = jnp.asarray(log_mass, dtype=jnp.float32)[..., None]
        if self.model == "flat":
            w = jnp.ones(log_mass.shape[:-1] + radii.shape, jnp.float32)
        else:
            mean = self.k19_slope * log_mass
            lower = jnp.log10(jnp.maximum(radii - 0.5, 1e-30))
            upper = jnp.log10(radii + 0.5)
            if self.k19_out_of_range == "clip":
                lower = jnp.where(radii <= 1.0, -jnp.inf, lower)
                upper = jnp.where(radii >= 10.0, jnp.inf, upper)
            w = ndtr((upper - mean) / self.k19_scatter_dex) - ndtr(
                (lower - mean) / self.k19_scatter_dex
            )
        return w / jnp.sum(w, axis=-1, keepdims=True)


class RadiusMarginalisedSelection(eqx.Module):
    """p_obs(log M, log T, A_V) = sum_r w_r(log M) p_obs(log M, log T, A_V, r_eff = r).

    Parameters
    ----------
    selection : SelectionFunction
        A network whose inputs are ``log_mass``, ``log_age``, ``av`` and ``r_eff_pc``
        (any order), e.g. ``train_selection_function(labels, "physical+r_eff_pc")``.
    radii_pc : sequence of float
        The radii to average over (those the training campaign injected) [pc].
    prior : RadiusPrior
        Their weights (default flat).

    Call it as ``f(log_mass, log_age, av)`` on broadcastable arrays; the result has
    the broadcast shape.
    """

    selection: SelectionFunction
    radii_pc: jax.Array
    prior: RadiusPrior = eqx.field(static=True)
    radius_column: int = eqx.field(static=True)
    order: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, selection: SelectionFunction, radii_pc, prior: RadiusPrior | None = None):
        if not isinstance(selection, SelectionFunction):
            raise TypeError(
                f"selection must be a SelectionFunction, got {type(selection).__name__}"
            )
        names = tuple(selection.input_names)
        if sorted(names) != sorted(_PHYSICAL + ("r_eff_pc",)):
            raise ValueError(
                f"the selection function takes {names}; a radius-marginalised selection needs "
                f"{_PHYSICAL + ('r_eff_pc',)} (train it on 'physical+r_eff_pc')"
            )
        radii = np.asarray(radii_pc, dtype=np.float64).ravel()
        if (
            radii.size == 0
            or np.any(~np.isfinite(radii))
            or np.any(radii <= 0)
            or len(np.unique(radii)) != radii.size
        ):
            raise ValueError(f"radii_pc must be distinct positive radii [pc], got {radii_pc!r}")
        low, high = selection.domain["r_eff_pc"]
        if radii.min() < low - 1e-6 or radii.max() > high + 1e-6:
            raise ValueError(
                f"radii_pc {radii.tolist()} reach outside the radii the network was trained on "
                f"[{low:g}, {high:g}] pc"
            )
        self.selection = selection
        self.radii_pc = jnp.asarray(radii, jnp.float32)
        self.prior = RadiusPrior() if prior is None else prior
        self.radius_column = names.index("r_eff_pc")
        self.order = tuple(_PHYSICAL.index(n) for n in names if n != "r_eff_pc")

    @property
    def input_names(self) -> tuple[str, ...]:
        return _PHYSICAL

    @property
    def domain(self) -> dict[str, tuple[float, float]]:
        """The network's domain of the physical inputs."""
        return {name: self.selection.domain[name] for name in _PHYSICAL}

    @eqx.filter_jit
    def __call__(self, log_mass, log_age, av) -> jax.Array:
        lm, la, a = jnp.broadcast_arrays(
            *(jnp.asarray(v, jnp.float32) for v in (log_mass, log_age, av))
        )
        physical = (lm, la, a)
        n_r = self.radii_pc.shape[0]
        columns = []
        physical_iter = iter(self.order)
        for position in range(4):
            if position == self.radius_column:
                columns.append(jnp.broadcast_to(self.radii_pc, lm.shape + (n_r,)))
            else:
                columns.append(
                    jnp.broadcast_to(physical[next(physical_iter)][..., None], lm.shape + (n_r,))
                )
        p = self.selection(jnp.stack(columns, axis=-1))
        return jnp.sum(p * self.prior.weights(lm, self.radii_pc), axis=-1)
