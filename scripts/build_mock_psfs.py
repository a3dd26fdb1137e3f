"""Build the mock NGC 628C field's five effective PSFs (``data/mock/ngc628c_mock_psf.fits``).

Each band's ePSF is :func:`jaxcomp.ast.hst_psf.hst_epsf` (diffraction by the HST pupil
averaged over the band, Marechal halo of the residual wavefront error, jitter, the native
pixel, charge diffusion, the drizzle drop and the 0.0396" output pixel; every number and
its source are in that module's docstring). One image HDU per band, named after it, at
4 samples per pixel, with the parameters in its header. Deterministic: rerunning writes
the same pixels, which ``tests/test_ast_hst_psf.py`` checks.

    python scripts/build_mock_psfs.py            # writes data/mock/ngc628c_mock_psf.fits
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from jaxcomp.ast import hst_psf
from jaxcomp.ast.mock import MOCK_PSF_OVERSAMPLING, MOCK_PSF_RADIUS_ARCSEC
from jaxcomp.catalogues import BANDS

OUT = Path(__file__).resolve().parents[1] / "data" / "mock" / "ngc628c_mock_psf.fits"


def build_hdus() -> fits.HDUList:
    hdus = [fits.PrimaryHDU()]
    hdus[0].header["COMMENT"] = (
        "jaxcomp mock NGC 628C effective PSFs (jaxcomp.ast.hst_psf.hst_epsf)"
    )
    hdus[0].header["PIXSCALE"] = (0.0396, "output pixel [arcsec]")
    hdus[0].header["PSFOVERS"] = (MOCK_PSF_OVERSAMPLING, "samples per pixel")
    hdus[0].header["DIAM_M"] = (hst_psf.HST_PRIMARY_DIAMETER_M, "HST primary diameter [m]")
    hdus[0].header["OBSCUR"] = (hst_psf.HST_SECONDARY_OBSCURATION, "linear central obscuration")
    hdus[0].header["JITTER"] = (hst_psf.JITTER_RMS_ARCSEC, "pointing jitter per axis [arcsec]")
    hdus[0].header["HALOSIG"] = (
        hst_psf.HALO_SIGMA_LAMBDA_OVER_D,
        "scattered halo sigma [lambda/D]",
    )
    hdus[0].header["PIXFRAC"] = (1.0, "drizzle drop size [native px]")
    for band in BANDS:
        inst = hst_psf.INSTRUMENT_OF_BAND[band]
        img = hst_psf.hst_epsf(
            band, oversampling=MOCK_PSF_OVERSAMPLING, radius_arcsec=MOCK_PSF_RADIUS_ARCSEC
        )
        hdu = fits.ImageHDU(img.astype(np.float64), name=band)
        hdu.header["INSTRUME"] = inst.name
        hdu.header["NATIVEPX"] = (inst.native_pixel_arcsec, "native pixel [arcsec]")
        hdu.header["WFE_NM"] = (inst.wavefront_rms_nm, "rms wavefront error [nm]")
        hdu.header["RESBLUR"] = (
            hst_psf.residual_blur_arcsec(band),
            "residual blur per axis [arcsec]",
        )
        hdu.header["PSFOVERS"] = MOCK_PSF_OVERSAMPLING
        hdus.append(hdu)
    return fits.HDUList(hdus)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    hdul = build_hdus()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".fits.tmp")
    os.close(fd)
    try:
        hdul.writeto(tmp, overwrite=True, checksum=True)
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
