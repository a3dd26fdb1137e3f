"""jaxcomp: differentiable forward modelling of star-cluster catalogue completeness.

The pipeline has five stages (see ``docs/architecture.md``): cluster library
(:mod:`jaxcomp.library`),
artificial cluster tests (:mod:`jaxcomp.ast`), selection functions
(:mod:`jaxcomp.selection`), marginalisation and demographics
(:mod:`jaxcomp.demographics`).  The public API below is re-exported lazily, so
``import jaxcomp.library`` in a worker process does not pay for JAX and NumPyro.
Importing jaxcomp changes no global JAX configuration.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

_EXPORTS = {
    "jaxcomp.errors": ("JaxcompError",),
    "jaxcomp.catalogues": ("read_legus", "read_legus_ngc628"),
    "jaxcomp.selection": (
        "ArtefactError",
        "CalibrationReport",
        "InputDomainError",
        "InputSpec",
        "NetworkConfig",
        "RadiusMarginalisedSelection",
        "RadiusPrior",
        "SelectionFunction",
        "TrainConfig",
        "TrainingResult",
        "calibration_report",
        "evaluate_in_chunks",
        "import_c4",
        "train_selection_function",
        "ValidationResult",
        "p_true_table",
        "validate_selection",
    ),
    "jaxcomp.workflow": ("RunConfig", "load_config", "run_workflow", "write_report"),
    "jaxcomp.demographics": (
        "BrokenPowerLawLogAge",
        "PiecewiseConstantAV",
        "PowerLawLogAge",
        "PowerLawLogMass",
        "SchechterLogMass",
        "SelectionGrid",
        "correct_catalogue",
        "corrected_age_function",
        "corrected_mass_function",
        "estimate_av_distribution",
        "p_corr_log_age",
        "p_corr_log_mass",
        "p_obs_mass_age",
        "PopulationModel",
        "PopulationFitter",
        "FitResult",
        "fit_population",
        "load_catalogue",
        "validate_catalogue",
        "simulate_catalogue",
        "fisher_forecast",
        "fisher_information",
        "maximum_likelihood",
        "shift_sensitivity",
        "MultiFieldModel",
        "MultiFieldFitter",
        "MultiFieldResult",
        "fit_fields",
        "compare_pooling",
    ),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *sorted(_WHERE)]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jaxcomp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for static analysis only
    from .catalogues import read_legus, read_legus_ngc628
    from .demographics import (
        BrokenPowerLawLogAge,
        FitResult,
        MultiFieldFitter,
        MultiFieldModel,
        MultiFieldResult,
        PiecewiseConstantAV,
        PopulationFitter,
        PopulationModel,
        PowerLawLogAge,
        PowerLawLogMass,
        SchechterLogMass,
        SelectionGrid,
        compare_pooling,
        correct_catalogue,
        corrected_age_function,
        corrected_mass_function,
        estimate_av_distribution,
        fisher_forecast,
        fisher_information,
        fit_fields,
        fit_population,
        load_catalogue,
        maximum_likelihood,
        p_corr_log_age,
        p_corr_log_mass,
        p_obs_mass_age,
        shift_sensitivity,
        simulate_catalogue,
        validate_catalogue,
    )
    from .errors import JaxcompError
    from .selection import (
        ArtefactError,
        CalibrationReport,
        InputDomainError,
        InputSpec,
        NetworkConfig,
        RadiusMarginalisedSelection,
        RadiusPrior,
        SelectionFunction,
        TrainConfig,
        TrainingResult,
        ValidationResult,
        calibration_report,
        evaluate_in_chunks,
        import_c4,
        p_true_table,
        train_selection_function,
        validate_selection,
    )
    from .workflow import RunConfig, load_config, run_workflow, write_report
