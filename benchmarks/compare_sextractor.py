"""Does jaxcomp's detection agree with the real SExtractor? (benchmark, not a test)

jaxcomp maps the LEGUS SExtractor configuration of the white-light detection onto
photutils parameter by parameter (:data:`jaxcomp.ast.pipeline.SEXTRACTOR_TO_PHOTUTILS`)
and also ports SExtractor's own background, deblending and CLEAN
(:data:`jaxcomp.ast.pipeline.SEXTRACTOR_PORT`). This script runs the real SExtractor
(Debian's ``source-extractor``, 2.25) with the LEGUS configuration on the very same
white-light images and compares the recovery labels:

1. The mock NGC 628C field (default: the 1500 x 1500 px "small" crop of the busiest
   region) and its pre-injection products (:func:`jaxcomp.ast.inject.prepare_field`).
2. Artificial-cluster frames exactly as a campaign runs them: library clusters
   (:func:`jaxcomp.library.generate_library`), one r_eff per frame, the campaign's
   per-frame seeds, :func:`jaxcomp.ast.inject.run_frame` (positions, injection with shot
   noise, the whole jaxcomp pipeline, the 3 px match ignoring pre-existing sources).
   The other jaxcomp configurations (``--configs``) rerun the pipeline on the same
   injected images.
3. On each injected frame (and once on the unmodified one, for the pre-injection
   catalogue) the white light that jaxcomp detects on (:func:`jaxcomp.ast.pipeline.white_light`)
   is written to FITS and given to ``source-extractor`` with the LEGUS configuration
   (DETECT_MINAREA 10, DETECT_THRESH 20, ANALYSIS_THRESH 25, FILTER N, DEBLEND_NTHRESH 32,
   DEBLEND_MINCONT 0.005, BACK_SIZE 30, BACK_FILTERSIZE 1, GAIN 1.53; every other
   parameter at SExtractor's default, e.g. CLEAN Y, WEIGHT_TYPE NONE, THRESH_TYPE RELATIVE).
   SExtractor's positions (X_IMAGE - 1, Y_IMAGE - 1) then go through jaxcomp's own
   downstream steps: aperture photometry in the five bands (same aperture corrections),
   the cuts, and :func:`jaxcomp.ast.pipeline.match_injected` against SExtractor's own
   pre-injection catalogue. So the labels of an injected cluster differ only through
   detection.
4. Reports, per jaxcomp configuration, the number of injected clusters, the fraction
   whose labels agree at every stage (``detected`` = the detection step alone, ...,
   ``C`` = the final label), the confusion matrices, and where they disagree
   (injected F555W magnitude, r_eff; the disagreeing clusters are listed in the JSON).
5. On the *unmodified* mock (default: the full LEGUS-size frame, where an earlier
   measurement found 45% of the class 1-3 sources recovered) every detector's final
   catalogue is compared with the sources placed in the mock
   (:func:`jaxcomp.ast.mock.compare_with_truth`).

Configurations (``--configs``): ``default`` (jaxcomp's default, photutils mapping with
DETECT_THRESH x the global RMS), ``former`` (the mapping before 2026-12: per-pixel RMS
map), ``sextractor_port`` (:data:`~jaxcomp.ast.pipeline.SEXTRACTOR_PORT`, CLEAN as
``--clean``).

Usage::

    sudo apt-get install source-extractor   # Debian/Ubuntu; the binary is `source-extractor`
    python benchmarks/compare_sextractor.py                    # ~7 min on 2 cores (6000 clusters +
    full frame)
    python benchmarks/compare_sextractor.py --quick            # ~1 min: 2 frames, no full frame
    python benchmarks/compare_sextractor.py --json out.json
    python benchmarks/compare_sextractor.py --clean N --configs default sextractor_port

``source-extractor`` is not a jaxcomp dependency: without it the script stops with a
message saying how to install it (``$SEXTRACTOR`` may name the binary) and exit code 2.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core per process
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, load_average, n_cores  # noqa: E402

from jaxcomp.ast.settings import LEGUS_SEXTRACTOR  # noqa: E402

#: The LEGUS white-light detection configuration (Adamo et al. 2017) as SExtractor reads it:
#: jaxcomp's one copy (:data:`jaxcomp.ast.settings.LEGUS_SEXTRACTOR`), numbers as text.
LEGUS_SEX = {
    key: value if isinstance(value, str) else f"{value:g}"
    for key, value in LEGUS_SEXTRACTOR.items()
}

#: Everything else the run needs; SExtractor defaults where the LEGUS configuration is silent.
OTHER_SEX = {
    "DETECT_TYPE": "CCD",
    "THRESH_TYPE": "RELATIVE",  # thresholds in units of the background RMS (default)
    "WEIGHT_TYPE": "NONE",  # default: no weight map
    "CLEAN": "Y",  # default (overridden by --clean)
    "CLEAN_PARAM": "1.0",  # default
    "MASK_TYPE": "CORRECT",  # default
    "BACK_TYPE": "AUTO",
    "BACKPHOTO_TYPE": "GLOBAL",
    "SATUR_LEVEL": "1e20",  # no saturation in the white light
    "MAG_ZEROPOINT": "0.0",
    "PIXEL_SCALE": "0.0396",
    "SEEING_FWHM": "0.08",
    "MEMORY_OBJSTACK": "60000",  # room for the full 7040 x 6400 frame
    "MEMORY_PIXSTACK": "20000000",
    "MEMORY_BUFSIZE": "4096",
    "VERBOSE_TYPE": "NORMAL",
    "WRITE_XML": "N",
    "NTHREADS": "1",
}

PARAMS = (
    "NUMBER",
    "X_IMAGE",
    "Y_IMAGE",
    "XPEAK_IMAGE",
    "YPEAK_IMAGE",
    "ISOAREA_IMAGE",
    "FLUX_ISO",
    "FLAGS",
    "BACKGROUND",
    "THRESHOLD",
)

#: SExtractor's default 3x3 pyramidal filter; written for completeness, unused with FILTER N.
CONV = (
    "CONV NORM\n# 3x3 ``all-ground'' convolution mask with FWHM = 2 pixels (unused: FILTER N)\n"
    "1 2 1\n2 4 2\n1 2 1\n"
)


class SExtractorMissing(RuntimeError):
    pass


def find_sextractor() -> str:
    """Path of the SExtractor binary, or raise :class:`SExtractorMissing` with install advice."""
    for name in (os.environ.get("SEXTRACTOR"), "source-extractor", "sex"):
        if name and shutil.which(name):
            exe = shutil.which(name)
            try:
                out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=30)
            except OSError:
                continue
            if "extractor" in (out.stdout + out.stderr).lower():
                return exe
    raise SExtractorMissing(
        "SExtractor is not installed (no `source-extractor` or `sex` on PATH). It is not a jaxcomp "
        "dependency; install it to run this benchmark, e.g. on Debian/Ubuntu:\n"
        "    sudo apt-get update && sudo apt-get install -y source-extractor\n"
        "or point $SEXTRACTOR at an existing binary."
    )


def sextractor_version(exe: str) -> str:
    out = subprocess.run([exe, "-v"], capture_output=True, text=True)
    return (out.stdout + out.stderr).strip()


def run_sextractor(
    exe: str, image: np.ndarray, workdir: Path, *, clean: bool = True, checkimages: bool = False
):
    """Run SExtractor with the LEGUS configuration on ``image``; return (Table, info).

    The table has ``x, y`` (0-based: X_IMAGE - 1, Y_IMAGE - 1), ``area_px`` (ISOAREA_IMAGE),
    ``wl_flux`` (FLUX_ISO), ``flags`` and ``source_id``; ``info`` the global background,
    RMS and threshold SExtractor reported, and its wall time.
    """
    from astropy.io import fits
    from astropy.table import Table

    workdir.mkdir(parents=True, exist_ok=True)
    conf = dict(LEGUS_SEX)
    conf.update(OTHER_SEX)
    conf["CLEAN"] = "Y" if clean else "N"
    conf.update(
        {
            "CATALOG_NAME": str(workdir / "cat.fits"),
            "CATALOG_TYPE": "FITS_1.0",
            "PARAMETERS_NAME": str(workdir / "legus.param"),
            "FILTER_NAME": str(workdir / "legus.conv"),
        }
    )
    if checkimages:
        conf["CHECKIMAGE_TYPE"] = "BACKGROUND,BACKGROUND_RMS,SEGMENTATION"
        conf["CHECKIMAGE_NAME"] = ",".join(
            str(workdir / n) for n in ("back.fits", "rms.fits", "seg.fits")
        )
    else:
        conf["CHECKIMAGE_TYPE"] = "NONE"
    (workdir / "legus.sex").write_text("".join(f"{k:18s} {v}\n" for k, v in conf.items()))
    (workdir / "legus.param").write_text("\n".join(PARAMS) + "\n")
    (workdir / "legus.conv").write_text(CONV)
    fits.writeto(workdir / "wl.fits", np.ascontiguousarray(image, dtype=np.float32), overwrite=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [exe, str(workdir / "wl.fits"), "-c", str(workdir / "legus.sex")],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not (workdir / "cat.fits").is_file():
        raise RuntimeError(
            f"source-extractor failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    raw = Table.read(workdir / "cat.fits", hdu=1)
    log = proc.stderr
    m = re.findall(
        r"Background:\s*([-\d.eE+]+)\s+RMS:\s*([-\d.eE+]+)\s*/\s*Threshold:\s*([-\d.eE+]+)", log
    )
    info = {"wall_s": wall, "n_sources": len(raw)}
    if m:
        info.update(background=float(m[-1][0]), rms=float(m[-1][1]), threshold=float(m[-1][2]))
    cat = Table()
    cat["source_id"] = np.asarray(raw["NUMBER"], np.int64)
    cat["x"] = np.asarray(raw["X_IMAGE"], np.float64) - 1.0
    cat["y"] = np.asarray(raw["Y_IMAGE"], np.float64) - 1.0
    cat["area_px"] = np.asarray(raw["ISOAREA_IMAGE"], np.int64)
    cat["wl_flux"] = np.asarray(raw["FLUX_ISO"], np.float64)
    cat["flags"] = np.asarray(raw["FLAGS"], np.int64)
    return cat, info


def sextractor_catalogue(exe, field, images, apcor, config, workdir, *, clean=True):
    """SExtractor detections on the white light of ``images`` + jaxcomp's photometry and cuts."""
    from jaxcomp.ast.pipeline import aperture_photometry, apply_cuts, white_light

    wl = white_light(images, field.footprint)
    det, info = run_sextractor(exe, wl, workdir, clean=clean)
    phot = aperture_photometry(
        images,
        det["x"],
        det["y"],
        field.zeropoints,
        field.exptimes,
        config.photometry,
        apcor,
        field.footprint,
    )
    for col in phot.colnames:
        if col not in ("x", "y"):
            det[col] = phot[col]
    apply_cuts(det, field.distance_modulus, config.cuts)
    return det, info


