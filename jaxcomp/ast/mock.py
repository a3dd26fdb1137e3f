"""The embedded default field: a seeded mock of the LEGUS NGC 628C pointing.

Its job is to make every stage of jaxcomp run, out of the box, on something that
behaves like NGC 628C (``docs/architecture.md``, "The mock field"). It is *not* the real image;
it reuses the real galaxy's structure through the LEGUS catalogue.

Pointings
    The recipe below is written for NGC 628C, the default; the east pointing NGC 628E is made
    the same way (``pointing="ngc628e"`` everywhere): what differs between them - frame, WCS,
    catalogue, nucleus position (the diffuse light is the galaxy's, so E gets the outer disc),
    zeropoints, calibration file and targets, CI cut - is one frozen
    :class:`~jaxcomp.ast.pointing.MockPointing` per pointing (:mod:`jaxcomp.ast.pointing`).
    E's young diffuse light has C's surface brightness per unit source density, and its field
    stars C's number per unit diffuse light (4242 in E's frame); its stars and noise are drawn
    from seed streams of their own.

Recipe (all numbers are module constants, documented where they are defined)
-----------------------------------------------------------------------------
Frame
    The full mock ("legus" size) is ``MOCK_SHAPE = (7040, 6400)`` px (ny, nx) at
    0.0396 arcsec/px: the drizzled frame of the LEGUS NGC628C catalogue, whose sources
    span x = 66..6251, y = 161..6996 (1-based). Its WCS (:func:`mock_wcs`) is a TAN
    projection fitted to the catalogue's (x, y) -> (RA, Dec) (residuals 0.36 px
    median, the catalogue's coordinate rounding), so mock positions are on the sky
    where the real sources are. There is no chip gap and no footprint edge: every
    band covers the whole frame.
Real sources (:func:`mock_truth`)
    All 3080 sources of the LEGUS NGC628C catalogue (every class) at their catalogue
    positions (x - 1, y - 1: 0-based) with their catalogue magnitudes (total Vega
    magnitudes, as delivered, i.e. foreground-extinction corrected). Masked
    magnitudes are filled so that every source has light in every band: the median
    colour m_b - m_F555W of the sources measured in both bands is applied to the
    source's F555W magnitude (F555W is never masked); for a source *inside* the
    band's footprint but *not detected* (99.999) the fill is made at least 0.5 mag
    fainter than the Adamo+2017 50% recovery magnitude of that band. ``filled_<band>``
    flags them (871 in F275W, 783 in F336W, 18 in F435W, 7 in F814W).
    Every source, class 0 and 4 included, is an EFF (gamma = 3) cluster, PSF-convolved
    (:mod:`jaxcomp.ast.profiles`), whose effective radius is chosen so that the
    pipeline's concentration index (m(1 px) - m(3 px) in F555W, noiseless) equals the
    catalogue's ``ci_F555W``. All catalogue sources passed the CI >= 1.4 cut on the
    real images, so rendering class 0/4 as point sources would delete them from any
    mock catalogue; matching the CI keeps each source as extended as LEGUS measured it.
    The radius is interpolated on a grid of 40 radii (0.2 - 12 px, ~10% apart) and
    snapped to the grid; CIs beyond the grid's largest (2.22 mag, 1.3% of the sources)
    get 12 px (22.8 pc). The resulting radii (with the HST PSFs, whose point-source CI is
    1.27 in F555W): median 2.5 pc, 5-95% 1.0-8.9 pc. Sources are noiseless before the image
    noise is added.
Field stars (:func:`mock_field_stars`)
    ``N_STARS`` point sources (the PSF) with m_F555W from a power-law luminosity
    function dN/dm ~ 10^(0.35 m) on [20.5, 28]; 70% young (blue: V-I ~ N(-0.1, 0.15),
    B-V -0.1, U-B -0.9, F275W-F336W -0.3) placed following the young diffuse light,
    30% evolved (red supergiants/AGB: V-I ~ N(1.8, 0.3), B-V 1.5, U-B 1.2,
    F275W-F336W 2.5) following the old disk. A rough stand-in for the resolved stars
    of NGC 628 (crowding and contaminants that fail the CI cut); depends on ``seed``.
Diffuse light
    (i) an old exponential disk, central mu_V = 21.0 mag/arcsec^2, scale length 70
    arcsec (1768 px), face-on, centred on the nucleus (x, y) = (2450.3, 4204.3) px;
    (ii) a bulge, Sersic n = 2, r_e = 12 arcsec (300 px), mu_e,V = 20.0; both with old
    colours (F275W-F336W 1.5, U-B 0.3, B-V 0.8, V-I 1.1); (iii) young diffuse light
    that follows the catalogue's source density smoothed by a Gaussian of 200 pc
    (the spiral arms for free), peak mu_V = 21.5, young colours (F275W-F336W 0.0,
    U-B -0.9, B-V 0.0, V-I 0.3). Seed-independent.
Noise
    Images are sky-subtracted count rates (as drizzled LEGUS frames). Each pixel gets
    Gaussian noise of variance (S + B)/t + (RN/t)^2 [counts/s]^2 with S the noiseless
    model (sources + stars + diffuse light), B the band's effective background and
    RN = 5 e- (a Poisson-like noise with a read-noise floor). B is the *calibrated*
    quantity (``data/mock/ngc628c_mock_noise.json``, written by
    ``scripts/calibrate_mock_noise.py``): it is fitted per band so that classical
    single-band artificial cluster tests on the mock (:mod:`jaxcomp.ast.single_band`)
    reach the Adamo+2017 50% recovery magnitudes. It stands for the sky, dark current,
    read noise of the individual exposures and the unresolved-star background that a
    real drizzled frame has, expressed as one equivalent Poisson background.
    The noise is drawn tile by tile (256 x 256 px tiles, each with its own
    ``SeedSequence(seed, spawn_key=(2, band, tile_y, tile_x))``), so any crop of the
    mock is the same pixels as the corresponding part of the full frame.
PSFs
    The real instruments' effective PSFs at 0.0396"/px (WFC3/UVIS for F275W and F336W,
    ACS/WFC for F435W, F555W and F814W), built from published instrument facts by
    :mod:`jaxcomp.ast.hst_psf` (HST pupil diffraction averaged over the band, the residual
    wavefront error's halo, jitter, native pixel, charge diffusion, drizzle) and stored in
    ``data/mock/ngc628c_mock_psf.fits`` (``scripts/build_mock_psfs.py``; 4 samples per
    pixel, truncated at 0.6" and normalised inside it): :func:`mock_psfs`. One PSF per band
    over the whole frame (the real PSF's variation over the field is not modelled). They
    are not fitted: one recovery magnitude per band constrains one noise parameter.

Sizes: ``make_mock_field("legus")`` is the full 7040 x 6400 frame (0.9 GB of float32
images, ~15 s to render on one core, 2 GB peak memory); ``"small"`` is the 1500 x 1500
px crop holding the most class 1-3 clusters (:func:`small_window`, ~2 s); ``(ny, nx)`` is
a crop of that size centred on the same point; ``window=(y0, y1, x0, x1)`` any crop.

What the LEGUS pipeline makes of it (:func:`compare_with_truth`, final catalogue vs the
placed sources, 3 px; measured 2026-12-01 by ``benchmarks/compare_sextractor.py``): on
the full frame 92% of class 1, 85% of class 1-3 and 73% of class 1-4 sources are
recovered, with 99.2% purity; the real SExtractor with the LEGUS configuration, followed
by the same photometry and cuts, recovers 86% of class 1-3 on the same frame, and 82%
(both) on the small crop.  The real pipeline recovered all of them (that is how they
entered the catalogue); the remaining losses are faint class 3-4 sources on the bright
arms, where the white light keeps the full noise of the diffuse light, and the CI cut
(matching the catalogue CIs with a Gaussian PSF, which lacks the real PSF's wings, takes
more extended EFF profiles, with lower peaks).  (Before the detection threshold was made
global, as SExtractor's is without a weight map, only 45% of class 1-3 came through.)
"""

