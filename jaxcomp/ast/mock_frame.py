"""The mock's frame: its size, WCS and windows (crops), and the LEGUS catalogue on its pixels.

Part of the mock field (:mod:`jaxcomp.ast.mock`, where the recipe is): the full frame of a
pointing (:mod:`jaxcomp.ast.pointing`), checking and resolving the windows a mock is rendered
on (``"small"``: the busiest region, ``"legus"``: the full frame, ``(ny, nx)`` or an explicit
``(y0, y1, x0, x1)``), and the pointing's LEGUS catalogue as arrays in 0-based frame pixels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..catalogues import BANDS
from .pointing import MOCK_POINTINGS, mock_pointing

__all__ = ["MOCK_SHAPE", "SMALL_SHAPE", "NUCLEUS_PX", "mock_wcs", "small_window"]

_C = MOCK_POINTINGS["ngc628c"]
#: Shape (ny, nx) of the full ("legus") NGC 628C mock frame [px] (other pointings:
#: :attr:`MockPointing.shape`).
MOCK_SHAPE: tuple[int, int] = _C.shape
#: Shape of the small laptop crop [px].
SMALL_SHAPE: tuple[int, int] = (1500, 1500)
#: Nucleus of NGC 628 (RA 01:36:41.745, Dec +15:47:01.18) in NGC 628C mock pixels (x, y), 0-based.
NUCLEUS_PX: tuple[float, float] = _C.nucleus_px


def mock_wcs(window: tuple[int, int, int, int] | None = None, pointing: str = "ngc628c"):
    """The TAN WCS of the full mock frame (fitted to the LEGUS catalogue), or of a window of it."""
    return mock_pointing(pointing).wcs(window)


def _check_window(window, pointing: str = "ngc628c") -> tuple[int, int, int, int]:
    try:
        y0, y1, x0, x1 = (int(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (y0, y1, x0, x1) integers, got {window!r}") from None
    ny, nx = mock_pointing(pointing).shape
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise ValueError(f"window {window} is not inside the {ny} x {nx} mock frame")
    if min(y1 - y0, x1 - x0) < 64:
        raise ValueError(f"window {window} is too small: the mock needs at least 64 x 64 px")
    return y0, y1, x0, x1


@lru_cache(maxsize=None)
def _busy_centre(
    shape: tuple[int, int] = SMALL_SHAPE, pointing: str = "ngc628c"
) -> tuple[int, int]:
    """Centre (y, x) of the ``shape`` window holding the most class 1-3 clusters (50 px grid)."""
    src = _catalogue_arrays(pointing)
    keep = np.isin(src["class_mode"], (1, 2, 3))
    x, y = src["x"][keep], src["y"][keep]
    ny, nx = mock_pointing(pointing).shape
    h, w = shape
    best = (-1, 0, 0)
    for y0 in range(0, ny - h + 1, 50):
        iny = (y >= y0) & (y < y0 + h)
        xs = x[iny]
        for x0 in range(0, nx - w + 1, 50):
            n = int(np.count_nonzero((xs >= x0) & (xs < x0 + w)))
            if n > best[0]:
                best = (n, y0, x0)
    return best[1] + h // 2, best[2] + w // 2


def small_window(
    shape: tuple[int, int] = SMALL_SHAPE, pointing: str = "ngc628c"
) -> tuple[int, int, int, int]:
    """The ``shape`` crop centred on the busiest region (most class 1-3 clusters in 1500 x 1500
    px) of a pointing's frame."""
    cy, cx = _busy_centre(SMALL_SHAPE, mock_pointing(pointing).name)
    h, w = (int(shape[0]), int(shape[1]))
    ny, nx = mock_pointing(pointing).shape
    if h > ny or w > nx:
        raise ValueError(f"a {h} x {w} crop does not fit in the {ny} x {nx} mock frame")
    y0 = min(max(cy - h // 2, 0), ny - h)
    x0 = min(max(cx - w // 2, 0), nx - w)
    return (y0, y0 + h, x0, x0 + w)


def _resolve_size(size, window, pointing: str = "ngc628c") -> tuple[int, int, int, int]:
    if window is not None:
        return _check_window(window, pointing)
    if isinstance(size, str):
        key = size.lower()
        if key == "legus":
            ny, nx = mock_pointing(pointing).shape
            return (0, ny, 0, nx)
        if key == "small":
            return small_window(SMALL_SHAPE, pointing)
        raise ValueError(f"size must be 'small', 'legus' or (ny, nx), got {size!r}")
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be 'small', 'legus' or (ny, nx), got {size!r}") from None
    return _check_window(small_window((h, w), pointing), pointing)


@lru_cache(maxsize=2)
def _catalogue_arrays(pointing: str = "ngc628c") -> dict:
    from ..catalogues import read_legus

    t = read_legus(mock_pointing(pointing).name, classes=None)
    out = {
        "id": np.asarray(t["id"], np.int64),
        "class_mode": np.asarray(t["class_mode"], np.int64),
        "x": np.asarray(t["x_px"], np.float64) - 1.0,
        "y": np.asarray(t["y_px"], np.float64) - 1.0,
        "ra_deg": np.asarray(t["ra_deg"], np.float64),
        "dec_deg": np.asarray(t["dec_deg"], np.float64),
        "ci_F555W": np.asarray(t["ci_F555W"], np.float64),
    }
    for b in BANDS:
        out[f"mag_{b}_cat"] = np.asarray(t[f"mag_{b}"].filled(np.nan), np.float64)
        out[f"in_footprint_{b}"] = np.asarray(t[f"in_footprint_{b}"], bool)
        out[f"detected_{b}"] = np.asarray(t[f"detected_{b}"], bool)
    return out


def _full_or_window(window, pointing: str) -> tuple[int, int, int, int]:
    if window is None:
        ny, nx = mock_pointing(pointing).shape
        return (0, ny, 0, nx)
    return _check_window(window, pointing)