def _frame_seed(seed: int, frame: int) -> np.random.SeedSequence:
    """The campaign's per-frame seed (jaxcomp.ast.campaign_executors._frame_seed)."""
    try:
        from jaxcomp.ast.campaign_executors import _frame_seed as fs

        return fs(seed, frame)
    except ImportError:  # pragma: no cover
        return np.random.SeedSequence(int(seed), spawn_key=(1, int(frame)))


#: The recovery flags compared: the cumulative stages of the pipeline, then the final label.
STAGES_ALL = ("detected", "passes_err", "passes_ci", "passes_nband", "passes_mv", "C")


def _confusion(a: np.ndarray, b: np.ndarray) -> dict:
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    return {
        "both_1": int(np.sum(a & b)),
        "jaxcomp_1_sextractor_0": int(np.sum(a & ~b)),
        "jaxcomp_0_sextractor_1": int(np.sum(~a & b)),
        "both_0": int(np.sum(~a & ~b)),
    }


def _agreement(jl: dict, sl: dict, stages) -> dict:
    out = {}
    for s in stages:
        a, b = np.asarray(jl[s], bool), np.asarray(sl[s], bool)
        either = a | b
        out[s] = {
            "agree": float(np.mean(a == b)) if a.size else float("nan"),
            "agree_among_recovered_by_either": float(np.mean(a[either] == b[either]))
            if either.any()
            else float("nan"),
            "recovered_jaxcomp": float(np.mean(a)) if a.size else float("nan"),
            "recovered_sextractor": float(np.mean(b)) if b.size else float("nan"),
            "confusion": _confusion(a, b),
        }
    return out