from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ..catalogues import BANDS
from ._threads import single_threaded_blas
from .field import DISTANCE_MODULUS, PIXEL_SCALE_ARCSEC, Field
from .pointing import (
    MOCK_POINTINGS,
    MOCK_PSF_OVERSAMPLING,
    MockPointing,
    background_rates,
    mock_pointing,
    mock_psf_digest,
    mock_psfs,
)
from .pointing import (
    mock_noise_calibration as _noise_calibration,
)
from .profiles import add_stamps, pc_per_pixel, point_source_stamps, render_multiband
from .truth import compare_with_truth

__all__ = [
    "MOCK_SHAPE",
    "SMALL_SHAPE",
    "MOCK_PSF_OVERSAMPLING",
    "MOCK_PSF_RADIUS_ARCSEC",
    "mock_psfs",
    "MOCK_READ_NOISE_E",
    "NUCLEUS_PX",
    "N_STARS",
    "MockSpec",
    "MockPointing",
    "mock_pointing",
    "mock_psf_digest",
    "mock_wcs",
    "small_window",
    "mock_noise_calibration",
    "mock_sources",
    "mock_field_stars",
    "render_mock",
    "make_mock_field",
    "mock_spec",
    "mock_truth",
    "compare_with_truth",
]

_C = MOCK_POINTINGS["ngc628c"]
#: Shape (ny, nx) of the full ("legus") NGC 628C mock frame [px] (other pointings:
#: :attr:`MockPointing.shape`).
MOCK_SHAPE: tuple[int, int] = _C.shape
#: Shape of the small laptop crop [px].
SMALL_SHAPE: tuple[int, int] = (1500, 1500)
#: Half-size of the mock's effective PSF images [arcsec] (15 px).
MOCK_PSF_RADIUS_ARCSEC: float = 0.6
#: Read-noise floor per drizzled pixel [e-].
MOCK_READ_NOISE_E: float = 5.0
#: Nucleus of NGC 628 (RA 01:36:41.745, Dec +15:47:01.18) in NGC 628C mock pixels (x, y), 0-based.
NUCLEUS_PX: tuple[float, float] = _C.nucleus_px

