"""A five-band imaging field: images, WCS, photometric calibration and PSFs.

A :class:`Field` is what the artificial cluster tests inject into and what the
LEGUS catalogue pipeline (:mod:`jaxcomp.ast.pipeline`) runs on. It is validated on
construction and immutable (its arrays are read-only); an injected frame is a new
set of arrays passed alongside the field, never a modified field.

Units and conventions
---------------------
* Images are count rates [counts/s = e-/s, as in drizzled HST products] on a common
  pixel grid. Pixel ``(row j, column i)`` has its centre at ``x = i, y = j``
  (0-based, numpy/photutils); the LEGUS catalogue's x/y are 1-based (subtract 1).
* ``zeropoints`` are Vega magnitudes of 1 count/s; ``exptimes`` in seconds.
* ``footprint`` is True where every band has data. Pixels outside may hold NaN
  (they are treated as missing everywhere); pixels inside must be finite.

The defaults are the LEGUS NGC 628C values (docs/architecture.md): distance modulus 29.98 mag
(9.9 Mpc), 0.0396 arcsec/px (1.902 pc/px), Gaussian PSFs of FWHM 2 px (0.08 arcsec).
"""

from __future__ import annotations

import math
import os
import types
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import survey as _survey
from .._io import atomic_write_bytes
from ..survey import BANDS
from .profiles import PSFModel, as_psf, check_psf_image, pc_per_pixel

__all__ = [
    "BANDS",
    "NGC628C_ZEROPOINTS",
    "NGC628C_EXPTIMES",
    "NGC628C_CENTRE_DEG",
    "DEFAULT_PSF_FWHM_PX",
    "PIXEL_SCALE_ARCSEC",
    "DISTANCE_MODULUS",
    "Field",
    "default_wcs",
    "read_field_fits",
    "write_field_fits",
]

#: Vega zeropoints [mag for 1 count/s] of the LEGUS NGC 628C images.
NGC628C_ZEROPOINTS: dict[str, float] = {
    "F275W": 22.6322,
    "F336W": 23.4836,
    "F435W": 25.784,
    "F555W": 25.731,
    "F814W": 25.53,
}
#: Exposure times [s] of the LEGUS NGC 628C images.
NGC628C_EXPTIMES: dict[str, float] = {
    "F275W": 2481.0,
    "F336W": 2361.0,
    "F435W": 1358.0,
    "F555W": 858.0,
    "F814W": 922.0,
}
#: Approximate centre of the NGC 628C pointing (RA, Dec) [deg], for the default WCS.
NGC628C_CENTRE_DEG: tuple[float, float] = (24.1739, 15.7836)
#: Drizzled pixel scale [arcsec/px] and distance modulus of NGC 628 [mag] (:mod:`jaxcomp.survey`).
PIXEL_SCALE_ARCSEC: float = _survey.PIXEL_SCALE_ARCSEC
DISTANCE_MODULUS: float = _survey.NGC628_DISTANCE_MODULUS
#: Default Gaussian PSF FWHM [px] (HST resolution, ~0.08 arcsec).
DEFAULT_PSF_FWHM_PX: float = 2.0

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


