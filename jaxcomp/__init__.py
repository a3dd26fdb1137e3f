"""jaxcomp: differentiable forward modelling of star-cluster catalogue completeness.

The pipeline has five stages (see DESIGN.md): cluster library, artificial cluster
tests, selection functions, marginalisation and demographics.  Importing jaxcomp
changes no global JAX configuration.
"""

from ._version import __version__
from .catalogues import read_legus, read_legus_ngc628
from .demographics import (
    BrokenPowerLawLogAge,
    PiecewiseConstantAV,
    PowerLawLogAge,
    PowerLawLogMass,
    SchechterLogMass,
    SelectionGrid,
    corrected_age_function,
    corrected_mass_function,
    estimate_av_distribution,
    p_corr_log_age,
    p_corr_log_mass,
    p_obs_mass_age,
)
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
    "BrokenPowerLawLogAge",
    "PiecewiseConstantAV",
    "PowerLawLogAge",
    "PowerLawLogMass",
    "SchechterLogMass",
    "SelectionGrid",
    "corrected_age_function",
    "corrected_mass_function",
    "estimate_av_distribution",
    "p_corr_log_age",
    "p_corr_log_mass",
    "p_obs_mass_age",
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
