"""Run the stages of a configuration into a run directory, skipping those that are up to date.

Each stage has a **fingerprint**: the SHA-256 of the configuration sections it
reads, the content of the input files those sections name (:func:`input_digests`:
the bytes of a catalogue; size, mtime and header of FITS frames), its seed, the
jaxcomp version and the fingerprints of its upstream stages.
``RUN_DIR/<stage>/stage.json`` records the fingerprint of the stage's last
successful run; a stage whose recorded fingerprint equals the current one is
skipped, any other is (re)run, and so are the stages downstream of it: a catalogue
edited after a run re-runs the correction and the fit.  The record also holds the
SHA-256 of the stage's output files (library, labels, networks, catalogue); one
modified or removed since makes the stage and those downstream re-run, so a stale or
hand-edited intermediate file is never used.  A run directory never
silently holds results of another configuration: one recorded with a different
configuration is refused unless ``replace=True`` (``jaxcomp run --force``), which
re-runs exactly the stages that read the changed sections (the runner says which
and why); a directory that was not made by jaxcomp is refused.  The input files are
checked (:func:`jaxcomp.workflow.config.check_inputs`) before any directory is made, and a
bad input (:class:`jaxcomp.errors.InputError`) that stops the first stage of a new run
removes the directory again (e.g. FITS frames whose stars cannot give a PSF).

``RUN_DIR/run.json`` records the name, the configuration hash, the versions of
jaxcomp and its main dependencies, the platform, the stage order, and per stage
the fingerprint, seed, status and seconds; ``RUN_DIR/config.toml`` holds the
resolved configuration.  Stages resume: an interrupted AST campaign continues
from its last finished frame.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import time
import traceback
from pathlib import Path

from .._io import atomic_write_text
from .._version import __version__
from ..errors import InputError, JaxcompError
from ..provenance import json_default, package_versions
from .config import RunConfig, check_inputs, load_config
from .stage_context import Stage, StageContext, stage_seed
from .stages import STAGES, n_workers, stage_depends

__all__ = ["RunError", "input_digests", "plan_stages", "run_workflow", "stage_status"]

RUN_FILE = "run.json"
STAGE_FILE = "stage.json"


class RunError(JaxcompError, RuntimeError):
    """A run that cannot start or whose stage failed."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _enabled_stages(config: RunConfig) -> list[Stage]:
    return [s for s in STAGES if s.enabled(config)]


#: Keys that say where the work runs, not what it computes: not part of any fingerprint.
_EXECUTION_KEYS = {"run": ("workers", "scheduler")}


def _computed_values(config: RunConfig) -> dict:
    """The configuration without the keys that say where the work runs."""
    values = config.to_dict()
    for section, keys in _EXECUTION_KEYS.items():
        values[section] = {k: v for k, v in values[section].items() if k not in keys}
    return values


#: Bytes of a FITS file hashed for its fingerprint: its header (and the start of the data).
FITS_HEAD_BYTES = 64 * 2880


def input_digests(config: RunConfig) -> dict[str, dict]:
    """Content digests of the files a configuration reads, keyed by configuration section.

    A catalogue table (``[catalogue]``, and the tables and artefacts of ``[[fields]]``): the
    SHA-256 of its bytes.  FITS frames (possibly GB each): per file, its
    name, size, modification time (ns) and the SHA-256 of its first ``FITS_HEAD_BYTES`` bytes
    (the header, where a re-reduction changes WCS, exposure time or zero point, and the first
    rows of data).  Libraries, campaigns and artefacts are made by upstream stages, whose
    fingerprints already cover them.
    """
    from .._io import file_sha256
    from .config import fits_files
    from .fields import field_catalogue_path, field_selection_path

    digests: dict[str, dict] = {}
    source = config.catalogue.source
    if source not in ("population", "legus:ngc628c") and Path(source).is_file():
        digests["catalogue"] = {"sha256": file_sha256(source)}
    fields = {}
    for entry in config.fields:  # [[fields]]: the tables and artefacts they read
        for kind, path in (
            ("catalogue", field_catalogue_path(entry)),
            ("selection", field_selection_path(entry)),
        ):
            if path is not None and path.is_file():
                fields[f"{entry.name}:{kind}"] = file_sha256(path)
    if fields:
        digests["fields"] = fields
    if config.field.kind == "fits" and Path(config.field.directory).is_dir():
        digests["field"] = {
            p.name: [p.stat().st_size, p.stat().st_mtime_ns, file_sha256(p, limit=FITS_HEAD_BYTES)]
            for p in fits_files(Path(config.field.directory))
        }
    return digests


