"""ESS per second of jaxcomp's NUTS population fit versus emcee on exactly the same log density.

Usage::

    python benchmarks/bench_nuts.py              # full run: ~1000 clusters, 4 x (1000 + 1000) NUTS,
    3 rounds
    python benchmarks/bench_nuts.py --quick      # CI smoke run (< 60 s)
    python benchmarks/bench_nuts.py --json results.json

The problem
-----------
A catalogue of about ``--n-obs`` (1000) detected clusters is simulated from a
known population (:func:`jaxcomp.demographics.simulate_catalogue`): Schechter
CMF (alpha_M = -2, log M_break = 5), power-law CAF (alpha_T = -0.8) on
log T in [6, 9.5], piecewise-constant p(A_V) on four bins (weights 0.4, 0.3,
0.2, 0.1), Poisson form with N drawn from Poisson(n_obs / alpha(truth)),
thinned by the analytic ``LogisticSelection(log_mass_50_young=2.5,
age_slope=0.6)`` (the SBC selection of ``inference/sbc.py``).  The likelihood
is jaxcomp's selection-normalised Poisson likelihood
(``PopulationModel(likelihood="poisson")``): ``sum ln dN/dtheta(theta_i) -
N alpha(Lambda)``, alpha from p_obs precomputed on a ``SelectionGrid`` of
``--grid`` (121 x 71 x 13) nodes.  Hyperparameters (8 reported, 7 free):
alpha_M ~ U(-3, -1), log_M_break ~ U(3.5, 7.5), alpha_T ~ U(-3, 1),
log10_N ~ U(0, 9) (a 1/N prior), av_weights ~ Dirichlet(1, 1, 1, 1).
``--population broken`` fits a richer model to a population drawn from it: a
broken power-law CAF (alpha_T_young ~ U(-2, 1) below log T_break ~ U(6.5, 9.5),
truth -0.2 and 7.5) and p(A_V) on eight 0.375 mag bins (Dirichlet(1) on 8
weights): 13 free hyperparameters.

The target both samplers see
----------------------------
NumPyro's unconstrained space: every uniform parameter through
``biject_to(interval(low, high))`` (a scaled logit), the A_V weights through
``biject_to(simplex)`` (stick breaking, 3 coordinates), so 7 real coordinates
``z``.  The log density is ``-numpyro.infer.util.potential_energy(model, (data,
grid), {}, z)`` = log likelihood + log prior + log |Jacobian|, the function
NUTS integrates inside :class:`jaxcomp.demographics.PopulationFitter`.  emcee
calls the same function, jitted and ``vmap``-ed over walkers, through a numpy
wrapper with ``vectorize=True`` (one call per half-ensemble move: the fastest
way to drive emcee, so the baseline is as strong as it can be).  Both run in
float64 (the fitter's default ``x64=True``).  The script checks before timing
that the emcee callable equals an independent re-implementation (transforms,
priors, Jacobians and :func:`jaxcomp.demographics.log_likelihood`) at a few
points.

Measured
--------
* jaxcomp NUTS: ``PopulationFitter(..., num_chains=4, num_warmup=1000,
  num_samples=1000, chain_method=--chain-method)`` with its NUTS program
  compiled ahead of time (``PopulationFitter.compile``; the compile time
  is reported separately), then ``fitter.fit(data, seed)``: wall time of the
  warm-up + sampling (``FitResult.runtime_s``).  The default chain method is
  the library's, ``"parallel"``: one chain per task on one thread per core (a
  single chain keeps one core busy; the vectorised emcee call already spreads
  over ~1.4 of the 2 cores through XLA's own threads, and splitting its batch
  over two threads measured no faster).
* emcee: ``--walkers`` (100) walkers, stretch move, ``--emcee-steps`` steps
  started from N(MAP, BFGS inverse Hessian) (about the Laplace approximation
  at the unconstrained MAP; not timed: generous to emcee).  Burn-in: 5 x the
  largest integrated autocorrelation time tau (estimated on the second half of
  the chain) is discarded; tau is then re-estimated on what is kept and the
  run is flagged unless the kept chain is longer than 50 tau (emcee's
  reliability rule).  The wall time counts every step, burn-in included (as
  NUTS's counts its warm-up).
* ESS: ``arviz.ess(method="bulk")`` of the constrained hyperparameters
  (emcee: walkers as chains, as ``arviz.from_emcee`` does), also emcee's
  ``walkers x kept steps / tau``.  ESS/s = ESS / sampling wall time.
* Agreement: per hyperparameter, z = (mean_NUTS - mean_emcee) /
  sqrt(MCSE_NUTS^2 + MCSE_emcee^2) (``arviz.mcse``); the run is flagged if
  any |z| > 4.
* The main NUTS configuration is the fitter as users get it: ``dense_mass="auto"``
  (a dense mass matrix for these models).  Optional (default on in the full run):
  the same fitter with ``dense_mass=False`` (diagonal), and the step rate of emcee
  calling the jitted scalar log density once per walker (``vectorize=False``), i.e.
  the usual way of calling a Python log-probability.

Configurations are timed in ``--rounds`` interleaved rounds (order rotated
every round, a fresh seed for every sampler each round, the same catalogue);
the tables show medians over rounds and the range.  Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_RATIO = 10.0
AGREEMENT_Z = 4.0
TRUTH = {"alpha_M": -2.0, "log_M_break": 5.0, "alpha_T": -0.8, "av_weights": (0.4, 0.3, 0.2, 0.1)}
SELECTION_KW = {"log_mass_50_young": 2.5, "age_slope": 0.6}
AGE_RANGE = (6.0, 9.5)
#: The simulated populations and the models fitted to them (``--population``).
POPULATIONS = {
    "paper": {  # Schechter CMF, power-law CAF, 4-bin p(A_V): 7 free hyperparameters
        "model": dict(
            mass="schechter",
            age="power_law",
            av="piecewise",
            log_age_range=AGE_RANGE,
            likelihood="poisson",
        ),
        "truth": TRUTH,
    },
    "broken": {  # Schechter CMF, broken power-law CAF, 8-bin p(A_V): 13 free hyperparameters
        "model": dict(
            mass="schechter",
            age="broken_power_law",
            av="piecewise",
            av_edges=tuple(np.linspace(0.0, 3.0, 9)),
            log_age_range=AGE_RANGE,
            likelihood="poisson",
        ),
        "truth": {
            "alpha_M": -2.0,
            "log_M_break": 5.0,
            "alpha_T": -0.8,
            "alpha_T_young": -0.2,
            "log_T_break": 7.5,
            "av_weights": (0.2, 0.18, 0.15, 0.13, 0.11, 0.09, 0.08, 0.06),
        },
    },
}


# ------------------------------------------------------------------ problem
def build_problem(
    n_obs: int = 1000,
    grid_shape=(121, 71, 13),
    seed: int = 0,
    *,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    chain_method: str = "parallel",
    population: str = "paper",
) -> dict:
    """Model, selection grid, simulated catalogue, data, fitter and the shared log density.

    Call inside ``jax.enable_x64(True)``.
    """
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import potential_energy

    from jaxcomp.demographics import (
        PopulationFitter,
        PopulationModel,
        SelectionGrid,
        simulate_catalogue,
    )
    from jaxcomp.demographics.likelihood import detection_fraction, prepare_data
    from jaxcomp.selection.synthetic import LogisticSelection

    model = PopulationModel(**POPULATIONS[population]["model"])
    selection = LogisticSelection(**SELECTION_KW)
    grid = SelectionGrid.from_selection(selection, shape=tuple(grid_shape))
    fitter = PopulationFitter(
        model,
        grid,
        dense_mass="auto",
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
    )
    truth = {k: np.asarray(v, np.float64) for k, v in POPULATIONS[population]["truth"].items()}
    alpha_true = float(
        detection_fraction(model, {k: jnp.asarray(v) for k, v in truth.items()}, fitter.grid)
    )
    n_total = int(np.random.default_rng(seed).poisson(n_obs / alpha_true))
    catalogue = simulate_catalogue(model, truth, selection, n_total=n_total, seed=seed)
    data = prepare_data(catalogue, model)

    names = model.scalar_parameters  # order of the scalar parameters
    z_template = {name: jnp.zeros(()) for name in names}
    z_template["av_weights"] = jnp.zeros(model.n_av_bins - 1)
    flat0, unravel = ravel_pytree(z_template)
    model_fn = fitter._model_fn  # the NumPyro model the fitter's NUTS kernel differentiates

    def log_density(z_flat, data, grid):
        """ln p(z | catalogue) in NumPyro's unconstrained space (= -potential energy)."""
        return -potential_energy(model_fn, (data, grid), {}, unravel(z_flat))

    return {
        "model": model,
        "selection": selection,
        "grid": grid,
        "fitter": fitter,
        "catalogue": catalogue,
        "data": data,
        "truth": truth,
        "alpha_true": alpha_true,
        "n_total": n_total,
        "n_obs": data.n_objects,
        "dim": int(flat0.shape[0]),
        "unravel": unravel,
        "log_density": log_density,
        "reported": reported_names(model),
    }


