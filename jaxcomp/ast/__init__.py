"""Artificial cluster tests: fields, cluster profiles, the LEGUS catalogue pipeline, injection.

* :mod:`jaxcomp.ast.field` - :class:`Field` (five images + calibration + PSFs + WCS);
  :mod:`jaxcomp.ast.field_fits` - its FITS I/O.
* :mod:`jaxcomp.ast.profiles` - EFF (gamma = 3) profiles, PSF-convolved and
  pixel-integrated with exact flux; :mod:`jaxcomp.ast.psf_model` the PSF they are
  convolved with (:class:`PSFModel`) and its checks.
* :mod:`jaxcomp.ast.settings` - the LEGUS settings and cut values (their one home):
  :data:`LEGUS_SEXTRACTOR`, :class:`SExtractorConfig`, :class:`PhotometryConfig`,
  :class:`CutsConfig`, :class:`PipelineConfig`.
* The catalogue pipeline's steps: :mod:`jaxcomp.ast.white_light`,
  :mod:`jaxcomp.ast.background` (the white light's background and detection RMS; fast
  SExtractor-style meshes with photutils ``Background2D`` semantics),
  :mod:`jaxcomp.ast.detection`, :mod:`jaxcomp.ast.photometry` (apertures and aperture
  corrections; :mod:`jaxcomp.ast.centring` the optional IRAF centroid recentring of each
  band's apertures), :mod:`jaxcomp.ast.cuts`, :mod:`jaxcomp.ast.matching`;
  :mod:`jaxcomp.ast.sextractor` ports SExtractor's own background, deblending and CLEAN.
* :mod:`jaxcomp.ast.pipeline` - :func:`run_pipeline` chains the steps (and re-exports
  their names).
* :mod:`jaxcomp.ast.inject` - position drawing, injection with shot noise, and
  :func:`run_frame` (one AST frame -> labels table).
* :mod:`jaxcomp.ast.synthetic` - small flat synthetic fields for tests.
* :mod:`jaxcomp.ast.mock` - the embedded default field: a seeded mock of NGC 628C (or of the
  east pointing NGC 628E, :mod:`jaxcomp.ast.pointing`)
  (:func:`make_mock_field`, :func:`mock_truth`), noise calibrated against the
  Adamo+2017 single-band recovery magnitudes (:mod:`jaxcomp.ast.single_band`); made by
  :mod:`jaxcomp.ast.mock_frame`, :mod:`~jaxcomp.ast.mock_real_sources`,
  :mod:`~jaxcomp.ast.mock_diffuse`, :mod:`~jaxcomp.ast.mock_stars` and
  :mod:`~jaxcomp.ast.mock_render`.
* :mod:`jaxcomp.ast.campaign` - resumable, deterministic AST campaigns on a process
  pool or a Dask cluster (:func:`run_campaign`), configured by
  :mod:`jaxcomp.ast.campaign_config` (:class:`CampaignConfig`), planned by
  :mod:`jaxcomp.ast.campaign_plan`, run by :mod:`jaxcomp.ast.campaign_executors`, stored by
  :mod:`jaxcomp.ast.campaign_store`; p_true and recovery plots in
  :mod:`jaxcomp.ast.campaign_recovery`.

Everything here is numpy/scipy/astropy/photutils; nothing imports JAX.
photutils (>= 3.0) and scikit-image (for deblending) are needed by the pipeline.
"""

from .campaign import run_campaign
from .campaign_config import CampaignConfig, CampaignError
from .campaign_recovery import p_true, plot_recovery
from .campaign_store import read_campaign
from .centring import iraf_centroid
from .cuts import STAGES, apply_cuts
from .detection import detect
from .drizzle_noise import drizzle_noise_filter, noise_correlation_ratio
from .epsf import EPSFError, EPSFResult, EPSFStarSelection, build_epsf
from .field import (
    BANDS,
    DISTANCE_MODULUS,
    NGC628C_EXPTIMES,
    NGC628C_ZEROPOINTS,
    PIXEL_SCALE_ARCSEC,
    Field,
)
from .field_fits import read_field_fits, write_field_fits
from .hst_psf import InstrumentPSF, hst_epsf
from .inject import (
    FieldBaseline,
    draw_positions,
    inject,
    position_density,
    prepare_field,
    run_frame,
)
from .matching import match_injected
from .mock import compare_with_truth, make_mock_field, mock_psfs, mock_truth
from .photometry import aperture_corrections, aperture_photometry
from .pipeline import run_pipeline
from .pointing import MOCK_POINTINGS, MockPointing, mock_pointing
from .profiles import (
    PSFModel,
    eff_core_radius,
    eff_enclosed_fraction,
    render_multiband,
    render_stamps,
)
from .settings import (
    DEFAULT_CONFIG,
    LEGUS_SEXTRACTOR,
    SEXTRACTOR_TO_PHOTUTILS,
    WHITE_LIGHT_SCALES,
    CutsConfig,
    PhotometryConfig,
    PipelineConfig,
    SExtractorConfig,
)
from .single_band import fit_m50, mock_m50
from .synthetic import synthetic_field
from .white_light import white_light

__all__ = [
    "BANDS",
    "DISTANCE_MODULUS",
    "NGC628C_EXPTIMES",
    "NGC628C_ZEROPOINTS",
    "PIXEL_SCALE_ARCSEC",
    "Field",
    "read_field_fits",
    "write_field_fits",
    "FieldBaseline",
    "draw_positions",
    "inject",
    "position_density",
    "prepare_field",
    "run_frame",
    "DEFAULT_CONFIG",
    "LEGUS_SEXTRACTOR",
    "SEXTRACTOR_TO_PHOTUTILS",
    "STAGES",
    "WHITE_LIGHT_SCALES",
    "CutsConfig",
    "PhotometryConfig",
    "PipelineConfig",
    "SExtractorConfig",
    "aperture_corrections",
    "aperture_photometry",
    "apply_cuts",
    "iraf_centroid",
    "detect",
    "match_injected",
    "run_pipeline",
    "white_light",
    "PSFModel",
    "eff_core_radius",
    "eff_enclosed_fraction",
    "render_multiband",
    "render_stamps",
    "synthetic_field",
    "make_mock_field",
    "MockPointing",
    "MOCK_POINTINGS",
    "mock_pointing",
    "mock_truth",
    "compare_with_truth",
    "mock_psfs",
    "hst_epsf",
    "InstrumentPSF",
    "drizzle_noise_filter",
    "noise_correlation_ratio",
    "EPSFError",
    "EPSFResult",
    "EPSFStarSelection",
    "build_epsf",
    "CampaignConfig",
    "CampaignError",
    "run_campaign",
    "read_campaign",
    "p_true",
    "plot_recovery",
    "fit_m50",
    "mock_m50",
]
