"""Photometric band names: the five LEGUS HST bands and any filter that sedpy knows.

The library's magnitude columns are ``mag_<band>``.  The five default bands have
short names; any other sedpy filter is addressed by its sedpy (kcorrect-style) name,
e.g. ``"wfc3_uvis_f555w"``, and must be added to a photometry table by the build
script (``scripts/build_star_photometry.py --extra-band wfc3_uvis_f555w``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["DEFAULT_BANDS", "SEDPY_FILTER_NAMES", "sedpy_filter_name", "normalise_bands"]

from ..survey import BANDS as DEFAULT_BANDS  # noqa: E402

#: Short band name -> sedpy filter name (instrument + filter of the LEGUS NGC 628C data).
SEDPY_FILTER_NAMES: dict[str, str] = {
    "F275W": "wfc3_uvis_f275w",
    "F336W": "wfc3_uvis_f336w",
    "F435W": "acs_wfc_f435w",
    "F555W": "acs_wfc_f555w",
    "F814W": "acs_wfc_f814w",
}


def sedpy_filter_name(band: str) -> str:
    """The sedpy filter name of a band (short names map through :data:`SEDPY_FILTER_NAMES`)."""
    return SEDPY_FILTER_NAMES.get(band, band)


def normalise_bands(bands: str | Iterable[str] | None, available: Sequence[str]) -> tuple[str, ...]:
    """Check requested band names against the bands a table provides.

    Parameters
    ----------
    bands : str or iterable of str or None
        Requested band names; ``None`` means all of ``available``.
    available : sequence of str
        Band names present in the photometry table.

    Returns
    -------
    tuple of str
        The requested bands, in the requested order.

    Raises
    ------
    ValueError
        If a band is unknown or repeated; the message lists the available bands and
        says how to add another sedpy band.
    """
    if bands is None:
        return tuple(available)
    if isinstance(bands, str):
        bands = (bands,)
    out = tuple(str(b) for b in bands)
    if not out:
        raise ValueError(f"no bands requested; choose from {tuple(available)}")
    unknown = [b for b in out if b not in available]
    if unknown:
        raise ValueError(
            f"unknown band name(s) {unknown}; this photometry table provides {tuple(available)}. "
            "To add another sedpy filter, rebuild the table with "
            "`python scripts/build_star_photometry.py --extra-band <sedpy_name>` and load that file"
        )
    if len(set(out)) != len(out):
        raise ValueError(f"band names repeated in {out}; list each band once")
    return out