#: Number of field stars in the full frame (m_F555W in [20.5, 28]).
N_STARS: int = 20000
_STAR_MAG_RANGE = (20.5, 28.0)
_STAR_LF_SLOPE = 0.35  # dlog10 N / dm
_STAR_YOUNG_FRACTION = 0.7
#: colours relative to F555W, blue to red: m_b - m_F555W
_YOUNG_STAR_COLOURS = {"F275W": -1.3, "F336W": -1.0, "F435W": -0.1, "F555W": 0.0}  # V-I drawn
_RED_STAR_COLOURS = {"F275W": 5.2, "F336W": 2.7, "F435W": 1.5, "F555W": 0.0}  # V-I drawn

_ARCSEC2_PX = PIXEL_SCALE_ARCSEC**2  # arcsec^2 per pixel
_DISK_MU0_V = 21.0
_DISK_SCALE_PX = 70.0 / PIXEL_SCALE_ARCSEC
_BULGE_MU_E_V = 20.0
_BULGE_RE_PX = 12.0 / PIXEL_SCALE_ARCSEC
_BULGE_N = 2.0
_YOUNG_PEAK_MU_V = 21.5
_YOUNG_SMOOTH_PC = 200.0
_DIFFUSE_CELL = 8  # px per cell of the young-light map
# colours m_b - m_F555W of the diffuse components (Vega)
_OLD_COLOURS = {
    "F275W": 1.5 + 0.3 + 0.8,
    "F336W": 0.3 + 0.8,
    "F435W": 0.8,
    "F555W": 0.0,
    "F814W": -1.1,
}
_YOUNG_COLOURS = {
    "F275W": 0.0 - 0.9 + 0.0,
    "F336W": -0.9,
    "F435W": 0.0,
    "F555W": 0.0,
    "F814W": -0.3,
}

_TILE = 256
_CI_GRID_PX = np.geomspace(0.2, 12.0, 40)
_NOISE_FILE = ("mock", _C.noise_file)
_NAME_RE = re.compile(r"^(ngc628[ce])-mock:seed=(\d+):window=(\d+),(\d+),(\d+),(\d+)$")


