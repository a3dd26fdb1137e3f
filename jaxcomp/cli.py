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
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from .errors import JaxcompError

__all__ = ["error_message", "main", "run_handler"]


def _parse_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from error


def _parse_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error


def _cmd_train(args: argparse.Namespace) -> int:
    from ._io import atomic_write_text, read_table
    from .selection.calibration import plot_reliability
    from .selection.training import TrainConfig, plot_loss_curves, train_selection_function

    table = read_table(args.labels)
    defaults = TrainConfig()
    config = TrainConfig(
        hidden_widths=args.hidden or defaults.hidden_widths,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rates=args.learning_rates or defaults.learning_rates,
        weight_decays=args.weight_decays or defaults.weight_decays,
        n_members=args.members,
        seed=args.seed,
        out_of_domain=args.out_of_domain,
        label_column=args.label_column,
        group_column=args.group_column,
    )
    result = train_selection_function(table, args.inputs, config, progress=not args.quiet,
                                      provenance={"labels_file": str(Path(args.labels).resolve())})
    out = Path(args.out)
    result.selection_function.save(out)
    stem = out.with_suffix("")
    plot_loss_curves(result, f"{stem}_loss.png")
    plot_reliability(result.test_calibration, f"{stem}_reliability.png", title=f"{out.name}: held-out labels")
    atomic_write_text(f"{stem}_calibration.json", json.dumps(result.test_calibration.to_json(), indent=1))
    summary = result.test_calibration.summary()
    print(f"saved {out} (lr={result.best_learning_rate:g}, wd={result.best_weight_decay:g}); held-out "
          f"Brier {summary['brier']:.4f}, ECE {summary['ece']:.4f}, log loss {summary['log_loss']:.4f}")
    return 0


def _cmd_import_c4(args: argparse.Namespace) -> int:
    from .selection.c4 import import_c4

    selection_function = import_c4(args.directory, args.kind, model_name=args.model_name)
    path = selection_function.save(args.out)
    print(f"saved {path}: {selection_function}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from ._io import read_table, write_table
    from .selection import SelectionFunction

    selection_function = SelectionFunction.load(args.artefact)
    table = read_table(args.table)
    probability, spread = selection_function.predict(
        table, out_of_domain=args.out_of_domain, return_spread=True, progress=not args.quiet
    )
    table[args.column] = probability
    table[f"{args.column}_spread"] = spread
    table.meta["p_obs_artefact"] = str(Path(args.artefact).resolve())
    write_table(table, args.out)
    print(f"wrote {args.out}: {len(table)} rows, mean {args.column} {probability.mean():.4f}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .selection.artefact import read_header

    print(json.dumps(read_header(args.artefact), indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxcomp`` command."""
    parser = argparse.ArgumentParser(prog="jaxcomp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"jaxcomp {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    from .workflow.cli import add_demo_parser, add_run_parser, add_validate_parser

    add_demo_parser(commands)
    add_run_parser(commands)

    train = commands.add_parser("train", help="train a selection function on AST labels")
    train.add_argument("labels", help="labels table (.parquet, .fits, .ecsv, .csv)")
    train.add_argument("--inputs", default="physical",
                       help="'physical', 'photometric', 'physical+r_eff_pc' or comma-separated columns")
    train.add_argument("--out", required=True, help="artefact to write (.safetensors)")
    train.add_argument("--hidden", type=_parse_ints, help="hidden widths, e.g. 512,512")
    train.add_argument("--epochs", type=int, default=100)
    train.add_argument("--batch-size", type=int, default=4096)
    train.add_argument("--learning-rates", type=_parse_floats, help="grid, e.g. 5e-3,1e-2 (default: paper)")
    train.add_argument("--weight-decays", type=_parse_floats, help="grid (default: paper)")
    train.add_argument("--members", type=int, default=1, help="ensemble size")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out-of-domain", choices=("clip", "nan", "error"), default="clip")
    train.add_argument("--label-column", default="C")
    train.add_argument("--group-column", default="cluster_id")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=_cmd_train)

    c4 = commands.add_parser("import-c4", help="import a published C-4 network")
    c4.add_argument("directory", help="C-4 checkpoints directory (completeness_nn_api/checkpoints)")
    c4.add_argument("kind", choices=("phys", "phot"))
    c4.add_argument("--out", required=True, help="artefact to write (.safetensors)")
    c4.add_argument("--model-name", default="model0")
    c4.set_defaults(func=_cmd_import_c4)

    predict = commands.add_parser("predict", help="add p_obs to a table")
    predict.add_argument("artefact")
    predict.add_argument("table")
    predict.add_argument("--out", required=True, help="output table (.parquet, .fits, .ecsv, .csv)")
    predict.add_argument("--column", default="p_obs")
    predict.add_argument("--out-of-domain", choices=("clip", "nan", "error"))
    predict.add_argument("--quiet", action="store_true")
    predict.set_defaults(func=_cmd_predict)

    info = commands.add_parser("info", help="print an artefact's header")
    info.add_argument("artefact")
    info.set_defaults(func=_cmd_info)

    from .ast.cli import add_ast_parser, add_field_parser
    from .demographics.cli import add_correct_parser, add_fit_parser
    from .library.cli import add_library_parser
    from .workflow.report import add_report_parser

    add_library_parser(commands)
    add_field_parser(commands)
    add_ast_parser(commands)
    add_correct_parser(commands)
    add_fit_parser(commands)
    add_report_parser(commands)
    add_validate_parser(commands)
    return parser


def _version() -> str:
    from ._version import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxcomp`` command; returns the exit status."""
    parser = build_parser()
    return run_handler(parser.parse_args(argv))


def run_handler(args: argparse.Namespace) -> int:
    """Call ``args.func(args)``; print a user's error as one line and return status 2."""
    try:
        return args.func(args)
    except (JaxcompError, ValueError, OSError) as error:
        # bad inputs (JaxcompError, ValueError from validation) and environment faults (missing or
        # unreadable files, permissions, a full disk): one line, status 2.  Anything else (a bare
        # TypeError, KeyError, AttributeError, ...) is a bug and keeps its traceback.
        print(f"jaxcomp: error: {error_message(error)}", file=sys.stderr)
        return 2


def error_message(error: BaseException) -> str:
    """One line describing ``error`` for the command line."""
    if isinstance(error, OSError) and not isinstance(error, JaxcompError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        other = f" -> {error.filename2}" if getattr(error, "filename2", None) else ""
        hint = {errno.ENOSPC: " (the disk is full; free space or write elsewhere)",
                errno.EACCES: " (no permission; choose a directory you can write to)",
                errno.EROFS: " (read-only file system; choose a directory you can write to)",
                errno.EISDIR: " (a directory was given where a file is needed)"}.get(error.errno, "")
        return f"{error.strerror}{where}{other}{hint}"
    message = str(error)
    return " ".join(message.split()) or type(error).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
