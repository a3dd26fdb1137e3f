"""Configuration of an artificial cluster test campaign (:class:`CampaignConfig`) and its frames
(:class:`FrameSpec`).

Also the campaign's error type (:class:`CampaignError`) and the library columns every
campaign needs. The campaign itself is described in :mod:`jaxcomp.ast.campaign`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Literal

import numpy as np

from ..errors import JaxcompError
from ..survey import BANDS
from .inject import POSITION_SMOOTHING_PC
from .settings import DEFAULT_CONFIG, PhotometryConfig, PipelineConfig

__all__ = ["CampaignConfig", "FrameSpec", "CampaignError", "REQUIRED_LIBRARY_COLUMNS"]

#: Library columns every campaign needs (plus ``r_eff_pc`` when matching radii).
REQUIRED_LIBRARY_COLUMNS: tuple[str, ...] = ("cluster_id", *(f"mag_{b}" for b in BANDS))


class CampaignError(JaxcompError, ValueError):
    """A campaign cannot start: bad inputs, or a directory made for another campaign."""


@dataclass(frozen=True)
class CampaignConfig:
    """Configuration of an artificial cluster test campaign (hashed into the manifest).

    Parameters
    ----------
    design : {"train", "test"}
        Training (no cluster used twice) or repeated test (the same clusters in every
        frame of a radius).
    r_eff_pc : tuple of float
        The radii [pc]; each frame has one (default 1..10 pc).
    frames_per_reff : int
        Frames per radius (train: 49 in the paper; test: the repeats, 100 in the paper).
    clusters_per_frame : int
        Clusters injected per frame (paper: 500 in the 7040 x 6400 px NGC 628C frame).
    clusters_per_reff : int, optional
        Test design: distinct clusters per radius (default ``clusters_per_frame``); when
        larger, each repeat spreads them over ``ceil(clusters_per_reff / clusters_per_frame)``
        frames, so that a small field can hold the paper's density of injected clusters.
    seed : int
        Campaign seed (plan and every frame's positions and noise).
    match_library_reff : bool
        Draw a radius' clusters from library rows with that ``r_eff_pc`` (default), or
        from the whole library (setting their radius).
    pipeline : PipelineConfig
        The catalogue pipeline.
    smoothing_pc : float
        Smoothing of the white light for the position density (paper: 120 pc).
    noise : bool
        Shot noise of the injected clusters.
    reprocess : {"full", "local"}
        Re-run the pipeline on the whole injected frame (the paper's procedure), or only
        on windows around the injected clusters with the frame-wide statistics frozen at
        the pre-injection frame's (:mod:`jaxcomp.ast.local`: faster when the clusters
        cover a small part of the frame, and the injections do not move the frame's
        detection threshold).
    edge_margin_px : float
        Inject no cluster closer than this [px] to the image's edges (default 0: anywhere
        in the footprint, the paper's procedure). For a crop of a larger frame, whose
        edges are artificial: a cluster whose 4 px photometry aperture leaves the image
        is lost, which in the full frame happens only along the footprint's border
        (within 4 px of the edge of the demo's 1500 px crop lie 1.1% of its area, 4.5x
        the fraction of a 7040 x 6400 px frame).  ``5`` keeps the aperture inside.
    """

    design: Literal["train", "test"] = "train"
    r_eff_pc: tuple[float, ...] = tuple(float(r) for r in range(1, 11))
    frames_per_reff: int = 49
    clusters_per_frame: int = 500
    seed: int = 0
    match_library_reff: bool = True
    pipeline: PipelineConfig = dc_field(default_factory=lambda: DEFAULT_CONFIG)
    smoothing_pc: float = POSITION_SMOOTHING_PC
    noise: bool = True
    clusters_per_reff: int | None = None
    reprocess: Literal["full", "local"] = "full"
    edge_margin_px: float = 0.0

    def __post_init__(self):
        if self.design not in ("train", "test"):
            raise CampaignError(f"design must be 'train' or 'test', got {self.design!r}")
        radii = tuple(float(r) for r in np.atleast_1d(self.r_eff_pc))
        if not radii or any(not (math.isfinite(r) and r > 0) for r in radii):
            raise CampaignError(f"r_eff_pc must be positive radii in pc, got {self.r_eff_pc!r}")
        if len(set(radii)) != len(radii):
            raise CampaignError(f"r_eff_pc has repeated radii: {radii}")
        object.__setattr__(self, "r_eff_pc", radii)
        for name in ("frames_per_reff", "clusters_per_frame"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise CampaignError(f"{name} must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.clusters_per_reff is not None:
            v = self.clusters_per_reff
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise CampaignError(
                    f"clusters_per_reff must be a positive integer or None, got {v!r}"
                )
            if self.design != "test":
                raise CampaignError(
                    "clusters_per_reff is for the test design (training frames never reuse a "
                    "cluster)"
                )
            object.__setattr__(self, "clusters_per_reff", int(v))
        if self.reprocess not in ("full", "local"):
            raise CampaignError(f"reprocess must be 'full' or 'local', got {self.reprocess!r}")
        margin = self.edge_margin_px
        if (
            isinstance(margin, bool)
            or not isinstance(margin, (int, float, np.integer, np.floating))
            or not (math.isfinite(margin) and margin >= 0)
        ):
            raise CampaignError(
                f"edge_margin_px must be a finite number of pixels >= 0, got {margin!r}"
            )
        object.__setattr__(self, "edge_margin_px", float(margin))
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, (int, np.integer))
            or self.seed < 0
        ):
            raise CampaignError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if not isinstance(self.pipeline, PipelineConfig):
            raise CampaignError("pipeline must be a jaxcomp.ast.pipeline.PipelineConfig")
        if not (math.isfinite(self.smoothing_pc) and self.smoothing_pc > 0):
            raise CampaignError(f"smoothing_pc must be > 0, got {self.smoothing_pc}")

    @property
    def test_clusters(self) -> int:
        """Distinct clusters per radius of the test design."""
        return self.clusters_per_frame if self.clusters_per_reff is None else self.clusters_per_reff

    @property
    def frames_per_repeat(self) -> int:
        """Frames that one repeat of a radius' test clusters needs (1 for the training design)."""
        return -(-self.test_clusters // self.clusters_per_frame) if self.design == "test" else 1

    @property
    def n_frames(self) -> int:
        return len(self.r_eff_pc) * self.frames_per_reff * self.frames_per_repeat

    def to_dict(self) -> dict:
        """JSON-able form (nested dataclasses as dicts, tuples as lists).

        Without centring (``pipeline.photometry.centring == "none"``) the centring keys
        (:attr:`PhotometryConfig.CENTRING_KEYS`) are left out: they change nothing then, and
        the hashes of campaigns made before they existed stay valid.
        """
        values = json.loads(json.dumps(dataclasses.asdict(self), default=list))
        photometry = values["pipeline"]["photometry"]
        if photometry["centring"] == "none":
            for key in PhotometryConfig.CENTRING_KEYS:
                del photometry[key]
        return values

    def hash(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict`."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class FrameSpec:
    """One frame of a campaign: its index, radius, repeat number and library rows."""

    frame: int
    r_eff_pc: float
    repeat: int
    rows: np.ndarray  # positional indices into the library
