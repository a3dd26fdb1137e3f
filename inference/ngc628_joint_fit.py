#!/usr/bin/env python
"""NGC 628C and NGC 628E fitted jointly (partial pooling) and separately, against Adamo+2017.

The class 1-3 LEGUS clusters of the two pointings (:func:`jaxcomp.catalogues.read_legus_ngc628`:
the 14 E clusters that repeat a C cluster within 0.1" are dropped, the C entry is kept, as in
Adamo+2017; 1017 + 245 = 1262 clusters before the domain cut) are fitted with a power-law
cluster mass function and a power-law age function (Adamo+2017's forms) on their domain,
M > 5e3 Msun (log M 3.7-8) and T <= 200 Myr (log T 6-8.31), with a piecewise A_V distribution.
Each pointing has its own selection function, tabulated on the same grid nodes:

* NGC 628C: the published C-4 physical network (Tang et al. 2026; the wheel that
  ``inference/ngc628_corrections.fetch_c4_checkpoints`` downloads and caches), or, with
  ``--c-network``, a jaxcomp network trained on the C mock;
* NGC 628E: jaxcomp's physical network trained on the E mock (``--e-network``, from
  ``inference/ngc628_pointing_selection.py --pointing ngc628e``).

Fits: the two pointings separately (:class:`jaxcomp.demographics.PopulationFitter`), and jointly
(:func:`jaxcomp.demographics.fit_fields`) with partial pooling (per-pointing slopes drawn around
a galaxy mean) and complete pooling (one set of slopes for the galaxy).  Published numbers:
Adamo+2017, alpha_M = -2.09 (+-0.10 quoted) and alpha_T = -0.8 for the whole galaxy on this
domain (see ``inference/ngc628_fit.py``).

Outputs (``--output-dir``, default ``inference/results/ngc628_joint``): ``joint_fit.json``
(per fit and parameter: median, 68% and 95% intervals, r_hat, ESS, divergences, runtimes; the
catalogue and duplicate counts), ``joint_fit.md`` (the comparison table) and
``joint_fit.png`` (alpha_M and alpha_T posteriors of every fit, Adamo+2017 marked).

Usage::

    nice -n 10 python inference/ngc628_joint_fit.py [--c-network PATH] [--num-chains 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ADAMO17 = {"alpha_M": -2.09, "alpha_T": -0.8}
MASS_RANGE = (3.7, 8.0)
AGE_RANGE = (6.0, 8.31)


def _values(column) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


def catalogues(tolerance_arcsec: float = 0.1):
    """The class 1-3 clusters of C and E (duplicates removed) inside the fit domain."""
    from jaxcomp.catalogues import read_legus_ngc628
    from jaxcomp.demographics.catalogue import validate_catalogue

    both = read_legus_ngc628(classes=(1, 2, 3), tolerance_arcsec=tolerance_arcsec)
    info = {
        "n_duplicates_removed": int(both.meta["n_duplicates"]),
        "duplicates_removed_id_e_id_c_sep_arcsec": both.meta["duplicates_removed"],
    }
    out = {}
    for name in ("ngc628c", "ngc628e"):
        t = both[np.asarray(both["field"]) == name]
        n_class = len(t)
        t, n_invalid = validate_catalogue(
            t, label=name, drop_invalid=True, say=lambda *a, **k: None
        )
        lm, la = _values(t["log_mass"]), _values(t["log_age"])
        inside = (
            (lm >= MASS_RANGE[0])
            & (lm <= MASS_RANGE[1])
            & (la >= AGE_RANGE[0])
            & (la <= AGE_RANGE[1])
        )
        t = t[inside]
        n_clip = int(np.sum(_values(t["av"]) > 3.0))
        t["av"] = np.clip(_values(t["av"]), 0.0, 3.0)
        out[name] = t
        info[name] = {
            "class_1_3_after_dedup": n_class,
            "without_sed_fit": int(n_invalid),
            "in_domain": len(t),
            "av_clipped_to_3": n_clip,
        }
    return out, info


def grids(args, out: Path):
    """``{pointing: SelectionGrid}`` on the same nodes over the fit domain."""
    from jaxcomp.demographics import SelectionGrid
    from jaxcomp.selection import SelectionFunction

    nodes = dict(
        log_mass=np.linspace(*MASS_RANGE, args.grid[0]),
        log_age=np.linspace(*AGE_RANGE, args.grid[1]),
        av=np.linspace(0.0, 3.0, args.grid[2]),
    )
    if args.c_network is not None:
        c_sel, c_label = SelectionFunction.load(args.c_network), f"jaxcomp {args.c_network.name}"
    else:
        import sys

        sys.path.insert(0, str(HERE))
        from ngc628_corrections import fetch_c4_checkpoints

        from jaxcomp.selection.c4 import import_c4

        c_sel, c_label = import_c4(args.c4_dir or fetch_c4_checkpoints(), "phys"), "C-4 physical"
    e_sel = SelectionFunction.load(args.e_network)
    result, labels = {}, {"ngc628c": c_label, "ngc628e": f"jaxcomp {args.e_network.name}"}
    for name, sel in (("ngc628c", c_sel), ("ngc628e", e_sel)):
        result[name] = SelectionGrid.from_selection(sel, **nodes)
    return result, labels


def _quantiles(draws) -> dict:
    q = np.quantile(np.asarray(draws, float), [0.025, 0.16, 0.5, 0.84, 0.975])
    return {
        "median": float(q[2]),
        "68": [float(q[1]), float(q[3])],
        "95": [float(q[0]), float(q[4])],
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--c4-dir", type=Path, default=None, help="C-4 checkpoints folder")
    parser.add_argument("--c-network", type=Path, default=None, help="jaxcomp C network instead")
    parser.add_argument(
        "--e-network",
        type=Path,
        default=HERE / "results" / "ngc628_joint" / "selection_ngc628e_physical.safetensors",
    )
    parser.add_argument("--grid", type=int, nargs=3, default=(87, 47, 13))
    parser.add_argument("--num-warmup", type=int, default=400)
    parser.add_argument("--num-samples", type=int, default=400)
    parser.add_argument("--num-chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output-dir", type=Path, default=HERE / "results" / "ngc628_joint")
    parser.add_argument("--stem", default="joint_fit", help="output file stem")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxcomp._io import atomic_savefig, atomic_write_text
    from jaxcomp.demographics import MultiFieldModel, PopulationFitter, PopulationModel, fit_fields

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    cats, cat_info = catalogues()
    print(json.dumps({k: v for k, v in cat_info.items() if "sep" not in k}, indent=1), flush=True)
    t0 = time.perf_counter()
    sel_grids, sel_labels = grids(args, out)
    grid_s = time.perf_counter() - t0
    print(f"selection grids {args.grid} in {grid_s:.0f} s", flush=True)
    for name, g in sel_grids.items():
        print(f"  {name}: mean p_obs on the grid {float(np.mean(np.asarray(g.p_obs))):.3f}")

    population = PopulationModel(
        mass="power_law", age="power_law", log_mass_range=MASS_RANGE, log_age_range=AGE_RANGE
    )
    sampler = dict(
        num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.num_chains
    )
    fits: dict[str, dict] = {}
    draws: dict[str, dict] = {}
    for name in ("ngc628c", "ngc628e"):
        fitter = PopulationFitter(population, sel_grids[name], **sampler)
        t = time.perf_counter()
        res = fitter.fit(cats[name], seed=args.seed)
        wall = time.perf_counter() - t
        print(f"\n== separate {name} ({wall:.0f} s)\n{res.report()}", flush=True)
        key = f"separate_{name}"
        draws[key] = {p: np.asarray(res.draws(p)) for p in ("alpha_M", "alpha_T")}
        fits[key] = {
            "n_clusters": len(cats[name]),
            **{p: _quantiles(d) for p, d in draws[key].items()},
            "detected_fraction": _quantiles(res.draws("detected_fraction")),
            "max_r_hat": float(np.nanmax(res.summary["r_hat"])),
            "min_ess_bulk": float(np.nanmin(res.summary["ess_bulk"])),
            "divergences": int(res.num_divergences),
            "wall_s": round(wall, 1),
        }
    for pooling in ("partial", "complete"):
        t = time.perf_counter()
        res = fit_fields(
            [cats["ngc628c"], cats["ngc628e"]],
            [sel_grids["ngc628c"], sel_grids["ngc628e"]],
            MultiFieldModel(population=population, pooling=pooling),
            field_names=["ngc628c", "ngc628e"],
            seed=args.seed,
            target_accept_prob=0.95,  # two fields: the scatter's funnel needs small steps
            **sampler,
        )
        wall = time.perf_counter() - t
        print(f"\n== joint, {pooling} pooling ({wall:.0f} s)\n{res.report()}", flush=True)
        entry = {
            "n_clusters": int(res.n_objects.sum()),
            "divergences": int(res.num_divergences),
            "max_r_hat": float(np.nanmax(res.summary["r_hat"])),
            "min_ess_bulk": float(np.nanmin(res.summary["ess_bulk"])),
            "wall_s": round(wall, 1),
        }
        for p in ("alpha_M", "alpha_T"):
            d = np.asarray(res.draws(p))
            if d.ndim == 2:  # per field
                for f, name in enumerate(res.field_names):
                    entry[f"{p}[{name}]"] = _quantiles(d[:, f])
                    draws.setdefault(f"{pooling}_{name}", {})[p] = d[:, f]
            mean_site = f"{p}_mean"
            if mean_site in res.idata.posterior:
                entry[f"{p}_mean"] = _quantiles(res.draws(mean_site))
                if f"{p}_scatter" in res.idata.posterior:
                    entry[f"{p}_scatter"] = _quantiles(res.draws(f"{p}_scatter"))
                draws.setdefault(f"{pooling}_galaxy", {})[p] = np.asarray(res.draws(mean_site))
        fits[f"joint_{pooling}"] = entry

    summary = {
        "domain": {"log_mass": MASS_RANGE, "log_age": AGE_RANGE},
        "model": population.describe(),
        "catalogues": cat_info,
        "selection": {**sel_labels, "grid": list(args.grid), "grid_seconds": round(grid_s, 1)},
        "sampler": sampler,
        "fits": fits,
        "published": {"Adamo+2017 (whole galaxy)": ADAMO17},
    }
    atomic_write_text(out / f"{args.stem}.json", json.dumps(summary, indent=1, default=float))

    def cell(q):
        return f"{q['median']:.2f} [{q['68'][0]:.2f}, {q['68'][1]:.2f}]"

    lines = [
        "# NGC 628C + NGC 628E: joint vs separate fits",
        "",
        f"Power-law CMF and CAF on log M {MASS_RANGE}, log T {AGE_RANGE}; selection: C "
        f"{sel_labels['ngc628c']}, E {sel_labels['ngc628e']}. Median [68%].",
        "",
        "| fit | clusters | alpha_M | alpha_T | max r_hat | divergences |",
        "|---|---|---|---|---|---|",
    ]
    for key, entry in fits.items():
        rows = []
        if "alpha_M" in entry:
            rows.append((key, entry["alpha_M"], entry["alpha_T"]))
        for name in ("ngc628c", "ngc628e"):
            if f"alpha_M[{name}]" in entry:
                rows.append(
                    (f"{key}: {name}", entry[f"alpha_M[{name}]"], entry[f"alpha_T[{name}]"])
                )
        if "alpha_M_mean" in entry:
            rows.append((f"{key}: galaxy mean", entry["alpha_M_mean"], entry["alpha_T_mean"]))
        for label, am, at in rows:
            lines.append(
                f"| {label} | {entry['n_clusters']} | {cell(am)} | {cell(at)} | "
                f"{entry['max_r_hat']:.3f} | {entry['divergences']} |"
            )
    lines += [
        "",
        f"Adamo+2017 (whole galaxy): alpha_M = {ADAMO17['alpha_M']}, "
        f"alpha_T = {ADAMO17['alpha_T']}.",
    ]
    atomic_write_text(out / f"{args.stem}.md", "\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, p in zip(axes, ("alpha_M", "alpha_T")):
        for k, (key, d) in enumerate(draws.items()):
            if p in d:
                ax.hist(d[p], bins=40, histtype="step", density=True, label=key, color=f"C{k}")
        ax.axvline(ADAMO17[p], color="k", ls="--", label="Adamo+2017")
        ax.set_xlabel(p)
    axes[0].legend(fontsize=7)
    fig.suptitle("NGC 628: separate vs joint fits (power-law CMF and CAF)", fontsize=10)
    atomic_savefig(fig, out / f"{args.stem}.png")
    plt.close(fig)
    print(f"wrote {out / args.stem}.json, .md, .png")
    return summary


if __name__ == "__main__":
    main()
