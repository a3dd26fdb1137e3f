"""The LEGUS NGC 628C cluster-catalogue pipeline: orchestration of its named, pure steps.

Steps (paper section 2, appendix A; ``docs/architecture.md``), each in its own module:

1. :mod:`jaxcomp.ast.white_light` - :func:`white_light` (paper eq. 19, Table 1 scale
   factors).
2. :mod:`jaxcomp.ast.background` and :mod:`jaxcomp.ast.detection` -
   :func:`estimate_background` and :func:`detect`: photutils segmentation on the white
   light with the LEGUS SExtractor configuration mapped parameter by parameter, or the
   ports of SExtractor's own background, deblending and CLEAN
   (:mod:`jaxcomp.ast.sextractor`, switched on by :data:`SEXTRACTOR_PORT`).
3. :mod:`jaxcomp.ast.photometry` - :func:`aperture_photometry` (1, 3, 4 px apertures,
   7-8 px sky annulus) and :func:`aperture_corrections`.
4. :mod:`jaxcomp.ast.cuts` - :func:`apply_cuts` (``passes_err``, ``passes_ci``,
   ``passes_nband``, ``passes_mv``; ``C`` their conjunction) and :data:`STAGES`.
5. :mod:`jaxcomp.ast.matching` - :func:`match_injected` (recovery within 3 px, ignoring
   sources that existed before injection).

Every setting and cut value lives in :mod:`jaxcomp.ast.settings`.

This module keeps the orchestration: :func:`run_pipeline` chains steps 1-4 on a
:class:`~jaxcomp.ast.field.Field` (or on injected images sharing its calibration),
timing each step with :class:`StepTimer`, and returns a :class:`PipelineResult`. It
also re-exports the steps' public names (``from jaxcomp.ast.pipeline import detect``
keeps working). Coordinates are 0-based pixel coordinates (pixel centres at integers);
the LEGUS tables are 1-based.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from .background import (
    background_with_statistics,
    clipped_stats_rows,  # noqa: F401  (re-exported for callers of the old single module)
    estimate_background,
    global_background_rms,
)
from .centring import iraf_centroid
from .cuts import STAGES, apply_cuts, passes_ci, passes_err, passes_mv, passes_nband
from .detection import detect, multi_peak_labels
from .field import Field
from .matching import _claimed, match_injected  # noqa: F401  (_claimed: re-exported)
from .photometry import aperture_corrections, aperture_photometry, circle_pixel_overlap
from .settings import (
    DEFAULT_CONFIG,
    LEGUS_SEXTRACTOR,
    SEXTRACTOR_PORT,
    SEXTRACTOR_TO_PHOTUTILS,
    WHITE_LIGHT_SCALES,
    CutsConfig,
    PhotometryConfig,
    PipelineConfig,
    SExtractorConfig,
)
from .sextractor import sextractor_background, sextractor_clean, sextractor_deblend
from .sextractor.background import _sex_backguess, _sex_interpolate  # noqa: F401  (re-exported)
from .sextractor.clean import _lutz_order, _sex_mthresh  # noqa: F401  (re-exported)
from .white_light import band_medians, fast_median, white_light

__all__ = [
    "DEFAULT_CONFIG",
    "LEGUS_SEXTRACTOR",
    "SEXTRACTOR_PORT",
    "SEXTRACTOR_TO_PHOTUTILS",
    "STAGES",
    "WHITE_LIGHT_SCALES",
    "CutsConfig",
    "PhotometryConfig",
    "PipelineConfig",
    "PipelineResult",
    "SExtractorConfig",
    "StepTimer",
    "aperture_corrections",
    "aperture_photometry",
    "apply_cuts",
    "background_with_statistics",
    "circle_pixel_overlap",
    "detect",
    "estimate_background",
    "fast_median",
    "global_background_rms",
    "iraf_centroid",
    "match_injected",
    "multi_peak_labels",
    "passes_ci",
    "passes_err",
    "passes_mv",
    "passes_nband",
    "run_pipeline",
    "sextractor_background",
    "sextractor_clean",
    "sextractor_deblend",
    "white_light",
]


class StepTimer:
    """Wall-clock and process-CPU time of named steps: ``with timer("step"): ...``."""

    def __init__(self):
        self.times: dict[str, dict[str, float]] = {}

    @contextmanager
    def __call__(self, name: str):
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            entry = self.times.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
            entry["wall_s"] += time.perf_counter() - w0
            entry["cpu_s"] += time.process_time() - c0

    def update(self, other: Mapping[str, Mapping[str, float]]):
        """Add another timer's steps (times of a step seen twice are summed)."""
        for k, v in other.items():
            mine = self.times.setdefault(k, {})
            for name, value in v.items():
                mine[name] = mine.get(name, 0.0) + value


@dataclass
class PipelineResult:
    """Output of :func:`run_pipeline`: the source catalogue and the intermediate products."""

    catalogue: Table
    white_light: np.ndarray
    background: np.ndarray | None
    background_rms: np.ndarray | None
    segmentation: object
    aperture_corrections: dict[str, float]
    timings: dict[str, dict[str, float]]  # step -> {wall_s, cpu_s}
    band_medians: dict[str, float] | None = None  # subtracted from each band for the white light
    mesh_statistics: object = None  # the white light's background meshes (background_impl="fast")


def run_pipeline(
    field: Field,
    images: Mapping[str, np.ndarray] | None = None,
    config: PipelineConfig = DEFAULT_CONFIG,
    *,
    keep_images: bool = False,
) -> PipelineResult:
    """Run white light -> detection -> photometry -> cuts on ``field`` (or on ``images``).

    ``images`` (e.g. an injected frame) replace the field's images but share its
    footprint, zeropoints, exposure times, PSFs and distance. The catalogue has one row
    per detected source: ``source_id, x, y, area_px, wl_flux``, the photometry columns
    of :func:`aperture_photometry` and the flags of :func:`apply_cuts`.
    ``keep_images=False`` drops the background maps and segmentation from the result.
    """
    timer = StepTimer()
    images = field.images if images is None else images
    fp = field.footprint
    with timer("white_light"):
        medians = band_medians(images, fp)
        wl = white_light(images, fp, medians=medians)
    with timer("background"):
        bkg, rms, mesh = background_with_statistics(wl, fp, config.sextractor)
    with timer("detect"):
        det, segm = detect(wl, fp, config.sextractor, background=(bkg, rms))
    with timer("aperture_corrections"):
        apcor = aperture_corrections(field, config.photometry)
    with timer("photometry"):
        phot = aperture_photometry(
            images,
            det["x"],
            det["y"],
            field.zeropoints,
            field.exptimes,
            config.photometry,
            apcor,
            fp,
        )
        for col in phot.colnames:
            if col not in ("x", "y"):
                det[col] = phot[col]
    with timer("cuts"):
        apply_cuts(det, field.distance_modulus, config.cuts)
    det.meta["field"] = field.name
    det.meta["aperture_corrections"] = apcor
    return PipelineResult(
        catalogue=det,
        white_light=wl,
        background=bkg if keep_images else None,
        background_rms=rms if keep_images else None,
        segmentation=segm if keep_images else None,
        aperture_corrections=apcor,
        timings=timer.times,
        band_medians={b: float(v) for b, v in medians.items()},
        mesh_statistics=mesh,
    )
