"""A known, analytic selection surface and labels drawn from it.

Used to test that training recovers a known p_obs and stays calibrated, and by
the demo before real artificial-cluster tests are run.  The surface mimics the
physics of a magnitude-limited catalogue: the 50% mass limit rises with age
(the mass-to-light ratio of an ageing population grows) and with extinction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from .inputs import PHYSICAL_INPUTS

__all__ = ["LogisticSelection", "simulate_labels"]


@dataclass(frozen=True)
class LogisticSelection:
    """p_obs = sigmoid((log_mass - log_mass_50(log_age, av)) / width).

    Parameters
    ----------
    log_mass_50_young : float
        log10 mass [Msun] of 50% completeness for ages below ``log_age_knee``.
    age_slope : float
        d log_mass_50 / d log_age above the knee.
    log_age_knee : float
        log10 age [yr] where the limit starts to rise.
    extinction_slope : float
        d log_mass_50 / d A_V [dex per mag]; 0.4 corresponds to one magnitude of
        extinction dimming the cluster by a factor 10**0.4.
    knee_softness : float
        Width [dex in age] over which the age dependence turns on (a softplus);
        real completeness limits have no sharp kinks.
    width : float
        Width of the transition in log mass [dex].
    """

    log_mass_50_young: float = 3.0
    age_slope: float = 0.8
    log_age_knee: float = 6.7
    extinction_slope: float = 0.4
    knee_softness: float = 0.3
    width: float = 0.3

    @classmethod
    def linear(cls, width: float = 0.3) -> LogisticSelection:
        """A surface whose logit is linear in (log_mass, log_age, av): a plain logistic.

        Same 50% limit as the default at log age 6.75 and A_V = 0, rising by 0.8 dex
        per dex of age over the whole age range (the softplus knee is moved far below
        the domain, where it is exactly linear to double precision).
        """
        return cls(
            log_mass_50_young=3.0 - 0.8 * 6.75,
            age_slope=0.8,
            log_age_knee=0.0,
            extinction_slope=0.4,
            knee_softness=0.3,
            width=width,
        )

    def log_mass_50(self, log_age, av):
        """log10 mass [Msun] at which p_obs = 0.5."""
        above_knee = self.knee_softness * np.logaddexp(
            0.0, (np.asarray(log_age) - self.log_age_knee) / self.knee_softness
        )
        return (
            self.log_mass_50_young
            + self.age_slope * above_knee
            + self.extinction_slope * np.asarray(av)
        )

    def __call__(self, log_mass, log_age, av):
        """p_obs at the given log10 mass [Msun], log10 age [yr] and A_V [mag]."""
        z = (np.asarray(log_mass) - self.log_mass_50(log_age, av)) / self.width
        return 1.0 / (1.0 + np.exp(-z))


def simulate_labels(
    n_clusters: int, *, repeats: int = 1, seed: int = 0, selection: LogisticSelection | None = None
) -> Table:
    """Labels from a known selection surface over the paper's library domain.

    Each of ``n_clusters`` clusters (log M uniform on [2, 8], log age uniform on
    [5, log10 1.5e10], A_V uniform on [0, 3]) is "injected" ``repeats`` times
    with an independent Bernoulli outcome, as in a repeated-injection test.

    Returns
    -------
    astropy.table.Table
        Columns ``cluster_id, log_mass, log_age, av, p_true, C``; the seed and the
        surface are recorded in ``meta``.
    """
    if n_clusters < 1 or repeats < 1:
        raise ValueError("n_clusters and repeats must be >= 1")
    selection = selection or LogisticSelection()
    rng = np.random.default_rng(seed)
    lows = np.array([spec.domain[0] for spec in PHYSICAL_INPUTS])
    highs = np.array([spec.domain[1] for spec in PHYSICAL_INPUTS])
    properties = rng.uniform(lows, highs, size=(n_clusters, 3))
    p_true = selection(*properties.T)
    cluster_id = np.repeat(np.arange(n_clusters), repeats)
    labels = rng.random(n_clusters * repeats) < p_true[cluster_id]
    table = Table(
        {
            "cluster_id": cluster_id,
            "log_mass": properties[cluster_id, 0],
            "log_age": properties[cluster_id, 1],
            "av": properties[cluster_id, 2],
            "p_true": p_true[cluster_id],
            "C": labels.astype(np.int8),
        }
    )
    table.meta.update({"seed": seed, "selection": repr(selection), "repeats": repeats})
    return table
