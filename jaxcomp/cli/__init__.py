"""The ``jaxcomp`` command line.

Subcommands
-----------
demo        run the embedded end-to-end example (no data needed)
run         run (or resume) the stages of a TOML configuration into a run directory
report      write the HTML report of a run directory
library     generate a cluster library (or import a SLUG / external one)
field       make the mock NGC 628C field, or describe a field
ast         run, inspect and plot artificial-cluster-test campaigns
train       train a selection function on a labels table
import-c4   convert the published C-4 NGC 628C networks into a jaxcomp artefact
predict     add p_obs (and its ensemble spread) to a table
validate    validate selection functions on a test campaign (paper section 4.1)
correct     completeness-corrected cluster age and mass functions of a catalogue
fit         hierarchical fit of the cluster mass and age functions (NUTS)
info        print the JSON header of an artefact

One module per command group: :mod:`.workflow` (demo, run, report), :mod:`.library`, :mod:`.field`,
:mod:`.ast`,
:mod:`.selection` (train, import-c4, predict, validate, info), :mod:`.correct`, :mod:`.fit`
(:mod:`.fit_fields` for several fields);
:mod:`.argtypes` holds the shared argument parsers and :mod:`._errors` how errors are shown:
a :class:`~jaxcomp.errors.JaxcompError` (or ``ValueError`` / ``OSError``) as one line
``jaxcomp: error: ...`` with exit status 2, anything else (a bug) with its traceback.
"""

from __future__ import annotations

import argparse
import sys

from ._errors import error_message, run_handler

__all__ = ["build_parser", "error_message", "main", "run_handler"]


def _version() -> str:
    from .._version import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxcomp`` command."""
    from .ast import add_ast_parser
    from .correct import add_correct_parser
    from .field import add_field_parser
    from .fit import add_fit_parser
    from .library import add_library_parser
    from .selection import (
        add_import_c4_parser,
        add_info_parser,
        add_predict_parser,
        add_train_parser,
        add_validate_parser,
    )
    from .workflow import add_demo_parser, add_report_parser, add_run_parser

    parser = argparse.ArgumentParser(prog="jaxcomp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"jaxcomp {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    # the order of `jaxcomp --help`
    for add in (
        add_demo_parser,
        add_run_parser,
        add_train_parser,
        add_import_c4_parser,
        add_predict_parser,
        add_info_parser,
        add_library_parser,
        add_field_parser,
        add_ast_parser,
        add_correct_parser,
        add_fit_parser,
        add_report_parser,
        add_validate_parser,
    ):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxcomp`` command; returns the exit status."""
    parser = build_parser()
    return run_handler(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
