"""What a stage of a jaxcomp run is given and what it is: :class:`StageContext`, :class:`Stage`,
the stage's seed (:func:`stage_seed`) and the figure entry of its report record."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

from .config import RunConfig

__all__ = ["Stage", "StageContext", "stage_seed"]


@dataclasses.dataclass(frozen=True)
class StageContext:
    """What a stage may use: the configuration, its directory, the run directory, options."""

    config: RunConfig
    run_dir: Path
    directory: Path
    seed: int
    progress: bool
    workers: int

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: its name, the configuration sections it reads, its upstream stages, its
    function."""

    name: str
    title: str
    sections: tuple[str, ...]
    depends: tuple[str, ...]
    run: Callable[[StageContext], dict]
    enabled: Callable[[RunConfig], bool] = lambda config: True


def stage_seed(run_seed: int, stage: str) -> int:
    """The seed of a stage: a fixed function of the run's seed and the stage's name."""
    digest = hashlib.sha256(f"jaxcomp:{run_seed}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _figure(path: Path, caption: str) -> dict:
    return {"path": path.name if path.parent.name else str(path), "caption": caption}
