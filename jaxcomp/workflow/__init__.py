"""The jaxcomp workflow: TOML-configured runs, stages and their report.

* :mod:`~jaxcomp.workflow.config`: :class:`RunConfig` and its sections, read from TOML and
  checked before any work (:func:`load_config`, :func:`parse_config`); the sections are in
  :mod:`~jaxcomp.workflow.config_sections` and :mod:`~jaxcomp.workflow.config_field`, the
  value conversion in :mod:`~jaxcomp.workflow.config_values`.
* :mod:`~jaxcomp.workflow.stages`: the list of stages (field, library, campaigns, networks,
  validation, simulated catalogue, correction, fit), each in its own module
  (:mod:`~jaxcomp.workflow.field_stage`, :mod:`~jaxcomp.workflow.library_stage`,
  :mod:`~jaxcomp.workflow.campaign_stages`, :mod:`~jaxcomp.workflow.selection_stages`,
  :mod:`~jaxcomp.workflow.population_stage`, :mod:`~jaxcomp.workflow.demographics_stages`);
  what a stage is given: :mod:`~jaxcomp.workflow.stage_context`.
* :mod:`~jaxcomp.workflow.fields` / :mod:`~jaxcomp.workflow.multifield_stage`: ``[[fields]]``,
  several fields fitted jointly by the fit stage.
* :mod:`~jaxcomp.workflow.runner`: :func:`run_workflow` runs the out-of-date stages into a
  run directory.
* :mod:`~jaxcomp.workflow.report`: :func:`write_report`, one self-contained HTML page
  (with :mod:`~jaxcomp.workflow.report_format`, :mod:`~jaxcomp.workflow.report_tables`,
  :mod:`~jaxcomp.workflow.report_files`).
"""

from .config import ConfigError, RunConfig, load_config, parse_config
from .report import write_report
from .runner import RunError, plan_stages, run_workflow, stage_status

__all__ = [
    "ConfigError",
    "RunConfig",
    "RunError",
    "load_config",
    "parse_config",
    "plan_stages",
    "run_workflow",
    "stage_status",
    "write_report",
]
