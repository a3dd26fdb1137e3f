"""Fit a :class:`PopulationModel` to a cluster catalogue with NumPyro NUTS.

:func:`fit_population` is the user-facing entry point; :class:`PopulationFitter`
keeps the compiled sampler so that many catalogues of one size (simulation-based
calibration) are fitted without recompiling.  The result,
:class:`~jaxcomp.demographics.fit_result.FitResult`, holds an ArviZ ``InferenceData``
(posterior, sample statistics, per-object log-likelihood for LOO, observed data; the seed
and settings in ``attrs``), a summary table with r_hat, bulk/tail ESS and the number of
divergences, and posterior predictive checks of the observed log M and log T histograms.
The sampler is here; how its draws become a result is in
:mod:`~jaxcomp.demographics.fit_posterior`.
"""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, potential_energy

from ..errors import InputError
from .fit_posterior import _PosteriorAssembly
from .fit_result import FitResult
from .likelihood import (
    LikelihoodGrid,
    PopulationData,
    log_likelihood,
    pointwise_log_likelihood,
    population_model,
    prepare_data,
)
from .marginalise import SelectionGrid
from .models import THETA_COLUMNS, PopulationModel
from .selection_uncertainty import (
    SELECTION_UNCERTAINTY,
    TALBOT_GOLOMB_VARIANCE,
    mean_member_grid,
    member_likelihood_grid,
    member_log_likelihoods,
    n_members,
)

__all__ = ["fit_population", "PopulationFitter", "CHAIN_METHODS"]

#: How :class:`PopulationFitter` runs its chains.
CHAIN_METHODS = ("parallel", "sequential", "vectorized")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------- fitter
def _shapes(tree) -> tuple:
    return tuple(tuple(np.shape(leaf)) for leaf in jax.tree.leaves(tree))


