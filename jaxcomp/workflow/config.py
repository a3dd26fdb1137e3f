"""The run configuration: one TOML file describes a whole jaxcomp run.

Every section maps to a frozen dataclass; unknown sections or keys, wrong types,
values out of range and inconsistent stages are refused **before any work
starts**, with a message that names the key (``[networks] epochs: ...``).
Omitted keys take the defaults below; :meth:`RunConfig.to_dict` gives the
resolved configuration, which the run directory records.

Example (an abridged version of the embedded demo, ``jaxcomp/data/workflows/demo.toml``)::

    [run]
    name = "demo"
    seed = 0

    [field]
    kind = "mock"
    size = "small"

    [library]
    n_clusters = 40000

    [campaign]
    r_eff_pc = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    clusters_per_frame = 25
    train_frames_per_reff = 120
    test_clusters_per_reff = 500
    test_repeats = 10
    reprocess = "local"
    edge_margin_px = 5

    [networks]
    inputs = ["physical", "photometric", "physical+r_eff_pc", "photometric+r_eff_pc"]

    [population]
    alpha_M = -2.0
    log_M_break = 5.0
    clusters_per_frame = 25

    [fit]
    selection = "physical+r_eff_pc"
    chains = 2

Optional ``[[fields]]`` tables (:mod:`jaxcomp.workflow.fields`) make the fit stage fit several
fields jointly (``[fit] pooling``, ``compare_pooling``, ``parametrisation``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path

from ..ast.epsf import EPSFStarSelection
from ..errors import JaxcompError
from ..survey import BANDS

#: The star selection's defaults, the one home of the ``[field] psf_*`` defaults.
_EPSF_DEFAULTS = EPSFStarSelection()

__all__ = [
    "ConfigError",
    "RunConfig",
    "RunSection",
    "FieldSection",
    "LibrarySection",
    "CampaignSection",
    "NetworksSection",
    "ValidationSection",
    "PopulationSection",
    "CatalogueSection",
    "CorrectSection",
    "FitSection",
    "check_inputs",
    "load_config",
    "parse_config",
]


class ConfigError(JaxcompError, ValueError):
    """A configuration that cannot run; the message names the offending key."""


# ------------------------------------------------------------------ sections
@dataclasses.dataclass(frozen=True)
class RunSection:
    """``[run]``: name of the run, master seed, and where the campaigns run.

    ``workers``: local processes (0 = all cores); ``scheduler``: a ``dask.distributed``
    scheduler address (``"tcp://host:8786"``) to run the AST frames on a cluster instead.
    Neither changes any result (campaign labels are identical whatever the executor), so
    neither makes a stage out of date.
    """

    name: str = "run"
    seed: int = 0
    workers: int = 0
    scheduler: str = ""

    def check(self):
        _require(self.seed >= 0, "run", "seed", "must be >= 0")
        _require(self.workers >= 0, "run", "workers", "must be >= 0 (0 = all cores)")
        _require(
            not self.scheduler or "://" in self.scheduler,
            "run",
            "scheduler",
            f"must be a scheduler address such as 'tcp://host:8786', got {self.scheduler!r}",
        )


@dataclasses.dataclass(frozen=True)
class FieldSection:
    """``[field]``: the images to inject into.

    ``kind = "mock"``: the embedded mock field of the LEGUS NGC 628 ``pointing`` ("ngc628c",
    default, or "ngc628e"; :mod:`jaxcomp.ast.pointing`), ``size`` "small" (1500 x 1500 px),
    "legus" (the full frame: 7040 x 6400 px in C, 6000 x 6000 px in E) or "NYxNX"; a
    ``pointing`` left at "ngc628c" is not written into the resolved configuration, so the
    fingerprints of runs made before the pointings existed are unchanged.
    ``kind = "fits"``: five FITS images in
    ``directory`` (see :func:`jaxcomp.ast.read_field_fits`), which must exist when the
    configuration is loaded.

    For ``kind = "fits"`` only (a mock ignores them, and they are left out of its
    resolved configuration and fingerprints):

    ``zeropoints``
        Five Vega zeropoints [mag of 1 count/s] in band order (F275W ... F814W); empty
        (default): the files' ``VEGAZPT`` keywords (a file without one is an error).
    ``distance_modulus``
        [mag]; 0 (default): the files' ``DISTMOD`` keyword (required then).
    ``psf``
        ``"auto"`` (default): each band's PSF from its file (``PSF`` extension or
        ``PSFFWHM`` keyword), else built from the frame's own stars; ``"stars"``: always
        built from the stars; ``"gaussian"``: Gaussians of FWHM ``psf_fwhm_px``. The PSFs
        built from stars, their stars and a figure are written by the ``field`` stage.
    ``psf_fwhm_px``
        Five Gaussian FWHMs [px] in band order, for ``psf = "gaussian"``.
    ``psf_mag_range``, ``psf_min_snr``, ``psf_isolation_px``, ``psf_ci_range``, ``psf_ci_clip_mag``,
    ``psf_roundness_range``, ``psf_peak_max``, ``psf_max_stars``, ``psf_min_stars``,
    ``psf_cutout_px``,
    ``psf_oversampling``, ``psf_iterations``
        The star selection of :class:`jaxcomp.ast.epsf.EPSFStarSelection` (``mag_range``
        [Vega mag of the 3 px aperture], ``min_snr``, ``isolation_radius_px`` [px],
        ``ci_range`` [mag], ``ci_clip_mag`` [mag], ``roundness_range``, ``peak_max``
        [counts/s, 0 = no limit], ``max_stars``, ``min_stars``, ``cutout_px`` [px, odd],
        ``oversampling``, ``iterations``), same defaults.
    """

    kind: str = "mock"
    size: str = "small"
    pointing: typing.Literal["ngc628c", "ngc628e"] = "ngc628c"
    directory: str = ""
    zeropoints: tuple[float, ...] = ()
    distance_modulus: float = 0.0
    psf: typing.Literal["auto", "stars", "gaussian"] = "auto"
    psf_fwhm_px: tuple[float, ...] = ()
    psf_mag_range: tuple[float, float] = _EPSF_DEFAULTS.mag_range
    psf_min_snr: float = _EPSF_DEFAULTS.min_snr
    psf_isolation_px: float = _EPSF_DEFAULTS.isolation_radius_px
    psf_ci_range: tuple[float, float] = _EPSF_DEFAULTS.ci_range
    psf_ci_clip_mag: float = _EPSF_DEFAULTS.ci_clip_mag
    psf_roundness_range: tuple[float, float] = _EPSF_DEFAULTS.roundness_range
    psf_peak_max: float = _EPSF_DEFAULTS.peak_max or 0.0
    psf_max_stars: int = _EPSF_DEFAULTS.max_stars
    psf_min_stars: int = _EPSF_DEFAULTS.min_stars
    psf_cutout_px: int = _EPSF_DEFAULTS.cutout_px
    psf_oversampling: int = _EPSF_DEFAULTS.oversampling
    psf_iterations: int = _EPSF_DEFAULTS.iterations

    #: The keys that only a FITS field reads.
    FITS_KEYS: typing.ClassVar[tuple[str, ...]] = (
        "zeropoints",
        "distance_modulus",
        "psf",
        "psf_fwhm_px",
        "psf_mag_range",
        "psf_min_snr",
        "psf_isolation_px",
        "psf_ci_range",
        "psf_ci_clip_mag",
        "psf_roundness_range",
        "psf_peak_max",
        "psf_max_stars",
        "psf_min_stars",
        "psf_cutout_px",
        "psf_oversampling",
        "psf_iterations",
    )

    def check(self):
        _require(
            self.kind in ("mock", "fits"),
            "field",
            "kind",
            f"must be 'mock' or 'fits', got {self.kind!r}",
        )
        if self.kind == "mock":
            ok = self.size in ("small", "legus") or _parse_size(self.size) is not None
            _require(
                ok,
                "field",
                "size",
                f"must be 'small', 'legus' or 'NYxNX' (e.g. '2000x2000'), got {self.size!r}",
            )
            return
        _require(bool(self.directory), "field", "directory", "is needed for kind = 'fits'")
        _require(
            self.pointing == "ngc628c",
            "field",
            "pointing",
            "is only read with kind = 'mock' (a FITS field is what its files are)",
        )
        _require(
            len(self.zeropoints) in (0, len(BANDS))
            and all(math.isfinite(z) for z in self.zeropoints),
            "field",
            "zeropoints",
            f"must be empty (from the FITS headers) or five finite Vega zeropoints "
            f"in the order {list(BANDS)}, got {list(self.zeropoints)}",
        )
        _require(
            math.isfinite(self.distance_modulus) and self.distance_modulus >= 0,
            "field",
            "distance_modulus",
            "must be a distance modulus [mag] (0: from the DISTMOD keywords)",
        )
        if self.psf == "gaussian":
            _require(
                len(self.psf_fwhm_px) == len(BANDS)
                and all(math.isfinite(v) and v > 0 for v in self.psf_fwhm_px),
                "field",
                "psf_fwhm_px",
                f"must be five FWHMs > 0 [px] in the order {list(BANDS)} for "
                f"psf = 'gaussian', got {list(self.psf_fwhm_px)}",
            )
        else:
            _require(
                not self.psf_fwhm_px, "field", "psf_fwhm_px", "is only read with psf = 'gaussian'"
            )
        for key in ("psf_mag_range", "psf_ci_range", "psf_roundness_range"):
            low, high = getattr(self, key)
            _require(
                low < high, "field", key, f"must be [low, high] with low < high, got {[low, high]}"
            )
        for key in ("psf_min_snr", "psf_ci_clip_mag", "psf_peak_max"):
            _require(getattr(self, key) >= 0, "field", key, "must be >= 0")
        _require(self.psf_isolation_px > 0, "field", "psf_isolation_px", "must be > 0 [px]")
        for key in ("psf_max_stars", "psf_min_stars", "psf_oversampling", "psf_iterations"):
            _require(getattr(self, key) >= 1, "field", key, "must be >= 1")
        _require(
            self.psf_min_stars <= self.psf_max_stars,
            "field",
            "psf_min_stars",
            "must be <= psf_max_stars",
        )
        _require(
            self.psf_cutout_px >= 5 and self.psf_cutout_px % 2 == 1,
            "field",
            "psf_cutout_px",
            "must be an odd number of pixels >= 5",
        )

    def plain(self) -> dict:
        """The resolved values; a mock field leaves out the FITS-only keys (so its fingerprints do
        not see them)."""
        values = dataclasses.asdict(self)
        if self.kind == "mock":
            values = {k: v for k, v in values.items() if k not in self.FITS_KEYS}
        if self.kind != "mock" or self.pointing == "ngc628c":
            values.pop("pointing")
        return _plain(values)

    def epsf_selection(self) -> dict:
        """The star selection as :class:`jaxcomp.ast.epsf.EPSFStarSelection` keyword arguments."""
        return {
            "mag_range": tuple(self.psf_mag_range),
            "min_snr": self.psf_min_snr,
            "isolation_radius_px": self.psf_isolation_px,
            "ci_range": tuple(self.psf_ci_range),
            "ci_clip_mag": self.psf_ci_clip_mag,
            "roundness_range": tuple(self.psf_roundness_range),
            "peak_max": self.psf_peak_max or None,
            "max_stars": self.psf_max_stars,
            "min_stars": self.psf_min_stars,
            "cutout_px": self.psf_cutout_px,
            "oversampling": self.psf_oversampling,
            "iterations": self.psf_iterations,
        }


@dataclasses.dataclass(frozen=True)
class LibrarySection:
    """``[library]``: the cluster library of the campaigns (uniform in log M, log T, A_V)."""

    n_clusters: int = 60_000
    log_mass_range: tuple[float, float] = (2.0, 8.0)
    log_age_range: tuple[float, float] = (5.0, 10.176)
    av_range: tuple[float, float] = (0.0, 3.0)
    radius_model: str = "flat"
    bands: tuple[str, ...] = BANDS
    nebular: bool = True
    nebular_covering_fraction: float = 0.5
    nebular_te_k: float = 1.0e4
    nebular_ne_cm3: float = 100.0
    nebular_av_factor: float = 1.0

    def check(self):
        from ..library.nebular import NE_RANGE_CM3, TE_RANGE_K

        _require(self.n_clusters >= 1, "library", "n_clusters", "must be >= 1")
        _require(
            0.0 <= self.nebular_covering_fraction <= 1.0,
            "library",
            "nebular_covering_fraction",
            "must lie in [0, 1] (fraction of ionising photons turned into nebular light)",
        )
        _require(
            TE_RANGE_K[0] <= self.nebular_te_k <= TE_RANGE_K[1],
            "library",
            "nebular_te_k",
            f"must lie in [{TE_RANGE_K[0]:.0f}, {TE_RANGE_K[1]:.0f}] K (pyneb's emissivity tables)",
        )
        _require(
            NE_RANGE_CM3[0] <= self.nebular_ne_cm3 <= NE_RANGE_CM3[1],
            "library",
            "nebular_ne_cm3",
            f"must lie in [{NE_RANGE_CM3[0]:.0f}, {NE_RANGE_CM3[1]:.0f}] cm^-3",
        )
        _require(
            1.0 <= self.nebular_av_factor <= 3.0,
            "library",
            "nebular_av_factor",
            "must lie in [1, 3] (nebular over stellar A_V)",
        )
        for key in ("log_mass_range", "log_age_range", "av_range"):
            low, high = getattr(self, key)
            _require(high > low, "library", key, "must be [low, high] with high > low")
        _require(self.av_range[0] >= 0, "library", "av_range", "A_V must be >= 0")
        _require(
            self.radius_model in ("flat", "K19"),
            "library",
            "radius_model",
            "must be 'flat' or 'K19'",
        )
        unknown = set(self.bands) - set(BANDS)
        _require(
            not unknown,
            "library",
            "bands",
            f"unknown band(s) {sorted(unknown)}; known: {list(BANDS)}",
        )


@dataclasses.dataclass(frozen=True)
class CampaignSection:
    """``[campaign]``: the training and test AST designs (paper section 3.2)."""

    r_eff_pc: tuple[float, ...] = tuple(float(r) for r in range(1, 11))
    clusters_per_frame: int = 500
    train_frames_per_reff: int = 49
    test_clusters_per_reff: int = 500
    test_repeats: int = 100
    reprocess: str = "full"
    edge_margin_px: float = 0.0

    def check(self):
        _require(
            len(self.r_eff_pc) > 0 and min(self.r_eff_pc) > 0,
            "campaign",
            "r_eff_pc",
            "must be a non-empty list of positive radii [pc]",
        )
        _require(self.clusters_per_frame >= 1, "campaign", "clusters_per_frame", "must be >= 1")
        _require(
            self.train_frames_per_reff >= 1, "campaign", "train_frames_per_reff", "must be >= 1"
        )
        _require(
            self.test_clusters_per_reff >= self.clusters_per_frame
            and self.test_clusters_per_reff % self.clusters_per_frame == 0,
            "campaign",
            "test_clusters_per_reff",
            f"must be a multiple of clusters_per_frame ({self.clusters_per_frame}): each repeat "
            "spreads a "
            "radius' test clusters over full frames, so that test and training frames are equally "
            "crowded "
            "(fewer injected clusters per frame raise the recovery the test measures above what "
            "the networks "
            "learned)",
        )
        _require(
            self.test_repeats >= 2,
            "campaign",
            "test_repeats",
            "must be >= 2 (p_true needs repeats)",
        )
        _require(
            self.reprocess in ("full", "local"),
            "campaign",
            "reprocess",
            "must be 'full' (rerun the pipeline on the whole injected frame) or 'local' (only on "
            "windows "
            "around the injected clusters; see jaxcomp.ast.local)",
        )
        _require(
            self.edge_margin_px >= 0 and math.isfinite(self.edge_margin_px),
            "campaign",
            "edge_margin_px",
            "must be a finite number of pixels >= 0 (how far from the image's edges clusters are "
            "injected)",
        )


def _train_default(name: str):
    """The default of ``TrainConfig.<name>`` (:class:`jaxcomp.selection.training.TrainConfig`)."""
    from ..selection.training import TrainConfig

    return getattr(TrainConfig(), name)


@dataclasses.dataclass(frozen=True)
class NetworksSection:
    """``[networks]``: which selection functions to train, and how (paper section 3.3)."""

    inputs: tuple[str, ...] = ("physical", "photometric")
    # the training defaults are TrainConfig's (read when a section is made: no JAX import here)
    hidden: tuple[int, ...] = dataclasses.field(
        default_factory=lambda: _train_default("hidden_widths")
    )
    epochs: int = dataclasses.field(default_factory=lambda: _train_default("epochs"))
    batch_size: int = dataclasses.field(default_factory=lambda: _train_default("batch_size"))
    learning_rates: tuple[float, ...] = dataclasses.field(
        default_factory=lambda: _train_default("learning_rates")
    )
    weight_decays: tuple[float, ...] = dataclasses.field(
        default_factory=lambda: _train_default("weight_decays")
    )
    members: int = dataclasses.field(default_factory=lambda: _train_default("n_members"))

    def check(self):
        _require(
            len(self.inputs) > 0
            and set(self.inputs) <= set(NETWORK_KINDS)
            and len(set(self.inputs)) == len(self.inputs),
            "networks",
            "inputs",
            f"must be a list of distinct entries from {list(NETWORK_KINDS)}",
        )
        _require(
            len(self.hidden) > 0 and min(self.hidden) >= 1,
            "networks",
            "hidden",
            "must list positive widths",
        )
        _require(self.epochs >= 1, "networks", "epochs", "must be >= 1")
        _require(self.batch_size >= 1, "networks", "batch_size", "must be >= 1")
        _require(
            len(self.learning_rates) > 0 and min(self.learning_rates) > 0,
            "networks",
            "learning_rates",
            "must be positive",
        )
        _require(
            len(self.weight_decays) > 0 and min(self.weight_decays) >= 0,
            "networks",
            "weight_decays",
            "must be >= 0",
        )
        _require(self.members >= 1, "networks", "members", "must be >= 1")


@dataclasses.dataclass(frozen=True)
class ValidationSection:
    """``[validation]``: bins with fewer than ``min_count`` test clusters are omitted (paper: 80 of
    5000).

    ``min_count = 0`` scales the paper's 80 to the size of the test set (at least 10).
    """

    min_count: int = 0

    def check(self):
        _require(self.min_count >= 0, "validation", "min_count", "must be >= 0")


@dataclasses.dataclass(frozen=True)
class PopulationSection:
    """``[population]``: a known population passed through the same pipeline (the simulated
    catalogue).

    Masses from a Schechter (or power-law) mass function, ages from a power law in T,
    A_V uniform; ``n_clusters`` are injected, ``clusters_per_frame`` at a time, into
    new frames of the field, and the catalogue is the recovered ones (with their true
    values: SED-fitting errors are not modelled).  Set ``enabled = false`` to skip.
    """

    enabled: bool = True
    mass: str = "schechter"
    alpha_M: float = -2.0
    log_M_break: float = 5.0
    log_mass_range: tuple[float, float] = (3.0, 7.0)
    age: str = "power_law"
    alpha_T: float = -0.8
    log_age_range: tuple[float, float] = (6.0, 9.5)
    av_range: tuple[float, float] = (0.0, 3.0)
    n_clusters: int = 10_000
    clusters_per_frame: int = 500

    def check(self):
        _require(
            self.mass in ("schechter", "power_law"),
            "population",
            "mass",
            "must be 'schechter' or 'power_law'",
        )
        _require(self.age == "power_law", "population", "age", "must be 'power_law'")
        for key in ("log_mass_range", "log_age_range", "av_range"):
            low, high = getattr(self, key)
            _require(high > low, "population", key, "must be [low, high] with high > low")
        _require(self.n_clusters >= 1, "population", "n_clusters", "must be >= 1")
        _require(self.clusters_per_frame >= 1, "population", "clusters_per_frame", "must be >= 1")
        _require(
            -3.0 < self.alpha_M < -1.0,
            "population",
            "alpha_M",
            "must lie inside the fit's prior (-3, -1)",
        )
        _require(
            -3.0 < self.alpha_T < 1.0,
            "population",
            "alpha_T",
            "must lie inside the fit's prior (-3, 1)",
        )
        _require(
            3.5 < self.log_M_break < 7.5,
            "population",
            "log_M_break",
            "must lie inside the fit's prior (3.5, 7.5)",
        )


@dataclasses.dataclass(frozen=True)
class CatalogueSection:
    """``[catalogue]``: which catalogue to correct and fit.

    ``source = "population"``: the simulated catalogue of ``[population]``;
    ``"legus:ngc628c"``: the shipped LEGUS NGC 628C class 1-3 clusters; or a path to a
    table with ``log_mass``, ``log_age``, ``av``.
    """

    source: str = "population"

    def check(self):
        ok = self.source in ("population", "legus:ngc628c") or bool(self.source)
        _require(ok, "catalogue", "source", "must be 'population', 'legus:ngc628c' or a table path")


#: Networks a run can train: the paper's two, and the same with the effective radius as
#: an input (validated per cluster; marginalised over the radius prescription for the
#: correction and the fit, see :mod:`jaxcomp.selection.radius`).
#: The selection functions a run can train (``[networks] inputs``).
NetworkKind = typing.Literal["physical", "photometric", "physical+r_eff_pc", "photometric+r_eff_pc"]
NETWORK_KINDS = typing.get_args(NetworkKind)
#: Networks the correction and the fit can use (they need p_obs(log M, log T, A_V)).
DEMOGRAPHICS_SELECTIONS = ("physical", "physical+r_eff_pc")


@dataclasses.dataclass(frozen=True)
class CorrectSection:
    """``[correct]``: completeness-corrected CAF and CMF (eq. 17-18) with the physical network.

    ``selection``: ``"physical"`` (the paper's network) or ``"physical+r_eff_pc"`` (the
    radius-aware network averaged over the campaign's radii with the library's radius
    weights, :class:`jaxcomp.selection.RadiusMarginalisedSelection`).

    The CAF is corrected assuming the mass function of ``[population]`` (or, for real
    data, ``mass_alpha``/``mass_log_break``), the CMF assuming ``age_alpha``.
    """

    enabled: bool = True
    grid: tuple[int, int, int] = (121, 105, 13)
    age_bins: tuple[float, ...] = ()
    mass_bins: tuple[float, ...] = ()
    selection: str = "physical"

    def check(self):
        _require(
            self.selection in DEMOGRAPHICS_SELECTIONS,
            "correct",
            "selection",
            f"must be one of {list(DEMOGRAPHICS_SELECTIONS)}",
        )
        _require(
            len(self.grid) == 3 and min(self.grid) >= 5,
            "correct",
            "grid",
            "must be three node counts >= 5 (log_mass, log_age, av)",
        )
        for key in ("age_bins", "mass_bins"):
            edges = getattr(self, key)
            _require(
                len(edges) == 0
                or (len(edges) >= 2 and all(b > a for a, b in zip(edges, edges[1:]))),
                "correct",
                key,
                "must be empty (automatic) or increasing edges",
            )


@dataclasses.dataclass(frozen=True)
class FitSection:
    """``[fit]``: the NumPyro NUTS fit of the catalogue with the physical network's p_obs.

    ``selection`` as in ``[correct]``.  With ``[[fields]]`` (:mod:`jaxcomp.workflow.fields`)
    the stage fits those fields jointly instead: ``pooling`` (``"complete"``, ``"partial"``,
    ``"none"``) is the model's, and ``compare_pooling = true`` also fits the other two forms
    and ranks them by PSIS-LOO, ``parametrisation`` (``"non_centred"``, ``"centred"``) the
    coordinates of the per-field values under partial pooling
    (:class:`~jaxcomp.demographics.MultiFieldModel`); all three are read (and recorded) only
    with fields.
    """

    enabled: bool = True
    mass: str = "schechter"
    age: str = "power_law"
    chains: int = 2
    warmup: int = 500
    samples: int = 500
    grid: tuple[int, int, int] = (121, 105, 13)
    selection: str = "physical"
    pooling: typing.Literal["complete", "partial", "none"] = "partial"
    compare_pooling: bool = False
    parametrisation: typing.Literal["non_centred", "centred"] = "non_centred"

    #: The keys only a configuration with ``[[fields]]`` reads.
    FIELDS_KEYS: typing.ClassVar[tuple[str, ...]] = (
        "pooling",
        "compare_pooling",
        "parametrisation",
    )

    def check(self):
        _require(
            self.selection in DEMOGRAPHICS_SELECTIONS,
            "fit",
            "selection",
            f"must be one of {list(DEMOGRAPHICS_SELECTIONS)}",
        )
        _require(
            self.mass in ("schechter", "power_law"),
            "fit",
            "mass",
            "must be 'schechter' or 'power_law'",
        )
        _require(
            self.age in ("power_law", "broken_power_law"),
            "fit",
            "age",
            "must be 'power_law' or 'broken_power_law'",
        )
        for key in ("chains", "warmup", "samples"):
            _require(getattr(self, key) >= 1, "fit", key, "must be >= 1")
        _require(
            len(self.grid) == 3 and min(self.grid) >= 5,
            "fit",
            "grid",
            "must be three node counts >= 5",
        )


_SECTIONS: dict[str, type] = {
    "run": RunSection,
    "field": FieldSection,
    "library": LibrarySection,
    "campaign": CampaignSection,
    "networks": NetworksSection,
    "validation": ValidationSection,
    "population": PopulationSection,
    "catalogue": CatalogueSection,
    "correct": CorrectSection,
    "fit": FitSection,
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole run (see the module docstring); build it with :func:`load_config` or
    :func:`parse_config`."""

    run: RunSection = RunSection()
    field: FieldSection = FieldSection()
    library: LibrarySection = LibrarySection()
    campaign: CampaignSection = CampaignSection()
    networks: NetworksSection = NetworksSection()
    validation: ValidationSection = ValidationSection()
    population: PopulationSection = PopulationSection()
    catalogue: CatalogueSection = CatalogueSection()
    correct: CorrectSection = CorrectSection()
    fit: FitSection = FitSection()
    #: ``[[fields]]`` (:class:`jaxcomp.workflow.fields.FieldEntry`): fitted jointly by ``fit``.
    fields: tuple = ()

    def to_dict(self) -> dict:
        """The resolved configuration (defaults filled in) as plain JSON-able values.

        ``fields`` (a list of tables) and the ``[fit]`` keys only fields read are present
        only with ``[[fields]]``, so that a configuration without them keeps its hashes.
        """
        values = {
            name: (
                getattr(self, name).plain()
                if hasattr(getattr(self, name), "plain")
                else _plain(dataclasses.asdict(getattr(self, name)))
            )
            for name in _SECTIONS
        }
        if self.fields:
            values["fields"] = [_plain(dataclasses.asdict(entry)) for entry in self.fields]
        else:
            values["fit"] = {
                k: v for k, v in values["fit"].items() if k not in FitSection.FIELDS_KEYS
            }
        return values

    def section_hash(self, *names: str) -> str:
        """SHA-256 of the named sections' resolved values."""
        payload = json.dumps({n: self.to_dict()[n] for n in names}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def hash(self) -> str:
        """SHA-256 of the whole resolved configuration."""
        return self.section_hash(*self.to_dict())

    def to_toml(self) -> str:
        """The resolved configuration as TOML (round-trips through :func:`parse_config`)."""
        lines = []
        for name, values in self.to_dict().items():
            for table in values if isinstance(values, list) else [values]:
                lines.append(f"[[{name}]]" if isinstance(values, list) else f"[{name}]")
                lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
                lines.append("")
        return "\n".join(lines)


# ------------------------------------------------------------------ parsing
def load_config(path: str | os.PathLike) -> RunConfig:
    """Read and check a TOML run configuration."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    config = parse_config(data, base=path.parent)
    check_inputs(config)
    return config


def check_inputs(config: RunConfig) -> None:
    """Check the files a configuration reads (before any stage runs or any directory is made).

    ``[catalogue] source``, when a table path and read by an enabled ``[correct]`` or ``[fit]``,
    must exist and pass :func:`jaxcomp.demographics.validate_catalogue` (the checks of
    ``jaxcomp correct`` and ``jaxcomp fit``); a FITS ``[field] directory`` must exist and hold
    FITS files; ``[[fields]]`` catalogues and artefacts
    (:func:`jaxcomp.workflow.fields.check_field_inputs`).  Raises :class:`ConfigError` naming
    the key or the field.
    """
    from .fields import check_field_inputs

    check_field_inputs(config)
    source = config.catalogue.source
    reads_catalogue = config.correct.enabled or (config.fit.enabled and not config.fields)
    if source not in ("population", "legus:ngc628c") and reads_catalogue:
        from ..demographics.catalogue import load_catalogue

        try:
            load_catalogue(source, say=lambda *a: None)
        except (OSError, ValueError) as error:
            raise ConfigError(f"[catalogue] source = {source!r}: {error}") from None
    if config.field.kind == "fits":
        directory = Path(config.field.directory)
        if not directory.is_dir():
            raise ConfigError(f"[field] directory = {config.field.directory!r} is not a directory")
        if not fits_files(directory):
            raise ConfigError(
                f"[field] directory = {config.field.directory!r} holds no FITS files (*.fits, "
                "*.fits.gz)"
            )


def fits_files(directory: Path) -> list[Path]:
    """The FITS files of a field directory, sorted by name."""
    return sorted(
        p for p in directory.iterdir() if p.is_file() and ".fit" in "".join(p.suffixes).lower()
    )


def parse_config(data: Mapping, *, base: Path | None = None) -> RunConfig:
    """Check a configuration mapping (as read from TOML) and build the :class:`RunConfig`."""
    from .fields import check_fields, parse_fields

    if not isinstance(data, Mapping):
        raise ConfigError("the configuration must be a table of sections")
    unknown = sorted(set(data) - set(_SECTIONS) - {"fields"})
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(f'[{u}]' for u in unknown)}; "
            f"known: {', '.join(f'[{s}]' for s in _SECTIONS)}, [[fields]]"
        )
    sections = {}
    for name, cls in _SECTIONS.items():
        values = data.get(name, {})
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{name}] must be a table of keys, got {type(values).__name__}")
        sections[name] = _build_section(name, cls, values)
    if sections["field"].kind == "fits":
        given = sections["field"].directory
        directory = Path(given)
        if base is not None and not directory.is_absolute():
            directory = (base / directory).resolve()
            sections["field"] = dataclasses.replace(sections["field"], directory=str(directory))
        if not directory.is_dir():
            raise ConfigError(
                f"[field] directory {given!r} does not exist or is not a directory"
                + (f" (looked for {str(directory)!r})" if str(directory) != given else "")
            )
    fit_values = data.get("fit", {})
    fields = parse_fields(
        data.get("fields"),
        fit_values if isinstance(fit_values, Mapping) else {},
        default_selection=sections["fit"].selection,
        base=base,
    )
    config = RunConfig(**sections, fields=fields)
    _check_consistency(config)
    check_fields(config)
    return config


def _build_section(name: str, cls: type, values: Mapping):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"[{name}] unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {key: _coerce(name, key, value, hints[key]) for key, value in values.items()}
    section = cls(**kwargs)
    section.check()
    return section


def _coerce(section: str, key: str, value, hint):
    where = f"[{section}] {key}"
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if origin is typing.Literal:
        options = typing.get_args(hint)
        if value not in options:
            listed = (
                " or ".join(repr(o) for o in options)
                if len(options) <= 2
                else "one of " + ", ".join(repr(o) for o in options)
            )
            raise ConfigError(f"{where} must be {listed}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(section, f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(
            _coerce(section, f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args))
        )
    raise TypeError(f"unsupported configuration type {hint} for {where}")  # pragma: no cover


def _check_consistency(config: RunConfig) -> None:
    """Cross-section checks: every stage must be able to run with what the others produce."""
    networks, library = config.networks, config.library
    if any(k.startswith("photometric") for k in networks.inputs) and set(library.bands) != set(
        BANDS
    ):
        raise ConfigError(
            f"[networks] inputs: a photometric network needs all five bands {list(BANDS)}, but "
            f"[library] bands = {list(library.bands)}"
        )
    needs_physical = config.correct.enabled or (config.fit.enabled and not config.fields)
    for name, section in (("correct", config.correct), ("fit", config.fit)):
        if name == "fit" and config.fields:
            continue  # each field names its selection (jaxcomp.workflow.fields.check_fields)
        if section.enabled and section.selection not in networks.inputs:
            raise ConfigError(
                f"[networks] inputs: [{name}] selection = {section.selection!r} needs that "
                "network; "
                f"add {section.selection!r} to inputs or set enabled = false in [{name}]"
            )
    if config.catalogue.source == "population" and not config.population.enabled and needs_physical:
        raise ConfigError("[catalogue] source = 'population' but [population] enabled = false")
    campaign = config.campaign
    if any(abs(r - round(r)) > 1e-9 for r in campaign.r_eff_pc):
        raise ConfigError(
            "[campaign] r_eff_pc: the library stores integer radii [pc]; use whole numbers"
        )
    if library.radius_model == "flat":
        need = (
            campaign.train_frames_per_reff * campaign.clusters_per_frame
            + campaign.test_clusters_per_reff
        )
        expected = library.n_clusters / len(campaign.r_eff_pc)
        if expected - 4.0 * expected**0.5 < need:
            minimum = int(len(campaign.r_eff_pc) * (need + 4.0 * need**0.5 + 8.0)) + 1
            raise ConfigError(
                f"[library] n_clusters = {library.n_clusters} is too small for the campaigns: each "
                "of "
                f"the {len(campaign.r_eff_pc)} radii needs {need} distinct clusters (training "
                "frames "
                f"x clusters per frame + test clusters); use n_clusters >= {minimum}"
            )
    population = config.population
    if population.enabled:
        for key, lib_key in (
            ("log_mass_range", "log_mass_range"),
            ("log_age_range", "log_age_range"),
            ("av_range", "av_range"),
        ):
            low, high = getattr(population, key)
            lib_low, lib_high = getattr(library, lib_key)
            if low < lib_low or high > lib_high:
                raise ConfigError(
                    f"[population] {key} = [{low}, {high}] reaches outside [library] {lib_key} = "
                    f"[{lib_low}, {lib_high}], where the selection function was never trained"
                )
    if config.field.kind == "mock":
        size = _parse_size(config.field.size)
        if size is not None and min(size) < 200:
            raise ConfigError("[field] size: a mock field needs at least 200 x 200 px")


# ------------------------------------------------------------------ helpers
def _require(condition: bool, section: str, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"[{section}] {key} {message}")


def _parse_size(text: str):
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")  # pragma: no cover
