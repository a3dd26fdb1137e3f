"""Physical HST point-spread functions on the drizzled LEGUS grid (WFC3/UVIS and ACS/WFC).

The mock NGC 628C field needs PSFs with the real instruments' shapes: the concentration
index CI = m(1 px) - m(3 px), on which the LEGUS catalogue selects its clusters, is set by
the PSF between 1 and 3 px (0.04" - 0.12"), where a Gaussian has no Airy ring and no
detector blur. This module builds each band's effective PSF (pixel-integrated, sampled
``oversampling`` times per 0.0396" pixel) as the product, in Fourier space, of the
physical transfer functions of the observation, each from a published number:

1. *Diffraction* by the HST pupil: a 2.4 m primary with a central obscuration of 0.33 of
   its diameter (the OTA secondary; the spiders, whose spikes hold < 2% of the light and do
   not change a circular aperture's flux, are left out). The monochromatic annular-Airy
   profile is averaged over the band, weighted by the filter's system throughput times
   the wavelength (photon counts of a flat f_lambda source; sedpy's filter curves, the
   same ones the cluster library integrates).
2. *Wavefront error*: with rms wavefront error ``w`` the core keeps the Strehl fraction
   ``S = exp(-(2 pi w / lambda)^2)`` (Marechal) and the rest is scattered into a halo,
   modelled as a Gaussian of sigma ``HALO_SIGMA_LAMBDA_OVER_D`` lambda/D (the OTA's
   mid-frequency zonal errors scatter to ~10-30 lambda/D). ``w`` = 1/20 wave rms at
   550 nm (27.5 nm), the residual aberration the ACS Instrument Handbook (section 5.6)
   gives at the WFC field centre; WFC3/UVIS is taken to be the same (the WFC3 IHB section
   6.6 attributes its near-UV PSF degradation to the same OTA mid-frequency errors).
3. *Pointing jitter*: a Gaussian of ``JITTER_RMS_ARCSEC`` per axis.
4. *Detector*: the native pixel (ACS/WFC 0.050", WFC3/UVIS 0.0396") and charge diffusion,
   a Gaussian whose variance per axis equals the second moment of the published 3x3
   charge-diffusion kernels: WFC3/UVIS 0.33 px^2 at 250 nm and 0.082 px^2 at 810 nm
   (WFC3 IHB, UVIS charge diffusion kernels), linear in wavelength between them; ACS/WFC
   0.38 px^2 at 400 nm (ACS IHB eq. 5.1, K_WFC = [[.04,.11,.04],[.11,.40,.11],[.04,.11,.04]])
   with the same relative wavelength dependence as WFC3/UVIS (both are thinned,
   back-illuminated CCDs, whose blue photons are absorbed furthest from the wells).
5. *Residual blur of the drizzled frames* (a Gaussian per axis, one value per band,
   :data:`RESIDUAL_BLUR_ARCSEC`: 0.016" for F275W and F336W, 0.005" for F435W and F555W,
   0.015" for F814W): dither registration, focus breathing and CTE trails widen each band's
   combined PSF beyond the optical model, and in F814W the ACS/WFC red halo (photons beyond
   800 nm scattered inside the CCD, ACS IHB 5.6), which is not modelled otherwise, adds to
   it. These numbers are fitted, not published (``scripts/fit_psf_residual_blur.py``): to
   the median concentration index of the real NGC 628C injections of the C-4 pipeline
   (``data/legus/c4_ngc628c_injection_ci.csv``, clusters with a 3 px error below 0.05 mag),
   with the model clusters measured as C-4 measured its own: at integer pixels, the
   photometry starting (-0.55, -0.44) px off (:mod:`jaxcomp.ast.c4_reference`) and
   recentred by IRAF's ``centroid``
   (:func:`jaxcomp.ast.centring.iraf_centroid`), IRAF aperture weights (noiseless model
   values here, least squares over every radius C-4 committed). F336W at r_eff = 1 and 3 pc
   (real 1.236 and 1.505; model 1.241 and 1.509); F555W at 1-10 pc (at the radii C-4
   injected, 0.79 x nominal, see data/legus/README.md; real 1.386/1.480/1.561/1.633/1.703/
   1.717/1.769/1.802/1.836/1.873, model 1.380/1.473/1.554/1.624/1.685/1.738/1.784/1.825/
   1.860/1.892: C-4's CI rises by only 0.014 mag from 5 to 6 pc, a kink no PSF width
   reproduces); F814W at 1, 3 and 10 pc (real 1.421/1.585/1.907, model 1.418/1.592/1.914).
   F275W takes F336W's value and F435W F555W's (same cameras, no reference injections).
   Point sources have median CI 1.01 (F336W) and 1.21 (F555W) at random pixel phases with
   IRAF centring, below the LEGUS cut of 1.4 set to exclude stars.
6. *Drizzling* to the LEGUS grid: a box of ``pixfrac`` native pixels (AstroDrizzle's
   default ``final_pixfrac = 1``), then the output pixel (0.0396"), which makes it an
   *effective* PSF (photutils / Anderson & King convention: its value at an offset is the
   flux of a pixel centred there).

The result is truncated at ``radius_arcsec`` and normalised inside it, as an empirical PSF
built from a frame's stars is. Everything is deterministic (no random draw) and pure
numpy/scipy; :func:`hst_epsf` takes about a second per band. The mock field stores the five
ePSFs in ``data/mock/ngc628c_mock_psf.fits`` (``scripts/build_mock_psfs.py``), with these
parameters in the header.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.special import j1

__all__ = [
    "HST_PRIMARY_DIAMETER_M",
    "HST_SECONDARY_OBSCURATION",
    "JITTER_RMS_ARCSEC",
    "HALO_SIGMA_LAMBDA_OVER_D",
    "InstrumentPSF",
    "WFC3_UVIS",
    "ACS_WFC",
    "DRIZZLE_PIXFRAC",
    "INSTRUMENT_OF_BAND",
    "RESIDUAL_BLUR_ARCSEC",
    "residual_blur_arcsec",
    "annular_airy",
    "band_wavelengths",
    "hst_epsf",
]

#: Drizzle drop size of the LEGUS frames in native pixels (AstroDrizzle's default
#: ``final_pixfrac``); the PSF (note 6) and the correlated noise
#: (:mod:`jaxcomp.ast.drizzle_noise`) of the drizzled frames both use it.
DRIZZLE_PIXFRAC: float = 1.0
#: HST primary mirror diameter [m].
HST_PRIMARY_DIAMETER_M: float = 2.4
#: Linear central obscuration of the HST pupil (secondary mirror / primary diameter).
HST_SECONDARY_OBSCURATION: float = 0.33
#: HST pointing jitter per axis [arcsec] (a few mas rms in fine lock).
JITTER_RMS_ARCSEC: float = 0.005
#: Width of the scattered-light halo of the wavefront error, in lambda/D (Gaussian sigma).
HALO_SIGMA_LAMBDA_OVER_D: float = 10.0

_RAD_PER_ARCSEC = math.pi / (180.0 * 3600.0)


@dataclass(frozen=True)
class InstrumentPSF:
    """The instrument-specific terms of an HST camera's PSF.

    Attributes
    ----------
    name : {"WFC3/UVIS", "ACS/WFC"}
    native_pixel_arcsec : float
        The detector pixel [arcsec].
    wavefront_rms_nm : float
        Rms wavefront error [nm] (Marechal Strehl; the scattered part goes to the halo).
    diffusion_nm, diffusion_var_px2 : tuple of float
        Charge-diffusion variance per axis [native px^2] at these wavelengths [nm]; linear
        in between, constant beyond.
    residual_blur_arcsec : float
        Extra Gaussian blur of the drizzled frames per axis [arcsec] (see the module notes).
    """

    name: Literal["WFC3/UVIS", "ACS/WFC"]
    native_pixel_arcsec: float
    wavefront_rms_nm: float
    diffusion_nm: tuple[float, ...] = field(default=(250.0, 810.0))
    diffusion_var_px2: tuple[float, ...] = field(default=(0.33, 0.082))
    residual_blur_arcsec: float = 0.0

    def diffusion_variance_arcsec2(self, wavelength_nm: np.ndarray) -> np.ndarray:
        """Charge-diffusion variance per axis [arcsec^2] at ``wavelength_nm``."""
        v = np.interp(wavelength_nm, self.diffusion_nm, self.diffusion_var_px2)
        return v * self.native_pixel_arcsec**2


#: Residual blur of each LEGUS band's drizzled frame, per axis [arcsec] (note 5; fitted by
#: ``scripts/fit_psf_residual_blur.py``). Bands not listed take their camera's
#: ``residual_blur_arcsec``.
RESIDUAL_BLUR_ARCSEC: dict[str, float] = {
    "F275W": 0.016,
    "F336W": 0.016,
    "F435W": 0.005,
    "F555W": 0.005,
    "F814W": 0.015,
}


def _wfc3_relative(nm: float) -> float:
    return float(np.interp(nm, (250.0, 810.0), (0.33, 0.082)))


#: WFC3/UVIS: 0.0396" pixels; charge diffusion from the IHB's 250 and 810 nm kernels; the
#: residual blur of the drizzled frames fitted to the real F336W injections (note 5; the
#: per-band values are :data:`RESIDUAL_BLUR_ARCSEC`).
WFC3_UVIS = InstrumentPSF(
    "WFC3/UVIS", 0.0396, 27.5, residual_blur_arcsec=RESIDUAL_BLUR_ARCSEC["F336W"]
)
#: ACS/WFC: 0.050" pixels; charge diffusion 0.38 px^2 at 400 nm (IHB), WFC3's lambda trend;
#: the residual blur fitted to the real F555W injections (note 5; per band:
#: :data:`RESIDUAL_BLUR_ARCSEC`).
ACS_WFC = InstrumentPSF(
    "ACS/WFC",
    0.050,
    27.5,
    residual_blur_arcsec=RESIDUAL_BLUR_ARCSEC["F555W"],
    diffusion_nm=(250.0, 810.0),
    diffusion_var_px2=(
        0.38 * _wfc3_relative(250.0) / _wfc3_relative(400.0),
        0.38 * _wfc3_relative(810.0) / _wfc3_relative(400.0),
    ),
)
#: The camera of each LEGUS band.
INSTRUMENT_OF_BAND: dict[str, InstrumentPSF] = {
    "F275W": WFC3_UVIS,
    "F336W": WFC3_UVIS,
    "F435W": ACS_WFC,
    "F555W": ACS_WFC,
    "F814W": ACS_WFC,
}


def annular_airy(
    theta_arcsec: np.ndarray,
    wavelength_nm: float,
    diameter_m: float = HST_PRIMARY_DIAMETER_M,
    obscuration: float = HST_SECONDARY_OBSCURATION,
) -> np.ndarray:
    """Diffraction PSF of an annular pupil [fraction of the flux per arcsec^2].

    ``I(theta) = A / lambda^2 [(2 J1(v)/v - eps^2 2 J1(eps v)/(eps v)) / (1 - eps^2)]^2`` with
    ``v = pi D theta / lambda`` and ``A = pi D^2 (1 - eps^2) / 4``: unit total flux.
    """
    lam = wavelength_nm * 1e-9
    v = np.pi * diameter_m * np.asarray(theta_arcsec, float) * _RAD_PER_ARCSEC / lam
    eps = obscuration

    def jinc(x):
        out = np.ones_like(x)
        nz = x > 1e-12
        out[nz] = 2.0 * j1(x[nz]) / x[nz]
        return out

    amp = (jinc(v) - eps**2 * jinc(eps * v)) / (1.0 - eps**2)
    area = np.pi * diameter_m**2 * (1.0 - eps**2) / 4.0
    return area / lam**2 * amp**2 * _RAD_PER_ARCSEC**2


def band_wavelengths(band: str, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Wavelengths [nm] and photon weights (throughput x lambda, summing to 1) of a band."""
    from sedpy import observate

    from ..library.bands import sedpy_filter_name

    filt = observate.load_filters([sedpy_filter_name(band)])[0]
    wave_nm = np.asarray(filt.wavelength, float) / 10.0
    trans = np.clip(np.asarray(filt.transmission, float), 0.0, None)
    cdf = np.cumsum(trans * wave_nm)
    cdf /= cdf[-1]
    # n wavelengths at equal steps of the photon-weighted cumulative throughput (0.5% - 99.5%)
    q = np.linspace(0.005, 0.995, n)
    lam = np.interp(q, cdf, wave_nm)
    return lam, np.full(n, 1.0 / n)


