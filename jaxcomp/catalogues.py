"""Readers for the LEGUS NGC 628 star-cluster catalogues shipped with jaxcomp.

The LEGUS (Legacy ExtraGalactic UV Survey; Calzetti et al. 2015, AJ 149, 51)
high-level science products for NGC 628 come as two whitespace-separated tables
without a header, one per HST pointing (central ``ngc628c`` and east
``ngc628e``). Adamo et al. (2017, ApJ 841, 131) analysed the class 1-3 clusters
of both pointings (1262 unique clusters once the 14 sources that appear in both
pointings are counted once). This module turns those files into
:class:`astropy.table.Table` objects with named, unit-carrying columns, masked
sentinel values and the log-space physical quantities used by the rest of
jaxcomp (``log_mass``, ``log_age``, ``av``), and reads the Adamo+2017 per-band
artificial-cluster recovery curves.

Conventions
-----------
* Magnitudes are Vega magnitudes, corrected for foreground Galactic extinction
  (as delivered). The sentinels 66.666 (outside the filter's footprint) and
  99.999 (not detected) are masked; ``in_footprint_<band>`` and
  ``detected_<band>`` keep the information.
* SED-fit quantities (ages, masses, E(B-V), residuals, chi2, Q) of sources
  that were not fitted (``n_filters == 0``: every fit column is 0 in the file)
  are masked.
* Some fitted sources (11 of the class 1-3 clusters: 10 in NGC628C, 1 in
  NGC628E) have a best-fit age, mass and E(B-V) but max/min columns equal to 0,
  i.e. no 68% range was delivered. Their ``*_max``/``*_min`` columns and the
  derived ``*_lo``/``*_hi`` columns are masked rather than turned into
  ``log10(0) = -inf``. Every unmasked row satisfies ``lo <= best <= hi``.
* SED residuals equal to 200 mark a band that was not used in the fit and are
  masked.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Column, MaskedColumn, Table, vstack

from ._data import data_path
from .survey import BANDS, R_V

__all__ = [
    "BANDS",
    "R_V",
    "DEFAULT_DUPLICATE_TOLERANCE_ARCSEC",
    "ADAMO17_PUBLISHED_50PCT_NGC628C",
    "LEGUS_NGC628_FILES",
    "read_legus",
    "read_legus_ngc628",
    "find_duplicates",
    "read_adamo17_completeness",
    "adamo17_50pct_magnitudes",
]


#: Matching radius for sources that appear in both pointings. The catalogue
#: coordinates are rounded to 1e-5 deg (0.036 arcsec in Dec, 0.035 arcsec in RA
#: at Dec 15.8 deg), so true duplicates sit at 0, 0.035, 0.036, 0.050 or 0.072
#: arcsec (one or two rounding steps). Among class 1-3 sources the 14
#: duplicates all lie within 0.072 arcsec and the next nearest pair is 0.331
#: arcsec apart; 0.1 arcsec (2.5 drizzled pixels of 0.0396 arcsec, below the
#: 3 px recovery radius and ~1.2 times the PSF FWHM of ~0.08 arcsec) sits in
#: that gap with room for two rounding steps.
DEFAULT_DUPLICATE_TOLERANCE_ARCSEC: float = 0.1

#: Published 50% recovery magnitudes of the single-band artificial-cluster tests
#: in NGC628C (Adamo et al. 2017), apparent Vega mag.
ADAMO17_PUBLISHED_50PCT_NGC628C: dict[str, float] = {
    "F275W": 23.63,
    "F336W": 24.46,
    "F435W": 25.58,
    "F555W": 25.58,
    "F814W": 24.73,
}

#: File names of the shipped LEGUS catalogues, below ``data/legus``.
LEGUS_NGC628_FILES: dict[str, str] = {
    "ngc628c": "hlsp_legus_hst_acs-wfc3_ngc628-c_multiband_v1_padagb-mwext-avgapcor.tab",
    "ngc628e": "hlsp_legus_hst_acs-wfc3_ngc628-e_multiband_v1_padagb-mwext-avgapcor.tab",
}

_ADAMO17_JSON = "adamo17_ngc628_per_band_ast_completeness.json"

# Instruments of each band per pointing (F555W differs between the two).
_INSTRUMENTS: dict[str, dict[str, str]] = {
    "ngc628c": {
        "F275W": "WFC3/UVIS",
        "F336W": "WFC3/UVIS",
        "F435W": "ACS/WFC",
        "F555W": "ACS/WFC",
        "F814W": "ACS/WFC",
    },
    "ngc628e": {
        "F275W": "WFC3/UVIS",
        "F336W": "WFC3/UVIS",
        "F435W": "ACS/WFC",
        "F555W": "WFC3/UVIS",
        "F814W": "ACS/WFC",
    },
}

_SENTINEL_OUTSIDE = 66.666  # outside the filter's footprint
_SENTINEL_UNDETECTED = 99.999  # inside the footprint but not detected
_SENTINEL_RESID_UNUSED = 200.0  # SED residual of a band not used in the fit
_SENTINEL_ATOL = 5e-4  # the file has 3 decimals


def _column_spec() -> list[tuple[str, u.UnitBase | None, str, str]]:
    """(name, unit, kind, description) of the 35 file columns, in file order.

    kind is "i" for columns that must hold integers, "f" for floats.
    """
    spec: list[tuple[str, u.UnitBase | None, str, str]] = [
        ("id", None, "i", "source id within the pointing's catalogue"),
        ("x_px", u.pix, "f", "x position in the drizzled reference frame (0.0396 arcsec/px)"),
        ("y_px", u.pix, "f", "y position in the drizzled reference frame (0.0396 arcsec/px)"),
        ("ra_deg", u.deg, "f", "right ascension (J2000)"),
        ("dec_deg", u.deg, "f", "declination (J2000)"),
    ]
    for band in BANDS:
        spec.append(
            (
                f"mag_{band}",
                u.mag,
                "f",
                f"total Vega magnitude in {band} (4 px aperture, average aperture "
                "correction, foreground extinction corrected); masked if outside "
                "the footprint or not detected",
            )
        )
        spec.append((f"magerr_{band}", u.mag, "f", f"error of mag_{band}; masked with it"))
    spec.append(("ci_F555W", u.mag, "f", "concentration index mag(1 px) - mag(3 px) in F555W"))
    for q in ("best", "max", "min"):
        spec.append((f"age_{q}_yr", u.yr, "f", f"{q} SED-fit age (max/min: 68% range)"))
    for q in ("best", "max", "min"):
        spec.append((f"mass_{q}_msun", u.solMass, "f", f"{q} SED-fit mass (max/min: 68% range)"))
    for q in ("best", "max", "min"):
        spec.append(
            (f"ebv_{q}", u.mag, "f", f"{q} SED-fit colour excess E(B-V) (max/min: 68% range)")
        )
    for band in BANDS:
        spec.append(
            (
                f"sed_resid_{band}",
                None,
                "f",
                f"SED-fit residual in {band} as delivered (units undocumented, "
                "presumably mag); masked where the band was not used (200)",
            )
        )
    spec.append(("chi2_red", None, "f", "reduced chi2 of the SED fit"))
    spec.append(("q_prob", None, "f", "Q probability of the SED fit"))
    spec.append(("n_filters", None, "i", "number of filters used in the SED fit (0, 4 or 5)"))
    spec.append(
        (
            "class_mode",
            None,
            "i",
            "visual class, mode of the classifiers: 1 compact symmetric, 2 asymmetric, "
            "3 multi-peak/diffuse, 4 spurious, 0 not inspected",
        )
    )
    spec.append(("class_mean", None, "f", "visual class, mean of the classifiers"))
    return spec


_SPEC = _column_spec()
N_COLUMNS: int = len(_SPEC)
assert N_COLUMNS == 35


def _resolve_catalogue(path_or_name: str | Path) -> tuple[Path, str | None]:
    """Map a shipped catalogue name or a path to ``(path, known field or None)``."""
    if isinstance(path_or_name, str):
        key = path_or_name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
        if key in LEGUS_NGC628_FILES:
            return data_path("legus", LEGUS_NGC628_FILES[key]), key
    path = Path(path_or_name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"LEGUS catalogue {str(path)!r} does not exist or is not a file "
            f"(shipped catalogues are selected by name: {sorted(LEGUS_NGC628_FILES)})"
        )
    return path, None


def _infer_field(path: Path) -> str:
    """Field name from a LEGUS file name (``...ngc628-c...`` -> ``ngc628c``), else the stem."""
    m = re.search(r"(ngc\d+)[-_]?([a-z])(?=[_.\-]|$)", path.name.lower())
    if m:
        return m.group(1) + m.group(2)
    return path.stem


def _parse_table(path: Path) -> np.ndarray:
    """Parse the 35-column file into a float array, validating every line.

    Blank lines and lines starting with ``#`` are skipped.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file ({exc})") from exc
    tokens: list[list[str]] = []
    linenos: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        if len(fields) != N_COLUMNS:
            raise ValueError(
                f"{path}: line {lineno}: expected {N_COLUMNS} whitespace-separated "
                f"columns, found {len(fields)}"
            )
        tokens.append(fields)
        linenos.append(lineno)
    if not tokens:
        raise ValueError(f"{path}: contains no data rows")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.all(np.isfinite(values)):
        # Locate the first offending token for a precise message.
        for fields, lineno in zip(tokens, linenos):
            for j, tok in enumerate(fields):
                try:
                    v = float(tok)
                except ValueError:
                    v = None
                if v is None or not math.isfinite(v):
                    raise ValueError(
                        f"{path}: line {lineno}: column {j + 1} ({_SPEC[j][0]}): "
                        f"non-numeric or non-finite value {tok!r}"
                    )
        raise AssertionError("unreachable")  # pragma: no cover
    for j, (name, _unit, kind, _desc) in enumerate(_SPEC):
        if kind == "i":
            bad = np.nonzero(values[:, j] != np.rint(values[:, j]))[0]
            if bad.size:
                k = bad[0]
                raise ValueError(
                    f"{path}: line {linenos[k]}: column {j + 1} ({name}) must be an "
                    f"integer, found {tokens[k][j]!r}"
                )
    return values


