"""FITS I/O of a :class:`~jaxcomp.ast.field.Field`: one FITS file per band, written and read.

:func:`write_field_fits` writes a field as five FITS files (image, WCS, calibration keywords,
PSF); :func:`read_field_fits` reads a field back from them, or from real drizzled HST images
(band from the header or the file name, calibration from the header or the arguments, PSF from
the file, the arguments or the frame's own stars).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .._io import atomic_write_bytes
from ..survey import BANDS
from .field import Field
from .profiles import PSFModel

__all__ = ["read_field_fits", "write_field_fits"]

_FITS_KEYS = {
    "band": "FILTER",
    "zeropoint": "VEGAZPT",
    "exptime": "EXPTIME",
    "psf_fwhm": "PSFFWHM",
    "psf_oversampling": "PSFOVERS",
    "pixel_scale": "PIXSCALE",
    "distance_modulus": "DISTMOD",
    "name": "FIELDNAM",
}


def write_field_fits(
    field: Field,
    directory: str | os.PathLike,
    *,
    prefix: str | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write one FITS file per band, ``<directory>/<prefix>_<band>.fits`` (atomic writes).

    Each primary HDU holds the image (float32, NaN outside the footprint) and a header
    with the WCS, ``FILTER``, ``VEGAZPT`` (Vega zeropoint), ``EXPTIME``, ``PIXSCALE``,
    ``DISTMOD``, ``FIELDNAM``, ``BUNIT = 'counts/s'`` and ``PSFFWHM`` (Gaussian PSF);
    a PSF image is stored in an extension named ``PSF`` (with ``PSFOVERS``).
    Returns ``{band: path}``.
    """
    from astropy.io import fits

    directory = Path(directory)
    prefix = prefix or field.name
    paths = {}
    for b in BANDS:
        path = directory / f"{prefix}_{b}.fits"
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        data = np.where(field.footprint, field.images[b], np.float32(np.nan)).astype(np.float32)
        header = field.wcs.to_header()
        header[_FITS_KEYS["band"]] = (b, "band")
        header[_FITS_KEYS["zeropoint"]] = (field.zeropoints[b], "Vega zeropoint [mag] of 1 count/s")
        header[_FITS_KEYS["exptime"]] = (field.exptimes[b], "exposure time [s]")
        header[_FITS_KEYS["pixel_scale"]] = (field.pixel_scale_arcsec, "pixel scale [arcsec]")
        header[_FITS_KEYS["distance_modulus"]] = (field.distance_modulus, "distance modulus [mag]")
        header[_FITS_KEYS["name"]] = (field.name, "jaxcomp field name")
        header["BUNIT"] = ("counts/s", "count rate (e-/s)")
        psf = field.psf[b]
        if psf.is_gaussian:
            header[_FITS_KEYS["psf_fwhm"]] = (psf.fwhm_px, "Gaussian PSF FWHM [px]")
        hdus = [fits.PrimaryHDU(data=data, header=header)]
        if not psf.is_gaussian:
            ph = fits.Header()
            ph[_FITS_KEYS["psf_oversampling"]] = (psf.oversampling, "PSF samples per image pixel")
            hdus.append(
                fits.ImageHDU(data=np.asarray(psf.image, dtype=np.float64), header=ph, name="PSF")
            )
        import io

        buffer = io.BytesIO()
        fits.HDUList(hdus).writeto(buffer)
        atomic_write_bytes(path, buffer.getvalue())
        paths[b] = path
    return paths


def _band_from_header(header) -> str | None:
    for key in ("FILTER", "FILTER1", "FILTER2"):
        v = str(header.get(key, "")).strip().upper()
        if v in BANDS:
            return v
    return None


def _unreadable(path, error: Exception, caught=()) -> ValueError:
    notes = "".join(f"; astropy: {m}" for m in dict.fromkeys(str(w.message) for w in caught))
    return ValueError(
        f"{path}: cannot read this FITS file ({type(error).__name__}: {error}{notes}); it is "
        "truncated, corrupt or not FITS: copy or download it again"
    )