def reported_names(model) -> list[str]:
    return list(model.scalar_parameters) + [f"av_weights[{k}]" for k in range(model.n_av_bins)]


def constrain_flat(problem: dict, z_flat):
    """Constrained hyperparameters of unconstrained flat vectors (..., dim): dict of arrays (...,) /
    (..., bins)."""
    import jax
    from numpyro.distributions import constraints
    from numpyro.distributions.transforms import biject_to

    model = problem["model"]

    def one(z):
        u = problem["unravel"](z)
        out = {
            name: biject_to(constraints.interval(*model.prior_bounds(name)))(u[name])
            for name in model.scalar_parameters
        }
        out["av_weights"] = biject_to(constraints.simplex)(u["av_weights"])
        return out

    z_flat = jax.numpy.asarray(z_flat)
    batch = z_flat.shape[:-1]
    flat = z_flat.reshape((-1, z_flat.shape[-1]))
    values = jax.jit(jax.vmap(one))(flat)
    return {k: np.asarray(v).reshape(batch + np.shape(v)[1:]) for k, v in values.items()}


def reference_log_density(problem: dict, z_flat):
    """The same target written out by hand: priors, Jacobians, jaxcomp's ``log_likelihood``."""
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from numpyro.distributions import constraints
    from numpyro.distributions.transforms import biject_to

    from jaxcomp.demographics.likelihood import log_likelihood

    model = problem["model"]
    u = problem["unravel"](jnp.asarray(z_flat))
    total = 0.0
    params = {}
    for name in model.scalar_parameters:
        low, high = model.prior_bounds(name)
        transform = biject_to(constraints.interval(low, high))
        x = transform(u[name])
        total = (
            total + dist.Uniform(low, high).log_prob(x) + transform.log_abs_det_jacobian(u[name], x)
        )
        params[name] = x
    transform = biject_to(constraints.simplex)
    w = transform(u["av_weights"])
    total = total + dist.Dirichlet(
        jnp.full(model.n_av_bins, float(model.av_concentration))
    ).log_prob(w)
    total = total + transform.log_abs_det_jacobian(u["av_weights"], w)
    params["av_weights"] = w
    return total + log_likelihood(model, params, problem["data"], problem["fitter"].grid)


