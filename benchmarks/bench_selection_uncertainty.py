"""Wall time of the population fit with the selection's uncertainty ("ensemble") against without
("none").

Usage::

    # 1000 clusters, 5 members, 2 x (500 + 500):
    python benchmarks/bench_selection_uncertainty.py
    python benchmarks/bench_selection_uncertainty.py --quick         # smoke run
    python benchmarks/bench_selection_uncertainty.py --json out.json

The problem
-----------
A catalogue of ``--n-obs`` (1000) clusters from a Schechter CMF (α_M = -2, log M_break = 5),
power-law CAF (α_T = -1) on log T in [6, 9.5] and equal A_V weights on 4 bins, thinned by
``LogisticSelection(log_mass_50_young=2.5, age_slope=0.6)`` (the SBC selection).  The
``--members`` (5) selection members are that surface with its 50% mass limit shifted by
``--shift`` dex steps (default 0.0003 dex).  The members' ln L differ only at second
order in the shift near the truth (the expected score of the detected-object likelihood
with respect to a selection parameter vanishes there), so Var ln L at the median is tiny
(measured 7e-9 on 2026-12-06) and the ensemble posterior is not collapsed onto one member;
with 0.01 dex steps (and before the detected objects' ln p_obs term was included) it was ~1e3.,
tabulated on one
``--grid`` (121 x 71 x 13) of nodes (:func:`jaxcomp.demographics.stack_member_grids`):
what matters for the cost is the number of members and the grid, not how they were trained.

Measured
--------
For each mode, ``PopulationFitter`` is compiled ahead of time (compile time reported
apart) and one untimed fit compiles the post-processing, then ``fit`` runs ``--rounds`` times: the
sampling time (``FitResult.runtime_s``)
and the total wall time of ``fit`` (sampling plus the post-processing: summaries,
quadrature check, and the per-draw ln L of every member for the selection diagnostics).
Both modes use the same member grid ("none": its mean), so both compute the diagnostics.
The ratio "ensemble" / "none" is printed from the same run (the machine is shared).
ESS per second is reported as well, since the two posteriors differ.

``--fields F`` measures the multi-field model instead (``MultiFieldFitter``, partial
pooling): ``F`` fields of ``--n-obs`` clusters in total, field ``f`` with its 50% mass
limit deeper by ``0.8 f / (F - 1)`` dex (0 to 2 mag), each with its own ``--members``
member grid shifted as above; "ensemble" averages each field's likelihood over its members.
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import _common
import numpy as np

TRUTH = {"alpha_M": -2.0, "log_M_break": 5.0, "alpha_T": -1.0}


def build(n_obs: int, members: int, shift: float, grid_shape, seed: int):
    from jaxcomp.demographics import (
        PopulationModel,
        SelectionGrid,
        simulate_catalogue,
        stack_member_grids,
    )
    from jaxcomp.selection.synthetic import LogisticSelection

    model = PopulationModel(
        mass="schechter", age="power_law", av="piecewise", log_age_range=(6.0, 9.5)
    )
    truth = {**TRUTH, "av_weights": np.full(4, 0.25)}
    base = LogisticSelection(log_mass_50_young=2.5, age_slope=0.6)
    offsets = shift * (np.arange(members) - (members - 1) / 2)
    grids = [
        SelectionGrid.from_selection(
            LogisticSelection(log_mass_50_young=2.5 + d, age_slope=0.6), shape=tuple(grid_shape)
        )
        for d in offsets
    ]
    catalogue = simulate_catalogue(model, truth, base, n_obs=n_obs, seed=seed)
    return model, stack_member_grids(grids), catalogue, offsets


def build_fields(n_fields: int, n_obs: int, members: int, shift: float, grid_shape, seed: int):
    from jaxcomp.demographics import (
        MultiFieldModel,
        PopulationModel,
        SelectionGrid,
        simulate_catalogue,
        stack_member_grids,
    )
    from jaxcomp.selection.synthetic import LogisticSelection

    population = PopulationModel(
        mass="schechter", age="power_law", av="piecewise", log_age_range=(6.0, 9.5)
    )
    truth = {**TRUTH, "av_weights": np.full(4, 0.25)}
    offsets = shift * (np.arange(members) - (members - 1) / 2)
    catalogues, grids = [], []
    for f in range(n_fields):
        limit = 2.5 + 0.8 * f / max(1, n_fields - 1)
        grids.append(
            stack_member_grids(
                [
                    SelectionGrid.from_selection(
                        LogisticSelection(log_mass_50_young=limit + d, age_slope=0.6),
                        shape=tuple(grid_shape),
                    )
                    for d in offsets
                ]
            )
        )
        base = LogisticSelection(log_mass_50_young=limit, age_slope=0.6)
        catalogues.append(
            simulate_catalogue(population, truth, base, n_obs=n_obs // n_fields, seed=seed + f)
        )
    return MultiFieldModel(population, "partial"), grids, catalogues, offsets


def _timed_rounds(fitter, data, compile_s: float, rounds: int, seed: int):
    """One untimed fit (compiles the post-processing: summaries, diagnostics), then
    ``rounds`` timed fits; the timings, their medians and the min bulk ESS per second."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(data, seed + 1000)
    sampling, total, ess = [], [], []
    for r in range(rounds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, result = _common.timed(fitter.fit, data, seed + r)
        sampling.append(result.runtime_s)
        total.append(seconds)
        ess.append(float(np.nanmin(np.asarray(result.summary["ess_bulk"], float))))
    record = {
        "compile_s": round(compile_s, 2),
        "sampling_s": sampling,
        "fit_total_s": total,
        "median_sampling_s": statistics.median(sampling),
        "median_fit_total_s": statistics.median(total),
        "min_ess_bulk_per_sampling_s": statistics.median(e / s for e, s in zip(ess, sampling)),
    }
    return record, result


def run_fields(
    *,
    n_fields=4,
    n_obs=1000,
    members=5,
    shift=0.0003,
    grid_shape=(121, 71, 13),
    num_warmup=500,
    num_samples=500,
    num_chains=2,
    rounds=2,
    seed=0,
) -> dict:
    from jaxcomp.demographics import MultiFieldFitter

    model, grids, catalogues, offsets = build_fields(
        n_fields, n_obs, members, shift, grid_shape, seed
    )
    names = [f"field_{f}" for f in range(n_fields)]
    out = {
        "machine": _common.machine_info(),
        "n_fields": n_fields,
        "n_obs": n_obs,
        "members": members,
        "member_offsets_dex": offsets.tolist(),
        "grid": list(grid_shape),
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "rounds": rounds,
        "modes": {},
    }
    for mode in ("none", "ensemble"):
        fitter = MultiFieldFitter(
            model,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            selection_uncertainty=mode,
        )
        data = fitter.prepare(names, catalogues, grids)
        compile_s = fitter.compile(data)
        record, result = _timed_rounds(fitter, data, compile_s, rounds, seed)
        out["modes"][mode] = {
            **record,
            "log_likelihood_variance": max(result.log_likelihood_variance.values()),
            "alpha_M_mean": [
                float(result.draws("alpha_M_mean").mean()),
                float(result.draws("alpha_M_mean").std()),
            ],
        }
    return _ratios(out)


def _ratios(out: dict) -> dict:
    none, ens = out["modes"]["none"], out["modes"]["ensemble"]
    out["ratio_sampling"] = ens["median_sampling_s"] / none["median_sampling_s"]
    out["ratio_fit_total"] = ens["median_fit_total_s"] / none["median_fit_total_s"]
    out["ratio_compile"] = ens["compile_s"] / none["compile_s"]
    return out


def run(
    *,
    n_obs=1000,
    members=5,
    shift=0.0003,
    grid_shape=(121, 71, 13),
    num_warmup=500,
    num_samples=500,
    num_chains=2,
    rounds=2,
    seed=0,
) -> dict:
    import jax

    from jaxcomp.demographics import PopulationFitter, prepare_data

    model, grid, catalogue, offsets = build(n_obs, members, shift, grid_shape, seed)
    out = {
        "machine": _common.machine_info(),
        "n_obs": n_obs,
        "members": members,
        "member_offsets_dex": offsets.tolist(),
        "grid": list(grid_shape),
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "rounds": rounds,
        "modes": {},
    }
    for mode in ("none", "ensemble"):
        fitter = PopulationFitter(
            model,
            grid,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            selection_uncertainty=mode,
        )
        with jax.enable_x64(True):
            data = prepare_data(catalogue, model)
        compile_s = fitter.compile(data)
        record, result = _timed_rounds(fitter, data, compile_s, rounds, seed)
        out["modes"][mode] = {
            **record,
            "log_likelihood_variance": result.log_likelihood_variance,
            "alpha_M": [
                float(result.draws("alpha_M").mean()),
                float(result.draws("alpha_M").std()),
            ],
        }
    return _ratios(out)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--shift", type=float, default=0.0003)
    parser.add_argument("--grid", type=int, nargs=3, default=(121, 71, 13))
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--fields", type=int, default=0, help="measure the multi-field model with this many fields"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    settings = {
        "n_obs": args.n_obs,
        "members": args.members,
        "shift": args.shift,
        "grid_shape": tuple(args.grid),
        "num_warmup": args.num_warmup,
        "num_samples": args.num_samples,
        "num_chains": args.num_chains,
        "rounds": args.rounds,
    }
    if args.quick:
        settings.update(n_obs=200, grid_shape=(41, 31, 7), num_warmup=50, num_samples=50, rounds=1)
    if args.fields > 0:
        payload = run_fields(n_fields=args.fields, **settings)
    else:
        payload = run(**settings)
    for mode, entry in payload["modes"].items():
        print(
            f"{mode:9s} compile {entry['compile_s']:.1f} s, sampling "
            f"{entry['median_sampling_s']:.2f} s, "
            f"fit total {entry['median_fit_total_s']:.2f} s, min ESS/s "
            f"{entry['min_ess_bulk_per_sampling_s']:.1f}, "
            f"Var lnL {entry['log_likelihood_variance']:.3g}"
            + (" (largest over fields)" if args.fields > 0 else "")
        )
    print(
        f"ensemble / none ({payload['members']} members): sampling "
        f"{payload['ratio_sampling']:.2f}x, "
        f"fit total {payload['ratio_fit_total']:.2f}x, compile {payload['ratio_compile']:.2f}x"
    )
    if args.json:
        _common.write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
