"""jaxcomp: differentiable forward modelling of star-cluster catalogue completeness.

The pipeline has five stages (see DESIGN.md): cluster library, artificial cluster
tests, selection functions, marginalisation and demographics.  Importing jaxcomp
changes no global JAX configuration.
"""

from ._version import __version__
from .selection import (
    ArtefactError,
    InputDomainError,
    InputSpec,
    NetworkConfig,
    SelectionFunction,
    evaluate_in_chunks,
)

__all__ = [
    "__version__",
    "ArtefactError",
    "InputDomainError",
    "InputSpec",
    "NetworkConfig",
    "SelectionFunction",
    "evaluate_in_chunks",
]
