"""Provenance of jaxcomp's outputs: file digests, package versions and JSON-safe records.

One home for the helpers that the command line (``correct.json``, ``fit.json``) and the
workflow (``run.json``, ``stage.json``) use to record what produced a result.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from typing import Any

import numpy as np

from ._io import file_sha256
from ._version import __version__

__all__ = ["VERSIONED_PACKAGES", "file_sha256", "json_default", "jsonable", "package_versions"]

#: The packages whose versions a run record lists (beside Python and jaxcomp).
VERSIONED_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "equinox",
    "numpyro",
    "numpy",
    "scipy",
    "astropy",
    "photutils",
    "arviz",
    "matplotlib",
)


def package_versions(names: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Versions of Python, jaxcomp and the installed packages among ``names`` (missing ones left
    out)."""
    versions = {"python": platform.python_version(), "jaxcomp": __version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths (anything else: its
    str)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: arrays to lists, NaN and infinities to ``None``."""

    def clean(v):
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    def plain(v):  # numpy and JAX scalars and arrays (anything with .tolist()), else the str
        return v.tolist() if hasattr(v, "tolist") else str(v)

    return clean(json.loads(json.dumps(value, default=plain)))
