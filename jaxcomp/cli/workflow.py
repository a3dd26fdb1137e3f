"""``jaxcomp run``, ``jaxcomp demo`` and ``jaxcomp report``: the staged workflow."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ._errors import error_message, fail

__all__ = ["add_demo_parser", "add_report_parser", "add_run_parser", "demo_config_path"]


def demo_config_path(quick: bool = False) -> Path:
    """The embedded demo configuration (``jaxcomp/data/workflows/demo[_quick].toml``)."""
    from .._data import data_path

    return data_path("workflows", "demo_quick.toml" if quick else "demo.toml")


def _run(config, out, *, only=None, force=(), replace=False, quiet=False, report=True) -> int:
    from ..workflow.config import ConfigError
    from ..workflow.runner import RunError, run_workflow

    try:
        run_workflow(
            config,
            out,
            only=only,
            force=force,
            replace=replace,
            progress=not quiet,
            report=report,
            log=(lambda *a: None) if quiet else print,
        )
    except (ConfigError, RunError) as error:
        return fail(error_message(error))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from ..workflow.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return fail(error_message(error))
    out = Path(args.out) if args.out else Path(args.config).with_suffix("").name + "-run"
    return _run(
        config,
        out,
        only=args.only,
        force=args.force or (),
        replace=args.force is not None,
        quiet=args.quiet,
        report=not args.no_report,
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..workflow.config import load_config

    config = load_config(demo_config_path(args.quick))
    if args.seed is not None:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, seed=args.seed))
    out = Path(args.out or ("jaxcomp-demo-quick" if args.quick else "jaxcomp-demo"))
    if not args.quiet:
        print(
            f"jaxcomp demo{' --quick' if args.quick else ''}: every stage on the embedded mock "
            f"NGC 628C field (configuration {demo_config_path(args.quick)}), into {out}/"
        )
    code = _run(config, out, replace=args.force, quiet=args.quiet)
    if code == 0 and not args.quiet:
        print(f"open {out / 'report.html'} in a browser")
    return code


def _cmd_report(args: argparse.Namespace) -> int:
    from ..workflow.report import write_report

    out = write_report(args.run_dir, args.out, strict=args.strict)
    print(f"wrote {out}")
    return 0


def add_run_parser(commands) -> None:
    """Add ``run`` (run or resume the stages of a TOML configuration)."""
    run = commands.add_parser(
        "run",
        help="run (or resume) the stages of a TOML configuration",
        description="Run the out-of-date stages of a configuration into a run "
        "directory; up-to-date stages are skipped.",
    )
    run.add_argument("config", help="TOML configuration (see jaxcomp/data/workflows/demo.toml)")
    run.add_argument("--out", help="run directory (default: <config name>-run)")
    run.add_argument(
        "--only", nargs="+", metavar="STAGE", help="run only these stages (and what they need)"
    )
    run.add_argument(
        "--force",
        nargs="*",
        metavar="STAGE",
        help="re-run these stages even if up to date; also (with or without stages) accept a "
        "run directory recorded with a different configuration, whose changed stages "
        "re-run there",
    )
    run.add_argument("--no-report", action="store_true", help="do not write report.html")
    run.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    run.set_defaults(func=_cmd_run)


def add_demo_parser(commands) -> None:
    """Add ``demo`` (every stage on the embedded mock field)."""
    demo = commands.add_parser(
        "demo",
        help="run the embedded example end to end (no downloads)",
        description="Every stage on the embedded mock NGC 628C field: library, training and test "
        "campaigns, both networks, validation, a simulated catalogue from a known "
        "population, its correction and NUTS fit, and the report.",
    )
    demo.add_argument("--out", help="run directory (default: jaxcomp-demo or jaxcomp-demo-quick)")
    demo.add_argument(
        "--quick", action="store_true", help="toy sizes (a few minutes) to check the installation"
    )
    demo.add_argument(
        "--seed", type=int, default=None, help="master seed (default: the configuration's, 0)"
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="accept an output directory recorded with another seed or --quick (its stages re-run)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    demo.set_defaults(func=_cmd_demo)


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``report`` (the HTML report of a workflow run)."""
    from ..workflow.report import REPORT_NAME

    p = subparsers.add_parser(
        "report",
        help="write the self-contained HTML report of a workflow run",
        description="Write one self-contained HTML file (figures embedded, no "
        "external resources) describing a jaxcomp run directory.",
    )
    p.add_argument("run_dir", help="run directory (with run.json)")
    p.add_argument("--out", help=f"output file (default: RUN_DIR/{REPORT_NAME})")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit status 2) if a figure, table or config file is missing",
    )
    p.set_defaults(func=_cmd_report)
    return p
