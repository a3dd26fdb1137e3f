"""Rendering the mock's images: sources, stars and diffuse light, plus tiled seeded noise.

Part of the mock field (:mod:`jaxcomp.ast.mock`, where the recipe is): :func:`render_mock`
adds the real sources (:mod:`jaxcomp.ast.mock_real_sources`), the field stars
(:mod:`jaxcomp.ast.mock_stars`) and the diffuse light (:mod:`jaxcomp.ast.mock_diffuse`) on a
window of a pointing's frame and draws the noise per fixed 256 x 256 px tile, so any window is
the same pixels as the corresponding part of the full frame. The noise has the pixel-to-pixel
covariance of a drizzled frame (:mod:`jaxcomp.ast.drizzle_noise`): white normals filtered with
each band's drizzle-drop filter, keeping the per-pixel variance.
"""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

import numpy as np

from ..catalogues import BANDS
from ._threads import single_threaded_blas
from .drizzle_noise import band_drop_size_px, correlate_normals, drizzle_noise_filter
from .field import PIXEL_SCALE_ARCSEC
from .mock_diffuse import _OLD_COLOURS, _YOUNG_COLOURS, _diffuse_window
from .mock_frame import _catalogue_arrays, _check_window
from .mock_real_sources import _sources_arrays
from .mock_stars import _stars_arrays
from .pointing import (
    MOCK_NOISE_CORRELATION,
    MockPointing,
    NoiseCorrelation,
    background_rates,
    mock_pointing,
    mock_psfs,
)
from .profiles import add_stamps, point_source_stamps, render_multiband

__all__ = ["MOCK_READ_NOISE_E", "NoiseCorrelation", "render_mock"]

#: Read-noise floor per drizzled pixel [e-].
MOCK_READ_NOISE_E: float = 5.0
_TILE = 256


def _add_point_sources(images: dict, x, y, rates: dict, psfs: dict, origin: tuple[int, int]):
    """Add point sources (the band's PSF, :func:`~jaxcomp.ast.profiles.point_source_stamps`)."""
    if x.size == 0:
        return
    y0, x0 = origin
    for b, img in images.items():
        st = point_source_stamps(x, y, psfs[b])
        add_stamps(
            img, [replace(st, data=st.data * rates[b][:, None, None], ix=st.ix - x0, iy=st.iy - y0)]
        )


def _add_eff_sources(
    images: dict, x, y, rates: dict, r_eff_px, psfs: dict, origin: tuple[int, int], chunk: int = 64
):
    """Add PSF-convolved EFF clusters, radius group by radius group (sorted), in index order."""
    y0, x0 = origin
    psfs = {b: psfs[b] for b in images}
    for r in np.unique(r_eff_px):
        idx = np.nonzero(r_eff_px == r)[0]
        for k in range(0, idx.size, chunk):
            sel = idx[k : k + chunk]
            stamps = render_multiband(
                x[sel], y[sel], {b: rates[b][sel] for b in images}, float(r), psfs
            )
            for b, img in images.items():
                add_stamps(img, [replace(s, ix=s.ix - x0, iy=s.iy - y0) for s in stamps[b]])


def render_mock(
    window: tuple[int, int, int, int],
    seed: int = 0,
    bands=BANDS,
    *,
    background_rate: dict | None = None,
    noise: bool = True,
    sources: bool = True,
    stars: bool = True,
    diffuse: bool = True,
    margin: int = 140,
    pointing: str = "ngc628c",
    noise_correlation: NoiseCorrelation = MOCK_NOISE_CORRELATION,
) -> dict[str, np.ndarray]:
    """Render bands of the mock on ``window = (y0, y1, x0, x1)`` of the full frame.

    Returns ``{band: float32 image}`` in counts/s (sky-subtracted). ``background_rate``
    overrides the calibrated effective backgrounds (used by the calibration); the
    switches drop components (for tests and diagnostics). Any window gives the same
    pixels as the corresponding part of the full frame (bit for bit: every source is
    rendered whole and added in a fixed order, the noise is drawn per fixed tile). ``pointing``
    chooses the frame (:mod:`jaxcomp.ast.pointing`). ``noise_correlation`` chooses the noise's
    pixel-to-pixel covariance (:data:`NoiseCorrelation`); the per-pixel variance is the same.
    """
    if noise_correlation not in get_args(NoiseCorrelation):
        allowed = " or ".join(repr(v) for v in get_args(NoiseCorrelation))
        raise ValueError(f"noise_correlation must be {allowed}, got {noise_correlation!r}")
    with single_threaded_blas():
        return _render_mock(
            window,
            seed,
            bands,
            background_rate=background_rate,
            noise=noise,
            sources=sources,
            stars=stars,
            diffuse=diffuse,
            margin=margin,
            pointing=mock_pointing(pointing),
            noise_correlation=noise_correlation,
        )


