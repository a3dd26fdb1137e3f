"""A band's point-spread function (:class:`PSFModel`: a Gaussian or an effective-PSF image),
the checks a PSF image must pass (:func:`check_psf_image`) and the coercion of user input
(:func:`as_psf`). The cluster and point-source rendering that uses them is
:mod:`jaxcomp.ast.profiles`, which re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["FWHM_TO_SIGMA", "PSFModel", "as_psf", "check_psf_image"]

#: sigma = FWHM / (2 sqrt(2 ln 2)) for a Gaussian.
FWHM_TO_SIGMA: float = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True, eq=False)
class PSFModel:
    """A band's point-spread function: a circular Gaussian or an effective-PSF image.

    Exactly one of ``fwhm_px`` (Gaussian FWHM in pixels) and ``image`` (2D array,
    odd shape, centred, the pixel-integrated effective PSF sampled at
    ``oversampling`` points per image pixel) is set. An image is normalised to
    unit flux on construction: the sum of the samples times the sample area is one,
    i.e. ``sum(image) == oversampling**2``.
    """

    fwhm_px: float | None = None
    image: np.ndarray | None = None
    oversampling: int = 1

    def __post_init__(self):
        if (self.fwhm_px is None) == (self.image is None):
            raise ValueError(
                "PSFModel needs exactly one of fwhm_px (Gaussian) or image (effective PSF)"
            )
        if self.fwhm_px is not None:
            fwhm = float(self.fwhm_px)
            if not (math.isfinite(fwhm) and fwhm > 0):
                raise ValueError(
                    f"PSF FWHM must be a positive finite number of pixels, got {self.fwhm_px!r}"
                )
            object.__setattr__(self, "fwhm_px", fwhm)
            return
        img = np.array(self.image, dtype=np.float64)
        if img.ndim != 2 or img.shape[0] % 2 == 0 or img.shape[1] % 2 == 0:
            raise ValueError(
                "a PSF image must be 2D with odd sides (centred on the middle pixel), got shape "
                f"{img.shape}"
            )
        if not np.all(np.isfinite(img)):
            raise ValueError(
                "the PSF image contains NaN or inf; clean it before building the field"
            )
        total = img.sum()
        if not total > 0:
            raise ValueError("the PSF image has no positive flux")
        ov = int(self.oversampling)
        if ov < 1 or ov != self.oversampling:
            raise ValueError(
                f"PSF oversampling must be a positive integer, got {self.oversampling!r}"
            )
        img *= ov * ov / total
        img.setflags(write=False)
        object.__setattr__(self, "image", img)
        object.__setattr__(self, "oversampling", ov)

    @property
    def is_gaussian(self) -> bool:
        return self.fwhm_px is not None

    @property
    def sigma_px(self) -> float:
        """Gaussian sigma, or the rms radius per axis of the PSF image (second moment), in px."""
        if self.fwhm_px is not None:
            return self.fwhm_px * FWHM_TO_SIGMA
        ny, nx = self.image.shape
        yy, xx = np.mgrid[:ny, :nx]
        yy = (yy - ny // 2) / self.oversampling
        xx = (xx - nx // 2) / self.oversampling
        w = np.clip(self.image, 0, None)
        var = (w * (xx**2 + yy**2)).sum() / w.sum() / 2.0
        return float(math.sqrt(var))

    @cached_property
    def core_sigma_px(self) -> float:
        """Width of the PSF's core as a Gaussian sigma [px]: the sigma itself for a Gaussian,
        the FWHM of the image (half-maximum radius along its central row and column, linearly
        interpolated) / 2.3548 otherwise. The second moment or the half-light radius of a real
        PSF are set by its faint halo, not by the core the cluster's rendering must resolve."""
        if self.fwhm_px is not None:
            return self.sigma_px
        img = self.image
        cy, cx = img.shape[0] // 2, img.shape[1] // 2
        half = 0.5 * img[cy, cx]
        radii = []
        for prof in (img[cy, cx:], img[cy, cx::-1], img[cy:, cx], img[cy::-1, cx]):
            i = int(np.argmax(prof < half))
            if i == 0:  # never below half maximum inside the image
                radii.append(prof.size - 1)
                continue
            radii.append(i - 1 + (prof[i - 1] - half) / (prof[i - 1] - prof[i]))
        fwhm = 2.0 * float(np.mean(radii)) / self.oversampling
        return fwhm * FWHM_TO_SIGMA

    @property
    def extent_px(self) -> float:
        """Full width (px) the PSF needs: 10 sigma for a Gaussian, the image side otherwise."""
        if self.fwhm_px is not None:
            return 10.0 * self.sigma_px
        return max(self.image.shape) / self.oversampling

    def describe(self) -> str:
        if self.fwhm_px is not None:
            return f"Gaussian FWHM {self.fwhm_px:g} px"
        return f"image {self.image.shape} at oversampling {self.oversampling}"


def check_psf_image(image, oversampling: int = 1, band: str = "") -> None:
    """Refuse a PSF image that is not a clean, centred, normalised effective PSF.

    ``image`` is sampled ``oversampling`` times per pixel and must sum to
    ``oversampling**2`` within 1% (unit flux), have its centroid within 0.1 px of the
    middle sample, no NaN or inf, and no negative samples below -1% of its peak (noise
    around zero in the far wings is tolerated). Raises ValueError naming ``band``.
    """
    name = f"the PSF image of {band}" if band else "the PSF image"
    img = np.asarray(image, dtype=np.float64)
    ov = int(oversampling)
    if img.ndim != 2 or img.shape[0] % 2 == 0 or img.shape[1] % 2 == 0:
        raise ValueError(
            f"{name} must be 2D with odd sides (centred on the middle sample), got shape "
            f"{img.shape}"
        )
    if not np.all(np.isfinite(img)):
        raise ValueError(f"{name} contains NaN or inf; clean it (e.g. set those samples to 0)")
    total = img.sum() / (ov * ov)
    if not abs(total - 1.0) <= 0.01:
        raise ValueError(
            f"{name} is not normalised: its samples sum to {total:.4g} x oversampling^2 (expected "
            "1); "
            "divide it by its sum and multiply by oversampling**2"
        )
    peak = img.max()
    if img.min() < -0.01 * peak:
        raise ValueError(
            f"{name} has negative wings down to {img.min() / peak:.3g} of its peak (beyond noise); "
            "clip or refit it"
        )
    ny, nx = img.shape
    yy, xx = np.mgrid[:ny, :nx]
    w = np.clip(img, 0, None)
    cy = ((yy - ny // 2) * w).sum() / w.sum() / ov
    cx = ((xx - nx // 2) * w).sum() / w.sum() / ov
    if math.hypot(cx, cy) > 0.1:
        raise ValueError(
            f"{name} is not centred: its centroid is ({cx:+.2f}, {cy:+.2f}) px from the middle "
            "sample; "
            "recentre it (e.g. shift by the centroid and resample)"
        )


def as_psf(psf) -> PSFModel:
    """Coerce a float (Gaussian FWHM in px), a 2D array (ePSF at pixel sampling) or a PSFModel."""
    if isinstance(psf, PSFModel):
        return psf
    if isinstance(psf, (int, float, np.floating, np.integer)):
        return PSFModel(fwhm_px=float(psf))
    arr = np.asarray(psf)
    if arr.ndim == 0:
        return PSFModel(fwhm_px=float(arr))
    return PSFModel(image=arr)
