"""``[[fields]]``: several fields fitted jointly by the ``fit`` stage (one hierarchical model).

Each ``[[fields]]`` table names a field, its catalogue and its selection::

    [[fields]]
    name = "ngc628c"
    catalogue = "legus:ngc628c"          # or "legus:ngc628e", "population", a table path
    selection = "physical"               # a network of this run, or an artefact path

    [[fields]]
    name = "ngc628e"
    catalogue = "legus:ngc628e"
    selection = "artefacts/ngc628e_phys.safetensors"

    [fit]
    pooling = "partial"                  # "complete", "partial" or "none"
    compare_pooling = true               # also fit the other two forms, rank them by PSIS-LOO
    parametrisation = "non_centred"      # or "centred": many clusters per field

``catalogue``: ``"population"`` (the run's simulated catalogue), ``"legus:ngc628c"`` /
``"legus:ngc628e"`` (the shipped LEGUS class 1-3 clusters, rows without a fit dropped) or
a table with ``log_mass`` [log10 Msun], ``log_age`` [log10 yr] and ``av`` [mag].
``selection``: a physical network this run trains (``"physical"``,
``"physical+r_eff_pc"``; omitted: ``[fit] selection``) or a physical selection-function
artefact (``.safetensors``).  Relative paths are taken from the configuration file's folder.
With ``[[fields]]`` the ``fit`` stage fits these fields (``[catalogue]`` is still the
``correct`` stage's); ``[fit] pooling``, ``compare_pooling`` and ``parametrisation`` are read
only then.

Refused before any work, naming the field: a field name given twice, a missing or invalid
catalogue, a catalogue with no cluster inside the ``[population]`` mass and age ranges (the
model's supports), an artefact that is missing, not physical, or whose domain does not cover
those ranges; a network the run does not train.  Fields whose catalogue or network comes
from this run are checked the same way when the ``fit`` stage runs
(:func:`jaxcomp.demographics.stack_fields`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path

from .config_sections import DEMOGRAPHICS_SELECTIONS, FitSection
from .config_values import ConfigError, _coerce

__all__ = [
    "FIELD_CATALOGUES",
    "FieldEntry",
    "check_field_inputs",
    "check_fields",
    "field_catalogue_path",
    "field_selection_path",
    "fit_depends",
    "parse_fields",
]

#: Catalogue sources of a field other than a table path.
FIELD_CATALOGUES = ("population", "legus:ngc628c", "legus:ngc628e")


@dataclasses.dataclass(frozen=True)
class FieldEntry:
    """One ``[[fields]]`` table (see the module docstring).

    Attributes
    ----------
    name : str
        Unique name of the field (a galaxy or a pointing).
    catalogue : str
        ``"population"``, ``"legus:ngc628c"``, ``"legus:ngc628e"`` or a table path.
    selection : str
        ``"physical"``, ``"physical+r_eff_pc"`` or a ``.safetensors`` artefact path.
    """

    name: str
    catalogue: str
    selection: str

    @property
    def label(self) -> str:
        return f"[[fields]] {self.name!r}"

    @property
    def uses_network(self) -> bool:
        """The selection is a network this run trains."""
        return self.selection in DEMOGRAPHICS_SELECTIONS

    def check(self):
        if not self.name.strip():
            raise ConfigError("[[fields]] name must be a non-empty string")
        if not self.catalogue:
            raise ConfigError(
                f"{self.label}: catalogue must be one of {list(FIELD_CATALOGUES)} or a table path"
            )
        if self.catalogue.startswith("legus:") and self.catalogue not in FIELD_CATALOGUES:
            raise ConfigError(
                f"{self.label}: catalogue = {self.catalogue!r}; the shipped LEGUS catalogues are "
                "'legus:ngc628c' and 'legus:ngc628e'"
            )
        if not (self.uses_network or self.selection.endswith(".safetensors")):
            raise ConfigError(
                f"{self.label}: selection = {self.selection!r} must be a network of this run "
                f"({', '.join(repr(k) for k in DEMOGRAPHICS_SELECTIONS)}) or a physical "
                "selection-function artefact (.safetensors)"
            )


def _resolve(path: str, base: Path | None) -> str:
    if base is None or Path(path).is_absolute():
        return path
    return str((base / path).resolve())


def parse_fields(values, fit_values: Mapping, *, default_selection: str, base=None):
    """The ``[[fields]]`` array of tables as :class:`FieldEntry` objects (checked one by one and
    for repeated names); ``fit_values`` is the raw ``[fit]`` table."""
    if values is None or values == []:
        given = sorted(set(FitSection.FIELDS_KEYS) & set(fit_values))
        if given:
            raise ConfigError(
                f"[fit] {', '.join(given)} is only read with [[fields]] (several fields in one "
                "model); add [[fields]] tables or remove the key"
            )
        return ()
    if not isinstance(values, list) or not all(isinstance(v, Mapping) for v in values):
        raise ConfigError(
            "fields must be an array of tables: [[fields]] with name, catalogue and selection"
        )
    known = {f.name for f in dataclasses.fields(FieldEntry)}
    hints = typing.get_type_hints(FieldEntry)
    entries, seen = [], set()
    for i, table in enumerate(values):
        where = f"fields #{i + 1}" + (f" {table['name']!r}" if "name" in table else "")
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"[{where}] unknown key(s) {unknown}; known: {sorted(known)}")
        for key in ("name", "catalogue"):
            if key not in table:
                raise ConfigError(f"[{where}] {key} is needed")
        kwargs = {key: _coerce(where, key, value, hints[key]) for key, value in table.items()}
        kwargs.setdefault("selection", default_selection)
        entry = FieldEntry(**kwargs)
        entry.check()
        if entry.name in seen:
            raise ConfigError(
                f"[[fields]] name {entry.name!r} is given more than once; field names must be "
                "unique"
            )
        seen.add(entry.name)
        if entry.catalogue not in FIELD_CATALOGUES:
            entry = dataclasses.replace(entry, catalogue=_resolve(entry.catalogue, base))
        if not entry.uses_network:
            entry = dataclasses.replace(entry, selection=_resolve(entry.selection, base))
        entries.append(entry)
    return tuple(entries)


def check_fields(config) -> None:
    """Cross-section checks of ``[[fields]]`` (:func:`jaxcomp.workflow.config.parse_config`)."""
    if not config.fields:
        return
    if not config.fit.enabled:
        raise ConfigError(
            "[[fields]] are fitted by the fit stage, but [fit] enabled = false; enable it or "
            "remove the fields"
        )
    for entry in config.fields:
        if entry.uses_network and entry.selection not in config.networks.inputs:
            raise ConfigError(
                f"{entry.label}: selection = {entry.selection!r} needs that network; add it to "
                "[networks] inputs"
            )
        if entry.catalogue == "population" and not config.population.enabled:
            raise ConfigError(
                f"{entry.label}: catalogue = 'population' but [population] enabled = false"
            )


def fit_depends(config) -> tuple[str, ...]:
    """The fit stage's upstream stages with ``[[fields]]``: ``train`` only if a field uses a
    network of the run, ``population`` only if a field uses the simulated catalogue."""
    uses = {
        "train": any(e.uses_network for e in config.fields),
        "population": config.population.enabled
        and any(e.catalogue == "population" for e in config.fields),
    }
    return tuple(name for name in ("train", "population") if uses[name])


def field_catalogue_path(entry: FieldEntry) -> Path | None:
    """The table a field reads (None for the run's simulated or a shipped catalogue)."""
    return None if entry.catalogue in FIELD_CATALOGUES else Path(entry.catalogue)


def field_selection_path(entry: FieldEntry) -> Path | None:
    """The artefact a field reads (None for a network of this run)."""
    return None if entry.uses_network else Path(entry.selection)


def check_field_inputs(config) -> None:
    """The files ``[[fields]]`` read, checked before any stage runs: each catalogue (the checks
    of ``jaxcomp fit``, then at least one cluster inside the ``[population]`` ranges) and each
    artefact (physical, its domain covering those ranges).  Raises :class:`ConfigError`."""
    if not config.fields:
        return
    from ..cli._demographics import load_selection
    from ..demographics.multifield_model import check_field
    from .multifield_stage import field_model, read_field_catalogue

    population = field_model(config)
    for entry in config.fields:
        theta = None
        try:
            if entry.catalogue != "population":
                theta = read_field_catalogue(entry, population)[1]
            path = field_selection_path(entry)
            if path is not None:
                # the checks of `jaxcomp fit --selection`: the file exists, a physical artefact
                plain = types.SimpleNamespace(selection=str(path), grid_file=None, grid=None)
                selection = load_selection(plain, "fit")[0]
                check_field(entry.name, selection, population, theta)
        except (OSError, ValueError) as error:
            message = str(error)
            if f"field {entry.name!r}" in message:
                raise ConfigError(f"[[fields]]: {message}") from None
            raise ConfigError(f"{entry.label}: {message}") from None
