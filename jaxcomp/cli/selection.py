"""``jaxcomp train``, ``import-c4``, ``predict``, ``validate`` and ``info``: selection functions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._errors import error_message, fail
from .argtypes import float_list, int_list

__all__ = [
    "add_import_c4_parser",
    "add_info_parser",
    "add_predict_parser",
    "add_train_parser",
    "add_validate_parser",
]

_OUT_OF_DOMAIN = ("clip", "nan", "error")


def _cmd_train(args: argparse.Namespace) -> int:
    from .._io import atomic_write_text, read_table
    from ..selection.calibration import plot_reliability
    from ..selection.training import (
        TrainConfig,
        plot_loss_curves,
        train_selection_function,
    )

    table = read_table(args.labels)
    # options left out take TrainConfig's defaults (the one home of the training defaults)
    given = {
        "hidden_widths": args.hidden,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rates": args.learning_rates,
        "weight_decays": args.weight_decays,
        "n_members": args.members,
        "seed": args.seed,
        "out_of_domain": args.out_of_domain,
        "label_column": args.label_column,
        "group_column": args.group_column,
    }
    config = TrainConfig(
        **{name: value for name, value in given.items() if value not in (None, ())}
    )
    result = train_selection_function(
        table,
        args.inputs,
        config,
        progress=not args.quiet,
        provenance={"labels_file": str(Path(args.labels).resolve())},
    )
    out = Path(args.out)
    result.selection_function.save(out)
    stem = out.with_suffix("")
    plot_loss_curves(result, f"{stem}_loss.png")
    plot_reliability(
        result.test_calibration, f"{stem}_reliability.png", title=f"{out.name}: held-out labels"
    )
    atomic_write_text(
        f"{stem}_calibration.json", json.dumps(result.test_calibration.to_json(), indent=1)
    )
    summary = result.test_calibration.summary()
    print(
        f"saved {out} (lr={result.best_learning_rate:g}, wd={result.best_weight_decay:g}); "
        "held-out "
        f"Brier {summary['brier']:.4f}, ECE {summary['ece']:.4f}, log loss "
        f"{summary['log_loss']:.4f}"
    )
    return 0


def _cmd_import_c4(args: argparse.Namespace) -> int:
    from ..selection.c4 import import_c4

    selection_function = import_c4(args.directory, args.kind, model_name=args.model_name)
    path = selection_function.save(args.out)
    print(f"saved {path}: {selection_function}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .._io import read_table, write_table
    from ..selection import SelectionFunction

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
    from ..selection.artefact import read_header

    print(json.dumps(read_header(args.artefact), indent=1))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .._io import read_table, write_table
    from ..errors import JaxcompError
    from ..selection import SelectionFunction
    from ..selection import validation as V

    out = Path(args.out)
    try:
        test = read_table(args.labels)
        networks = {Path(p).stem: SelectionFunction.load(p) for p in args.selection}
        table = V.p_true_table(test)
    except (OSError, ValueError, JaxcompError) as error:  # a KeyError here is a bug: let it show
        return fail(error_message(error))
    out.mkdir(parents=True, exist_ok=True)
    write_table(table, out / "p_true.parquet")
    min_count = args.min_count or V.default_min_count(len(table))
    results = {}
    for name, sf in networks.items():
        try:
            results[name] = V.validate_selection(
                sf, table, name=name, min_count=min_count, out_of_domain="clip", drop_nonfinite=True
            )
        except (ValueError, JaxcompError) as error:
            return fail(f"{name}: {error_message(error)}")
        results[name].write_json(out / f"validation_{name}.json")
        V.plot_z_hexbin(results[name], out / f"z_hexbin_{name}.png", mincnt=2)
        print(results[name].summary())
    V.plot_error_cdf(results, out / "error_cdf.png")
    V.plot_binned_comparison(results, out / "binned_comparison.png")
    print(json.dumps({k: r.percentiles for k, r in results.items()}))
    return 0


def add_train_parser(commands) -> None:
    """Add ``train`` (a selection function from AST labels)."""
    train = commands.add_parser("train", help="train a selection function on AST labels")
    train.add_argument("labels", help="labels table (.parquet, .fits, .ecsv, .csv)")
    train.add_argument(
        "--inputs",
        default="physical",
        help="'physical', 'photometric', 'physical+r_eff_pc' or comma-separated columns",
    )
    train.add_argument("--out", required=True, help="artefact to write (.safetensors)")
    train.add_argument("--hidden", type=int_list, help="hidden widths, e.g. 512,512")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument(
        "--learning-rates", type=float_list, help="grid, e.g. 5e-3,1e-2 (default: paper)"
    )
    train.add_argument("--weight-decays", type=float_list, help="grid (default: paper)")
    train.add_argument("--members", type=int, help="ensemble size")
    train.add_argument("--seed", type=int)
    train.add_argument("--out-of-domain", choices=_OUT_OF_DOMAIN)
    train.add_argument("--label-column")
    train.add_argument("--group-column")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=_cmd_train)


def add_import_c4_parser(commands) -> None:
    """Add ``import-c4`` (a published C-4 network as a jaxcomp artefact)."""
    c4 = commands.add_parser("import-c4", help="import a published C-4 network")
    c4.add_argument("directory", help="C-4 checkpoints directory (completeness_nn_api/checkpoints)")
    c4.add_argument("kind", choices=("phys", "phot"))
    c4.add_argument("--out", required=True, help="artefact to write (.safetensors)")
    c4.add_argument("--model-name", default="model0")
    c4.set_defaults(func=_cmd_import_c4)


def add_predict_parser(commands) -> None:
    """Add ``predict`` (p_obs and its ensemble spread for a table)."""
    predict = commands.add_parser("predict", help="add p_obs to a table")
    predict.add_argument("artefact")
    predict.add_argument("table")
    predict.add_argument("--out", required=True, help="output table (.parquet, .fits, .ecsv, .csv)")
    predict.add_argument("--column", default="p_obs")
    predict.add_argument("--out-of-domain", choices=_OUT_OF_DOMAIN)
    predict.add_argument("--quiet", action="store_true")
    predict.set_defaults(func=_cmd_predict)


def add_info_parser(commands) -> None:
    """Add ``info`` (the JSON header of an artefact)."""
    info = commands.add_parser("info", help="print an artefact's header")
    info.add_argument("artefact")
    info.set_defaults(func=_cmd_info)


def add_validate_parser(commands) -> None:
    """Add ``validate`` (selection functions against p_true of a test campaign)."""
    validate = commands.add_parser(
        "validate", help="validate selection functions on a test campaign (p_true)"
    )
    validate.add_argument(
        "labels", help="labels table of a test-design campaign (repeated injections)"
    )
    validate.add_argument(
        "--selection", nargs="+", required=True, help="selection-function artefacts"
    )
    validate.add_argument("--out", required=True, help="output directory")
    validate.add_argument(
        "--min-count",
        type=int,
        default=0,
        help="omit bins with fewer test clusters (default: the paper's 80 of 5000, scaled)",
    )
    validate.set_defaults(func=_cmd_validate)