def _fingerprints(config: RunConfig) -> dict[str, str]:
    values = _computed_values(config)
    inputs = input_digests(config)
    result: dict[str, str] = {}
    for stage in _enabled_stages(config):
        payload = {
            "stage": stage.name,
            "jaxcomp": __version__,
            "seed": stage_seed(config.run.seed, stage.name),
            "sections": {name: values[name] for name in stage.sections if name in values},
            "inputs": {name: inputs[name] for name in stage.sections if name in inputs},
            "upstream": {d: result.get(d) for d in stage_depends(stage, config)},
        }
        result[stage.name] = hashlib.sha256(
            json.dumps(payload, sort_keys=True).encode()
        ).hexdigest()
    return result


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _output_digests(directory: Path, outputs: dict) -> dict[str, str]:
    """SHA-256 of the output files a stage reported (directories and notes are skipped)."""
    from .._io import file_sha256

    files = (directory / str(name) for name in outputs.values() if isinstance(name, str))
    return {path.name: file_sha256(path) for path in files if path.is_file()}


def _outputs_intact(directory: Path, record: dict) -> bool:
    """Whether the output files recorded in a stage record are still there, byte for byte."""
    from .._io import file_sha256

    for name, digest in (record.get("output_sha256") or {}).items():
        path = directory / name
        if not path.is_file() or file_sha256(path) != digest:
            return False
    return True


def stage_status(run_dir: str | os.PathLike, config: RunConfig) -> dict[str, str]:
    """``{stage: "up to date" | "to run" | "changed" | "outputs changed" | "failed"}`` for a run
    directory
    and configuration.  ``"outputs changed"``: an output file (library, labels, network, catalogue)
    was
    modified or removed after the stage ran, so it and the stages downstream of it re-run."""
    run_dir = Path(run_dir)
    fingerprints = _fingerprints(config)
    status = {}
    for name, fingerprint in fingerprints.items():
        record = _read_json(run_dir / name / STAGE_FILE)
        if record is None:
            status[name] = "to run"
        elif record.get("status") != "done":
            status[name] = "failed"
        elif record.get("fingerprint") != fingerprint:
            status[name] = "changed"
        elif not _outputs_intact(run_dir / name, record):
            status[name] = "outputs changed"
        else:
            status[name] = "up to date"
    return status


def plan_stages(
    run_dir, config: RunConfig, only=None, force=(), *, status: dict[str, str] | None = None
) -> list[str]:
    """The stages that will run (in order): out of date, forced, or downstream of one that runs.

    ``status`` is :func:`stage_status` of ``run_dir`` if already known.
    """
    status = stage_status(run_dir, config) if status is None else status
    enabled = _enabled_stages(config)
    selected = {s.name for s in enabled} if not only else set(only)
    unknown = selected - {s.name for s in STAGES}
    if unknown:
        raise RunError(f"unknown stage(s) {sorted(unknown)}; stages: {[s.name for s in STAGES]}")
    disabled = selected - {s.name for s in enabled}
    if disabled:
        raise RunError(
            f"stage(s) {sorted(disabled)} are disabled by the configuration (enabled = false)"
        )
    # an explicitly selected stage needs its upstream stages
    by_name = {s.name: s for s in enabled}
    pending = list(selected)
    while pending:
        for dep in stage_depends(by_name[pending.pop()], config):
            if dep not in selected:
                selected.add(dep)
                pending.append(dep)
    plan = []
    for stage in enabled:
        if stage.name not in selected:
            continue
        upstream_runs = any(d in plan for d in stage_depends(stage, config))
        if status[stage.name] != "up to date" or stage.name in force or upstream_runs:
            plan.append(stage.name)
    return plan