@dataclass(frozen=True)
class MockSpec:
    """What identifies a mock field: the seed, the window ``[y0:y1, x0:x1]`` of the full
    frame and the pointing (:mod:`jaxcomp.ast.pointing`)."""

    seed: int
    window: tuple[int, int, int, int]
    pointing: str = "ngc628c"

    @property
    def name(self) -> str:
        y0, y1, x0, x1 = self.window
        return f"{self.pointing}-mock:seed={self.seed}:window={y0},{y1},{x0},{x1}"

    @property
    def shape(self) -> tuple[int, int]:
        y0, y1, x0, x1 = self.window
        return (y1 - y0, x1 - x0)


# ---------------------------------------------------------------------------------------
# geometry


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


# ---------------------------------------------------------------------------------------
# calibration constants (the files are the pointing's: :mod:`jaxcomp.ast.pointing`)


def mock_noise_calibration(pointing: str = "ngc628c") -> dict:
    """The calibrated noise constants and provenance (``data/mock/<pointing>_mock_noise.json``;
    :func:`jaxcomp.ast.pointing.mock_noise_calibration`)."""
    return _noise_calibration(pointing)


def _background_rates(pointing: str = "ngc628c") -> dict[str, float]:
    return background_rates(pointing)


def _psf_images(pointing: str = "ngc628c") -> dict[str, np.ndarray]:
    """The PSF images of a pointing's mock (``data/mock/<psf_file>``)."""
    from .pointing import _psf_images as images

    return images(mock_pointing(pointing).psf_file)


# ---------------------------------------------------------------------------------------
# real sources


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


@lru_cache(maxsize=2)
def _ci_table(pointing: str = "ngc628c") -> tuple[np.ndarray, np.ndarray]:
    """Noiseless pipeline CI (F555W, mock PSF) of EFF clusters on ``_CI_GRID_PX``."""
    with single_threaded_blas():
        return _ci_table_impl(pointing)


def _ci_table_impl(pointing: str = "ngc628c") -> tuple[np.ndarray, np.ndarray]:
    from .photometry import aperture_photometry
    from .settings import PhotometryConfig

    cfg = PhotometryConfig()
    psf = mock_psfs(pointing)[cfg.ci_band]
    # Only pixels within the 8 px sky annulus enter the CI; one cluster per 100 px cell, so
    # no stamp reaches a neighbour's annulus; two sub-pixel offsets per radius, averaged.
    offs = np.array([0.13, 0.37])
    n = _CI_GRID_PX.size
    cell = 100
    img = np.zeros((2 * cell, n * cell))
    xs = (np.arange(n) + 0.5) * cell
    for j, o in enumerate(offs):
        for k, r in enumerate(_CI_GRID_PX):
            st = render_multiband(
                [xs[k] + o], [(j + 0.5) * cell - o], {"b": [1.0]}, float(r), {"b": psf}
            )["b"]
            add_stamps(img, st)
    xx = np.concatenate([xs + o for o in offs])
    yy = np.concatenate([np.full(n, (j + 0.5) * cell - o) for j, o in enumerate(offs)])
    ph = aperture_photometry(
        {b: img for b in BANDS}, xx, yy, {b: 0.0 for b in BANDS}, {b: 1.0 for b in BANDS}, cfg
    )
    ci = np.asarray(ph["ci"], float).reshape(offs.size, n).mean(axis=0)
    return _CI_GRID_PX.copy(), ci


def _reff_from_ci(ci: np.ndarray, pointing: str = "ngc628c") -> np.ndarray:
    grid, table = _ci_table(pointing)
    if np.any(np.diff(table) <= 0):  # pragma: no cover - a property of the EFF profile
        raise RuntimeError("CI(r_eff) is not monotonic on the grid")
    r = np.interp(ci, table, grid, left=grid[0], right=grid[-1])
    # snap to the grid (nearest in log) so that the sources fall into few radius groups
    k = np.clip(
        np.rint(np.interp(np.log(r), np.log(grid), np.arange(grid.size))).astype(int),
        0,
        grid.size - 1,
    )
    return grid[k]