def _is(values: np.ndarray, sentinel: float) -> np.ndarray:
    return np.abs(values - sentinel) <= _SENTINEL_ATOL


def _masked(data: np.ndarray, mask: np.ndarray, name: str, unit, description: str) -> MaskedColumn:
    return MaskedColumn(
        np.asarray(data, dtype=np.float64),
        name=name,
        mask=np.asarray(mask, bool),
        unit=unit,
        description=description,
        fill_value=np.nan,
    )


def _log10_masked(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    ok = ~mask & (x > 0)
    out[ok] = np.log10(x[ok])
    return out


def _class_selection(table_values: np.ndarray, classes: Iterable[int] | None) -> np.ndarray:
    if classes is None:
        return np.ones(table_values.shape, bool)
    cls = np.asarray(list(classes))
    if cls.size == 0 or not np.all(cls == np.rint(cls)):
        raise ValueError(
            f"classes must be None or a non-empty sequence of integers, got {classes!r}"
        )
    # Round half up so a class mean of 1.5 counts as 2, 2.5 as 3 (exact for the mode).
    return np.isin(np.floor(table_values + 0.5), cls.astype(int))


def read_legus(
    path_or_name: str | Path = "ngc628c",
    *,
    classes: Sequence[int] | None = (1, 2, 3),
    class_column: str = "mode",
    field: str | None = None,
) -> Table:
    """Read a LEGUS multiband cluster catalogue (HLSP ``.tab`` file).

    Parameters
    ----------
    path_or_name : str or path-like, default "ngc628c"
        ``"ngc628c"`` or ``"ngc628e"`` for the catalogues shipped with jaxcomp,
        or the path of any LEGUS ``*_multiband_*.tab`` file with the same 35
        columns.
    classes : sequence of int or None, default (1, 2, 3)
        Visual classes to keep (1 compact symmetric, 2 asymmetric, 3 multi-peak,
        4 spurious, 0 not inspected). ``None`` keeps every row.
    class_column : {"mode", "mean"}, default "mode"
        Which class column the selection uses. The mode is an integer; the mean
        is rounded half up to the nearest integer (1.5 -> 2) before comparison.
        Adamo et al. (2017) used the mode.
    field : str, optional
        Value of the ``field`` column. Defaults to the shipped name, or is
        inferred from a LEGUS file name (``...ngc628-c...`` -> ``"ngc628c"``),
        else the file stem.

    Returns
    -------
    astropy.table.Table
        One row per selected source, with the 35 file columns (in order: ``id,
        x_px, y_px, ra_deg, dec_deg, mag_<band>, magerr_<band>`` for F275W,
        F336W, F435W, F555W, F814W, ``ci_F555W, age_{best,max,min}_yr,
        mass_{best,max,min}_msun, ebv_{best,max,min}, sed_resid_<band>,
        chi2_red, q_prob, n_filters, class_mode, class_mean``), then boolean
        ``in_footprint_<band>`` and ``detected_<band>``, then derived
        ``log_mass, log_mass_lo, log_mass_hi`` [dex(Msun)], ``log_age,
        log_age_lo, log_age_hi`` [dex(yr)], ``av, av_lo, av_hi`` [mag]
        (A_V = 3.1 E(B-V); lo/hi from the 68% min/max columns) and ``field``.
        Sentinel and missing values are masked (:class:`~astropy.table.MaskedColumn`,
        ``fill_value`` NaN); see the module docstring for the rules.
        ``meta`` records the source file, field, class selection and
        per-band instruments.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a line does not have 35 columns, a value is not a finite number, an
        integer column (id, n_filters, class_mode) holds a non-integer, the file
        has no rows, or ``classes``/``class_column`` are invalid. The message
        names the file, the 1-based line and the column.

    Examples
    --------
    >>> t = read_legus("ngc628c")                      # doctest: +SKIP
    >>> len(t)                                         # doctest: +SKIP
    1017
    """
    col = class_column.lower().removeprefix("class_")
    if col not in ("mode", "mean"):
        raise ValueError(f"class_column must be 'mode' or 'mean', got {class_column!r}")
    path, known_field = _resolve_catalogue(path_or_name)
    values = _parse_table(path)
    if field is None:
        field = known_field if known_field is not None else _infer_field(path)

    idx = {name: j for j, (name, *_rest) in enumerate(_SPEC)}
    keep = _class_selection(values[:, idx[f"class_{col}"]], classes)
    values = values[keep]
    n = values.shape[0]

    def raw(name: str) -> np.ndarray:
        return values[:, idx[name]]

    n_filters = raw("n_filters")
    no_fit = (n_filters == 0) | (raw("age_best_yr") <= 0) | (raw("mass_best_msun") <= 0)
    no_range = no_fit | np.zeros(n, bool)
    for name in ("age_max_yr", "age_min_yr", "mass_max_msun", "mass_min_msun"):
        no_range |= raw(name) <= 0

    masks: dict[str, np.ndarray] = {}
    for band in BANDS:
        m = raw(f"mag_{band}")
        e = raw(f"magerr_{band}")
        masks[f"mag_{band}"] = _is(m, _SENTINEL_OUTSIDE) | _is(m, _SENTINEL_UNDETECTED)
        masks[f"magerr_{band}"] = (
            masks[f"mag_{band}"] | _is(e, _SENTINEL_OUTSIDE) | _is(e, _SENTINEL_UNDETECTED)
        )
        masks[f"sed_resid_{band}"] = no_fit | _is(raw(f"sed_resid_{band}"), _SENTINEL_RESID_UNUSED)
    for qty in ("age", "mass", "ebv"):
        suffix = {"age": "_yr", "mass": "_msun", "ebv": ""}[qty]
        masks[f"{qty}_best{suffix}"] = no_fit
        masks[f"{qty}_max{suffix}"] = no_range
        masks[f"{qty}_min{suffix}"] = no_range
    masks["chi2_red"] = no_fit
    masks["q_prob"] = no_fit

    t = Table()
    for name, unit, kind, desc in _SPEC:
        data = raw(name)
        if kind == "i":
            t[name] = Column(data.astype(np.int64), unit=unit, description=desc)
        elif name in masks:
            t[name] = _masked(data, masks[name], name, unit, desc)
        else:
            t[name] = Column(data, unit=unit, description=desc)

    for band in BANDS:
        m = raw(f"mag_{band}")
        inside = ~_is(m, _SENTINEL_OUTSIDE)
        t[f"in_footprint_{band}"] = Column(
            inside, description=f"source inside the {band} footprint (mag != 66.666)"
        )
        t[f"detected_{band}"] = Column(
            inside & ~_is(m, _SENTINEL_UNDETECTED),
            description=f"inside the {band} footprint and detected (mag not 66.666/99.999)",
        )

    dex_msun = u.dex(u.solMass)
    dex_yr = u.dex(u.yr)
    for out, src, mask, unit, what in (
        ("log_mass", "mass_best_msun", no_fit, dex_msun, "log10 best-fit mass [Msun]"),
        ("log_mass_lo", "mass_min_msun", no_range, dex_msun, "log10 of the 68% lower mass"),
        ("log_mass_hi", "mass_max_msun", no_range, dex_msun, "log10 of the 68% upper mass"),
        ("log_age", "age_best_yr", no_fit, dex_yr, "log10 best-fit age [yr]"),
        ("log_age_lo", "age_min_yr", no_range, dex_yr, "log10 of the 68% lower age"),
        ("log_age_hi", "age_max_yr", no_range, dex_yr, "log10 of the 68% upper age"),
    ):
        t[out] = _masked(_log10_masked(raw(src), mask), mask, out, unit, what)
    for out, src, mask in (
        ("av", "ebv_best", no_fit),
        ("av_lo", "ebv_min", no_range),
        ("av_hi", "ebv_max", no_range),
    ):
        t[out] = _masked(R_V * raw(src), mask, out, u.mag, f"V-band extinction A_V = {R_V} * {src}")
    t["field"] = Column(
        np.full(n, field, dtype=f"U{max(len(field), 1)}"), description="LEGUS pointing"
    )

    t.meta.update(
        {
            "source_file": str(path),
            "field": field,
            "classes": None if classes is None else [int(c) for c in classes],
            "class_column": f"class_{col}",
            "r_v": R_V,
            "instruments": _INSTRUMENTS.get(field, {}),
            "reference": "LEGUS HLSP (MAST); Calzetti+2015 AJ 149 51; Adamo+2017 ApJ 841 131",
        }
    )
    return t


def find_duplicates(
    reference: Table,
    other: Table,
    *,
    tolerance_arcsec: float = DEFAULT_DUPLICATE_TOLERANCE_ARCSEC,
) -> Table:
    """Find rows of ``other`` that repeat a source of ``reference`` on the sky.

    Each row of ``other`` is matched to its nearest neighbour in ``reference``
    (:meth:`astropy.coordinates.SkyCoord.match_to_catalog_sky`) and flagged
    when the separation is at most ``tolerance_arcsec``. Two rows of ``other``
    may match the same reference row.

    Parameters
    ----------
    reference, other : astropy.table.Table
        Tables with ``id``, ``ra_deg`` and ``dec_deg`` columns (as returned by
        :func:`read_legus`).
    tolerance_arcsec : float, default 0.1
        Maximum separation; see :data:`DEFAULT_DUPLICATE_TOLERANCE_ARCSEC` for
        the justification.

    Returns
    -------
    astropy.table.Table
        Columns ``index_other, id_other, index_reference, id_reference,
        sep_arcsec`` (row indices are positions in the input tables), one row
        per duplicate, ordered by ``index_other``.
    """
    if tolerance_arcsec < 0:
        raise ValueError(f"tolerance_arcsec must be >= 0, got {tolerance_arcsec}")
    out = Table(
        names=("index_other", "id_other", "index_reference", "id_reference", "sep_arcsec"),
        dtype=(np.int64, np.int64, np.int64, np.int64, np.float64),
    )
    out["sep_arcsec"].unit = u.arcsec
    if len(reference) == 0 or len(other) == 0:
        return out
    ref = SkyCoord(
        np.asarray(reference["ra_deg"], float) * u.deg,
        np.asarray(reference["dec_deg"], float) * u.deg,
    )
    oth = SkyCoord(
        np.asarray(other["ra_deg"], float) * u.deg, np.asarray(other["dec_deg"], float) * u.deg
    )
    nearest, sep, _ = oth.match_to_catalog_sky(ref)
    sep_arcsec = np.atleast_1d(sep.to_value(u.arcsec))
    hit = np.nonzero(sep_arcsec <= tolerance_arcsec)[0]
    for i in hit:
        j = int(nearest[i])
        out.add_row((int(i), int(other["id"][i]), j, int(reference["id"][j]), float(sep_arcsec[i])))
    return out


def read_legus_ngc628(
    classes: Sequence[int] | None = (1, 2, 3),
    deduplicate: bool = True,
    *,
    tolerance_arcsec: float = DEFAULT_DUPLICATE_TOLERANCE_ARCSEC,
    class_column: str = "mode",
) -> Table:
    """Read both NGC 628 pointings (C then E) into one table.

    Sources of the east pointing (NGC628E) that repeat a source of the central
    pointing (NGC628C) in the overlap are identified by position
    (:func:`find_duplicates`, nearest neighbour within ``tolerance_arcsec``)
    among the *selected* rows of both pointings, and the C entry is kept. For
    classes 1-3 this finds the 14 duplicates of Adamo et al. (2017) and leaves
    1017 + 259 - 14 = 1262 unique clusters. An E cluster whose C counterpart
    has a class outside ``classes`` (e.g. class 0 or 4 in C) is kept, as in
    Adamo+2017: it is not in the selected C sample.

    Parameters
    ----------
    classes : sequence of int or None, default (1, 2, 3)
        Visual classes to keep in both pointings (see :func:`read_legus`).
    deduplicate : bool, default True
        Drop the E rows that duplicate C rows. With ``False`` they are kept and
        flagged by ``duplicate_of``.
    tolerance_arcsec : float, default 0.1
        Matching radius, see :data:`DEFAULT_DUPLICATE_TOLERANCE_ARCSEC`.
    class_column : {"mode", "mean"}, default "mode"
        Class column used for the selection.

    Returns
    -------
    astropy.table.Table
        The :func:`read_legus` columns plus ``duplicate_of`` (int: the ``id`` of
        the NGC628C source an NGC628E row repeats, -1 otherwise) and
        ``duplicate_sep_arcsec`` (masked unless ``duplicate_of >= 0``). Rows
        are identified by ``(field, id)``. With ``deduplicate=True``
        ``duplicate_of`` is -1 everywhere and ``meta["duplicates_removed"]``
        lists ``[id_e, id_c, sep_arcsec]`` of each dropped row;
        ``meta["n_duplicates"]`` is the number found in either mode.
    """
    c = read_legus("ngc628c", classes=classes, class_column=class_column)
    e = read_legus("ngc628e", classes=classes, class_column=class_column)
    dups = find_duplicates(c, e, tolerance_arcsec=tolerance_arcsec)

    c["duplicate_of"] = Column(
        np.full(len(c), -1, np.int64),
        description="id of the NGC628C source this row repeats (-1: none)",
    )
    c["duplicate_sep_arcsec"] = _masked(
        np.full(len(c), np.nan),
        np.ones(len(c), bool),
        "duplicate_sep_arcsec",
        u.arcsec,
        "separation from the NGC628C source this row repeats",
    )
    dup_of = np.full(len(e), -1, np.int64)
    dup_sep = np.full(len(e), np.nan)
    dup_of[dups["index_other"]] = dups["id_reference"]
    dup_sep[dups["index_other"]] = dups["sep_arcsec"]
    e["duplicate_of"] = Column(dup_of, description=c["duplicate_of"].description)
    e["duplicate_sep_arcsec"] = _masked(
        dup_sep, dup_of < 0, "duplicate_sep_arcsec", u.arcsec, c["duplicate_sep_arcsec"].description
    )

    t = vstack([c, e], join_type="exact", metadata_conflicts="silent")
    t.meta.clear()
    t.meta.update(
        {
            "source_file": [c.meta["source_file"], e.meta["source_file"]],
            "field": "ngc628c+ngc628e",
            "classes": None if classes is None else [int(k) for k in classes],
            "class_column": c.meta["class_column"],
            "r_v": R_V,
            "instruments": {"ngc628c": _INSTRUMENTS["ngc628c"], "ngc628e": _INSTRUMENTS["ngc628e"]},
            "duplicate_tolerance_arcsec": float(tolerance_arcsec),
            "n_duplicates": len(dups),
            "deduplicated": bool(deduplicate),
            "reference": "LEGUS HLSP (MAST); Calzetti+2015 AJ 149 51; Adamo+2017 ApJ 841 131",
        }
    )
    if deduplicate:
        t = t[t["duplicate_of"] < 0]
        t.meta["duplicates_removed"] = [
            [int(a), int(b), float(s)]
            for a, b, s in zip(dups["id_other"], dups["id_reference"], dups["sep_arcsec"])
        ]
    return t


def _normalise_field(field: str) -> str:
    key = field.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in LEGUS_NGC628_FILES:
        raise ValueError(f"unknown field {field!r}; expected one of {sorted(LEGUS_NGC628_FILES)}")
    return key


def read_adamo17_completeness(
    field: str = "ngc628c",
    *,
    path: str | Path | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-band recovery fraction of the Adamo+2017 artificial-cluster tests.

    These are the classical single-band tests (one filter at a time, not the
    full catalogue pipeline): 12 magnitude bins from 20.26 to 25.75 mag per
    band, values digitised from Adamo et al. (2017, ApJ 841, 131).

    Parameters
    ----------
    field : {"ngc628c", "ngc628e"}, default "ngc628c"
        Pointing.
    path : path-like, optional
        JSON file to read instead of the shipped
        ``data/legus/adamo17_ngc628_per_band_ast_completeness.json``. Its layout:
        ``{field: {"filters": [...], "mag": [[...], ...],
        "completeness_pct": [[...], ...]}}`` with one list per filter.

    Returns
    -------
    dict[str, tuple[numpy.ndarray, numpy.ndarray]]
        ``{band: (mag_bins, recovery_fraction)}`` in the order of the file
        (F275W, F336W, F435W, F555W, F814W); ``mag_bins`` are apparent Vega
        magnitudes (bin centres, increasing), ``recovery_fraction`` is in
        [0, 1] (the file stores percent).

    Raises
    ------
    FileNotFoundError
        If the JSON file does not exist.
    ValueError
        If the field is unknown or the file is malformed (inconsistent lengths,
        non-increasing magnitudes, percentages outside [0, 100]).
    """
    key = _normalise_field(field)
    src = Path(path) if path is not None else data_path("legus", _ADAMO17_JSON)
    if not src.is_file():
        raise FileNotFoundError(f"Adamo+2017 completeness file {str(src)!r} does not exist")
    try:
        payload = json.loads(src.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{src}: not valid JSON ({exc})") from exc
    try:
        block = payload[key]
        filters = list(block["filters"])
        mags = block["mag"]
        pcts = block["completeness_pct"]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{src}: field {key!r} lacks 'filters', 'mag' or 'completeness_pct'"
        ) from exc
    if not (len(filters) == len(mags) == len(pcts)):
        raise ValueError(
            f"{src}: {key}: {len(filters)} filters but {len(mags)} mag lists and "
            f"{len(pcts)} completeness lists"
        )
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, m, p in zip(filters, mags, pcts):
        band = str(name).rsplit("_", 1)[-1].upper()
        try:
            m = np.asarray(m, dtype=np.float64)
            p = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{src}: {key} {name}: non-numeric values") from exc
        if m.ndim != 1 or m.shape != p.shape or m.size < 2:
            raise ValueError(
                f"{src}: {key} {name}: mag and completeness must be equal-length "
                f"1-d lists (got {m.shape} and {p.shape})"
            )
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(p))):
            raise ValueError(f"{src}: {key} {name}: non-finite values")
        if np.any(np.diff(m) <= 0):
            raise ValueError(f"{src}: {key} {name}: magnitudes are not strictly increasing")
        if np.any(p < 0) or np.any(p > 100):
            raise ValueError(f"{src}: {key} {name}: completeness outside [0, 100] percent")
        out[band] = (m, p / 100.0)
    return out


def adamo17_50pct_magnitudes(
    field: str = "ngc628c",
    *,
    level: float = 0.5,
    path: str | Path | None = None,
) -> dict[str, float]:
    """Magnitude at which the Adamo+2017 per-band recovery drops to ``level``.

    The curve of each band is linearly interpolated between the two bins that
    bracket the first downward crossing of ``level`` (recovery >= level in the
    brighter bin, < level in the fainter one).

    Parameters
    ----------
    field : {"ngc628c", "ngc628e"}, default "ngc628c"
        Pointing.
    level : float, default 0.5
        Recovery fraction in (0, 1).
    path : path-like, optional
        Alternative JSON file, as in :func:`read_adamo17_completeness`.

    Returns
    -------
    dict[str, float]
        ``{band: magnitude}`` (apparent Vega mag); NaN for a band whose curve
        never drops from >= level to < level within the tabulated range.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    out: dict[str, float] = {}
    for band, (m, f) in read_adamo17_completeness(field, path=path).items():
        cross = np.nonzero((f[:-1] >= level) & (f[1:] < level))[0]
        if cross.size == 0:
            out[band] = float("nan")
            continue
        i = int(cross[0])
        w = (f[i] - level) / (f[i] - f[i + 1])
        out[band] = float(m[i] + w * (m[i + 1] - m[i]))
    return out
