"""Fit many fields at once with NUTS, and compare pooling forms with PSIS-LOO.

:func:`fit_fields` is the entry point (the multi-field :func:`fit_population`):
catalogues and selection grids of several fields, one hierarchical
:class:`~jaxcomp.demographics.multifield_model.MultiFieldModel`, one jitted log
density.  :class:`MultiFieldFitter` reuses :class:`PopulationFitter`'s compiled
NUTS program (warmup and sampling in one scan, chains on threads) with the
multi-field model; :func:`compare_pooling` fits the complete, partial and no
pooling forms and ranks them with ``arviz.compare`` (PSIS-LOO on the per-cluster
log-likelihood).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.distributions.transforms import biject_to

from .._version import __version__
from ..errors import InputError
from .fit import CHAIN_METHODS, PopulationFitter, available_cores
from .fit_result import PosteriorAccess
from .multifield_model import (
    POOLING_FORMS,
    MultiFieldData,
    MultiFieldModel,
    field_log_terms,
    multifield_model,
    stack_fields,
)
from .multifield_plots import plot_shrinkage
from .multifield_selection import (
    field_members,
    field_selection_diagnostics,
    mean_field_member_grid,
)
from .selection_uncertainty import SELECTION_UNCERTAINTY, TALBOT_GOLOMB_VARIANCE

__all__ = [
    "MultiFieldFitter",
    "MultiFieldResult",
    "compare_pooling",
    "fit_fields",
    "plot_shrinkage",
]


@dataclasses.dataclass
class MultiFieldResult(PosteriorAccess):
    """Posterior of a multi-field fit.

    Attributes
    ----------
    idata : arviz.InferenceData
        ``posterior``: population sites (``<name>_mean``, ``<name>_scatter``, ``<name>_slope``),
        per-field parameters (dim ``field``), ``av_weights`` (``field``, ``av_bin``),
        ``detected_fraction`` (``field``); ``sample_stats``; ``log_likelihood`` ``obs``
        per cluster (dim ``cluster``, the fields' real clusters in field order, for
        ``arviz.loo``); ``constant_data`` ``field_of_cluster``; ``attrs`` the seed, model
        and sampler settings.
    summary : pandas.DataFrame
        ``az.summary`` of the population and per-field parameters.
    num_divergences : int
    runtime_s : float
        Sampling wall time (compilation excluded when compiled ahead).
    model : MultiFieldModel
    field_names : tuple of str
    n_objects : numpy.ndarray
        Clusters per field.
    seed : int
    selection_uncertainty : {"none", "ensemble"}
        How the fields' selection uncertainty entered the likelihood.
    selection_diagnostics : dict or None
        With member grids (any ``selection_uncertainty``), per field name
        :func:`~jaxcomp.demographics.selection_diagnostics`
        (:func:`~jaxcomp.demographics.multifield_selection.field_selection_diagnostics`):
        ``log_likelihood_variance`` (Var over the field's members of ln L_f at the
        posterior median), ``variance_share`` (of the field's and the population
        parameters), ``member_weights``, ``member_ess``.  None for single grids.
    """

    idata: object
    summary: object
    num_divergences: int
    runtime_s: float
    model: MultiFieldModel
    field_names: tuple[str, ...]
    n_objects: np.ndarray
    seed: int
    selection_uncertainty: str = "none"
    selection_diagnostics: dict | None = None

    @property
    def log_likelihood_variance(self) -> dict[str, float]:
        """Per field, Var over its selection members of ln L_f at the posterior median (empty
        without members)."""
        if self.selection_diagnostics is None:
            return {}
        return {
            name: float(entry["log_likelihood_variance"])
            for name, entry in self.selection_diagnostics.items()
        }

    def field_means(self, name: str) -> dict[str, float]:
        """Posterior mean of a per-field parameter, keyed by field name."""
        return dict(zip(self.field_names, np.mean(self.draws(name), axis=0).tolist()))

    def report(self) -> str:
        head = (
            f"{self.model.describe()}: {len(self.field_names)} fields, {int(self.n_objects.sum())} "
            f"clusters, seed {self.seed}"
        )
        lines = [
            head,
            self.summary.to_string(),
            f"divergences: {self.num_divergences}; runtime {self.runtime_s:.1f} s",
        ]
        if self.selection_diagnostics is not None:
            variances = ", ".join(f"{k} {v:.3g}" for k, v in self.log_likelihood_variance.items())
            lines.append(
                f"selection uncertainty {self.selection_uncertainty!r}: Var_members ln L at the "
                f"median per field: {variances}"
            )
        return "\n".join(lines)


class MultiFieldFitter(PopulationFitter):
    """NUTS for a :class:`MultiFieldModel`, compiled once per data shape and reused.

    Parameters
    ----------
    model : MultiFieldModel
    num_warmup, num_samples, num_chains, chain_method, num_workers, target_accept_prob,
    max_tree_depth, x64, n_gauss, progress
        As for :class:`~jaxcomp.demographics.PopulationFitter`.
    dense_mass : bool
        Dense mass matrix (default False: the per-field sites are close to independent a
        posteriori in the parametrisation suited to the data, and a dense matrix over
        hundreds of sites adapts slowly).
    selection_uncertainty : {"none", "ensemble"}
        ``"none"`` (default): every field's p_obs taken as exact (the ensemble mean for
        member grids).  ``"ensemble"``: each field's likelihood averaged over its own
        selection members (member grids, :func:`~jaxcomp.demographics.member_selection_grid`,
        for every field); see :mod:`jaxcomp.demographics.multifield_selection`.  No
        per-cluster log-likelihood (for LOO) is stored for ``"ensemble"``.
    selection_variance_tolerance : float
        Warn when a field's variance over its members of ln L at the posterior median
        exceeds this (default 1, Talbot & Golomb 2023).
    """

    def __init__(
        self,
        model: MultiFieldModel,
        *,
        num_warmup: int = 500,
        num_samples: int = 500,
        num_chains: int = 4,
        chain_method: str = "parallel",
        target_accept_prob: float = 0.8,
        max_tree_depth: int = 8,
        x64: bool = True,
        n_gauss: int = 8,
        progress: bool = False,
        dense_mass: bool = False,
        num_workers: int | None = None,
        selection_uncertainty: str = "none",
        selection_variance_tolerance: float = TALBOT_GOLOMB_VARIANCE,
    ):
        if not isinstance(model, MultiFieldModel):
            raise InputError(f"model must be a MultiFieldModel, got {type(model).__name__}")
        if chain_method not in CHAIN_METHODS:
            raise InputError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
        num_workers = (
            min(int(num_chains), available_cores()) if num_workers is None else int(num_workers)
        )
        if num_workers < 1:
            raise InputError(f"num_workers must be at least 1, got {num_workers}")
        self.model = model
        self.settings = {
            "num_warmup": int(num_warmup),
            "num_samples": int(num_samples),
            "num_chains": int(num_chains),
            "chain_method": chain_method,
            "target_accept_prob": float(target_accept_prob),
            "max_tree_depth": int(max_tree_depth),
            "x64": bool(x64),
            "n_gauss": int(n_gauss),
            "dense_mass": bool(dense_mass),
            "num_workers": num_workers,
        }
        self.progress = progress
        self.keep_latent = False
        self.grid = None
        if selection_uncertainty not in SELECTION_UNCERTAINTY:
            raise InputError(
                f"selection_uncertainty must be one of {SELECTION_UNCERTAINTY}, got "
                f"{selection_uncertainty!r}"
            )
        self.selection_uncertainty = selection_uncertainty
        self.selection_variance_tolerance = float(selection_variance_tolerance)
        self.member_grid = None  # the stacked member grid, with member grids
        self._sampler_grid = None  # the grid the sampler sees (the member grid for "ensemble")
        self._model_fn = functools.partial(
            multifield_model,
            model,
            n_gauss=int(n_gauss),
            selection_uncertainty=selection_uncertainty,
        )
        self._runner = None
        self._constrain = None
        self._shape = None
        self._pointwise = jax.jit(
            jax.vmap(
                lambda p, data, grid: field_log_terms(model, p, data, grid, n_gauss=int(n_gauss)),
                in_axes=(0, None, None),
            )
        )

    def prepare(
        self, names, catalogues, grids, *, covariate=None, seed: int = 0, **prepare_kwargs
    ) -> MultiFieldData:
        """Validate and stack the fields (see :func:`stack_fields`); sets the fitter's grid."""
        data, grid = stack_fields(
            names,
            catalogues,
            grids,
            self.model,
            covariate=covariate,
            x64=self.settings["x64"],
            seed=seed,
            **prepare_kwargs,
        )
        self.field_names = tuple(str(n) for n in names)
        members = field_members(grid)
        if self.selection_uncertainty == "ensemble" and members is None:
            raise InputError(
                "selection_uncertainty='ensemble' needs p_obs of every ensemble member of every "
                "field: build each field's grid with jaxcomp.demographics.member_selection_grid "
                "from a network trained with TrainConfig(n_members=5, "
                "ensemble_resampling='bootstrap')"
            )
        self.member_grid = grid if members is not None else None
        with jax.enable_x64(self.settings["x64"]):  # the stacked grids are float64
            self.grid = mean_field_member_grid(grid)
        self._sampler_grid = grid if self.selection_uncertainty == "ensemble" else self.grid
        return data

    def compile(self, data: MultiFieldData) -> float:
        """Compile the NUTS program for data and grids of these shapes; returns the compile
        time [s]."""
        elapsed = super().compile(data)
        self._shape = _tree_shapes(data, self._sampler_grid)
        return elapsed

    def _init_params(self, data: MultiFieldData, seed: int) -> dict:
        """Per-chain unconstrained starts: uniform sites in the central half of their range,
        scatters at a fifth of their scale, non-centred offsets near zero (centred per-field
        values as near their starting mean: the same starting point in either
        parametrisation), Dirichlet sites from the prior (clipped away from the simplex
        edges)."""
        rng = np.random.default_rng([int(seed), 7919])

        def start(site):
            if site["type"] != "sample" or site["is_observed"]:
                return None
            base = site["fn"]
            while hasattr(base, "base_dist"):  # Independent / Expanded wrappers
                base = base.base_dist
            shape = site["fn"].shape(site["kwargs"].get("sample_shape", ()))
            if isinstance(base, numpyro.distributions.Uniform):
                low, high = np.asarray(base.low), np.asarray(base.high)
                return low + (high - low) * rng.uniform(0.25, 0.75, size=shape)
            if isinstance(base, numpyro.distributions.HalfNormal):
                return 0.2 * np.asarray(base.scale) * np.ones(shape)
            if isinstance(base, numpyro.distributions.Normal):
                offset = 0.1 * rng.standard_normal(shape)
                if any(frame.name == "field" for frame in site["cond_indep_stack"]):
                    offset = offset * np.asarray(base.scale)  # 1 for the non-centred z
                return np.asarray(base.loc) + offset
            if isinstance(base, numpyro.distributions.Dirichlet):
                value = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
                value = np.clip(value, 1e-3, None)
                return value / value.sum(axis=-1, keepdims=True)
            raise TypeError(  # pragma: no cover - every site of the model is one of the above
                f"no starting rule for site {site['name']} ({type(base).__name__})"
            )

        def priors():
            return self.model.sample_field_parameters(data.mask.shape[0], data.covariate)

        chains = []
        for _ in range(self.settings["num_chains"]):
            with numpyro.handlers.block():
                trace = numpyro.handlers.trace(
                    numpyro.handlers.substitute(
                        numpyro.handlers.seed(priors, 0), substitute_fn=start
                    )
                ).get_trace()
            chains.append(
                {
                    name: biject_to(site["fn"].support).inv(jnp.asarray(site["value"]))
                    for name, site in trace.items()
                    if site["type"] == "sample" and not site["is_observed"]
                }
            )
        return jax.tree.map(lambda *x: jnp.stack(x), *chains)

    def fit(
        self, data: MultiFieldData, seed: int = 0, *, log_likelihood: bool = True
    ) -> MultiFieldResult:
        """Sample the posterior of prepared fields (:meth:`prepare`)."""
        if self.grid is None:
            raise InputError("call MultiFieldFitter.prepare(names, catalogues, grids) first")
        s = self.settings
        with jax.enable_x64(s["x64"]):
            if self._runner is None or _tree_shapes(data, self._sampler_grid) != self._shape:
                self.compile(data)
            start = time.perf_counter()
            init = self._init_params(data, seed)
            keys = jax.random.split(jax.random.PRNGKey(seed), s["num_chains"])
            z, stats = self._run_chains(keys, init, data)
            chains, draws = s["num_chains"], s["num_samples"]
            flat_z = jax.tree.map(lambda x: x.reshape((chains * draws,) + x.shape[2:]), z)
            samples = self._constrain(flat_z, data, self._sampler_grid)
            samples = jax.device_get(
                jax.tree.map(lambda x: x.reshape((chains, draws) + x.shape[1:]), samples)
            )
            stats = jax.device_get(stats)
            runtime = time.perf_counter() - start
            if self.progress:
                print(
                    f"NUTS: {chains} chain(s) x ({s['num_warmup']} + {draws}) steps, "
                    f"{data.n_fields} fields, "
                    f"{int(data.n_objects.sum())} clusters, {runtime:.1f} s",
                    flush=True,
                )
            pointwise = None
            if log_likelihood and self.selection_uncertainty == "none":
                pointwise = self._pointwise_per_cluster(samples, data)
            diagnostics = None
            if self.member_grid is not None:
                diagnostics = field_selection_diagnostics(
                    self.model,
                    samples,
                    data,
                    self.member_grid,
                    self.field_names,
                    selection_uncertainty=self.selection_uncertainty,
                    mean_grid=self.grid,
                    n_gauss=s["n_gauss"],
                    tolerance=self.selection_variance_tolerance,
                )
        return self._multifield_result(samples, stats, pointwise, data, seed, runtime, diagnostics)

    def _pointwise_per_cluster(self, samples, data: MultiFieldData) -> np.ndarray:
        """``ln p(θ_i|Λ_f) - ln α_f`` of every real cluster, shape (chains, draws, n_clusters)."""
        names = list(self.model.field_parameters) + (
            ["av_weights"] if self.model.has_av_weights else []
        )
        chains, draws = np.asarray(samples[names[0]]).shape[:2]
        flat = {
            k: jnp.asarray(
                np.asarray(samples[k]).reshape((chains * draws,) + np.shape(samples[k])[2:])
            )
            for k in names
        }
        mask = np.asarray(data.mask)
        objects = np.asarray(data.objects.theta).shape[1] * (
            1 if data.objects.samples is None else data.objects.samples.shape[2]
        )
        block = max(1, int(2e7 // max(1, mask.shape[0] * objects)))
        out = []
        for start in range(0, chains * draws, block):
            part = {k: v[start : start + block] for k, v in flat.items()}
            terms, alpha = self._pointwise(part, data, self.grid)
            values = np.asarray(terms) - np.log(np.asarray(alpha))[:, :, None]
            out.append(values[:, mask])
        return np.concatenate(out).reshape(chains, draws, -1)

    def _multifield_result(
        self, samples, stats, pointwise, data, seed, runtime, diagnostics=None
    ) -> MultiFieldResult:
        import arviz as az

        model = self.model
        field_sites = list(model.field_parameters) + (
            ["av_weights"] if model.has_av_weights else []
        )
        names = list(model.population_parameters) + field_sites + ["detected_fraction"]
        if model.has_av_weights and model.pooling == "partial":
            names.append("av_logit_mean")
        posterior = {name: np.asarray(samples[name]) for name in names}
        sample_stats = {
            "diverging": np.asarray(stats["diverging"], bool),
            "n_steps": np.asarray(stats["num_steps"]),
            "energy": np.asarray(stats["energy"]),
            "lp": -np.asarray(stats["potential_energy"]),
            "acceptance_rate": np.asarray(stats["accept_prob"]),
        }
        mask = np.asarray(data.mask)
        field_of_cluster = np.nonzero(mask)[0]
        dims = {name: ["field"] for name in model.field_parameters}
        dims.update(
            {
                "av_weights": ["field", "av_bin"],
                "detected_fraction": ["field"],
                "obs": ["cluster"],
                "av_logit_mean": ["av_logit"],
                "field_of_cluster": ["cluster"],
            }
        )
        coords = {
            "field": list(self.field_names),
            "av_bin": np.arange(model.population.n_av_bins),
            "av_logit": np.arange(model.population.n_av_bins - 1),
            "cluster": np.arange(mask.sum()),
        }
        attrs = {
            "seed": int(seed),
            "model": json.dumps(dataclasses.asdict(model)),
            "model_description": model.describe(),
            "sampler": json.dumps(self.settings),
            "runtime_s": round(runtime, 3),
            "n_fields": int(mask.shape[0]),
            "n_objects": json.dumps(mask.sum(axis=1).tolist()),
            "jaxcomp_version": __version__,
            "numpyro_version": numpyro.__version__,
            "inference_library": "numpyro",
        }
        if diagnostics is not None:
            attrs["selection_uncertainty"] = self.selection_uncertainty
            attrs["selection_log_likelihood_variance"] = json.dumps(
                {k: v["log_likelihood_variance"] for k, v in diagnostics.items()}
            )
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=sample_stats,
            log_likelihood=None if pointwise is None else {"obs": pointwise},
            constant_data={"field_of_cluster": field_of_cluster},
            dims=dims,
            coords=coords,
            attrs=attrs,
        )
        for group in idata.groups():
            getattr(idata, group).attrs.update(attrs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = az.summary(
                idata, var_names=list(model.population_parameters) + field_sites, hdi_prob=0.95
            )
        n_div = int(sample_stats["diverging"].sum())
        if n_div:
            chains, draws = sample_stats["diverging"].shape
            warnings.warn(
                f"{n_div} divergent transition(s) in {chains} x {draws} NUTS draws of "
                f"{model.describe()}: "
                "the posterior may be biased; raise target_accept_prob",
                RuntimeWarning,
                stacklevel=3,
            )
        return MultiFieldResult(
            idata=idata,
            summary=summary,
            num_divergences=n_div,
            runtime_s=runtime,
            model=model,
            field_names=tuple(self.field_names),
            n_objects=mask.sum(axis=1),
            seed=int(seed),
            selection_uncertainty=self.selection_uncertainty,
            selection_diagnostics=diagnostics,
        )


def _tree_shapes(*trees) -> tuple:
    return tuple(tuple(np.shape(leaf)) for leaf in jax.tree.leaves(trees))


def fit_fields(
    catalogues: Sequence,
    selection_grids: Sequence,
    model: MultiFieldModel | None = None,
    *,
    field_names: Sequence[str] | None = None,
    covariate=None,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    seed: int = 0,
    progress: bool = False,
    chain_method: str = "parallel",
    prepare_kwargs: dict | None = None,
    **kwargs,
) -> MultiFieldResult:
    """Fit a hierarchical population model to several fields with NUTS.

    Parameters
    ----------
    catalogues : sequence of astropy.table.Table, mapping or PopulationData
        One catalogue per field (``log_mass`` [log10 Msun], ``log_age`` [log10 yr], ``av`` [mag]).
    selection_grids : sequence of SelectionGrid (or LikelihoodGrid)
        One per field, each over the model's mass, age and A_V ranges, all with the same
        node counts.
    model : MultiFieldModel, optional
        Default: partial pooling of the default :class:`PopulationModel`.
    field_names : sequence of str, optional
        Unique names (default ``field_0``, ``field_1``, ...).
    covariate : sequence of float, optional
        Per-field covariate of ``model.covariate_parameter``.
    num_warmup, num_samples, num_chains, seed, progress, chain_method
        As for :func:`~jaxcomp.demographics.fit_population`.
    prepare_kwargs : dict, optional
        Passed to :func:`~jaxcomp.demographics.prepare_data` for every field.
    **kwargs
        Further :class:`MultiFieldFitter` options, e.g. ``selection_uncertainty="ensemble"``
        with member grids (every field's likelihood averaged over its selection members).

    Returns
    -------
    MultiFieldResult
    """
    catalogues = list(catalogues)
    names = (
        list(field_names)
        if field_names is not None
        else [f"field_{f}" for f in range(len(catalogues))]
    )
    fitter = MultiFieldFitter(
        model or MultiFieldModel(),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress=progress,
        **kwargs,
    )
    data = fitter.prepare(
        names, catalogues, selection_grids, covariate=covariate, seed=seed, **(prepare_kwargs or {})
    )
    return fitter.fit(data, seed=seed)


def compare_pooling(
    catalogues: Sequence,
    selection_grids: Sequence,
    model: MultiFieldModel | None = None,
    *,
    poolings: Sequence[str] = POOLING_FORMS,
    **kwargs,
) -> tuple[dict, object]:
    """Fit the fields with each pooling form and rank the fits by PSIS-LOO.

    Returns
    -------
    (results, comparison)
        ``{pooling: MultiFieldResult}`` and ``arviz.compare``'s table (``elpd_loo``,
        ``p_loo``, ``elpd_diff``, ``dse``, ``weight``, ``warning``), best first.
    """
    import arviz as az

    model = model or MultiFieldModel()
    unknown = set(poolings) - set(POOLING_FORMS)
    if unknown:
        raise InputError(f"unknown pooling form(s) {sorted(unknown)}; choose from {POOLING_FORMS}")
    results = {}
    for pooling in poolings:
        form = dataclasses.replace(
            model,
            pooling=pooling,
            covariate_parameter=None if pooling == "none" else model.covariate_parameter,
        )
        results[pooling] = fit_fields(catalogues, selection_grids, form, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comparison = az.compare({k: r.idata for k, r in results.items()}, ic="loo")
    return results, comparison