def _configs(names, clean: bool):
    """The jaxcomp pipeline configurations compared with SExtractor, by name."""
    from jaxcomp.ast.pipeline import DEFAULT_CONFIG, SEXTRACTOR_PORT

    out = {}
    for name in names:
        if name == "default":
            out[name] = DEFAULT_CONFIG
        elif name == "former":
            out[name] = dataclasses.replace(
                DEFAULT_CONFIG,
                sextractor=dataclasses.replace(DEFAULT_CONFIG.sextractor, thresh_rms="map"),
            )
        elif name == "sextractor_port":
            out[name] = dataclasses.replace(
                SEXTRACTOR_PORT,
                sextractor=dataclasses.replace(SEXTRACTOR_PORT.sextractor, clean=clean),
            )
        else:
            raise ValueError(f"unknown configuration {name!r}")
    return out


CONFIG_DOC = {
    "default": "jaxcomp's default mapping (photutils background and deblending, DETECT_THRESH x "
    "global RMS)",
    "former": "jaxcomp's mapping before 2026-12 (DETECT_THRESH x the per-pixel background RMS map)",
    "sextractor_port": "jaxcomp with its ports of SExtractor's background, deblending and CLEAN "
    "(pipeline.SEXTRACTOR_PORT; CLEAN as --clean)",
}