def _render_mock(
    window,
    seed,
    bands,
    *,
    background_rate,
    noise,
    sources,
    stars,
    diffuse,
    margin,
    pointing,
    noise_correlation,
):
    p: MockPointing = pointing
    zp = p.zeropoints
    y0, y1, x0, x1 = _check_window(window, p.name)
    bands = tuple(bands)
    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise ValueError(f"unknown band(s) {unknown}")
    shape = (y1 - y0, x1 - x0)
    # float32 accumulation, processed in strips of _TILE rows: ~1 GB for the full 5-band frame
    model = {b: np.zeros(shape, np.float32) for b in bands}
    if diffuse:
        for ya in range(y0, y1, _TILE):
            yb = min(y1, ya + _TILE)
            old, young = _diffuse_window(ya, yb, x0, x1, p.name)
            for b in bands:
                dz = zp[b] - zp["F555W"]
                model[b][ya - y0 : yb - y0] += old * 10.0 ** (
                    -0.4 * (_OLD_COLOURS[b] - dz)
                ) + young * 10.0 ** (-0.4 * (_YOUNG_COLOURS[b] - dz))
    psfs = mock_psfs(p)
    if sources:
        cat = _catalogue_arrays(p.name)
        src = _sources_arrays(p.name)
        x, y = cat["x"], cat["y"]
        near = (x > x0 - margin) & (x < x1 + margin) & (y > y0 - margin) & (y < y1 + margin)
        if near.any():
            rates = {b: 10.0 ** (-0.4 * (src["mags"][b][near] - zp[b])) for b in bands}
            _add_eff_sources(model, x[near], y[near], rates, src["r_eff_px"][near], psfs, (y0, x0))
    if stars:
        s = _stars_arrays(int(seed), p.name)
        near = (s["x"] > x0 - 20) & (s["x"] < x1 + 20) & (s["y"] > y0 - 20) & (s["y"] < y1 + 20)
        if near.any():
            rates = {b: 10.0 ** (-0.4 * (s["mags"][b][near] - zp[b])) for b in bands}
            _add_point_sources(model, s["x"][near], s["y"][near], rates, psfs, (y0, x0))
    if noise:
        bkg = background_rates(p) if background_rate is None else background_rate
        for b in bands:
            t = p.exptimes[b]
            floor = np.float32(float(bkg[b]) / t + (MOCK_READ_NOISE_E / t) ** 2)
            img = model[b]
            h = (
                drizzle_noise_filter(band_drop_size_px(b, PIXEL_SCALE_ARCSEC))
                if noise_correlation == "drizzle"
                else np.ones(1)
            )
            for ya, yb, z in _filtered_tile_normals(
                seed, BANDS.index(b), (y0, y1, x0, x1), p.seed_key, h
            ):
                strip = img[ya - y0 : yb - y0]
                strip += np.sqrt(np.maximum(strip, 0) * np.float32(1.0 / t) + floor) * z
    return model


def _filtered_tile_normals(
    seed: int, band_index: int, window: tuple[int, int, int, int], key: tuple[int, ...], h
):
    """Yield ``(ya, yb, z)``: the window's rows ``[ya, yb)`` of the frame's white normals
    (:func:`_tile_normals`) filtered with ``h`` along both axes
    (:func:`~jaxcomp.ast.drizzle_noise.correlate_normals`); pixel ``(y, x)`` uses the frame's
    normals at ``[y, y + len(h)) x [x, x + len(h))``, so every window sees the same noise."""
    y0, y1, x0, x1 = window
    m = len(h)
    if m == 1:
        yield from _tile_normals(seed, band_index, y0, y1, x0, x1, key)
        return
    buf, buf_y = None, y0
    for _, yb, z in _tile_normals(seed, band_index, y0, y1 + m - 1, x0, x1 + m - 1, key):
        buf = z if buf is None else np.concatenate([buf, z])
        end = min(y1, yb - m + 1)  # rows whose filter support is complete
        if end > buf_y:
            n = end - buf_y
            yield buf_y, end, correlate_normals(buf[: n + m - 1], h)
            buf, buf_y = buf[n:], end


def _tile_normals(
    seed: int, band_index: int, y0: int, y1: int, x0: int, x1: int, key: tuple[int, ...] = ()
):
    """Yield ``(ya, yb, z)``: standard normals of the window's rows ``[ya, yb)``, one strip of
    256 x 256 px tiles of the full frame at a time (each tile has its own seed)."""
    for ty in range(y0 // _TILE, (y1 - 1) // _TILE + 1):
        ya, yb = max(y0, ty * _TILE), min(y1, (ty + 1) * _TILE)
        out = np.empty((yb - ya, x1 - x0), np.float32)
        for tx in range(x0 // _TILE, (x1 - 1) // _TILE + 1):
            rng = np.random.default_rng(
                np.random.SeedSequence(int(seed), spawn_key=(2, band_index, ty, tx, *key))
            )
            tile = rng.standard_normal((_TILE, _TILE), dtype=np.float32)
            xa, xb = max(x0, tx * _TILE), min(x1, (tx + 1) * _TILE)
            out[:, xa - x0 : xb - x0] = tile[
                ya - ty * _TILE : yb - ty * _TILE, xa - tx * _TILE : xb - tx * _TILE
            ]
        yield ya, yb, out
