"""Cluster libraries made elsewhere: SLUG outputs and any table with the library columns.

The artificial-cluster stage only needs a table with the library columns
(``docs/architecture.md``):
``cluster_id, log_mass [log10 Msun], log_age [log10 yr], av [mag], r_eff_pc [pc]`` and
apparent Vega magnitudes ``mag_<band>``.  This module reads such tables from other
sources and checks them before they are used.

- :func:`validate_library_table` - check any table (pandas or astropy) for the library
  columns, their types and ranges, with errors that name what is missing or wrong.
- :func:`read_slug_library` - a SLUG (Krumholz et al.) cluster simulation written with
  ``output_mode fits``: the ``<model>_cluster_prop.fits`` (HDU 1 columns ``UniqueID,
  Trial, Time, FormTime, Lifetime, TargetMass, BirthMass, LiveMass, [StellarMass],
  NumStar, MaxStarMass, [A_V, A_Vneb]``) and ``<model>_cluster_phot.fits`` files
  (HDU 1 ``UniqueID, Trial, Time`` then one column per filter, named like
  ``WFC3_UVIS_F275W`` with the unit in ``TUNITn``; the suffixes ``_neb``, ``_ex`` and
  ``_neb_ex`` mark photometry with nebular emission, extinction, or both; in the
  "fits2" layout each filter sits in its own HDU from HDU 2 on - both layouts are read).
  SLUG magnitudes are absolute; the distance modulus is added here.  SLUG has no
  cluster radii, so ``r_eff_pc`` is drawn with jaxcomp's radius models from a seed.
- :func:`read_library_table` - read a library from a file: a jaxcomp Parquet library, a
  SLUG FITS output (recognised by its file name or columns), or any Parquet / FITS /
  ECSV / CSV table with the library columns.
- :func:`write_library_fits` - write a library as a FITS binary table (metadata JSON in
  the header keyword ``JAXCOMP``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .bands import DEFAULT_BANDS, sedpy_filter_name
from .synthesis import NGC628_DISTANCE_MODULUS

__all__ = [
    "REQUIRED_COLUMNS",
    "SLUG_FILTER_NAMES",
    "SLUG_PHOTOMETRY_VARIANTS",
    "validate_library_table",
    "read_slug_library",
    "read_library_table",
    "write_library_fits",
]

#: Physical columns every library table must have (``docs/architecture.md``), besides ``mag_<band>``.
REQUIRED_COLUMNS: tuple[str, ...] = ("cluster_id", "log_mass", "log_age", "av", "r_eff_pc")
#: jaxcomp band -> SLUG filter name (``lib/filters/FILTER_LIST`` of SLUG) for NGC 628C.
SLUG_FILTER_NAMES: dict[str, str] = {
    "F275W": "WFC3_UVIS_F275W",
    "F336W": "WFC3_UVIS_F336W",
    "F435W": "ACS_F435W",
    "F555W": "ACS_F555W",
    "F814W": "ACS_F814W",
}
#: SLUG photometry variants (column suffixes); "auto" picks the first one present.
SLUG_PHOTOMETRY_VARIANTS: dict[str, str] = {"neb_ex": "_neb_ex", "ex": "_ex", "neb": "_neb", "intrinsic": ""}

_METADATA_KEY = "jaxcomp_library"
_ALIASES = {
    "log_mass": ("mass", "mass_msun", "logm", "log_m", "logmass", "m"),
    "log_age": ("age", "age_yr", "logt", "log_t", "logage", "t"),
    "av": ("a_v", "av_mag", "extinction", "ebv", "e_bv"),
    "r_eff_pc": ("r_eff", "reff", "reff_pc", "radius", "r_pc"),
    "cluster_id": ("id", "uniqueid", "unique_id"),
}


def _to_pandas(table):
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table.copy()
    if hasattr(table, "to_pandas"):  # astropy Table
        frame = table.to_pandas()
        frame.attrs.update({k: v for k, v in getattr(table, "meta", {}).items() if k == _METADATA_KEY})
        return frame
    if isinstance(table, Mapping):
        return pd.DataFrame(dict(table))
    raise TypeError(f"expected a pandas DataFrame, an astropy Table or a mapping of columns, got {type(table).__name__}")


def _hint(missing: str, present: Sequence[str]) -> str:
    lower = {c.lower(): c for c in present}
    for alias in _ALIASES.get(missing, ()):
        if alias in lower:
            found = lower[alias]
            advice = {
                "log_mass": f"if {found!r} is a mass in Msun, add log_mass = log10({found})",
                "log_age": f"if {found!r} is an age in yr, add log_age = log10({found})",
                "av": f"if {found!r} is A_V in mag rename it to av (from E(B-V): av = R_V * E(B-V))",
                "r_eff_pc": f"if {found!r} is an effective radius in pc, rename it to r_eff_pc",
                "cluster_id": f"rename {found!r} to cluster_id",
            }[missing]
            return f" ({advice})"
    return ""


def validate_library_table(table, *, bands: Sequence[str] | None = None, source: str = "library table"):
    """Check that a table is a usable cluster library and return it as a DataFrame.

    Parameters
    ----------
    table : pandas.DataFrame, astropy.table.Table or mapping
        The library.
    bands : sequence of str, optional
        Bands that must be present as ``mag_<band>`` (default: at least one band).
    source : str
        Name used in error messages (e.g. the file name).

    Returns
    -------
    pandas.DataFrame
        A copy with ``cluster_id`` as int64 and the physical columns as float64, the
        required columns first, then the ``mag_<band>`` columns, then any others.

    Raises
    ------
    ValueError
        Naming the missing columns (with a hint when a likely alias is present), missing
        bands, non-numeric or non-finite values, repeated ``cluster_id``, or values that
        look like linear masses / ages, negative extinctions or non-positive radii.
    """
    frame = _to_pandas(table)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    mag_columns = [c for c in columns if c.startswith("mag_")]
    if missing:
        details = "; ".join(f"{m}{_hint(m, columns)}" for m in missing)
        raise ValueError(
            f"{source} lacks required column(s) {missing}: {details}. A cluster library needs "
            f"{list(REQUIRED_COLUMNS)} (log_mass in log10 Msun, log_age in log10 yr, av in mag, r_eff_pc in pc) "
            f"and apparent Vega magnitudes mag_<band>; found columns {columns}"
        )
    if not mag_columns:
        raise ValueError(f"{source} has no magnitude columns: add apparent Vega magnitudes as mag_<band> "
                         f"(e.g. mag_F555W); found columns {columns}")
    if bands is not None:
        absent = [b for b in bands if f"mag_{b}" not in columns]
        if absent:
            raise ValueError(f"{source} lacks magnitude column(s) {[f'mag_{b}' for b in absent]}; it has {mag_columns}")
    if len(frame) == 0:
        raise ValueError(f"{source} has no rows")

    for name in REQUIRED_COLUMNS[1:] + tuple(mag_columns):
        try:
            frame[name] = np.asarray(frame[name], dtype=float)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: column {name!r} is not numeric ({error})") from error
    ids = np.asarray(frame["cluster_id"])
    if ids.dtype.kind not in "iu" and not (ids.dtype.kind == "f" and np.all(np.isfinite(ids)) and np.all(ids == np.rint(ids))):
        raise ValueError(f"{source}: cluster_id must hold integers, got dtype {ids.dtype}")
    frame["cluster_id"] = ids.astype(np.int64)
    if frame["cluster_id"].duplicated().any():
        repeated = frame["cluster_id"][frame["cluster_id"].duplicated()].unique()[:5].tolist()
        raise ValueError(f"{source}: cluster_id values repeat (e.g. {repeated}); each cluster needs a unique id")
    for name in REQUIRED_COLUMNS[1:]:
        bad = ~np.isfinite(frame[name].to_numpy())
        if bad.any():
            raise ValueError(f"{source}: column {name!r} has {int(bad.sum())} non-finite value(s) (first at row {int(np.argmax(bad))})")
    for name in mag_columns:
        values = frame[name].to_numpy()
        if np.isnan(values).any() or np.isneginf(values).any():
            raise ValueError(f"{source}: column {name!r} has NaN or -inf magnitudes (+inf, for no light, is allowed)")
    log_mass, log_age = frame["log_mass"].to_numpy(), frame["log_age"].to_numpy()
    if log_mass.max() > 12.0 or log_mass.min() < -2.0:
        raise ValueError(f"{source}: log_mass spans {log_mass.min():.4g}..{log_mass.max():.4g}; it must be log10(M / Msun) "
                         "(a linear mass in Msun? take log10)")
    if log_age.max() > 11.0 or log_age.min() < 3.0:
        raise ValueError(f"{source}: log_age spans {log_age.min():.4g}..{log_age.max():.4g}; it must be log10(age / yr) "
                         "(an age in yr or Myr? convert to log10 yr)")
    if (frame["av"] < 0).any():
        raise ValueError(f"{source}: av must be >= 0 mag (V-band extinction), min is {frame['av'].min():.4g}")
    if (frame["r_eff_pc"] <= 0).any():
        raise ValueError(f"{source}: r_eff_pc must be > 0 pc, min is {frame['r_eff_pc'].min():.4g}")
    ordered = list(REQUIRED_COLUMNS) + mag_columns + [c for c in columns if c not in REQUIRED_COLUMNS and c not in mag_columns]
    out = frame[ordered]
    out.attrs = dict(frame.attrs)
    return out


# ----------------------------------------------------------------------------- SLUG
def _slug_paths(path, phot_path):
    path = Path(path)
    name = path.name
    if name.endswith("_cluster_prop.fits"):
        prop = path
        phot = Path(phot_path) if phot_path else path.with_name(name.replace("_cluster_prop.fits", "_cluster_phot.fits"))
    elif name.endswith("_cluster_phot.fits"):
        phot = path
        prop = Path(phot_path) if phot_path else path.with_name(name.replace("_cluster_phot.fits", "_cluster_prop.fits"))
    else:  # a model base name
        prop = path.with_name(name + "_cluster_prop.fits")
        phot = Path(phot_path) if phot_path else path.with_name(name + "_cluster_phot.fits")
    for kind, p in (("cluster properties", prop), ("cluster photometry", phot)):
        if not p.is_file():
            raise FileNotFoundError(
                f"SLUG {kind} file {p} not found; pass the <model>_cluster_prop.fits or <model>_cluster_phot.fits "
                "path of a SLUG run written with output_mode fits (both files are needed)"
            )
    return prop, phot


def _fits_columns(path: Path):
    """All columns of all binary-table HDUs with the row count of HDU 1: {name: (array, unit)}."""
    from astropy.io import fits

    columns = {}
    try:
        with fits.open(path, memmap=False) as hdul:
            tables = [h for h in hdul[1:] if isinstance(h, fits.BinTableHDU)]
            if not tables:
                raise ValueError(f"{path} has no FITS binary table")
            n_rows = tables[0].header["NAXIS2"]
            for hdu in tables:
                if hdu.header["NAXIS2"] != n_rows:
                    continue
                for i, col in enumerate(hdu.columns, start=1):
                    values = np.array(hdu.data[col.name])
                    values = values.astype(values.dtype.newbyteorder("="))  # FITS is big-endian
                    columns[col.name] = (values, hdu.header.get(f"TUNIT{i}", col.unit) or "")
    except OSError as error:
        raise ValueError(f"could not read {path} as FITS: {error}") from error
    return columns


def _slug_magnitudes(values, unit: str, band: str, column: str, source: Path):
    unit_l = unit.strip().lower()
    if "vega" in unit_l:
        return values
    if unit_l.startswith("ab"):
        from sedpy import observate

        return values + observate.Filter(sedpy_filter_name(band)).ab_to_vega
    raise ValueError(
        f"{source}: column {column!r} is in {unit!r}; jaxcomp reads SLUG photometry in Vega or AB magnitudes "
        "(SLUG parameter phot_mode VEGA or AB)"
    )


def read_slug_library(
    path: str | os.PathLike,
    *,
    phot_path: str | os.PathLike | None = None,
    bands: Sequence[str] = DEFAULT_BANDS,
    slug_filters: Mapping[str, str] | None = None,
    photometry: str = "auto",
    mass: str = "birth",
    distance_modulus: float = NGC628_DISTANCE_MODULUS,
    radius_model: str = "flat",
    seed: int = 0,
):
    """Read a SLUG cluster simulation (FITS output) as a jaxcomp library table.

    Parameters
    ----------
    path : str or PathLike
        ``<model>_cluster_prop.fits``, ``<model>_cluster_phot.fits`` or the model base
        name ``<dir>/<model>``; the other file is found beside it.
    phot_path : str or PathLike, optional
        The other file, if it is not beside the first.
    bands : sequence of str
        jaxcomp bands to read (default the five LEGUS bands).
    slug_filters : mapping, optional
        jaxcomp band -> SLUG filter name (default :data:`SLUG_FILTER_NAMES`).
    photometry : {"auto", "neb_ex", "ex", "neb", "intrinsic"}
        Which SLUG photometry: with nebular emission and extinction (``_neb_ex``),
        extinction only (``_ex``), nebular only (``_neb``) or neither.  ``"auto"`` takes
        ``neb_ex`` if present, else ``ex``, else (only for runs without extinction)
        ``neb`` or the intrinsic one.
    mass : {"birth", "target"}
        ``log_mass`` from ``BirthMass`` (the stellar mass actually drawn, default) or
        ``TargetMass`` (the mass the cluster was meant to have).
    distance_modulus : float
        Added to SLUG's absolute magnitudes (default 29.98, NGC 628).
    radius_model : {"flat", "K19"}
        How ``r_eff_pc`` is drawn (SLUG has no radii); see :class:`LibraryConfig`.
    seed : int
        Seed of the radii.

    Returns
    -------
    pandas.DataFrame
        Validated library columns plus ``slug_unique_id, slug_trial, slug_time_yr``;
        ``attrs["jaxcomp_library"]`` records the source files and choices.

    Raises
    ------
    FileNotFoundError
        If either file is missing.
    ValueError
        For missing columns or filters (the message lists those present), unsupported
        units, files whose rows do not match, non-positive ages or bad choices.
    """
    import pandas as pd

    from .library import LibraryConfig, _draw_radii

    if photometry not in ("auto", *SLUG_PHOTOMETRY_VARIANTS):
        raise ValueError(f"photometry must be 'auto' or one of {tuple(SLUG_PHOTOMETRY_VARIANTS)}, got {photometry!r}")
    if mass not in ("birth", "target"):
        raise ValueError(f"mass must be 'birth' (BirthMass) or 'target' (TargetMass), got {mass!r}")
    config = LibraryConfig(radius_model=radius_model)  # validates the radius model
    filters = dict(SLUG_FILTER_NAMES if slug_filters is None else slug_filters)
    unmapped = [b for b in bands if b not in filters]
    if unmapped:
        raise ValueError(f"no SLUG filter name for band(s) {unmapped}; pass slug_filters={{band: SLUG name}}")

    prop_path, phot_file = _slug_paths(path, phot_path)
    prop = _fits_columns(prop_path)
    phot = _fits_columns(phot_file)
    mass_column = {"birth": "BirthMass", "target": "TargetMass"}[mass]
    need = ["UniqueID", "Trial", "Time", "FormTime", mass_column]
    absent = [c for c in need if c not in prop]
    if absent:
        raise ValueError(f"{prop_path} is not a SLUG cluster_prop file: it lacks {absent} (has {sorted(prop)})")
    absent = [c for c in ("UniqueID", "Trial", "Time") if c not in phot]
    if absent:
        raise ValueError(f"{phot_file} is not a SLUG cluster_phot file: it lacks {absent} (has {sorted(phot)})")
    has_av = "A_V" in prop

    if photometry == "auto":
        order = ("neb_ex", "ex") if has_av else ("neb", "intrinsic")
        chosen = next((v for v in order if all(filters[b] + SLUG_PHOTOMETRY_VARIANTS[v] in phot for b in bands)), None)
        if chosen is None:
            raise ValueError(
                f"{phot_file} lacks the {'extincted (_neb_ex or _ex)' if has_av else ''} photometry of "
                f"{[filters[b] for b in bands]}; filter columns present: "
                f"{sorted(c for c in phot if c not in ('UniqueID', 'Trial', 'Time'))}"
            )
    else:
        chosen = photometry
        if SLUG_PHOTOMETRY_VARIANTS[chosen].endswith("ex") and not has_av:
            raise ValueError(f"{prop_path} has no A_V column, so the run had no extinction; use photometry='intrinsic' or 'neb'")
    suffix = SLUG_PHOTOMETRY_VARIANTS[chosen]
    if not has_av and chosen in ("intrinsic", "neb"):
        av = np.zeros(len(prop["UniqueID"][0]))
    elif chosen in ("intrinsic", "neb"):
        raise ValueError(
            f"photometry={chosen!r} ignores extinction while the SLUG run drew A_V; the av column would not match "
            "the magnitudes - use 'neb_ex' or 'ex'"
        )
    else:
        av = np.asarray(prop["A_V"][0], float)

    keys_prop = pd.DataFrame({k: np.asarray(prop[k][0]) for k in ("UniqueID", "Trial", "Time")})
    keys_phot = pd.DataFrame({k: np.asarray(phot[k][0]) for k in ("UniqueID", "Trial", "Time")})
    if len(keys_prop) == len(keys_phot) and keys_prop.equals(keys_phot):
        phot_rows = np.arange(len(keys_phot))
    else:
        merged = keys_prop.reset_index().merge(keys_phot.reset_index(), on=["UniqueID", "Trial", "Time"], how="left",
                                               suffixes=("_prop", "_phot"), validate="one_to_one")
        if merged["index_phot"].isna().any():
            n_bad = int(merged["index_phot"].isna().sum())
            raise ValueError(f"{n_bad} cluster(s) of {prop_path} have no photometry row in {phot_file} "
                             "(matched on UniqueID, Trial, Time); are the two files from the same run?")
        phot_rows = merged.sort_values("index_prop")["index_phot"].to_numpy(dtype=np.int64)

    age = np.asarray(prop["Time"][0], float) - np.asarray(prop["FormTime"][0], float)
    if np.any(age <= 0):
        raise ValueError(f"{prop_path}: {int(np.sum(age <= 0))} cluster(s) have Time - FormTime <= 0 (no age)")
    mass_values = np.asarray(prop[mass_column][0], float)
    if np.any(mass_values <= 0):
        raise ValueError(f"{prop_path}: {int(np.sum(mass_values <= 0))} cluster(s) have {mass_column} <= 0")

    n = age.size
    log_mass = np.log10(mass_values)
    gen = np.random.default_rng(np.random.SeedSequence(int(seed)))
    data = {
        "cluster_id": np.arange(n, dtype=np.int64),
        "log_mass": log_mass,
        "log_age": np.log10(age),
        "av": av,
        "r_eff_pc": _draw_radii(log_mass, config, gen).astype(np.int64),
    }
    for band in bands:
        column = filters[band] + suffix
        if column not in phot:
            raise ValueError(f"{phot_file} has no column {column!r} for band {band}; filter columns present: "
                             f"{sorted(c for c in phot if c not in ('UniqueID', 'Trial', 'Time'))}")
        values, unit = phot[column]
        magnitudes = _slug_magnitudes(np.asarray(values, float)[phot_rows], str(unit), band, column, phot_file)
        data[f"mag_{band}"] = magnitudes + distance_modulus
    data["slug_unique_id"] = np.asarray(prop["UniqueID"][0]).astype(np.int64)
    data["slug_trial"] = np.asarray(prop["Trial"][0]).astype(np.int64)
    data["slug_time_yr"] = np.asarray(prop["Time"][0], float)
    frame = pd.DataFrame(data)
    frame.attrs[_METADATA_KEY] = {
        "source": "SLUG",
        "cluster_prop_file": str(prop_path),
        "cluster_phot_file": str(phot_file),
        "slug_filters": {b: filters[b] + suffix for b in bands},
        "photometry_variant": chosen,
        "mass_column": mass_column,
        "distance_modulus": float(distance_modulus),
        "r_eff_pc": {"radius_model": radius_model, "seed": int(seed), "note": "drawn by jaxcomp; SLUG has no radii"},
        "units": {"log_mass": "log10(Msun)", "log_age": "log10(yr)", "av": "mag", "r_eff_pc": "pc",
                  **{f"mag_{b}": "apparent Vega mag" for b in bands}},
    }
    out = validate_library_table(frame, bands=bands, source=str(prop_path))
    out.attrs = frame.attrs
    return out


# --------------------------------------------------------------------------- dispatch
def _looks_like_slug(path: Path) -> bool:
    if re.search(r"_cluster_(prop|phot)\.fits$", path.name):
        return True
    if path.suffix.lower() not in (".fits", ".fit"):
        return False
    try:
        from astropy.io import fits

        with fits.open(path, memmap=False) as hdul:
            names = hdul[1].columns.names if len(hdul) > 1 and hasattr(hdul[1], "columns") else []
    except OSError:
        return False
    return {"UniqueID", "Trial", "Time"} <= set(names)


def read_library_table(path: str | os.PathLike, *, bands: Sequence[str] | None = None, **slug_options):
    """Read a cluster library from a file and validate it.

    Parameters
    ----------
    path : str or PathLike
        A jaxcomp Parquet library (:func:`~jaxcomp.library.write_library`), a SLUG
        FITS output (``*_cluster_prop.fits`` / ``*_cluster_phot.fits``, see
        :func:`read_slug_library`), or a Parquet / FITS / ECSV / CSV table with the
        library columns.
    bands : sequence of str, optional
        Bands that must be present.
    **slug_options
        Passed to :func:`read_slug_library` for SLUG files (an error otherwise).

    Returns
    -------
    pandas.DataFrame
        The validated library (``attrs["jaxcomp_library"]`` holds any stored metadata).
    """
    path = Path(path)
    if not path.exists() and not Path(str(path) + "_cluster_prop.fits").exists():
        raise FileNotFoundError(f"library file {path} not found")
    if not path.exists() or _looks_like_slug(path):
        return read_slug_library(path, bands=DEFAULT_BANDS if bands is None else bands, **slug_options)
    if slug_options:
        raise ValueError(f"options {sorted(slug_options)} apply to SLUG outputs only; {path.name} is not one")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        from .library import read_library

        frame = read_library(path)
    else:
        from .._io import read_table

        table = read_table(path)
        frame = table.to_pandas()
        raw = table.meta.get("JAXCOMP") or table.meta.get("jaxcomp")
        if raw:
            try:
                frame.attrs[_METADATA_KEY] = json.loads(raw) if isinstance(raw, str) else dict(raw)
            except (TypeError, ValueError):
                pass
    out = validate_library_table(frame, bands=bands, source=str(path))
    return out


def write_library_fits(frame, path: str | os.PathLike) -> Path:
    """Write a library table as a FITS binary table, atomically.

    ``av`` and ``mag_<band>`` get the unit ``mag`` and ``r_eff_pc`` ``pc`` (``TUNITn``);
    the log quantities are named for their units.  The metadata of
    ``frame.attrs["jaxcomp_library"]`` goes, as JSON, into the header keyword ``JAXCOMP``.
    """
    from astropy.table import Table

    from .._io import write_table

    path = Path(path)
    if path.suffix.lower() not in (".fits", ".fit"):
        raise ValueError(f"FITS libraries need a .fits path, got {path.name!r}")
    table = Table.from_pandas(frame.reset_index(drop=True))
    for name, unit in (("av", "mag"), ("r_eff_pc", "pc")):
        if name in table.colnames:
            table[name].unit = unit
    for name in table.colnames:
        if name.startswith("mag_"):
            table[name].unit = "mag"
    meta = frame.attrs.get(_METADATA_KEY, {})
    table.meta = {"JAXCOMP": json.dumps(meta, sort_keys=True, default=_json_default)} if meta else {}
    return write_table(table, path)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value) if math.isfinite(value) else str(value)
    return str(value)