def _truth(field, catalogues: dict, label: str) -> dict:
    """Class-by-class recovery of the mock's placed sources by each detector (unmodified frame)."""
    from jaxcomp.ast.mock import compare_with_truth, mock_truth

    truth = mock_truth(field)
    cls = np.asarray(truth["class_mode"])
    n13 = int(np.isin(cls, (1, 2, 3)).sum())
    out = {"field": {"name": field.name, "shape": list(field.shape), "label": label}}
    for name, cat in catalogues.items():
        c = compare_with_truth(cat, truth)
        det13 = [
            c["by_class"][k]["completeness_detected"] * c["by_class"][k]["n"]
            for k in (1, 2, 3)
            if k in c["by_class"]
        ]
        c["completeness_detected_class1to3"] = float(sum(det13) / n13) if n13 else float("nan")
        c["by_class"] = {str(k): v for k, v in c["by_class"].items()}
        out[name] = c
    print(
        f"\nUnmodified mock ({label}, {field.shape[0]} x {field.shape[1]} px): placed sources "
        f"{out[next(iter(catalogues))]['n_placed']} ({n13} of class 1-3)"
    )
    print(
        f"  {'':16s} {'detections':>10s} {'final':>6s} {'cl.1-3 det':>10s} {'cl.1-3 final':>12s} "
        f"{'cl.1-4 final':>12s} {'purity':>7s}   final by class 1 / 2 / 3 / 4"
    )
    for name in catalogues:
        c = out[name]
        bc = " / ".join(
            f"{c['by_class'][k]['completeness_final']:.3f}"
            for k in ("1", "2", "3", "4")
            if k in c["by_class"]
        )
        print(
            f"  {name:16s} {c['n_detected']:10d} {c['n_final']:6d} "
            f"{c['completeness_detected_class1to3']:10.3f} "
            f"{c['completeness_final_class1to3']:12.3f} {c['completeness_final_class1to4']:12.3f} "
            f"{c['purity_final']:7.3f}   {bc}"
        )
    return out


def _unmodified(exe, field, configs, workdir, clean, label):
    from jaxcomp.ast.pipeline import run_pipeline

    cats, secs = {}, {}
    apcor = None
    for name, cfg in configs.items():
        t0 = time.perf_counter()
        res = run_pipeline(field, config=cfg)
        secs[name] = time.perf_counter() - t0
        cats[name] = res.catalogue
        apcor = res.aperture_corrections
    t0 = time.perf_counter()
    sx, info = sextractor_catalogue(
        exe, field, field.images, apcor, next(iter(configs.values())), workdir, clean=clean
    )
    secs["sextractor"] = time.perf_counter() - t0
    cats["sextractor"] = sx
    out = _truth(field, cats, label)
    out["sextractor_global"] = {k: info.get(k) for k in ("background", "rms", "threshold")}
    out["seconds"] = secs
    return out


