"""Artificial cluster test campaigns: many frames, resumable, on a process pool or a Dask cluster.

A campaign (paper section 3.2.4) is a list of frames, each injecting
``clusters_per_frame`` library clusters of one effective radius into the field and
labelling them with the whole catalogue pipeline (:func:`jaxcomp.ast.inject.run_frame`).

Designs (:class:`CampaignConfig`)
    ``"train"``: for each radius in ``r_eff_pc``, ``frames_per_reff`` frames of distinct
    clusters; no library cluster is used twice in the campaign (the paper's 49 frames x
    10 radii x 500 = 245,000 labels). ``"test"``: for each radius, one set of
    ``clusters_per_frame`` clusters re-injected in ``frames_per_reff`` frames with new
    positions and noise (paper: 500 clusters x 100 repeats per radius), so that
    :func:`p_true` measures each cluster's recovery probability. With
    ``match_library_reff`` (default) a radius' clusters are drawn from the library rows
    whose ``r_eff_pc`` equals it (the paper's procedure); otherwise from the whole
    library, and their ``r_eff_pc`` is set to the frame's radius. ``exclude`` (cluster
    ids, e.g. a training campaign's) keeps clusters out of a campaign.

Determinism
    The plan (which rows go to which frame) follows from ``SeedSequence(seed,
    spawn_key=(0, i_radius))``; frame ``k`` is run with ``SeedSequence(seed,
    spawn_key=(1, k))`` (positions and shot noise). The pre-injection products
    (baseline catalogue, position density) are computed once by the caller and shipped
    to the workers. The labels are therefore identical whatever the executor, the
    number of workers, the order in which frames finish, or interruptions.

On disk (``directory``)
    ``manifest.json``: the configuration and its hash, the field's content digest, the
    library's digest and the plan's digest. A directory made for a different campaign
    is refused with a message naming what differs. ``frames/frame_<k>.parquet``: one
    file per finished frame, written to a temporary file and renamed (atomic), so a
    frame file exists completely or not at all. A rerun skips finished frames; a run
    killed at any moment and restarted gives the same labels as an uninterrupted one.
    ``labels.parquet``: all frames, in frame order, written (atomically) when the last
    frame is done; ``summary.json``: per-step timings. A lock file keeps two runners
    out of one directory.

Executors
    ``"process"`` (default): ``concurrent.futures.ProcessPoolExecutor`` with the
    ``"spawn"`` start method (safe with threads and JAX). The workers are started without
    re-running the caller's ``__main__`` (they need nothing from it), so a plain script
    works with or without the ``if __name__ == "__main__":`` guard, as do notebooks and
    ``python -c``. Each worker receives the field once and runs with single-threaded BLAS.
    ``"serial"``: in this process. A ``dask.distributed``
    cluster: ``scheduler="tcp://host:port"`` (or a ``distributed.Client``); the field
    and baseline are scattered to every worker, frames are tasks, and a frame whose
    worker dies is rerun elsewhere by the scheduler. Results come back to the caller,
    which alone writes the directory (workers need no shared file system).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import sys
import uuid
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from .._version import __version__
from ..errors import JaxcompError
from ..survey import BANDS, NGC628_DISTANCE_MODULUS
from .cuts import STAGES
from .field import Field
from .inject import MIN_SPACING_REFF, POSITION_SMOOTHING_PC, FieldBaseline, prepare_field, run_frame
from .settings import DEFAULT_CONFIG, PipelineConfig

__all__ = [
    "CampaignConfig",
    "FrameSpec",
    "CampaignError",
    "REQUIRED_LIBRARY_COLUMNS",
    "validate_library",
    "check_field_capacity",
    "plan_campaign",
    "field_digest",
    "run_campaign",
    "read_campaign",
    "campaign_status",
    "p_true",
    "plot_recovery",
]

#: Library columns every campaign needs (plus ``r_eff_pc`` when matching radii).
REQUIRED_LIBRARY_COLUMNS: tuple[str, ...] = ("cluster_id", *(f"mag_{b}" for b in BANDS))
#: Random sequential adsorption of discs jams at this covered fraction of the plane.
RSA_JAMMING_FRACTION: float = 0.547
_MANIFEST = "manifest.json"
_FORMAT = "jaxcomp-ast-campaign/1"


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
        """JSON-able form (nested dataclasses as dicts, tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))

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


