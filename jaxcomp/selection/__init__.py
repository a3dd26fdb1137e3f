"""Stage 3 of the pipeline: selection functions p_obs(theta).

Flax MLPs trained on artificial-cluster-test labels, calibration diagnostics,
the portable artefact format, and import of the published C-4 networks.
"""

from .artefact import ArtefactError, read_header
from .c4 import import_c4
from .calibration import CalibrationReport, calibration_report
from .evaluate import evaluate_in_chunks
from .function import InputDomainError, SelectionFunction
from .inputs import LEGUS_BANDS, PHOTOMETRIC_INPUTS, PHYSICAL_INPUTS, InputSpec
from .network import NetworkConfig
from .radius import RadiusMarginalisedSelection, RadiusPrior
from .training import TrainConfig, TrainingResult, train_selection_function
from .validation import ValidationResult, p_true_table, validate_selection

__all__ = [
    "RadiusMarginalisedSelection",
    "RadiusPrior",
    "ArtefactError",
    "CalibrationReport",
    "TrainConfig",
    "TrainingResult",
    "calibration_report",
    "import_c4",
    "train_selection_function",
    "InputDomainError",
    "InputSpec",
    "LEGUS_BANDS",
    "NetworkConfig",
    "PHOTOMETRIC_INPUTS",
    "PHYSICAL_INPUTS",
    "SelectionFunction",
    "evaluate_in_chunks",
    "read_header",
    "ValidationResult",
    "p_true_table",
    "validate_selection",
]
