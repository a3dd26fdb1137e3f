"""SExtractor 2.x's CLEAN, ported (``clean.c``, with ``lutz`` and ``examineiso`` quirks).

:func:`sextractor_clean` decides which detections are spurious bumps in a brighter
neighbour's wings and merges them into it; :func:`_apply_clean` runs it on a detection
table of :func:`jaxcomp.ast.detection.detect` (``clean=True``). The per-object inputs
(:func:`_sex_object_params`: flux, moments, ``abcor``, ``mthresh``) and the order in
which SExtractor's scan completes the objects (:func:`_lutz_order`, :func:`_scan_order`)
are reproduced because CLEAN's outcome depends on them.

See ``docs/architecture.md`` for where this sits in the catalogue pipeline.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.table import Table

from ..settings import SExtractorConfig

__all__ = ["sextractor_clean"]


#: SExtractor's CLEAN_ZONE (clean.h): neighbours closer than 10 (a1 + a2) are examined.
_SEX_CLEAN_ZONE = 10.0


def _lutz_order(mask: np.ndarray) -> list:
    """The order of the pixel list SExtractor's ``lutz`` scan builds for one 8-connected
    object (``mask``): runs are appended as the scan meets them and lists are concatenated
    when runs merge, so it is not raster order. Port of the marker/stack machine of
    ``scanimage``; returns ``[(y, x), ...]``."""
    h, w = mask.shape
    marker = [0] * (w + 1)
    store = [None] * (w + 1)
    info = [None] * (w + 3)
    start = [0] * (w + 3)
    end = [0] * (w + 3)
    UNKNOWN = -1
    psstack = []
    co = 0
    result = []
    m = mask.tolist()
    for yl in range(h + 1):
        ps, cs = 0, 0  # COMPLETE, NONOBJECT ; OBJECT = 1 ; INCOMPLETE = 2
        row = m[yl] if yl < h else None
        for xl in range(w + 1):
            newmarker = marker[xl]
            marker[xl] = 0
            lu = row is not None and xl < w and row[xl]
            if lu and cs != 1:
                cs = 1
                if ps == 1:
                    if start[co] == UNKNOWN:
                        marker[xl] = "S"
                        start[co] = xl
                    else:
                        marker[xl] = "s"
                else:
                    psstack.append(ps)
                    marker[xl] = "S"
                    co += 1
                    start[co] = xl
                    ps = 0
                    info[co] = []
            if newmarker:
                if newmarker == "S":
                    psstack.append(ps)
                    if cs == 0:
                        psstack.append(0)
                        co += 1
                        info[co] = store[xl]
                        start[co] = UNKNOWN
                    else:
                        info[co] = info[co] + store[xl]
                    ps = 1
                elif newmarker == "s":
                    if cs == 1 and ps == 0:
                        psstack.pop()
                        xl2 = start[co]
                        info[co - 1] = info[co - 1] + info[co]
                        co -= 1
                        if start[co] == UNKNOWN:
                            start[co] = xl2
                        else:
                            marker[xl2] = "s"
                    ps = 1
                elif newmarker == "f":
                    ps = 2
                elif newmarker == "F":
                    ps = psstack.pop()
                    if cs == 0 and ps == 0:
                        if start[co] == UNKNOWN:
                            result.extend(info[co])
                        else:
                            marker[end[co]] = "F"
                            store[start[co]] = info[co]
                        co -= 1
                        ps = psstack.pop()
            if lu:
                info[co].append((yl, xl))
            elif cs == 1:
                cs = 0
                if ps != 0:
                    marker[xl] = "f"
                    end[co] = xl
                else:
                    ps = psstack.pop()
                    marker[xl] = "F"
                    store[start[co]] = info[co]
                    co -= 1
    return result


def _sex_mthresh(tpix, minarea: int) -> float:
    """``examineiso``'s CLEAN threshold from the pixels' heights above the detection
    threshold, in pixel-list order, reproduced with its quirks: the first ``minarea`` values
    fill a heap, the next one is skipped (the heap is sorted instead), later ones replace
    the root if larger, with SExtractor's sift-down (which continues from the index after
    the swapped child). ``mthresh`` is the root: for an object of exactly ``minarea``
    pixels, its *first* pixel."""
    n = len(tpix)
    if n < minarea:
        return 0.0
    heap = []
    h = minarea
    for t in tpix:
        t = np.float32(t)
        if h > 0:
            heap.append(t)
        elif h:
            if t > heap[0]:
                heap[0] = t
                j = 0
                while True:
                    k = (j + 1) << 1
                    if k > minarea:
                        break
                    hk = k
                    if k != minarea and heap[k - 1] > heap[k]:
                        hk = k + 1
                        k += 1
                    hk -= 1
                    if heap[j] <= heap[hk]:
                        break
                    heap[hk], heap[j] = heap[j], heap[hk]
                    j = k
        else:
            heap.sort()
        h -= 1
    return float(heap[0])


def _sex_object_params(
    data: np.ndarray,
    segm_data: np.ndarray,
    labels: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    t0: float,
    minarea: int,
) -> dict:
    """Per object what SExtractor's CLEAN uses (``preanalyse`` FULL|ROBUST, ``analyse_iso``):
    flux, pixel count, second moments about the object's position, ``a``, ``cxx, cyy, cxy``,
    ``abcor`` and ``mthresh`` (the ``minarea``-th brightest pixel above ``t0``)."""
    lab_img = segm_data.ravel()
    idx = np.flatnonzero(lab_img)
    lab = lab_img[idx]
    nx = segm_data.shape[1]
    size = int(labels.max()) + 1
    val = data.ravel()[idx].astype(np.float64)
    px = (idx % nx).astype(np.float64)
    py = (idx // nx).astype(np.float64)
    pos = np.zeros((size, 2))
    pos[labels] = np.column_stack([x, y])
    dx = px - pos[lab, 0]
    dy = py - pos[lab, 1]
    rv = np.bincount(lab, val, size)[labels]
    npix = np.bincount(lab, None, size)[labels]
    xm2 = np.bincount(lab, val * dx * dx, size)[labels] / rv
    ym2 = np.bincount(lab, val * dy * dy, size)[labels] / rv
    xym = np.bincount(lab, val * dx * dy, size)[labels] / rv
    peak = np.full(size, -np.inf)
    np.maximum.at(peak, lab, val)
    thresh2 = (t0 + peak) / 2.0
    area2 = np.bincount(lab, (val > thresh2[lab]).astype(np.float64), size)[labels]
    dnpix = np.bincount(lab, (val > t0).astype(np.float64), size)[labels]
    temp2 = xm2 * ym2 - xym * xym
    sing = temp2 < 0.00694
    xm2 = np.where(sing, xm2 + 0.0833333, xm2)
    ym2 = np.where(sing, ym2 + 0.0833333, ym2)
    temp2 = xm2 * ym2 - xym * xym
    temp = np.sqrt(0.25 * (xm2 - ym2) ** 2 + xym * xym)
    a = np.sqrt(np.maximum(0.5 * (xm2 + ym2) + temp, 0)).astype(np.float32).astype(np.float64)
    b = np.sqrt(np.maximum(0.5 * (xm2 + ym2) - temp, 0)).astype(np.float32).astype(np.float64)
    t1t2 = t0 / thresh2[labels]
    darea = area2 - dnpix
    with np.errstate(divide="ignore", invalid="ignore"):
        abcor = np.where(darea < 0, darea, -1.0) / (
            2 * math.pi * np.log(np.where(t1t2 < 1, t1t2, 0.99)) * a * b
        )
    abcor = np.where((t1t2 > 0) & np.isfinite(abcor), np.minimum(abcor, 1.0), 1.0)
    # mthresh: SExtractor's heap over the pixel list (exact lutz order for objects of up to
    # 64 pixels, the faint ones CLEAN can remove; for larger ones the minarea-th largest)
    order = np.lexsort((-val, lab))
    starts = np.searchsorted(lab[order], labels)
    k = int(minarea)
    mth = np.zeros(labels.size)
    okk = npix >= k
    mth[okk] = val[order][starts[okk] + k - 1] - t0
    small = np.nonzero(okk & (npix <= 64))[0]
    if small.size:
        from scipy import ndimage as ndi

        slices = ndi.find_objects(segm_data)
        for i in small:
            sl = slices[labels[i] - 1]
            m = segm_data[sl] == labels[i]
            seq = _lutz_order(m)
            cut = data[sl]
            mth[i] = _sex_mthresh([float(cut[yy, xx]) - t0 for yy, xx in seq], k)
    return {
        "flux": rv,
        "npix": npix.astype(np.float64),
        "a": a,
        "b": b,
        "cxx": (ym2 / temp2).astype(np.float32).astype(np.float64),
        "cyy": (xm2 / temp2).astype(np.float32).astype(np.float64),
        "cxy": (-2 * xym / temp2).astype(np.float32).astype(np.float64),
        "abcor": abcor,
        "mthresh": mth.astype(np.float32),
    }


def sextractor_clean(
    x: np.ndarray,
    y: np.ndarray,
    params: dict,
    order: np.ndarray,
    t0: float,
    clean_param: float = 1.0,
) -> np.ndarray:
    """SExtractor's CLEAN (``clean.c``), ported: which object each one is merged into.

    Objects are taken in SExtractor's order (``order``: the scan order in which they are
    completed). A newcomer is compared with the earlier, still listed objects closer than
    ``CLEAN_ZONE (a1 + a2)``: the brighter of a pair predicts, from a Moffat-like profile
    ``amp (1 + alpha r^2)^-beta`` (``beta = CLEAN_PARAM``) fitted to its flux, area and
    shape, the surface brightness at the other; if that exceeds the other's ``mthresh``
    the fainter one is a spurious bump of the brighter one's wings and is merged into it
    (its flux and area are added; the position is unchanged). Returns ``owner``: for
    each object the index of the object it ends up merged into (itself if it survives).
    """
    from scipy.spatial import cKDTree

    beta = float(clean_param)
    n = len(x)
    owner = np.arange(n)
    if n == 0:
        return owner
    flux = params["flux"].astype(np.float64).copy()
    npix = params["npix"].astype(np.float64).copy()
    a, b, abcor = params["a"], params["b"], params["abcor"]
    cxx, cyy, cxy, mth = params["cxx"], params["cyy"], params["cxy"], params["mthresh"]
    tree = cKDTree(np.column_stack([x, y]))
    amax = float(a.max())
    listed = np.zeros(n, bool)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)

    def amp_alpha(i):
        unit = math.pi * a[i] * b[i]
        amp = flux[i] / (2 * unit * abcor[i])
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = ((amp / t0) ** (1.0 / beta) - 1) * unit / npix[i]
        return amp, alpha

    def predicted(amp, alpha, cx, cy, cxy_, dx, dy):
        val = 1 + alpha * (cx * dx * dx + cy * dy * dy + cxy_ * dx * dy)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            pr = np.where(val < 1e10, amp * np.power(np.where(val > 0, val, 1.0), -beta), 0.0)
        return val, pr.astype(np.float32)

    for i in order:
        cand = np.asarray(
            tree.query_ball_point([x[i], y[i]], _SEX_CLEAN_ZONE * (a[i] + amax)), np.int64
        )
        cand = cand[listed[cand]]
        if cand.size:
            cand = cand[np.argsort(rank[cand], kind="stable")]
            dx = x[i] - x[cand]
            dy = y[i] - y[cand]
            rlim = (a[i] + a[cand]) ** 2
            cand_in = dx * dx + dy * dy < rlim * _SEX_CLEAN_ZONE**2
            cand, dx, dy = cand[cand_in], dx[cand_in], dy[cand_in]
        eaten_by = -1
        victims = np.zeros(0, np.int64)
        if cand.size:
            fainter = flux[cand] < flux[i]
            amp_in, alpha_in = amp_alpha(i)
            v_in, p_in = predicted(amp_in, alpha_in, cxx[i], cyy[i], cxy[i], dx, dy)
            eats = fainter & (v_in > 1.0) & (p_in > mth[cand])
            amp_o, alpha_o = amp_alpha(cand)
            v_o, p_o = predicted(amp_o, alpha_o, cxx[cand], cyy[cand], cxy[cand], dx, dy)
            eaten = ~fainter & (v_o > 1.0) & (p_o > mth[i])
            if eaten.any():
                first = int(np.argmax(eaten))
                eaten_by = int(cand[first])
                victims = cand[:first][eats[:first]]
            else:
                victims = cand[eats]
        if eaten_by >= 0:
            flux[eaten_by] += flux[i]
            npix[eaten_by] += npix[i]
            owner[i] = eaten_by
            continue
        for v in victims:
            flux[i] += flux[v]
            npix[i] += npix[v]
            owner[owner == v] = i
            listed[v] = False
        listed[i] = True
    # resolve chains (an object merged into one that was later merged)
    while True:
        nxt = owner[owner]
        if np.array_equal(nxt, owner):
            return owner
        owner = nxt


def _scan_order(
    segm_data: np.ndarray, labels: np.ndarray, roots_data: np.ndarray | None, branch_index: dict
) -> np.ndarray:
    """The order in which SExtractor's scan completes the objects: by the last row of the
    (undeblended) detection, then the end of its last segment along that row; the pieces
    of a deblended detection follow each other in the deblender's output order."""
    from scipy import ndimage as ndi

    base = segm_data if roots_data is None else roots_data
    nroot = int(base.max())
    slices = ndi.find_objects(base)
    ymax = np.full(nroot + 1, -1, np.int64)
    xend = np.full(nroot + 1, -1, np.int64)
    for r, sl in enumerate(slices, 1):
        if sl is None:
            continue
        yl = sl[0].stop - 1
        row = np.flatnonzero(base[yl, sl[1]] == r)
        ymax[r] = yl
        xend[r] = sl[1].start + int(row.max())
    root = np.array([branch_index.get(int(lb), (int(lb), 0))[0] for lb in labels], np.int64)
    rank = np.array([branch_index.get(int(lb), (int(lb), 0))[1] for lb in labels], np.int64)
    return np.lexsort((rank, root, xend[root], ymax[root]))