def residual_blur_arcsec(band: str, instrument: InstrumentPSF | None = None) -> float:
    """The residual blur [arcsec per axis] of ``band``: :data:`RESIDUAL_BLUR_ARCSEC` with the
    band's own camera, else the camera's (``instrument``, default the band's) value."""
    if instrument is None:
        return RESIDUAL_BLUR_ARCSEC.get(band, INSTRUMENT_OF_BAND[band].residual_blur_arcsec)
    return instrument.residual_blur_arcsec


def hst_epsf(
    band: str,
    *,
    pixel_scale_arcsec: float = 0.0396,
    oversampling: int = 4,
    radius_arcsec: float = 0.6,
    instrument: InstrumentPSF | None = None,
    pixfrac: float = DRIZZLE_PIXFRAC,
    jitter_rms_arcsec: float = JITTER_RMS_ARCSEC,
    n_wavelengths: int = 40,
    fine: int = 8,
    blur_arcsec: float | None = None,
) -> np.ndarray:
    """The effective PSF of a LEGUS band on the drizzled grid.

    Parameters
    ----------
    band : str
        One of F275W, F336W, F435W, F555W, F814W (or any band with ``instrument`` given).
    pixel_scale_arcsec : float
        The output (drizzled) pixel [arcsec].
    oversampling : int
        Samples per output pixel of the returned ePSF.
    radius_arcsec : float
        Half-size of the returned image [arcsec]; the ePSF is normalised inside it.
    instrument : InstrumentPSF, optional
        Defaults to :data:`INSTRUMENT_OF_BAND`.
    pixfrac : float
        Drizzle drop size in native pixels.
    jitter_rms_arcsec : float
        Pointing jitter per axis [arcsec].
    n_wavelengths : int
        Wavelengths averaged over the band.
    fine : int
        Internal samples per output pixel (a multiple of ``oversampling``).
    blur_arcsec : float, optional
        Residual blur of the drizzled frame per axis [arcsec]; defaults to
        :func:`residual_blur_arcsec` of the band and ``instrument``.

    Returns
    -------
    numpy.ndarray
        Square image with odd side, centred on the middle sample, summing to
        ``oversampling**2`` (the :class:`~jaxcomp.ast.profiles.PSFModel` convention).
    """
    inst = instrument if instrument is not None else INSTRUMENT_OF_BAND[band]
    blur = residual_blur_arcsec(band, instrument) if blur_arcsec is None else blur_arcsec
    if not (math.isfinite(blur) and blur >= 0):
        raise ValueError(f"blur_arcsec must be a finite number >= 0, got {blur!r}")
    if fine % oversampling:
        raise ValueError(f"fine ({fine}) must be a multiple of oversampling ({oversampling})")
    step = pixel_scale_arcsec / fine  # internal sample [arcsec]
    # internal grid: +-(radius + 1.5") so that the halo's wrap-around is negligible
    half = math.ceil((radius_arcsec + 1.5) / step)
    n = 2 * half + 1
    nfft = 1 << math.ceil(math.log2(n))
    lam, weight = band_wavelengths(band, n_wavelengths)

    # radial profile of diffraction + halo, averaged over the band, on a fine 1D grid
    r1 = np.arange(0.0, half * step * math.sqrt(2) + 4 * step, step / 4.0)
    prof = np.zeros_like(r1)
    for lam_nm, w in zip(lam, weight):
        strehl = math.exp(-((2.0 * math.pi * inst.wavefront_rms_nm / lam_nm) ** 2))
        sig_h = HALO_SIGMA_LAMBDA_OVER_D * lam_nm * 1e-9 / HST_PRIMARY_DIAMETER_M / _RAD_PER_ARCSEC
        halo = np.exp(-0.5 * (r1 / sig_h) ** 2) / (2.0 * math.pi * sig_h**2)
        prof += w * (strehl * annular_airy(r1, lam_nm) + (1.0 - strehl) * halo)
    # the detector blur depends on wavelength too: use its band average (a Gaussian's
    # variance adds), exact enough for a term that is a fraction of a pixel
    diffusion_var = float(np.sum(weight * inst.diffusion_variance_arcsec2(lam)))

    c = np.arange(nfft) - nfft // 2
    yy, xx = np.meshgrid(c * step, c * step, indexing="ij")
    img = np.interp(np.hypot(xx, yy), r1, prof) * step**2
    ft = np.fft.fft2(np.fft.ifftshift(img))
    k = np.fft.fftfreq(nfft, d=step)  # cycles per arcsec
    ky, kx = np.meshgrid(k, k, indexing="ij")
    k2 = kx**2 + ky**2
    blur_var = jitter_rms_arcsec**2 + blur**2 + diffusion_var
    transfer = np.exp(-2.0 * math.pi**2 * blur_var * k2)
    p = inst.native_pixel_arcsec
    for width in (p, pixfrac * p, pixel_scale_arcsec):  # native pixel, drizzle drop, output pixel
        transfer = transfer * np.sinc(width * kx) * np.sinc(width * ky)
    epsf = np.real(np.fft.fftshift(np.fft.ifft2(ft * transfer)))

    # sample at `oversampling` per output pixel, centred, inside radius_arcsec
    sub = fine // oversampling
    m = math.floor(radius_arcsec / pixel_scale_arcsec * oversampling)
    idx = nfft // 2 + sub * np.arange(-m, m + 1)
    out = np.clip(epsf[np.ix_(idx, idx)], 0.0, None)
    return out * (oversampling**2 / out.sum())