# ---------------------------------------------------------------------------------------
# validation and planning


def _as_dataframe(library):
    import pandas as pd
    from astropy.table import Table

    if isinstance(library, pd.DataFrame):
        return library.reset_index(drop=True)
    if isinstance(library, Table):
        return library.to_pandas().reset_index(drop=True)
    if isinstance(library, (str, os.PathLike)):
        from .._io import read_table

        return read_table(library).to_pandas().reset_index(drop=True)
    try:
        return pd.DataFrame(library)
    except Exception as error:  # noqa: BLE001
        raise CampaignError(
            f"library must be a table (pandas, astropy, path), got {type(library).__name__}"
        ) from error


def validate_library(library, config: CampaignConfig | None = None):
    """Check a library table for a campaign; return it as a pandas DataFrame.

    Needs ``cluster_id`` (unique integers) and ``mag_<band>`` for the five bands
    (numbers; NaN means no light in that band), and ``r_eff_pc`` when
    ``config.match_library_reff``. Raises :class:`CampaignError` naming what is wrong.
    """
    df = _as_dataframe(library)
    config = CampaignConfig() if config is None else config
    need = list(REQUIRED_LIBRARY_COLUMNS) + (["r_eff_pc"] if config.match_library_reff else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        hint = (
            " (or set match_library_reff=False to give every cluster the frame's radius)"
            if missing == ["r_eff_pc"]
            else ""
        )
        raise CampaignError(f"the library lacks column(s) {missing}; a campaign needs {need}{hint}")
    if len(df) == 0:
        raise CampaignError("the library is empty")
    ids = df["cluster_id"].to_numpy()
    if not np.issubdtype(ids.dtype, np.integer):
        raise CampaignError(f"cluster_id must be integers, got dtype {ids.dtype}")
    if len(np.unique(ids)) != len(ids):
        raise CampaignError("cluster_id has duplicates; each library cluster needs a unique id")
    for c in need[1:]:
        if not np.issubdtype(df[c].to_numpy().dtype, np.number):
            raise CampaignError(f"library column {c!r} must be numeric, got dtype {df[c].dtype}")
    for band in BANDS:
        _check_magnitudes(f"mag_{band}", df[f"mag_{band}"].to_numpy(dtype=np.float64))
    return df


#: Apparent Vega magnitudes of library clusters lie inside this range (a 1e8 Msun cluster in
#: the LMC is ~4 mag, a 100 Msun one at 30 Mpc ~38 mag): a column with more than
#: ``1 - PLAUSIBLE_FRACTION`` of its values outside it holds something else (fluxes or count
#: rates, spread over decades; absolute magnitudes; sentinels).
PLAUSIBLE_MAGNITUDES: tuple[float, float] = (5.0, 45.0)
PLAUSIBLE_FRACTION: float = 0.9


def _check_magnitudes(column: str, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise CampaignError(
            f"library column {column!r} has no finite magnitude (all NaN or infinite): every "
            "injected cluster would be invisible; regenerate or fix the library"
        )
    low, high = PLAUSIBLE_MAGNITUDES
    outside = int(np.count_nonzero((finite < low) | (finite > high)))
    if outside > (1.0 - PLAUSIBLE_FRACTION) * finite.size:
        raise CampaignError(
            f"library column {column!r} does not look like apparent Vega magnitudes: {outside} of "
            f"{finite.size} "
            f"values lie outside {low:g} to {high:g} mag (median {np.median(finite):.4g}); fluxes "
            "or count rates "
            "must be converted first (mag = zeropoint - 2.5 log10(flux))"
        )


def check_field_capacity(field: Field, config: CampaignConfig) -> None:
    """Raise :class:`CampaignError` if the field cannot hold a frame at the minimum spacing.

    The clusters of a frame are drawn one by one and rejected if closer than
    3 r_eff to one already placed (random sequential adsorption); that process jams
    when discs of diameter 3 r_eff cover ~54.7% of the area, so a frame of ``n``
    clusters needs ``n pi (3 r_eff)^2 / 4 <= 0.547 x footprint``.
    """
    area = int(np.count_nonzero(field.footprint))
    r_max = max(config.r_eff_pc)
    sep = MIN_SPACING_REFF * float(field.r_eff_px(r_max))
    n_max = RSA_JAMMING_FRACTION * area / (math.pi * sep * sep / 4.0)
    if config.clusters_per_frame > n_max:
        raise CampaignError(
            f"the field is too small for {config.clusters_per_frame} clusters per frame at r_eff = "
            f"{r_max:g} pc: "
            f"they must be {sep:.1f} px apart (3 r_eff) and random placement fills at most "
            f"~{int(n_max)} in its "
            f"{area} px footprint; use fewer clusters per frame, smaller radii or a larger field"
        )


def plan_campaign(
    library, config: CampaignConfig, exclude: Sequence[int] | None = None
) -> list[FrameSpec]:
    """The frames of a campaign (deterministic in the library, config and ``exclude``)."""
    df = validate_library(library, config)
    ids = df["cluster_id"].to_numpy()
    usable = np.ones(len(df), bool)
    if exclude is not None:
        usable &= ~np.isin(
            ids, np.asarray(list(exclude) if not isinstance(exclude, np.ndarray) else exclude)
        )
    per_frame = config.clusters_per_frame
    need = per_frame * config.frames_per_reff if config.design == "train" else config.test_clusters
    frames: list[FrameSpec] = []
    if not config.match_library_reff:
        rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0,)))
        pool = rng.permutation(np.nonzero(usable)[0])
        total = need * len(config.r_eff_pc)
        if pool.size < total:
            raise CampaignError(
                f"the library has {pool.size} usable clusters but the campaign needs {total} "
                f"({len(config.r_eff_pc)} radii x {need}) without reuse"
            )
    for i, r in enumerate(config.r_eff_pc):
        if config.match_library_reff:
            radius = df["r_eff_pc"].to_numpy(dtype=np.float64)
            subset = np.nonzero(usable & np.isclose(radius, r, rtol=0, atol=1e-6))[0]
            rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0, i)))
            chosen = rng.permutation(subset)
            if chosen.size < need:
                what = (
                    "frames_per_reff x clusters_per_frame"
                    if config.design == "train"
                    else "test clusters"
                )
                raise CampaignError(
                    f"the library has {chosen.size} usable clusters with r_eff_pc = {r:g} but the "
                    f"{config.design} "
                    f"design needs {need} "
                    f"({what}) without reuse; generate a larger library or use fewer frames"
                )
        else:
            chosen = pool[i * need : (i + 1) * need]
        for j in range(config.frames_per_reff):
            if config.design == "train":
                parts = [chosen[j * per_frame : (j + 1) * per_frame]]
            else:
                parts = [chosen[c : min(c + per_frame, need)] for c in range(0, need, per_frame)]
            for rows in parts:
                frames.append(
                    FrameSpec(
                        frame=len(frames),
                        r_eff_pc=float(r),
                        repeat=j if config.design == "test" else 0,
                        rows=np.sort(rows),
                    )
                )
    return frames


