"""The stages of a jaxcomp run, each a function of the configuration and the outputs of earlier
stages.

A stage writes into its own directory ``RUN_DIR/<stage>/`` and returns what the
report needs (title, description, metrics, figures, tables); the runner
(:mod:`jaxcomp.workflow.runner`) adds the fingerprint, the seed and the timing
and writes ``stage.json``.  Stages, in order:

=============  ==================================================================  ===============
stage          does                                                                 depends on
=============  ==================================================================  ===============
``field``      FITS fields only: the images read and checked, PSFs built from      -
               the stars where the files give none (``psf_<band>.fits``, the
               stars used, ``psf.png``)
``library``    the cluster library (uniform in log M, log T, A_V; stochastic IMF)   -
``ast_train``  training-design AST campaign (no cluster injected twice)             library
``ast_test``   test-design campaign (other clusters, re-injected: p_true)           library,
ast_train
``train``      physical and/or photometric selection functions                     ast_train
``validate``   the paper's section 4.1-4.3 validation on the test campaign         train, ast_test
``population`` a known population injected through the same pipeline (catalogue)   -
``correct``    completeness-corrected CAF and CMF of the catalogue (eq. 17-18)     train, population
``fit``        NUTS fit of the catalogue's mass and age functions                  train, population
=============  ==================================================================  ===============

With a FITS field, ``ast_train``, ``ast_test`` and ``population`` also depend on ``field``
(they inject with the PSFs it wrote).

This module is the list of stages (:data:`STAGES`) and their dependencies; each stage lives in
its own module: :mod:`~jaxcomp.workflow.field_stage`, :mod:`~jaxcomp.workflow.library_stage`,
:mod:`~jaxcomp.workflow.campaign_stages` (``ast_train``, ``ast_test``),
:mod:`~jaxcomp.workflow.selection_stages` (``train``, ``validate``),
:mod:`~jaxcomp.workflow.population_stage` and :mod:`~jaxcomp.workflow.demographics_stages`
(``correct``, ``fit``); what a stage is given is
:class:`~jaxcomp.workflow.stage_context.StageContext`.
"""

from __future__ import annotations

import os

from .campaign_stages import run_ast_test, run_ast_train
from .config import RunConfig
from .demographics_stages import run_correct, run_fit
from .field_stage import run_field
from .fields import fit_depends
from .library_stage import run_library
from .population_stage import run_population
from .selection_stages import run_train, run_validate
from .stage_context import Stage, StageContext, stage_seed

__all__ = ["STAGES", "Stage", "StageContext", "stage_seed"]


# ------------------------------------------------------------------ the list
def _uses_population(config: RunConfig) -> bool:
    return config.population.enabled and (config.catalogue.source == "population")


STAGES: tuple[Stage, ...] = (
    Stage(
        "field",
        "Field: FITS images and their PSFs",
        ("field",),
        (),
        run_field,
        enabled=lambda c: c.field.kind == "fits",
    ),
    Stage("library", "Cluster library", ("run", "library", "campaign"), (), run_library),
    Stage(
        "ast_train",
        "Artificial cluster tests: training campaign",
        ("run", "field", "campaign"),
        ("library",),
        run_ast_train,
    ),
    Stage(
        "ast_test",
        "Artificial cluster tests: test campaign",
        ("run", "field", "campaign"),
        ("library", "ast_train"),
        run_ast_test,
    ),
    Stage("train", "Selection functions", ("run", "networks"), ("ast_train",), run_train),
    Stage(
        "validate",
        "Validation (paper sections 4.1-4.3)",
        ("validation",),
        ("train", "ast_test", "ast_train"),
        run_validate,
    ),
    Stage(
        "population",
        "Simulated catalogue",
        ("run", "field", "library", "campaign", "population"),
        (),
        run_population,
        enabled=lambda c: c.population.enabled,
    ),
    Stage(
        "correct",
        "Completeness-corrected age and mass functions",
        ("correct", "catalogue", "population"),
        ("train",),
        run_correct,
        enabled=lambda c: c.correct.enabled,
    ),
    Stage(
        "fit",
        "Hierarchical fit (NUTS)",
        ("fit", "catalogue", "population", "run", "fields"),
        ("train",),
        run_fit,
        enabled=lambda c: c.fit.enabled,
    ),
)


def stage_depends(stage: Stage, config: RunConfig) -> tuple[str, ...]:
    """Upstream stages, including the population stage when the catalogue is the simulated one
    (with ``[[fields]]``: :func:`jaxcomp.workflow.fields.fit_depends`)."""
    if stage.name == "fit" and config.fields:
        return fit_depends(config)
    if stage.name in ("correct", "fit") and _uses_population(config):
        return stage.depends + ("population",)
    if "field" in stage.sections and stage.name != "field" and config.field.kind == "fits":
        return stage.depends + ("field",)
    return stage.depends


def n_workers(config: RunConfig) -> int:
    if config.run.workers:
        return config.run.workers
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
