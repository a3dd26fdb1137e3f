"""Step 1 of the catalogue pipeline: the LEGUS white-light image.

Per band, subtract the median over the footprint (:func:`band_medians`, using the
exact, partition-based :func:`fast_median`) and clip negatives at zero; combine the
bands with the weighted quadrature sum of paper eq. 19,
``I = sqrt(sum (f'/s)^2) / sqrt(sum 1/s^2)``, for each of the two scale-factor sets of
Table 1 (:data:`jaxcomp.ast.settings.WHITE_LIGHT_SCALES`: 21 Myr and RGB), and average
the two (:func:`white_light`).

See ``docs/architecture.md`` for the pipeline's steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..catalogues import BANDS
from .settings import WHITE_LIGHT_SCALES

__all__ = ["WHITE_LIGHT_SCALES", "band_medians", "fast_median", "white_light"]


def fast_median(values: np.ndarray) -> float:
    """Exact median of an array (as ``np.median``, same dtype), without sorting it all.

    A strided sample brackets the median; one pass counts the values below the bracket
    and extracts those inside, and a partition of that small subset gives the exact
    order statistic(s). Falls back to ``np.median`` if the bracket misses.
    """
    a = np.asarray(values).ravel()
    n = a.size
    if n < 200_000 or not np.issubdtype(a.dtype, np.floating):
        return np.median(a)
    step = max(1, n // 200_000)
    sample = np.sort(a[::step])
    ns = sample.size
    if np.isnan(sample[-1]):
        return np.median(a)
    k = ns // 2
    d = int(6 * math.sqrt(ns)) + 2 * step
    lo_v, hi_v = sample[max(k - d, 0)], sample[min(k + d, ns - 1)]
    below = np.count_nonzero(a < lo_v)
    inside = a[(a >= lo_v) & (a <= hi_v)]
    ranks = [(n - 1) // 2, n // 2]
    if not all(below <= r < below + inside.size for r in ranks):
        return np.median(a)
    rel = sorted({r - below for r in ranks})
    part = np.partition(inside, rel)
    vals = np.array([part[r - below] for r in ranks], dtype=a.dtype)
    return vals.mean(dtype=a.dtype) if ranks[0] != ranks[1] else vals[0]


def band_medians(
    images: Mapping[str, np.ndarray], footprint: np.ndarray | None = None, bands=BANDS
) -> dict[str, np.float32]:
    """Median of each band's image over the footprint (what :func:`white_light` subtracts)."""
    full = footprint is None or bool(footprint.all())
    return {
        b: np.float32(
            fast_median(images[b]) if full else fast_median(np.asarray(images[b])[footprint])
        )
        for b in bands
    }


def white_light(
    images: Mapping[str, np.ndarray],
    footprint: np.ndarray | None = None,
    scales: Mapping[str, Mapping[str, float]] = WHITE_LIGHT_SCALES,
    *,
    medians: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The LEGUS white-light image (paper appendix A, eq. 19), float32.

    For each band ``f' = max(f - median(f), 0)`` with the median over the footprint
    (or the given ``medians``, e.g. those of the whole frame when ``images`` are a
    window of it); for each scale set ``I_set = sqrt(sum_b (f'_b / s_b)^2) / sqrt(sum_b s_b^-2)``;
    the result is the mean of the sets. Pixels outside the footprint are 0.
    """
    bands = list(next(iter(scales.values())))
    shape = np.shape(images[bands[0]])
    if footprint is None:
        footprint = np.ones(shape, bool)
    full = bool(footprint.all())
    if medians is None:
        meds = band_medians(images, footprint, bands)
    else:
        missing = [b for b in bands if b not in medians]
        if missing:
            raise ValueError(f"medians lacks band(s) {missing}")
        meds = {b: np.float32(medians[b]) for b in bands}
    names = list(scales)
    coef = {name: {b: np.float32(1.0 / scales[name][b] ** 2) for b in bands} for name in names}
    norm = {
        name: np.float32(
            1.0 / (math.sqrt(sum(1.0 / scales[name][b] ** 2 for b in bands)) * len(names))
        )
        for name in names
    }
    out = np.empty(shape, np.float32)
    ny = shape[0]
    rows = max(1, 262_144 // max(shape[1], 1))  # ~1 MB float32 chunks stay in cache
    for r0 in range(0, ny, rows):
        sl = slice(r0, min(ny, r0 + rows))
        acc = {name: None for name in names}
        for b in bands:
            fp = np.subtract(images[b][sl], meds[b], dtype=np.float32)
            np.maximum(fp, 0, out=fp)
            np.square(fp, out=fp)
            for name in names:
                if acc[name] is None:
                    acc[name] = fp * coef[name][b]
                else:
                    acc[name] += fp * coef[name][b]
        o = out[sl]
        o[...] = 0
        for name in names:
            np.sqrt(acc[name], out=acc[name])
            acc[name] *= norm[name]
            o += acc[name]
        if not full:
            o[~footprint[sl]] = 0
    return out