def _summary(cols: dict, name: str, reffs, max_list: int) -> dict:
    """Agreement of configuration ``name`` with SExtractor over all injected clusters."""
    stages = list(STAGES_ALL)
    jl = {s: cols[f"{name}:{s}"] for s in stages}
    sl = {s: cols[f"sextractor:{s}"] for s in stages}
    mv = cols["mag_F555W"]
    out = {"agreement": _agreement(jl, sl, stages)}
    out["agreement_by_reff"] = {
        f"{r:g}": {
            s: float(np.mean(jl[s][cols["r_eff_pc"] == r] == sl[s][cols["r_eff_pc"] == r]))
            for s in ("detected", "C")
        }
        | {"n": int(np.sum(cols["r_eff_pc"] == r))}
        for r in reffs
    }
    by_mag = []
    for lo in np.arange(14.0, 31.0, 1.0):
        sel = (mv >= lo) & (mv < lo + 1)
        if sel.sum():
            by_mag.append(
                {
                    "mag_F555W": [float(lo), float(lo + 1)],
                    "n": int(sel.sum()),
                    "recovered_C_jaxcomp": float(jl["C"][sel].mean()),
                    "recovered_C_sextractor": float(sl["C"][sel].mean()),
                    "agree_detected": float(np.mean(jl["detected"][sel] == sl["detected"][sel])),
                    "agree_C": float(np.mean(jl["C"][sel] == sl["C"][sel])),
                }
            )
    out["agreement_by_mag_F555W"] = by_mag
    both = jl["C"] & sl["C"]
    dpos = np.hypot(
        cols[f"{name}:x_meas"] - cols["sextractor:x_meas"],
        cols[f"{name}:y_meas"] - cols["sextractor:y_meas"],
    )[both]
    out["position_difference_px_both_recovered"] = (
        {
            "n": int(both.sum()),
            "median": float(np.median(dpos)),
            "p95": float(np.percentile(dpos, 95)),
            "max": float(np.max(dpos)),
        }
        if both.any()
        else {"n": 0}
    )
    dis = {}
    for s in ("detected", "C"):
        d = jl[s] != sl[s]
        dis[s] = {
            "n": int(d.sum()),
            "jaxcomp_only": int(np.sum(jl[s] & ~sl[s])),
            "sextractor_only": int(np.sum(~jl[s] & sl[s])),
            "by_reff": {f"{r:g}": int(np.sum(d & (cols["r_eff_pc"] == r))) for r in reffs},
            "mag_F555W_percentiles_5_50_95": (
                [float(v) for v in np.percentile(mv[d], [5, 50, 95])] if d.any() else []
            ),
        }
    out["disagreements"] = dis
    d_any = (jl["detected"] != sl["detected"]) | (jl["C"] != sl["C"])
    listed = []
    for i in np.nonzero(d_any)[0][:max_list]:
        ci_j, ci_s = cols[f"{name}:ci"][i], cols["sextractor:ci"][i]
        listed.append(
            {
                "frame": int(cols["frame"][i]),
                "cluster_id": int(cols["cluster_id"][i]),
                "r_eff_pc": float(cols["r_eff_pc"][i]),
                "x": round(float(cols["x"][i]), 2),
                "y": round(float(cols["y"][i]), 2),
                "mag_F555W": round(float(mv[i]), 3),
                "mag_F435W": round(float(cols["mag_F435W"][i]), 3),
                "mag_F814W": round(float(cols["mag_F814W"][i]), 3),
                "jaxcomp": {s: bool(jl[s][i]) for s in STAGES_ALL[:-1]},
                "sextractor": {s: bool(sl[s][i]) for s in STAGES_ALL[:-1]},
                "ci_jaxcomp": None if not np.isfinite(ci_j) else round(float(ci_j), 3),
                "ci_sextractor": None if not np.isfinite(ci_s) else round(float(ci_s), 3),
            }
        )
    out["disagreement_list"] = listed
    out["disagreement_list_truncated"] = bool(d_any.sum() > max_list)
    return out