def _apply_clean(
    table: Table,
    segm,
    roots,
    branch_index: dict,
    data: np.ndarray,
    t0: float,
    cfg: SExtractorConfig,
):
    """Run :func:`sextractor_clean` on a detection table; merge the CLEANed objects."""
    from photutils.segmentation import SegmentationImage

    labels = np.asarray(table["source_id"], np.int64)
    x = np.asarray(table["x"], np.float64)
    y = np.asarray(table["y"], np.float64)
    params = _sex_object_params(data, segm.data, labels, x, y, t0, int(cfg.detect_minarea))
    order = _scan_order(segm.data, labels, None if roots is None else roots.data, branch_index)
    owner = sextractor_clean(x, y, params, order, t0, float(cfg.clean_param))
    keep = owner == np.arange(labels.size)
    if keep.all():
        return table, segm
    remap = np.arange(int(segm.data.max()) + 1)
    remap[labels] = labels[owner]
    new = SegmentationImage(remap[segm.data])
    area = np.bincount(owner, np.asarray(table["area_px"], np.float64), labels.size)
    flux = np.bincount(owner, np.asarray(table["wl_flux"], np.float64), labels.size)
    table = table[keep]
    table["area_px"] = area[keep].astype(np.int64)
    table["wl_flux"] = flux[keep]
    return table, new
