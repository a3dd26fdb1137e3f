"""Step 4 of the catalogue pipeline: the catalogue cuts, one function and one column each.

Stage 1: :func:`passes_err` (photometric error in V and in B or I) and
:func:`passes_ci` (concentration index); stage 2: :func:`passes_nband` (enough bands
with small errors) and :func:`passes_mv` (absolute V magnitude). The thresholds live in
:class:`jaxcomp.ast.settings.CutsConfig`. :func:`apply_cuts` evaluates every cut
independently on every source and adds ``C``, their conjunction. :data:`STAGES` names
the steps in order; the selection stage (:mod:`jaxcomp.selection.validation`) imports it.

See ``docs/architecture.md`` for the pipeline's steps.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from ..catalogues import BANDS
from .settings import DEFAULT_CONFIG, CutsConfig

__all__ = ["STAGES", "apply_cuts", "passes_ci", "passes_err", "passes_mv", "passes_nband"]


def _err(table, band):
    e = np.asarray(table[f"magerr_{band}"], dtype=np.float64)
    return np.where(np.isfinite(e), e, np.inf)


def passes_err(table, cfg: CutsConfig = DEFAULT_CONFIG.cuts) -> np.ndarray:
    """Stage 1: err(V) <= 0.3 and (err(B) <= 0.3 or err(I) <= 0.3)."""
    ok = _err(table, cfg.err_band) <= cfg.max_err
    alt = np.zeros(len(table), bool)
    for b in cfg.err_alt_bands:
        alt |= _err(table, b) <= cfg.max_err
    return ok & alt


def passes_ci(table, cfg: CutsConfig = DEFAULT_CONFIG.cuts) -> np.ndarray:
    """Stage 1: CI = m(1 px) - m(3 px) in V >= 1.4 (NaN CI fails)."""
    ci = np.asarray(table["ci"], dtype=np.float64)
    return np.isfinite(ci) & (ci >= cfg.ci_min)


def passes_nband(table, cfg: CutsConfig = DEFAULT_CONFIG.cuts) -> np.ndarray:
    """Stage 2: at least 4 bands with err <= 0.3."""
    good = sum((_err(table, b) <= cfg.max_err).astype(int) for b in BANDS)
    return good >= cfg.min_good_bands


def passes_mv(table, distance_modulus: float, cfg: CutsConfig = DEFAULT_CONFIG.cuts) -> np.ndarray:
    """Stage 2: M_V = m_V - DM <= -6 (NaN fails)."""
    m = np.asarray(table[f"mag_{cfg.mv_band}"], dtype=np.float64)
    return np.isfinite(m) & (m - distance_modulus <= cfg.mv_max)


#: The pipeline's stages in order; the flag of stage k on an injected cluster means
#: "the list of sources that passed stages 0..k gained a source at its position".
STAGES: tuple[str, ...] = ("detected", "passes_err", "passes_ci", "passes_nband", "passes_mv")


def apply_cuts(
    table: Table, distance_modulus: float, cfg: CutsConfig = DEFAULT_CONFIG.cuts
) -> Table:
    """Add the flag columns ``detected, passes_err, passes_ci, passes_nband, passes_mv, C``.

    Each cut is evaluated independently on every source (so a source that fails only
    the CI cut shows exactly that); ``C`` (in the final catalogue) is their conjunction.
    Returns the table (modified in place).
    """
    table["detected"] = np.ones(len(table), bool)
    table["passes_err"] = passes_err(table, cfg)
    table["passes_ci"] = passes_ci(table, cfg)
    table["passes_nband"] = passes_nband(table, cfg)
    table["passes_mv"] = passes_mv(table, distance_modulus, cfg)
    c = np.ones(len(table), bool)
    for s in STAGES:
        c &= np.asarray(table[s], bool)
    table["C"] = c
    return table
