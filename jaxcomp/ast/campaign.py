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

Modules
    :mod:`~jaxcomp.ast.campaign_config` (the configuration), :mod:`~jaxcomp.ast.campaign_plan`
    (input checks and the frame plan), :mod:`~jaxcomp.ast.campaign_executors` (running
    frames), :mod:`~jaxcomp.ast.campaign_store` (the directory) and
    :mod:`~jaxcomp.ast.campaign_recovery` (p_true, plots); this module runs a campaign and
    re-exports their public names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Literal, Sequence

from .campaign_config import REQUIRED_LIBRARY_COLUMNS, CampaignConfig, CampaignError, FrameSpec
from .campaign_executors import (
    _iter_dask,
    _iter_process,
    _iter_serial,
    _resolve_executor,
    _slim_baseline,
)
from .campaign_plan import check_field_capacity, plan_campaign, validate_library
from .campaign_recovery import p_true, plot_recovery
from .campaign_store import (
    _assemble,
    _check_manifest,
    _clean_temporaries,
    _done_frames,
    _lock,
    _manifest,
    _write_frame,
    _write_summary,
    campaign_status,
    field_digest,
    read_campaign,
)
from .field import Field
from .inject import prepare_field

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
