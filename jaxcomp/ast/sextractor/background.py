"""SExtractor 2.x's background estimator, ported (``back.c``).

Per mesh: ``backstat`` (mean/sigma after one mean +- 2 sigma cut), ``backhisto`` (a
quantised histogram over mean +- 5 sigma), ``backguess`` (iterative median +- 3 sigma
clipping of the histogram and the mode ``2.5 median - 1.5 mean``); then ``filterback``
(bad meshes filled from their nearest valid neighbours, optional median filter) and
``makebackspline``/``backline`` (a bicubic spline through the mesh values, not
clipped). :func:`sextractor_background` chains them; it is the background of
:data:`jaxcomp.ast.settings.SEXTRACTOR_PORT` (``background_impl="sextractor"``, see
:func:`jaxcomp.ast.background.background_with_statistics`).

See ``docs/architecture.md`` for where this sits in the catalogue pipeline.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["sextractor_background"]


# --- SExtractor 2.x background, ported (back.c: backstat, backhisto, backguess,
# filterback, makebackspline, backline; constants from define.h / back.h).
_SEX_QUANTIF_NSIGMA = 5  # histogram spans mean +- 5 sigma
_SEX_QUANTIF_NMAXLEVELS = 4096  # at most 4096 bins
_SEX_QUANTIF_AMIN = 4  # min number of "mode pixels" per bin
_SEX_BACK_MINGOODFRAC = 0.5  # a mesh needs half of its pixels valid
_SEX_EPS = 1e-4


def _sex_mesh_stats(v, valid, area):
    """``backstat``: per mesh (rows of ``v``), mean/sigma after one mean +- 2 sigma cut and
    the histogram geometry. float32 where SExtractor's backstruct is float."""
    vd = np.where(valid, v, 0).astype(np.float64)
    n = valid.sum(1)
    bad = n.astype(np.float32) < (area * _SEX_BACK_MINGOODFRAC).astype(np.float32)
    nn = np.maximum(n, 1)
    mean = vd.sum(1) / nn
    var = (vd * vd).sum(1) / nn - mean * mean
    sig = np.where(var > 0, np.sqrt(np.maximum(var, 0)), 0.0)
    lcut = (mean - 2.0 * sig).astype(np.float32)
    hcut = (mean + 2.0 * sig).astype(np.float32)
    inr = valid & (v <= hcut[:, None]) & (v >= lcut[:, None])
    vd = np.where(inr, v, 0).astype(np.float64)
    n2 = inr.sum(1)
    nn2 = np.maximum(n2, 1)
    mean2 = vd.sum(1) / nn2
    var2 = (vd * vd).sum(1) / nn2 - mean2 * mean2
    sig2 = np.where(var2 > 0, np.sqrt(np.maximum(var2, 0)), 0.0)
    step = math.sqrt(2 / math.pi) * _SEX_QUANTIF_NSIGMA / _SEX_QUANTIF_AMIN
    nlev = np.minimum((step * n2 + 1).astype(np.int64), _SEX_QUANTIF_NMAXLEVELS)
    mean2 = mean2.astype(np.float32)
    sig2 = sig2.astype(np.float32)
    qscale = np.where(
        sig2 > 0,
        (2 * _SEX_QUANTIF_NSIGMA * sig2.astype(np.float64) / nlev).astype(np.float32),
        np.float32(1.0),
    )
    qzero = (mean2.astype(np.float64) - _SEX_QUANTIF_NSIGMA * sig2.astype(np.float64)).astype(
        np.float32
    )
    return bad, mean2, sig2, nlev, qscale, qzero


def _sex_histograms(v, valid, nlev, qscale, qzero):
    """``backhisto``: bin = (int)(pix / qscale + 0.499999 - qzero / qscale), float32, truncated."""
    m = v.shape[0]
    width = int(nlev.max()) if m else 1
    cste = (np.float32(0.499999) - qzero / qscale).astype(np.float32)
    b = np.trunc((v / qscale[:, None]).astype(np.float32) + cste[:, None])
    ok = valid & (b >= 0) & (b < nlev[:, None])
    bi = np.where(ok, b, 0).astype(np.int64) + (np.arange(m) * width)[:, None]
    return np.bincount(bi[ok], minlength=m * width).reshape(m, width).astype(np.int32)


def _row_first_ge(p, t, lo, hi):
    """Per row, the first index i in [lo, hi] with p[row, i] >= t[row] (rows nondecreasing), else hi
    + 1."""
    rows = np.arange(p.shape[0])
    a, b = lo.copy(), hi + 1
    while True:
        open_ = a < b
        if not open_.any():
            return a
        mid = (a + b) // 2
        go = p[rows, np.minimum(mid, p.shape[1] - 1)] < t
        a = np.where(open_ & go, mid + 1, a)
        b = np.where(open_ & ~go, mid, b)