def default_wcs(
    shape: tuple[int, int],
    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC,
    centre_deg: tuple[float, float] = NGC628C_CENTRE_DEG,
):
    """A north-up TAN WCS centred on ``centre_deg`` with the given pixel scale."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(centre_deg)
    w.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    scale = pixel_scale_arcsec / 3600.0
    w.wcs.cdelt = [-scale, scale]
    w.wcs.cunit = ["deg", "deg"]
    return w


def _readonly(mapping: Mapping) -> types.MappingProxyType:
    return types.MappingProxyType(dict(mapping))


def _wcs_equal(w1, w2, shape, tol_px: float = 1e-3) -> bool:
    """Two WCS agree if they map the image corners and centre to the same sky (within tol_px)."""
    ny, nx = shape
    xs = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2])
    ys = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2])
    sky = w1.pixel_to_world_values(xs, ys)
    back = w2.world_to_pixel_values(*sky)
    return bool(np.all(np.hypot(back[0] - xs, back[1] - ys) <= tol_px))


@dataclass(frozen=True, eq=False)
class Field:
    """Five co-registered images (counts/s) with their calibration, PSFs and WCS.

    Parameters
    ----------
    images : mapping band -> 2D array
        One image per LEGUS band (F275W, F336W, F435W, F555W, F814W), all the same
        shape, in counts/s. Stored as read-only float32.
    wcs : astropy.wcs.WCS, mapping band -> WCS, or None
        The celestial WCS. Per-band WCSs must agree (within 1e-3 px at the corners);
        ``None`` gives :func:`default_wcs` (NGC 628C centre, ``pixel_scale_arcsec``).
    zeropoints, exptimes : mapping band -> float
        Vega zeropoints [mag] and exposure times [s] (> 0); default NGC 628C.
    psf : float, 2D array, PSFModel, or a mapping band -> one of those
        Gaussian FWHM in px, an effective-PSF image, or a :class:`PSFModel`; default
        a 2 px FWHM Gaussian in every band.
    pixel_scale_arcsec, distance_modulus : float
        Default 0.0396 arcsec and 29.98 mag.
    footprint : 2D bool array, optional
        Where all bands have data; default: where every band is finite.
    name : str
        A label carried into the output tables.

    Raises
    ------
    ValueError
        On a missing or unknown band, mismatched shapes or WCS, NaN/inf inside the
        footprint, an empty footprint, non-positive exposure times, non-finite
        zeropoints, a PSF as wide as the frame, or a non-positive pixel scale. The
        message names the band and says how to fix it.
    """

    images: Mapping[str, np.ndarray]
    wcs: object = None
    zeropoints: Mapping[str, float] = dc_field(default_factory=lambda: dict(NGC628C_ZEROPOINTS))
    exptimes: Mapping[str, float] = dc_field(default_factory=lambda: dict(NGC628C_EXPTIMES))
    psf: object = DEFAULT_PSF_FWHM_PX
    pixel_scale_arcsec: float = PIXEL_SCALE_ARCSEC
    distance_modulus: float = DISTANCE_MODULUS
    footprint: np.ndarray | None = None
    name: str = "field"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        images = self.images
        if not isinstance(images, Mapping):
            raise ValueError(
                f"images must be a mapping band -> 2D array, got {type(images).__name__}"
            )
        missing = [b for b in BANDS if b not in images]
        if missing:
            raise ValueError(
                f"images: missing band(s) {missing}; a Field needs all of {list(BANDS)}"
            )
        extra = sorted(set(images) - set(BANDS))
        if extra:
            raise ValueError(f"images: unknown band(s) {extra}; the bands are {list(BANDS)}")
        arrays = {}
        shape = None
        for b in BANDS:
            arr = np.asarray(images[b])
            if arr.ndim != 2:
                raise ValueError(f"images[{b!r}] must be a 2D array, got shape {arr.shape}")
            if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
                raise ValueError(f"images[{b!r}] must be real numbers, got dtype {arr.dtype}")
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise ValueError(
                    f"images[{b!r}] has shape {arr.shape} but {BANDS[0]} has {shape}; "
                    "resample all bands onto one pixel grid first"
                )
            if arr.dtype != np.float32 or arr.flags.writeable:
                arr = np.array(arr, dtype=np.float32)
            arr.setflags(write=False)
            arrays[b] = arr
        if min(shape) < 16:
            raise ValueError(f"images of shape {shape} are too small (need at least 16 x 16 px)")

        if self.footprint is None:
            fp = np.ones(shape, bool)
            for b in BANDS:
                fp &= np.isfinite(arrays[b])
        else:
            fp = np.asarray(self.footprint)
            if fp.shape != shape:
                raise ValueError(f"footprint has shape {fp.shape}, images have {shape}")
            if fp.dtype != bool:
                if not np.all(np.isin(fp, (0, 1))):
                    raise ValueError("footprint must be boolean (or 0/1)")
                fp = fp.astype(bool)
            else:
                fp = fp.copy()
            for b in BANDS:
                bad = fp & ~np.isfinite(arrays[b])
                if bad.any():
                    j, i = np.argwhere(bad)[0]
                    raise ValueError(
                        f"images[{b!r}] has {int(bad.sum())} NaN/inf pixel(s) inside the footprint "
                        f"(first at x={i}, y={j}); fill them or exclude them from the footprint"
                    )
        if not fp.any():
            raise ValueError("the footprint is empty: no pixel has finite data in all five bands")
        fp.setflags(write=False)
        set_("footprint", fp)
        set_("images", _readonly(arrays))

        set_("zeropoints", _readonly(self._per_band(self.zeropoints, "zeropoints", positive=False)))
        set_("exptimes", _readonly(self._per_band(self.exptimes, "exptimes", positive=True)))

        psf = self.psf
        if isinstance(psf, Mapping):
            missing = [b for b in BANDS if b not in psf]
            if missing:
                raise ValueError(
                    f"psf: missing band(s) {missing}; give one PSF per band or a single PSF"
                )
            raw = {b: psf[b] for b in BANDS}
        else:
            raw = {b: psf for b in BANDS}
        for b, p in raw.items():
            if (
                not isinstance(p, (PSFModel, int, float, np.integer, np.floating))
                and np.ndim(p) == 2
            ):
                check_psf_image(p, 1, b)  # a bare array is an ePSF at pixel sampling
            elif isinstance(p, PSFModel) and not p.is_gaussian:
                check_psf_image(p.image, p.oversampling, b)
        psfs = {b: as_psf(p) for b, p in raw.items()}
        for b, p in psfs.items():
            if p.extent_px >= min(shape) / 2:
                raise ValueError(
                    f"psf[{b!r}] ({p.describe()}) is not narrower than the frame {shape}: it needs "
                    f"{p.extent_px:.1f} px; use a larger frame or a narrower PSF"
                )
        set_("psf", _readonly(psfs))

        for key in ("pixel_scale_arcsec", "distance_modulus"):
            v = float(getattr(self, key))
            if not math.isfinite(v):
                raise ValueError(f"{key} must be finite, got {getattr(self, key)!r}")
            set_(key, v)
        if self.pixel_scale_arcsec <= 0:
            raise ValueError(f"pixel_scale_arcsec must be > 0, got {self.pixel_scale_arcsec}")

        wcs = self.wcs
        if wcs is None:
            wcs = default_wcs(shape, self.pixel_scale_arcsec)
        elif isinstance(wcs, Mapping):
            ws = [wcs[b] for b in BANDS if b in wcs and wcs[b] is not None]
            if not ws:
                wcs = default_wcs(shape, self.pixel_scale_arcsec)
            else:
                for b in BANDS:
                    if b in wcs and wcs[b] is not None and not _wcs_equal(ws[0], wcs[b], shape):
                        raise ValueError(
                            f"the WCS of {b} differs from the others (corners move by > 1e-3 px); "
                            "register all bands onto one pixel grid first"
                        )
                wcs = ws[0]
        if not getattr(wcs, "has_celestial", False):
            raise ValueError("wcs must be a celestial astropy WCS (or None for the default)")
        set_("wcs", wcs)
        set_("name", str(self.name))

    @staticmethod
    def _per_band(values, what: str, positive: bool) -> dict[str, float]:
        if not isinstance(values, Mapping):
            raise ValueError(f"{what} must be a mapping band -> float")
        missing = [b for b in BANDS if b not in values]
        if missing:
            raise ValueError(f"{what}: missing band(s) {missing}")
        out = {}
        for b in BANDS:
            try:
                v = float(values[b])
            except (TypeError, ValueError):
                raise ValueError(f"{what}[{b!r}] must be a number, got {values[b]!r}") from None
            if not math.isfinite(v) or (positive and v <= 0):
                cond = "> 0" if positive else "finite"
                raise ValueError(f"{what}[{b!r}] must be {cond}, got {v}")
            out[b] = v
        return out

    def __reduce__(self):
        """Pickle support (for process pools and Dask): rebuild, and re-validate, from plain values.

        The read-only mappings a Field holds cannot be pickled themselves.
        """
        state = {
            "images": dict(self.images),
            "wcs": self.wcs,
            "zeropoints": dict(self.zeropoints),
            "exptimes": dict(self.exptimes),
            "psf": dict(self.psf),
            "pixel_scale_arcsec": self.pixel_scale_arcsec,
            "distance_modulus": self.distance_modulus,
            "footprint": np.asarray(self.footprint),
            "name": self.name,
        }
        return (_field_from_state, (state,))

    # ----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.images[BANDS[0]].shape

    @property
    def bands(self) -> tuple[str, ...]:
        return BANDS

    @property
    def pc_per_px(self) -> float:
        """Physical pixel size [pc] from the distance modulus and pixel scale."""
        return pc_per_pixel(self.pixel_scale_arcsec, self.distance_modulus)

    def r_eff_px(self, r_eff_pc):
        """Convert effective radii from pc to pixels."""
        return np.asarray(r_eff_pc, dtype=np.float64) / self.pc_per_px

    def mag_to_rate(self, band: str, mag):
        """Vega magnitude -> count rate [counts/s]: 10^(-0.4 (m - ZP)); NaN mags give 0."""
        m = np.asarray(mag, dtype=np.float64)
        rate = np.power(10.0, -0.4 * (m - self.zeropoints[band]))
        return np.where(np.isfinite(rate), rate, 0.0)

    def rate_to_mag(self, band: str, rate):
        """Count rate -> Vega magnitude (NaN for rates <= 0)."""
        r = np.asarray(rate, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r > 0, -2.5 * np.log10(r) + self.zeropoints[band], np.nan)

    def crop(self, x0: int, x1: int, y0: int, y1: int, name: str | None = None) -> "Field":
        """The sub-field of pixels ``[y0:y1, x0:x1]`` (WCS shifted accordingly)."""
        sl = (slice(y0, y1), slice(x0, x1))
        wcs = self.wcs.slice(sl) if hasattr(self.wcs, "slice") else None
        return Field(
            images={b: self.images[b][sl] for b in BANDS},
            wcs=wcs,
            zeropoints=self.zeropoints,
            exptimes=self.exptimes,
            psf=dict(self.psf),
            pixel_scale_arcsec=self.pixel_scale_arcsec,
            distance_modulus=self.distance_modulus,
            footprint=self.footprint[sl],
            name=name or f"{self.name}[{y0}:{y1},{x0}:{x1}]",
        )

    def __repr__(self) -> str:
        return (
            f"Field(name={self.name!r}, shape={self.shape}, footprint={int(self.footprint.sum())} "
            "px, "
            f"psf={{{', '.join(f'{b}: {p.describe()}' for b, p in self.psf.items())}}})"
        )


def _field_from_state(state: dict) -> "Field":
    return Field(**state)


# ---------------------------------------------------------------------------------------
# FITS I/O


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
