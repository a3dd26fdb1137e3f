"""Reading and checking a cluster catalogue: the one loader of ``jaxcomp correct``, ``jaxcomp fit``,
the workflow's ``correct`` and ``fit`` stages and the API.

A catalogue needs ``log_mass`` [log10 Msun], ``log_age`` [log10 yr] and ``av`` [mag] (other names
are mapped with ``columns``).  :func:`validate_catalogue` refuses, with one message wherever it
is called from:

* missing, duplicated (see :func:`jaxcomp._io.read_table`) or non-numeric columns, and an empty
table;
* a column in the wrong units: more than half of its values outside the plausible range
  (``log_age`` in log10 Myr, a linear mass, a mass in log10 of grams, ...), even with
  ``drop_invalid`` (dropping most of a catalogue would hide the mistake);
* rows with NaN, masked or sentinel (-99, 99.999, ...) values, unless ``drop_invalid``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import file_sha256, read_table
from ..errors import InputError

__all__ = [
    "NEEDED_COLUMNS",
    "PLAUSIBLE_RANGE",
    "check_units",
    "load_catalogue",
    "restrict_to_model",
    "validate_catalogue",
]

#: Columns every catalogue must provide (after renaming).
NEEDED_COLUMNS: tuple[str, str, str] = ("log_mass", "log_age", "av")
#: Values outside these ranges are taken for sentinels (-99, 99.999, ...) or wrong units:
#: no star cluster is lighter than 1 Msun or heavier than 1e9 Msun, younger than 10 kyr or
#: older than 30 Gyr, or behind more than 30 mag of extinction.
PLAUSIBLE_RANGE = {"log_mass": (0.0, 9.0), "log_age": (4.0, 10.5), "av": (-1.0, 30.0)}
UNITS = {"log_mass": "log10 Msun", "log_age": "log10 yr", "av": "mag"}
_UNIT_HINTS = {
    "log_age": "is it log10 of the age in Myr (add 6) or a linear age?",
    "log_mass": "is it log10 of the mass in Msun, not a linear mass or another unit?",
    "av": "is it A_V in magnitudes?",
}


def _values(column) -> np.ndarray:
    values = getattr(column, "value", column)
    return np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan)


def check_units(name: str, values: np.ndarray, label: str = "catalogue") -> None:
    """Refuse a ``log_mass``, ``log_age`` or ``av`` column with most values outside its plausible
    range."""
    low, high = PLAUSIBLE_RANGE[name]
    finite = np.isfinite(values)
    outside = finite & ((values < low) | (values > high))
    if finite.any() and outside.sum() > 0.5 * finite.sum():
        raise InputError(
            f"{label}: column {name} does not look like {UNITS[name]}: {int(outside.sum())} of "
            f"{int(finite.sum())} values lie outside the plausible [{low:g}, {high:g}] (median "
            f"{np.median(values[finite]):.3g}); {_UNIT_HINTS[name]} Convert the column first"
        )


def validate_catalogue(
    table,
    *,
    label: str = "catalogue",
    columns: dict | None = None,
    drop_invalid: bool = False,
    say=print,
):
    """Check a catalogue's ``log_mass``, ``log_age`` and ``av``; return ``(table, n_dropped)``.

    Parameters
    ----------
    table : astropy.table.Table
        The catalogue (it is not modified; a checked copy is returned with float columns).
    label : str
        How messages name the catalogue (its path, usually).
    columns : dict, optional
        ``{needed: given}`` renames, e.g. ``{"log_mass": "logM"}``.
    drop_invalid : bool
        Drop rows with NaN, masked or sentinel values (and say how many) instead of refusing.
    say : callable
        Where the message about dropped rows goes.

    Raises
    ------
    jaxcomp.errors.InputError
        (a ``ValueError``) for every problem listed in the module docstring.
    """
    from astropy.table import Table

    if not isinstance(table, Table):
        try:
            table = Table(table)
        except Exception as error:  # any non-table
            raise InputError(
                f"{label}: expected a table with columns {', '.join(NEEDED_COLUMNS)}, "
                f"got {type(table).__name__}"
            ) from error
    table = table.copy(copy_data=False)
    renames = dict(columns or {})
    for needed, given in renames.items():
        if given not in table.colnames:
            raise InputError(
                f"{label}: --columns maps {needed} to {given!r}, which is not a column"
            )
        if needed in table.colnames and needed != given:
            table.remove_column(needed)
        table.rename_column(given, needed)
    missing = [c for c in NEEDED_COLUMNS if c not in table.colnames]
    if missing:
        shown = ", ".join(table.colnames[:15]) + (", ..." if len(table.colnames) > 15 else "")
        raise InputError(
            f"{label} lacks column(s) {', '.join(missing)} (needs log_mass [log10 Msun], "
            f"log_age [log10 yr], av [mag]; it has: {shown}); map other names with --columns "
            f"{missing[0]}=NAME"
        )
    if len(table) == 0:
        raise InputError(f"{label} has no rows")
    bad = np.zeros(len(table), bool)
    problems = []
    for name in NEEDED_COLUMNS:
        try:
            values = _values(table[name])
        except (TypeError, ValueError):
            raise InputError(
                f"{label}: column {name} is not numeric (dtype {table[name].dtype})"
            ) from None
        check_units(name, values, label)
        low, high = PLAUSIBLE_RANGE[name]
        finite = np.isfinite(values)
        sentinel = finite & ((values < low) | (values > high))
        bad |= ~finite | sentinel
        parts = []
        if (~finite).any():
            parts.append(f"{int((~finite).sum())} NaN/masked")
        if sentinel.any():
            parts.append(
                f"{int(sentinel.sum())} outside [{low:g}, {high:g}] (e.g. {values[sentinel][0]:g})"
            )
        if parts:
            problems.append(f"{name}: {' and '.join(parts)}")
    n_invalid = int(bad.sum())
    if n_invalid:
        if not drop_invalid:
            hint = ""
            if n_invalid == len(table):
                hint = (
                    " (every row: are the columns log10 mass [Msun], log10 age [yr] and A_V [mag]?)"
                )
            raise InputError(
                f"{label}: {n_invalid} of {len(table)} row(s) have NaN, masked or sentinel values "
                "in "
                f"the needed columns ({'; '.join(problems)}){hint}; pass --drop-invalid to drop "
                "those rows"
            )
        if n_invalid == len(table):
            raise InputError(f"{label}: every row is invalid ({'; '.join(problems)})")
        say(
            f"dropped {n_invalid} of {len(table)} catalogue rows with NaN, masked or sentinel "
            "values "
            f"({'; '.join(problems)})"
        )
        table = table[~bad]
    for name in NEEDED_COLUMNS:  # plain float columns from here on
        table[name] = _values(table[name])
    return table, n_invalid


def load_catalogue(
    source: str | os.PathLike | None = None,
    *,
    legus: str | None = None,
    classes=(1, 2, 3),
    columns: dict | None = None,
    drop_invalid: bool = False,
    say=print,
):
    """Read a catalogue file (or a shipped LEGUS catalogue) and :func:`validate_catalogue` it.

    Returns ``(table, info)``; ``info`` records the label, the file's path and sha256, the rows
    read and dropped, and the options.  A missing file is a ``FileNotFoundError``.
    """
    if (source is None) == (legus is None):
        raise InputError(
            "give either a catalogue file or --legus NAME (e.g. --legus ngc628c), not both"
        )
    if legus is not None:
        from ..catalogues import read_legus

        table = read_legus(legus, classes=classes)
        path = Path(table.meta["source_file"])
        label = f"catalogue LEGUS {legus} (classes {','.join(str(c) for c in classes)})"
    else:
        path = Path(source)
        if not path.is_file():
            if path.is_dir():
                raise InputError(f"catalogue {path} is a directory; give a table file")
            raise FileNotFoundError(f"catalogue not found: {path}")
        table = read_table(path)
        label = f"catalogue {path}"
    n_read = len(table)
    table, n_invalid = validate_catalogue(
        table, label=label, columns=columns, drop_invalid=drop_invalid, say=say
    )
    info = {
        "label": label.removeprefix("catalogue "),
        "path": str(path.resolve()),
        "sha256": file_sha256(path),
        "n_rows_read": int(n_read),
        "n_invalid_dropped": n_invalid,
        "legus": legus,
        "classes": list(classes) if legus is not None else None,
        "columns": dict(columns or {}),
    }
    return table, info


def restrict_to_model(
    catalogue,
    model,
    av_policy: str = "clip",
    *,
    label: str = "catalogue",
    range_option: str = "",
    av_option: str = "",
    say=print,
):
    """The rows of a checked catalogue inside a population model's supports.

    Clusters outside the model's ``log_mass_range`` [log10 Msun] or ``log_age_range``
    [log10 yr] are dropped; those with A_V [mag] outside the model's A_V edges are clipped
    to the nearest edge (``av_policy="clip"``) or dropped (``"drop"``).  The one cut of
    ``jaxcomp fit`` (one or several fields) and the workflow's many-field fit.

    Parameters
    ----------
    catalogue : astropy.table.Table
        With ``log_mass``, ``log_age`` and ``av`` (see :func:`validate_catalogue`).
    model : PopulationModel
    av_policy : {"clip", "drop"}
    label : str
        What the messages call the catalogue (e.g. ``"field 'ngc628c'"``).
    range_option, av_option : str
        The options that change the supports and the A_V policy, named in the messages.
    say : callable
        Where the counts of dropped and clipped clusters are reported.

    Returns
    -------
    (astropy.table.Table, dict)
        The restricted copy and the counts (``outside_mass_age_support``, ``av_outside``,
        ``av_policy``).

    Raises
    ------
    InputError
        No cluster lies inside the supports.
    """
    if av_policy not in ("clip", "drop"):
        raise InputError(f"av_policy must be 'clip' or 'drop', got {av_policy!r}")
    log_mass, log_age, av = (np.asarray(catalogue[c], np.float64) for c in NEEDED_COLUMNS)
    inside = (
        (log_mass >= model.log_mass_range[0])
        & (log_mass <= model.log_mass_range[1])
        & (log_age >= model.log_age_range[0])
        & (log_age <= model.log_age_range[1])
    )
    low, high = model.av_edges[0], model.av_edges[-1]
    av_outside = (av < low) | (av > high)
    counts = {
        "outside_mass_age_support": int((~inside).sum()),
        "av_outside": int((av_outside & inside).sum()),
        "av_policy": av_policy,
    }
    ranges = f"log M in {tuple(model.log_mass_range)}, log T in {tuple(model.log_age_range)}"
    if counts["outside_mass_age_support"]:
        say(
            f"{label}: dropped {counts['outside_mass_age_support']} clusters outside {ranges}"
            + (f" ({range_option})" if range_option else "")
        )
    if av_policy == "drop":
        inside &= ~av_outside
    catalogue = catalogue[inside]
    if av_policy == "clip":
        catalogue["av"] = np.clip(np.asarray(catalogue["av"], np.float64), low, high)
    if counts["av_outside"]:
        say(
            f"{label}: {'clipped' if av_policy == 'clip' else 'dropped'} {counts['av_outside']} "
            f"clusters with A_V outside [{low:g}, {high:g}] mag"
            + (f" ({av_option})" if av_option else "")
        )
    if len(catalogue) == 0:
        raise InputError(
            f"{label}: no cluster lies inside {ranges}"
            + (f"; change {range_option}" if range_option else "")
        )
    return catalogue, counts
