"""The C-4 pipeline's injections into the real NGC 628C frames, and how C-4 measured them.

``data/legus/c4_ngc628c_injection_ci.csv`` (provenance in ``data/legus/README.md``) holds the
concentration indices C-4 measured for its artificial clusters in the real frames. To compare
the mock with them, the mock's clusters must be rendered and measured the same way:

- C-4 converted r_eff to BAOlab pixels with 0.05"/px for the ACS bands (its ``pixscale_acs``)
  while the drizzled frames have 0.0396"/px, so its ACS clusters are
  :data:`C4_ACS_RADIUS_FACTOR` x the nominal radius (WFC3: nominal);
- BAOlab put the clusters on pixel centres, and the photometry started from matched
  white-light coordinates :data:`C4_START_OFFSET_PX` px off them per axis (scatter
  :data:`C4_START_SCATTER_PX` px rms): the XINIT columns of C-4's committed ``.mag`` files
  have fractional parts 0.42-0.60 for compact clusters, and bright compact clusters end
  exactly on the pixel above the start whenever the start rounds to it. Each band's apertures
  then go to IRAF's centroid (:func:`jaxcomp.ast.centring.iraf_centroid`).
"""

from __future__ import annotations

import csv

import numpy as np

from .._data import data_path

__all__ = [
    "C4_ACS_RADIUS_FACTOR",
    "C4_START_OFFSET_PX",
    "C4_START_SCATTER_PX",
    "read_c4_injection_ci",
    "c4_median_ci",
]

#: Radius of C-4's ACS clusters on the 0.0396"/px frames, per nominal radius.
C4_ACS_RADIUS_FACTOR: float = 0.0396 / 0.05
#: Offset of C-4's photometry start positions from its injected pixel centres [px per axis].
C4_START_OFFSET_PX: float = -0.5
#: Scatter of those start positions [px rms per axis].
C4_START_SCATTER_PX: float = 0.05


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
    return {
        int(r): (
            float(np.median(t["ci"][keep & (t["r_eff_pc"] == r)])),
            int(np.sum(keep & (t["r_eff_pc"] == r))),
        )
        for r in np.unique(t["r_eff_pc"][keep])
    }
