"""The sections of a run configuration other than ``[field]`` (:mod:`.config_field`): ``[run]``,
``[library]``, ``[campaign]``, ``[networks]``, ``[validation]``, ``[population]``,
``[catalogue]``, ``[correct]``, ``[fit]``, each a frozen dataclass with its defaults and its
``check``, and the network kinds a run can train."""

from __future__ import annotations

import dataclasses
import math
import typing

from ..survey import BANDS
from .config_values import _plain, _require

__all__ = [
    "DEMOGRAPHICS_SELECTIONS",
    "NETWORK_KINDS",
    "CampaignSection",
    "CatalogueSection",
    "CorrectSection",
    "FitSection",
    "LibrarySection",
    "NetworkKind",
    "NetworksSection",
    "PopulationSection",
    "RunSection",
    "ValidationSection",
]


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
    """``[campaign]``: the training and test AST designs (paper section 3.2).

    ``centring``: where the pipeline's apertures sit in each band
    (:attr:`jaxcomp.ast.PhotometryConfig.centring`): ``"iraf_centroid"`` (default) at each
    band's own IRAF apphot centroid as LEGUS measured (:func:`jaxcomp.ast.iraf_centroid`),
    ``"none"`` at the detection barycentres. ``"none"`` is not written into the resolved
    configuration, so it keeps the fingerprints of runs made before the option existed.
    """

    r_eff_pc: tuple[float, ...] = tuple(float(r) for r in range(1, 11))
    clusters_per_frame: int = 500
    train_frames_per_reff: int = 49
    test_clusters_per_reff: int = 500
    test_repeats: int = 100
    reprocess: str = "full"
    edge_margin_px: float = 0.0
    centring: typing.Literal["iraf_centroid", "none"] = "iraf_centroid"

    def plain(self) -> dict:
        """The resolved values; ``centring`` only when not ``"none"``."""
        values = dataclasses.asdict(self)
        if self.centring == "none":
            values.pop("centring")
        return _plain(values)

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