def _print_summary(name: str, summ: dict, n: int):
    print(f"\n[{name}] {CONFIG_DOC.get(name, '')}")
    print(
        f"  {'stage':14s} {'agree':>7s} {'agree|either':>12s} {'rec. jaxcomp':>12s} "
        f"{'rec. SExtr.':>11s}   "
        "confusion (both 1 / jaxcomp only / SExtractor only / both 0)"
    )
    for s in STAGES_ALL:
        g = summ["agreement"][s]
        c = g["confusion"]
        print(
            f"  {s:14s} {g['agree']:7.4f} {g['agree_among_recovered_by_either']:12.4f} "
            f"{g['recovered_jaxcomp']:12.4f} {g['recovered_sextractor']:11.4f}   "
            f"{c['both_1']} / {c['jaxcomp_1_sextractor_0']} / {c['jaxcomp_0_sextractor_1']} / "
            f"{c['both_0']}"
        )
    print(
        "  by r_eff [pc]: "
        + "; ".join(
            f"{k}: det {v['detected']:.4f}, C {v['C']:.4f}"
            for k, v in summ["agreement_by_reff"].items()
        )
    )
    print(
        "  by injected F555W magnitude (n, recovered C jaxcomp / SExtractor, agreement detected / "
        "C):"
    )
    for row in summ["agreement_by_mag_F555W"]:
        lo, hi = row["mag_F555W"]
        print(
            f"    {lo:4.1f}-{hi:4.1f}: n={row['n']:5d}  C {row['recovered_C_jaxcomp']:.3f} / "
            f"{row['recovered_C_sextractor']:.3f}   agree {row['agree_detected']:.4f} / "
            f"{row['agree_C']:.4f}"
        )
    for s in ("detected", "C"):
        d = summ["disagreements"][s]
        pct = ", ".join(f"{v:.2f}" for v in d["mag_F555W_percentiles_5_50_95"])
        print(
            f"  disagreements ({s}): {d['n']} (jaxcomp only {d['jaxcomp_only']}, SExtractor only "
            f"{d['sextractor_only']}); by r_eff {d['by_reff']}; F555W 5/50/95% [{pct}]"
        )
    pdiff = summ["position_difference_px_both_recovered"]
    if pdiff["n"]:
        print(
            f"  measured positions of clusters both recovered: |dxy| median {pdiff['median']:.3f} "
            "px, "
            f"95% {pdiff['p95']:.3f} px, max {pdiff['max']:.3f} px"
        )
    ok = summ["agreement"]["C"]["agree"] >= 0.95 and summ["agreement"]["detected"]["agree"] >= 0.95
    print(
        f"  target (>= 95% agreement, detection step and final label): {'met' if ok else 'NOT met'}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--size",
        default="small",
        help="mock crop for the injection frames: small, legus or <ny>x<nx> (default small)",
    )
    p.add_argument(
        "--truth-size",
        default="legus",
        help="frame for the unmodified-mock comparison with the placed sources: legus (default, "
        "the "
        "full frame), small, <ny>x<nx>, or none",
    )
    p.add_argument(
        "--reff",
        type=float,
        nargs="+",
        default=[1, 2, 3, 5, 7, 10],
        help="effective radii [pc], one per frame (default 1 2 3 5 7 10)",
    )
    p.add_argument("--frames-per-reff", type=int, default=2)
    p.add_argument(
        "--clusters", type=int, default=500, help="clusters per frame (default 500, as the paper)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--clean",
        choices=("Y", "N"),
        default="Y",
        help="SExtractor CLEAN (default Y: SExtractor's default; the LEGUS configuration is "
        "silent); "
        "the sextractor_port configuration follows it",
    )
    p.add_argument(
        "--configs",
        nargs="+",
        default=["default", "former", "sextractor_port"],
        choices=["default", "former", "sextractor_port"],
        help="jaxcomp configurations to compare (default: all three; the first one runs the "
        "frames)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="r_eff 2 and 6 pc, one frame each, no full-frame comparison (~2 min)",
    )
    p.add_argument(
        "--max-disagreements",
        type=int,
        default=300,
        help="disagreeing clusters listed per configuration",
    )
    p.add_argument("--keep-tmp", help="keep SExtractor's working files in this directory")
    p.add_argument("--json", help="write the results to this JSON file")
    a = p.parse_args(argv)

    try:
        exe = find_sextractor()
    except SExtractorMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from jaxcomp.ast.inject import prepare_field, run_frame
    from jaxcomp.ast.mock import make_mock_field
    from jaxcomp.ast.pipeline import match_injected, run_pipeline
    from jaxcomp.cli.argtypes import field_size as _size
    from jaxcomp.library import LibraryConfig, generate_library

    if a.quick:
        a.reff, a.frames_per_reff, a.truth_size = [2.0, 6.0], 1, "none"
    clean = a.clean == "Y"
    configs = _configs(list(dict.fromkeys(a.configs)), clean)
    first = next(iter(configs))
    tmp_root = Path(a.keep_tmp) if a.keep_tmp else Path(tempfile.mkdtemp(prefix="jaxcomp_sex_"))
    tmp_root.mkdir(parents=True, exist_ok=True)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "machine": {
            "cpu": cpu_model(),
            "cores": n_cores(),
            "load_average_at_start": load_average(),
        },
        "sextractor": {
            "binary": exe,
            "version": sextractor_version(exe),
            "config": {**LEGUS_SEX, **OTHER_SEX, "CLEAN": a.clean},
            "params": list(PARAMS),
        },
        "configs": {
            name: {"doc": CONFIG_DOC[name], "sextractor_config": dataclasses.asdict(cfg.sextractor)}
            for name, cfg in configs.items()
        },
        "injection": {
            "size": a.size,
            "r_eff_pc": a.reff,
            "frames_per_reff": a.frames_per_reff,
            "clusters_per_frame": a.clusters,
            "seed": a.seed,
            "library": "jaxcomp.library.generate_library(LibraryConfig(), seed=seed+1), r_eff set "
            "per frame",
            "frame_seeds": "jaxcomp.ast.campaign_executors._frame_seed(seed, frame)",
        },
        "stages": list(STAGES_ALL),
    }
    print(f"SExtractor: {result['sextractor']['version']} ({exe}); CLEAN {a.clean}")
    for name in configs:
        print(f"jaxcomp [{name}]: {CONFIG_DOC[name]}")
    t_start = time.perf_counter()

    try:
        if a.truth_size != "none":
            tfield = make_mock_field(_size(a.truth_size), seed=a.seed)
            result["unmodified_mock"] = _unmodified(
                exe, tfield, configs, tmp_root / "truth", clean, a.truth_size
            )
            del tfield

        field = make_mock_field(_size(a.size), seed=a.seed)
        bases = {name: prepare_field(field, cfg) for name, cfg in configs.items()}
        apcor = bases[first].aperture_corrections
        sx_pre, info0 = sextractor_catalogue(
            exe, field, field.images, apcor, configs[first], tmp_root / "pre", clean=clean
        )
        if a.truth_size != a.size:
            cats = {name: b.catalogue for name, b in bases.items()}
            cats["sextractor"] = sx_pre
            result["unmodified_injection_field"] = _truth(field, cats, a.size)
        print(
            f"\nInjection field {field.shape}: pre-injection detections "
            + ", ".join(f"{k} {len(b.catalogue)}" for k, b in bases.items())
            + f", SExtractor {len(sx_pre)} (its global background {info0.get('background')}, RMS "
            f"{info0.get('rms')}, "
            f"threshold {info0.get('threshold')})"
        )

        n_frames = len(a.reff) * a.frames_per_reff
        lib = generate_library(n_frames * a.clusters, LibraryConfig(), seed=a.seed + 1)
        parts, frame_info = [], []
        frame = 0
        for r in a.reff:
            for _ in range(a.frames_per_reff):
                rows = lib.iloc[frame * a.clusters : (frame + 1) * a.clusters].copy()
                rows["r_eff_pc"] = float(r)
                info = {
                    "frame": frame,
                    "r_eff_pc": float(r),
                    "n": len(rows),
                    "sources": {},
                    "seconds": {},
                }
                t0 = time.perf_counter()
                lab, images = run_frame(
                    field,
                    rows,
                    float(r),
                    seed=_frame_seed(a.seed, frame),
                    frame=frame,
                    config=configs[first],
                    baseline=bases[first],
                    return_images=True,
                )
                info["seconds"][first] = time.perf_counter() - t0
                info["sources"][first] = int(lab.meta["n_sources_post"])
                x, y = np.asarray(lab["x"], float), np.asarray(lab["y"], float)
                labels = {first: lab}
                for name, cfg in configs.items():
                    if name == first:
                        continue
                    t0 = time.perf_counter()
                    res = run_pipeline(field, images, cfg)
                    labels[name] = match_injected(
                        x, y, res.catalogue, bases[name].catalogue, cfg.cuts.match_radius_px
                    )
                    info["seconds"][name] = time.perf_counter() - t0
                    info["sources"][name] = len(res.catalogue)
                t0 = time.perf_counter()
                sx_post, sinfo = sextractor_catalogue(
                    exe,
                    field,
                    images,
                    apcor,
                    configs[first],
                    tmp_root / f"frame{frame}",
                    clean=clean,
                )
                labels["sextractor"] = match_injected(
                    x, y, sx_post, sx_pre, configs[first].cuts.match_radius_px
                )
                info["seconds"]["sextractor"] = time.perf_counter() - t0
                info["sources"]["sextractor"] = len(sx_post)
                rec = {
                    "frame": np.full(len(lab), frame),
                    "r_eff_pc": np.full(len(lab), float(r)),
                    "cluster_id": np.asarray(lab["cluster_id"]),
                    "x": x,
                    "y": y,
                }
                for b in ("F275W", "F336W", "F435W", "F555W", "F814W"):
                    rec[f"mag_{b}"] = np.asarray(lab[f"mag_{b}"], float)
                for name, t in labels.items():
                    for s in STAGES_ALL:
                        rec[f"{name}:{s}"] = np.asarray(t[s], bool)
                    for col, src in (("x_meas", "x_meas"), ("y_meas", "y_meas"), ("ci", "ci_meas")):
                        rec[f"{name}:{col}"] = np.asarray(t[src], float)
                parts.append(rec)
                info["agree_C"] = {
                    name: float(np.mean(rec[f"{name}:C"] == rec["sextractor:C"]))
                    for name in configs
                }
                info["agree_detected"] = {
                    name: float(np.mean(rec[f"{name}:detected"] == rec["sextractor:detected"]))
                    for name in configs
                }
                frame_info.append(info)
                print(
                    f"frame {frame} (r_eff {r:g} pc): sources "
                    + ", ".join(f"{k} {v}" for k, v in info["sources"].items())
                    + "; agreement detected/C "
                    + ", ".join(
                        f"{k} {info['agree_detected'][k]:.3f}/{info['agree_C'][k]:.3f}"
                        for k in configs
                    )
                    + "; s "
                    + ", ".join(f"{k} {v:.1f}" for k, v in info["seconds"].items()),
                    flush=True,
                )
                if not a.keep_tmp:
                    shutil.rmtree(tmp_root / f"frame{frame}", ignore_errors=True)
                frame += 1
    finally:
        if not a.keep_tmp:
            shutil.rmtree(tmp_root, ignore_errors=True)

    cols = {k: np.concatenate([r[k] for r in parts]) for k in parts[0]}
    n = int(cols["frame"].size)
    result["frames"] = frame_info
    result["n_injected"] = n
    result["results"] = {
        name: _summary(cols, name, a.reff, a.max_disagreements) for name in configs
    }
    result["seconds_total"] = time.perf_counter() - t_start

    print(
        f"\n{n} injected clusters ({len(frame_info)} frames of {a.clusters}, r_eff "
        f"{', '.join(f'{r:g}' for r in a.reff)} pc) on the {a.size} mock; SExtractor CLEAN "
        f"{a.clean}"
    )
    for name in configs:
        _print_summary(name, result["results"][name], n)
    print(f"\ntotal {result['seconds_total']:.0f} s")
    if a.json:
        path = Path(a.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
