#!/usr/bin/env python
"""NGC 628C corrected age and mass functions with the selection's uncertainty (issue 18, item 3).

The completeness-corrected cluster age function (CAF) and mass function (CMF) of Tang et al.
(2026, eq. 17-18) of the LEGUS NGC 628C class 1-3 clusters, corrected with jaxcomp's own
selection function as a 5-member bootstrap ensemble (the radius-aware physical network of the
demo, averaged over r_eff = 1-10 pc with equal weights, made by
``inference/ngc628_fit_selection_uncertainty.py``).  The correction uses the ensemble mean; every
member's marginal completeness gives its own correction, and their standard deviation is the
selection's error of each bin (``n_corr_sel_err``), reported next to the Poisson error of the
raw count, their sum in quadrature and the paper's 16th-84th percentile envelope
[N_raw / p84, N_raw / p16].

Choices (those of ``jaxcomp correct``, which follows ``inference/ngc628_corrections.py`` and the
paper, read from its parser so they cannot drift): bins of 0.3 dex in log T on [6.0, 10.2] and
0.25 dex in log M on [2.0, 6.0]; the CAF corrected assuming the Tang+2024 Schechter CMF
(alpha = -2.16, log M_break = 5.61 on log M in [2, 8]), the CMF assuming the Tang+2024 broken
power-law CAF (alpha_T = -1.41 above log T = 8.22, 0 below, on [5, log 1.5e10]); p(A_V) on four
bins in [0, 3] mag estimated from the catalogue clusters inside p_obs(A_V = 3) >= 0.5 of the
ensemble mean; the per-cluster completeness clipped at 1e-10 (CAF, bins with mean < 1e-3 masked)
and 1e-3 (CMF).  The catalogue is the fit's (``inference/ngc628_fit.py``'s ``load_ngc628c``:
1017 clusters with an SED fit inside log M in [2, 8], log T in [6, 10.176], A_V clipped to 3 mag).

Usage::

    python inference/ngc628_corrections_selection_uncertainty.py \\
        --selection ngc628-selection-work/selection_physical_r_eff_pc_bootstrap5.safetensors \\
        --work-dir ngc628-selection-work

The member grids (241 x 208 x 13, as the fit's) are cached in ``--work-dir`` (shared with the fit
script's cache); ``--member-grids`` takes saved single grids (``SelectionGrid.save``, one per
member, same nodes) instead of ``--selection``.  Outputs (``--output-dir``): ``caf.ecsv``,
``cmf.ecsv`` (all columns), ``summary.json`` (inputs' SHA-256, options, per-bin rows, headline
ratios), ``summary.md`` and ``corrections.png``.  The computation is deterministic (no random
draw); the ensemble's training seed is copied from its metadata.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MASS_RANGE, AGE_RANGE = (2.0, 8.0), (6.0, 10.176)
#: The rows of summary.md / summary.json per bin.
BIN_COLUMNS = (
    "n_raw",
    "n_corr",
    "n_corr_err",
    "n_corr_sel_err",
    "n_corr_total_err",
    "n_corr_lo",
    "n_corr_hi",
)


def _values(column) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


def _shown(path) -> str:
    """``path`` relative to the repository when inside it (results stay machine-independent)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def correct_defaults() -> argparse.Namespace:
    """The options of ``jaxcomp correct`` with its defaults (bins, assumed distributions, p(A_V),
    clipping), parsed from its own parser."""
    from jaxcomp.cli.correct import add_correct_parser

    parser = argparse.ArgumentParser()
    add_correct_parser(parser.add_subparsers())
    return parser.parse_args(["correct", "--legus", "ngc628c", "--out", "unused"])


def load_member_grid(args, work: Path):
    """The member grid (p_obs of every member) and a record of where it came from."""
    from jaxcomp._io import file_sha256
    from jaxcomp.demographics import SelectionGrid, stack_member_grids

    if args.member_grids:
        paths = [Path(p) for p in args.member_grids]
        grid = stack_member_grids([SelectionGrid.load(p) for p in paths])
        return grid, {
            "member_grids": [{"path": str(p), "sha256": file_sha256(p)} for p in paths],
        }
    sys.path.insert(0, str(HERE))
    from ngc628_fit import jaxcomp_selection_grid

    from jaxcomp.selection import SelectionFunction

    path = args.selection
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: make the ensemble with "
            "inference/ngc628_fit_selection_uncertainty.py --work-dir DIR (it writes "
            "DIR/selection_physical_r_eff_pc_bootstrap5.safetensors), or give --member-grids"
        )
    selection = SelectionFunction.load(path)
    if selection.n_members < 2:
        raise ValueError(
            f"{path} has one network: the selection's uncertainty needs an ensemble; train with "
            "TrainConfig(n_members=5, ensemble_resampling='bootstrap')"
        )
    training = selection.metadata.get("training", {})
    grid = jaxcomp_selection_grid(path, tuple(args.grid), None, work)
    radius = (
        "averaged over r_eff = 1-10 pc with equal weights"
        if "r_eff_pc" in selection.input_names
        else ""
    )
    return grid, {
        "artefact": str(path),
        "sha256": file_sha256(path),
        "inputs": list(selection.input_names),
        "n_members": int(selection.n_members),
        "description": f"jaxcomp {'physical+r_eff_pc' if radius else 'physical'} network "
        f"({', '.join(selection.input_names)}), {selection.n_members}-member "
        f"{training.get('config', {}).get('ensemble_resampling', '')} ensemble {radius}",
        "training_seed": training.get("config", {}).get("seed"),
        "training_labels_sha256": training.get("labels_sha256"),
        "training_rows": training.get("n_rows"),
        "ensemble_resampling": training.get("config", {}).get("ensemble_resampling"),
        "provenance": selection.metadata.get("provenance"),
        "grid_shape": list(grid.p_obs.shape[1:]),
    }


