"""How :class:`~jaxcomp.demographics.fit.PopulationFitter` turns its NUTS draws into a
:class:`~jaxcomp.demographics.fit_result.FitResult`: the per-object log-likelihood (for LOO), the
ArviZ ``InferenceData`` with its ``attrs``, the summary, the divergence and quadrature-error
warnings, and the selection diagnostics of a member grid.

The methods live on :class:`_PosteriorAssembly`, a mixin of ``PopulationFitter``: they read the
fitter's model, settings, grids and compiled likelihoods.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro

from .._version import __version__
from .fit_result import FitResult
from .likelihood import quadrature_error
from .models import THETA_COLUMNS
from .selection_uncertainty import latent_theta, selection_diagnostics, warn_selection_variance

__all__: list[str] = []


class _PosteriorAssembly:
    """The result-building methods of :class:`~jaxcomp.demographics.fit.PopulationFitter`."""

    def _pointwise_log_likelihood(self, samples, data) -> np.ndarray:
        names = self.model.parameter_names
        chains, draws = np.asarray(samples[names[0]]).shape[:2]
        flat = {
            k: jnp.asarray(
                np.asarray(samples[k]).reshape((chains * draws,) + np.shape(samples[k])[2:])
            )
            for k in names
        }
        dummy = jnp.zeros(chains * draws)
        block = max(
            1,
            int(
                2e7
                // max(1, data.n_objects * (1 if data.samples is None else data.samples.shape[1]))
            ),
        )
        out = []
        for start in range(0, chains * draws, block):
            part = {k: v[start : start + block] for k, v in flat.items()}
            out.append(
                np.asarray(self._pointwise(part, dummy[start : start + block], data, self.grid))
            )
        return np.concatenate(out).reshape(chains, draws, -1)

    def _result(self, samples, stats, pointwise, data, seed, runtime) -> FitResult:
        import arviz as az

        model = self.model
        chains, draws = np.asarray(samples[model.parameter_names[0]]).shape[:2]
        posterior = {name: np.asarray(samples[name]) for name in model.parameter_names}
        posterior["detected_fraction"] = np.asarray(samples["detected_fraction"])
        n_obs = data.n_objects
        if model.likelihood == "poisson":
            posterior["n_exp"] = np.asarray(samples["n_exp"])
            posterior["n_total"] = 10.0 ** posterior["log10_N"]
        else:  # N | Λ, N_obs ~ Gamma(N_obs, rate α) under the 1/N prior
            rng = np.random.default_rng(seed)
            posterior["n_total"] = (
                rng.gamma(n_obs, size=(chains, draws)) / posterior["detected_fraction"]
            )
        if self.keep_latent:
            for name in model.latent_columns:
                posterior[f"{name}_true"] = np.asarray(samples[f"{name}_true"])
        sample_stats = {
            "diverging": np.asarray(stats["diverging"], bool),
            "n_steps": np.asarray(stats["num_steps"]),
            "energy": np.asarray(stats["energy"]),
            "lp": -np.asarray(stats["potential_energy"]),
            "acceptance_rate": np.asarray(stats["accept_prob"]),
        }
        theta = np.asarray(data.theta)
        observed = {name: theta[:, j] for j, name in enumerate(THETA_COLUMNS)}
        dims = {
            "av_weights": ["av_bin"],
            "obs": ["object"],
            **{c: ["object"] for c in THETA_COLUMNS},
            **{f"{c}_true": ["object"] for c in THETA_COLUMNS},
        }
        coords = {"av_bin": np.arange(model.n_av_bins), "object": np.arange(n_obs)}
        attrs = {
            "seed": int(seed),
            "model": json.dumps(dataclasses.asdict(model)),
            "model_description": model.describe(),
            "sampler": json.dumps(self.settings),
            "runtime_s": round(runtime, 3),
            "n_objects": int(n_obs),
            "jaxcomp_version": __version__,
            "numpyro_version": numpyro.__version__,
            "inference_library": "numpyro",
        }
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=sample_stats,
            log_likelihood=None if pointwise is None else {"obs": pointwise},
            observed_data=observed,
            dims=dims,
            coords=coords,
            attrs=attrs,
        )
        for group in idata.groups():  # also on every group, so they survive saving a single group
            getattr(idata, group).attrs.update(attrs)
        var_names = list(model.parameter_names) + ["detected_fraction"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = az.summary(idata, var_names=var_names, hdi_prob=0.95)
        n_div = int(sample_stats["diverging"].sum())
        if n_div:
            warnings.warn(
                f"{n_div} divergent transition(s) in {chains} x {draws} NUTS draws of "
                f"{model.describe()}: the posterior may be biased; "
                "inspect idata.sample_stats.diverging, "
                "raise target_accept_prob or reparameterise",
                RuntimeWarning,
                stacklevel=3,
            )
        median = {
            name: np.median(
                posterior[name].reshape((chains * draws,) + posterior[name].shape[2:]), axis=0
            )
            for name in model.parameter_names
        }
        if model.av == "piecewise":
            median["av_weights"] = median["av_weights"] / np.sum(median["av_weights"])
        relative_error = float("nan")
        if self.grid.log_mass.shape[0] >= 5 and self.grid.log_age.shape[0] >= 5:
            with jax.enable_x64(self.settings["x64"]):
                alpha, error = quadrature_error(
                    model, median, self.grid, n_gauss=self.settings["n_gauss"]
                )
            relative_error = error / alpha if alpha > 0 else float("inf")
            if relative_error > self.quadrature_tolerance:
                warnings.warn(
                    f"the selection grid is too coarse for this population: the detected fraction "
                    f"α = {alpha:.4g} at the posterior median has an estimated quadrature error of "
                    f"{100 * relative_error:.2g}% "
                    f"(tolerance {100 * self.quadrature_tolerance:.2g}%); use more "
                    "grid nodes (SelectionGrid.from_selection(shape=...)) "
                    "or a smaller mass/age stride",
                    RuntimeWarning,
                    stacklevel=3,
                )
        diagnostics = None
        if self.member_grid is not None:
            with jax.enable_x64(self.settings["x64"]):
                diagnostics = self._selection_diagnostics(samples, data, median)
            idata.attrs["selection_uncertainty"] = self.selection_uncertainty
            idata.attrs["selection_log_likelihood_variance"] = diagnostics[
                "log_likelihood_variance"
            ]
            warn_selection_variance(
                {"": diagnostics["log_likelihood_variance"]},
                len(diagnostics["member_weights"]),
                self.selection_variance_tolerance,
                self.selection_uncertainty,
            )
        return FitResult(
            idata=idata,
            summary=summary,
            num_divergences=n_div,
            runtime_s=runtime,
            model=model,
            data=data,
            grid=self.grid,
            seed=int(seed),
            quadrature_relative_error=relative_error,
            selection_uncertainty=self.selection_uncertainty,
            selection_diagnostics=diagnostics,
        )

    def _selection_diagnostics(self, samples, data, median) -> dict:
        """:func:`selection_diagnostics` from the draws (ln L of every member at every draw, in
        blocks).

        The posterior median is evaluated with the draws (one extra row), and the last
        block is padded, so one program shape is compiled.
        """
        model = self.model
        names = model.parameter_names
        first = np.asarray(samples[names[0]])
        n_draws = first.shape[0] * first.shape[1]
        flat = {
            k: np.asarray(samples[k]).reshape((n_draws,) + np.shape(samples[k])[2:])
            for k in samples
        }
        rows = {
            k: np.concatenate([flat[k], np.asarray(median[k], flat[k].dtype)[None]]) for k in names
        }
        theta = latent_theta(model, data, flat)
        if theta is not None:
            theta = np.concatenate([theta, np.median(theta, axis=0)[None]])
        n_rows = n_draws + 1
        block = max(
            1,
            int(
                2e7
                // max(
                    1,
                    data.n_objects
                    * (1 if data.samples is None else data.samples.shape[1])
                    * len(self.member_grid.p_obs_binned),
                )
            ),
        )
        block = min(block, n_rows)
        member_log_l, fit_log_l = [], []
        for start in range(0, n_rows, block):
            index = np.minimum(np.arange(start, start + block), n_rows - 1)  # the last block padded
            part = {k: jnp.asarray(rows[k][index]) for k in names}
            if theta is None:
                member = np.asarray(self._member_log_l_exact(part, data, self.member_grid))
                single = (
                    None
                    if self.selection_uncertainty == "ensemble"
                    else np.asarray(self._log_l_exact(part, data, self.grid))
                )
            else:
                th = jnp.asarray(theta[index])
                member = np.asarray(self._member_log_l(part, th, data, self.member_grid))
                single = (
                    None
                    if self.selection_uncertainty == "ensemble"
                    else np.asarray(self._log_l(part, th, data, self.grid))
                )
            if single is None:  # the ensemble fit's own likelihood: log-mean-exp over members
                single = np.logaddexp.reduce(member, axis=1) - np.log(member.shape[1])
            keep = min(block, n_rows - start)
            member_log_l.append(member[:keep])
            fit_log_l.append(single[:keep])
        member_log_l, fit_log_l = np.concatenate(member_log_l), np.concatenate(fit_log_l)
        median_log_l = member_log_l[-1]
        member_log_l, fit_log_l = member_log_l[:-1], fit_log_l[:-1]
        draws = {k: flat[k] for k in model.scalar_parameters}
        return selection_diagnostics(member_log_l, fit_log_l, draws, median_log_l)
