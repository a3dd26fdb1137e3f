"""Concentration index of clusters injected into the mock NGC 628C field, against the real frames.

What the LEGUS CI >= 1.4 cut sees depends on the PSF between 1 and 3 px. This script
measures, on the mock (``jaxcomp.ast.make_mock_field``), the CI = m(1 px) - m(3 px) of
artificial clusters the way the published C-4 pipeline measured its injections into the
real NGC 628C frames (``ngc628-c/<band>/photometry/*.txt`` of
JianlingTang/completeness_NN_pipeline): aperture photometry at the injected positions in
every band (sky: the pipeline's 7-8 px annulus), keeping clusters whose 3 px magnitude
error is below 0.05 mag.

Recipe: for each r_eff in ``--radii`` pc, ``--frames`` frames of 25 clusters (the demo's
density), placed as the campaigns place them (white-light density, 3 r_eff apart, 5 px from
the crop's edges), with magnitudes uniform from 5 to 1.5 mag brighter than the band's
Adamo+2017 50% magnitude (the CI does not depend on colour; the error cut keeps the bright
ones), shot noise from their own counts over the band's exposure time, and IRAF's errors
with the frame's gain (``epadu`` = exposure time, as LEGUS).

``--c4-noise`` makes and measures the clusters as C-4 did instead
(:mod:`jaxcomp.ast.c4_reference`): shot noise over BAOlab's effective exposure
(``ZPOINT x 10**(-0.4 ZP)`` = 0.5-9 s instead of 858-2481 s: 17-53 times the physical rms)
and IRAF's errors with ``epadu`` = 1 on the count-rate frames. C-4's 3 px error < 0.05 then
keeps only clusters brighter than ZP - 6.7 in the 3 px aperture (real F555W 16.2-19.0 mag), so
the magnitudes are drawn from ZP - 10.3 to ZP - 6.3, and the table also gives the statistics
with the mock's clusters weighted to the real injections' 3 px error distribution
(``err_matched``: the real F555W histogram in 0.005 mag bins; meaningful only here, where both
errors come from the same formula). The real statistics at the matching nominal radius are
printed beside the mock's.

It also measures the CI distribution of the mock's own class 1-3 sources (the LEGUS
catalogue's clusters placed in the mock with radii matched to their catalogue CIs) through
the whole pipeline, next to the real catalogue's ``ci_F555W`` percentiles.

Where the apertures sit (``--geometry``) changes the CI by several hundredths of a mag, because
IRAF's partial-pixel weights make the 1 px "aperture" cover 3.17-3.53 px^2 depending on where its
centre falls on the pixel grid:

- ``exact``: clusters at random sub-pixel positions, apertures at the true centres.
- ``c4``: what the C-4 pipeline did with its injections. Clusters at integer pixel positions
  (BAOlab ``mksynth``); the photometry starts from the matched white-light coordinates, which
  sit (-0.55, -0.44) px from the injected ones (the XINIT and YINIT of C-4's committed
  ``.mag`` files, :mod:`jaxcomp.ast.c4_reference`), and every band's apertures go to that
  band's IRAF ``centroid`` (cbox 1 = a 3x3 box, :func:`jaxcomp.ast.centring.iraf_centroid`).
- ``iraf``: the LEGUS pipeline on real clusters: random sub-pixel positions, IRAF centroid from
  a start :data:`LEGUS_START_SCATTER_PX` px (rms per axis) off the truth.

    python scripts/measure_injected_ci.py --json ci.json     # ~3-6 min on one core
    python scripts/measure_injected_ci.py --geometry c4 --c4-noise --radii 0.792,1.584 ...
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace

import numpy as np

from jaxcomp.ast import make_mock_field, mock_truth, prepare_field
from jaxcomp.ast.c4_reference import (
    C4_ACS_RADIUS_FACTOR,
    C4_PHOT_EPADU,
    C4_START_OFFSET_PX,
    C4_START_SCATTER_PX,
    c4_injection_exposure_s,
    read_c4_injection_ci,
)
from jaxcomp.ast.centring import iraf_centroid
from jaxcomp.ast.hst_psf import INSTRUMENT_OF_BAND
from jaxcomp.ast.inject import draw_positions, inject, noisy_stamps
from jaxcomp.ast.photometry import aperture_photometry, magnitude_error
from jaxcomp.ast.pipeline import run_pipeline
from jaxcomp.ast.profiles import reff_pc_to_px
from jaxcomp.ast.settings import PhotometryConfig
from jaxcomp.catalogues import ADAMO17_PUBLISHED_50PCT_NGC628C, BANDS, read_legus

#: Bands with C-4 reference photometry (``data/legus/c4_ngc628c_injection_ci.csv``).
C4_BANDS = ("F336W", "F555W", "F814W")
#: Where the apertures go (see the module docstring).
GEOMETRIES = ("exact", "c4", "iraf")
#: Scatter of the detection positions that the LEGUS pipeline's centring starts from, for
#: clusters at random positions (``iraf`` geometry) [px rms per axis].
LEGUS_START_SCATTER_PX = 0.05
#: With ``--c4-noise``: magnitudes drawn uniformly this far below the band's zeropoint [mag]
#: (C-4's 3 px error < 0.05 keeps 3 px magnitudes brighter than ZP - 6.7; its F555W sample
#: spans 16.2-19.0 = ZP - 9.5 to ZP - 6.7).
C4_MAG_BELOW_ZP = (6.3, 10.3)


def forced_ci(images, field, x, y, band, epadu=None):
    """CI, 3 px magnitude error with the apertures at (x, y) in ``band`` (the pipeline's
    photometry, no recentring: :func:`aperture_centres` places them); the error with IRAF's
    gain ``epadu`` (default the band's exposure time, as LEGUS)."""
    cfg = PhotometryConfig(ci_band=band, centring="none")
    ph = aperture_photometry(images, x, y, dict(field.zeropoints), dict(field.exptimes), cfg)
    r3 = cfg.ci_radii_px[1]
    err3 = magnitude_error(
        ph[f"flux_r{r3:g}_{band}"],
        math.pi * r3 * r3,
        np.asarray(ph[f"skystd_{band}"], float),
        np.asarray(ph[f"nsky_{band}"], float),
        field.exptimes[band] if epadu is None else epadu,
    )
    return np.asarray(ph["ci"], float), err3


def real_ci_stats(real, band, r_pc, geometry):
    """The CI statistics of ``real`` (:func:`read_c4_injection_ci` of ``band``; 3 px error <
    0.05) at the nominal radius that ``r_pc`` stands for (ACS bands with the ``c4``
    geometry: ``r_pc`` / C4_ACS_RADIUS_FACTOR), or None when C-4 has no such radius."""
    nominal = float(r_pc)
    if geometry == "c4" and INSTRUMENT_OF_BAND[band].name == "ACS/WFC":
        nominal /= C4_ACS_RADIUS_FACTOR
    if abs(nominal - round(nominal)) > 1e-3:
        return None
    keep = (real["r_eff_pc"] == round(nominal)) & (real["err3"] < 0.05)
    if not keep.any():
        return None
    return {**_stats(real["ci"][keep]), "r_nominal_pc": int(round(nominal))}


def _real_err3_weights():
    """Histogram (0.005 mag bins on [0, 0.05]) of err3 of the real F555W injections with err3 <
    0.05."""
    e = read_c4_injection_ci("F555W")["err3"]
    edges = np.linspace(0.0, 0.05, 11)
    h, _ = np.histogram(e[e < 0.05], edges)
    return edges, h / h.sum()


def _stats(v, w=None):
    if w is None:
        w = np.ones_like(v)
    order = np.argsort(v)
    cw = np.cumsum(w[order]) / w.sum()

    def q(p):
        return float(v[order][np.searchsorted(cw, p)])

    return {
        "n": int(v.size),
        "median": q(0.5),
        "p16": q(0.16),
        "p84": q(0.84),
        "share_ci_ge_1p4": float(np.sum(w[v >= 1.4]) / w.sum()),
    }


def aperture_centres(image, x, y, exptime, geometry, rng):
    """Aperture centres of clusters injected at (x, y) in one band's ``image`` [px]."""
    if geometry == "exact":
        return x, y
    if geometry == "c4":
        (dx, dy), scatter = C4_START_OFFSET_PX, C4_START_SCATTER_PX
    else:
        (dx, dy), scatter = (0.0, 0.0), LEGUS_START_SCATTER_PX
    x0 = x + dx + rng.normal(0.0, scatter, x.size)
    y0 = y + dy + rng.normal(0.0, scatter, y.size)
    xc, yc, _ = iraf_centroid(image, x0, y0, epadu=exptime)
    return xc, yc


def injected_ci_table(
    radii=(1, 2, 3, 5, 10),
    frames=40,
    seed=0,
    size="small",
    per_frame=25,
    geometry="exact",
    c4_noise=False,
):
    """CI statistics per radius and band (see the module docstring); ``c4_noise``: the
    clusters' shot noise and the errors as C-4 made them (:mod:`jaxcomp.ast.c4_reference`)."""
    field = make_mock_field(size, seed=seed)
    noise_field = field
    if c4_noise:
        t_c4 = {b: c4_injection_exposure_s(field.zeropoints[b]) for b in BANDS}
        noise_field = replace(field, exptimes=t_c4)
    if c4_noise:
        edges, target = _real_err3_weights()
    base = prepare_field(field)
    ss = np.random.SeedSequence(seed, spawn_key=(13,))
    out = {}
    for r_pc, rs in zip(radii, ss.spawn(len(radii))):
        rng = np.random.default_rng(rs)
        r_px = float(reff_pc_to_px(r_pc, field.pixel_scale_arcsec, field.distance_modulus))
        ci = {b: [] for b in BANDS}
        err = {b: [] for b in BANDS}
        for _ in range(frames):
            x, y = draw_positions(
                base.density, field.footprint, per_frame, 3 * r_px, rng, edge_margin_px=5
            )
            if geometry == "c4":
                x, y = np.round(x), np.round(y)
            if c4_noise:  # C-4's error cut keeps only clusters 6.7+ mag brighter than ZP
                mags = {
                    b: field.zeropoints[b] - rng.uniform(*C4_MAG_BELOW_ZP, x.size) for b in BANDS
                }
            else:
                mags = {
                    b: ADAMO17_PUBLISHED_50PCT_NGC628C[b] - rng.uniform(1.5, 5.0, x.size)
                    for b in BANDS
                }
            stamps = noisy_stamps(noise_field, x, y, mags, r_px, rng)
            imgs = inject(field, x, y, mags, r_px, rng, stamps=stamps)
            for b in BANDS:
                epadu = C4_PHOT_EPADU if c4_noise else field.exptimes[b]
                xa, ya = aperture_centres(imgs[b], x, y, epadu, geometry, rng)
                c, e = forced_ci(imgs, field, xa, ya, b, epadu)
                ci[b].append(c)
                err[b].append(e)
        out[r_pc] = {}
        for b in BANDS:
            c = np.concatenate(ci[b])
            e = np.concatenate(err[b])
            keep = np.isfinite(c) & (e < 0.05)
            v = c[keep]
            out[r_pc][b] = {"all": _stats(v)}
            if c4_noise:  # the same error formula as the real sample's: weights are meaningful
                k = np.clip(np.digitize(e[keep], edges) - 1, 0, target.size - 1)
                have = np.bincount(k, minlength=target.size) / k.size
                w = np.divide(target, have, out=np.zeros_like(target), where=have > 0)[k]
                out[r_pc][b]["err_matched"] = _stats(v, w)
    return out


def mock_catalogue_ci(size="small", seed=0):
    """CI percentiles of the mock's class 1-3 sources found by the pipeline, and the real
    catalogue's."""
    from scipy.spatial import cKDTree

    from jaxcomp.ast import compare_with_truth

    field = make_mock_field(size, seed=seed)
    res = run_pipeline(field)
    cat = res.catalogue
    truth = mock_truth(field)
    real = read_legus("ngc628c", classes=None)
    cmp = compare_with_truth(cat, truth)
    out = {"recovery": {k: float(v) for k, v in cmp.items() if np.isscalar(v)}}
    txy = np.column_stack([np.asarray(truth["x"], float), np.asarray(truth["y"], float)])
    d, j = cKDTree(
        np.column_stack([np.asarray(cat["x"], float), np.asarray(cat["y"], float)])
    ).query(txy)
    for k in (1, 2, 3):
        sel = (np.asarray(truth["class_mode"]) == k) & (d < 3)
        ci = np.asarray(cat["ci"], float)[j[sel]]
        ci = ci[np.isfinite(ci)]
        r = np.asarray(real["ci_F555W"], float)[np.asarray(real["class_mode"]) == k]
        r = r[np.isfinite(r)]
        out[f"class {k}"] = {
            "mock_n": int(ci.size),
            "mock_p16_p50_p84": [float(np.percentile(ci, q)) for q in (16, 50, 84)],
            "real_n": int(r.size),
            "real_p16_p50_p84": [float(np.percentile(r, q)) for q in (16, 50, 84)],
        }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=40, help="frames of 25 clusters per radius")
    ap.add_argument("--radii", default="1,2,3,5,10", help="r_eff [pc], comma separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--skip-catalogue", action="store_true")
    ap.add_argument("--geometry", choices=GEOMETRIES, default="exact", help="see the docstring")
    ap.add_argument(
        "--c4-noise",
        action="store_true",
        help="the clusters' shot noise and the errors as C-4 made them (see the docstring)",
    )
    args = ap.parse_args(argv)
    radii = tuple(float(v) if "." in v else int(v) for v in args.radii.split(","))
    table = injected_ci_table(
        radii, args.frames, args.seed, geometry=args.geometry, c4_noise=args.c4_noise
    )

    def fmt(s):
        return (
            f"{s['median']:.3f}, {s['p16']:.3f}-{s['p84']:.3f}, {s['share_ci_ge_1p4']:.2f}"
            if s
            else ""
        )

    print(
        "| band | r_eff [pc] | n | all: median CI, 16-84th, share CI >= 1.4 | err-matched: the "
        "same | real (nominal radius, n): the same |"
    )
    print("|---|---|---|---|---|---|")
    real = {}
    for b in BANDS:
        real_b = read_c4_injection_ci(b) if b in C4_BANDS else None
        for r in radii:
            s, m = table[r][b]["all"], table[r][b].get("err_matched")
            real[(b, r)] = real_ci_stats(real_b, b, r, args.geometry) if real_b else None
            ref = real[(b, r)]
            tag = f"{fmt(ref)} ({ref['r_nominal_pc']} pc, {ref['n']})" if ref else ""
            print(f"| {b} | {r} | {s['n']} | {fmt(s)} | {fmt(m)} | {tag} |")
    result = {
        "injected": {str(r): v for r, v in table.items()},
        "real": {f"{b} {r}": v for (b, r), v in real.items() if v},
        "seed": args.seed,
        "frames": args.frames,
        "geometry": args.geometry,
        "c4_noise": args.c4_noise,
    }
    if not args.skip_catalogue:
        result["catalogue"] = mock_catalogue_ci(seed=args.seed)
        print("recovery of the placed sources:", result["catalogue"]["recovery"])
        for k, v in result["catalogue"].items():
            if k == "recovery":
                continue
            print(
                k,
                "mock",
                np.round(v["mock_p16_p50_p84"], 3),
                v["mock_n"],
                "real",
                np.round(v["real_p16_p50_p84"], 3),
                v["real_n"],
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
