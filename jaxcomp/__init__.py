"""jaxcomp: differentiable forward modelling of star-cluster catalogue completeness.

The pipeline has five stages (see DESIGN.md): cluster library, artificial cluster
tests, selection functions, marginalisation and demographics.  Importing jaxcomp
changes no global JAX configuration.
"""

from ._version import __version__
from .catalogues import read_legus, read_legus_ngc628
from .selection import (
    ArtefactError,
    InputDomainError,
    InputSpec,
    NetworkConfig,
    SelectionFunction,
    evaluate_in_chunks,
)
from .selection.c4 import import_c4
from .selection.calibration import CalibrationReport, calibration_report
from .selection.training import TrainConfig, TrainingResult, train_selection_function

__all__ = [
    "__version__",
    "ArtefactError",
    "CalibrationReport",
    "InputDomainError",
    "InputSpec",
    "NetworkConfig",
    "SelectionFunction",
    "TrainConfig",
    "TrainingResult",
    "calibration_report",
    "evaluate_in_chunks",
    "import_c4",
    "read_legus",
    "read_legus_ngc628",
    "train_selection_function",
]
