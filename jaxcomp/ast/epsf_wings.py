"""The local background of a PSF star and the wings of a stacked effective PSF.

Helpers of :func:`jaxcomp.ast.epsf.build_epsf`. The faint wings of an HST PSF (8-15 px
from the centre hold 5-14% of the light) set how much of the light the encircled
energy at 1-4 px is a fraction of, and they are where a stack of a few tens of stars is
least certain: each star's local background is uncertain by a fraction of the
background rms per pixel, and over a 31 x 31 px cutout that adds up to several per cent
of a faint star's flux. So the wings are taken from the stars' pixels with
inverse-variance weights (:func:`weighted_wing_profile`): a star twice as bright counts
four times as much, which an unweighted median stack does not do.
"""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


def plane_background(box: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, float]:
    """Plane ``a + b x + c y`` fitted (3-sigma clipped) to the ``ring`` pixels of ``box``.

    Returns the plane evaluated on the box and the robust rms (MAD) of the kept ring
    pixels about it [the box's unit per pixel].
    """
    ny, nx = box.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    good = ring & np.isfinite(box)
    A = np.column_stack([np.ones(good.sum()), xx[good], yy[good]])
    v = box[good].astype(np.float64)
    keep = np.ones(v.size, bool)
    coef = np.array([np.median(v), 0.0, 0.0])
    s = float("nan")
    for _ in range(5):
        if keep.sum() < 10:
            break
        coef, *_ = np.linalg.lstsq(A[keep], v[keep], rcond=None)
        r = v - A @ coef
        s = 1.4826 * float(np.median(np.abs(r[keep] - np.median(r[keep]))))
        new = np.abs(r) <= 3.0 * max(s, 1e-30)
        if np.array_equal(new, keep):
            break
        keep = new
    return coef[0] + coef[1] * xx + coef[2] * yy, s


def weighted_wing_profile(
    stamps: list[np.ndarray],
    centres: list[tuple[float, float]],
    fluxes: np.ndarray,
    noise: np.ndarray,
    oversampling: int,
    n_bins: int,
    clip_sigma: float = 3.0,
) -> np.ndarray:
    """Azimuthal mean profile of the stars' normalised pixels, inverse-variance weighted.

    Parameters
    ----------
    stamps : list of 2D arrays
        Background-subtracted star cutouts [counts/s per pixel]; NaN pixels (masked
        neighbours) are left out.
    centres : list of (x, y)
        Each star's centre in its cutout [px, pixel centres at integers].
    fluxes : array (N,)
        Each star's flux on the ePSF's scale (the ePSF fit) [counts/s].
    noise : array (N,)
        Each star's background rms per pixel [counts/s].
    oversampling : int
        Bins are ``1 / oversampling`` px wide: bin ``k`` holds the pixels whose centre
        lies at ``rint(d * oversampling) == k`` (``d`` the distance from the star's
        centre in px), as the ePSF's samples at ``k`` samples from its centre.
    n_bins : int
        Number of bins returned (empty bins are 0).
    clip_sigma : float
        Pixels further from the bin's mean than this many times their own noise and the
        bin's robust spread (added in quadrature) are rejected (neighbours' light),
        iterating to convergence.

    Returns
    -------
    numpy.ndarray (n_bins,)
        The profile in ePSF sample units (a pixel's flux / the star's flux): the ePSF at
        distance ``k / oversampling`` px, azimuthally averaged. A pixel of a star with flux
        ``F`` and noise ``s`` has weight ``(F / s)^2`` (the background noise dominates the
        wings), so the bright stars set the wings.
    """
    ks, vs, ws = [], [], []
    for stamp, (x, y), f, s in zip(stamps, centres, fluxes, noise):
        if not (f > 0 and s > 0 and np.isfinite(f) and np.isfinite(s)):
            continue
        yy, xx = np.mgrid[0 : stamp.shape[0], 0 : stamp.shape[1]]
        k = np.rint(np.hypot(xx - x, yy - y) * oversampling).astype(np.int64).ravel()
        inside = (k < n_bins) & np.isfinite(stamp.ravel())  # NaN: masked (a neighbour's light)
        ks.append(k[inside])
        vs.append(stamp.ravel()[inside] / f)
        ws.append(np.full(int(inside.sum()), (f / s) ** 2))
    if not ks:
        return np.zeros(n_bins)
    k, v, w = np.concatenate(ks), np.concatenate(vs), np.concatenate(ws)
    order = np.argsort(k, kind="stable")
    k, v, w = k[order], v[order], w[order]
    bounds = np.searchsorted(k, np.arange(n_bins + 1))
    keep = np.ones(v.size, bool)
    prof = np.zeros(n_bins)
    for _ in range(10):
        sw = np.bincount(k[keep], w[keep], minlength=n_bins)
        prof = np.bincount(k[keep], (w * v)[keep], minlength=n_bins) / np.where(sw > 0, sw, 1.0)
        r = v - prof[k]
        # a bin's own spread (the profile's slope across a bin 1/oversampling px wide) is
        # no outlier: the allowance is the pixel's noise and the bin's robust spread
        spread = np.zeros(n_bins)
        for j in range(n_bins):
            rj = r[bounds[j] : bounds[j + 1]][keep[bounds[j] : bounds[j + 1]]]
            if rj.size:
                spread[j] = 1.4826 * float(np.median(np.abs(rj)))
        new = np.abs(r) <= clip_sigma * np.sqrt(1.0 / w + spread[k] ** 2)
        if np.array_equal(new, keep):
            break
        keep = new
    return prof


def clean_wings(
    img: np.ndarray, oversampling: int, wing_snr: float, profile: np.ndarray | None = None
) -> np.ndarray:
    """Replace the noisy wings of a stacked ePSF by an azimuthal mean profile, >= 0.

    The renderer clips negative PSF samples to zero, so sample noise in the wings of a
    stack of a few tens of stars would add a positive pedestal. The sample noise ``s``
    is estimated (MAD) from the residuals about the stack's azimuthal mean profile
    ``P(r)`` (annuli 1 sample wide) in the outer half of the image; samples are kept as
    stacked inside the radius where ``P`` first falls below ``wing_snr * s`` (the core,
    with its real structure) and replaced outside by ``profile`` (by default ``P``),
    clipped at zero, out to the image's corners (a star cutout's corners hold light
    too: 0.7-1.4% of an HST PSF's inside a 31 px square).
    """
    n = img.shape[0]
    c = (n - 1) / 2.0
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    rr = np.hypot(xx - (img.shape[1] - 1) / 2.0, yy - c)
    k = np.rint(rr).astype(int)
    counts = np.bincount(k.ravel())
    prof = np.bincount(k.ravel(), img.ravel()) / np.maximum(counts, 1)
    resid = img - prof[k]
    outer = rr >= 0.5 * min(img.shape) / 2.0
    s = (
        1.4826 * float(np.median(np.abs(resid[outer] - np.median(resid[outer]))))
        if outer.any()
        else 0.0
    )
    if not s > 0:
        return img
    radii = np.arange(prof.size)
    faint = np.nonzero((prof < wing_snr * s) & (radii > oversampling))[0]
    r_core = int(faint[0]) if faint.size else prof.size
    wing = prof if profile is None else np.resize(np.asarray(profile, float), prof.size)
    if profile is not None and len(profile) < prof.size:
        wing[len(profile) :] = 0.0
    wing = np.clip(wing, 0.0, None)
    out = np.where(k < r_core, img, wing[k])
    return np.clip(out, 0.0, None)
