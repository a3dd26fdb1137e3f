"""Stage 3 of the pipeline: selection functions p_obs(theta).

Flax MLPs trained on artificial-cluster-test labels, calibration diagnostics,
the portable artefact format, and import of the published C-4 networks.
"""

from .artefact import ArtefactError, read_header
from .evaluate import evaluate_in_chunks
from .function import InputDomainError, SelectionFunction
from .inputs import LEGUS_BANDS, PHOTOMETRIC_INPUTS, PHYSICAL_INPUTS, InputSpec
from .network import NetworkConfig

__all__ = [
    "ArtefactError",
    "InputDomainError",
    "InputSpec",
    "LEGUS_BANDS",
    "NetworkConfig",
    "PHOTOMETRIC_INPUTS",
    "PHYSICAL_INPUTS",
    "SelectionFunction",
    "evaluate_in_chunks",
    "read_header",
]
