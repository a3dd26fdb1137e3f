"""The run configuration: one TOML file describes a whole jaxcomp run.

Every section maps to a frozen dataclass; unknown sections or keys, wrong types,
values out of range and inconsistent stages are refused **before any work
starts**, with a message that names the key (``[networks] epochs: ...``).
Omitted keys take the defaults of the sections (:mod:`~jaxcomp.workflow.config_sections`,
:mod:`~jaxcomp.workflow.config_field` for ``[field]``; the values' conversion and checks in
:mod:`~jaxcomp.workflow.config_values`); :meth:`RunConfig.to_dict` gives the
resolved configuration, which the run directory records.  This module holds
:class:`RunConfig`, reads and checks it (:func:`load_config`, :func:`parse_config`) and checks
the files it names (:func:`check_inputs`).

Example (an abridged version of the embedded demo, ``jaxcomp/data/workflows/demo.toml``)::

    [run]
    name = "demo"
    seed = 0

    [field]
    kind = "mock"
    size = "small"

    [library]
    n_clusters = 40000

    [campaign]
    r_eff_pc = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    clusters_per_frame = 25
    train_frames_per_reff = 120
    test_clusters_per_reff = 500
    test_repeats = 10
    reprocess = "local"
    edge_margin_px = 5

    [networks]
    inputs = ["physical", "photometric", "physical+r_eff_pc", "photometric+r_eff_pc"]

    [population]
    alpha_M = -2.0
    log_M_break = 5.0
    clusters_per_frame = 25

    [fit]
    selection = "physical+r_eff_pc"
    chains = 2

Optional ``[[fields]]`` tables (:mod:`jaxcomp.workflow.fields`) make the fit stage fit several
fields jointly (``[fit] pooling``, ``compare_pooling``, ``parametrisation``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path

from ..survey import BANDS
from .config_field import FieldSection
from .config_sections import (
    CampaignSection,
    CatalogueSection,
    CorrectSection,
    FitSection,
    LibrarySection,
    NetworksSection,
    PopulationSection,
    RunSection,
    ValidationSection,
)
from .config_values import ConfigError, _coerce, _parse_size, _plain, _toml_value

__all__ = [
    "ConfigError",
    "RunConfig",
    "RunSection",
    "FieldSection",
    "LibrarySection",
    "CampaignSection",
    "NetworksSection",
    "ValidationSection",
    "PopulationSection",
    "CatalogueSection",
    "CorrectSection",
    "FitSection",
    "check_inputs",
    "load_config",
    "parse_config",
]


_SECTIONS: dict[str, type] = {
    "run": RunSection,
    "field": FieldSection,
    "library": LibrarySection,
    "campaign": CampaignSection,
    "networks": NetworksSection,
    "validation": ValidationSection,
    "population": PopulationSection,
    "catalogue": CatalogueSection,
    "correct": CorrectSection,
    "fit": FitSection,
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole run (see the module docstring); build it with :func:`load_config` or
    :func:`parse_config`."""

    run: RunSection = RunSection()
    field: FieldSection = FieldSection()
    library: LibrarySection = LibrarySection()
    campaign: CampaignSection = CampaignSection()
    networks: NetworksSection = NetworksSection()
    validation: ValidationSection = ValidationSection()
    population: PopulationSection = PopulationSection()
    catalogue: CatalogueSection = CatalogueSection()
    correct: CorrectSection = CorrectSection()
    fit: FitSection = FitSection()
    #: ``[[fields]]`` (:class:`jaxcomp.workflow.fields.FieldEntry`): fitted jointly by ``fit``.
    fields: tuple = ()

    def to_dict(self) -> dict:
        """The resolved configuration (defaults filled in) as plain JSON-able values.

        ``fields`` (a list of tables) and the ``[fit]`` keys only fields read are present
        only with ``[[fields]]``, so that a configuration without them keeps its hashes.
        """
        values = {
            name: (
                getattr(self, name).plain()
                if hasattr(getattr(self, name), "plain")
                else _plain(dataclasses.asdict(getattr(self, name)))
            )
            for name in _SECTIONS
        }
        if self.fields:
            values["fields"] = [_plain(dataclasses.asdict(entry)) for entry in self.fields]
        else:
            values["fit"] = {
                k: v for k, v in values["fit"].items() if k not in FitSection.FIELDS_KEYS
            }
        return values

    def section_hash(self, *names: str) -> str:
        """SHA-256 of the named sections' resolved values."""
        payload = json.dumps({n: self.to_dict()[n] for n in names}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def hash(self) -> str:
        """SHA-256 of the whole resolved configuration."""
        return self.section_hash(*self.to_dict())

    def to_toml(self) -> str:
        """The resolved configuration as TOML (round-trips through :func:`parse_config`)."""
        lines = []
        for name, values in self.to_dict().items():
            for table in values if isinstance(values, list) else [values]:
                lines.append(f"[[{name}]]" if isinstance(values, list) else f"[{name}]")
                lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
                lines.append("")
        return "\n".join(lines)


# ------------------------------------------------------------------ parsing
def load_config(path: str | os.PathLike) -> RunConfig:
    """Read and check a TOML run configuration."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    config = parse_config(data, base=path.parent)
    check_inputs(config)
    return config


def check_inputs(config: RunConfig) -> None:
    """Check the files a configuration reads (before any stage runs or any directory is made).

    ``[catalogue] source``, when a table path and read by an enabled ``[correct]`` or ``[fit]``,
    must exist and pass :func:`jaxcomp.demographics.validate_catalogue` (the checks of
    ``jaxcomp correct`` and ``jaxcomp fit``); a FITS ``[field] directory`` must exist and hold
    FITS files; ``[[fields]]`` catalogues and artefacts
    (:func:`jaxcomp.workflow.fields.check_field_inputs`).  Raises :class:`ConfigError` naming
    the key or the field.
    """
    from .fields import check_field_inputs

    check_field_inputs(config)
    source = config.catalogue.source
    reads_catalogue = config.correct.enabled or (config.fit.enabled and not config.fields)
    if source not in ("population", "legus:ngc628c") and reads_catalogue:
        from ..demographics.catalogue import load_catalogue

        try:
            load_catalogue(source, say=lambda *a: None)
        except (OSError, ValueError) as error:
            raise ConfigError(f"[catalogue] source = {source!r}: {error}") from None
    if config.field.kind == "fits":
        directory = Path(config.field.directory)
        if not directory.is_dir():
            raise ConfigError(f"[field] directory = {config.field.directory!r} is not a directory")
        if not fits_files(directory):
            raise ConfigError(
                f"[field] directory = {config.field.directory!r} holds no FITS files (*.fits, "
                "*.fits.gz)"
            )


def fits_files(directory: Path) -> list[Path]:
    """The FITS files of a field directory, sorted by name."""
    return sorted(
        p for p in directory.iterdir() if p.is_file() and ".fit" in "".join(p.suffixes).lower()
    )


def parse_config(data: Mapping, *, base: Path | None = None) -> RunConfig:
    """Check a configuration mapping (as read from TOML) and build the :class:`RunConfig`."""
    from .fields import check_fields, parse_fields

    if not isinstance(data, Mapping):
        raise ConfigError("the configuration must be a table of sections")
    unknown = sorted(set(data) - set(_SECTIONS) - {"fields"})
    if unknown:
        raise ConfigError(
            f"unknown section(s) {', '.join(f'[{u}]' for u in unknown)}; "
            f"known: {', '.join(f'[{s}]' for s in _SECTIONS)}, [[fields]]"
        )
    sections = {}
    for name, cls in _SECTIONS.items():
        values = data.get(name, {})
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{name}] must be a table of keys, got {type(values).__name__}")
        sections[name] = _build_section(name, cls, values)
    if sections["field"].kind == "fits":
        given = sections["field"].directory
        directory = Path(given)
        if base is not None and not directory.is_absolute():
            directory = (base / directory).resolve()
            sections["field"] = dataclasses.replace(sections["field"], directory=str(directory))
        if not directory.is_dir():
            raise ConfigError(
                f"[field] directory {given!r} does not exist or is not a directory"
                + (f" (looked for {str(directory)!r})" if str(directory) != given else "")
            )
    fit_values = data.get("fit", {})
    fields = parse_fields(
        data.get("fields"),
        fit_values if isinstance(fit_values, Mapping) else {},
        default_selection=sections["fit"].selection,
        base=base,
    )
    config = RunConfig(**sections, fields=fields)
    _check_consistency(config)
    check_fields(config)
    return config


def _build_section(name: str, cls: type, values: Mapping):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"[{name}] unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {key: _coerce(name, key, value, hints[key]) for key, value in values.items()}
    section = cls(**kwargs)
    section.check()
    return section


def _check_consistency(config: RunConfig) -> None:
    """Cross-section checks: every stage must be able to run with what the others produce."""
    networks, library = config.networks, config.library
    if any(k.startswith("photometric") for k in networks.inputs) and set(library.bands) != set(
        BANDS
    ):
        raise ConfigError(
            f"[networks] inputs: a photometric network needs all five bands {list(BANDS)}, but "
            f"[library] bands = {list(library.bands)}"
        )
    needs_physical = config.correct.enabled or (config.fit.enabled and not config.fields)
    for name, section in (("correct", config.correct), ("fit", config.fit)):
        if name == "fit" and config.fields:
            continue  # each field names its selection (jaxcomp.workflow.fields.check_fields)
        if section.enabled and section.selection not in networks.inputs:
            raise ConfigError(
                f"[networks] inputs: [{name}] selection = {section.selection!r} needs that "
                "network; "
                f"add {section.selection!r} to inputs or set enabled = false in [{name}]"
            )
    if config.catalogue.source == "population" and not config.population.enabled and needs_physical:
        raise ConfigError("[catalogue] source = 'population' but [population] enabled = false")
    campaign = config.campaign
    if any(abs(r - round(r)) > 1e-9 for r in campaign.r_eff_pc):
        raise ConfigError(
            "[campaign] r_eff_pc: the library stores integer radii [pc]; use whole numbers"
        )
    if library.radius_model == "flat":
        need = (
            campaign.train_frames_per_reff * campaign.clusters_per_frame
            + campaign.test_clusters_per_reff
        )
        expected = library.n_clusters / len(campaign.r_eff_pc)
        if expected - 4.0 * expected**0.5 < need:
            minimum = int(len(campaign.r_eff_pc) * (need + 4.0 * need**0.5 + 8.0)) + 1
            raise ConfigError(
                f"[library] n_clusters = {library.n_clusters} is too small for the campaigns: each "
                "of "
                f"the {len(campaign.r_eff_pc)} radii needs {need} distinct clusters (training "
                "frames "
                f"x clusters per frame + test clusters); use n_clusters >= {minimum}"
            )
    population = config.population
    if population.enabled:
        for key, lib_key in (
            ("log_mass_range", "log_mass_range"),
            ("log_age_range", "log_age_range"),
            ("av_range", "av_range"),
        ):
            low, high = getattr(population, key)
            lib_low, lib_high = getattr(library, lib_key)
            if low < lib_low or high > lib_high:
                raise ConfigError(
                    f"[population] {key} = [{low}, {high}] reaches outside [library] {lib_key} = "
                    f"[{lib_low}, {lib_high}], where the selection function was never trained"
                )
    if config.field.kind == "mock":
        size = _parse_size(config.field.size)
        if size is not None and min(size) < 200:
            raise ConfigError("[field] size: a mock field needs at least 200 x 200 px")