def bin_rows(table, quantity: str) -> list[dict]:
    """Per bin: edges, the columns of :data:`BIN_COLUMNS`, ratio selection / Poisson error and
    the selection error over the envelope's half-width (NaN in empty or masked bins)."""
    lo, hi = _values(table[f"{quantity}_lo"]), _values(table[f"{quantity}_hi"])
    data = {name: _values(table[name]) for name in BIN_COLUMNS}
    masked = np.asarray(table["masked"], bool)
    rows = []
    for b in range(len(table)):
        row = {"lo": round(float(lo[b]), 4), "hi": round(float(hi[b]), 4)}
        row.update({name: float(data[name][b]) for name in BIN_COLUMNS})
        row["n_raw"] = int(data["n_raw"][b])
        usable = row["n_raw"] > 0 and not masked[b]
        row["masked"] = bool(masked[b])
        row["sel_over_poisson"] = (
            row["n_corr_sel_err"] / row["n_corr_err"] if usable else float("nan")
        )
        half_width = 0.5 * (row["n_corr_hi"] - row["n_corr_lo"])
        row["sel_over_envelope_half_width"] = (
            row["n_corr_sel_err"] / half_width if usable and half_width > 0 else float("nan")
        )
        rows.append(row)
    return rows


def headline(rows: list[dict]) -> dict:
    """Median (and range) over the occupied, unmasked bins of selection / Poisson error; the bins
    where the selection's error is the larger."""
    ratio = np.array([r["sel_over_poisson"] for r in rows])
    n_raw = np.array([r["n_raw"] for r in rows])
    use = np.isfinite(ratio)
    populous = use & (n_raw >= 10)
    return {
        "bins_used": int(use.sum()),
        "median_sel_over_poisson": float(np.median(ratio[use])) if use.any() else None,
        "range_sel_over_poisson": [float(ratio[use].min()), float(ratio[use].max())]
        if use.any()
        else None,
        "median_sel_over_poisson_n_raw_ge_10": float(np.median(ratio[populous]))
        if populous.any()
        else None,
        "median_sel_over_envelope_half_width": float(
            np.nanmedian([r["sel_over_envelope_half_width"] for r in rows])
        )
        if use.any()
        else None,
        "selection_dominates": [
            [r["lo"], r["hi"]] for r, u in zip(rows, use) if u and r["sel_over_poisson"] > 1
        ],
        "total_over_poisson_max": float(
            np.max([r["n_corr_total_err"] / r["n_corr_err"] for r, u in zip(rows, use) if u])
        )
        if use.any()
        else None,
    }


def _cell(value, digits=".3g") -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, digits)