@lru_cache(maxsize=2)
def _sources_arrays(pointing: str = "ngc628c") -> dict:
    cat = _catalogue_arrays(pointing)
    m50 = mock_pointing(pointing).m50_target
    n = cat["x"].size
    mags = {}
    filled = {}
    mv = cat["mag_F555W_cat"]
    for b in BANDS:
        m = cat[f"mag_{b}_cat"].copy()
        miss = ~np.isfinite(m)
        if miss.any():
            both = np.isfinite(m) & np.isfinite(mv)
            colour = float(np.median(m[both] - mv[both]))
            fill = mv + colour
            undetected = miss & cat[f"in_footprint_{b}"] & ~cat[f"detected_{b}"]
            fill = np.where(undetected, np.maximum(fill, m50[b] + 0.5), fill)
            m[miss] = fill[miss]
        mags[b] = m
        filled[b] = miss
    r_px = _reff_from_ci(cat["ci_F555W"], pointing)
    return {"n": n, "mags": mags, "filled": filled, "r_eff_px": r_px}


def mock_sources(window: tuple[int, int, int, int] | None = None, pointing: str = "ngc628c"):
    """The real LEGUS sources of a pointing (default NGC628C) as placed in its mock (astropy Table).

    Columns: ``id, class_mode, x, y`` (0-based px in the window), ``ra_deg, dec_deg``,
    ``mag_<band>`` (the magnitudes rendered), ``filled_<band>`` (True where the
    catalogue magnitude was masked and filled), ``mag_<band>_cat`` (catalogue, NaN if
    masked), ``ci_F555W`` (catalogue), ``r_eff_px`` and ``r_eff_pc`` (EFF radius
    matching the CI). Only sources whose centre lies inside the window are listed.
    """
    from astropy.table import Column, Table

    cat = _catalogue_arrays(pointing)
    src = _sources_arrays(pointing)
    y0, y1, x0, x1 = _full_or_window(window, pointing)
    x, y = cat["x"], cat["y"]
    keep = (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)
    t = Table()
    t["id"] = cat["id"][keep]
    t["class_mode"] = cat["class_mode"][keep]
    t["x"] = Column(x[keep] - x0, unit="pix", description="0-based x in the field")
    t["y"] = Column(y[keep] - y0, unit="pix", description="0-based y in the field")
    t["ra_deg"] = Column(cat["ra_deg"][keep], unit="deg")
    t["dec_deg"] = Column(cat["dec_deg"][keep], unit="deg")
    for b in BANDS:
        t[f"mag_{b}"] = Column(
            src["mags"][b][keep], unit="mag", description="rendered total Vega magnitude"
        )
        t[f"filled_{b}"] = src["filled"][b][keep]
        t[f"mag_{b}_cat"] = Column(cat[f"mag_{b}_cat"][keep], unit="mag")
    t["ci_F555W"] = Column(cat["ci_F555W"][keep], unit="mag")
    t["r_eff_px"] = Column(src["r_eff_px"][keep], unit="pix")
    t["r_eff_pc"] = Column(
        src["r_eff_px"][keep] * pc_per_pixel(PIXEL_SCALE_ARCSEC, DISTANCE_MODULUS), unit="pc"
    )
    t.meta["window"] = [int(v) for v in (y0, y1, x0, x1)]
    t.meta["pointing"] = mock_pointing(pointing).name
    return t


def _full_or_window(window, pointing: str) -> tuple[int, int, int, int]:
    if window is None:
        ny, nx = mock_pointing(pointing).shape
        return (0, ny, 0, nx)
    return _check_window(window, pointing)


# ---------------------------------------------------------------------------------------
# diffuse light


def _mu_to_rate(mu: float | np.ndarray, band: str = "F555W", pointing: str = "ngc628c"):
    """Surface brightness [mag/arcsec^2] -> counts/s per pixel."""
    zp = mock_pointing(pointing).zeropoints[band]
    return np.power(10.0, -0.4 * (np.asarray(mu) - zp)) * _ARCSEC2_PX