class EmceeLogDensity:
    """numpy -> numpy callable for emcee: the jitted log density, vmapped over walkers or one
    point."""

    def __init__(self, problem: dict, vectorized: bool = True):
        import jax

        self.problem = problem
        self.vectorized = vectorized
        f = problem["log_density"]
        self._fn = jax.jit(jax.vmap(f, in_axes=(0, None, None)) if vectorized else f)
        self.calls = 0

    def __call__(self, z):
        self.calls += 1
        value = self._fn(
            np.asarray(z, np.float64), self.problem["data"], self.problem["fitter"].grid
        )
        return np.asarray(value) if self.vectorized else float(value)


def check_same_target(
    problem: dict,
    vectorized=None,
    per_walker=None,
    n_points: int = 5,
    seed: int = 123,
    pad_to: int = 0,
) -> dict:
    """Max |Δ ln p| between the emcee callables, the fitter's potential and the hand-written
    reference.

    The points are drawn N(0, 1) in the unconstrained space (all over the prior, not just near the
    mode).
    """
    import jax
    from numpyro.infer.util import potential_energy

    vectorized = vectorized or EmceeLogDensity(problem, vectorized=True)
    per_walker = per_walker or EmceeLogDensity(problem, vectorized=False)
    rng = np.random.default_rng(seed)
    points = rng.normal(0.0, 1.0, size=(n_points, problem["dim"]))
    fitter = problem["fitter"]
    # the potential the fitter's NUTS kernel is built from (fit.PopulationFitter._compile:
    # potential_fn_gen)
    potential = jax.jit(
        lambda z, data, grid: potential_energy(
            fitter._model_fn, (data, grid), {}, problem["unravel"](z)
        )
    )
    reference = jax.jit(lambda z: reference_log_density(problem, z))
    args = (problem["data"], fitter.grid)
    ref = np.array([float(reference(p)) for p in points])
    # evaluate the vectorized callable at the half-ensemble shape emcee uses (no extra compile)
    padded = np.concatenate([points, np.zeros((max(pad_to - n_points, 0), problem["dim"]))])
    values = {
        "emcee_vectorized": np.asarray(vectorized(padded))[:n_points],
        "emcee_per_walker": np.array([per_walker(p) for p in points]),
        "nuts_potential": np.array([-float(potential(p, *args)) for p in points]),
    }
    out = {"points": points.tolist(), "log_density_reference": ref.tolist()}
    for name, v in values.items():
        out[f"max_abs_diff_{name}_vs_reference"] = float(np.max(np.abs(v - ref)))
    return out


# ------------------------------------------------------------------ samplers
class NutsRunner:
    """A PopulationFitter whose NUTS program is compiled ahead of time (compile timed
    separately)."""

    def __init__(self, problem: dict, fitter):
        import jax
        import jax.numpy as jnp

        self.problem = problem
        self.fitter = fitter
        data = problem["data"]
        s = fitter.settings
        self.compile_runner_s = fitter.compile(data)
        init = fitter._init_params(data, 0)
        start = time.perf_counter()
        n = s["num_chains"] * s["num_samples"]
        z = jax.tree.map(lambda x: jnp.zeros((n,) + x.shape[1:], x.dtype), init)
        jax.block_until_ready(fitter._constrain(z, data, fitter.grid))
        self.compile_constrain_s = time.perf_counter() - start

    def run(self, seed: int) -> dict:
        import arviz as az

        result = self.fitter.fit(self.problem["data"], seed=seed, log_likelihood=False)
        posterior = result.idata.posterior
        names = self.problem["reported"]
        var_names = list(self.problem["model"].parameter_names)
        ess = _flatten_dataset(az.ess(posterior, method="bulk", var_names=var_names), names)
        mcse = _flatten_dataset(az.mcse(posterior, method="mean", var_names=var_names), names)
        means = {n: float(np.mean(_draws(posterior, n))) for n in names}
        sds = {n: float(np.std(_draws(posterior, n))) for n in names}
        stats = result.idata.sample_stats
        return {
            "seed": seed,
            "wall_s": result.runtime_s,
            "ess_bulk": ess,
            "mcse_mean": mcse,
            "mean": means,
            "sd": sds,
            "divergences": result.num_divergences,
            "mean_leapfrog_steps": float(np.mean(stats["n_steps"])),
            "max_r_hat": float(np.nanmax(result.summary["r_hat"])),
            "n_draws": int(posterior.sizes["chain"] * posterior.sizes["draw"]),
        }


