"""ESS per second of the many-field hierarchical NUTS fit versus emcee on the same log density
(issue 17).

Usage::

    # 30 fields x ~1000 clusters, 4 x (1000 + 1000):
    python benchmarks/bench_multifield.py
    python benchmarks/bench_multifield.py --quick         # smoke run (4 fields x 200, short chains)
    python benchmarks/bench_multifield.py --json out.json
    python benchmarks/bench_multifield.py --parametrisation centred   # centred per-field sites
    # NUTS centred, emcee non-centred: the same posterior, each sampler in the coordinates
    # that suit it (emcee's stretch move does not leave its start in the centred ones)
    python benchmarks/bench_multifield.py --parametrisation centred \
        --emcee-parametrisation non_centred

The problem
-----------
``--n-fields`` (30) fields simulated as in ``inference/multifield_simulation.py``
(its :func:`simulate_fields`): each field's depth shifted by 0 .. 2 mag
(``LogisticSelection(log_mass_50_young=2.5 + 0.4 shift, age_slope=0.6)``), its
own alpha_M ~ N(-2.0, 0.15), log M_break ~ N(5.3, 0.3), alpha_T ~ N(-0.8, 0.1)
and A_V bin probabilities, ``--n-min`` .. ``--n-max`` (800 .. 1200, log-uniform)
detected clusters.  The model is :class:`jaxcomp.demographics.MultiFieldModel`
with partial pooling (``--parametrisation``, non-centred by default); p_obs on per-field
:class:`~jaxcomp.demographics.SelectionGrid` s of ``--grid`` nodes.

The target both samplers see
----------------------------
NumPyro's unconstrained space of the multi-field model: ``-potential_energy``
of :func:`~jaxcomp.demographics.multifield_model.multifield_model` (log
likelihood + log prior + log |Jacobian|), the function NUTS integrates inside
:class:`~jaxcomp.demographics.MultiFieldFitter`.  emcee calls it jitted and
vmapped over walkers (``bench_nuts.EmceeLogDensity``, ``vectorize=True``).  The
script checks that the emcee callable equals the fitter's potential at a few
points before timing.

Measured
--------
* NUTS: ``MultiFieldFitter(num_chains=4, num_warmup=1000, num_samples=1000)``,
  compiled ahead of time (compile reported apart), wall time of warm-up +
  sampling; ``arviz.ess(method="bulk")`` of every population parameter.
* emcee (the baseline measured in the same run): ``max(--walkers, 2 dim + 2)``
  walkers (the stretch move needs at least twice as many walkers as dimensions),
  started from N(MAP, BFGS inverse Hessian) (not timed), ``--emcee-steps`` steps
  capped at ``--emcee-max-minutes``; burn-in 5 tau (at most half); ESS bulk with
  walkers as chains, and ``walkers x kept / tau``; flagged unreliable unless the
  kept chain exceeds 50 tau.
* Ratio per population parameter: NUTS ESS/s over emcee ESS/s (both ESS
  estimators); nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from pathlib import Path

import _common  # benchmarks/ (the script's own folder, or pytest's pythonpath)
import numpy as np
from bench_nuts import EmceeLogDensity

HERE = Path(__file__).resolve().parent

INFERENCE = HERE.parent / "inference"
TARGET_RATIO = 20.0
TARGET_NUTS_S = 300.0


class FiniteLogDensity(EmceeLogDensity):
    """``EmceeLogDensity`` with NaN (far-out proposals, e.g. a scatter of 1e3) mapped to
    -inf: rejected."""

    def __call__(self, z):
        value = super().__call__(z)
        return np.where(np.isnan(value), -np.inf, value)


def _simulate_fields():
    sys.path.insert(0, str(INFERENCE))
    try:
        import multifield_simulation
    finally:
        sys.path.remove(str(INFERENCE))
    return multifield_simulation.simulate_fields


def build_problem(args) -> dict:
    """Fields, fitter, stacked data and the shared flat log density (call inside
    ``jax.enable_x64``)."""
    import jax
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import potential_energy

    from jaxcomp.demographics import MultiFieldFitter, MultiFieldModel

    population, truth, catalogues, grids, shifts, n_obs = _simulate_fields()(
        n_fields=args.n_fields,
        n_min=args.n_min,
        n_max=args.n_max,
        max_shift=2.0,
        grid_shape=args.grid,
        seed=args.seed,
        progress=not args.quiet,
    )
    model = MultiFieldModel(
        population, "partial", parametrisation=getattr(args, "parametrisation", "non_centred")
    )
    fitter = MultiFieldFitter(
        model,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        target_accept_prob=args.target_accept,
    )
    data = fitter.prepare(
        [f"field_{f:02d}" for f in range(args.n_fields)], catalogues, grids, seed=args.seed
    )
    template = jax.tree.map(lambda x: x[0], fitter._init_params(data, 0))
    flat0, unravel = ravel_pytree(template)
    model_fn = fitter._model_fn

    def log_density(z_flat, data, grid):
        return -potential_energy(model_fn, (data, grid), {}, unravel(z_flat))

    reported = list(model.population_parameters) + [
        f"av_logit_mean[{k}]" for k in range(population.n_av_bins - 1)
    ]
    return {
        "model": model,
        "fitter": fitter,
        "data": data,
        "truth": truth,
        "n_obs": n_obs,
        "shifts": shifts,
        "dim": int(flat0.shape[0]),
        "unravel": unravel,
        "log_density": log_density,
        "reported": reported,
    }


def _population_draws(samples: dict, name: str) -> np.ndarray:
    """(chains, draws) of a reported population parameter from constrained samples."""
    if name.startswith("av_logit_mean["):
        return np.asarray(samples["av_logit_mean"])[..., int(name[len("av_logit_mean[") : -1])]
    return np.asarray(samples[name])


def _ess(draws: dict) -> dict:
    import arviz as az

    dataset = az.from_dict(posterior=draws).posterior
    ess = {n: float(az.ess(dataset, method="bulk", var_names=[n])[n]) for n in draws}
    mcse = {n: float(az.mcse(dataset, method="mean", var_names=[n])[n]) for n in draws}
    return {
        "ess_bulk": ess,
        "mcse_mean": mcse,
        "mean": {n: float(np.mean(v)) for n, v in draws.items()},
    }


def run_nuts(problem: dict, seed: int) -> dict:
    fitter = problem["fitter"]
    result = fitter.fit(problem["data"], seed=seed, log_likelihood=False)
    posterior = result.idata.posterior
    draws = {n: _population_draws(posterior, n) for n in problem["reported"]}
    out = _ess(draws)
    out.update(
        {
            "wall_s": result.runtime_s,
            "divergences": result.num_divergences,
            "mean_leapfrog_steps": float(np.mean(result.idata.sample_stats["n_steps"])),
            "sampling_gradient_evaluations": int(np.sum(result.idata.sample_stats["n_steps"])),
            "max_r_hat_population": float(
                np.nanmax([result.r_hat[n] for n in result.model.population_parameters])
            ),
            "max_r_hat_all": float(np.nanmax(result.summary["r_hat"])),
        }
    )
    # load-independent cost: ESS per 1000 log-density gradients of the sampling phase
    out["ess_bulk_per_1000_gradients"] = {
        n: 1000.0 * v / out["sampling_gradient_evaluations"] for n, v in out["ess_bulk"].items()
    }
    return out


def run_emcee(
    problem: dict, walkers: int, steps: int, max_minutes: float, seed: int, quiet: bool
) -> dict:
    import emcee
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    dim = problem["dim"]
    fitter, data = problem["fitter"], problem["data"]
    log_prob = FiniteLogDensity(problem, vectorized=True)
    start = time.perf_counter()
    for n in sorted({walkers, walkers // 2}):
        log_prob(np.zeros((n, dim)))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    potential = jax.jit(jax.value_and_grad(lambda z: -problem["log_density"](z, data, fitter.grid)))
    res = minimize(
        lambda x: tuple(np.asarray(v, np.float64) for v in potential(jnp.asarray(x))),
        np.zeros(dim),
        jac=True,
        method="BFGS",
    )
    cov = 0.5 * (np.asarray(res.hess_inv) + np.asarray(res.hess_inv).T)
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        chol = np.eye(dim) * 0.1
    map_s = time.perf_counter() - start
    rng = np.random.default_rng([seed, 31337])
    p0 = np.asarray(res.x) + rng.standard_normal((walkers, dim)) @ chol.T
    sampler = emcee.EnsembleSampler(walkers, dim, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()
    probe_steps = 20
    t0 = time.perf_counter()
    state = sampler.run_mcmc(p0, probe_steps, progress=False)
    per_step = (time.perf_counter() - t0) / probe_steps
    capped = None
    if (steps - probe_steps) * per_step > max_minutes * 60:
        capped = {"requested_steps": steps, "estimated_minutes": steps * per_step / 60}
        steps = max(int(max_minutes * 60 / per_step), 200)
        capped["steps"] = steps
        if not quiet:
            print(
                f"[capped] emcee: {capped['requested_steps']} steps would take "
                f"~{capped['estimated_minutes']:.0f} "
                f"min ({per_step * 1e3:.0f} ms/step); running {steps}"
            )
    sampler.run_mcmc(state, steps - probe_steps, progress=False)
    wall = time.perf_counter() - t0
    chain = sampler.get_chain()  # (steps, walkers, dim)
    flat = chain.reshape(-1, dim)
    constrained = {}
    block = 4000
    for i in range(0, flat.shape[0], block):
        z = jax.vmap(problem["unravel"])(jnp.asarray(flat[i : i + block]))
        part = fitter._constrain(z, data, fitter.grid)
        for n in problem["reported"]:
            base = "av_logit_mean" if n.startswith("av_logit_mean[") else n
            constrained.setdefault(n, []).append(
                _population_draws({base: np.asarray(part[base])}, n)
            )
    stacked = np.stack(
        [np.concatenate(constrained[n]).reshape(steps, walkers) for n in problem["reported"]],
        axis=-1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tau_half = emcee.autocorr.integrated_time(stacked[steps // 2 :], quiet=True)
        finite = np.isfinite(tau_half)  # NaN for a parameter whose walkers never moved
        burn = (
            min(math.ceil(5.0 * float(np.max(tau_half[finite]))), steps // 2)
            if finite.any()
            else steps // 2
        )
        kept = stacked[burn:]
        tau = emcee.autocorr.integrated_time(kept, quiet=True)
    draws = {n: np.swapaxes(kept[..., i], 0, 1) for i, n in enumerate(problem["reported"])}
    out = _ess(draws)
    out.update(
        {
            "wall_s": wall,
            "walkers": walkers,
            "steps": steps,
            "capped": capped,
            "burn_in_steps": burn,
            "kept_steps": int(kept.shape[0]),
            "seconds_per_step": per_step,
            "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
            "walkers_never_moved": int(np.sum(np.all(chain == chain[:1], axis=(0, 2)))),
            "tau": dict(zip(problem["reported"], map(float, tau))),
            "tau_reliable": bool(kept.shape[0] > 50 * np.max(tau)),
            "ess_tau": {
                n: float(walkers * kept.shape[0] / t) for n, t in zip(problem["reported"], tau)
            },
            "compile_s": compile_s,
            "map_bfgs_s": map_s,
        }
    )
    return out


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with ``--quick``'s sizes applied."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-fields", type=int, default=30)
    parser.add_argument("--n-min", type=int, default=800)
    parser.add_argument("--n-max", type=int, default=1200)
    parser.add_argument("--grid", type=int, nargs=3, default=(121, 71, 13))
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--target-accept", type=float, default=0.9)
    parser.add_argument("--walkers", type=int, default=100)
    parser.add_argument("--emcee-steps", type=int, default=20000)
    parser.add_argument("--emcee-max-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--parametrisation",
        choices=("non_centred", "centred"),
        default="non_centred",
        help="coordinates of the per-field values (MultiFieldModel.parametrisation)",
    )
    parser.add_argument(
        "--emcee-parametrisation",
        choices=("same", "non_centred", "centred"),
        default="same",
        help="coordinates emcee samples in (default: NUTS's); the posterior is the same in "
        "both, so each sampler can be measured in the coordinates that suit it",
    )
    parser.add_argument(
        "--quick", action="store_true", help="4 fields x 150-300 clusters, short chains"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "bench_multifield.json")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_fields, args.n_min, args.n_max, args.grid = 4, 150, 300, (41, 26, 7)
        args.num_warmup = args.num_samples = 200
        args.emcee_steps, args.emcee_max_minutes = 1000, 1.0
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import jax

    logging.getLogger("emcee").setLevel(logging.ERROR)
    import emcee
    import numpyro

    info = _common.machine_info()
    info.update({"numpyro": numpyro.__version__, "emcee": emcee.__version__})
    payload = {
        "benchmark": "multifield_nuts_vs_emcee",
        "machine": info,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    with jax.enable_x64(True):
        start = time.perf_counter()
        problem = build_problem(args)
        payload["problem"] = {
            "n_fields": args.n_fields,
            "n_obs": problem["n_obs"].tolist(),
            "n_clusters": int(problem["n_obs"].sum()),
            "dim": problem["dim"],
            "depth_shift_mag": problem["shifts"].tolist(),
            "model": problem["model"].describe(),
            "setup_s": time.perf_counter() - start,
        }
        if not args.quiet:
            print(
                f"machine: {info['cpu']}, {info['cores']} cores, load "
                f"{info.get('load_average_at_start')}; "
                f"{args.n_fields} fields, {int(problem['n_obs'].sum())} clusters, "
                f"{problem['dim']} coordinates"
            )
        # same target: the emcee callable against the fitter's potential
        from numpyro.infer.util import potential_energy

        fitter = problem["fitter"]
        points = np.random.default_rng(123).normal(0.0, 0.5, size=(4, problem["dim"]))
        emcee_values = np.asarray(EmceeLogDensity(problem)(points))
        nuts_values = np.array(
            [
                -float(
                    potential_energy(
                        fitter._model_fn, (problem["data"], fitter.grid), {}, problem["unravel"](p)
                    )
                )
                for p in points
            ]
        )
        difference = float(np.max(np.abs(emcee_values - nuts_values)))
        payload["same_target_max_abs_diff"] = difference
        if not difference <= 1e-9 * max(1.0, float(np.max(np.abs(nuts_values)))):
            raise SystemExit(
                f"the samplers' log densities disagree (max |d ln p| = {difference}); not timing"
            )
        compile_s = fitter.compile(problem["data"])
        payload["nuts_compile_s"] = compile_s
        nuts = run_nuts(problem, args.seed)
        payload["nuts"] = nuts
        if not args.quiet:
            print(
                f"NUTS: compile {compile_s:.1f} s, sampling {nuts['wall_s']:.1f} s, divergences "
                f"{nuts['divergences']}, max r_hat (population) {nuts['max_r_hat_population']:.3f}"
            )
        walkers = max(args.walkers, 2 * problem["dim"] + 2)
        walkers += walkers % 2
        emcee_coordinates = (
            args.parametrisation
            if args.emcee_parametrisation == "same"
            else args.emcee_parametrisation
        )
        payload["emcee_parametrisation"] = emcee_coordinates
        emcee_problem = problem
        if emcee_coordinates != args.parametrisation:
            # the same simulated fields (same seed), the per-field values in emcee's coordinates
            emcee_problem = build_problem(
                argparse.Namespace(**{**vars(args), "parametrisation": emcee_coordinates})
            )
            emcee_problem["fitter"].compile(emcee_problem["data"])  # builds its constrain map
        baseline = run_emcee(
            emcee_problem, walkers, args.emcee_steps, args.emcee_max_minutes, args.seed, args.quiet
        )
        payload["emcee"] = baseline
    rows, ratios, ratios_tau = [], {}, {}
    for n in problem["reported"]:
        nuts_rate = nuts["ess_bulk"][n] / nuts["wall_s"]
        emcee_rate = baseline["ess_bulk"][n] / baseline["wall_s"]
        emcee_tau_rate = baseline["ess_tau"][n] / baseline["wall_s"]
        ratios[n] = nuts_rate / emcee_rate
        ratios_tau[n] = nuts_rate / emcee_tau_rate
        rows.append(
            [
                n,
                f"{nuts['ess_bulk'][n]:.0f}",
                f"{nuts_rate:.2f}",
                f"{baseline['ess_bulk'][n]:.0f}",
                f"{emcee_rate:.3f}",
                f"{ratios[n]:.0f}x",
                f"{ratios_tau[n]:.0f}x",
            ]
        )
    payload["ratio_ess_per_s_nuts_over_emcee"] = ratios
    payload["ratio_ess_per_s_nuts_over_emcee_tau"] = ratios_tau
    payload["min_ratio"] = float(min(ratios.values()))
    payload["targets"] = {
        "ratio": TARGET_RATIO,
        "nuts_wall_s": TARGET_NUTS_S,
        "ratio_met": bool(min(ratios.values()) >= TARGET_RATIO),
        "nuts_wall_met": bool(nuts["wall_s"] < TARGET_NUTS_S),
    }
    _common.write_json(args.json, payload)
    if not args.quiet:
        print(
            f"emcee: {walkers} walkers x {baseline['steps']} steps, {baseline['wall_s']:.1f} "
            "s, acceptance "
            f"{baseline['acceptance_fraction']:.2f}, burn-in {baseline['burn_in_steps']}, tau "
            "reliable "
            f"{baseline['tau_reliable']} (max tau {max(baseline['tau'].values()):.0f} steps)"
        )
        print(
            _common.table(
                rows,
                [
                    "parameter",
                    "NUTS ESS",
                    "NUTS ESS/s",
                    "emcee ESS",
                    "emcee ESS/s",
                    "ratio (bulk)",
                    "ratio (tau)",
                ],
            )
        )
        print(
            f"min ratio {payload['min_ratio']:.0f}x (target {TARGET_RATIO:.0f}x); NUTS "
            f"{nuts['wall_s']:.0f} s "
            f"(target < {TARGET_NUTS_S:.0f} s)"
        )
    return payload


if __name__ == "__main__":
    main()
