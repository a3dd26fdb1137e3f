"""Calibrate a mock NGC 628 field's noise against the Adamo+2017 single-band recovery magnitudes.

For each band, the effective background B (counts/s/px; see :mod:`jaxcomp.ast.mock`)
is adjusted until classical single-band artificial cluster tests on the mock
(:mod:`jaxcomp.ast.single_band`, ``ADAMO17_RECIPE``) reach 50% recovery at the
Adamo et al. (2017) magnitude of that band. In the background-limited regime the
flux limit scales as sqrt(B), so m50 moves by -1.25 log10(B): the first steps use that
scaling, later steps a secant in log B. All evaluations of a band use the same windows,
clusters and noise (common random numbers), so m50(B) is smooth in B.

Then an independent check with another seed measures m50 on the calibrated mock, and
the constants are written with their provenance to the pointing's file,
``data/mock/ngc628c_mock_noise.json`` or ``data/mock/ngc628e_mock_noise.json`` (read by
``jaxcomp.ast.pointing``). Usage::

    OPENBLAS_NUM_THREADS=1 python scripts/calibrate_mock_noise.py [--pointing ngc628e]
        [--windows 100] [--plot fig.png]

About 5-10 minutes on one core with the defaults.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from jaxcomp._data import data_path
from jaxcomp._io import atomic_write_text
from jaxcomp._version import __version__
from jaxcomp.ast import mock, mock_stars
from jaxcomp.ast.pointing import (
    MOCK_NOISE_CORRELATION,
    MOCK_POINTINGS,
    mock_pointing,
    mock_psf_digest,
)
from jaxcomp.ast.single_band import ADAMO17_RECIPE, fit_m50, mock_single_band_test
from jaxcomp.catalogues import BANDS, read_adamo17_completeness


def calibrate_band(
    band: str,
    start: float,
    n_windows: int,
    seed: int,
    iterations: int,
    tol: float,
    log=print,
    pointing: str = "ngc628c",
) -> tuple[float, list[dict]]:
    target = mock_pointing(pointing).m50_target[band]
    history = []
    b = float(start)
    for it in range(iterations):
        t0 = time.perf_counter()
        tab = mock_single_band_test(band, n_windows, seed, background_rate=b, pointing=pointing)
        fit = fit_m50(tab["mag"], tab["recovered"])
        history.append(
            {
                "background_rate": b,
                "m50": fit["m50"],
                "width": fit["width"],
                "p_max": fit["p_max"],
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        log(
            f"  {band} iter {it}: B = {b:.5g} counts/s/px -> m50 = {fit['m50']:.3f} (target "
            f"{target:.2f}, "
            f"width {fit['width']:.3f}, p_max {fit['p_max']:.3f}, {history[-1]['seconds']} s)"
        )
        delta = fit["m50"] - target
        if abs(delta) < tol:
            break
        if len(history) >= 2 and history[-2]["m50"] != fit["m50"]:
            # secant in log B
            l1, l2 = math.log(history[-2]["background_rate"]), math.log(b)
            m1, m2 = history[-2]["m50"], fit["m50"]
            slope = (m2 - m1) / (l2 - l1)
            if slope < -0.2:  # m50 must fall as B grows (background-limited: -1.086)
                b = math.exp(l2 - delta / slope)
                continue
        b *= 10.0 ** (delta / 1.25)
    best = min(history, key=lambda h: abs(h["m50"] - target))
    return best["background_rate"], history


def plot_comparison(results: dict, path: Path, pointing: str = "ngc628c"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxcomp._io import atomic_savefig

    adamo = read_adamo17_completeness(pointing)
    targets = mock_pointing(pointing).m50_target
    bands = [b for b in BANDS if b in results]  # the bands calibrated in this run
    fig, axes = plt.subplots(
        1, len(bands), figsize=(3.4 * len(bands), 3.4), sharey=True, squeeze=False
    )
    for ax, b in zip(axes[0], bands):
        tab = results[b]["check_table"]
        m = np.asarray(tab["mag"])
        r = np.asarray(tab["recovered"], float)
        edges = np.arange(m.min(), m.max() + 0.25, 0.25)
        idx = np.digitize(m, edges) - 1
        cen, frac, err = [], [], []
        for k in range(len(edges) - 1):
            s = idx == k
            if s.sum() >= 5:
                p = r[s].mean()
                cen.append(0.5 * (edges[k] + edges[k + 1]))
                frac.append(p)
                err.append(math.sqrt(max(p * (1 - p), 0.25 / s.sum()) / s.sum()))
        ax.errorbar(cen, frac, err, fmt="o", ms=3, label="mock (calibrated)")
        am, ap = adamo[b]
        ax.plot(am, ap, "k-", label="Adamo+2017")
        ax.axhline(0.5, color="0.7", lw=0.8)
        ax.axvline(targets[b], color="k", ls=":", lw=0.8)
        ax.axvline(results[b]["m50_mock"], color="C0", ls="--", lw=0.8)
        ax.set_title(
            f"{b}\nmock {results[b]['m50_mock']:.2f}, Adamo {targets[b]:.2f}",
            fontsize=9,
        )
        ax.set_xlabel("injected magnitude [Vega]")
    axes[0][0].set_ylabel("recovered fraction")
    axes[0][0].legend(fontsize=8)
    atomic_savefig(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--windows", type=int, default=100, help="256 px windows per evaluation (16 clusters each)"
    )
    p.add_argument("--seed", type=int, default=2026, help="seed of the calibration tests")
    p.add_argument("--check-seed", type=int, default=7, help="seed of the independent check")
    p.add_argument("--iterations", type=int, default=7)
    p.add_argument("--tol", type=float, default=0.02, help="stop when |m50 - target| < tol [mag]")
    p.add_argument("--bands", default=",".join(BANDS))
    p.add_argument(
        "--pointing",
        choices=sorted(MOCK_POINTINGS),
        default="ngc628c",
        help="the mock pointing to calibrate (default: %(default)s)",
    )
    p.add_argument(
        "--out", help="output (default: the pointing's data/mock/<pointing>_mock_noise.json)"
    )
    p.add_argument("--plot", help="also save the recovery curves vs Adamo+2017 to this image")
    args = p.parse_args(argv)
    bands = [b.strip() for b in args.bands.split(",") if b.strip()]
    pointing = mock_pointing(args.pointing)
    targets = dict(pointing.m50_target)
    out = Path(args.out) if args.out else data_path("mock") / pointing.noise_file
    try:
        previous = json.loads(out.read_text())
    except (OSError, ValueError):
        previous = {}
    start_rates = dict(previous.get("background_rate", {}))
    if not start_rates and pointing.name != "ngc628c":  # a new pointing starts from C's values
        start_rates = dict(mock.mock_noise_calibration("ngc628c")["background_rate"])
    results = {}
    t_start = time.perf_counter()
    for b in bands:
        print(f"{b}: calibrating (target m50 {targets[b]:.2f})", flush=True)
        rate, history = calibrate_band(
            b,
            start_rates.get(b, 0.3),
            args.windows,
            args.seed,
            args.iterations,
            args.tol,
            pointing=pointing.name,
        )
        check = mock_single_band_test(
            b, args.windows, args.check_seed, background_rate=rate, pointing=pointing.name
        )
        fit = fit_m50(check["mag"], check["recovered"])
        results[b] = {
            "background_rate": rate,
            "history": history,
            "m50_mock": fit["m50"],
            "width_mock": fit["width"],
            "p_max_mock": fit["p_max"],
            "check_table": check,
        }
        print(
            f"{b}: B = {rate:.5g} counts/s/px; independent check m50 = {fit['m50']:.3f} "
            f"(Adamo {targets[b]:.2f}, diff {fit['m50'] - targets[b]:+.3f})",
            flush=True,
        )
    rates = dict(start_rates)
    rates.update({b: results[b]["background_rate"] for b in bands})
    missing = [b for b in BANDS if b not in rates]
    if missing:
        print(f"no background for {missing}: calibrate all bands at least once", file=sys.stderr)
        return 1
    m50_mock = dict(previous.get("m50_mock", {}))
    m50_mock.update({b: round(results[b]["m50_mock"], 4) for b in bands})
    payload = {
        "description": f"Effective background per band of the jaxcomp mock {pointing.title} field, "
        "fitted so that "
        "single-band artificial cluster tests reach the Adamo+2017 50% recovery magnitudes",
        "background_rate": {b: float(f"{rates[b]:.6g}") for b in BANDS},
        "background_rate_unit": "counts/s/px (equivalent Poisson background of the drizzled 0.0396 "
        "arcsec pixels)",
        "read_noise_e": mock.MOCK_READ_NOISE_E,
        "noise_correlation": MOCK_NOISE_CORRELATION,
        "psf_sha256": mock_psf_digest(pointing),
        "m50_target": targets,
        "m50_mock": m50_mock,
        "recipe": ADAMO17_RECIPE.to_dict(),
        "provenance": {
            "script": "scripts/calibrate_mock_noise.py",
            "argv": list(argv if argv is not None else sys.argv[1:]),
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "jaxcomp_version": __version__,
            "field_seed": 0,
            "calibration_seed": args.seed,
            "check_seed": args.check_seed,
            "windows_per_evaluation": args.windows,
            "clusters_per_evaluation": args.windows * ADAMO17_RECIPE.clusters_per_window,
            "mock": {
                "pointing": pointing.name,
                "n_stars": mock_stars._n_stars(pointing.name),
                "shape": list(pointing.shape),
            },
            "history": {b: results[b]["history"] for b in bands},
            "seconds": round(time.perf_counter() - t_start, 1),
            "targets": "Adamo et al. 2017, ApJ 841, 131 (the MockPointing.m50_target of "
            f"jaxcomp.ast.pointing.MOCK_POINTINGS[{pointing.name!r}])",
        },
    }
    atomic_write_text(out, json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")
    print(f"{'band':6s} {'B [c/s/px]':>11s} {'m50 mock':>9s} {'Adamo':>7s} {'diff':>6s}")
    for b in BANDS:
        if b in m50_mock:
            print(
                f"{b:6s} {rates[b]:11.5g} {m50_mock[b]:9.3f} "
                f"{targets[b]:7.2f} {m50_mock[b] - targets[b]:+6.3f}"
            )
    if args.plot:
        plot_comparison(results, Path(args.plot), pointing.name)
        print(f"saved {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
