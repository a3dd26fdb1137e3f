"""IRAF apphot ``calgorithm = "centroid"`` recentring, vectorised over sources.

The LEGUS cluster catalogue's photometry (and the C-4 pipeline that re-runs it) runs IRAF
apphot ``phot`` with the centring parameters ``calgorithm = centroid, cbox = 1,
cmaxiter = 3, maxshift = 1`` (``scale = 1, cthreshold = 0, minsnratio = 1``; datapars
``sigma = 0.01``, ``epadu`` = the exposure time) at the SExtractor detection positions, so
each band's apertures sit at that band's own centroid. :func:`iraf_centroid` reproduces
that centring; :func:`jaxcomp.ast.photometry.aperture_photometry` uses it when
:attr:`jaxcomp.ast.settings.PhotometryConfig.centring` is ``"iraf_centroid"``.

Coordinates are 0-based with pixel centres at integers (numpy/photutils: ``image[j, i]``
is centred on ``x = i, y = j``); IRAF's logical coordinates are these plus 1.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CENTRING_BAD_DATA",
    "CENTRING_BIG_SHIFT",
    "CENTRING_LOW_SNR",
    "CENTRING_NO_AREA",
    "CENTRING_OK",
    "CENTRING_OUT_OF_BOUNDS",
    "LEGUS_CENTRING_MIN_SNR",
    "LEGUS_CENTRING_SIGMA",
    "iraf_centroid",
]

#: The S/N test of the centring as LEGUS ran ``phot``: datapars ``sigma`` [data units per
#: pixel, i.e. counts/s for count-rate images] and centerpars ``minsnratio``.
LEGUS_CENTRING_SIGMA: float = 0.01
LEGUS_CENTRING_MIN_SNR: float = 1.0

#: Centring succeeded.
CENTRING_OK = 0
#: IRAF ``NoArea``: the centring box lies entirely off the image (input position kept).
CENTRING_NO_AREA = 101
#: IRAF ``OutOfBounds``: the box was clipped by the image edge (centroid of the clipped box).
CENTRING_OUT_OF_BOUNDS = 102
#: IRAF ``LowSnr``: the box's S/N is below ``min_snr`` (the centroid is still reported).
CENTRING_LOW_SNR = 103
#: IRAF ``BadShift``: the total shift exceeds ``max_shift_px`` (the centroid is still reported).
CENTRING_BIG_SHIFT = 107
#: IRAF ``BadData``: the box holds a non-finite pixel or one outside the footprint (input kept).
CENTRING_BAD_DATA = 108


def _gather_boxes(image, footprint, c1, l1, width):
    """Boxes (n, width, width) with corner (l1, c1) [0-based]; NaN off the image or footprint."""
    ny, nx = image.shape
    off = np.arange(width)
    rows = l1[:, None] + off[None, :]
    cols = c1[:, None] + off[None, :]
    on = ((rows >= 0) & (rows < ny))[:, :, None] & ((cols >= 0) & (cols < nx))[:, None, :]
    rr = np.clip(rows, 0, ny - 1)[:, :, None]
    cc = np.clip(cols, 0, nx - 1)[:, None, :]
    pix = image[rr, cc].astype(np.float64)
    if footprint is not None:
        on &= footprint[rr, cc]
    pix[~on] = np.nan
    return pix


def _box_limits(pos, half, size):
    """First and last pixel [0-based] of the centring box along one axis, and NoArea.

    IRAF ``ap_ctrpix`` (``apctrbuf.x``): the box is ``pos +- half`` clamped to the image and
    each end rounded to the nearest pixel, halves up (``int(v + 0.5)`` of a value >= 1.5 in
    1-based coordinates).
    """
    lo, hi = pos - half, pos + half
    no_area = (lo > size - 1) | (hi < 0)
    first = np.floor(np.clip(lo, 0.0, size - 1.0) + 0.5).astype(np.int64)
    last = np.floor(np.clip(hi, 0.0, size - 1.0) + 0.5).astype(np.int64)
    return first, last, no_area


def _marginal_centre(marg, n, epadu):
    """Mean-thresholded centroid of marginals (m, width) over their first ``n`` elements.

    IRAF ``ap_cmmarg`` (``apmctr1d.x``): only the elements above the marginal's mean count,
    ``c = sum(i v_i) / sum(v_i)`` with ``v_i = a_i - mean > 0`` and 1-based ``i``. Returns the
    centre [1-based box coordinates] and whether IRAF's error is INDEF (no element above the
    mean, or ``err = sqrt(var / (S epadu)) > n``), in which case the caller keeps the guess.
    """
    width = marg.shape[1]
    idx = np.arange(1, width + 1, dtype=np.float64)
    used = idx[None, :] <= n[:, None]
    mean = np.where(used, marg, 0.0).sum(axis=1) / n
    v = marg - mean[:, None]
    v = np.where(used & (v > 0.0), v, 0.0)
    s0 = v.sum(axis=1)
    flat = s0 == 0.0
    safe = np.where(flat, 1.0, s0)
    centre = (v * idx).sum(axis=1) / safe
    var = (v * idx * idx).sum(axis=1) / safe - centre * centre
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(var > 0.0, np.sqrt(np.maximum(var, 0.0) / (safe * epadu)), 0.0)
    indef = flat | (err > n)
    return np.where(flat, (n + 1.0) / 2.0, centre), indef


def iraf_centroid(
    image,
    x,
    y,
    *,
    box_px: float = 1.0,
    max_iter: int = 3,
    max_shift_px: float = 1.0,
    min_snr: float = LEGUS_CENTRING_MIN_SNR,
    sigma: float = LEGUS_CENTRING_SIGMA,
    epadu: float = 1.0,
    footprint: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recentre sources as IRAF apphot ``phot`` does with ``calgorithm = "centroid"``.

    Parameters
    ----------
    image : (ny, nx) array
        The band's image [data units, e.g. counts/s]; ``sigma`` is in the same units.
    x, y : (N,) arrays
        Initial positions [px, 0-based, pixel centres at integers, ``x`` = column].
    box_px : float
        IRAF ``cbox`` [px]: the box is ``2 int(max(1, box_px / 2)) + 1`` px wide, so 3 x 3
        for any ``box_px < 4`` (LEGUS: 1), 5 x 5 for 4 <= ``box_px`` < 6. ``box_px <= 0``
        gives :data:`CENTRING_NO_AREA` everywhere.
    max_iter : int
        IRAF ``cmaxiter`` (>= 1).
    max_shift_px : float
        IRAF ``maxshift`` [px]: a total shift from the input beyond it is flagged
        :data:`CENTRING_BIG_SHIFT` (the shifted centre is still returned).
    min_snr : float
        IRAF ``minsnratio``: a lower S/N of the box is flagged :data:`CENTRING_LOW_SNR`.
    sigma : float
        IRAF datapars ``sigma`` [data units per pixel] of the S/N test (LEGUS: 0.01).
    epadu : float
        IRAF datapars ``epadu`` [electrons per data unit]; for an image in counts/s the
        exposure time [s], as in LEGUS.
    footprint : (ny, nx) bool array, optional
        False where the image has no data; such pixels count as non-finite ones.

    Returns
    -------
    x_new, y_new : (N,) float arrays
        The centres IRAF ``phot`` reports and centres its apertures and sky annulus on
        [px, 0-based].
    flag : (N,) int array
        IRAF's centring error code: :data:`CENTRING_OK` (0), :data:`CENTRING_NO_AREA` (101),
        :data:`CENTRING_OUT_OF_BOUNDS` (102), :data:`CENTRING_LOW_SNR` (103),
        :data:`CENTRING_BIG_SHIFT` (107) or :data:`CENTRING_BAD_DATA` (108).

    Notes
    -----
    The algorithm of IRAF apphot (``noao/digiphot/apphot/center/``: ``apfitcen.x``,
    ``apctrbuf.x``, ``apmctr1d.x``, ``apcsnratio.x``; codes from ``lib/center.h``), for
    ``cthreshold = 0`` and emission features. Each iteration, from the current guess:

    1. Box (``apctrbuf.x``, ``ap_ctrpix``): the pixels from the nearest pixel to
       ``guess - half`` to the nearest pixel to ``guess + half`` (halves rounded up),
       ``half = (width - 1) / 2``, each end clamped to the image; a box entirely off the
       image is ``NoArea`` (101), one clipped by the edge ``OutOfBounds`` (102, its
       centroid is still computed on the clipped box). The result depends on the guess
       only through which pixels the box holds (except on an axis that keeps it, 4.).
    2. Background (``apfitcen.x``): the box minimum is subtracted.
    3. S/N (``apcsnratio.x``, poisson noise): ``S = sum(pix)``,
       ``noise = sqrt(|S / epadu| + npix sigma^2)``, ``snr = S / noise`` (0 if
       ``S <= 0``); ``snr < min_snr`` is ``LowSnr`` (103), a flag only.
    4. Marginals (``apmctr1d.x``): the mean of the box over rows (x) and over columns
       (y); each axis' centre is the centroid of the marginal's elements above the
       marginal's mean, weighted by their excess (``ap_cmmarg``). If no element is above
       the mean (a flat marginal) or the centroid's error
       ``sqrt(var / (sum(excess) epadu))`` exceeds the box width (the rule of current
       IRAF, which passes ``epadu`` to the marginal centroid), that axis keeps the guess
       (zero shift; IRAF's fallback to the box's ``AP_CXC``).
    5. The centre is clamped to the box's outer pixel edges; the new guess is the
       centre. Iteration stops after ``max_iter`` passes or when this pass moved the
       centre by less than 1 px on both axes (a fixed 1 px, whatever ``max_shift_px``).

    The flag comes from the last pass, by precedence 108, 103, 107 (``|total shift| >
    max_shift_px`` on either axis, the shift measured from the input), 102, 0. The
    reported centre is the last centroid for 0, 102, 103 and 107 (``phot`` measures
    there whatever the code) and the input for 101. One departure from IRAF: a box with
    a non-finite pixel or one outside ``footprint`` (IRAF checks ``datamin``/``datamax``
    instead, and LEGUS set none) stops the centring with ``BadData`` (108) and keeps the
    input position. Non-finite input positions give 101 and are returned unchanged.

    With a 3 x 3 box the centroid locks onto pixels: if only one element of a marginal
    exceeds its mean the result is that pixel's integer coordinate exactly, so a compact
    source within ~0.2 px of a pixel centre is reported at the pixel centre. IRAF computes
    in single precision, this in double: centres may differ at the 1e-6 px level.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if not epadu > 0:
        raise ValueError(f"epadu must be > 0 [electrons per data unit], got {epadu}")
    fp = None
    if footprint is not None:
        fp = np.asarray(footprint, dtype=bool)
        if fp.shape != img.shape:
            raise ValueError(f"footprint has shape {fp.shape}, image has {img.shape}")
    x0 = np.asarray(x, dtype=np.float64).ravel()
    y0 = np.asarray(y, dtype=np.float64).ravel()
    if x0.shape != y0.shape:
        raise ValueError(f"x and y differ in length: {x0.size} and {y0.size}")
    n_src = x0.size
    ny, nx = img.shape
    xc, yc = x0.copy(), y0.copy()
    flag = np.full(n_src, CENTRING_OK, dtype=np.int64)
    if box_px <= 0:
        flag[:] = CENTRING_NO_AREA
        return xc, yc, flag
    width = 2 * int(max(1.0, box_px / 2.0)) + 1
    half = (width - 1) // 2

    reset = ~(np.isfinite(x0) & np.isfinite(y0))  # 101 / 108: the input is returned
    flag[reset] = CENTRING_NO_AREA
    out_of_bounds = np.zeros(n_src, bool)
    low_snr = np.zeros(n_src, bool)
    active = ~reset
    for _ in range(int(max_iter)):
        k = np.flatnonzero(active)
        if k.size == 0:
            break
        ox, oy = xc[k], yc[k]
        c1, c2, off_x = _box_limits(ox, half, nx)
        l1, l2, off_y = _box_limits(oy, half, ny)
        no_area = off_x | off_y
        pix = _gather_boxes(img, fp, c1, l1, width)
        ncol = (c2 - c1 + 1).astype(np.float64)
        nrow = (l2 - l1 + 1).astype(np.float64)
        inside = (np.arange(width)[None, :] < nrow[:, None])[:, :, None] & (
            np.arange(width)[None, :] < ncol[:, None]
        )[:, None, :]
        bad = np.any(inside & ~np.isfinite(pix), axis=(1, 2)) & ~no_area
        stop = no_area | bad
        flag[k[no_area]] = CENTRING_NO_AREA
        flag[k[bad]] = CENTRING_BAD_DATA
        reset[k[stop]] = True
        active[k[stop]] = False
        go = ~stop
        k, ox, oy, c1, l1 = k[go], ox[go], oy[go], c1[go], l1[go]
        pix, inside, ncol, nrow = pix[go], inside[go], ncol[go], nrow[go]
        if k.size == 0:
            break
        out_of_bounds[k] = (ncol < width) | (nrow < width)

        pix = np.where(inside, pix, np.inf)
        dmin = pix.min(axis=(1, 2))
        pix = np.where(inside, np.maximum(pix - dmin[:, None, None], 0.0), 0.0)

        signal = pix.sum(axis=(1, 2))
        noise = np.sqrt(np.abs(signal / epadu) + ncol * nrow * sigma**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.where(signal <= 0.0, 0.0, np.where(noise > 0.0, signal / noise, np.inf))
        low_snr[k] = snr < min_snr

        cxc = ox - c1 + 1.0  # the guess in 1-based box coordinates
        cyc = oy - l1 + 1.0
        bx, indef_x = _marginal_centre(pix.sum(axis=1) / nrow[:, None], ncol, epadu)
        by, indef_y = _marginal_centre(pix.sum(axis=2) / ncol[:, None], nrow, epadu)
        bx = np.clip(np.where(indef_x, cxc, bx), 0.5, ncol + 0.5)
        by = np.clip(np.where(indef_y, cyc, by), 0.5, nrow + 0.5)
        xshift = bx - cxc
        yshift = by - cyc
        # the centre is c1 - 1 + bx (IRAF: guess + shift), which does not depend on the
        # guess' fraction and is an integer when one pixel counts; an axis that did not
        # move (a flat marginal) keeps the guess exactly
        xc[k] = np.where(xshift == 0.0, ox, c1 + (bx - 1.0))
        yc[k] = np.where(yshift == 0.0, oy, l1 + (by - 1.0))
        active[k] = (np.abs(xshift) >= 1.0) | (np.abs(yshift) >= 1.0)

    done = ~reset
    big = (np.abs(xc - x0) > max_shift_px) | (np.abs(yc - y0) > max_shift_px)
    flag[done] = np.select(
        [low_snr[done], big[done], out_of_bounds[done]],
        [CENTRING_LOW_SNR, CENTRING_BIG_SHIFT, CENTRING_OUT_OF_BOUNDS],
        CENTRING_OK,
    )
    xc[reset] = x0[reset]
    yc[reset] = y0[reset]
    return xc, yc, flag
