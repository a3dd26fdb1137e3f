"""The LEGUS NGC 628C catalogue settings: the one home of every setting and cut value.

* :data:`WHITE_LIGHT_SCALES` - the white-light scale factors (paper Table 1).
* :data:`LEGUS_SEXTRACTOR` - the LEGUS SExtractor configuration of the white-light
  detection, in SExtractor's own names (Adamo et al. 2017). :class:`SExtractorConfig`'s
  defaults and :data:`SEXTRACTOR_TO_PHOTUTILS` (how each parameter maps onto photutils
  3.0) are derived from it.
* :class:`SExtractorConfig` - detection settings and their photutils translation
  (:meth:`SExtractorConfig.photutils_params`), including the switches to the SExtractor
  ports (:mod:`jaxcomp.ast.sextractor`).
* :class:`PhotometryConfig` - apertures (1, 3, 4 px), sky annulus (7-8 px), sky
  estimator, aperture corrections.
* :class:`CutsConfig` - the catalogue cuts and the recovery radius.
* :class:`PipelineConfig`, :data:`DEFAULT_CONFIG` (photutils mapping) and
  :data:`SEXTRACTOR_PORT` (SExtractor's own background, deblending and CLEAN).

Pure data: nothing here imports photutils, scipy or JAX. See ``docs/architecture.md``
for where each setting is used.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import ClassVar, Literal

__all__ = [
    "DEFAULT_CONFIG",
    "LEGUS_SEXTRACTOR",
    "SEXTRACTOR_PORT",
    "SEXTRACTOR_TO_PHOTUTILS",
    "WHITE_LIGHT_SCALES",
    "CutsConfig",
    "PhotometryConfig",
    "PipelineConfig",
    "SExtractorConfig",
]

#: Scale factors s_lambda of the white-light image (paper Table 1), F275W..F814W.
WHITE_LIGHT_SCALES: dict[str, dict[str, float]] = {
    "21Myr": {"F275W": 55.8, "F336W": 45.3, "F435W": 44.2, "F555W": 65.7, "F814W": 29.3},
    "RGB": {"F275W": 0.5, "F336W": 0.8, "F435W": 3.1, "F555W": 11.2, "F814W": 13.7},
}


#: The LEGUS SExtractor configuration of the white-light detection (Adamo et al. 2017).
#: The single home of these values: everything below derives from this dict.
LEGUS_SEXTRACTOR: dict[str, object] = {
    "DETECT_MINAREA": 10,
    "DETECT_THRESH": 20.0,
    "ANALYSIS_THRESH": 25.0,
    "FILTER": "N",
    "DEBLEND_NTHRESH": 32,
    "DEBLEND_MINCONT": 0.005,
    "BACK_SIZE": 30,
    "BACK_FILTERSIZE": 1,
    "GAIN": 1.53,
}

_LEGUS = LEGUS_SEXTRACTOR

#: How each SExtractor parameter maps onto photutils 3.0 (parameter -> (where, name, value, note)).
#: ``where`` names the photutils call that receives it; "not applied" parameters have no
#: effect on the catalogue and are recorded here rather than silently dropped.
SEXTRACTOR_TO_PHOTUTILS: dict[str, tuple[str, str, object, str]] = {
    "DETECT_MINAREA": (
        "detect_sources+deblend_sources",
        "n_pixels",
        _LEGUS["DETECT_MINAREA"],
        (
            "minimum number of connected pixels above threshold (also for deblended children; "
            "SExtractor lets deblending branches have min(DETECT_MINAREA, 3) pixels, see "
            "sextractor_deblend)"
        ),
    ),
    "DETECT_THRESH": (
        "detect_sources",
        "threshold",
        f"{_LEGUS['DETECT_THRESH']:g} * global background RMS",
        (
            "in sigmas of SExtractor's *global* background RMS (THRESH_TYPE RELATIVE, "
            f"WEIGHT_TYPE NONE: the median over the {_LEGUS['BACK_SIZE']} px meshes of the clipped "
            "RMS), one "
            "constant threshold on the background-subtracted white light (pixels must be "
            "strictly above); see SExtractorConfig.thresh_rms"
        ),
    ),
    "ANALYSIS_THRESH": (
        "not applied",
        "-",
        _LEGUS["ANALYSIS_THRESH"],
        (
            "SExtractor uses it only for CLASS_STAR and FWHM_IMAGE, which the LEGUS "
            "catalogue does not use; centroids are barycentres of the segment pixels"
        ),
    ),
    "FILTER": (
        "detect_sources",
        "(no convolution)",
        None,
        "FILTER N: the white light is thresholded unconvolved (no kernel)",
    ),
    "DEBLEND_NTHRESH": (
        "deblend_sources",
        "n_levels",
        _LEGUS["DEBLEND_NTHRESH"],
        "multi-threshold levels",
    ),
    "DEBLEND_MINCONT": (
        "deblend_sources",
        "contrast",
        _LEGUS["DEBLEND_MINCONT"],
        (
            "minimum flux fraction of a branch (photutils default is 0.001). Not the same "
            "fraction: photutils counts a peak's whole watershed basin, SExtractor only the "
            "branch's flux above the level where it separates, so photutils splits off more "
            "faint neighbours (the main remaining difference; see sextractor_deblend)"
        ),
    ),
    "BACK_SIZE": (
        "Background2D",
        "box_size",
        _LEGUS["BACK_SIZE"],
        (
            "background mesh size in px (photutils clips the interpolated map to the mesh range, "
            "SExtractor does not; see sextractor_background)"
        ),
    ),
    "BACK_FILTERSIZE": (
        "Background2D",
        "filter_size",
        _LEGUS["BACK_FILTERSIZE"],
        "no median filtering of the mesh",
    ),
    "GAIN": (
        "not applied",
        "-",
        _LEGUS["GAIN"],
        (
            "only enters SExtractor's flux errors on the white light, which no cut uses; the "
            "band photometry errors use the exposure times (images in e-/s)"
        ),
    ),
}


@dataclass(frozen=True)
class SExtractorConfig:
    """SExtractor detection parameters (defaults: LEGUS) and their photutils translation.

    Fixed photutils choices that mirror SExtractor's own behaviour: 8-connectivity,
    exponential multi-threshold spacing, the SExtractor background estimator
    (2.5 median - 1.5 mean, or the median in crowded meshes) and a standard-deviation
    RMS after 3-sigma clipping (10 iterations), bicubic-spline mesh interpolation.
    ``exclude_percentile``: photutils drops meshes with more than this percentage of
    masked (outside-footprint or clipped) pixels and interpolates over them; SExtractor
    has no such knob, so it is set high (50).

    ``thresh_rms`` says which RMS DETECT_THRESH multiplies. ``"global"`` (default) is what
    SExtractor does without a weight map (WEIGHT_TYPE NONE, its default, and the LEGUS
    configuration names none): the detection threshold is ``DETECT_THRESH x backsig``,
    one number for the whole frame, ``backsig`` being the median over the background
    meshes of the per-mesh clipped RMS (SExtractor ``back.c``/``filterback``; its
    interpolated RMS map is only a check image). ``"map"`` thresholds every pixel at
    ``DETECT_THRESH x`` the interpolated RMS map, as SExtractor does only with
    WEIGHT_TYPE BACKGROUND; jaxcomp used it before 2026-12 (see
    :func:`~jaxcomp.ast.background.estimate_background`
    for why it mattered).

    Speed switches that do not change the result: ``background_impl="fast"`` (a
    vectorised re-implementation of ``Background2D``, equal to float32 rounding) and
    ``deblend_prefilter`` (only segments with several local maxima are handed to
    the deblender; identical segmentation, see :func:`~jaxcomp.ast.detection.multi_peak_labels`).

    Ports of SExtractor itself (opt-in; :data:`SEXTRACTOR_PORT` switches all three on):
    ``background_impl="sextractor"`` is SExtractor 2.x's own background
    (:func:`~jaxcomp.ast.sextractor.sextractor_background`: quantised-histogram mode per mesh,
    bicubic spline
    without clipping, ``backsig``); ``deblend_impl="sextractor"`` its multi-threshold
    tree deblending (:func:`~jaxcomp.ast.sextractor.sextractor_deblend`: levels between the
    detection threshold
    and the peak, a branch counts if its flux *above its level* exceeds DEBLEND_MINCONT x
    the object's flux, branches of >= min(DETECT_MINAREA, 3) pixels, deblended objects
    placed at the barycentre of their branch); ``clean=True`` its CLEAN with
    ``clean_param`` (CLEAN_PARAM; :func:`~jaxcomp.ast.sextractor.sextractor_clean`; SExtractor's
    defaults are CLEAN Y,
    1.0, and the LEGUS configuration does not change them). With all three, jaxcomp's
    detection list is SExtractor 2.25's on the mock's white light, source for source
    (CLEAN N: identical; CLEAN Y: to within a few of ~700 sources per frame, where
    SExtractor hands faint pixels of deblended objects out at random), and 99.98% of
    6000 injected clusters get the same recovery label (``benchmarks/compare_sextractor.py``).
    The photutils mapping stays the default: it is what the rest of jaxcomp was
    calibrated and tested with (96.8% label agreement); see ``benchmarks/README.md``.
    """

    detect_minarea: int = _LEGUS["DETECT_MINAREA"]
    detect_thresh: float = _LEGUS["DETECT_THRESH"]
    analysis_thresh: float = _LEGUS["ANALYSIS_THRESH"]
    filter: bool = _LEGUS["FILTER"] == "Y"
    deblend_nthresh: int = _LEGUS["DEBLEND_NTHRESH"]
    deblend_mincont: float = _LEGUS["DEBLEND_MINCONT"]
    back_size: int = _LEGUS["BACK_SIZE"]
    back_filtersize: int = _LEGUS["BACK_FILTERSIZE"]
    gain: float = _LEGUS["GAIN"]
    deblend: bool = True
    deblend_prefilter: bool = True
    background_impl: Literal["fast", "photutils", "sextractor"] = "fast"
    exclude_percentile: float = 50.0
    clip_sigma: float = 3.0
    clip_maxiters: int = 10
    thresh_rms: Literal["global", "map"] = "global"
    deblend_impl: Literal["photutils", "sextractor"] = "photutils"
    clean: bool = False
    clean_param: float = 1.0

    def __post_init__(self):
        if self.filter:
            raise ValueError("FILTER Y is not supported: the LEGUS configuration does not filter")
        for name in ("detect_minarea", "deblend_nthresh", "back_size", "back_filtersize"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.background_impl not in ("fast", "photutils", "sextractor"):
            raise ValueError(
                "background_impl must be 'fast', 'photutils' or 'sextractor', "
                f"got {self.background_impl!r}"
            )
        if self.deblend_impl not in ("photutils", "sextractor"):
            raise ValueError(
                f"deblend_impl must be 'photutils' or 'sextractor', got {self.deblend_impl!r}"
            )
        if self.clean and self.deblend_impl != "sextractor":
            raise ValueError("clean=True (SExtractor's CLEAN) needs deblend_impl='sextractor'")
        if self.deblend_impl == "sextractor" and self.thresh_rms != "global":
            raise ValueError(
                "deblend_impl='sextractor' needs thresh_rms='global' (one detection threshold)"
            )
        if self.thresh_rms not in ("global", "map"):
            raise ValueError(f"thresh_rms must be 'global' or 'map', got {self.thresh_rms!r}")
        if not 0 <= self.deblend_mincont <= 1:
            raise ValueError(f"deblend_mincont must be in [0, 1], got {self.deblend_mincont}")

    def photutils_params(self) -> dict[str, dict]:
        """Keyword arguments of each photutils call (the single source of truth)."""
        return {
            "Background2D": {
                "box_size": int(self.back_size),
                "filter_size": int(self.back_filtersize),
                "exclude_percentile": float(self.exclude_percentile),
            },
            "sigma_clip": {"sigma": float(self.clip_sigma), "maxiters": int(self.clip_maxiters)},
            "threshold_nsigma": float(self.detect_thresh),
            "threshold_rms": str(self.thresh_rms),
            "detect_sources": {"n_pixels": int(self.detect_minarea), "connectivity": 8},
            "deblend_sources": {
                "n_pixels": int(self.detect_minarea),
                "n_levels": int(self.deblend_nthresh),
                "contrast": float(self.deblend_mincont),
                "mode": "exponential",
                "connectivity": 8,
            },
            "kernel": None,
        }


@dataclass(frozen=True)
class PhotometryConfig:
    """Aperture photometry settings (LEGUS: 1, 3, 4 px; sky annulus 7-8 px).

    ``mode_factors = (3, 2)``: sky = 3 median - 2 mean of the 3-sigma-clipped annulus
    pixels (the IRAF ``phot`` "mode", photutils ``ModeEstimatorBackground``); the annulus
    uses the pixels whose centres lie in [7, 8] px.
    ``aperture_weights``: how a pixel the aperture's edge crosses counts. ``"iraf"`` (the
    LEGUS catalogue's and the C-4 pipeline's photometry, IRAF ``phot``): weight
    ``clip(r - d + 0.5, 0, 1)`` for a pixel whose centre is ``d`` px from the source, and
    the aperture's area is the sum of the weights (``apmeasure`` in IRAF's
    ``noao/digiphot/apphot/phot/apmeasure.x``); ``"exact"``: the exact overlap of pixel
    and circle, area pi r^2. The two differ most in the 1 px aperture (IRAF area 3.34 px^2
    for a centred source): the CI of a cluster is 0.07-0.08 mag lower with IRAF's weights
    at every radius, which is the system the CI >= 1.4 cut was set in.
    ``aperture_corrections``: explicit per-band corrections (mag, added to the 4 px
    magnitudes) as ``((band, value), ...)``; ``None`` computes them from the field's PSFs
    for an EFF cluster of ``apcor_reff_pc`` (see :func:`aperture_corrections`).
    ``centring``: where each band's apertures and sky annulus are centred.
    ``"iraf_centroid"`` (default): at that band's own IRAF apphot centroid started from the
    given positions (the detection barycentres), as the LEGUS catalogue's and the C-4
    pipeline's ``phot`` runs did (``calgorithm = centroid``; the centre then snaps towards
    pixel centres, which moves a cluster's CI by up to a few hundredths of a mag through
    IRAF's aperture weights); ``"none"``: at the given positions. See
    :func:`jaxcomp.ast.centring.iraf_centroid`) with the box ``centring_box_px`` [px,
    IRAF ``cbox``; 1 -> 3 x 3 px], at most ``centring_max_iter`` passes and the shift
    limit ``centring_max_shift_px`` [px] of the flag; the catalogue then has the
    aperture centres ``x_<band>``, ``y_<band>`` and IRAF's centring code
    ``centring_flag_<band>``.
    """

    radii_px: tuple[float, ...] = (1.0, 3.0, 4.0)
    phot_radius_px: float = 4.0
    ci_radii_px: tuple[float, float] = (1.0, 3.0)
    ci_band: str = "F555W"
    annulus_px: tuple[float, float] = (7.0, 8.0)
    sky_clip_sigma: float = 3.0
    sky_clip_maxiters: int = 10
    mode_factors: tuple[float, float] = (3.0, 2.0)
    min_sky_pixels: int = 10
    apcor_reff_pc: float = 3.0
    aperture_corrections: tuple[tuple[str, float], ...] | None = None
    aperture_weights: Literal["iraf", "exact"] = "iraf"
    centring: Literal["iraf_centroid", "none"] = "iraf_centroid"
    centring_box_px: float = 1.0
    centring_max_iter: int = 3
    centring_max_shift_px: float = 1.0

    #: The keys of the centring; with ``centring = "none"`` they change nothing, and
    #: :meth:`jaxcomp.ast.CampaignConfig.to_dict` leaves them out (so the hashes of
    #: campaigns made before they existed are unchanged).
    CENTRING_KEYS: ClassVar[tuple[str, ...]] = (
        "centring",
        "centring_box_px",
        "centring_max_iter",
        "centring_max_shift_px",
    )

    def __post_init__(self):
        if self.aperture_weights not in ("iraf", "exact"):
            raise ValueError(
                f"aperture_weights must be 'iraf' or 'exact', got {self.aperture_weights!r}"
            )
        if self.centring not in ("iraf_centroid", "none"):
            raise ValueError(
                f"centring must be 'iraf_centroid' (IRAF apphot centroid per band) or 'none' "
                f"(apertures at the detections), got {self.centring!r}"
            )
        if not (
            isinstance(self.centring_box_px, numbers.Real)
            and math.isfinite(self.centring_box_px)
            and self.centring_box_px > 0
        ):
            raise ValueError(
                f"centring_box_px must be a finite box width > 0 [px], got {self.centring_box_px!r}"
            )
        if (
            isinstance(self.centring_max_iter, bool)
            or not isinstance(self.centring_max_iter, numbers.Integral)
            or self.centring_max_iter < 1
        ):
            raise ValueError(
                f"centring_max_iter must be an integer >= 1, got {self.centring_max_iter!r}"
            )
        if not (
            isinstance(self.centring_max_shift_px, numbers.Real) and self.centring_max_shift_px >= 0
        ):
            raise ValueError(
                "centring_max_shift_px must be a shift >= 0 [px] (inf: no limit), got "
                f"{self.centring_max_shift_px!r}"
            )
        if self.phot_radius_px not in self.radii_px or any(
            r not in self.radii_px for r in self.ci_radii_px
        ):
            raise ValueError("phot_radius_px and ci_radii_px must be among radii_px")
        if not 0 < self.annulus_px[0] < self.annulus_px[1]:
            raise ValueError(
                f"annulus_px must be (inner, outer) with 0 < inner < outer, got {self.annulus_px}"
            )


@dataclass(frozen=True)
class CutsConfig:
    """The catalogue cuts (defaults: NGC 628C).

    Stage 1: err(``err_band``) <= ``max_err`` and (err of any ``err_alt_bands`` <= max_err);
    CI >= ``ci_min``. Stage 2: at least ``min_good_bands`` bands with err <= max_err, and
    M_V = m_V - DM <= ``mv_max`` (m_V <= 23.98 at DM 29.98). Recovery radius 3 px.
    """

    max_err: float = 0.3
    err_band: str = "F555W"
    err_alt_bands: tuple[str, ...] = ("F435W", "F814W")
    ci_min: float = 1.4
    min_good_bands: int = 4
    mv_band: str = "F555W"
    mv_max: float = -6.0
    match_radius_px: float = 3.0


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline's settings: detection, photometry and cuts."""

    sextractor: SExtractorConfig = dc_field(default_factory=SExtractorConfig)
    photometry: PhotometryConfig = dc_field(default_factory=PhotometryConfig)
    cuts: CutsConfig = dc_field(default_factory=CutsConfig)


DEFAULT_CONFIG = PipelineConfig()

#: The pipeline with SExtractor's own background and deblending (ports, see
#: :func:`~jaxcomp.ast.sextractor.sextractor_background` and
#:func:`~jaxcomp.ast.sextractor.sextractor_deblend`) instead of photutils'.
#: CLEAN Y with CLEAN_PARAM 1.0 (:func:`~jaxcomp.ast.sextractor.sextractor_clean`): SExtractor's
# defaults, which the
#: LEGUS configuration does not override.
SEXTRACTOR_PORT = PipelineConfig(
    sextractor=SExtractorConfig(background_impl="sextractor", deblend_impl="sextractor", clean=True)
)
