"""EFF (Elson, Fall & Freeman 1987) cluster profiles, PSF-convolved and pixel-integrated.

The intrinsic surface brightness of an artificial cluster is the EFF profile with
power-law index gamma = 3 (eta = 1.5 in the paper's notation)::

    I(r) = F / (2 pi a^2) * (1 + r^2/a^2)^-1.5

normalised so that its integral over the plane is the total flux ``F``. Its
cumulative flux is ``L(<r) = F [1 - (1 + r^2/a^2)^-1/2]``, so half the light lies
inside ``r^2 = 3 a^2``: the half-light (effective) radius is ``r_eff = a sqrt(3)``
(:func:`eff_core_radius`). The profile is the 2D Poisson kernel, and its integral
over a rectangle has the closed form (the solid angle of a rectangle seen from
height ``a``)::

    int_0^X int_0^Y a / (2 pi (a^2 + x^2 + y^2)^1.5) dx dy
        = atan(X Y / (a sqrt(a^2 + X^2 + Y^2))) / (2 pi)

so every pixel (or sub-pixel) integral of the intrinsic profile is exact
(:func:`eff_box_fraction`).

Rendering (:func:`render_stamps`), for each cluster at a sub-pixel position:

1. *Core* (a box of half-size ``core_radius_px`` around the cluster's pixel):
   exact intrinsic fluxes of ``oversample`` x ``oversample`` sub-pixels, then
   convolution with the band's PSF and integration over the output pixels.
   For a Gaussian PSF the two steps are one separable linear map, built from
   the analytic pixel-integrated Gaussian (differences of the normal CDF)
   evaluated at the sub-pixel centres; its columns are normalised to one, so
   the core keeps its exact intrinsic flux (the PSF spills it into a padding
   ring of ``ceil(5 sigma)`` px, which the stamp contains). For a PSF image
   (an effective PSF, i.e. already integrated over pixels, sampled at
   ``oversampling`` points per pixel) the ePSF is interpolated onto the
   sub-pixel grid, normalised, convolved (FFT) and sampled at the pixel centres.
2. *Halo* (the rest of the stamp): exact intrinsic pixel integrals. Beyond
   ``core_radius_px`` (>= 12 px, >= 12 sigma) the PSF changes the smooth EFF
   wings by < 1% locally and not at all in total.
3. Nothing is rendered beyond the stamp; the stamp holds exactly the flux that
   falls inside it (the pixel values are the true ones, not renormalised), and
   the flux fraction outside is returned. The default stamp half-size is
   ``max(core + padding, ceil(20 a))`` px capped at 128 px, which keeps >= 95%
   of the light (the EFF gamma=3 wings fall as r^-3 and hold a fraction
   ``a / sqrt(a^2 + R^2)`` beyond radius R).

The PSF model itself (:class:`PSFModel`, :func:`as_psf`, :func:`check_psf_image`) lives in
:mod:`jaxcomp.ast.psf_model` and is re-exported here.

Pixel convention: pixel ``(row j, column i)`` covers ``[i - 0.5, i + 0.5] x
[j - 0.5, j + 0.5]`` (numpy/photutils, 0-based); ``x`` is the column coordinate.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import ndtr

from ..survey import NGC628_DISTANCE_MODULUS, PIXEL_SCALE_ARCSEC
from .psf_model import FWHM_TO_SIGMA, PSFModel, as_psf, check_psf_image

__all__ = [
    "FWHM_TO_SIGMA",
    "PSFModel",
    "as_psf",
    "pc_per_pixel",
    "reff_pc_to_px",
    "eff_core_radius",
    "eff_enclosed_fraction",
    "eff_box_fraction",
    "eff_pixel_grid",
    "Stamps",
    "render_stamps",
    "render_multiband",
    "default_stamp_half_size",
    "add_stamps",
    "point_source_stamps",
    "check_psf_image",
]

_ARCSEC_PER_RAD = 180.0 * 3600.0 / math.pi


def pc_per_pixel(pixel_scale_arcsec: float, distance_modulus: float) -> float:
    """Physical size of one pixel [pc] (distance from the distance modulus)."""
    distance_pc = 10.0 ** (1.0 + distance_modulus / 5.0)
    return distance_pc * pixel_scale_arcsec / _ARCSEC_PER_RAD


def reff_pc_to_px(
    r_eff_pc,
    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC,
    distance_modulus: float = NGC628_DISTANCE_MODULUS,
):
    """Convert an effective radius from pc to pixels (NGC 628C: 1.902 pc/px)."""
    return np.asarray(r_eff_pc, dtype=np.float64) / pc_per_pixel(
        pixel_scale_arcsec, distance_modulus
    )


def eff_core_radius(r_eff):
    """Core radius ``a`` of the gamma=3 EFF profile with half-light radius ``r_eff`` (a = r_eff/sqrt
    3)."""
    return np.asarray(r_eff, dtype=np.float64) / math.sqrt(3.0)


def eff_enclosed_fraction(r, a):
    """Fraction of the intrinsic EFF (gamma=3) flux inside radius ``r``: 1 - (1 + r^2/a^2)^-1/2."""
    r = np.asarray(r, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - a / np.sqrt(a * a + r * r)
    return np.where(a > 0, out, np.where(r > 0, 1.0, 0.0))


def _corner(X, Y, a):
    """Signed EFF flux fraction of the rectangle [0, X] x [0, Y] (either may be negative)."""
    return np.arctan2(X * Y, a * np.sqrt(a * a + X * X + Y * Y)) / (2.0 * math.pi)


def eff_box_fraction(x0, x1, y0, y1, a):
    """Exact fraction of the intrinsic EFF flux (centred at 0) inside [x0, x1] x [y0, y1].

    Broadcasts over all arguments; ``a = 0`` gives a point source.
    """
    return _corner(x1, y1, a) - _corner(x0, y1, a) - _corner(x1, y0, a) + _corner(x0, y0, a)


def eff_pixel_grid(edges_x: np.ndarray, edges_y: np.ndarray, a) -> np.ndarray:
    """Exact intrinsic EFF fractions of the cells of a grid.

    ``edges_x`` has shape ``(N, nx + 1)`` and ``edges_y`` shape ``(N, ny + 1)``:
    cell edges relative to each of N cluster centres; ``a`` broadcasts to ``(N,)``.
    Returns ``(N, ny, nx)``.
    """
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), (edges_x.shape[0],))[:, None, None]
    G = _corner(edges_x[:, None, :], edges_y[:, :, None], a)
    return G[:, 1:, 1:] - G[:, 1:, :-1] - G[:, :-1, 1:] + G[:, :-1, :-1]


def _gaussian_pixel_matrix(n_out_half: int, sub_centres: np.ndarray, sigma: float) -> np.ndarray:
    """Matrix (n_out, n_sub): flux a unit point at each sub-pixel centre puts in each output pixel.

    Output pixel p covers [p - 0.5, p + 0.5], p = -n_out_half..n_out_half; columns sum to one.
    """
    p = np.arange(-n_out_half, n_out_half + 1, dtype=np.float64)[:, None]
    c = sub_centres[None, :]
    m = ndtr((p + 0.5 - c) / sigma) - ndtr((p - 0.5 - c) / sigma)
    return m / m.sum(axis=0, keepdims=True)


@dataclass(frozen=True)
class Stamps:
    """Rendered cluster stamps of one band.

    ``data[k]`` is a ``(2 R + 1, 2 R + 1)`` array of fluxes (the unit of ``flux``)
    whose centre pixel is image pixel ``(iy[k], ix[k])``; ``outside_fraction[k]`` is
    the fraction of the cluster's flux falling beyond the stamp (not rendered);
    ``index[k]`` is the cluster's position in the input arrays.
    """

    data: np.ndarray
    index: np.ndarray
    ix: np.ndarray
    iy: np.ndarray
    half_size: int
    outside_fraction: np.ndarray


def _default_core_radius(sigma: float) -> int:
    return int(max(12, math.ceil(12.0 * sigma)))


def _psf_padding(psf: PSFModel) -> int:
    """Pixels the PSF spreads the core beyond its box (+1 for the sub-pixel offset)."""
    if psf.is_gaussian:
        return int(math.ceil(5.0 * psf.sigma_px)) + 1
    return int(math.ceil(psf.extent_px / 2.0)) + 1


def default_stamp_half_size(a_px: float, psfs, core_radius_px: int | None = None) -> int:
    """Stamp half-size: core + PSF padding, and at least 20 EFF core radii (<= 128 px)."""
    psfs = [as_psf(p) for p in (psfs if isinstance(psfs, (list, tuple)) else [psfs])]
    sigma = max(p.core_sigma_px for p in psfs)
    core = _default_core_radius(sigma) if core_radius_px is None else int(core_radius_px)
    pad = max(_psf_padding(p) for p in psfs)
    return int(max(core + pad, min(128, math.ceil(20.0 * a_px))))


def render_stamps(
    x: Sequence[float],
    y: Sequence[float],
    flux: Sequence[float],
    r_eff_px: float | Sequence[float],
    psf,
    *,
    oversample: int = 5,
    core_radius_px: int | None = None,
    half_size: int | None = None,
) -> list[Stamps]:
    """Render PSF-convolved, pixel-integrated EFF clusters of one band as stamps.

    Parameters
    ----------
    x, y : array_like (N,)
        Cluster centres in pixel coordinates (0-based, pixel centres at integers).
    flux : array_like (N,)
        Total fluxes (any unit, e.g. counts/s); the stamp values are in that unit.
    r_eff_px : float or array_like (N,)
        Half-light radii of the intrinsic profile in pixels (0 gives a point source).
    psf : float, 2D array or PSFModel
        The band's PSF (see :class:`PSFModel`).
    oversample : int
        Sub-pixels per pixel per axis in the core.
    core_radius_px, half_size : int, optional
        Core half-size and stamp half-size in pixels (defaults: see module docstring).

    Returns
    -------
    list of Stamps
        One entry per distinct radius (``Stamps.index`` maps back to the inputs);
        add them to an image with :func:`add_stamps`.
    """
    flux = np.atleast_1d(np.asarray(flux, dtype=np.float64))
    out = render_multiband(
        x,
        y,
        {"band": flux},
        r_eff_px,
        {"band": psf},
        oversample=oversample,
        core_radius_px=core_radius_px,
        half_size=half_size,
    )
    return out["band"]


def render_multiband(
    x: Sequence[float],
    y: Sequence[float],
    fluxes: dict,
    r_eff_px: float | Sequence[float],
    psfs: dict,
    *,
    oversample: int = 5,
    core_radius_px: int | None = None,
    half_size: int | None = None,
) -> dict[str, list[Stamps]]:
    """Render clusters in several bands at once (the intrinsic halo is shared).

    ``fluxes`` and ``psfs`` map band names to ``(N,)`` flux arrays and PSFs; the
    stamps of all bands share one geometry (half-size from the widest PSF).
    Returns ``{band: [Stamps, ...]}`` (one Stamps per distinct radius).
    """
    bands = list(fluxes)
    if set(bands) != set(psfs):
        raise ValueError(
            f"fluxes and psfs must name the same bands, got {sorted(fluxes)} and {sorted(psfs)}"
        )
    psf_models = {b: as_psf(psfs[b]) for b in bands}
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    flux = {b: np.broadcast_to(np.asarray(fluxes[b], dtype=np.float64), x.shape) for b in bands}
    reff = np.broadcast_to(np.asarray(r_eff_px, dtype=np.float64), x.shape)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1D of the same length, got {x.shape} and {y.shape}")
    if np.any(~np.isfinite(reff)) or np.any(reff < 0):
        raise ValueError("r_eff_px must be finite and >= 0")
    if np.any(~np.isfinite(x)) or np.any(~np.isfinite(y)):
        raise ValueError("cluster positions must be finite")
    if int(oversample) < 1 or int(oversample) % 2 == 0:
        raise ValueError(f"oversample must be a positive odd integer, got {oversample!r}")
    out: dict[str, list[Stamps]] = {b: [] for b in bands}
    for value in dict.fromkeys(reff.tolist()):
        sel = np.nonzero(reff == value)[0]
        shapes, ix, iy, R, outside = _render_group(
            x[sel],
            y[sel],
            float(value),
            [psf_models[b] for b in bands],
            int(oversample),
            core_radius_px,
            half_size,
        )
        for b, shape in zip(bands, shapes):
            shape *= flux[b][sel][:, None, None]
            out[b].append(
                Stamps(data=shape, index=sel, ix=ix, iy=iy, half_size=R, outside_fraction=outside)
            )
    return out


def _render_group(x, y, r_eff_px, psfs: list[PSFModel], k, core_radius_px, half_size):
    """Unit-flux stamps of clusters sharing one radius, for each PSF."""
    a = float(eff_core_radius(r_eff_px))
    sigma = max(p.core_sigma_px for p in psfs)
    core = _default_core_radius(sigma) if core_radius_px is None else int(core_radius_px)
    pad = max(_psf_padding(p) for p in psfs)
    R = default_stamp_half_size(a, psfs, core) if half_size is None else int(half_size)
    if R < core + pad:
        raise ValueError(
            f"stamp half-size {R} px is smaller than core + PSF padding ({core + pad} px)"
        )
    ix = np.rint(x).astype(np.int64)
    iy = np.rint(y).astype(np.int64)
    dx = x - ix  # cluster centre relative to the stamp's centre pixel, in [-0.5, 0.5]
    dy = y - iy

    # Halo: exact intrinsic pixel integrals over the stamp, minus the part inside the
    # core square [-C, C]^2 centred on the cluster (C = core + 1/2).
    C = core + 0.5
    edges = np.arange(-R - 0.5, R + 1.5)
    ex = edges[None, :] - dx[:, None]
    ey = edges[None, :] - dy[:, None]
    halo = eff_pixel_grid(ex, ey, a)
    inside = halo.sum(axis=(1, 2))
    h0, h1 = R - core - 1, R + core + 2  # the pixels that can intersect the core square
    halo[:, h0:h1, h0:h1] -= eff_pixel_grid(
        np.clip(ex[:, h0 : h1 + 1], -C, C), np.clip(ey[:, h0 : h1 + 1], -C, C), a
    )

    # Core: exact intrinsic fluxes of k x k sub-pixels on a grid centred on the cluster
    # (shared by every cluster of the group), convolved with the PSF and integrated over
    # the output pixels p = -(core+pad)..(core+pad) around the stamp centre.
    n_sub = (2 * core + 1) * k
    sub_edges = -C + np.arange(n_sub + 1) / k
    sub = eff_pixel_grid(sub_edges[None, :], sub_edges[None, :], a)[0]
    offsets = 0.5 * (sub_edges[1:] + sub_edges[:-1])
    p0, p1 = R - core - pad, R + core + pad + 1
    shapes = []
    done: dict = {}
    for psf in psfs:
        key = ("g", psf.sigma_px) if psf.is_gaussian else ("i", id(psf))
        if key not in done:
            if psf.is_gaussian:
                My = _gaussian_matrices(core + pad, dy, offsets, psf.sigma_px)
                Mx = _gaussian_matrices(core + pad, dx, offsets, psf.sigma_px)
                n, n_out = My.shape[0], My.shape[1]
                tmp = (My.reshape(n * n_out, n_sub) @ sub).reshape(n, n_out, n_sub)
                conv = np.matmul(tmp, Mx.transpose(0, 2, 1))
            else:
                conv = _convolve_epsf(sub, psf, k, core, pad, dx, dy, (a, k, core))
            stamp = halo.copy()
            stamp[:, p0:p1, p0:p1] += conv
            done[key] = stamp
            shapes.append(stamp)
        else:
            shapes.append(done[key].copy())
    return shapes, ix, iy, R, 1.0 - inside


def _gaussian_matrices(
    n_out_half: int, shift: np.ndarray, offsets: np.ndarray, sigma: float
) -> np.ndarray:
    """(N, n_out, n_sub): flux a unit point at each sub-pixel centre puts in each output pixel.

    Sub-pixel centres sit at ``shift[k] + offsets`` relative to the stamp centre pixel;
    output pixel p covers [p - 0.5, p + 0.5]. The analytic pixel-integrated Gaussian
    (normal CDF differences); each column is normalised to one (flux conservation).
    """
    edges = np.arange(-n_out_half - 0.5, n_out_half + 1.0, dtype=np.float64)[None, :, None]
    c = shift[:, None, None] + offsets[None, None, :]
    cdf = ndtr((edges - c) * (1.0 / sigma))
    m = cdf[:, 1:, :] - cdf[:, :-1, :]
    m /= m.sum(axis=1, keepdims=True)
    return m


_EPSF_KERNELS: "weakref.WeakKeyDictionary[PSFModel, dict]" = weakref.WeakKeyDictionary()


def _epsf_kernel(psf: PSFModel, k: int) -> np.ndarray:
    """The ePSF interpolated (cubic spline) onto a render sub-grid of 1/k px, normalised.

    Cached per PSF object and ``k`` (a field renders every frame with the same PSFs)."""
    cache = _EPSF_KERNELS.setdefault(psf, {})
    kern = cache.get(k)
    if kern is None:
        from scipy.ndimage import map_coordinates

        ov = psf.oversampling
        hy, hx = psf.image.shape[0] // 2, psf.image.shape[1] // 2
        half = math.floor(min(hy, hx) / ov * k)
        offs = np.arange(-half, half + 1) / k * ov  # in PSF-image samples
        yy, xx = np.meshgrid(offs + hy, offs + hx, indexing="ij")
        kern = np.clip(
            map_coordinates(psf.image, [yy, xx], order=3, mode="constant", cval=0.0), 0.0, None
        )
        kern /= kern.sum()
        kern.setflags(write=False)
        cache[k] = kern
    return kern


def _bspline3_weights(t: np.ndarray) -> np.ndarray:
    """Cubic B-spline weights of the 4 samples floor(u)-1 .. floor(u)+2 for fractional parts
    ``t``."""
    t = t[:, None]
    return np.concatenate(
        [
            (1 - t) ** 3 / 6,
            (3 * t**3 - 6 * t**2 + 4) / 6,
            (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6,
            t**3 / 6,
        ],
        axis=1,
    )


#: Convolved cores kept per PSF (one per cluster radius and render grid; a campaign
#: renders a few radii over and over).
_MAX_CORES_PER_PSF: int = 32


def _convolved_core(sub: np.ndarray, psf: PSFModel, k: int, a_key: tuple) -> np.ndarray:
    """B-spline coefficients of the intrinsic sub-pixel fluxes ``sub`` convolved with the ePSF.

    ``sub`` depends only on the cluster radius and the render grid (``a_key``), so the
    result is cached per PSF under that key (read-only, at most
    :data:`_MAX_CORES_PER_PSF` entries, oldest dropped first).
    """
    cache = _EPSF_KERNELS.setdefault(psf, {})
    key = ("core",) + a_key
    coeff = cache.get(key)
    if coeff is None:
        from scipy.ndimage import spline_filter
        from scipy.signal import fftconvolve

        full = fftconvolve(
            sub, _epsf_kernel(psf, k), mode="full"
        )  # sub-grid spacing 1/k, centred on the cluster
        coeff = spline_filter(full, order=3, mode="mirror")
        coeff.setflags(write=False)
        cores = [c for c in cache if isinstance(c, tuple)]
        if len(cores) >= _MAX_CORES_PER_PSF:
            del cache[cores[0]]
        cache[key] = coeff
    return coeff


def _tap_sum(out: np.ndarray, tmp: np.ndarray, views: list, weights: np.ndarray) -> None:
    """``out = 0 + w_0 views_0 + w_1 views_1 + ...``, added left to right (``tmp``: scratch)."""
    np.multiply(views[0], weights[0], out=out)
    np.add(out, 0.0, out=out)  # 0 + x: turns -0.0 into 0.0, exactly as sum() starting at 0
    for view, w in zip(views[1:], weights[1:]):
        np.multiply(view, w, out=tmp)
        np.add(out, tmp, out=out)


def _convolve_epsf(
    sub: np.ndarray,
    psf: PSFModel,
    k: int,
    core: int,
    pad: int,
    dx: np.ndarray,
    dy: np.ndarray,
    a_key: tuple,
) -> np.ndarray:
    """Convolve the (cluster-centred) sub-pixel fluxes with an ePSF and sample the pixels.

    The ePSF, interpolated onto the render sub-grid (:func:`_epsf_kernel`), is convolved
    with the intrinsic sub-pixel fluxes once; since the ePSF already integrates over a
    pixel, the result at offset o is the flux of a pixel centred at o. Each cluster's
    output pixels lie on the sub-grid lattice shifted by its own sub-pixel offset, so they
    are read off with a separable cubic B-spline (one set of 4 weights per axis and
    cluster), then renormalised to the core's exact intrinsic flux.
    """
    coeff = _convolved_core(sub, psf, k, a_key)
    n = coeff.shape[0]
    centre = (n - 1) / 2.0
    n_out = 2 * (core + pad) + 1

    def first_tap(d):
        # output pixel p of a cluster at sub-pixel offset d sits at sub-grid coordinate
        # (p - d) k + centre: pixel i at u0 + i k + frac, with one fraction per cluster
        u = (-(core + pad) - d) * k + centre
        u0 = np.floor(u)
        return u0.astype(np.int64) - 1, _bspline3_weights(u - u0)  # (N,), (N, 4)

    y0, wy = first_tap(dy)
    x0, wx = first_tap(dx)
    # zeros around the coefficients (taps beyond them contribute nothing)
    lo = max(0, -int(min(y0.min(), x0.min())))
    hi = max(0, int(max(y0.max(), x0.max())) + 3 + (n_out - 1) * k + 1 - n)
    padded = np.pad(coeff, ((lo, hi), (lo, hi)))
    span = (n_out - 1) * k + 1
    vals = np.empty((dy.size, n_out, n_out))
    # the 4-tap sums w_0 v_0 + ... + w_3 v_3, accumulated left to right from 0 (as
    # Python's sum() would) in reused buffers: fresh temporaries of this size cost
    # more in allocation than in arithmetic
    rows = np.empty((n_out, padded.shape[1]))  # (n_out, width)
    row_tap = np.empty_like(rows)
    col_tap = np.empty((n_out, n_out))
    for c in range(dy.size):
        r, q = y0[c] + lo, x0[c] + lo
        _tap_sum(rows, row_tap, [padded[r + j : r + j + span : k] for j in range(4)], wy[c])
        _tap_sum(vals[c], col_tap, [rows[:, q + j : q + j + span : k] for j in range(4)], wx[c])
    vals = np.clip(vals, 0.0, None)
    tot = vals.sum(axis=(1, 2))
    scale = np.divide(sub.sum(), tot, out=np.zeros_like(tot), where=tot > 0)
    return vals * scale[:, None, None]


def point_source_stamps(x, y, psf) -> Stamps:
    """Unit-flux, pixel-integrated point sources (stars) at sub-pixel positions.

    A Gaussian PSF is integrated exactly over the pixels (separable differences of the
    normal CDF, half-size ``ceil(6 sigma)``); an effective-PSF image is read off at the
    pixel centres' offsets from each source (cubic interpolation of the oversampled ePSF,
    which already integrates over a pixel), over the image's extent, and renormalised to
    unit flux.
    """
    psf = as_psf(psf)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    ix = np.rint(x).astype(np.int64)
    iy = np.rint(y).astype(np.int64)
    dx = x - ix
    dy = y - iy
    if psf.is_gaussian:
        sigma = psf.sigma_px
        h = int(math.ceil(6.0 * sigma))
        edges = np.arange(-h - 0.5, h + 1.0)
        px = np.diff(ndtr((edges[None, :] - dx[:, None]) / sigma), axis=1)
        py = np.diff(ndtr((edges[None, :] - dy[:, None]) / sigma), axis=1)
        data = py[:, :, None] * px[:, None, :]
    else:
        from scipy.ndimage import map_coordinates

        ov = psf.oversampling
        cy, cx = psf.image.shape[0] // 2, psf.image.shape[1] // 2
        h = int(math.floor(min(cy, cx) / ov))
        p = np.arange(-h, h + 1, dtype=np.float64)
        qy = (p[None, :] - dy[:, None]) * ov + cy
        qx = (p[None, :] - dx[:, None]) * ov + cx
        n = p.size
        coords_y = np.broadcast_to(qy[:, :, None], (x.size, n, n)).ravel()
        coords_x = np.broadcast_to(qx[:, None, :], (x.size, n, n)).ravel()
        vals = map_coordinates(psf.image, [coords_y, coords_x], order=3, mode="constant", cval=0.0)
        data = np.clip(vals.reshape(x.size, n, n), 0.0, None)
        tot = data.sum(axis=(1, 2))
        data = data / np.where(tot > 0, tot, 1.0)[:, None, None]
    return Stamps(
        data=data,
        index=np.arange(x.size),
        ix=ix,
        iy=iy,
        half_size=h,
        outside_fraction=np.zeros(x.size),
    )


def add_stamps(
    image: np.ndarray, rendered, scale: float = 1.0, *, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Add rendered stamps (a list of Stamps) into ``image`` in place, clipped at the edges.

    ``origin`` = ``(y0, x0)``: the stamps' pixel ``(y0, x0)`` is ``image[0, 0]`` (for a
    window of a larger frame); stamps that miss the image are skipped.
    """
    ny, nx = image.shape
    oy, ox = int(origin[0]), int(origin[1])
    for stamps in rendered:
        R = stamps.half_size
        sy = np.asarray(stamps.iy) - R - oy
        sx = np.asarray(stamps.ix) - R - ox
        hits = (sy < ny) & (sy + 2 * R + 1 > 0) & (sx < nx) & (sx + 2 * R + 1 > 0)
        for k in np.flatnonzero(hits[: stamps.data.shape[0]]):
            y0, x0 = int(sy[k]), int(sx[k])
            ya, xa = max(y0, 0), max(x0, 0)
            yb, xb = min(y0 + 2 * R + 1, ny), min(x0 + 2 * R + 1, nx)
            block = stamps.data[k, ya - y0 : yb - y0, xa - x0 : xb - x0]
            image[ya:yb, xa:xb] += block * scale if scale != 1.0 else block
    return image
