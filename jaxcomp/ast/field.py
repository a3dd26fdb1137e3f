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

FITS I/O of a field (:func:`~jaxcomp.ast.field_fits.read_field_fits`,
:func:`~jaxcomp.ast.field_fits.write_field_fits`) is :mod:`jaxcomp.ast.field_fits`.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Mapping

import numpy as np

from .. import survey as _survey
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
