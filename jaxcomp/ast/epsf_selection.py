"""Which stars of a frame build its effective PSF.

The selection options (:class:`EPSFStarSelection`), the reasons a candidate is rejected,
and the error raised when too few stars are left (:class:`EPSFError`). The build itself is
:func:`jaxcomp.ast.epsf.build_epsf`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Literal

from ..errors import InputError

__all__ = ["REJECTION_REASONS", "EPSFError", "EPSFStarSelection"]

#: The reasons a candidate star is rejected, in the order the cuts are applied.
REJECTION_REASONS: tuple[str, ...] = (
    "edge",
    "saturated",
    "magnitude",
    "snr",
    "isolation",
    "roundness",
    "ci",
    "max_stars",
    "extended",
    "builder",
)


class EPSFError(InputError):
    """A band whose effective PSF cannot be built from its own stars."""


@dataclass(frozen=True)
class EPSFStarSelection:
    """Which stars of a frame build its effective PSF, and how.

    Parameters
    ----------
    mag_range : (float, float)
        Accepted 3 px aperture magnitudes [Vega mag, band zeropoint, no aperture
        correction]; default (15, 26), i.e. limited by ``min_snr`` and ``peak_max``.
    min_snr : float
        Minimum signal-to-noise ratio of the 3 px aperture flux (background rms and
        the source's Poisson noise with the band's exposure time); default 50.
    isolation_radius_px : float
        No other detection within this radius [px] of the star; default 8 px.
    ci_range : (float, float)
        Accepted concentration index CI = m(1 px) - m(3 px) [mag]: a sanity range, the
        stellar locus (``ci_clip_mag``) does the separation. Point sources are the most
        concentrated real sources of a frame (LEGUS: stars below 1.4 in F555W, redder
        bands' PSFs are broader); the lower bound rejects cosmic rays and hot pixels
        (all the light in one pixel: CI ~ 0; lower it for PSFs narrower than ~1.2 px
        FWHM). Default (0.3, 2.0).
    ci_clip_mag : float
        Keep only stars within this distance [mag] of the stellar locus: the lowest-CI
        peak of the CI distribution of the stars that passed every earlier cut that
        holds ``min_stars`` of them (clusters spread to larger CIs and may outnumber
        the stars); default 0.1 mag.
        ``inf`` switches it off.
    roundness_range : (float, float)
        Accepted DAOStarFinder ``roundness1`` and ``roundness2`` (0 is round);
        default (-0.3, 0.3).
    peak_max : float or None
        Saturation / non-linearity limit: stars whose peak pixel (background
        subtracted) reaches it [counts/s] are rejected; None (default) for no limit.
    max_stars : int
        At most this many stars (the brightest) go into the ePSF; default 200.
    min_stars : int
        Fewer usable stars raise :class:`EPSFError`; default 10.
    cutout_px : int
        Side of the star cutouts [px] (odd); the ePSF covers the same area; default 31
        (+-15 px, 0.6": an HST PSF's halo still holds a few per cent of the light between
        12 and 15 px, and an ePSF normalised inside a smaller box over-states the light in
        the 1-4 px apertures by 4-7%).
    oversampling : int
        ePSF samples per image pixel per axis; default 3 (2 biases the CI of a 2 px FWHM core by up
        to 0.02 mag).
    iterations : int
        Maximum EPSFBuilder iterations; default 10.
    detection_fwhm_px : float
        FWHM [px] of the DAOStarFinder kernel; default 2.0 (HST at 0.04 arcsec/px).
    detection_threshold_sigma : float
        Detection threshold [background rms]; default 5.
    background_box_px : int
        Box size [px] of the Background2D mesh; default 64.
    smoothing_kernel : {"quadratic", "quartic"} or None
        EPSFBuilder smoothing kernel (applied to the oversampled stack at every
        iteration); default ``"quadratic"``. With 20-70 stars and no kernel the core
        samples carry the stack's noise into the next iteration: on the mock (3 seeds x 5
        bands, neighbours masked) the encircled energy at 1-4 px was off by up to 3.1%
        without a kernel and 1.2% with the quadratic one, which broadens the core by
        about 0.4% in EE(1 px) (the mean offset).
    wing_snr : float
        Beyond the radius where the azimuthal mean of the stacked ePSF falls below
        ``wing_snr`` times its per-sample noise, the ePSF is replaced by that mean
        (noise-free, non-negative wings; see :func:`jaxcomp.ast.epsf_wings.clean_wings`);
        default 5.
    wing_weighting : {"inverse_variance", "none"}
        Where the wings come from. ``"inverse_variance"`` (default): the azimuthal mean of
        the stars' own pixels, each star normalised by its ePSF-fitted flux and weighted by
        (flux / local background rms)^2, pixels beyond 3 sigma rejected
        (:func:`jaxcomp.ast.epsf_wings.weighted_wing_profile`). The wings' light is set by
        each star's local background, uncertain by several per cent of a faint star's flux
        over the cutout; the builder's unweighted median lets the faint stars count as much
        as the bright ones (on the mock, 3 seeds x 5 bands: encircled-energy errors up to
        13.5% unweighted, 3.8% weighted). ``"none"``: the azimuthal mean of the builder's
        stack.
    neighbour_mask_sigma : float
        Once a first ePSF exists, each star's fitted model is subtracted from its box (the
        cutout and the ring its background is fitted to) and every connected region of the
        remainder brighter than this many times the noise (after smoothing with a 2 px FWHM
        Gaussian; at least 5 pixels) is a neighbour's light: masked, the background refitted
        without it, and the ePSF rebuilt (:mod:`jaxcomp.ast.epsf_neighbours`). Default 3;
        ``inf`` switches it off. On the mock NGC 628C crop the neighbours alone biased the
        F555W encircled energy at 1-4 px by -3%.
    neighbour_dilate_px : int
        The neighbours' masks grow by this many pixels (their light below the threshold);
        default 2.
    extended_sigma : float
        In the same second pass, a star whose CI exceeds the ePSF's CI at the star's own
        centre (the pixel phase matters for an undersampled PSF) by more than this many
        times the CI's noise, counted from the stars' median excess when that is negative
        (the first ePSF is broadened by the very sources it should reject), is rejected as
        ``"extended"``; the test is repeated once against the rebuilt ePSF. Compact
        clusters and blends with an unresolved companion pass the stellar-locus cut
        (within ``ci_clip_mag``) but broaden the core: on the mock (seed 2, F814W) 7 of
        50 "stars" were clusters 0.06-0.1 mag above the locus and the ePSF's EE at 1 px
        was 2.7% low. Default 3; ``inf`` switches it off.
    """

    mag_range: tuple[float, float] = (15.0, 26.0)
    min_snr: float = 50.0
    isolation_radius_px: float = 8.0
    ci_range: tuple[float, float] = (0.3, 2.0)
    ci_clip_mag: float = 0.1
    roundness_range: tuple[float, float] = (-0.3, 0.3)
    peak_max: float | None = None
    max_stars: int = 200
    min_stars: int = 10
    cutout_px: int = 31
    oversampling: int = 3
    iterations: int = 10
    detection_fwhm_px: float = 2.0
    detection_threshold_sigma: float = 5.0
    background_box_px: int = 64
    smoothing_kernel: Literal["quadratic", "quartic"] | None = "quadratic"
    wing_snr: float = 5.0
    wing_weighting: Literal["inverse_variance", "none"] = "inverse_variance"
    neighbour_mask_sigma: float = 3.0
    neighbour_dilate_px: int = 2
    extended_sigma: float = 3.0

    def __post_init__(self):
        def pair(name):
            v = getattr(self, name)
            try:
                lo, hi = (float(x) for x in v)
            except (TypeError, ValueError):
                raise ValueError(
                    f"EPSFStarSelection.{name} must be a pair (low, high), got {v!r}"
                ) from None
            if not lo < hi:
                raise ValueError(f"EPSFStarSelection.{name} must have low < high, got {v!r}")
            object.__setattr__(self, name, (lo, hi))

        for name in ("mag_range", "ci_range", "roundness_range"):
            pair(name)
        for name in (
            "min_snr",
            "ci_clip_mag",
            "detection_threshold_sigma",
            "wing_snr",
            "neighbour_mask_sigma",
            "extended_sigma",
        ):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(
                    f"EPSFStarSelection.{name} must be >= 0, got {getattr(self, name)!r}"
                )
        for name in ("isolation_radius_px", "detection_fwhm_px"):
            if not (math.isfinite(float(getattr(self, name))) and float(getattr(self, name)) > 0):
                raise ValueError(
                    f"EPSFStarSelection.{name} must be > 0 [px], got {getattr(self, name)!r}"
                )
        for name, low in (
            ("max_stars", 1),
            ("min_stars", 1),
            ("oversampling", 1),
            ("iterations", 1),
            ("background_box_px", 8),
            ("cutout_px", 5),
            ("neighbour_dilate_px", 0),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < low:
                raise ValueError(f"EPSFStarSelection.{name} must be an integer >= {low}, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.cutout_px % 2 == 0:
            raise ValueError(f"EPSFStarSelection.cutout_px must be odd, got {self.cutout_px}")
        if self.min_stars > self.max_stars:
            raise ValueError(
                f"EPSFStarSelection.min_stars ({self.min_stars}) exceeds max_stars "
                f"({self.max_stars})"
            )
        if self.peak_max is not None and not float(self.peak_max) > 0:
            raise ValueError(
                f"EPSFStarSelection.peak_max must be > 0 or None, got {self.peak_max!r}"
            )
        if self.wing_weighting not in ("inverse_variance", "none"):
            raise ValueError(
                "EPSFStarSelection.wing_weighting must be 'inverse_variance' or 'none', "
                f"got {self.wing_weighting!r}"
            )
        if self.smoothing_kernel not in (None, "quartic", "quadratic"):
            raise ValueError(
                "EPSFStarSelection.smoothing_kernel must be 'quartic', 'quadratic' or None, "
                f"got {self.smoothing_kernel!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping) -> EPSFStarSelection:
        """Build from a mapping of field names (unknown names are refused)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ePSF selection option(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    def to_dict(self) -> dict:
        return asdict(self)