def _plan_digest(frames: list[FrameSpec]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(f"{f.frame}:{f.r_eff_pc!r}:{f.repeat}:".encode())
        h.update(np.asarray(f.rows, np.int64).tobytes())
    return h.hexdigest()


def _library_digest(df) -> str:
    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([str(c) for c in df.columns]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def field_digest(field: Field) -> str:
    """SHA-256 over a field's pixels, footprint, calibration, PSFs and distance."""
    from .._io import array_digest

    meta = {
        "zeropoints": dict(field.zeropoints),
        "exptimes": dict(field.exptimes),
        "psf": {b: field.psf[b].describe() for b in BANDS},
        "pixel_scale": field.pixel_scale_arcsec,
        "distance_modulus": field.distance_modulus,
    }
    arrays = [field.images[b] for b in BANDS] + [np.asarray(field.footprint)]
    arrays += [np.asarray(field.psf[b].image) for b in BANDS if not field.psf[b].is_gaussian]
    h = hashlib.sha256(array_digest(*arrays).encode())
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# running one frame (in whatever process)


def _slim_baseline(b: FieldBaseline) -> FieldBaseline:
    """What a frame needs of the baseline (drops the full-size white light)."""
    return dataclasses.replace(b, white_light=None)


def _frame_seed(seed: int, frame: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(int(seed), spawn_key=(1, int(frame)))


def _run_frame_payload(
    field: Field, baseline: FieldBaseline, spec: FrameSpec, rows, config: CampaignConfig
):
    """Run one frame (single-threaded BLAS: campaigns parallelise over frames); return (frame,
    labels, info)."""
    from ._threads import single_threaded_blas

    with single_threaded_blas():
        labels = run_frame(
            field,
            rows,
            spec.r_eff_pc,
            seed=_frame_seed(config.seed, spec.frame),
            frame=spec.frame,
            config=config.pipeline,
            baseline=baseline,
            noise=config.noise,
            reprocess=config.reprocess,
            edge_margin_px=config.edge_margin_px,
        )
    timings = labels.meta.get("timings", {})
    n_post = labels.meta.get("n_sources_post")
    fallback = bool(labels.meta.get("fallback", False))
    labels.meta.clear()
    df = labels.to_pandas()
    df.insert(df.columns.get_loc("frame") + 1, "repeat", np.full(len(df), spec.repeat, np.int64))
    df["design"] = config.design
    return (
        spec.frame,
        df,
        {"timings": timings, "n_sources_post": n_post, "pid": os.getpid(), "fallback": fallback},
    )


_WORKER: dict = {}


def _pool_init(field, baseline):
    _WORKER["field"] = field
    _WORKER["baseline"] = baseline


def _pool_task(spec: FrameSpec, rows, config: CampaignConfig):
    return _run_frame_payload(_WORKER["field"], _WORKER["baseline"], spec, rows, config)


def _dask_task(field, baseline, spec: FrameSpec, rows, config: CampaignConfig):
    return _run_frame_payload(field, baseline, spec, rows, config)


@contextlib.contextmanager
def _workers_skip_main():
    """Start spawned workers without re-running the caller's ``__main__``.

    The spawn start method normally re-imports the main script in every worker, which
    re-runs its top-level code unless it sits under ``if __name__ == "__main__":``.
    Campaign workers need nothing from ``__main__`` (the task code and every argument
    come from importable modules), so while the workers start, ``__main__`` is made to
    look like an interactive session (no ``__file__``, no ``__spec__``): scripts then
    work with or without the guard.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if hasattr(main, k)}
    for k in saved:
        if k == "__file__":
            del main.__file__
        else:
            main.__spec__ = None
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------------------
# the campaign directory


def _frame_path(directory: Path, frame: int) -> Path:
    return directory / "frames" / f"frame_{frame:06d}.parquet"


def _write_frame(directory: Path, frame: int, df, info: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .._io import _temporary_beside

    path = _frame_path(directory, frame)
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"jaxcomp_frame"] = json.dumps({"frame": int(frame), **info}, default=str).encode()
    table = table.replace_schema_metadata(meta)
    tmp = _temporary_beside(path)
    try:
        with open(tmp, "wb") as stream:
            pq.write_table(table, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _done_frames(directory: Path) -> set[int]:
    out = set()
    for p in (directory / "frames").glob("frame_*.parquet"):
        try:
            out.add(int(p.stem.split("_")[1]))
        except (IndexError, ValueError):
            continue
    return out


def _clean_temporaries(directory: Path) -> int:
    n = 0
    for p in (directory / "frames").glob(".frame_*"):
        p.unlink(missing_ok=True)
        n += 1
    for p in directory.glob(".*.tmp*"):
        p.unlink(missing_ok=True)
        n += 1
    return n


@contextlib.contextmanager
def _lock(directory: Path):
    import fcntl

    handle = open(directory / ".lock", "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CampaignError(
                f"{directory} is in use by another campaign runner (lock held on "
                f"{directory / '.lock'})"
            ) from None
        yield
    finally:
        handle.close()


def _manifest(config: CampaignConfig, field: Field, fdigest: str, df, frames) -> dict:
    return {
        "format": _FORMAT,
        "config": config.to_dict(),
        "config_hash": config.hash(),
        "field": {"name": field.name, "shape": list(field.shape), "digest": fdigest},
        "library": {"n_rows": int(len(df)), "digest": _library_digest(df)},
        "plan": {"n_frames": len(frames), "digest": _plan_digest(frames)},
        "jaxcomp_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _dict_diff(a, b, prefix="") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _dict_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


def _check_manifest(directory: Path, new: dict) -> None:
    from .._io import atomic_write_text

    path = directory / _MANIFEST
    if not path.exists():
        if any((directory / "frames").glob("frame_*.parquet")):
            raise CampaignError(
                f"{directory} holds frame files but no {_MANIFEST}; use an empty directory"
            )
        atomic_write_text(path, json.dumps(new, indent=1) + "\n")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise CampaignError(f"{path} is not valid JSON ({error}); use a new directory") from None
    if old.get("format") != _FORMAT:
        raise CampaignError(f"{path} is not a jaxcomp campaign manifest ({old.get('format')!r})")
    problems = []
    if old.get("config_hash") != new["config_hash"]:
        diffs = _dict_diff(old.get("config", {}), new["config"])
        problems.append("the configuration differs (" + "; ".join(diffs[:8]) + ")")
    if old.get("field", {}).get("digest") != new["field"]["digest"]:
        problems.append(
            f"the field differs (was {old.get('field', {}).get('name')!r} "
            f"{old.get('field', {}).get('shape')}, now {new['field']['name']!r} "
            f"{new['field']['shape']})"
        )
    if old.get("library", {}).get("digest") != new["library"]["digest"]:
        problems.append(
            f"the library differs (was {old.get('library', {}).get('n_rows')} rows, now "
            f"{new['library']['n_rows']})"
        )
    if not problems and old.get("plan", {}).get("digest") != new["plan"]["digest"]:
        problems.append("the frame plan differs (another 'exclude' set?)")
    if problems:
        raise CampaignError(
            f"{directory} was made for a different campaign: "
            + "; ".join(problems)
            + ". Use a new directory (or delete this one) to run this campaign."
        )


# ---------------------------------------------------------------------------------------
# executors


def _resolve_executor(executor, scheduler):
    if scheduler is not None:
        return "dask"
    if not isinstance(executor, str):
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover
            Client = ()
        if isinstance(executor, Client):
            return "dask"
        raise CampaignError(
            f"executor must be 'process', 'serial' or a distributed.Client, got {executor!r}"
        )
    if "://" in executor:
        return "dask"
    if executor == "dask":
        raise CampaignError(
            "the dask executor needs scheduler='tcp://host:port' (or a distributed.Client)"
        )
    if executor not in ("process", "serial"):
        raise CampaignError(
            f"executor must be 'process', 'serial', a scheduler address or a distributed.Client, "
            f"got {executor!r}"
        )
    return executor


def _iter_serial(field, baseline, todo, rows_of, config):
    for spec in todo:
        yield _run_frame_payload(field, baseline, spec, rows_of(spec), config)


def _iter_process(field, baseline, todo, rows_of, config, n_workers, start_method, blas_threads):
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context(start_method)
    n_workers = max(1, min(int(n_workers), len(todo)))
    threads = (
        {}
        if blas_threads is None
        else {
            k: blas_threads for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        }
    )
    pool = ProcessPoolExecutor(
        max_workers=n_workers, mp_context=ctx, initializer=_pool_init, initargs=(field, baseline)
    )
    try:
        pending = set()
        queue = list(todo)
        with _env(**threads), _workers_skip_main():  # the workers start (lazily) in submit()
            while queue and len(pending) < 2 * n_workers:
                spec = queue.pop(0)
                pending.add(pool.submit(_pool_task, spec, rows_of(spec), config))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
            with _env(**threads), _workers_skip_main():
                while queue and len(pending) < 2 * n_workers:
                    spec = queue.pop(0)
                    pending.add(pool.submit(_pool_task, spec, rows_of(spec), config))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _iter_dask(field, baseline, todo, rows_of, config, executor, scheduler):
    from distributed import Client, as_completed

    owned = False
    if scheduler is None and not isinstance(executor, str):
        client = executor
    elif isinstance(scheduler, Client):
        client = scheduler
    else:
        address = scheduler if scheduler is not None else executor
        if not isinstance(address, str) or address == "dask":
            raise CampaignError(
                "the dask executor needs scheduler='tcp://host:port' or a distributed.Client"
            )
        client = Client(address)
        owned = True
    try:
        field_f = client.scatter(field, broadcast=True, hash=False)
        base_f = client.scatter(baseline, broadcast=True, hash=False)
        nonce = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                _dask_task,
                field_f,
                base_f,
                spec,
                rows_of(spec),
                config,
                pure=False,
                key=f"jaxcomp-ast-frame-{spec.frame:06d}-{nonce}",
            )
            for spec in todo
        ]
        try:
            # as_completed defaults to the *default* client's event loop; with several clients in
            # one
            # process (a user's own Client beside ours) that is the wrong loop, so name ours
            for fut in as_completed(futures, loop=client.loop):
                result = fut.result()
                fut.release()
                yield result
        finally:
            client.cancel(futures)
            del field_f, base_f
    finally:
        if owned:
            client.close()


# ---------------------------------------------------------------------------------------
# the public entry point


def run_campaign(
    field: Field,
    library,
    config: CampaignConfig,
    directory,
    *,
    executor="process",
    n_workers: int | None = None,
    scheduler=None,
    exclude: Sequence[int] | None = None,
    progress: bool = True,
    callback: Callable[[int, int, int], None] | None = None,
    start_method: Literal["spawn", "fork", "forkserver"] = "spawn",
    blas_threads: int | None = 1,
):
    """Run (or resume) an artificial cluster test campaign; return its labels table.

    Parameters
    ----------
    field : Field
        The field to inject into (e.g. :func:`jaxcomp.ast.mock.make_mock_field`).
    library : pandas DataFrame, astropy Table or path
        Cluster library (``cluster_id``, ``mag_<band>``, ``r_eff_pc``; other columns are
        carried into the labels).
    config : CampaignConfig
    directory : path
        Campaign directory (created; see the module docstring).
    executor : "process" (default), "serial", a scheduler address or a distributed.Client
    n_workers : int, optional
        Processes of the local pool (default: the usable cores).
    scheduler : str or distributed.Client, optional
        A ``dask.distributed`` scheduler address or client (implies the Dask executor).
    exclude : cluster ids, optional
        Clusters not to use (e.g. those of a training campaign, for a test campaign).
    progress : bool
        A tqdm progress bar with the time left (``False``: quiet).
    callback : callable, optional
        Called as ``callback(frame, n_done, n_total)`` after each frame is written.
    start_method : str
        multiprocessing start method of the local pool (default "spawn").
    blas_threads : int or None
        BLAS/OpenMP threads per local worker (default 1: one core per worker).

    Returns
    -------
    astropy.table.Table
        The labels (also in ``directory/labels.parquet``): the library columns, then
        ``frame, repeat, x, y, detected, passes_err, passes_ci, passes_nband, passes_mv,
        C``, the measured ``mag_<band>_meas``, ``magerr_<band>_meas``, ``ci_meas``,
        ``x_meas, y_meas, sep_px`` and ``design``; rows in frame order.

    Raises
    ------
    CampaignError (a ValueError)
        Before any work: bad configuration, a library without the needed columns or
        clusters, a field too small for the frame at the minimum spacing, a directory
        made for another campaign or in use. Field problems (shapes, WCS, NaN/inf,
        bands, exposure times, PSF size) are raised when the :class:`Field` is built.
    """
    if not isinstance(config, CampaignConfig):
        raise CampaignError(f"config must be a CampaignConfig, got {type(config).__name__}")
    if not isinstance(field, Field):
        raise CampaignError(
            f"field must be a jaxcomp.ast.Field (build one with Field(...), read_field_fits or "
            f"make_mock_field), got {type(field).__name__}"
        )
    kind = _resolve_executor(executor, scheduler)
    df = validate_library(library, config)
    frames = plan_campaign(df, config, exclude)
    check_field_capacity(field, config)
    if kind == "process":
        n_workers = n_workers or (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "frames").mkdir(exist_ok=True)
    with _lock(directory):
        _check_manifest(directory, _manifest(config, field, field_digest(field), df, frames))
        _clean_temporaries(directory)
        done = _done_frames(directory)
        todo = [f for f in frames if f.frame not in done]
        n_total = len(frames)
        timings = []
        fallbacks = 0
        if todo:
            baseline = _slim_baseline(
                prepare_field(field, config.pipeline, smoothing_pc=config.smoothing_pc)
            )
            if not config.match_library_reff:
                df = df.drop(columns=["r_eff_pc"], errors="ignore")

            def rows_of(spec: FrameSpec):
                return df.iloc[spec.rows].reset_index(drop=True)

            if kind == "serial":
                results = _iter_serial(field, baseline, todo, rows_of, config)
            elif kind == "process":
                results = _iter_process(
                    field, baseline, todo, rows_of, config, n_workers, start_method, blas_threads
                )
            else:
                results = _iter_dask(field, baseline, todo, rows_of, config, executor, scheduler)
            bar = _progress_bar(n_total, len(done), progress)
            try:
                n_done = len(done)
                for frame, labels, info in results:
                    _write_frame(directory, frame, labels, info)
                    n_done += 1
                    timings.append(info.get("timings", {}))
                    fallbacks += bool(info.get("fallback", False))
                    bar.update(1)
                    if callback is not None:
                        callback(frame, n_done, n_total)
            finally:
                bar.close()
                # stop the workers / cancel the tasks now, not at garbage collection
                results.close()
        labels = _assemble(directory, frames)
        _write_summary(directory, config, frames, timings, fallbacks)
    return labels


def _progress_bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="frame",
        desc="AST campaign",
        disable=not enabled,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def _assemble(directory: Path, frames: list[FrameSpec]):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from astropy.table import Table

    from .._io import _temporary_beside

    missing = [f.frame for f in frames if not _frame_path(directory, f.frame).exists()]
    if missing:  # pragma: no cover - guarded by the loop above
        raise CampaignError(f"frames {missing[:10]} are missing from {directory}")
    tables = [pq.read_table(_frame_path(directory, f.frame)) for f in frames]
    tables = [t.replace_schema_metadata(None) for t in tables]
    table = pa.concat_tables(tables, promote_options="default")
    manifest = json.loads((directory / _MANIFEST).read_text())
    table = table.replace_schema_metadata(
        {
            b"jaxcomp_campaign": json.dumps(
                {k: manifest[k] for k in ("config", "config_hash", "field", "library", "plan")}
            ).encode()
        }
    )
    path = directory / "labels.parquet"
    tmp = _temporary_beside(path)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    out = Table.from_pandas(table.to_pandas())
    out.meta["campaign"] = str(directory)
    out.meta["config_hash"] = manifest["config_hash"]
    return out


def _write_summary(
    directory: Path, config: CampaignConfig, frames, timings: list[dict], fallbacks: int = 0
) -> None:
    from .._io import atomic_write_text

    steps: dict[str, list[float]] = {}
    for t in timings:
        for step, v in t.items():
            steps.setdefault(step, []).append(float(v.get("wall_s", 0.0)))
    summary = {
        "n_frames": len(frames),
        "n_clusters": int(sum(len(f.rows) for f in frames)),
        "frames_run_this_time": len(timings),
        "reprocess": config.reprocess,
        "local_frames_rerun_in_full": int(fallbacks),
        "mean_wall_s_per_step": {k: float(np.mean(v)) for k, v in steps.items()},
        "updated_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(directory / "summary.json", json.dumps(summary, indent=1) + "\n")


def read_campaign(directory):
    """The labels of a finished campaign (``directory/labels.parquet``) as an astropy Table."""
    from .._io import read_table

    path = Path(directory) / "labels.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: the campaign has not finished (rerun run_campaign)"
        )
    return read_table(path)


def campaign_status(directory) -> dict:
    """Frames finished and expected in a campaign directory."""
    directory = Path(directory)
    manifest = json.loads((directory / _MANIFEST).read_text())
    done = _done_frames(directory)
    return {
        "n_frames": manifest["plan"]["n_frames"],
        "n_done": len(done),
        "finished": (directory / "labels.parquet").exists(),
        "config_hash": manifest["config_hash"],
    }


# ---------------------------------------------------------------------------------------
# analysis helpers


def p_true(labels, group: Sequence[str] = ("cluster_id", "r_eff_pc")):
    """Measured recovery probability of each re-injected cluster (test design).

    Returns an astropy Table with the ``group`` columns, ``n_injections``,
    ``n_recovered`` and ``p_true`` (plus the first value of the other library columns).
    """
    from astropy.table import Table

    df = labels.to_pandas() if hasattr(labels, "to_pandas") else labels
    g = df.groupby(list(group), sort=True)
    out = g["C"].agg(n_injections="size", n_recovered="sum").reset_index()
    out["p_true"] = out["n_recovered"] / out["n_injections"]
    first = g.first().reset_index()
    keep = [
        c
        for c in first.columns
        if c not in out.columns
        and not c.endswith("_meas")
        and c not in ("frame", "repeat", "x", "y", "sep_px", "design", *STAGES, "C")
    ]
    for c in keep:
        out[c] = first[c].to_numpy()
    return Table.from_pandas(out)


def plot_recovery(labels, path, *, band: str = "F555W", title: str | None = None):
    """Recovery fraction vs V magnitude (per radius) and vs (log T, log M); saved to ``path``.

    Left: fraction of clusters with C = 1 in 0.25 mag bins of ``mag_<band>`` (the true,
    injected magnitude), one line per r_eff, with binomial errors, and the M_V = -6 cut.
    Right: the mean of C in bins of ``log_age`` x ``log_mass`` (if the labels have them),
    with the number of clusters per bin as contours. Returns the path.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from .._io import atomic_savefig

    df = labels.to_pandas() if hasattr(labels, "to_pandas") else labels
    col = f"mag_{band}"
    if col not in df.columns or "C" not in df.columns:
        raise ValueError(f"labels need {col!r} and 'C' columns")
    has_phys = "log_mass" in df.columns and "log_age" in df.columns
    fig, axes = plt.subplots(
        1, 2 if has_phys else 1, figsize=(12 if has_phys else 6.5, 4.6), squeeze=False
    )
    ax = axes[0, 0]
    m = df[col].to_numpy(float)
    c = df["C"].to_numpy(bool)
    ok = np.isfinite(m)
    if not ok.any():
        raise ValueError(f"no finite {col} in the labels")
    edges = np.arange(math.floor(m[ok].min() * 4) / 4, m[ok].max() + 0.25, 0.25)
    radii = sorted(df["r_eff_pc"].unique()) if "r_eff_pc" in df.columns else [None]
    for r in radii:
        sel = ok & ((df["r_eff_pc"].to_numpy() == r) if r is not None else True)
        idx = np.digitize(m[sel], edges) - 1
        n = np.bincount(idx, minlength=edges.size)[: edges.size - 1]
        k = np.bincount(idx, weights=c[sel], minlength=edges.size)[: edges.size - 1]
        good = n > 0
        frac = np.divide(k, n, out=np.zeros_like(k), where=good)
        err = np.sqrt(np.maximum(frac * (1 - frac), 0.25 / np.maximum(n, 1)) / np.maximum(n, 1))
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(
            centres[good],
            frac[good],
            err[good],
            ms=3,
            fmt="o-",
            lw=1,
            label=f"r_eff = {r:g} pc" if r is not None else None,
        )
    dm = NGC628_DISTANCE_MODULUS
    ax.axvline(dm - 6.0, color="k", ls=":", lw=0.8, label="M_V = -6")
    ax.set_xlabel(f"injected {band} [Vega mag]")
    ax.set_ylabel("recovered fraction (C = 1)")
    ax.set_ylim(-0.03, 1.03)
    if len(radii) > 1 or radii[0] is not None:
        ax.legend(fontsize=7, ncol=2)
    if has_phys:
        ax2 = axes[0, 1]
        la = df["log_age"].to_numpy(float)
        lm = df["log_mass"].to_numpy(float)
        xe = np.linspace(np.nanmin(la), np.nanmax(la), 26)
        ye = np.linspace(np.nanmin(lm), np.nanmax(lm), 26)
        n, _, _ = np.histogram2d(la, lm, [xe, ye])
        k, _, _ = np.histogram2d(la, lm, [xe, ye], weights=c.astype(float))
        frac = np.where(n > 0, k / np.maximum(n, 1), np.nan)
        im = ax2.pcolormesh(xe, ye, frac.T, vmin=0, vmax=1, cmap="viridis", shading="flat")
        fig.colorbar(im, ax=ax2, label="recovered fraction")
        ax2.set_xlabel("log age [yr]")
        ax2.set_ylabel("log mass [Msun]")
        ax2.set_title(f"{len(df)} clusters")
    fig.suptitle(title or "artificial cluster recovery")
    fig.tight_layout()
    return atomic_savefig(fig, Path(path))
