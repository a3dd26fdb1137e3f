"""Step 5 of the artificial cluster tests: recovery of injected clusters.

:func:`match_injected` flags, for every stage of :data:`jaxcomp.ast.cuts.STAGES`, whether
the injected frame's catalogue gained a source within the recovery radius
(:attr:`jaxcomp.ast.settings.CutsConfig.match_radius_px`) of each injected cluster,
ignoring sources that already existed there before injection (:func:`_claimed`: a
one-to-one, closest-first match of the pre-injection sources).

See ``docs/architecture.md`` for the pipeline's steps.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from ..catalogues import BANDS
from .cuts import STAGES
from .settings import CutsConfig

__all__ = ["match_injected"]


def _cumulative(table: Table) -> dict[str, np.ndarray]:
    acc = np.ones(len(table), bool)
    out = {}
    for s in STAGES:
        acc = acc & np.asarray(table[s], bool)
        out[s] = acc.copy()
    return out


def _claimed(post_xy: np.ndarray, pre_xy: np.ndarray, radius: float) -> np.ndarray:
    """One-to-one greedy (closest first) match of pre to post sources within ``radius``.

    Returns a bool array over post: True where a pre source claims it.
    """
    from scipy.spatial import cKDTree

    claimed = np.zeros(len(post_xy), bool)
    if len(post_xy) == 0 or len(pre_xy) == 0:
        return claimed
    sdm = cKDTree(post_xy).sparse_distance_matrix(cKDTree(pre_xy), radius, output_type="ndarray")
    if sdm.size == 0:
        return claimed
    order = np.lexsort((sdm["j"], sdm["i"], sdm["v"]))
    used_pre = np.zeros(len(pre_xy), bool)
    for i, j in zip(sdm["i"][order], sdm["j"][order]):
        if not claimed[i] and not used_pre[j]:
            claimed[i] = True
            used_pre[j] = True
    return claimed


def match_injected(
    x, y, post: Table, pre: Table | None = None, radius_px: float = CutsConfig.match_radius_px
) -> Table:
    """Recovery flags of injected clusters at (x, y).

    For each stage k of :data:`STAGES`, the sources of the injected frame that passed
    stages 0..k (``post``) are matched one-to-one, closest first, within ``radius_px`` to
    the sources that passed stages 0..k before injection (``pre``); those matched
    "already existed at that spot" and are ignored. The injected cluster's flag for
    stage k is True if an unignored stage-k source lies within ``radius_px`` of it;
    ``C`` is the flag of the last stage (the final catalogue gained a source there).
    Several injected clusters may be recovered by one source (the paper's rule).
    The flags are cumulative ("reached stage k") and normally monotone; in the rare case
    where an injected cluster boosts a pre-existing faint detection into the catalogue,
    ``detected`` is False (the detection list did not gain a source) while later flags
    and ``C`` are True (the catalogue did).

    The measured columns (``x_meas, y_meas, sep_px``, ``mag_<band>_meas``,
    ``magerr_<band>_meas``, ``ci_meas``) come from the nearest unignored source of the
    deepest stage the cluster reached (NaN if none).
    """
    from scipy.spatial import cKDTree

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    inj = np.column_stack([x, y])
    post_xy = (
        np.column_stack([np.asarray(post["x"], float), np.asarray(post["y"], float)])
        if len(post)
        else np.zeros((0, 2))
    )
    cum_post = _cumulative(post) if len(post) else {s: np.zeros(0, bool) for s in STAGES}
    if pre is not None and len(pre):
        pre_xy = np.column_stack([np.asarray(pre["x"], float), np.asarray(pre["y"], float)])
        cum_pre = _cumulative(pre)
    else:
        pre_xy = np.zeros((0, 2))
        cum_pre = {s: np.zeros(0, bool) for s in STAGES}
    flags = {}
    best = np.full(n, -1, np.int64)
    best_sep = np.full(n, np.nan)
    for s in STAGES:
        in_post = np.nonzero(cum_post[s])[0]
        in_pre = np.nonzero(cum_pre[s])[0]
        claimed = _claimed(post_xy[in_post], pre_xy[in_pre], radius_px)
        fresh = in_post[~claimed]
        flag = np.zeros(n, bool)
        if fresh.size and n:
            d, k = cKDTree(post_xy[fresh]).query(inj, k=1, distance_upper_bound=radius_px)
            hit = np.isfinite(d)
            flag[hit] = True
            best[hit] = fresh[k[hit]]
            best_sep[hit] = d[hit]
        flags[s] = flag
    out = Table()
    for s in STAGES:
        out[s] = flags[s]
    out["C"] = flags[STAGES[-1]].copy()
    has = best >= 0
    idx = np.where(has, best, 0)

    def pick(col):
        if len(post) == 0:
            return np.full(n, np.nan)
        v = np.asarray(post[col], dtype=np.float64)[idx]
        return np.where(has, v, np.nan)

    out["x_meas"] = pick("x")
    out["y_meas"] = pick("y")
    out["sep_px"] = best_sep
    for col in ("x_meas", "y_meas", "sep_px"):
        out[col].unit = "pix"
    for b in BANDS:
        out[f"mag_{b}_meas"] = (
            pick(f"mag_{b}") if len(post) and f"mag_{b}" in post.colnames else np.full(n, np.nan)
        )
        out[f"magerr_{b}_meas"] = (
            pick(f"magerr_{b}")
            if len(post) and f"magerr_{b}" in post.colnames
            else np.full(n, np.nan)
        )
        out[f"mag_{b}_meas"].unit = out[f"magerr_{b}_meas"].unit = "mag"
    out["ci_meas"] = pick("ci") if len(post) and "ci" in post.colnames else np.full(n, np.nan)
    out["ci_meas"].unit = "mag"
    return out