def _sex_backguess(h, nlev, mean, qscale, qzero):
    """``backguess`` for many meshes at once: iterative median +- 3 sigma clipping of the
    histogram (<= 100 iterations, until sigma changes by < 1e-4), then the mode
    ``2.5 median - 1.5 mean`` (the median if ``|mean - median| > 0.3 sigma``) and sigma.

    SExtractor's median walks two pointers in from the window's ends, adding each bin to
    the smaller of the two running sums; that leaves ``k = #{j : A(j) + A(j+1) < S}`` bins
    on the low side (``A(j)``: counts of the ``j`` lowest window bins, ``S``: window total),
    which is what is evaluated here (cumulative sums, a per-row binary search)."""
    m, width = h.shape
    hf = h.astype(np.float64)
    idx = np.arange(width, dtype=np.float64)
    z = np.zeros((m, 1))
    c0 = np.concatenate([z, np.cumsum(hf, 1)], 1)  # c0[:, i + 1] = counts in bins 0..i
    c1 = np.concatenate([z, np.cumsum(hf * idx, 1)], 1)
    c2 = np.concatenate([z, np.cumsum(hf * idx * idx, 1)], 1)
    pair = c0[:, :-1] + c0[:, 1:]
    nlm1 = nlev.astype(np.int64) - 1
    lcut = np.zeros(m, np.int64)
    hcut = nlm1.copy()
    sig = 10.0 * nlm1
    sig1 = np.ones(m)
    mea = mean.astype(np.float64).copy()
    med = mean.astype(np.float64).copy()
    for _ in range(100):
        act = np.nonzero((sig >= 0.1) & (np.abs(sig / sig1 - 1.0) > _SEX_EPS))[0]
        if act.size == 0:
            break
        sig1[act] = sig[act]
        lc, hc = lcut[act], hcut[act]
        s = c0[act, hc + 1] - c0[act, lc]
        safe = np.where(s > 0, s, 1.0)
        mea_a = np.where(s > 0, (c1[act, hc + 1] - c1[act, lc]) / safe, 0.0)
        var = np.where(s > 0, (c2[act, hc + 1] - c2[act, lc]) / safe - mea_a * mea_a, 0.0)
        k = _row_first_ge(pair[act], c0[act, hc + 1] + c0[act, lc], lc, hc) - lc
        hih = lc + k - 1
        lows = c0[act, lc + k] - c0[act, lc]
        highs = c0[act, hc + 1] - c0[act, lc + k]
        den = 2.0 * np.maximum(
            h[act, np.clip(hih + 1, 0, width - 1)], h[act, np.clip(hih, 0, width - 1)]
        )
        frac = np.where(den > 0, (highs - lows) / np.where(den > 0, den, 1.0), 0.0)
        med_a = np.where(hih >= 0, hih + 0.5 + frac, 0.0)
        sig_a = np.where(var > 0, np.sqrt(np.maximum(var, 0)), 0.0)
        lo = med_a - 3.0 * sig_a
        lcut[act] = np.where(lo > 0, np.floor(lo + 0.5), 0).astype(np.int64)
        hi = med_a + 3.0 * sig_a
        hcut[act] = np.where(
            hi < nlm1[act], np.where(hi > 0, np.floor(hi + 0.5), np.ceil(hi - 0.5)), nlm1[act]
        ).astype(np.int64)
        mea[act], med[act], sig[act] = mea_a, med_a, sig_a
    qs = qscale.astype(np.float64)
    qz = qzero.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mode = np.where(
            np.abs(sig) > 0,
            np.where(
                np.abs((mea - med) / sig) < 0.3, qz + (2.5 * med - 1.5 * mea) * qs, qz + med * qs
            ),
            qz + mea * qs,
        )
    return mode.astype(np.float32), (sig * qs).astype(np.float32)


def _sex_spline_d(mesh: np.ndarray, axis: int) -> np.ndarray:
    """``makebackspline``: SExtractor's "natural" spline coefficients (second derivatives / 6,
    with its back-substitution as written: ``d[k] = (d[k] d[k+1] + u[k]) / 6``)."""
    m = np.moveaxis(np.asarray(mesh, np.float64), axis, 0)
    n = m.shape[0]
    d = np.zeros_like(m)
    if n >= 3:
        u = np.zeros_like(m)
        for k in range(1, n - 1):
            temp = -1.0 / (d[k - 1] + 4.0)
            d[k] = temp
            u[k] = temp * (u[k - 1] - 6.0 * (m[k + 1] + m[k - 1] - 2.0 * m[k]))
        d[n - 1] = 0.0
        for k in range(n - 2, 0, -1):
            d[k] = (d[k] * d[k + 1] + u[k]) / 6.0
    return np.moveaxis(d, 0, axis)