class PopulationFitter(_PosteriorAssembly):
    """A NUTS sampler for one model and selection grid, compiled once and reused across catalogues.

    Parameters
    ----------
    model : PopulationModel
    selection_grid : SelectionGrid
        p_obs on a (log_mass, log_age, av) grid; reduced once to a :class:`LikelihoodGrid`
        with the model's A_V bins.
    num_warmup, num_samples, num_chains : int
    chain_method : {"parallel", "sequential", "vectorized"}
        ``"parallel"`` (default): one chain per task on ``num_workers`` threads, which run
        the compiled program concurrently (XLA releases the GIL; a single chain keeps one CPU
        core busy, so 2 workers on 2 cores take 0.52x the wall time of ``"sequential"``).
        ``"sequential"``: the chains one after the other (``lax.map``) in one program;
        ``"vectorized"``: in lock-step (``vmap``; the natural choice on a GPU).  Each is
        NumPyro's NUTS kernel (``numpyro.infer.hmc.hmc``) with warmup adaptation inside one
        jitted program, compiled once and reused for every catalogue of the same size.  The
        draws do not depend on the method (each chain is a function of its key and start).
    num_workers : int, optional
        Threads for ``chain_method="parallel"``; default the number of CPU cores available
        to the process, at most ``num_chains``.
    target_accept_prob : float
    max_tree_depth : int
    x64 : bool
        Sample in float64 (inside a ``jax.enable_x64`` context; global configuration untouched).
    mass_stride, age_stride : int
        Keep every k-th grid node in the normalising sum (see :meth:`LikelihoodGrid.build`).
    n_gauss : int
        Gauss-Legendre points per quadrature sub-interval.
    keep_latent : bool
        Store latent true values in the posterior (``measurement_error="latent"``).
    progress : bool
    quadrature_tolerance : float
        Warn when the estimated relative quadrature error of the detected fraction at the
        posterior median exceeds this (default 1%).
    dense_mass : bool or "auto"
        Adapt a dense mass matrix (captures the correlations between hyperparameters, e.g.
        α_M and log M_break; 1.8-4x the effective samples per second of the diagonal one
        in ``benchmarks/bench_nuts.py``).  ``"auto"`` (default): dense unless the model has
        per-object latent values (then the matrix would be n_objects² in size).
    selection_uncertainty : {"none", "ensemble"}
        ``"none"`` (default): p_obs is taken as exact (the ensemble mean for a member
        grid).  ``"ensemble"``: the likelihood is averaged over the members of a member
        grid (:func:`~jaxcomp.demographics.selection_uncertainty.member_selection_grid`),
        ``ln (1/M) Σ_m L_m(Λ)``, vectorised over members with ``vmap``; see
        :mod:`jaxcomp.demographics.selection_uncertainty` for why the full per-member
        likelihood is what is averaged.  No per-object log-likelihood (for LOO) is
        stored for ``"ensemble"``: the log of an average does not split into objects.
    selection_variance_tolerance : float
        Warn when the variance over members of ln L at the posterior median exceeds
        this (default 1, Talbot & Golomb 2023).
    """

    def __init__(self, model: PopulationModel, selection_grid: SelectionGrid, *, num_warmup: int = 500,
                 num_samples: int = 500, num_chains: int = 4, chain_method: str = "parallel",
                 target_accept_prob: float = 0.8, max_tree_depth: int = 8, x64: bool = True,
                 mass_stride: int = 1, age_stride: int = 1, n_gauss: int = 8, keep_latent: bool = False,
                 progress: bool = False, quadrature_tolerance: float = 0.01, dense_mass="auto",
                 num_workers: int | None = None, selection_uncertainty: str = "none",
                 selection_variance_tolerance: float = TALBOT_GOLOMB_VARIANCE):
        if not isinstance(selection_grid, (SelectionGrid, LikelihoodGrid)):
            raise TypeError("selection_grid must be a SelectionGrid (build one with SelectionGrid.from_selection)")
        if chain_method not in CHAIN_METHODS:
            raise ValueError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
        if num_workers is None:
            num_workers = min(int(num_chains), available_cores())
        if int(num_workers) < 1:
            raise ValueError(f"num_workers must be at least 1, got {num_workers}")
        self.model = model
        if dense_mass == "auto":
            dense_mass = not model.latent_columns
        if not isinstance(dense_mass, bool):
            raise ValueError(f"dense_mass must be True, False or 'auto', got {dense_mass!r}")
        self.settings = dict(num_warmup=int(num_warmup), num_samples=int(num_samples), num_chains=int(num_chains),
                             chain_method=chain_method, target_accept_prob=float(target_accept_prob),
                             max_tree_depth=int(max_tree_depth), x64=bool(x64), n_gauss=int(n_gauss),
                             dense_mass=dense_mass, num_workers=int(num_workers))
        self.keep_latent = keep_latent
        self.progress = progress
        self.quadrature_tolerance = float(quadrature_tolerance)
        if selection_uncertainty not in SELECTION_UNCERTAINTY:
            raise ValueError(f"selection_uncertainty must be one of {SELECTION_UNCERTAINTY}, got "
                             f"{selection_uncertainty!r}")
        self.selection_uncertainty = selection_uncertainty
        self.selection_variance_tolerance = float(selection_variance_tolerance)
        self._build = {"mass_stride": mass_stride, "age_stride": age_stride,
                       "log_mass_range": model.log_mass_range, "log_age_range": model.log_age_range}
        self._runner = None
        self.use_selection_grid(selection_grid)
        if selection_uncertainty == "ensemble":
            self._model_fn = functools.partial(population_model, model, n_gauss=int(n_gauss),
                                               selection_uncertainty="ensemble")
        else:
            self._model_fn = functools.partial(population_model, model, n_gauss=int(n_gauss))
        self._member_log_l = jax.jit(jax.vmap(
            lambda p, th, data, grid: member_log_likelihoods(model, p, data, grid, th, n_gauss=int(n_gauss))[0],
            in_axes=(0, 0, None, None)))
        self._member_log_l_exact = jax.jit(jax.vmap(
            lambda p, data, grid: member_log_likelihoods(model, p, data, grid, None, n_gauss=int(n_gauss))[0],
            in_axes=(0, None, None)))
        self._log_l = jax.jit(jax.vmap(
            lambda p, th, data, grid: log_likelihood(model, p, data, grid, th, n_gauss=int(n_gauss)),
            in_axes=(0, 0, None, None)))
        self._log_l_exact = jax.jit(jax.vmap(
            lambda p, data, grid: log_likelihood(model, p, data, grid, None, n_gauss=int(n_gauss)),
            in_axes=(0, None, None)))
        self._runner = None
        self._constrain = None
        self._shape = None
        self._pointwise = jax.jit(jax.vmap(
            lambda p, th, data, grid: pointwise_log_likelihood(model, p, data, grid, th, n_gauss=int(n_gauss)),
            in_axes=(0, 0, None, None)))

    def use_selection_grid(self, selection_grid) -> PopulationFitter:
        """Fit the next catalogues with another selection grid (in place; returns the fitter).

        The compiled sampler is kept when the new grid has the same shape (and, for
        ``"ensemble"``, the same number of members): the grid is a traced argument.
        """
        if not isinstance(selection_grid, (SelectionGrid, LikelihoodGrid)):
            raise TypeError("selection_grid must be a SelectionGrid (build one with SelectionGrid.from_selection)")
        members = n_members(selection_grid)
        if self.selection_uncertainty == "ensemble" and members is None:
            raise InputError(
                "selection_uncertainty='ensemble' needs p_obs of every ensemble member: build the grid with "
                "jaxcomp.demographics.member_selection_grid(selection) from a network trained with "
                "TrainConfig(n_members=5, ensemble_resampling='bootstrap')")
        self.member_grid = None
        with jax.enable_x64(self.settings["x64"]):
            if isinstance(selection_grid, LikelihoodGrid):
                self.grid = selection_grid
                if members is not None:
                    self.member_grid, self.grid = selection_grid, mean_member_grid(selection_grid)
            elif members is None:
                self.grid = LikelihoodGrid.build(selection_grid, self.model.av_edges, **self._build)
            else:
                self.member_grid = member_likelihood_grid(selection_grid, self.model.av_edges, **self._build)
                self.grid = mean_member_grid(self.member_grid)
        # the grid the sampler sees: the member grid for "ensemble", the (mean) single grid otherwise
        previous = getattr(self, "_sampler_grid", None)
        self._sampler_grid = self.member_grid if self.selection_uncertainty == "ensemble" else self.grid
        if previous is not None and _shapes(previous) != _shapes(self._sampler_grid):
            self._runner = None  # compiled for other grid shapes
        return self

    def _compile(self, data: PopulationData):
        """Potential, NUTS kernels and the jitted runner for catalogues shaped like ``data`` (once)."""
        s = self.settings
        model_fn = self._model_fn

        def potential_fn_gen(*args):
            return functools.partial(potential_energy, model_fn, args, {})

        def postprocess_gen(*args):
            return functools.partial(constrain_fn, model_fn, args, {}, return_deterministic=True)

        init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")

        def run_chain(key, z0, data, grid):
            args = (data, grid)
            state = init_kernel(z0, s["num_warmup"], target_accept_prob=s["target_accept_prob"],
                                max_tree_depth=s["max_tree_depth"], dense_mass=s["dense_mass"], model_args=args,
                                rng_key=key)

            def step(state, _):
                state = sample_kernel(state, model_args=args)
                return state, (state.z, {"diverging": state.diverging, "num_steps": state.num_steps,
                                         "energy": state.energy, "potential_energy": state.potential_energy,
                                         "accept_prob": state.accept_prob})

            # one scan over warmup and sampling (one copy of the NUTS kernel to compile); drop the warmup
            _, out = jax.lax.scan(step, state, None, length=s["num_warmup"] + s["num_samples"])
            return jax.tree.map(lambda x: x[s["num_warmup"]:], out)

        if s["chain_method"] == "vectorized":
            def run_all(keys, z0, data, grid):
                return jax.vmap(run_chain, in_axes=(0, 0, None, None))(keys, z0, data, grid)
        else:  # "sequential", and "parallel" (called with one chain per thread)
            def run_all(keys, z0, data, grid):
                return jax.lax.map(lambda a: run_chain(a[0], a[1], data, grid), (keys, z0))

        def constrain(z, data, grid):
            return jax.vmap(postprocess_gen(data, grid))(z)

        self._runner = jax.jit(run_all)
        self._constrain = jax.jit(constrain)
        self._shape = _shapes(data)

    def compile(self, data: PopulationData) -> float:
        """Compile the NUTS program for catalogues shaped like ``data`` ahead of time.

        Optional (:meth:`fit` compiles on first use); returns the compile time [s], e.g.
        to time sampling apart from compilation.
        """
        s = self.settings
        with jax.enable_x64(s["x64"]):
            self._compile(data)
            n = 1 if s["chain_method"] == "parallel" else s["num_chains"]
            init = jax.tree.map(lambda x: x[:n], self._init_params(data, 0))
            keys = jax.random.split(jax.random.PRNGKey(0), n)
            start = time.perf_counter()
            self._runner = self._runner.lower(keys, init, data, self._sampler_grid).compile()
            return time.perf_counter() - start

    def _run_chains(self, keys, init, data):
        """Run every chain: one program, or one task per chain on the worker threads."""
        s = self.settings
        if s["chain_method"] != "parallel":
            return self._runner(keys, init, data, self._sampler_grid)

        def one(c):
            # the x64 setting is thread-local: enter it in the worker thread too
            with jax.enable_x64(s["x64"]):
                part = jax.tree.map(lambda x: x[c:c + 1], init)
                return jax.block_until_ready(self._runner(keys[c:c + 1], part, data, self._sampler_grid))

        with ThreadPoolExecutor(max_workers=min(s["num_workers"], s["num_chains"])) as pool:
            outputs = list(pool.map(one, range(s["num_chains"])))
        return jax.tree.map(lambda *x: jnp.concatenate(x, axis=0), *outputs)

    def _init_params(self, data: PopulationData, seed: int) -> dict:
        """Per-chain unconstrained starting points.

        Scalar hyperparameters uniform in the central half of their prior range, A_V weights
        from the Dirichlet prior, latent true values at the catalogue values (clipped inside
        the support).  Transformed directly (no eager run of the model).
        """
        rng = np.random.default_rng([int(seed), 7919])
        model = self.model
        chains = []
        for _ in range(self.settings["num_chains"]):
            values = {}
            for name in model.scalar_parameters:
                low, high = model.prior_bounds(name)
                value = low + (high - low) * rng.uniform(0.25, 0.75)
                values[name] = biject_to(constraints.interval(low, high)).inv(jnp.asarray(value))
            if model.av == "piecewise":
                weights = rng.dirichlet(np.full(model.n_av_bins, max(model.av_concentration, 1.0)))
                weights = np.clip(weights, 1e-3, None)
                values["av_weights"] = biject_to(constraints.simplex).inv(jnp.asarray(weights / weights.sum()))
            theta = np.asarray(data.theta)
            for name in model.latent_columns:
                low, high = model.support(name)
                pad = 1e-3 * (high - low)
                x = np.clip(theta[:, THETA_COLUMNS.index(name)], low + pad, high - pad)
                values[f"{name}_true"] = biject_to(constraints.interval(low, high)).inv(jnp.asarray(x))
            chains.append(values)
        return jax.tree.map(lambda *x: jnp.stack(x), *chains)

    def fit(self, catalogue, seed: int = 0, *, object_samples=None, log_interim=None, n_object_samples: int = 64,
            av_out_of_range: str = "error", log_likelihood: bool = True) -> FitResult:
        """Sample the posterior for one catalogue (see :func:`fit_population`)."""
        s = self.settings
        with jax.enable_x64(s["x64"]):
            if isinstance(catalogue, PopulationData):
                data = catalogue
            else:
                data = prepare_data(catalogue, self.model, object_samples=object_samples, log_interim=log_interim,
                                    n_object_samples=n_object_samples, seed=seed, av_out_of_range=av_out_of_range)
            if self._runner is None or _shapes(data) != self._shape:
                self.compile(data)
            start = time.perf_counter()
            init = self._init_params(data, seed)
            keys = jax.random.split(jax.random.PRNGKey(seed), s["num_chains"])
            z, stats = self._run_chains(keys, init, data)
            chains, draws = s["num_chains"], s["num_samples"]
            flat_z = jax.tree.map(lambda x: x.reshape((chains * draws,) + x.shape[2:]), z)
            samples = self._constrain(flat_z, data, self._sampler_grid)
            samples = jax.device_get(jax.tree.map(lambda x: x.reshape((chains, draws) + x.shape[1:]), samples))
            stats = jax.device_get(stats)
            runtime = time.perf_counter() - start
            if self.progress:
                print(f"NUTS: {s['num_chains']} chain(s) x ({s['num_warmup']} + {s['num_samples']}) steps, "
                      f"{data.n_objects} objects, {runtime:.1f} s", flush=True)
            pointwise = None
            if log_likelihood and self.model.measurement_error != "latent" and self.selection_uncertainty == "none":
                pointwise = self._pointwise_log_likelihood(samples, data)
        return self._result(samples, stats, pointwise, data, seed, runtime)


