"""SExtractor 2.x's multi-threshold deblending, ported (``deblend.c``).

:func:`sextractor_deblend` splits detected segments as SExtractor does: a tree of the
connected pieces above ``DEBLEND_NTHRESH`` exponentially spaced levels, branches kept if
their flux above their level exceeds ``DEBLEND_MINCONT`` x the object's flux, the
remaining pixels handed to the branch with the largest ``gatherup`` weight. Used by
:func:`jaxcomp.ast.detection.detect` with ``deblend_impl="sextractor"``.

See ``docs/architecture.md`` for where this sits in the catalogue pipeline.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["sextractor_deblend"]


def _sex_branches(
    d: np.ndarray, mask: np.ndarray, t0: float, nthresh: int, mincont: float, minarea: int
):
    """SExtractor's multi-threshold tree (``deblend_parcelout``) on one object.

    ``d``: background-subtracted cutout, ``mask``: the object's pixels (above ``t0``).
    Returns ``None`` (not deblended) or a list of ``(level_threshold, branch_mask)``.
    """
    from scipy import ndimage as ndi

    vals = d[mask]
    peak = float(vals.max())
    if not peak > t0:
        return None
    value0 = float(vals.sum(dtype=np.float64)) * mincont
    eight = np.ones((3, 3), bool)
    labs, nlab, parents, signif, levels = [mask.astype(np.int32)], [1], [None], [None], [t0]
    for k in range(1, int(nthresh)):
        t = t0 * (peak / t0) ** (k / nthresh)
        lab, n = ndi.label(mask & (d > t), structure=eight)
        if n == 0:
            break
        npix = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        if (npix < minarea).any():
            keep = np.concatenate([[False], npix >= minarea])
            lab = np.where(keep[lab], lab, 0)
            lab, n = ndi.label(lab > 0, structure=eight)
            if n == 0:
                break
            npix = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        flux = np.bincount(lab.ravel(), weights=d.ravel().astype(np.float64), minlength=n + 1)[1:]
        # the parent is the component of the previous level holding any of the branch's pixels
        first = np.zeros(n + 1, np.int64)
        flat = np.flatnonzero(lab)
        first[lab.ravel()[flat[::-1]]] = flat[::-1]
        par = np.zeros(n + 1, np.int64)
        par[1:] = labs[-1].ravel()[first[1:]]
        sig = np.zeros(n + 1, bool)
        sig[1:] = (flux - t * npix) > value0
        labs.append(lab)
        nlab.append(n)
        parents.append(par)
        signif.append(sig)
        levels.append(t)
    nl = len(labs)
    ok = [np.ones(nlab[k] + 1, bool) for k in range(nl)]
    out = []
    for k in range(nl - 2, -1, -1):
        par, sig = parents[k + 1], signif[k + 1]
        children = {}
        for j in range(1, nlab[k + 1] + 1):
            children.setdefault(int(par[j]), []).append(j)
        for i in range(1, nlab[k] + 1):
            ch = children.get(i)
            if not ch:
                continue
            ch = np.asarray(ch)
            ok[k][i] &= bool(ok[k + 1][ch].all())
            if int(sig[ch].sum()) > 1:
                for j in ch:
                    if ok[k + 1][j] and sig[j]:
                        out.append((k + 1, int(j)))
                ok[k][i] = False
    if ok[0][1]:
        return None
    return [(levels[k], labs[k] == j) for k, j in out]


def _sex_gatherup_weights(d, branches, t0, fy, fx):
    """Probability weights of the unallocated pixels ``(fy, fx)`` for each branch (``gatherup``).

    Each branch is modelled by ``analyse`` on its pixels (barycentre, second moments,
    ``abcor``) as ``amp exp(-0.5 (cxx dx^2 + cyy dy^2 + cxy dx dy) / abcor)`` with
    ``amp = t0 exp(npix / (2 pi abcor a b))`` (at most 4 x its peak). Returns
    ``(weights (nbranch, npix), nearest)``: SExtractor draws each pixel's owner at random
    with these weights (the nearest branch if they vanish)."""
    nb = len(branches)
    w = np.zeros((nb, fy.size))
    dist = np.zeros((nb, fy.size))
    for i, (t_lev, bm) in enumerate(branches):
        yy, xx = np.nonzero(bm)
        val = d[yy, xx].astype(np.float64)
        rv = val.sum()
        peak = val.max()
        x0, y0 = xx.min(), yy.min()
        x, y = xx - x0, yy - y0
        xm, ym = (val * x).sum() / rv, (val * y).sum() / rv
        xm2 = (val * x * x).sum() / rv - xm * xm
        ym2 = (val * y * y).sum() / rv - ym * ym
        xym = (val * x * y).sum() / rv - xm * ym
        temp2 = xm2 * ym2 - xym * xym
        if temp2 < 0.00694:
            xm2 += 0.0833333
            ym2 += 0.0833333
            temp2 = xm2 * ym2 - xym * xym
        temp = math.sqrt(0.25 * (xm2 - ym2) ** 2 + xym * xym)
        a = float(np.float32(math.sqrt(max(0.5 * (xm2 + ym2) + temp, 0.0))))
        b = float(np.float32(math.sqrt(max(0.5 * (xm2 + ym2) - temp, 0.0))))
        cxx, cyy, cxy = ym2 / temp2, xm2 / temp2, -2 * xym / temp2
        thresh2 = (t_lev + peak) / 2.0
        darea = int(np.sum(val > thresh2)) - int(np.sum(val > t_lev))
        t1t2 = t_lev / thresh2
        if t1t2 > 0 and a > 0 and b > 0:
            abcor = min(
                (darea if darea < 0 else -1.0)
                / (2 * math.pi * math.log(t1t2 if t1t2 < 1 else 0.99) * a * b),
                1.0,
            )
        else:
            abcor = 1.0
        e = val.size / (2 * math.pi * abcor * a * b) if a > 0 and b > 0 else 70.0
        amp = min(t0 * math.exp(e) if e < 70.0 else 4.0 * peak, 4.0 * peak)
        dx, dy = fx - (xm + x0), fy - (ym + y0)
        dist[i] = 0.5 * (cxx * dx * dx + cyy * dy * dy + cxy * dx * dy) / abcor
        w[i] = np.where(dist[i] < 70.0, amp * np.exp(-np.minimum(dist[i], 70.0)), 0.0)
    return w, np.argmin(dist, axis=0)


def sextractor_deblend(
    data: np.ndarray,
    segm_data: np.ndarray,
    labels,
    threshold: float,
    nthresh: int = 32,
    mincont: float = 0.005,
    minarea: int = 10,
):
    """SExtractor 2.x deblending (``deblend.c``), ported, of the segments ``labels``.

    For each object: ``nthresh - 1`` levels ``t0 (peak / t0)^(k / nthresh)`` between the
    detection threshold ``t0`` and the object's peak; at each level the connected
    pieces of the object above it with at least ``min(minarea, 3)`` pixels (SExtractor's
    ``MAXDEBAREA``) form a tree; a piece is significant if its flux above its level,
    ``sum(I - t_k)``, exceeds ``mincont`` x the object's total flux; going down the
    tree, a node with two or more significant children is split into those (unless a
    child was split further up). The remaining pixels go to the branch with the
    largest ``gatherup`` weight (SExtractor draws them at random with those weights).
    A deblended object's position is the barycentre of its branch (SExtractor keeps the
    branch barycentre, ``analyse`` with ``OBJ_MERGED``).

    Returns ``(new_segm_data, positions, branch_index)``: the relabelled segmentation
    (children get labels above ``segm_data.max()``, the first keeps the parent's), a dict
    ``label -> (x, y)`` for every deblended object and a dict ``label -> (parent label,
    rank)`` with the order in which SExtractor outputs the pieces.
    """
    from scipy import ndimage as ndi

    out = np.array(segm_data, copy=True)
    positions: dict[int, tuple[float, float]] = {}
    branch_index: dict[int, tuple[int, int]] = {}
    if len(labels) == 0:
        return out, positions, branch_index
    next_label = int(segm_data.max()) + 1
    slices = ndi.find_objects(segm_data)
    small = min(int(minarea), 3)
    t0 = float(threshold)
    for lab in np.asarray(labels, np.int64):
        sl = slices[lab - 1]
        if sl is None:
            continue
        mask = segm_data[sl] == lab
        d = np.asarray(data[sl], np.float64)
        branches = _sex_branches(d, mask, t0, nthresh, mincont, small)
        if not branches:
            continue
        own = np.zeros(mask.shape, np.int64)
        for i, (_, bm) in enumerate(branches, 1):
            own[bm] = i
        fy, fx = np.nonzero(mask & (own == 0))
        if fy.size:
            w, nearest = _sex_gatherup_weights(d, branches, t0, fy, fx)
            pick = np.where(w.sum(0) > 1e-31, np.argmax(w, axis=0), nearest)
            own[fy, fx] = pick + 1
        sub = out[sl]
        for i, (_, bm) in enumerate(branches, 1):
            new = int(lab) if i == 1 else next_label
            if i > 1:
                next_label += 1
            sub[own == i] = new
            yy, xx = np.nonzero(bm)
            val = d[yy, xx]
            positions[new] = (
                float((val * xx).sum() / val.sum()) + sl[1].start,
                float((val * yy).sum() / val.sum()) + sl[0].start,
            )
            branch_index[new] = (int(lab), i - 1)
    return out, positions, branch_index