def _read_one(path: Path) -> dict:
    """Everything read_field_fits needs from one band's file, read fully: a truncated file fails
    here.

    astropy's warnings while reading go into the error message if the file cannot be read
    (and are re-issued if it can).
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = _read_hdus(path)
        except (OSError, TypeError, EOFError) as error:
            raise _unreadable(path, error, caught) from None
        except ValueError as error:
            if str(error).startswith(f"{path}:"):
                raise
            raise _unreadable(path, error, caught) from None
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def _read_hdus(path: Path) -> dict:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        hdu = next(
            (h for h in hdul if getattr(h, "data", None) is not None and h.data.ndim == 2), None
        )
        if hdu is None:
            raise ValueError(f"{path}: no 2D image HDU")
        out = {"header": hdu.header.copy(), "data": np.asarray(hdu.data, dtype=np.float32)}
        if "PSF" in hdul:
            out["psf_image"] = np.asarray(hdul["PSF"].data, dtype=np.float64)
            out["psf_header"] = hdul["PSF"].header.copy()
    return out


def read_field_fits(
    paths,
    *,
    zeropoints: Mapping[str, float] | None = None,
    exptimes: Mapping[str, float] | None = None,
    psf=None,
    wcs=None,
    pixel_scale_arcsec: float | None = None,
    distance_modulus: float | None = None,
    name: str | None = None,
    epsf_selection=None,
    return_epsf: bool = False,
):
    """Read a Field from five FITS images.

    Parameters
    ----------
    paths : directory, mapping band -> path, or sequence of paths
        A directory is searched for ``*<band>*.fits`` (exactly one file per band); a
        sequence is assigned to bands by the header (``FILTER``/``FILTER1``/``FILTER2``)
        or, failing that, by the band name in the file name.
    zeropoints, exptimes : mapping band -> float, optional
        Vega zeropoints [mag of 1 count/s] and exposure times [s]; override the headers'
        ``VEGAZPT`` and ``EXPTIME``. A band whose value neither gives is an error (there
        is no silent NGC 628C default).
    psf : float, 2D array, PSFModel, mapping band -> one of those, or "stars", optional
        The PSF (see :class:`Field`); a mapping may name only some bands. A band without
        one takes its file's ``PSF`` image extension (``PSFOVERS`` oversampling) or
        ``PSFFWHM`` keyword [px]; failing both, its effective PSF is built from the
        frame's own isolated point sources (:func:`jaxcomp.ast.epsf.build_epsf`).
        ``"stars"`` builds every band's PSF from the stars, whatever the files hold.
    wcs : astropy.wcs.WCS, optional
        The celestial WCS of all bands; overrides the headers. Without it every file
        needs a celestial WCS in its header (CTYPE1/CTYPE2 ...).
    pixel_scale_arcsec : float, optional
        Overrides ``PIXSCALE``; default: the header keyword, else the WCS's pixel scale.
    distance_modulus : float, optional
        Overrides ``DISTMOD``; one of them is required.
    name : str, optional
        Overrides ``FIELDNAM`` (default "field").
    epsf_selection : EPSFStarSelection, mapping of its options, or mapping band -> EPSFStarSelection
        The star selection for the bands whose PSF is built from the stars (default
        :class:`~jaxcomp.ast.epsf.EPSFStarSelection()`).
    return_epsf : bool
        Also return ``{band: EPSFResult}`` of the bands whose PSF was built from the stars
        (their PSF image and the table of stars used and rejected).

    Returns
    -------
    Field, or (Field, dict) with ``return_epsf``

    Raises
    ------
    ValueError
        A file that cannot be read (truncated, corrupt: the message names it), an image
        that is not a count rate (``BUNIT``), a band with no positive finite pixel (all
        NaN, zero or negative), a missing ``VEGAZPT``/``EXPTIME``/``DISTMOD`` or WCS not
        given as an argument either (the message names the file and the keyword).
    jaxcomp.ast.epsf.EPSFError
        A band whose PSF must be built from its stars but has too few usable ones (the
        message says how many passed each cut and how to supply the PSF).
    """
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS

    if isinstance(paths, (str, os.PathLike)) and Path(paths).is_dir():
        directory = Path(paths)
        files = sorted(
            p
            for p in directory.iterdir()
            if p.suffix.lower() in (".fits", ".fit") or p.name.lower().endswith(".fits.gz")
        )
        mapping = {}
        for b in BANDS:
            hits = [p for p in files if b.lower() in p.name.lower()]
            if len(hits) != 1:
                raise ValueError(
                    f"{directory}: expected exactly one FITS file naming {b}, found "
                    f"{[p.name for p in hits]}"
                )
            mapping[b] = hits[0]
    elif isinstance(paths, Mapping):
        mapping = {b: Path(p) for b, p in paths.items()}
    elif isinstance(paths, (str, os.PathLike)):
        raise FileNotFoundError(
            f"{paths} is not a directory; give a directory, a mapping band -> path "
            "or a sequence of five paths"
        )
    else:
        mapping = {}
        for p in map(Path, paths):
            if not p.is_file():
                raise FileNotFoundError(f"{p} does not exist")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a damaged file is reported by _read_one below
                    band = _band_from_header(fits.getheader(p))
            except (OSError, TypeError, ValueError, EOFError) as error:
                raise _unreadable(p, error) from None
            if band is None:
                hits = [b for b in BANDS if b.lower() in p.name.lower()]
                band = hits[0] if len(hits) == 1 else None
            if band is None:
                raise ValueError(
                    f"{p}: cannot tell its band (no FILTER keyword or band in the name)"
                )
            if band in mapping:
                raise ValueError(f"two files for {band}: {mapping[band]} and {p}")
            mapping[band] = p
    missing = [b for b in BANDS if b not in mapping]
    if missing:
        raise ValueError(f"no FITS file for band(s) {missing}")

    def given(values, what):
        if values is None:
            return {}
        if not isinstance(values, Mapping):
            raise TypeError(f"{what} must be a mapping band -> value, got {type(values).__name__}")
        return dict(values)

    zp_arg, exp_arg = given(zeropoints, "zeropoints"), given(exptimes, "exptimes")
    from_stars = isinstance(psf, str) and psf == "stars"
    if isinstance(psf, str) and not from_stars:
        raise ValueError(
            f"psf must be a FWHM, an image, a PSFModel, a mapping band -> one of those, None or "
            f"'stars', got {psf!r}"
        )
    if from_stars:
        psf_arg = {}
    elif isinstance(psf, Mapping):
        psf_arg = dict(psf)
    else:
        psf_arg = {b: psf for b in BANDS} if psf is not None else {}
    images, wcss, zps, exps, psfs = {}, {}, {}, {}, {}
    meta = {}
    for b in BANDS:
        path = mapping[b]
        if not path.is_file():
            raise FileNotFoundError(f"{path} (band {b}) does not exist")
        content = _read_one(path)
        header = content["header"]
        bunit = str(header.get("BUNIT", "")).strip().lower().replace(" ", "")
        if bunit and not any(t in bunit for t in ("/s", "s-1", "s**-1", "/sec", "cps")):
            raise ValueError(
                f"{path}: BUNIT = {header['BUNIT']!r} is not a count rate; "
                "divide by the exposure time to get counts/s"
            )
        data = content["data"]
        finite = np.isfinite(data)
        if not finite.any():
            raise ValueError(f"{path} (band {b}): every pixel is NaN/inf; the image holds no data")
        if not (data[finite] > 0).any():
            what = "zero" if not (data[finite] != 0).any() else "zero or negative"
            raise ValueError(
                f"{path} (band {b}): every pixel is {what}; a count-rate image of a field needs "
                "positive sources (wrong sign, an empty exposure or a mask written as the image?)"
            )
        images[b] = data
        if wcs is None:
            w = WCS(header)
            if not w.has_celestial:
                raise ValueError(
                    f"{path} (band {b}): no celestial WCS in the header (CTYPE1/CTYPE2 'RA---TAN'/"
                    "'DEC--TAN', CRVAL, CRPIX, CD or CDELT); add it, or give wcs= explicitly"
                )
            wcss[b] = w.celestial
        for key, store, arg in (("zeropoint", zps, zp_arg), ("exptime", exps, exp_arg)):
            if b in arg:
                store[b] = arg[b]
            elif _FITS_KEYS[key] in header:
                store[b] = float(header[_FITS_KEYS[key]])
            else:
                what = "zeropoints" if key == "zeropoint" else "exptimes"
                meaning = "exposure time [s]"
                if key == "zeropoint":
                    meaning = "Vega zeropoint [mag of 1 count/s]"
                raise ValueError(
                    f"{path} (band {b}): no {_FITS_KEYS[key]} keyword "
                    f"({meaning}); "
                    f"add it to the header or give {what}={{'{b}': ...}} explicitly"
                )
        if from_stars:
            pass
        elif b in psf_arg:
            psfs[b] = psf_arg[b]
        elif "psf_image" in content:
            ov = int(content["psf_header"].get(_FITS_KEYS["psf_oversampling"], 1))
            psfs[b] = PSFModel(image=content["psf_image"], oversampling=ov)
        elif _FITS_KEYS["psf_fwhm"] in header:
            psfs[b] = float(header[_FITS_KEYS["psf_fwhm"]])
        for key in ("pixel_scale", "distance_modulus", "name"):
            if _FITS_KEYS[key] in header:
                meta.setdefault(key, header[_FITS_KEYS[key]])

    if distance_modulus is None:
        if "distance_modulus" not in meta:
            raise ValueError(
                f"no {_FITS_KEYS['distance_modulus']} keyword in "
                f"{[str(mapping[b]) for b in BANDS]}: "
                "give distance_modulus= explicitly (NGC 628: 29.98 mag)"
            )
        distance_modulus = float(meta["distance_modulus"])
    the_wcs = wcs if wcs is not None else wcss
    if pixel_scale_arcsec is None:
        if "pixel_scale" in meta:
            pixel_scale_arcsec = float(meta["pixel_scale"])
        else:
            from astropy.wcs.utils import proj_plane_pixel_scales

            w0 = wcs if wcs is not None else wcss[BANDS[0]]
            pixel_scale_arcsec = (
                float(np.sqrt(np.prod(proj_plane_pixel_scales(w0.celestial)))) * 3600.0
            )

    built = {}
    todo = [b for b in BANDS if b not in psfs]
    if todo:
        from .epsf import EPSFError, EPSFStarSelection, build_epsf

        if epsf_selection is None:
            selections = {b: EPSFStarSelection() for b in BANDS}
        elif isinstance(epsf_selection, EPSFStarSelection):
            selections = {b: epsf_selection for b in BANDS}
        elif (
            isinstance(epsf_selection, Mapping)
            and epsf_selection
            and set(epsf_selection) <= set(BANDS)
        ):
            selections = {b: epsf_selection.get(b, EPSFStarSelection()) for b in BANDS}
            selections = {
                b: v if isinstance(v, EPSFStarSelection) else EPSFStarSelection.from_mapping(v)
                for b, v in selections.items()
            }
        elif isinstance(epsf_selection, Mapping):
            one = EPSFStarSelection.from_mapping(epsf_selection)
            selections = {b: one for b in BANDS}
        else:
            raise ValueError(
                "epsf_selection must be an EPSFStarSelection, a mapping of its options or a "
                "mapping "
                f"band -> EPSFStarSelection, got {type(epsf_selection).__name__}"
            )
        errors = []
        for b in todo:
            try:
                built[b] = build_epsf(
                    images[b],
                    b,
                    zps[b],
                    exptime=exps[b],
                    selection=selections[b],
                    source=str(mapping[b]),
                )
            except EPSFError as error:
                errors.append(str(error))
                continue
            psfs[b] = built[b].psf
        if errors:
            raise EPSFError("\n".join(errors))

    field = Field(
        images=images,
        wcs=the_wcs,
        zeropoints=zps,
        exptimes=exps,
        psf=psfs,
        pixel_scale_arcsec=pixel_scale_arcsec,
        distance_modulus=distance_modulus,
        name=name if name is not None else str(meta.get("name", "field")),
    )
    return (field, built) if return_epsf else field
