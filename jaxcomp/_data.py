"""Locate the small data files that ship with jaxcomp.

The repository keeps its shipped data in a top-level ``data/`` folder next to the
``jaxcomp/`` package folder. Wheels copy that folder into the package as
``jaxcomp/data`` (see ``[tool.hatch.build.targets.wheel.force-include]`` in
``pyproject.toml``). :func:`data_path` finds a file in either layout.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["data_path"]

_PACKAGE = "jaxcomp"


def _installed_candidate(parts: tuple[str, ...]) -> Path | None:
    """Candidate path inside the installed package (``jaxcomp/data/...``).

    Returns ``None`` when the package resources are not on the ordinary file
    system (e.g. a zip import), in which case only the source layout is tried.
    """
    try:
        node = importlib.resources.files(_PACKAGE).joinpath("data")
    except (ModuleNotFoundError, TypeError, ValueError):
        return None
    # MultiplexedPath.joinpath (namespace packages, Python 3.11) takes one
    # component at a time, so join the parts one by one.
    for part in parts:
        node = node.joinpath(part)
    if isinstance(node, Path):
        return node
    return None


def _source_candidate(parts: tuple[str, ...]) -> Path | None:
    """Candidate path in a source checkout / editable install (``<repo>/data/...``).

    The repository root is the parent of the ``jaxcomp/`` folder holding this
    module; it is only accepted if it contains a ``pyproject.toml``, so that an
    unrelated ``site-packages/data`` folder is never picked up by accident.
    """
    repo_root = Path(__file__).resolve().parent.parent
    if not (repo_root / "pyproject.toml").is_file():
        return None
    return repo_root.joinpath("data", *parts)


def data_path(*parts: str) -> Path:
    """Return the path of a file or folder shipped in jaxcomp's data directory.

    Parameters
    ----------
    *parts : str
        Path components below the data directory, e.g.
        ``data_path("legus", "adamo17_ngc628_per_band_ast_completeness.json")``.
        With no parts, the data directory itself is returned.

    Returns
    -------
    pathlib.Path
        An existing path. The installed package data
        (``importlib.resources.files("jaxcomp") / "data"``, the wheel layout) is
        tried first, then the repository's top-level ``data/`` folder next to
        ``jaxcomp/`` (source checkout or editable install).

    Raises
    ------
    FileNotFoundError
        If the requested path exists in neither location; the message names the
        requested path and every location that was searched.
    """
    parts = tuple(str(p) for p in parts)
    looked: list[str] = []
    for label, finder in (
        ("installed package data", _installed_candidate),
        ("source checkout data/", _source_candidate),
    ):
        candidate = finder(parts)
        if candidate is None:
            looked.append(f"{label}: not available")
            continue
        if candidate.exists():
            return candidate
        looked.append(f"{label}: {candidate}")
    wanted = "/".join(parts) if parts else "(the data directory)"
    raise FileNotFoundError(
        f"jaxcomp shipped data {wanted!r} was not found; looked in "
        + "; ".join(looked)
        + ". A wheel should contain jaxcomp/data; a source checkout should have a "
        "top-level data/ folder next to jaxcomp/."
    )
