"""Stage 3 of the pipeline: selection functions p_obs(theta).

Flax MLPs trained on artificial-cluster-test labels, calibration diagnostics,
the portable artefact format, and import of the published C-4 networks.
"""

from .artefact import ArtefactError, read_header
from .c4 import import_c4
from .calibration import (
    CalibrationReport,
    EnsembleCoverage,
    calibration_report,
    ensemble_coverage,
    member_probabilities,
)
from .evaluate import evaluate_in_chunks
from .function import InputDomainError, SelectionFunction
from .inputs import LEGUS_BANDS, PHOTOMETRIC_INPUTS, PHYSICAL_INPUTS, InputSpec
from .network import NetworkConfig
from .radius import RadiusMarginalisedSelection, RadiusPrior
from .training import TrainConfig, TrainingResult, train_selection_function
from .validation import ValidationResult, p_true_table, validate_selection

__all__ = [
    "LEGUS_BANDS",
    "PHOTOMETRIC_INPUTS",
    "PHYSICAL_INPUTS",
    "ArtefactError",
    "CalibrationReport",
    "EnsembleCoverage",
    "InputDomainError",
    "InputSpec",
    "NetworkConfig",
    "RadiusMarginalisedSelection",
    "RadiusPrior",
    "SelectionFunction",
    "TrainConfig",
    "TrainingResult",
    "ValidationResult",
    "calibration_report",
    "ensemble_coverage",
    "evaluate_in_chunks",
    "import_c4",
    "member_probabilities",
    "p_true_table",
    "read_header",
    "train_selection_function",
    "validate_selection",
]
