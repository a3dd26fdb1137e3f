"""``jaxcomp run``, ``jaxcomp demo`` and ``jaxcomp validate``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .._data import data_path
from ..cli import error_message
from ..errors import JaxcompError

__all__ = ["add_run_parser", "add_demo_parser", "add_validate_parser", "demo_config_path"]


def demo_config_path(quick: bool = False) -> Path:
    """The embedded demo configuration (``jaxcomp/data/workflows/demo[_quick].toml``)."""
    return data_path("workflows", "demo_quick.toml" if quick else "demo.toml")


def _fail(message: str) -> int:
    print(f"jaxcomp: error: {message}", file=sys.stderr)
    return 2


def _run(config, out, *, only=None, force=(), replace=False, quiet=False, report=True) -> int:
    from .config import ConfigError
    from .runner import RunError, run_workflow

    try:
        run_workflow(config, out, only=only, force=force, replace=replace, progress=not quiet, report=report,
                     log=(lambda *a: None) if quiet else print)
    except (ConfigError, RunError) as error:
        return _fail(error_message(error))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return _fail(error_message(error))
    out = Path(args.out) if args.out else Path(args.config).with_suffix("").name + "-run"
    return _run(config, out, only=args.only, force=args.force or (), replace=args.force is not None, quiet=args.quiet,
                report=not args.no_report)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .config import load_config

    config = load_config(demo_config_path(args.quick))
    if args.seed is not None:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, seed=args.seed))
    out = Path(args.out or ("jaxcomp-demo-quick" if args.quick else "jaxcomp-demo"))
    if not args.quiet:
        print(f"jaxcomp demo{' --quick' if args.quick else ''}: every stage on the embedded mock NGC 628C field "
              f"(configuration {demo_config_path(args.quick)}), into {out}/")
    code = _run(config, out, replace=args.force, quiet=args.quiet)
    if code == 0 and not args.quiet:
        print(f"open {out / 'report.html'} in a browser")
    return code


def _cmd_validate(args: argparse.Namespace) -> int:
    import json

    from .._io import read_table, write_table
    from ..selection import SelectionFunction
    from ..selection import validation as V

    out = Path(args.out)
    try:
        test = read_table(args.labels)
        networks = {Path(p).stem: SelectionFunction.load(p) for p in args.selection}
        table = V.p_true_table(test)
    except (OSError, ValueError, JaxcompError) as error:  # a KeyError here is a bug: let it show
        return _fail(error_message(error))
    out.mkdir(parents=True, exist_ok=True)
    write_table(table, out / "p_true.parquet")
    min_count = args.min_count or V.default_min_count(len(table))
    results = {}
    for name, sf in networks.items():
        try:
            results[name] = V.validate_selection(sf, table, name=name, min_count=min_count, out_of_domain="clip",
                                                 drop_nonfinite=True)
        except (ValueError, JaxcompError) as error:
            return _fail(f"{name}: {error_message(error)}")
        results[name].write_json(out / f"validation_{name}.json")
        V.plot_z_hexbin(results[name], out / f"z_hexbin_{name}.png", mincnt=2)
        print(results[name].summary())
    V.plot_error_cdf(results, out / "error_cdf.png")
    V.plot_binned_comparison(results, out / "binned_comparison.png")
    print(json.dumps({k: r.percentiles for k, r in results.items()}))
    return 0


def add_run_parser(commands) -> None:
    run = commands.add_parser("run", help="run (or resume) the stages of a TOML configuration",
                              description="Run the out-of-date stages of a configuration into a run directory; "
                                          "up-to-date stages are skipped.")
    run.add_argument("config", help="TOML configuration (see jaxcomp/data/workflows/demo.toml)")
    run.add_argument("--out", help="run directory (default: <config name>-run)")
    run.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages (and what they need)")
    run.add_argument("--force", nargs="*", metavar="STAGE",
                     help="re-run these stages even if up to date; also (with or without stages) accept a run "
                          "directory recorded with a different configuration, whose changed stages re-run there")
    run.add_argument("--no-report", action="store_true", help="do not write report.html")
    run.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    run.set_defaults(func=_cmd_run)


def add_demo_parser(commands) -> None:
    demo = commands.add_parser("demo", help="run the embedded example end to end (no downloads)",
                               description="Every stage on the embedded mock NGC 628C field: library, training "
                                           "and test campaigns, both networks, validation, a simulated catalogue "
                                           "from a known population, its correction and NUTS fit, and the report.")
    demo.add_argument("--out", help="run directory (default: jaxcomp-demo or jaxcomp-demo-quick)")
    demo.add_argument("--quick", action="store_true", help="toy sizes (a few minutes) to check the installation")
    demo.add_argument("--seed", type=int, default=None, help="master seed (default: the configuration's, 0)")
    demo.add_argument("--force", action="store_true",
                      help="accept an output directory recorded with another seed or --quick (its stages re-run)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    demo.set_defaults(func=_cmd_demo)


def add_validate_parser(commands) -> None:
    validate = commands.add_parser("validate", help="validate selection functions on a test campaign (p_true)")
    validate.add_argument("labels", help="labels table of a test-design campaign (repeated injections)")
    validate.add_argument("--selection", nargs="+", required=True, help="selection-function artefacts")
    validate.add_argument("--out", required=True, help="output directory")
    validate.add_argument("--min-count", type=int, default=0,
                          help="omit bins with fewer test clusters (default: the paper's 80 of 5000, scaled)")
    validate.set_defaults(func=_cmd_validate)