def _check_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (run_dir / RUN_FILE).is_file():
        raise RunError(
            f"{run_dir} is not empty and was not made by 'jaxcomp run' (no {RUN_FILE}); "
            "choose another directory"
        )


def _changed_sections(previous: dict, config: RunConfig) -> list[str]:
    """Sections whose computed values differ from the run recorded in ``previous`` (run.json)."""
    if not previous.get("config"):
        return []
    recorded = dict(previous["config"])
    for section, keys in _EXECUTION_KEYS.items():
        recorded[section] = {
            k: v for k, v in (recorded.get(section) or {}).items() if k not in keys
        }
    current = _computed_values(config)
    return sorted(k for k in set(current) | set(recorded) if recorded.get(k) != current.get(k))


def run_workflow(
    config: RunConfig | str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    only=None,
    force=(),
    replace: bool = False,
    progress: bool = True,
    report: bool = True,
    log=print,
) -> dict:
    """Execute the out-of-date stages of a configuration into ``run_dir``.

    Parameters
    ----------
    config : RunConfig or path to a TOML file
    run_dir : path
        The run directory (created; one per configuration lineage).
    only : sequence of str, optional
        Run only these stages (and the upstream stages they need, if out of date).
    force : sequence of str
        Re-run these stages even if up to date (and everything downstream).
    replace : bool
        Accept a ``run_dir`` recorded with a different configuration (``--force`` on the
        command line): the stages that read the changed sections re-run there and their
        outputs are replaced.  Without it such a directory is refused (:class:`RunError`).
    progress : bool
        Progress bars.
    report : bool
        Write ``RUN_DIR/report.html`` at the end.
    log : callable
        Where one-line messages go (``print``; ``lambda *a: None`` for silence).

    Returns
    -------
    dict
        The contents of ``run.json``.
    """
    if not isinstance(config, RunConfig):
        config = load_config(config)  # checks the input files too
    else:
        check_inputs(config)
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    previous = _read_json(run_dir / RUN_FILE) or {}
    values = config.to_dict()
    changed = _changed_sections(previous, config)
    if changed and not replace:
        raise RunError(
            f"{run_dir} holds a run of a different configuration (section(s) "
            f"{', '.join(f'[{c}]' for c in changed)} differ from {run_dir / RUN_FILE}); pass "
            "--force "
            "to re-run the stages that read them there (their outputs are replaced), or choose a "
            "new --out"
        )
    status_before = stage_status(run_dir, config)
    plan = plan_stages(run_dir, config, only=only, force=tuple(force), status=status_before)
    fresh = not run_dir.exists()  # made by this call: removed again if its inputs fail first
    run_dir.mkdir(parents=True, exist_ok=True)
    if changed:
        log(
            f"configuration differs from the one recorded in {run_dir / RUN_FILE} in section(s) "
            f"{', '.join(f'[{c}]' for c in changed)}: re-running the stages that read them"
        )
    fingerprints = _fingerprints(config)
    record = {
        "name": config.run.name,
        "config_hash": config.hash(),
        "config": values,
        "jaxcomp_version": __version__,
        "versions": package_versions(),
        "platform": f"{platform.platform()} ({platform.machine()}, {os.cpu_count()} cpus)",
        "created": previous.get("created", _now()),
        "updated": _now(),
        "seed": config.run.seed,
        "stages": [s.name for s in _enabled_stages(config)],
        "stage_records": previous.get("stage_records", {}),
    }
    atomic_write_text(run_dir / "config.toml", config.to_toml())
    atomic_write_text(run_dir / RUN_FILE, json.dumps(record, indent=1) + "\n")
    workers = n_workers(config)
    for name in record["stages"]:
        if name not in plan:
            state = status_before[name]
            log(
                f"[{name}] up to date, skipped"
                if state == "up to date"
                else f"[{name}] not selected ({state}), skipped"
            )
    for n_done, name in enumerate(plan):
        stage = next(s for s in STAGES if s.name == name)
        reason = {
            "to run": "not run yet",
            "changed": "configuration, input files or upstream changed",
            "outputs changed": "an output file was modified or removed since it ran",
            "failed": "failed last time",
            "up to date": "forced or upstream re-ran",
        }[status_before[name]]
        log(f"[{name}] running ({reason})")
        directory = run_dir / name
        if status_before[name] in ("changed", "outputs changed") and directory.is_dir():
            shutil.rmtree(directory)  # results of another configuration must not leak into this one
        directory.mkdir(parents=True, exist_ok=True)
        seed = stage_seed(config.run.seed, name)
        context = StageContext(
            config=config,
            run_dir=run_dir,
            directory=directory,
            seed=seed,
            progress=progress,
            workers=workers,
        )
        started, start = _now(), time.perf_counter()
        base = {
            "stage": name,
            "title": stage.title,
            "fingerprint": fingerprints[name],
            "started": started,
            "seed": seed,
            "config": {s: values[s] for s in stage.sections if s in values},
            "depends": list(stage_depends(stage, config)),
        }
        try:
            result = stage.run(context)
        except BaseException as error:
            seconds = round(time.perf_counter() - start, 2)
            failure = {
                **base,
                "status": "failed",
                "seconds": seconds,
                "description": "",
                "metrics": {},
                "figures": [],
                "tables": [],
                "notes": [f"failed: {type(error).__name__}: {error}"],
                "traceback": traceback.format_exc(limit=8),
            }
            atomic_write_text(
                directory / STAGE_FILE, json.dumps(failure, indent=1, default=str) + "\n"
            )
            record["stage_records"][name] = {
                "status": "failed",
                "seconds": seconds,
                "seed": seed,
                "fingerprint": fingerprints[name],
            }
            record["updated"] = _now()
            atomic_write_text(run_dir / RUN_FILE, json.dumps(record, indent=1) + "\n")
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(error, InputError) and fresh and n_done == 0:
                # a bad input (e.g. a FITS frame whose stars cannot give a PSF) stopped the
                # first stage of a new run: nothing worth resuming, so no partial run directory
                shutil.rmtree(run_dir, ignore_errors=True)
                raise RunError(
                    f"stage '{name}' failed: {type(error).__name__}: {error} (nothing was run; "
                    f"{run_dir} was not created)"
                ) from error
            raise RunError(
                f"stage '{name}' failed: {type(error).__name__}: {error} (details in "
                f"{directory / STAGE_FILE}; rerun to resume)"
            ) from error
        seconds = round(time.perf_counter() - start, 2)
        stage_record = {
            **base,
            "status": "done",
            "seconds": seconds,
            "description": result.get("description", ""),
            "metrics": result.get("metrics", {}),
            "figures": result.get("figures", []),
            "tables": result.get("tables", []),
            "notes": result.get("notes", []),
            "outputs": result.get("outputs", {}),
            "output_sha256": _output_digests(directory, result.get("outputs", {})),
        }
        atomic_write_text(
            directory / STAGE_FILE, json.dumps(stage_record, indent=1, default=json_default) + "\n"
        )
        record["stage_records"][name] = {
            "status": "done",
            "seconds": seconds,
            "seed": seed,
            "fingerprint": fingerprints[name],
        }
        record["updated"] = _now()
        atomic_write_text(run_dir / RUN_FILE, json.dumps(record, indent=1) + "\n")
        log(f"[{name}] done in {seconds:.1f} s")
    if report:
        from .report import write_report

        path = write_report(run_dir)
        log(f"report: {path}")
    return record