def fit_population(catalogue, selection_grid: SelectionGrid, model: PopulationModel | None = None, *,
                   num_warmup: int = 500, num_samples: int = 500, num_chains: int = 4, seed: int = 0,
                   progress: bool = False, chain_method: str = "parallel", selection_uncertainty: str = "none",
                   **kwargs) -> FitResult:
    """Fit a hierarchical population model to a catalogue with NUTS.

    Parameters
    ----------
    catalogue : astropy.table.Table, mapping or PopulationData
        ``log_mass`` [log10 Msun], ``log_age`` [log10 yr], ``av`` [mag] per cluster (and
        ``*_lo``/``*_hi`` 68% ranges when the model has measurement errors).
    selection_grid : SelectionGrid
        p_obs precomputed on a grid (:meth:`SelectionGrid.from_selection`), or p_obs of
        every ensemble member (:func:`~jaxcomp.demographics.member_selection_grid`): then
        every fit reports the variance of ln L over the members at the posterior median
        (warning above ``selection_variance_tolerance``, default 1) and each
        hyperparameter's share of posterior variance due to the selection
        (``FitResult.selection_diagnostics``).
    model : PopulationModel, optional
        Default: Schechter CMF, power-law CAF, Dirichlet p(A_V) on 4 bins, marginalised N.
    num_warmup, num_samples, num_chains : int
        NUTS settings (several chains for r_hat).
    seed : int
        PRNG seed (recorded in ``idata.attrs``).
    progress : bool
        Print a line with the sampling time.
    chain_method : {"parallel", "sequential", "vectorized"}
        How the chains run (see :class:`PopulationFitter`): default one thread per CPU core.
    selection_uncertainty : {"none", "ensemble"}
        ``"none"``: p_obs exact (today's fit; the ensemble mean for a member grid).
        ``"ensemble"``: the likelihood averaged over the selection members (equal-weight
        model averaging; needs a member grid).  See :class:`PopulationFitter`.
    **kwargs
        Further :class:`PopulationFitter` options (``target_accept_prob``, ``max_tree_depth``,
        ``x64``, ``mass_stride``, ``age_stride``, ``keep_latent``) and :meth:`PopulationFitter.fit`
        options (``object_samples``, ``log_interim``, ``n_object_samples``, ``av_out_of_range``).

    Returns
    -------
    FitResult
    """
    fit_keys = {"object_samples", "log_interim", "n_object_samples", "av_out_of_range", "log_likelihood"}
    fit_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in fit_keys}
    fitter = PopulationFitter(model or PopulationModel(), selection_grid, num_warmup=num_warmup,
                              num_samples=num_samples, num_chains=num_chains, chain_method=chain_method,
                              progress=progress, selection_uncertainty=selection_uncertainty, **kwargs)
    return fitter.fit(catalogue, seed=seed, **fit_kwargs)
