"""The C-4 pipeline's injections into the real NGC 628C frames, and how C-4 measured them.

``data/legus/c4_ngc628c_injection_ci.csv`` (provenance in ``data/legus/README.md``) holds the
concentration indices C-4 measured for its artificial clusters in the real frames. To compare
the mock with them, the mock's clusters must be rendered and measured the same way:

- C-4 converted r_eff to BAOlab pixels with 0.05"/px for the ACS bands (its ``pixscale_acs``)
  while the drizzled frames have 0.0396"/px, so its ACS clusters are
  :data:`C4_ACS_RADIUS_FACTOR` x the nominal radius (WFC3: nominal);
- BAOlab put the clusters on pixel centres, and the photometry started from matched
  white-light coordinates :data:`C4_START_OFFSET_PX` px off them (x, y), with a scatter of
  :data:`C4_START_SCATTER_PX` px rms per axis. Each band's apertures then go to IRAF's
  centroid (:func:`jaxcomp.ast.centring.iraf_centroid`). Measured in C-4's committed F555W
  ``phot`` files of 1 and 2 pc clusters (``ngc628-c/f555w/photometry/
  mag_ngc628-c_acsff555w_frame{0,1}_test_reff1.00.mag`` and ``frame0_test_reff2.00.mag``;
  993 sources, 194 with a 3 px error below 0.05 mag): the fractional parts of XINIT are
  0.45 (16th-84th percentile 0.44-0.46) and of YINIT 0.56 (0.55-0.57) in every file and at
  every error; the centroids end on integer y for 80-86% of the clusters with a 3 px error
  below 0.05 mag (the start rounds up to the cluster's pixel) and at x fractions of
  0.78-0.89 for the brightest (3 px error < 0.02; the start rounds down and IRAF's 3 x 3 box
  centroid stops short of the cluster's pixel). The mock reproduces both: from these starts
  its bright compact clusters' centroids end 0.12 px (0.09-0.15) short of the pixel in x and
  exactly on it in y;
- the injected clusters' shot noise and the photometric errors are not the instrument's.
  C-4 made its clusters with BAOlab ``mksynth`` at ``ZPOINT`` = :data:`C4_BAOLAB_ZPOINT`
  counts for a 0 mag source, ``EPADU = 1``, ``PHOTNOISE = YES``, then divided the frame by
  ``ZPOINT x 10**(-0.4 ZP)`` to reach counts/s (``scripts/original_inject_to_5filters.py``
  of the C-4 repository): Poisson noise of a count rate R over
  :func:`c4_injection_exposure_s` = ``ZPOINT x 10**(-0.4 ZP)`` seconds, 0.51 s in F555W
  instead of the frame's 858 s (41 times the physical rms). Its IRAF ``phot`` ran with
  ``epadu`` = :data:`C4_PHOT_EPADU` on count-rate frames (the ``#K EPADU`` of its ``.mag``
  files; its 3 px errors equal 1.0857 sqrt(flux + area sigma^2 + area^2 sigma^2 / nsky) /
  flux with flux in counts/s), so its 3 px error < 0.05 mag keeps only clusters with more
  than ~470 counts/s in the 3 px aperture (F555W 3 px magnitudes 16.2-19.0), and there the
  error is set by the injected noise above rather than by the frame.
"""

from __future__ import annotations

import csv

import numpy as np

from .._data import data_path

__all__ = [
    "C4_ACS_RADIUS_FACTOR",
    "C4_START_OFFSET_PX",
    "C4_START_SCATTER_PX",
    "C4_BAOLAB_ZPOINT",
    "C4_PHOT_EPADU",
    "c4_injection_exposure_s",
    "read_c4_injection_ci",
    "c4_median_ci",
]

#: Radius of C-4's ACS clusters on the 0.0396"/px frames, per nominal radius.
C4_ACS_RADIUS_FACTOR: float = 0.0396 / 0.05
#: Offset (x, y) of C-4's photometry start positions from its injected pixel centres [px]:
#: the fractional parts of its XINIT and YINIT (0.45, 0.56) below the cluster's pixel.
C4_START_OFFSET_PX: tuple[float, float] = (-0.55, -0.44)
#: Scatter of those start positions [px rms per axis] (XINIT, YINIT: 16th-84th percentiles
#: within +-0.01 px of the median).
C4_START_SCATTER_PX: float = 0.01
#: BAOlab ``MKSYNTH.ZPOINT`` of C-4's injections: counts of a 0 mag source (its ``baozpoint``).
C4_BAOLAB_ZPOINT: float = 1e10
#: IRAF ``phot`` gain of C-4's photometry of count-rate frames [e-/(count/s)] (``#K EPADU``).
C4_PHOT_EPADU: float = 1.0


def c4_injection_exposure_s(zeropoint: float) -> float:
    """Exposure time [s] whose Poisson noise C-4's injected clusters carry in a band of
    ``zeropoint`` [mag for 1 count/s]: BAOlab's counts (EPADU 1) divided by
    ``ZPOINT x 10**(-0.4 zeropoint)`` to make counts/s."""
    return C4_BAOLAB_ZPOINT * 10.0 ** (-0.4 * float(zeropoint))


def read_c4_injection_ci(band: str) -> dict[str, np.ndarray]:
    """The real injections of one band: ``frame``, ``r_eff_pc`` (nominal), ``mag1``,
    ``mag3``, ``err3`` [mag] and ``ci`` arrays (band name in any case)."""
    with open(data_path("legus", "c4_ngc628c_injection_ci.csv")) as fh:
        rows = [r for r in csv.DictReader(fh) if r["band"] == band.lower()]
    if not rows:
        raise ValueError(f"no C-4 injections in band {band!r} (the file has F336W, F555W, F814W)")
    out = {k: np.array([float(r[k]) for r in rows]) for k in ("mag1", "mag3", "err3", "ci")}
    out["frame"] = np.array([int(r["frame"]) for r in rows])
    out["r_eff_pc"] = np.array([int(r["r_eff_pc"]) for r in rows])
    return out


def c4_median_ci(band: str, max_err3: float = 0.05) -> dict[int, tuple[float, int]]:
    """Median CI and count of the real injections with a 3 px error below ``max_err3`` [mag],
    per nominal radius [pc]."""
    t = read_c4_injection_ci(band)
    keep = t["err3"] < max_err3
    ci, radius = t["ci"][keep], t["r_eff_pc"][keep]
    return {
        int(r): (float(np.median(ci[radius == r])), int(np.sum(radius == r)))
        for r in np.unique(radius)
    }
