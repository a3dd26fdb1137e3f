"""Running a campaign's frames: one frame in any process, and the serial, process-pool and Dask
executors that yield ``(frame, labels, info)`` as frames finish.

Every frame's seed follows from the campaign seed and the frame index
(:func:`_frame_seed`), so the labels do not depend on the executor (see
:mod:`jaxcomp.ast.campaign`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import uuid

import numpy as np

from .campaign_config import CampaignConfig, CampaignError, FrameSpec
from .field import Field
from .inject import FieldBaseline, run_frame

__all__: list[str] = []  # package-internal: used by jaxcomp.ast.campaign.run_campaign


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