def markdown(summary: dict) -> str:
    """summary.md: the inputs and one table per function."""
    sel = summary["selection"]
    lines = [
        "# NGC 628C class 1-3: corrected CAF and CMF with the selection's uncertainty",
        "",
        f"{summary['n_clusters']} clusters; selection: {sel.get('description', 'member grids')}; "
        f"{summary['n_members']} members; grid {summary['grid_shape']}; p(A_V) "
        f"{summary['av_distribution']['probabilities']} on {summary['av_distribution']['edges']}"
        " mag (ensemble mean).",
        "",
        "Per bin: n_corr (eq. 17, ensemble-mean p_corr), Poisson error sqrt(n_raw)/p_mean, "
        "selection error (sd over the members of n_raw/p_mean,m, ddof 1), total (quadrature), "
        "the paper's envelope [n_raw/p84, n_raw/p16] (eq. 18) and selection / Poisson.",
    ]
    for name, quantity, assumed in (
        ("caf", "log T [yr]", summary["assumed_mass_function"]),
        ("cmf", "log M [Msun]", summary["assumed_age_function"]),
    ):
        head = summary["headline"][name]
        lines += [
            "",
            f"## {name.upper()} (assuming {assumed})",
            "",
            f"| {quantity} | n_raw | n_corr | Poisson | selection | total | envelope "
            "[lo, hi] | sel / Poisson |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in summary["bins"][name]:
            if r["n_raw"] == 0:
                values = "| 0 | 0 | - | - | - | - | - |"
            elif r["masked"]:
                values = f"| {r['n_raw']} | masked (mean p_corr < 1e-3) | | | | | |"
            else:
                values = (
                    f"| {r['n_raw']} | {_cell(r['n_corr'])} | {_cell(r['n_corr_err'])} | "
                    f"{_cell(r['n_corr_sel_err'])} | {_cell(r['n_corr_total_err'])} | "
                    f"[{_cell(r['n_corr_lo'])}, {_cell(r['n_corr_hi'])}] | "
                    f"{_cell(r['sel_over_poisson'], '.2f')} |"
                )
            lines.append(f"| {r['lo']:.2f}-{r['hi']:.2f} " + values)
        dominated = ", ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in head["selection_dominates"])
        low, high = head["range_sel_over_poisson"] or (None, None)
        lines += [
            "",
            f"Median selection / Poisson over the {head['bins_used']} occupied bins: "
            f"{_cell(head['median_sel_over_poisson'], '.3f')} (range {_cell(low, '.3f')}"
            f"-{_cell(high, '.3f')}; bins with n_raw >= 10: "
            f"{_cell(head['median_sel_over_poisson_n_raw_ge_10'], '.3f')}); selection error over "
            "the envelope's half-width: median "
            f"{_cell(head['median_sel_over_envelope_half_width'], '.3f')}; total / Poisson at "
            f"most {_cell(head['total_over_poisson_max'], '.3f')}.  Bins where the selection "
            f"dominates: {dominated or 'none'}.",
        ]
    lines += [
        "",
        f"Inputs: catalogue {summary['catalogue']['path']} (sha256 "
        f"{summary['catalogue']['sha256'][:16]}...; rows used: sha256 of (log M, log T, A_V) "
        f"{summary['catalogue']['values_sha256'][:16]}...); selection sha256 "
        + (sel["sha256"][:16] + "..." if "sha256" in sel else "see summary.json")
        + f"; training seed {sel.get('training_seed')}; no random draw here.  "
        f"Runtime {summary['runtime_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def figure(caf, cmf, path: Path) -> None:
    """Corrected CAF and CMF: the envelope band, and the Poisson, selection and total error
    bars."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from jaxcomp._io import atomic_savefig
    from jaxcomp.demographics import plot_corrected_distribution

    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.8))
    for ax, table, quantity, shade, shade_label, title in (
        (axes[0], caf, "log_age", (np.log10(2e8), 10.2), "> 200 Myr", "cluster age function"),
        (
            axes[1],
            cmf,
            "log_mass",
            (2.0, np.log10(5e3)),
            r"$< 5000\,\mathrm{M}_\odot$",
            "cluster mass function",
        ),
    ):
        # raw, corrected, the p16-p84 envelope and the selection's error bars (at the centre)
        plot_corrected_distribution(
            {"corrected (envelope: p16-p84, bars: selection)": table},
            ax=ax,
            colors=["tab:green"],
            shade=shade,
            shade_label=shade_label,
            title=f"NGC 628C class 1-3: {title}",
        )
        centre, width = _values(table[f"{quantity}_centre"]), _values(table["width"])
        dn = _values(table["dn_corr"])
        good = np.isfinite(dn) & (dn > 0)
        for column, shift, color, label in (
            ("dn_corr_err", -0.18, "k", "Poisson"),
            ("dn_corr_total_err", 0.18, "tab:red", "Poisson + selection"),
        ):
            ax.errorbar(
                (centre + shift * width)[good],
                dn[good],
                yerr=_values(table[column])[good],
                fmt="none",
                ecolor=color,
                elinewidth=1.0,
                capsize=2.0,
                label=label,
            )
        if quantity == "log_age":  # head room for the legend above the CAF's peak
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * 30)
        ax.legend(frameon=False, fontsize="small", loc="upper right")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=130)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--selection",
        type=Path,
        default=Path("ngc628-selection-work")
        / "selection_physical_r_eff_pc_bootstrap5.safetensors",
        help="a saved ensemble (.safetensors); default: the fit script's --work-dir artefact",
    )
    parser.add_argument(
        "--member-grids",
        type=Path,
        nargs="+",
        help="saved single grids (SelectionGrid.save), one per member, instead of --selection",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("ngc628-selection-work"))
    parser.add_argument("--grid", type=int, nargs=3, default=(241, 208, 13))
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=HERE / "results" / "ngc628_corrections_selection_uncertainty",
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from ngc628_fit import load_ngc628c

    from jaxcomp._io import array_digest, atomic_write_text, file_sha256, write_table
    from jaxcomp.cli.correct import (
        assumed_distributions,
        bin_edges,
        correct_options,
        describe_distribution,
    )
    from jaxcomp.demographics import (
        AV_RANGE,
        correct_catalogue,
        estimate_av_distribution,
        mean_member_grid,
        member_grid,
    )
    from jaxcomp.demographics.selection_uncertainty import n_members
    from jaxcomp.provenance import package_versions

    t_start = time.perf_counter()
    defaults = correct_defaults()
    options = correct_options(defaults)
    mass_function, age_function = assumed_distributions(options)
    age_bins = bin_edges(defaults.age_bins, "age-bins")
    mass_bins = bin_edges(defaults.mass_bins, "mass-bins")

    args.work_dir.mkdir(parents=True, exist_ok=True)
    grid, selection_info = load_member_grid(args, args.work_dir)
    count = n_members(grid)
    catalogue, n_all, n_av_clipped = load_ngc628c(MASS_RANGE, AGE_RANGE)
    columns = [_values(catalogue[c]) for c in ("log_mass", "log_age", "av")]

    # p(A_V) as `jaxcomp correct` estimates it, from the ensemble mean (and, to show its spread,
    # from every member)
    av_edges = np.linspace(*AV_RANGE, defaults.av_bins + 1)

    def estimate(one_grid):
        return estimate_av_distribution(
            one_grid,
            catalogue,
            av_reference=defaults.av_reference,
            level=defaults.av_level,
            edges=av_edges,
            return_details=True,
        )

    av_estimate = estimate(mean_member_grid(grid))
    member_av_counts = [estimate(member_grid(grid, m)).counts.tolist() for m in range(count)]
    result = correct_catalogue(
        catalogue,
        grid,
        mass_distribution=mass_function,
        age_distribution=age_function,
        av_distribution=av_estimate.distribution,
        age_bins=age_bins,
        mass_bins=mass_bins,
        age_clip=defaults.age_clip,
        age_min_mean=defaults.age_min_mean,
        mass_clip=defaults.mass_clip,
        mass_min_mean=defaults.mass_min_mean,
    )
    caf, cmf = result.caf, result.cmf
    assumed_mass = describe_distribution(options["mass_function"], "M")
    assumed_age = describe_distribution(options["age_function"], "T")
    caf.meta["assumed_mass_function"] = assumed_mass
    cmf.meta["assumed_age_function"] = assumed_age
    catalogue_info = {
        "label": "LEGUS NGC 628C class 1-3",
        "path": _shown(catalogue.meta["source_file"]),
        "sha256": file_sha256(catalogue.meta["source_file"]),
        "values_sha256": array_digest(*columns),
    }
    for table in (caf, cmf):
        table.meta.update(
            {
                "catalogue": catalogue_info["label"],
                "catalogue_sha256": catalogue_info["sha256"],
                "selection": selection_info.get("artefact", "member grids"),
                "selection_sha256": selection_info.get("sha256"),
            }
        )
    bins = {"caf": bin_rows(caf, "log_age"), "cmf": bin_rows(cmf, "log_mass")}
    members_p = {
        "caf": result.p_corr_age_members,
        "cmf": result.p_corr_mass_members,
    }
    summary = {
        "catalogue": catalogue_info,
        "n_clusters": len(catalogue),
        "n_clusters_with_fit": n_all,
        "n_av_clipped_to_3": n_av_clipped,
        "selection": selection_info,
        "n_members": count,
        "grid_shape": list(grid.p_obs.shape[1:]),
        "options": options,
        "assumed_mass_function": assumed_mass,
        "assumed_age_function": assumed_age,
        "av_distribution": {
            "edges": av_edges.tolist(),
            "n_selected": av_estimate.n_selected,
            "counts": av_estimate.counts.tolist(),
            "probabilities": np.round(
                np.asarray(av_estimate.distribution.probabilities, np.float64), 4
            ).tolist(),
            "counts_per_member (not propagated)": member_av_counts,
        },
        "member_p_corr_relative_sd_median": {
            name: float(np.median(np.std(p, axis=0, ddof=1) / np.mean(p, axis=0)))
            for name, p in members_p.items()
        },
        "bins": bins,
        "headline": {name: headline(rows) for name, rows in bins.items()},
        "versions": package_versions(),
        "random_draws": "none (deterministic); the ensemble's training seed is in selection",
    }
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    write_table(caf, out / "caf.ecsv")
    write_table(cmf, out / "cmf.ecsv")
    figure(caf, cmf, out / "corrections.png")
    summary["runtime_s"] = round(time.perf_counter() - t_start, 1)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
    atomic_write_text(out / "summary.md", markdown(summary))
    print(markdown(summary))
    return summary


if __name__ == "__main__":
    main()
