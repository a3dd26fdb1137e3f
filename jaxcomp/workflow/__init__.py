"""The jaxcomp workflow: TOML-configured runs, stages and their report.

* :mod:`~jaxcomp.workflow.config`: :class:`RunConfig` and its sections, read from TOML and
  checked before any work (:func:`load_config`, :func:`parse_config`).
* :mod:`~jaxcomp.workflow.stages`: the stages (library, campaigns, networks, validation,
  simulated catalogue, correction, fit).
* :mod:`~jaxcomp.workflow.fields` / :mod:`~jaxcomp.workflow.multifield_stage`: ``[[fields]]``,
  several fields fitted jointly by the fit stage.
* :mod:`~jaxcomp.workflow.runner`: :func:`run_workflow` runs the out-of-date stages into a
  run directory.
* :mod:`~jaxcomp.workflow.report`: :func:`write_report`, one self-contained HTML page.
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