@lru_cache(maxsize=2)
def _young_map(pointing: str = "ngc628c") -> np.ndarray:
    """Young diffuse light in F555W [counts/s/px] on cells of ``_DIFFUSE_CELL`` px (full frame).

    The light follows the pointing's smoothed source density; one source density gives one surface
    brightness in every pointing (NGC 628C's 99.5th percentile is mu_V = ``_YOUNG_PEAK_MU_V``).
    """
    s = _source_density(pointing)
    peak = np.percentile(_source_density("ngc628c"), 99.5)
    return s / peak * float(_mu_to_rate(_YOUNG_PEAK_MU_V, "F555W", pointing))


@lru_cache(maxsize=2)
def _source_density(pointing: str) -> np.ndarray:
    """The catalogue's source counts per ``_DIFFUSE_CELL`` cell, smoothed by
    ``_YOUNG_SMOOTH_PC``."""
    from scipy.ndimage import gaussian_filter

    cat = _catalogue_arrays(pointing)
    c = _DIFFUSE_CELL
    ny, nx = mock_pointing(pointing).shape
    cy, cx = -(-ny // c), -(-nx // c)
    h = np.zeros((cy, cx))
    iy = np.clip((cat["y"] // c).astype(int), 0, cy - 1)
    ix = np.clip((cat["x"] // c).astype(int), 0, cx - 1)
    np.add.at(h, (iy, ix), 1.0)
    sigma_cells = _YOUNG_SMOOTH_PC / pc_per_pixel(PIXEL_SCALE_ARCSEC, DISTANCE_MODULUS) / c
    return gaussian_filter(h, sigma_cells, mode="constant")


def _old_light(yy: np.ndarray, xx: np.ndarray, pointing: str = "ngc628c") -> np.ndarray:
    """Old disk + bulge in F555W [counts/s/px] at pixel centres."""
    nx0, ny0 = mock_pointing(pointing).nucleus_px
    r = np.hypot(xx - nx0, yy - ny0)
    disk = float(_mu_to_rate(_DISK_MU0_V, "F555W", pointing)) * np.exp(-r / _DISK_SCALE_PX)
    bn = 2.0 * _BULGE_N - 1.0 / 3.0
    bulge = float(_mu_to_rate(_BULGE_MU_E_V, "F555W", pointing)) * np.exp(
        -bn * ((r / _BULGE_RE_PX) ** (1.0 / _BULGE_N) - 1.0)
    )
    return disk + bulge


def _lerp_axis(values: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` at fractional indices (clamped at the
    ends)."""
    n = values.shape[axis]
    c = np.clip(coords, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(c).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    f = c - i0
    a = np.take(values, i0, axis=axis)
    b = np.take(values, i1, axis=axis)
    shape = [1] * values.ndim
    shape[axis] = -1
    f = f.reshape(shape)
    return a * (1.0 - f) + b * f


def _diffuse_window(y0, y1, x0, x1, pointing: str = "ngc628c") -> tuple[np.ndarray, np.ndarray]:
    """(old, young) F555W diffuse light [counts/s/px] on the window's pixels."""
    yy = np.arange(y0, y1, dtype=np.float64)[:, None]
    xx = np.arange(x0, x1, dtype=np.float64)[None, :]
    old = _old_light(yy, xx, pointing)
    c = _DIFFUSE_CELL
    gy = (np.arange(y0, y1) + 0.5) / c - 0.5  # cell-centre coordinates of the pixel centres
    gx = (np.arange(x0, x1) + 0.5) / c - 0.5
    young = _lerp_axis(_lerp_axis(_young_map(pointing), gy, 0), gx, 1)
    return old, young


# ---------------------------------------------------------------------------------------
# field stars


def _n_stars(pointing: str) -> int:
    """``N_STARS`` in NGC 628C; elsewhere scaled by the pointing's young and old light (the same
    stars per unit diffuse light as in C)."""
    if pointing == "ngc628c":
        return N_STARS
    total = {}
    for p in ("ngc628c", pointing):
        ym = _young_map(p)
        c = _DIFFUSE_CELL
        gy = (np.arange(ym.shape[0]) + 0.5) * c - 0.5
        gx = (np.arange(ym.shape[1]) + 0.5) * c - 0.5
        total[p] = (ym.sum(), _old_light(gy[:, None], gx[None, :], p).sum())
    f = _STAR_YOUNG_FRACTION
    yc, oc = total["ngc628c"]
    yp, op = total[pointing]
    return int(round(N_STARS * (f * yp / yc + (1.0 - f) * op / oc)))


@lru_cache(maxsize=8)
def _stars_arrays(seed: int, pointing: str = "ngc628c") -> dict:
    pt = mock_pointing(pointing)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(3, *pt.seed_key)))
    n = _n_stars(pt.name)
    lo, hi = _STAR_MAG_RANGE
    # inverse CDF of dN/dm ~ 10^(a m) on [lo, hi]
    a = _STAR_LF_SLOPE * math.log(10.0)
    u = rng.random(n)
    mv = np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a
    young = rng.random(n) < _STAR_YOUNG_FRACTION
    c = _DIFFUSE_CELL
    ym = _young_map(pt.name)
    cy, cx = ym.shape
    gy = (np.arange(cy) + 0.5) * c - 0.5
    gx = (np.arange(cx) + 0.5) * c - 0.5
    om = _old_light(gy[:, None], gx[None, :], pt.name)
    x = np.empty(n)
    y = np.empty(n)
    for sel, dens in ((young, ym), (~young, om)):
        p = dens.ravel() / dens.sum()
        cells = rng.choice(p.size, size=int(sel.sum()), p=p)
        x[sel] = (cells % cx) * c + rng.random(cells.size) * c - 0.5
        y[sel] = (cells // cx) * c + rng.random(cells.size) * c - 0.5
    vi = np.where(young, rng.normal(-0.1, 0.15, n), rng.normal(1.8, 0.3, n))
    mags = {"F555W": mv, "F814W": mv - vi}
    for b in ("F275W", "F336W", "F435W"):
        mags[b] = mv + np.where(young, _YOUNG_STAR_COLOURS[b], _RED_STAR_COLOURS[b])
    inside = (x > -0.5) & (x < pt.shape[1] - 0.5) & (y > -0.5) & (y < pt.shape[0] - 0.5)
    return {
        "x": x[inside],
        "y": y[inside],
        "young": young[inside],
        "mags": {b: mags[b][inside] for b in BANDS},
    }


def mock_field_stars(
    seed: int = 0, window: tuple[int, int, int, int] | None = None, pointing: str = "ngc628c"
):
    """The field stars of the mock with ``seed`` (astropy Table: x, y, young, mag_<band>)."""
    from astropy.table import Table

    s = _stars_arrays(int(seed), mock_pointing(pointing).name)
    y0, y1, x0, x1 = _full_or_window(window, pointing)
    keep = (s["x"] >= x0 - 0.5) & (s["x"] < x1 - 0.5) & (s["y"] >= y0 - 0.5) & (s["y"] < y1 - 0.5)
    t = Table({"x": s["x"][keep] - x0, "y": s["y"][keep] - y0, "young": s["young"][keep]})
    for b in BANDS:
        t[f"mag_{b}"] = s["mags"][b][keep]
    return t


# ---------------------------------------------------------------------------------------
# rendering


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
) -> dict[str, np.ndarray]:
    """Render bands of the mock on ``window = (y0, y1, x0, x1)`` of the full frame.

    Returns ``{band: float32 image}`` in counts/s (sky-subtracted). ``background_rate``
    overrides the calibrated effective backgrounds (used by the calibration); the
    switches drop components (for tests and diagnostics). Any window gives the same
    pixels as the corresponding part of the full frame (bit for bit: every source is
    rendered whole and added in a fixed order, the noise is drawn per fixed tile). ``pointing``
    chooses the frame (:mod:`jaxcomp.ast.pointing`).
    """
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
        )


def _render_mock(
    window, seed, bands, *, background_rate, noise, sources, stars, diffuse, margin, pointing
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
            for ya, yb, z in _tile_normals(seed, BANDS.index(b), y0, y1, x0, x1, p.seed_key):
                strip = img[ya - y0 : yb - y0]
                strip += np.sqrt(np.maximum(strip, 0) * np.float32(1.0 / t) + floor) * z
    return model


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


# ---------------------------------------------------------------------------------------
# the public entry points

_SPECS: "weakref.WeakKeyDictionary[Field, MockSpec]" = weakref.WeakKeyDictionary()


def make_mock_field(
    size="small",
    seed: int = 0,
    *,
    window: tuple[int, int, int, int] | None = None,
    pointing: str = "ngc628c",
) -> Field:
    """The mock field of a LEGUS NGC 628 pointing (see the module docstring for the recipe).

    Parameters
    ----------
    size : "small", "legus" or (ny, nx)
        "small": the 1500 x 1500 px crop of the busiest region (laptop demo, ~2 s);
        "legus": the full frame (C: 7040 x 6400 px, ~0.9 GB, ~15 s; E: 6000 x 6000 px);
        (ny, nx): a crop of that size centred on the busy region.
    seed : int
        Seeds the field stars and the noise (the real sources and the diffuse light do
        not depend on it).
    window : (y0, y1, x0, x1), optional
        An explicit crop of the full frame (overrides ``size``).
    pointing : {"ngc628c", "ngc628e"}
        The LEGUS pointing (:mod:`jaxcomp.ast.pointing`): its frame, catalogue, WCS, galaxy
        geometry and calibrated noise.

    Returns
    -------
    Field
        The pointing's zeropoints and exposure times, the HST effective PSFs :func:`mock_psfs`,
        the catalogue-fitted WCS, name ``"<pointing>-mock:seed=<s>:window=<y0>,<y1>,<x0>,<x1>"``
        (kept through FITS, so :func:`mock_truth` works on a field read back).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    p = mock_pointing(pointing)
    win = _resolve_size(size, window, p.name)
    spec = MockSpec(int(seed), win, p.name)
    images = render_mock(win, spec.seed, pointing=p.name)
    field = Field(
        images=images,
        wcs=mock_wcs(win, p.name),
        zeropoints=dict(p.zeropoints),
        exptimes=dict(p.exptimes),
        psf=dict(mock_psfs(p)),
        pixel_scale_arcsec=PIXEL_SCALE_ARCSEC,
        distance_modulus=DISTANCE_MODULUS,
        name=spec.name,
    )
    _SPECS[field] = spec
    return field


def mock_spec(field: Field) -> MockSpec | None:
    """The :class:`MockSpec` of a mock field (from memory or its name), else None."""
    spec = _SPECS.get(field)
    if spec is not None:
        return spec
    m = _NAME_RE.match(str(getattr(field, "name", "")))
    if m is None:
        return None
    pointing = m.group(1)
    seed, y0, y1, x0, x1 = (int(v) for v in m.groups()[1:])
    spec = MockSpec(seed, (y0, y1, x0, x1), pointing)
    if tuple(field.shape) != spec.shape:
        return None
    return spec


def mock_truth(field: Field, *, include_stars: bool = False):
    """The real sources a mock field contains (see :func:`mock_sources`), in its pixels.

    With ``include_stars`` the field stars are appended (``kind`` column: "source" or
    "star"; star rows have ``id`` -1, ``class_mode`` -1 and radius 0).
    Raises ValueError if ``field`` is not a mock field.
    """
    spec = mock_spec(field)
    if spec is None:
        raise ValueError(
            f"field {field.name!r} is not a jaxcomp mock field (make it with make_mock_field)"
        )
    t = mock_sources(spec.window, spec.pointing)
    t["kind"] = np.full(len(t), "source", dtype="U6")
    t.meta["seed"] = spec.seed
    if not include_stars:
        return t
    from astropy.table import vstack

    s = mock_field_stars(spec.seed, spec.window, spec.pointing)
    s["kind"] = np.full(len(s), "star", dtype="U6")
    s["id"] = -1
    s["class_mode"] = -1
    s["r_eff_px"] = 0.0
    s["r_eff_pc"] = 0.0
    s.remove_column("young")
    return vstack([t, s], join_type="outer", metadata_conflicts="silent")
