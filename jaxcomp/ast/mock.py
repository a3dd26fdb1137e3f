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

Recipe (all numbers are constants of the mock_* modules, documented where they are defined)
-------------------------------------------------------------------------------------------
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
    The noise is correlated between neighbouring pixels as a drizzled frame's is
    (:mod:`jaxcomp.ast.drizzle_noise`: pixfrac 1, so drops of 1 output pixel for WFC3/UVIS
    and 1.26 for ACS/WFC; lag-1 correlation 0.25 and 0.35; sums over many pixels have 1.50
    and 1.72 times the rms that the per-pixel rms predicts, Fruchter & Hook 2002); the
    per-pixel variance is the one above. The white normals are drawn tile by tile
    (256 x 256 px tiles, each with its own ``SeedSequence(seed, spawn_key=(2, band, tile_y,
    tile_x))``), so any crop of the mock is the same pixels as the corresponding part of the
    full frame.
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

The mock is made by :mod:`jaxcomp.ast.mock_frame` (frame, WCS, windows, the catalogue on the
frame's pixels), :mod:`jaxcomp.ast.mock_real_sources` (the catalogue sources as EFF clusters),
:mod:`jaxcomp.ast.mock_diffuse` (diffuse light), :mod:`jaxcomp.ast.mock_stars` (field stars) and
:mod:`jaxcomp.ast.mock_render` (images and noise); this module makes the :class:`Field` and
recognises mock fields (:func:`mock_spec`), and re-exports the mock's public names.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass

import numpy as np

from .field import DISTANCE_MODULUS, PIXEL_SCALE_ARCSEC, Field
from .mock_frame import MOCK_SHAPE, NUCLEUS_PX, SMALL_SHAPE, _resolve_size, mock_wcs, small_window
from .mock_real_sources import mock_sources
from .mock_render import MOCK_READ_NOISE_E, render_mock
from .mock_stars import N_STARS, mock_field_stars
from .pointing import (
    MOCK_PSF_OVERSAMPLING,
    MockPointing,
    mock_pointing,
    mock_psf_digest,
    mock_psfs,
)
from .pointing import (
    mock_noise_calibration as _noise_calibration,
)
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

#: Half-size of the mock's effective PSF images [arcsec] (15 px).
MOCK_PSF_RADIUS_ARCSEC: float = 0.6

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
# calibration constants (the files are the pointing's: :mod:`jaxcomp.ast.pointing`)


def mock_noise_calibration(pointing: str = "ngc628c") -> dict:
    """The calibrated noise constants and provenance (``data/mock/<pointing>_mock_noise.json``;
    :func:`jaxcomp.ast.pointing.mock_noise_calibration`)."""
    return _noise_calibration(pointing)


def _psf_images(pointing: str = "ngc628c") -> dict[str, np.ndarray]:
    """The PSF images of a pointing's mock (``data/mock/<psf_file>``)."""
    from .pointing import _psf_images as images

    return images(mock_pointing(pointing).psf_file)


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
