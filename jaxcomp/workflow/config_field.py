"""The ``[field]`` section of a run configuration (:class:`FieldSection`): the images to inject
into, a mock field or five FITS images, and the star selection of the PSFs built from them."""

from __future__ import annotations

import dataclasses
import math
import typing

from ..ast.epsf import EPSFStarSelection
from ..survey import BANDS
from .config_values import _parse_size, _plain, _require

#: The star selection's defaults, the one home of the ``[field] psf_*`` defaults.
_EPSF_DEFAULTS = EPSFStarSelection()

__all__ = ["FieldSection"]


@dataclasses.dataclass(frozen=True)
class FieldSection:
    """``[field]``: the images to inject into.

    ``kind = "mock"``: the embedded mock field of the LEGUS NGC 628 ``pointing`` ("ngc628c",
    default, or "ngc628e"; :mod:`jaxcomp.ast.pointing`), ``size`` "small" (1500 x 1500 px),
    "legus" (the full frame: 7040 x 6400 px in C, 6000 x 6000 px in E) or "NYxNX"; a
    ``pointing`` left at "ngc628c" is not written into the resolved configuration, so the
    fingerprints of runs made before the pointings existed are unchanged.
    ``kind = "fits"``: five FITS images in
    ``directory`` (see :func:`jaxcomp.ast.read_field_fits`), which must exist when the
    configuration is loaded.

    For ``kind = "fits"`` only (a mock ignores them, and they are left out of its
    resolved configuration and fingerprints):

    ``zeropoints``
        Five Vega zeropoints [mag of 1 count/s] in band order (F275W ... F814W); empty
        (default): the files' ``VEGAZPT`` keywords (a file without one is an error).
    ``distance_modulus``
        [mag]; 0 (default): the files' ``DISTMOD`` keyword (required then).
    ``psf``
        ``"auto"`` (default): each band's PSF from its file (``PSF`` extension or
        ``PSFFWHM`` keyword), else built from the frame's own stars; ``"stars"``: always
        built from the stars; ``"gaussian"``: Gaussians of FWHM ``psf_fwhm_px``. The PSFs
        built from stars, their stars and a figure are written by the ``field`` stage.
    ``psf_fwhm_px``
        Five Gaussian FWHMs [px] in band order, for ``psf = "gaussian"``.
    ``psf_mag_range``, ``psf_min_snr``, ``psf_isolation_px``, ``psf_ci_range``, ``psf_ci_clip_mag``,
    ``psf_roundness_range``, ``psf_peak_max``, ``psf_max_stars``, ``psf_min_stars``,
    ``psf_cutout_px``,
    ``psf_oversampling``, ``psf_iterations``, ``psf_neighbour_mask_sigma``,
    ``psf_extended_sigma``
        The star selection of :class:`jaxcomp.ast.epsf.EPSFStarSelection` (``mag_range``
        [Vega mag of the 3 px aperture], ``min_snr``, ``isolation_radius_px`` [px],
        ``ci_range`` [mag], ``ci_clip_mag`` [mag], ``roundness_range``, ``peak_max``
        [counts/s, 0 = no limit], ``max_stars``, ``min_stars``, ``cutout_px`` [px, odd],
        ``oversampling``, ``iterations``, ``neighbour_mask_sigma`` and ``extended_sigma``
        [sigma; ``inf`` switches the neighbour masking / the point-source test off]),
        same defaults.
    """

    kind: str = "mock"
    size: str = "small"
    pointing: typing.Literal["ngc628c", "ngc628e"] = "ngc628c"
    directory: str = ""
    zeropoints: tuple[float, ...] = ()
    distance_modulus: float = 0.0
    psf: typing.Literal["auto", "stars", "gaussian"] = "auto"
    psf_fwhm_px: tuple[float, ...] = ()
    psf_mag_range: tuple[float, float] = _EPSF_DEFAULTS.mag_range
    psf_min_snr: float = _EPSF_DEFAULTS.min_snr
    psf_isolation_px: float = _EPSF_DEFAULTS.isolation_radius_px
    psf_ci_range: tuple[float, float] = _EPSF_DEFAULTS.ci_range
    psf_ci_clip_mag: float = _EPSF_DEFAULTS.ci_clip_mag
    psf_roundness_range: tuple[float, float] = _EPSF_DEFAULTS.roundness_range
    psf_peak_max: float = _EPSF_DEFAULTS.peak_max or 0.0
    psf_max_stars: int = _EPSF_DEFAULTS.max_stars
    psf_min_stars: int = _EPSF_DEFAULTS.min_stars
    psf_cutout_px: int = _EPSF_DEFAULTS.cutout_px
    psf_oversampling: int = _EPSF_DEFAULTS.oversampling
    psf_iterations: int = _EPSF_DEFAULTS.iterations
    psf_neighbour_mask_sigma: float = _EPSF_DEFAULTS.neighbour_mask_sigma
    psf_extended_sigma: float = _EPSF_DEFAULTS.extended_sigma

    #: The keys that only a FITS field reads.
    FITS_KEYS: typing.ClassVar[tuple[str, ...]] = (
        "zeropoints",
        "distance_modulus",
        "psf",
        "psf_fwhm_px",
        "psf_mag_range",
        "psf_min_snr",
        "psf_isolation_px",
        "psf_ci_range",
        "psf_ci_clip_mag",
        "psf_roundness_range",
        "psf_peak_max",
        "psf_max_stars",
        "psf_min_stars",
        "psf_cutout_px",
        "psf_oversampling",
        "psf_iterations",
        "psf_neighbour_mask_sigma",
        "psf_extended_sigma",
    )

    def check(self):
        _require(
            self.kind in ("mock", "fits"),
            "field",
            "kind",
            f"must be 'mock' or 'fits', got {self.kind!r}",
        )
        if self.kind == "mock":
            ok = self.size in ("small", "legus") or _parse_size(self.size) is not None
            _require(
                ok,
                "field",
                "size",
                f"must be 'small', 'legus' or 'NYxNX' (e.g. '2000x2000'), got {self.size!r}",
            )
            return
        _require(bool(self.directory), "field", "directory", "is needed for kind = 'fits'")
        _require(
            self.pointing == "ngc628c",
            "field",
            "pointing",
            "is only read with kind = 'mock' (a FITS field is what its files are)",
        )
        _require(
            len(self.zeropoints) in (0, len(BANDS))
            and all(math.isfinite(z) for z in self.zeropoints),
            "field",
            "zeropoints",
            f"must be empty (from the FITS headers) or five finite Vega zeropoints "
            f"in the order {list(BANDS)}, got {list(self.zeropoints)}",
        )
        _require(
            math.isfinite(self.distance_modulus) and self.distance_modulus >= 0,
            "field",
            "distance_modulus",
            "must be a distance modulus [mag] (0: from the DISTMOD keywords)",
        )
        if self.psf == "gaussian":
            _require(
                len(self.psf_fwhm_px) == len(BANDS)
                and all(math.isfinite(v) and v > 0 for v in self.psf_fwhm_px),
                "field",
                "psf_fwhm_px",
                f"must be five FWHMs > 0 [px] in the order {list(BANDS)} for "
                f"psf = 'gaussian', got {list(self.psf_fwhm_px)}",
            )
        else:
            _require(
                not self.psf_fwhm_px, "field", "psf_fwhm_px", "is only read with psf = 'gaussian'"
            )
        for key in ("psf_mag_range", "psf_ci_range", "psf_roundness_range"):
            low, high = getattr(self, key)
            _require(
                low < high, "field", key, f"must be [low, high] with low < high, got {[low, high]}"
            )
        for key in (
            "psf_min_snr",
            "psf_ci_clip_mag",
            "psf_peak_max",
            "psf_neighbour_mask_sigma",
            "psf_extended_sigma",
        ):
            _require(getattr(self, key) >= 0, "field", key, "must be >= 0")
        _require(self.psf_isolation_px > 0, "field", "psf_isolation_px", "must be > 0 [px]")
        for key in ("psf_max_stars", "psf_min_stars", "psf_oversampling", "psf_iterations"):
            _require(getattr(self, key) >= 1, "field", key, "must be >= 1")
        _require(
            self.psf_min_stars <= self.psf_max_stars,
            "field",
            "psf_min_stars",
            "must be <= psf_max_stars",
        )
        _require(
            self.psf_cutout_px >= 5 and self.psf_cutout_px % 2 == 1,
            "field",
            "psf_cutout_px",
            "must be an odd number of pixels >= 5",
        )

    def plain(self) -> dict:
        """The resolved values; a mock field leaves out the FITS-only keys (so its fingerprints do
        not see them)."""
        values = dataclasses.asdict(self)
        if self.kind == "mock":
            values = {k: v for k, v in values.items() if k not in self.FITS_KEYS}
        if self.kind != "mock" or self.pointing == "ngc628c":
            values.pop("pointing")
        return _plain(values)

    def epsf_selection(self) -> dict:
        """The star selection as :class:`jaxcomp.ast.epsf.EPSFStarSelection` keyword arguments."""
        return {
            "mag_range": tuple(self.psf_mag_range),
            "min_snr": self.psf_min_snr,
            "isolation_radius_px": self.psf_isolation_px,
            "ci_range": tuple(self.psf_ci_range),
            "ci_clip_mag": self.psf_ci_clip_mag,
            "roundness_range": tuple(self.psf_roundness_range),
            "peak_max": self.psf_peak_max or None,
            "max_stars": self.psf_max_stars,
            "min_stars": self.psf_min_stars,
            "cutout_px": self.psf_cutout_px,
            "oversampling": self.psf_oversampling,
            "iterations": self.psf_iterations,
            "neighbour_mask_sigma": self.psf_neighbour_mask_sigma,
            "extended_sigma": self.psf_extended_sigma,
        }
