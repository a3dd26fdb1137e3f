"""The campaign directory: manifest, content digests, frame files, lock, labels and summary.

Layout and guarantees (atomic frame files, a manifest that refuses another campaign's
directory, a lock against two runners) are described in :mod:`jaxcomp.ast.campaign`.
Only the process that runs the campaign writes here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .._version import __version__
from ..survey import BANDS
from .campaign_config import CampaignConfig, CampaignError, FrameSpec
from .field import Field

__all__ = ["field_digest", "read_campaign", "campaign_status"]

_MANIFEST = "manifest.json"
_FORMAT = "jaxcomp-ast-campaign/1"


# ---------------------------------------------------------------------------------------
# content digests


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
# frame files, lock and manifest


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
# the finished campaign


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