def _draws(posterior, name: str) -> np.ndarray:
    if name.startswith("av_weights["):
        return np.asarray(posterior["av_weights"])[..., int(name[len("av_weights[") : -1])]
    return np.asarray(posterior[name])


def _flatten_dataset(dataset, names) -> dict:
    out = {}
    for name in names:
        if name.startswith("av_weights["):
            out[name] = float(
                np.asarray(dataset["av_weights"]).ravel()[int(name[len("av_weights[") : -1])]
            )
        else:
            out[name] = float(np.asarray(dataset[name]))
    return out


class EmceeRunner:
    """emcee's EnsembleSampler on the shared log density, started from the Laplace approximation at
    the MAP."""

    def __init__(
        self,
        problem: dict,
        walkers: int,
        log_prob=None,
        log_prob_scalar=None,
        per_walker: bool = True,
    ):
        import jax
        import jax.numpy as jnp
        from scipy.optimize import minimize

        self.problem = problem
        self.walkers = walkers
        self.log_prob = log_prob or EmceeLogDensity(problem, vectorized=True)
        self.log_prob_scalar = log_prob_scalar or EmceeLogDensity(problem, vectorized=False)
        data, grid = problem["data"], problem["fitter"].grid
        # compile the shapes emcee uses: all walkers (initial state) and half the ensemble (each
        # move)
        dim = problem["dim"]
        start = time.perf_counter()
        for n in sorted({walkers, walkers // 2, walkers - walkers // 2}):
            self.log_prob(np.zeros((n, dim)))
        if per_walker:
            self.log_prob_scalar(np.zeros(dim))
        self.compile_s = time.perf_counter() - start
        # Start: N(MAP, BFGS inverse Hessian) in the unconstrained space (not timed as sampling)
        start = time.perf_counter()
        potential = jax.jit(jax.value_and_grad(lambda z: -problem["log_density"](z, data, grid)))
        res = minimize(
            lambda x: tuple(np.asarray(v, np.float64) for v in potential(jnp.asarray(x))),
            np.zeros(dim),
            jac=True,
            method="BFGS",
        )
        self.map = np.asarray(res.x)
        cov = 0.5 * (np.asarray(res.hess_inv) + np.asarray(res.hess_inv).T)
        try:
            self.chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            cov = np.eye(dim) * 1e-2
            self.chol = np.linalg.cholesky(cov)
        self.cov = cov
        self.map_s = time.perf_counter() - start
        self.map_log_density = -float(res.fun)

    def initial_state(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng([seed, 31337])
        return self.map + rng.standard_normal((self.walkers, self.problem["dim"])) @ self.chol.T

    def seconds_per_step(self, steps: int, seed: int, vectorized: bool) -> float:
        """Wall seconds per ensemble step over ``steps`` steps (no analysis)."""
        import emcee

        fn = self.log_prob if vectorized else self.log_prob_scalar
        sampler = emcee.EnsembleSampler(self.walkers, self.problem["dim"], fn, vectorize=vectorized)
        start = time.perf_counter()
        sampler.run_mcmc(self.initial_state(seed), steps, progress=False)
        return (time.perf_counter() - start) / steps

    def run(self, seed: int, steps: int) -> dict:
        import arviz as az
        import emcee

        sampler = emcee.EnsembleSampler(
            self.walkers, self.problem["dim"], self.log_prob, vectorize=True
        )
        sampler.random_state = np.random.RandomState(seed).get_state()
        p0 = self.initial_state(seed)
        start = time.perf_counter()
        sampler.run_mcmc(p0, steps, progress=False)
        wall = time.perf_counter() - start
        chain = sampler.get_chain()  # (steps, walkers, dim), unconstrained
        names = self.problem["reported"]
        constrained = constrain_flat(self.problem, chain)
        stacked = np.stack(
            [_column(constrained, n) for n in names], axis=-1
        )  # (steps, walkers, n_reported)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tau_half = emcee.autocorr.integrated_time(stacked[steps // 2 :], quiet=True)
        burn = min(int(math.ceil(5.0 * float(np.max(tau_half)))), steps // 2)
        kept = stacked[burn:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tau = emcee.autocorr.integrated_time(kept, quiet=True)
        kept_steps = kept.shape[0]
        posterior = {
            n: np.swapaxes(kept[..., i], 0, 1) for i, n in enumerate(names)
        }  # walkers as chains
        dataset = az.from_dict(posterior=posterior).posterior
        ess = {n: float(az.ess(dataset, method="bulk", var_names=[n])[n]) for n in names}
        mcse = {n: float(az.mcse(dataset, method="mean", var_names=[n])[n]) for n in names}
        return {
            "seed": seed,
            "wall_s": wall,
            "steps": steps,
            "burn_in_steps": burn,
            "kept_steps": kept_steps,
            "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
            "tau": {n: float(t) for n, t in zip(names, tau)},
            "kept_over_max_tau": float(kept_steps / np.max(tau)),
            "tau_reliable": bool(kept_steps > 50 * np.max(tau)),
            "ess_bulk": ess,
            "ess_tau": {n: float(self.walkers * kept_steps / t) for n, t in zip(names, tau)},
            "mcse_mean": mcse,
            "mean": {n: float(np.mean(kept[..., i])) for i, n in enumerate(names)},
            "sd": {n: float(np.std(kept[..., i])) for i, n in enumerate(names)},
            "log_prob_calls": self.log_prob.calls,
        }


def _column(constrained: dict, name: str) -> np.ndarray:
    if name.startswith("av_weights["):
        return constrained["av_weights"][..., int(name[len("av_weights[") : -1])]
    return constrained[name]


# ------------------------------------------------------------------ benchmark
def agreement(nuts: dict, emcee_run: dict, names) -> dict:
    z = {}
    for n in names:
        se = math.hypot(nuts["mcse_mean"][n], emcee_run["mcse_mean"][n])
        z[n] = (nuts["mean"][n] - emcee_run["mean"][n]) / se if se > 0 else float("inf")
    return {
        "z": z,
        "max_abs_z": max(abs(v) for v in z.values()),
        "agree": all(abs(v) <= AGREEMENT_Z for v in z.values()),
    }


def run(args) -> dict:
    import jax

    logging.getLogger("emcee").setLevel(
        logging.ERROR
    )  # the short-chain warning is reported by this script

    info = _common.machine_info()
    import arviz
    import emcee
    import numpyro

    info.update(
        {"numpyro": numpyro.__version__, "emcee": emcee.__version__, "arviz": arviz.__version__}
    )
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, jax {info['jax']}, numpyro "
        f"{info['numpyro']}, "
        f"emcee {info['emcee']}, load average {info['load_average_at_start']}"
    )
    payload = {
        "benchmark": "nuts_vs_emcee",
        "quick": args.quick,
        "machine": info,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    with jax.enable_x64(True):
        start = time.perf_counter()
        problem = build_problem(
            args.n_obs,
            args.grid,
            args.seed,
            num_warmup=args.num_warmup,
            num_samples=args.num_samples,
            num_chains=args.num_chains,
            chain_method=args.chain_method,
            population=args.population,
        )
        setup_s = time.perf_counter() - start
        names = problem["reported"]
        print(
            f"\n=== problem: {problem['model'].describe()}; {problem['n_obs']} detected of N = "
            f"{problem['n_total']} "
            f"(alpha(truth) = {problem['alpha_true']:.4f}); grid {tuple(args.grid)}; "
            f"{problem['dim']} unconstrained "
            f"coordinates, {len(names)} reported hyperparameters; setup {setup_s:.1f} s ==="
        )
        payload["problem"] = {
            "model": problem["model"].describe(),
            "n_obs": problem["n_obs"],
            "n_total": problem["n_total"],
            "alpha_true": problem["alpha_true"],
            "truth": {k: np.asarray(v).tolist() for k, v in problem["truth"].items()},
            "selection": {"LogisticSelection": SELECTION_KW},
            "grid_shape": list(args.grid),
            "likelihood_grid_shape": list(np.shape(problem["fitter"].grid.p_obs_binned)),
            "priors": {
                n: problem["model"].prior_bounds(n) for n in problem["model"].scalar_parameters
            }
            | {"av_weights": f"Dirichlet({problem['model'].av_concentration})"},
            "parameterisation": "NumPyro unconstrained space (interval -> scaled logit, simplex -> "
            "stick breaking); "
            "log density = -potential_energy = log likelihood + log prior + log|J|",
            "dtype": "float64",
            "setup_s": setup_s,
        }

        # ------------------------------------------------------ same target first
        log_prob = EmceeLogDensity(problem, vectorized=True)
        log_prob_scalar = EmceeLogDensity(problem, vectorized=False)
        check = check_same_target(problem, log_prob, log_prob_scalar, pad_to=args.walkers // 2)
        payload["same_target_check"] = check
        worst = max(v for k, v in check.items() if k.startswith("max_abs"))
        print(
            f"same log density at {len(check['points'])} points (ln p from "
            f"{min(check['log_density_reference']):.0f} "
            f"to {max(check['log_density_reference']):.0f}; max |d ln p| vs hand-written "
            "reference): "
            f"emcee vectorized {check['max_abs_diff_emcee_vectorized_vs_reference']:.1e}, "
            f"emcee per walker {check['max_abs_diff_emcee_per_walker_vs_reference']:.1e}, "
            f"fitter's NUTS potential {check['max_abs_diff_nuts_potential_vs_reference']:.1e}"
        )
        if not worst <= 1e-9 * max(1.0, max(abs(v) for v in check["log_density_reference"])):
            raise SystemExit(
                f"the samplers' log densities disagree (max |d ln p| = {worst}); not timing"
            )

        # ------------------------------------------------------------- compile
        runners = {"jaxcomp NUTS": NutsRunner(problem, problem["fitter"])}
        if args.variants:
            from jaxcomp.demographics import PopulationFitter

            diagonal_fitter = PopulationFitter(
                problem["model"],
                problem["grid"],
                num_warmup=args.num_warmup,
                num_samples=args.num_samples,
                num_chains=args.num_chains,
                chain_method=args.chain_method,
                dense_mass=False,
            )
            runners["variant: NUTS diagonal mass"] = NutsRunner(problem, diagonal_fitter)
        emcee_runner = EmceeRunner(
            problem, args.walkers, log_prob, log_prob_scalar, per_walker=bool(args.emcee_loop_steps)
        )
        compile_info = {
            name: {"runner_s": r.compile_runner_s, "constrain_s": r.compile_constrain_s}
            for name, r in runners.items()
        }
        compile_info["emcee log density (vmapped per ensemble shape, + scalar)"] = {
            "jit_s": emcee_runner.compile_s
        }
        payload["compile"] = compile_info
        payload["emcee_start"] = {
            "map_bfgs_s": emcee_runner.map_s,
            "map_log_density": emcee_runner.map_log_density,
            "map_unconstrained": emcee_runner.map.tolist(),
            "laplace_sd_unconstrained": np.sqrt(np.diag(emcee_runner.cov)).tolist(),
        }
        for name, r in runners.items():
            print(
                f"compile {name}: NUTS program {r.compile_runner_s:.1f} s (AOT), constrain "
                f"{r.compile_constrain_s:.1f} s"
            )
        print(
            f"compile emcee log density: {emcee_runner.compile_s:.1f} s; MAP by BFGS (start, not "
            "timed): "
            f"{emcee_runner.map_s:.1f} s"
        )

        # ---------------------------------------------------- emcee step budget
        steps = args.emcee_steps
        probe = emcee_runner.seconds_per_step(args.probe_steps, seed=999, vectorized=True)
        estimate_min = steps * probe / 60.0
        capped = None
        if estimate_min > args.emcee_max_minutes:
            new_steps = max(int(args.emcee_max_minutes * 60.0 / probe), 100)
            capped = {
                "requested_steps": steps,
                "steps": new_steps,
                "estimated_minutes_uncapped": estimate_min,
            }
            print(
                f"[capped] emcee: {steps} steps would take ~{estimate_min:.0f} min per run "
                f"({probe * 1e3:.1f} ms/step); running {new_steps} steps instead"
            )
            steps = new_steps
        payload["emcee_steps"] = steps
        payload["emcee_capped"] = capped
        print(
            f"emcee: {args.walkers} walkers x {steps} steps (~{steps * probe:.0f} s at the probed "
            f"{probe * 1e3:.1f} ms/step); NUTS: {args.num_chains} chains x ({args.num_warmup} + "
            f"{args.num_samples}) "
            f"({args.chain_method}); {args.rounds} round(s)"
        )

        # -------------------------------------------------------------- rounds
        configs = {name: (lambda seed, r=r: r.run(seed)) for name, r in runners.items()}
        configs["emcee"] = lambda seed: emcee_runner.run(seed, steps)
        if args.emcee_loop_steps:
            configs["emcee per-walker calls (step rate only)"] = lambda seed: {
                "seconds_per_step": emcee_runner.seconds_per_step(
                    args.emcee_loop_steps, seed, vectorized=False
                ),
                "steps": args.emcee_loop_steps,
            }
        rounds = []
        for index in range(args.rounds):
            names_order = list(configs)
            shift = index % len(names_order)
            record = {"load_average": _common.load_average()}
            for name in names_order[shift:] + names_order[:shift]:
                record[name] = configs[name](args.seed + 1000 * (index + 1))
                if "wall_s" in record[name]:
                    print(
                        f"  round {index + 1}: {name}: {record[name]['wall_s']:.1f} s", flush=True
                    )
            record["agreement"] = agreement(record["jaxcomp NUTS"], record["emcee"], names)
            if "variant: NUTS diagonal mass" in record:
                record["agreement_diagonal_vs_emcee"] = agreement(
                    record["variant: NUTS diagonal mass"], record["emcee"], names
                )
            e = record["emcee"]
            print(
                f"  round {index + 1}/{args.rounds} done (load average {_common.load_average()}); "
                "emcee burn-in "
                f"{e['burn_in_steps']} steps, kept {e['kept_steps']} = "
                f"{e['kept_over_max_tau']:.0f} x max tau "
                f"({'reliable' if e['tau_reliable'] else 'UNRELIABLE: kept chain < 50 tau'}), "
                "acceptance "
                f"{e['acceptance_fraction']:.2f}; NUTS divergences "
                f"{record['jaxcomp NUTS']['divergences']}, "
                f"max r_hat {record['jaxcomp NUTS']['max_r_hat']:.3f}, "
                f"{record['jaxcomp NUTS']['mean_leapfrog_steps']:.1f} leapfrog steps/draw",
                flush=True,
            )
            rounds.append(record)
        payload["rounds"] = rounds
    payload["summary"] = summarise(payload, names, list(runners), args)
    return payload


def summarise(payload: dict, names, nuts_names, args) -> dict:
    rounds = payload["rounds"]
    summary = {"per_parameter": {}, "agreement": {}}
    rows = []
    for name in names:
        entry = {}
        for sampler in nuts_names + ["emcee"]:
            ess = [r[sampler]["ess_bulk"][name] for r in rounds]
            rate = [r[sampler]["ess_bulk"][name] / r[sampler]["wall_s"] for r in rounds]
            entry[sampler] = {
                "ess_bulk_median": statistics.median(ess),
                "ess_per_s_median": statistics.median(rate),
                "ess_per_s_all": rate,
                "wall_s_median": statistics.median(r[sampler]["wall_s"] for r in rounds),
            }
        tau_rates = [r["emcee"]["ess_tau"][name] / r["emcee"]["wall_s"] for r in rounds]
        entry["emcee"]["ess_tau_median"] = statistics.median(
            r["emcee"]["ess_tau"][name] for r in rounds
        )
        entry["emcee"]["ess_tau_per_s_median"] = statistics.median(tau_rates)
        entry["emcee"]["tau_median"] = statistics.median(r["emcee"]["tau"][name] for r in rounds)
        paired = [
            a / b
            for a, b in zip(entry["jaxcomp NUTS"]["ess_per_s_all"], entry["emcee"]["ess_per_s_all"])
        ]
        entry["ratio_nuts_over_emcee"] = {
            "median_of_medians": entry["jaxcomp NUTS"]["ess_per_s_median"]
            / entry["emcee"]["ess_per_s_median"],
            "paired_min": min(paired),
            "paired_max": max(paired),
            "paired_median": statistics.median(paired),
            "vs_emcee_tau_ess": entry["jaxcomp NUTS"]["ess_per_s_median"]
            / entry["emcee"]["ess_tau_per_s_median"],
        }
        if "variant: NUTS diagonal mass" in entry:
            entry["ratio_diagonal_over_emcee"] = (
                entry["variant: NUTS diagonal mass"]["ess_per_s_median"]
                / entry["emcee"]["ess_per_s_median"]
            )
        summary["per_parameter"][name] = entry
        n, e = entry["jaxcomp NUTS"], entry["emcee"]
        ratio = entry["ratio_nuts_over_emcee"]
        row = [
            name,
            f"{n['wall_s_median']:.1f}",
            f"{n['ess_bulk_median']:.0f}",
            f"{n['ess_per_s_median']:.1f}",
            f"{e['wall_s_median']:.1f}",
            f"{e['ess_bulk_median']:.0f}",
            f"{e['ess_per_s_median']:.1f}",
            f"{e['tau_median']:.0f}",
            f"{ratio['median_of_medians']:.2f}x",
            f"{ratio['paired_min']:.2f}-{ratio['paired_max']:.2f}",
        ]
        if "ratio_diagonal_over_emcee" in entry:
            row.append(f"{entry['ratio_diagonal_over_emcee']:.2f}x")
        rows.append(row)
    header = [
        "hyperparameter",
        "NUTS s",
        "NUTS ESS",
        "NUTS ESS/s",
        "emcee s",
        "emcee ESS",
        "emcee ESS/s",
        "emcee tau",
        "NUTS/emcee",
        "per round",
    ]
    if any("ratio_diagonal_over_emcee" in summary["per_parameter"][n] for n in names):
        header.append("diagonal NUTS/emcee")
    print(
        "\nESS (arviz bulk) per second of sampling wall time, medians over rounds (compile "
        "excluded; NUTS time "
        "includes its warm-up, emcee's its burn-in):"
    )
    print(_common.table(rows, header))

    def worst(sampler, key="ess_bulk"):
        return [min(r[sampler][key][n] for n in names) / r[sampler]["wall_s"] for r in rounds]

    min_nuts, min_emcee = worst("jaxcomp NUTS"), worst("emcee")
    summary["min_over_parameters"] = {
        "nuts_ess_per_s_median": statistics.median(min_nuts),
        "emcee_ess_per_s_median": statistics.median(min_emcee),
        "ratio": statistics.median(min_nuts) / statistics.median(min_emcee),
    }
    if "variant: NUTS diagonal mass" in rounds[0]:
        min_diagonal = worst("variant: NUTS diagonal mass")
        summary["min_over_parameters"]["diagonal_ess_per_s_median"] = statistics.median(
            min_diagonal
        )
        summary["min_over_parameters"]["diagonal_ratio"] = statistics.median(
            min_diagonal
        ) / statistics.median(min_emcee)
    ratios = [
        summary["per_parameter"][n]["ratio_nuts_over_emcee"]["median_of_medians"] for n in names
    ]
    summary["ratio_range_over_parameters"] = [min(ratios), max(ratios)]

    # agreement
    rows = []
    for name in names:
        zs = [r["agreement"]["z"][name] for r in rounds]
        n_mean = statistics.median(r["jaxcomp NUTS"]["mean"][name] for r in rounds)
        e_mean = statistics.median(r["emcee"]["mean"][name] for r in rounds)
        rows.append(
            [
                name,
                f"{n_mean:.4f}",
                f"{statistics.median(r['jaxcomp NUTS']['mcse_mean'][name] for r in rounds):.4f}",
                f"{e_mean:.4f}",
                f"{statistics.median(r['emcee']['mcse_mean'][name] for r in rounds):.4f}",
                f"{statistics.median(r['jaxcomp NUTS']['sd'][name] for r in rounds):.4f}",
                f"{statistics.median(r['emcee']['sd'][name] for r in rounds):.4f}",
                " ".join(f"{z:+.1f}" for z in zs),
            ]
        )
        summary["agreement"][name] = {"z_per_round": zs}
    print(
        "\nposterior agreement (z = mean difference / combined MCSE; flagged if |z| > "
        f"{AGREEMENT_Z:g}):"
    )
    print(
        _common.table(
            rows,
            [
                "hyperparameter",
                "NUTS mean",
                "MCSE",
                "emcee mean",
                "MCSE",
                "NUTS sd",
                "emcee sd",
                "z per round",
            ],
        )
    )
    agree = all(r["agreement"]["agree"] for r in rounds)
    summary["agreement"]["all_rounds_agree"] = agree
    summary["agreement"]["max_abs_z"] = max(r["agreement"]["max_abs_z"] for r in rounds)
    print(
        f"  -> {'AGREE' if agree else 'DISAGREE'}: max |z| = "
        f"{summary['agreement']['max_abs_z']:.2f} over "
        f"{len(names)} hyperparameters x {len(rounds)} round(s)"
    )
    reliable = all(r["emcee"]["tau_reliable"] for r in rounds)
    summary["emcee_tau_reliable"] = reliable
    if not reliable:
        print(
            "  [warning] emcee's kept chain is shorter than 50 autocorrelation times in at least "
            "one round: "
            "its tau (and so its ESS) is a rough estimate; use more --emcee-steps"
        )
    if payload.get("emcee_capped"):
        print(
            f"  [capped] emcee steps were capped at {payload['emcee_capped']['steps']} "
            f"(requested {payload['emcee_capped']['requested_steps']})"
        )

    # step rates
    nuts_wall = statistics.median(r["jaxcomp NUTS"]["wall_s"] for r in rounds)
    emcee_step = statistics.median(r["emcee"]["wall_s"] / r["emcee"]["steps"] for r in rounds)
    summary["emcee_seconds_per_step_vectorized"] = emcee_step
    summary["nuts_wall_s_median"] = nuts_wall
    summary["nuts_mean_leapfrog_steps"] = statistics.median(
        r["jaxcomp NUTS"]["mean_leapfrog_steps"] for r in rounds
    )
    key = "emcee per-walker calls (step rate only)"
    if key in rounds[0]:
        loop = statistics.median(r[key]["seconds_per_step"] for r in rounds)
        summary["emcee_seconds_per_step_per_walker_calls"] = loop
        summary["per_walker_slowdown"] = loop / emcee_step
        print(
            f"\nemcee step: {emcee_step * 1e3:.2f} ms vectorized (one call per half ensemble), "
            f"{loop * 1e3:.2f} ms with one jitted call per walker ({loop / emcee_step:.1f}x "
            "slower: with per-walker "
            f"calls every NUTS/emcee ratio above would be {loop / emcee_step:.1f}x larger)"
        )
    m = summary["min_over_parameters"]
    line = (
        f"\nRATIO NUTS/emcee of ESS/s (median over rounds; target >= {TARGET_RATIO:g}): per "
        "parameter "
        f"{min(ratios):.2f}x-{max(ratios):.2f}x; slowest parameter vs slowest parameter "
        f"{m['ratio']:.2f}x"
    )
    if "diagonal_ratio" in m:
        line += f"; diagonal-mass NUTS variant {m['diagonal_ratio']:.2f}x"
    print(line)
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a CI smoke run (< 60 s)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--n-obs", type=int, help="expected number of detected clusters (default 1000; quick 300)"
    )
    parser.add_argument(
        "--grid", type=int, nargs=3, help="selection grid (log M, log T, A_V) nodes (121 71 13)"
    )
    parser.add_argument(
        "--num-warmup", type=int, help="NUTS warm-up per chain (default 1000; quick 300)"
    )
    parser.add_argument(
        "--num-samples", type=int, help="NUTS draws per chain (default 1000; quick 300)"
    )
    parser.add_argument("--num-chains", type=int, help="NUTS chains (default 4; quick 2)")
    parser.add_argument(
        "--chain-method",
        default="parallel",
        choices=("parallel", "sequential", "vectorized"),
        help="PopulationFitter chain_method (default parallel, the library default)",
    )
    parser.add_argument(
        "--population",
        default="paper",
        choices=tuple(POPULATIONS),
        help="simulated population and fitted model: 'paper' (Schechter, power-law CAF, 4 A_V "
        "bins: "
        "7 free hyperparameters) or 'broken' (Schechter, broken power-law CAF, 8 A_V bins: "
        "13 free)",
    )
    parser.add_argument("--walkers", type=int, default=100, help="emcee walkers")
    parser.add_argument("--emcee-steps", type=int, help="emcee steps (default 10000; quick 1500)")
    parser.add_argument(
        "--emcee-max-minutes",
        type=float,
        default=25.0,
        help="cap the emcee steps so that one run takes about this long",
    )
    parser.add_argument(
        "--probe-steps", type=int, help="emcee steps timed to estimate the run time (default 50)"
    )
    parser.add_argument(
        "--emcee-loop-steps",
        type=int,
        help="steps of emcee with one call per walker, for its step rate (default 100; quick 0)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants",
        dest="variants",
        action="store_true",
        default=None,
        help="also time NUTS with a diagonal mass matrix (default on, off with --quick)",
    )
    parser.add_argument("--no-variants", dest="variants", action="store_false")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "n_obs": (1000, 300),
        "grid": ([121, 71, 13], [121, 71, 13]),
        "num_warmup": (1000, 150),
        "num_samples": (1000, 150),
        "num_chains": (4, 2),
        "emcee_steps": (10000, 600),
        "probe_steps": (50, 10),
        "emcee_loop_steps": (100, 0),
        "rounds": (3, 1),
        "variants": (True, False),
    }
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    payload = run(args)
    if args.json:
        _common.write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
