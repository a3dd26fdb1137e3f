"""Fit the residual blur of the mock's HST PSFs to the real NGC 628C injections of C-4.

The mock's effective PSFs (:func:`jaxcomp.ast.hst_psf.hst_epsf`) are built from published
optics, detector and drizzle numbers plus one fitted term per band: a Gaussian "residual blur"
of the drizzled frame. This script finds it. For each band with real reference data
(``data/legus/c4_ngc628c_injection_ci.csv``: the C-4 pipeline's photometry of its injections
into the real frames, clusters with a 3 px error below 0.05 mag) it computes the noiseless
median CI of EFF clusters measured the way C-4 measured them, on a grid of blurs, and takes
the blur whose CIs are closest to the real medians (least squares over the radii):

- the clusters are at integer pixel positions (BAOlab ``mksynth``) with the radii C-4 gave
  BAOlab (ACS bands: 0.792 x nominal, C-4 converted r_eff with 0.05"/px; WFC3: nominal);
- the photometry starts (-0.55, -0.44) px from them (C-4's matched white-light coordinates,
  :mod:`jaxcomp.ast.c4_reference`) with 0.01 px rms scatter, and each aperture goes to
  the band's IRAF ``centroid`` (3x3 box, :func:`jaxcomp.ast.centring.iraf_centroid`);
- IRAF's aperture weights and the 7-8 px "mode" sky (:class:`PhotometryConfig`).

    python scripts/fit_psf_residual_blur.py                # ~2 min; prints the table
    python scripts/fit_psf_residual_blur.py --json out.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from jaxcomp.ast import hst_psf
from jaxcomp.ast.c4_reference import (
    C4_ACS_RADIUS_FACTOR,
    C4_START_OFFSET_PX,
    C4_START_SCATTER_PX,
    c4_median_ci,
)
from jaxcomp.ast.centring import iraf_centroid
from jaxcomp.ast.mock import MOCK_PSF_OVERSAMPLING, MOCK_PSF_RADIUS_ARCSEC
from jaxcomp.ast.photometry import aperture_photometry
from jaxcomp.ast.profiles import PSFModel, add_stamps, reff_pc_to_px, render_stamps
from jaxcomp.ast.settings import PhotometryConfig
from jaxcomp.catalogues import BANDS

#: Bands fitted (the ones C-4 committed photometry for).
FIT_BANDS = ("F336W", "F555W", "F814W")
#: Start positions per radius (offset and scatter: :mod:`jaxcomp.ast.c4_reference`).
N_STARTS = 200
STAMP_SIDE_PX = 101
#: A bright cluster [counts/s] and exposure [s]: IRAF's centroid keeps an axis at its start
#: when the centroid's own error exceeds the box (``apmctr1d``), which a noiseless cluster of
#: realistic counts never reaches; a cluster of ~1 count would.
CLUSTER_RATE, EXPTIME_S = 1.0e5, 1000.0


def c4_measured_ci(psf: PSFModel, band: str, r_eff_px: float, starts: np.ndarray) -> float:
    """Noiseless median CI of one cluster measured as C-4 measured its injections."""
    c = STAMP_SIDE_PX // 2
    img = np.zeros((STAMP_SIDE_PX, STAMP_SIDE_PX))
    add_stamps(img, render_stamps([c], [c], [CLUSTER_RATE], r_eff_px, psf))
    x, y, _ = iraf_centroid(img, c + starts[:, 0], c + starts[:, 1], epadu=EXPTIME_S)
    cfg = PhotometryConfig(ci_band=band, centring="none")
    ph = aperture_photometry(
        {b: img for b in BANDS}, x, y, {b: 25.0 for b in BANDS}, {b: EXPTIME_S for b in BANDS}, cfg
    )
    return float(np.median(np.asarray(ph["ci"], float)))


def scan(band: str, blurs_arcsec, radii_pc, seed: int = 0) -> np.ndarray:
    """Median CIs (blur x radius) for ``band``."""
    inst0 = hst_psf.INSTRUMENT_OF_BAND[band]
    factor = C4_ACS_RADIUS_FACTOR if inst0.name == "ACS/WFC" else 1.0
    starts = np.asarray(C4_START_OFFSET_PX) + np.random.default_rng(seed).normal(
        0.0, C4_START_SCATTER_PX, (N_STARTS, 2)
    )
    out = np.empty((len(blurs_arcsec), len(radii_pc)))
    for i, blur in enumerate(blurs_arcsec):
        img = hst_psf.hst_epsf(
            band,
            oversampling=MOCK_PSF_OVERSAMPLING,
            radius_arcsec=MOCK_PSF_RADIUS_ARCSEC,
            blur_arcsec=float(blur),
        )
        psf = PSFModel(image=img, oversampling=MOCK_PSF_OVERSAMPLING)
        for j, r in enumerate(radii_pc):
            out[i, j] = c4_measured_ci(psf, band, float(reff_pc_to_px(r)) * factor, starts)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--step", type=float, default=0.001, help="blur grid step [arcsec]")
    ap.add_argument("--max-blur", type=float, default=0.024, help="blur grid end [arcsec]")
    ap.add_argument("--json", help="write the scan here")
    args = ap.parse_args(argv)
    real = {band: c4_median_ci(band) for band in FIT_BANDS}
    blurs = np.round(np.arange(0.0, args.max_blur + 1e-9, args.step), 6)
    result = {"blurs_arcsec": blurs.tolist(), "bands": {}}
    for band in FIT_BANDS:
        radii = list(real[band])
        target = np.array([real[band][r][0] for r in radii])
        ci = scan(band, blurs, radii)
        rms = np.sqrt(np.mean((ci - target) ** 2, axis=1))
        k = int(np.argmin(rms))
        result["bands"][band] = {
            "radii_pc": radii,
            "real_median_ci": target.tolist(),
            "real_n": [real[band][r][1] for r in radii],
            "model_ci": ci.tolist(),
            "best_blur_arcsec": float(blurs[k]),
            "best_rms": float(rms[k]),
        }
        print(f"{band}: best residual blur {blurs[k]:.3f} arcsec (rms {rms[k]:.4f} mag)")
        for r, m, t in zip(radii, ci[k], target):
            print(f"  {r:>2} pc  model {m:.3f}  real {t:.3f}  {m - t:+.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
