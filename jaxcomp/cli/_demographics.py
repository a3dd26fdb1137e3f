"""What ``jaxcomp correct`` and ``jaxcomp fit`` share: the catalogue and selection inputs, the
cached selection grid, and the output directory with its run record (``<command>.json``).

Both read a cluster catalogue (any table :func:`jaxcomp._io.read_table` reads, with columns
``log_mass`` [log10 Msun], ``log_age`` [log10 yr] and ``av`` [mag]; other names are mapped
with ``--columns``; or a LEGUS catalogue with ``--legus ngc628c``) and a *physical*
selection function artefact (inputs ``log_mass``, ``log_age``, ``av``), tabulated once on a
:class:`~jaxcomp.demographics.SelectionGrid` that is cached in the output directory
(``selection_grid_<NM>x<NT>x<NA>.npz`` with a ``.json`` sidecar naming the artefact's
sha256) and reused while the artefact and the grid shape match; ``--grid-file`` uses a
saved grid instead.

Every run writes ``<command>.json`` into ``--out``: the configuration (options and the
sha256 of every input file), the versions, the outputs and the results.  An output
directory is reused only for the same configuration (a rerun, which reuses the cached
grid) or for the other command's run; anything else needs ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..demographics.catalogue import NEEDED_COLUMNS
from ..demographics.catalogue import load_catalogue as _load_catalogue
from ..provenance import file_sha256, jsonable
from .argtypes import int_list

__all__ = [
    "RECORDS",
    "add_common_arguments",
    "grid_shape",
    "load_catalogue",
    "load_selection",
    "prepare_output",
    "say_unless_quiet",
    "selection_grid",
    "write_record",
]

#: The run record each command writes into its output directory.
RECORDS = {"correct": "correct.json", "fit": "fit.json"}


def _column_map(text: str) -> dict[str, str]:
    mapping = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        needed, _, given = part.partition("=")
        if needed not in NEEDED_COLUMNS or not given:
            raise argparse.ArgumentTypeError(
                f"expected NEEDED=COLUMN pairs with NEEDED one of {', '.join(NEEDED_COLUMNS)}, got "
                f"{part!r}"
            )
        mapping[needed] = given
    return mapping


def load_catalogue(args, *, say=print):
    """The catalogue of ``args`` with checked ``log_mass``, ``log_age``, ``av``; and its provenance.

    The checks are :func:`jaxcomp.demographics.catalogue.validate_catalogue`, shared with the
    workflow and the API: ``FileNotFoundError`` for a missing file, ``InputError`` (a
    ``ValueError``) for missing, duplicated or non-numeric columns, columns in the wrong units
    and (unless ``args.drop_invalid``) rows with NaN, masked or sentinel values.
    """
    return _load_catalogue(
        args.catalogue,
        legus=args.legus,
        classes=args.classes,
        columns=args.columns,
        drop_invalid=args.drop_invalid,
        say=say,
    )


def load_selection(args, command: str):
    """The physical SelectionFunction of ``--selection`` (or None with ``--grid-file``) and its
    provenance."""
    from ..demographics.marginalise import PHYSICAL_AXES
    from ..selection import SelectionFunction

    if args.selection is None and args.grid_file is None:
        raise ValueError(
            "give --selection SF.safetensors (a physical selection function) or --grid-file "
            "GRID.npz"
        )
    if args.grid_file is not None and args.grid is not None:
        raise ValueError(
            "give --grid (nodes of a grid to compute) or --grid-file (a saved grid), not both"
        )
    if args.grid_file is not None and not Path(args.grid_file).is_file():
        raise FileNotFoundError(f"selection grid not found: {args.grid_file}")
    if args.selection is None:
        return None, None
    path = Path(args.selection)
    if not path.is_file():
        raise FileNotFoundError(f"selection-function artefact not found: {path}")
    selection = SelectionFunction.load(path)
    if sorted(selection.input_names) != sorted(PHYSICAL_AXES):
        raise ValueError(
            f"{path} is a selection function of ({', '.join(selection.input_names)}); `jaxcomp "
            f"{command}` needs a "
            f"physical one of (log_mass, log_age, av), e.g. `jaxcomp import-c4 DIR phys` or "
            f"`jaxcomp train LABELS --inputs physical`"
        )
    return selection, {
        "path": str(path.resolve()),
        "sha256": file_sha256(path),
        "repr": repr(selection),
    }


def grid_shape(args) -> tuple[int, int, int]:
    from ..demographics.marginalise import PAPER_GRID_SHAPE

    shape = tuple(int(n) for n in (args.grid or PAPER_GRID_SHAPE))
    if any(n < 2 for n in shape):
        raise ValueError(f"--grid needs at least 2 nodes per axis, got {' '.join(map(str, shape))}")
    return shape


def selection_grid(
    args, selection, selection_info, out: Path, *, progress: bool, say=print, tag: str = ""
):
    """The SelectionGrid: from ``--grid-file``, the cache in ``out`` (same artefact and shape) or
    computed.  ``tag`` goes into the cache's name (``selection_grid_<tag>_<NM>x<NT>x<NA>``) when
    several artefacts share an output directory."""
    from .._io import atomic_write_text
    from ..demographics.marginalise import SelectionGrid

    if args.grid_file is not None:
        path = Path(args.grid_file)
        try:
            grid = SelectionGrid.load(path)
        except Exception as error:  # np.load raises many types for a file that is not a grid
            raise ValueError(
                f"{path} is not a saved SelectionGrid (.npz from SelectionGrid.save): {error}"
            ) from None
        say(f"selection grid {grid.shape} from {path}")
        return grid, {"source": "grid_file", "path": str(path.resolve()), "shape": list(grid.shape)}
    shape = grid_shape(args)
    name = f"selection_grid_{tag + '_' if tag else ''}{shape[0]}x{shape[1]}x{shape[2]}"
    path, sidecar = out / f"{name}.npz", out / f"{name}.json"
    key = {
        "selection_sha256": selection_info["sha256"],
        "shape": list(shape),
        "axes": "selection domain",
    }
    info = {"source": "cache", "path": str(path.resolve()), "shape": list(shape)}
    if path.is_file() and sidecar.is_file():
        try:
            cached = json.loads(sidecar.read_text())
            if {k: cached.get(k) for k in key} == key:
                grid = SelectionGrid.load(path)
                say(f"reusing the cached selection grid {path}")
                return grid, info
        except Exception:  # a damaged cache is recomputed
            pass
    say(f"evaluating the selection function on a {shape[0]} x {shape[1]} x {shape[2]} grid ...")
    start = time.perf_counter()
    grid = SelectionGrid.from_selection(selection, shape=shape, progress=progress)
    grid.save(path)  # atomic
    atomic_write_text(
        sidecar, json.dumps({**key, "selection_path": selection_info["path"]}, indent=1)
    )
    info.update(source="computed", seconds=round(time.perf_counter() - start, 2))
    say(f"saved the selection grid to {path} ({info['seconds']:.1f} s)")
    return grid, info


def input_configuration(
    command: str, args, catalogue_info: dict, selection_info: dict | None, options: dict
) -> tuple[dict, str | None]:
    """The run's configuration record (what ``prepare_output`` compares with an existing run)
    and the SHA-256 of ``--grid-file`` (None without one)."""
    grid_file_sha = file_sha256(Path(args.grid_file)) if args.grid_file else None
    configuration = jsonable(
        {
            "command": command,
            "catalogue_sha256": catalogue_info["sha256"],
            "legus": args.legus,
            "classes": catalogue_info["classes"],
            "columns": catalogue_info["columns"],
            "drop_invalid": bool(args.drop_invalid),
            "selection_sha256": None if selection_info is None else selection_info["sha256"],
            "grid_file_sha256": grid_file_sha,
            "grid": None if args.grid_file else list(grid_shape(args)),
            **options,
        }
    )
    return configuration, grid_file_sha


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def prepare_output(out: Path, command: str, configuration: dict, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` that holds anything but runs of this configuration (unless
    ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    entries = (
        {p.name for p in out.iterdir() if not p.name.startswith(".")} if out.is_dir() else set()
    )
    own = _read_record(out / RECORDS[command])
    if entries:
        known = {n for n in entries if n.startswith("selection_grid_")}
        for name in RECORDS.values():
            record = _read_record(out / name)
            if record is not None and record.get("command") in RECORDS:
                known |= {name, *record.get("outputs", [])}
        stray = sorted(entries - known)
        changed = []
        if own is not None and own.get("configuration") != configuration:
            previous = own.get("configuration") or {}
            changed = sorted(
                k
                for k in set(previous) | set(configuration)
                if previous.get(k) != configuration.get(k)
            )
        if (stray or changed) and not overwrite:
            if changed:
                reason = (
                    f"holds a `jaxcomp {command}` run with a different configuration "
                    f"(changed: {', '.join(changed)})"
                )
            else:
                listed = ", ".join(stray[:3]) + (", ..." if len(stray) > 3 else "")
                reason = f"is not empty and holds files of no `jaxcomp {command}` run ({listed})"
            raise ValueError(
                f"output directory {out} {reason}; pass --overwrite to write over it, "
                "or choose another --out"
            )
        if changed and own is not None:  # --overwrite: remove the outputs of the replaced run
            for name in own.get("outputs", []):
                if name and "/" not in name and not name.startswith("."):
                    (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def write_record(out: Path, command: str, record: dict) -> None:
    from .._io import atomic_write_text

    atomic_write_text(out / RECORDS[command], json.dumps(jsonable(record), indent=1) + "\n")


def sampler_record(args) -> dict:
    """The NUTS options of ``jaxcomp fit`` (one or several fields), as ``fit.json`` records them."""
    return {
        "chains": args.chains,
        "warmup": args.warmup,
        "samples": args.samples,
        "seed": args.seed,
        "chain_method": args.chain_method,
        "target_accept": args.target_accept,
        "max_tree_depth": args.max_tree_depth,
    }


def say_unless_quiet(args):
    def say(message: str) -> None:
        if not args.quiet:
            print(message, flush=True)

    return say


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "catalogue",
        nargs="?",
        help="cluster table (.parquet, .fits, .ecsv, .csv) with log_mass, log_age, av",
    )
    parser.add_argument(
        "--legus",
        metavar="NAME|PATH",
        help="read a LEGUS catalogue instead of CATALOGUE (ngc628c, ngc628e or a .tab file)",
    )
    parser.add_argument(
        "--classes",
        type=int_list,
        default=(1, 2, 3),
        help="LEGUS visual classes to keep (default: %(default)s)",
    )
    parser.add_argument(
        "--columns",
        type=_column_map,
        default={},
        metavar="NEEDED=NAME,...",
        help="take log_mass / log_age / av from other columns, e.g. log_mass=logM,av=AV",
    )
    parser.add_argument(
        "--drop-invalid",
        action="store_true",
        help="drop rows with NaN, masked or sentinel values (e.g. -99) in the needed columns",
    )
    parser.add_argument(
        "--selection",
        metavar="SF.safetensors",
        help="physical selection-function artefact (inputs log_mass, log_age, av)",
    )
    parser.add_argument(
        "--grid-file",
        metavar="GRID.npz",
        help="a saved SelectionGrid to use instead of evaluating the selection function",
    )
    parser.add_argument(
        "--grid",
        type=int,
        nargs=3,
        metavar=("NM", "NT", "NA"),
        default=None,
        help="grid nodes in (log_mass, log_age, av) over the selection domain "
        "(default: the paper's 500 500 50); cached in --out",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an output directory that holds another configuration's results",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