def _sex_interpolate(mesh: np.ndarray, shape: tuple[int, int], bw: int, bh: int) -> np.ndarray:
    """``backline`` for every line: bicubic spline through the mesh values, not clipped.

    Nodes sit at ``x = (bw - 1) / 2 + bw i`` and ``y = bh / 2 + bh j`` (SExtractor's
    conventions, 0-based pixels); outside the outer nodes the end cubics extrapolate.
    With a single row of meshes SExtractor interpolates linearly along x."""
    h, w = shape
    nby, nbx = mesh.shape
    mv = mesh.astype(np.float64)
    if nby > 1:
        dmap = _sex_spline_d(mv, 0)
        dyf = np.arange(h) / bh - 0.5
        yl = np.trunc(dyf).astype(np.int64)
        dy = dyf - yl
        top = yl >= nby - 1
        yl = np.where(top, nby - 2, yl)
        dy = np.where(top, dy + 1.0, dy)
        cdy = 1.0 - dy
        node = (
            cdy[:, None] * mv[yl]
            + dy[:, None] * mv[yl + 1]
            + (cdy**3 - cdy)[:, None] * dmap[yl]
            + (dy**3 - dy)[:, None] * dmap[yl + 1]
        )
        dnode = _sex_spline_d(node, 1)
    else:
        node = np.repeat(mv, h, axis=0)
        dnode = np.zeros_like(node)
    out = np.empty((h, w), np.float32)
    if nbx > 1:
        px = np.arange(w)
        lo = np.clip((px - bw // 2) // bw, 0, nbx - 2)
        dx = (px - (bw - 1) / 2.0) / bw - lo
        cdx = 1.0 - dx
        a, b = (cdx * cdx - 1.0), (dx * dx - 1.0)
        rows = max(1, 2_000_000 // max(w, 1))
        for r0 in range(0, h, rows):
            sl = slice(r0, min(h, r0 + rows))
            out[sl] = cdx * (node[sl][:, lo] + a * dnode[sl][:, lo]) + dx * (
                node[sl][:, lo + 1] + b * dnode[sl][:, lo + 1]
            )
    else:
        out[:] = node[:, :1]
    return out


def _sex_fill_and_filter(back, sigma, bad, filter_size):
    """``filterback``: bad meshes take the mean of the nearest valid ones; then the median
    filter (window shrunk symmetrically at the edges; BACK_FILTTHRESH 0)."""
    back = back.astype(np.float32).copy()
    sigma = sigma.astype(np.float32).copy()
    if bad.any():
        from scipy.spatial import cKDTree

        gy, gx = np.nonzero(~bad)
        if gy.size == 0:
            back[:] = 0.0
            sigma[:] = 1.0
        else:
            by, bx = np.nonzero(bad)
            k = min(16, gy.size)
            d, j = cKDTree(np.column_stack([gy, gx])).query(np.column_stack([by, bx]), k=k)
            d, j = d.reshape(by.size, k), j.reshape(by.size, k)
            near = d <= d[:, :1] + 1e-9
            gb, gs = back[gy, gx][j], sigma[gy, gx][j]
            cnt = near.sum(1)
            back[by, bx] = (np.where(near, gb, 0).sum(1) / cnt).astype(np.float32)
            sigma[by, bx] = (np.where(near, gs, 0).sum(1) / cnt).astype(np.float32)
    f = int(filter_size)
    if f > 1:
        ny, nx = back.shape
        half = f // 2
        b2, s2 = back.copy(), sigma.copy()
        for py in range(ny):
            ry = min(half, py, ny - 1 - py)
            for px in range(nx):
                rx = min(half, px, nx - 1 - px)
                win = (slice(py - ry, py + ry + 1), slice(px - rx, px + rx + 1))
                b2[py, px] = np.median(back[win])
                s2[py, px] = np.median(sigma[win])
        back, sigma = b2, s2
    return back, sigma


def sextractor_background(
    wl: np.ndarray,
    footprint: np.ndarray | None,
    back_size: int = 30,
    filter_size: int = 1,
    *,
    chunk: int = 4096,
) -> dict:
    """SExtractor 2.x's background of an image, ported (BACK_TYPE AUTO, no weight map).

    Meshes of ``back_size`` px (the last row/column partial, as SExtractor lays them
    out); pixels outside ``footprint`` or non-finite are left out (a mesh with fewer than
    half its pixels valid is "bad" and takes the mean of its nearest valid meshes).
    Per mesh: mean and sigma after one ``mean +- 2 sigma`` cut, a histogram of the
    pixels over ``mean +- 5 sigma`` (about one bin per pixel), iterative
    ``median +- 3 sigma`` clipping of the histogram, and the mode ``2.5 median -
    1.5 mean`` (the median if ``|mean - median| >= 0.3 sigma``); sigma is the clipped
    histogram's. ``backsig`` (the detection noise without a weight map) and
    ``backmean`` are the medians of the filtered sigma and background meshes.

    The full-resolution maps are SExtractor's bicubic spline through the mesh values,
    *not* clipped to their range: next to a mesh dominated by a bright source it
    overshoots (to negative values on the mock), which makes SExtractor's segments
    around bright sources larger than photutils' (which clips the interpolation).

    Returns a dict: ``background`` (float32 image), ``backsig``, ``backmean``, ``mesh``
    and ``mesh_rms`` (float32, ``(ny_mesh, nx_mesh)``). Checked against
    ``source-extractor`` 2.25 check images (MINIBACKGROUND, MINIBACK_RMS, BACKGROUND)
    on the mock's white light: ``backsig`` equal to 7 digits, meshes and map to
    <~0.02 sigma.
    """
    data = np.asarray(wl, np.float32)
    h, w = data.shape
    b = int(back_size)
    if b < 1:
        raise ValueError(f"back_size must be >= 1, got {back_size}")
    valid_all = np.isfinite(data)
    if footprint is not None and not footprint.all():
        valid_all &= footprint
    nbx = (w - 1) // b + 1
    nby = (h - 1) // b + 1
    nm = nbx * nby
    bad = np.zeros(nm, bool)
    mean = np.zeros(nm, np.float32)
    nlev = np.ones(nm, np.int64)
    qs = np.ones(nm, np.float32)
    qz = np.zeros(nm, np.float32)
    hists = []
    widths = np.full(nbx, b)
    widths[-1] = w - (nbx - 1) * b
    for j in range(nby):
        y0, y1 = j * b, min(h, (j + 1) * b)
        hh = y1 - y0
        blk = np.zeros((hh, nbx * b), np.float32)
        vb = np.zeros((hh, nbx * b), bool)
        blk[:, :w] = data[y0:y1]
        vb[:, :w] = valid_all[y0:y1]
        v = blk.reshape(hh, nbx, b).transpose(1, 0, 2).reshape(nbx, hh * b)
        vv = vb.reshape(hh, nbx, b).transpose(1, 0, 2).reshape(nbx, hh * b)
        sl = slice(j * nbx, (j + 1) * nbx)
        bad[sl], mean[sl], _, nlev[sl], qs[sl], qz[sl] = _sex_mesh_stats(v, vv, widths * hh)
        hists.append(_sex_histograms(v, vv & ~bad[sl][:, None], nlev[sl], qs[sl], qz[sl]))
    back = np.zeros(nm, np.float32)
    sigma = np.zeros(nm, np.float32)
    for c0 in range(0, nm, chunk):
        c1 = min(nm, c0 + chunk)
        width = int(nlev[c0:c1].max())
        hist = np.zeros((c1 - c0, width), np.int32)
        for j in range(c0 // nbx, (c1 - 1) // nbx + 1):
            r0, r1 = max(c0, j * nbx), min(c1, (j + 1) * nbx)
            part = hists[j][r0 - j * nbx : r1 - j * nbx]
            hist[r0 - c0 : r1 - c0, : min(width, part.shape[1])] = part[:, :width]
        back[c0:c1], sigma[c0:c1] = _sex_backguess(
            hist, nlev[c0:c1], mean[c0:c1], qs[c0:c1], qz[c0:c1]
        )
    del hists
    back, sigma = _sex_fill_and_filter(
        back.reshape(nby, nbx), sigma.reshape(nby, nbx), bad.reshape(nby, nbx), filter_size
    )
    backsig = float(np.median(sigma))
    if backsig <= 0:
        pos = sigma[sigma > 0]
        backsig = float(np.median(pos)) if pos.size else 1.0
    return {
        "background": _sex_interpolate(back, (h, w), b, b),
        "backsig": backsig,
        "backmean": float(np.median(back)),
        "mesh": back,
        "mesh_rms": sigma,
    }
