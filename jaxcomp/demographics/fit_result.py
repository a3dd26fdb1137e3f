"""The posterior of a single-catalogue population fit: :class:`FitResult` (ArviZ
``InferenceData``, summary, diagnostics), its posterior predictive checks and their plots
(:func:`plot_ppc`, :func:`plot_pair`).

:class:`PosteriorAccess` is the reading of a posterior shared with the many-field result
(:class:`~jaxcomp.demographics.multifield.MultiFieldResult`).  The sampler that makes a
:class:`FitResult` is :class:`~jaxcomp.demographics.fit.PopulationFitter`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .likelihood import LikelihoodGrid, PopulationData
from .marginalise import SelectionGrid
from .models import THETA_COLUMNS, PopulationModel
from .simulate import sample_population

__all__ = ["FitResult", "PosteriorAccess", "plot_pair", "plot_ppc"]


class PosteriorAccess:
    """Reading a posterior held as ``idata`` (arviz InferenceData) with its ``summary``
    (``az.summary`` DataFrame): shared by the single- and many-field fit results."""

    def draws(self, name: str) -> np.ndarray:
        """All posterior draws of ``name``, chains concatenated: shape (n_draws, ...)."""
        values = np.asarray(self.idata.posterior[name])
        return values.reshape((-1,) + values.shape[2:])

    def interval(self, name: str, prob: float = 0.95) -> tuple[float, float]:
        """Equal-tailed credible interval of a scalar parameter."""
        values = self.draws(name)
        return tuple(float(v) for v in np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2]))

    @property
    def r_hat(self) -> dict[str, float]:
        return {str(k): float(v) for k, v in self.summary["r_hat"].items()}

    @property
    def ess_bulk(self) -> dict[str, float]:
        return {str(k): float(v) for k, v in self.summary["ess_bulk"].items()}

    def loo(self, **kwargs):
        """PSIS-LOO (``arviz.loo``) from the per-object log-likelihood."""
        import arviz as az

        if "log_likelihood" not in self.idata.groups():
            raise ValueError(
                "this fit has no per-object log-likelihood (latent measurement-error form)"
            )
        return az.loo(self.idata, **kwargs)


@dataclasses.dataclass
class FitResult(PosteriorAccess):
    """Posterior of a population fit.

    Attributes
    ----------
    idata : arviz.InferenceData
        (ArviZ is imported lazily.) ``posterior`` (hyperparameters, ``detected_fraction`` α,
        ``n_total`` (N; for the marginalised form drawn from its conditional Gamma(N_obs, α)
        posterior), ``n_exp`` for the Poisson form, latent true values if kept),
        ``sample_stats`` (``diverging``, ``n_steps``, ``energy``, ``lp``, ``acceptance_rate``),
        ``log_likelihood`` (``obs``: per object, for ``az.loo``), ``observed_data``;
        ``attrs`` record the seed, model, sampler settings and runtime.
    summary : pandas.DataFrame
        ``az.summary`` of the hyperparameters (mean, sd, 95% HDI, MCSE, ESS bulk/tail, r_hat).
    num_divergences : int
    runtime_s : float
        Wall time of sampling, including compilation.
    model : PopulationModel
    data : PopulationData
    grid : LikelihoodGrid
    seed : int
    quadrature_relative_error : float
        Estimated relative error of the detected fraction α at the posterior median
        (:func:`~jaxcomp.demographics.likelihood.quadrature_error`); a warning is issued
        above the fitter's ``quadrature_tolerance``.
    selection_uncertainty : {"none", "ensemble"}
        How the selection's uncertainty entered the likelihood.
    selection_diagnostics : dict or None
        With a member grid (any ``selection_uncertainty``):
        :func:`~jaxcomp.demographics.selection_uncertainty.selection_diagnostics`
        (``log_likelihood_variance``: Var over members of ln L at the posterior median;
        ``variance_share``: each hyperparameter's share of posterior variance from the
        selection; ``member_weights``, ``member_ess``).  None for a single grid.
    """

    idata: object
    summary: object
    num_divergences: int
    runtime_s: float
    model: PopulationModel
    data: PopulationData
    grid: LikelihoodGrid
    seed: int
    quadrature_relative_error: float = float("nan")
    selection_uncertainty: str = "none"
    selection_diagnostics: dict | None = None

    @property
    def log_likelihood_variance(self) -> float:
        """Var over the selection members of ln L at the posterior median (NaN without members)."""
        if self.selection_diagnostics is None:
            return float("nan")
        return float(self.selection_diagnostics["log_likelihood_variance"])

    # ------------------------------------------------------------- access
    def params(self) -> dict[str, np.ndarray]:
        """Hyperparameter draws keyed by name (chains concatenated)."""
        return {name: self.draws(name) for name in self.model.parameter_names}

    def mean(self, name: str) -> float:
        return float(np.mean(self.draws(name)))

    def report(self) -> str:
        """The summary table with divergences and runtime."""
        lines = [
            f"{self.model.describe()}: {self.data.n_objects} objects, seed {self.seed}",
            self.summary.to_string(),
            f"divergences: {self.num_divergences}; max r_hat {_nanmax(self.summary['r_hat']):.3f}; "
            f"min ESS bulk {np.nanmin(self.summary['ess_bulk']):.0f}; "
            f"runtime {self.runtime_s:.1f} s; "
            f"quadrature error of α {100 * self.quadrature_relative_error:.2g}%",
        ]
        if self.selection_diagnostics is not None:
            share = ", ".join(
                f"{k} {100 * v:.0f}%"
                for k, v in self.selection_diagnostics["variance_share"].items()
            )
            lines.append(
                f"selection uncertainty {self.selection_uncertainty!r}: "
                "Var_members ln L at the median "
                f"{self.log_likelihood_variance:.3g}; "
                "share of posterior variance from the selection: "
                f"{share}"
            )
        return "\n".join(lines)

    # ---------------------------------------------------- predictive checks
    def posterior_predictive(
        self,
        *,
        n_draws: int = 100,
        bins: Mapping[str, Sequence[float]] | None = None,
        seed: int | None = None,
    ) -> dict:
        """Histograms of log_mass and log_age of replicated catalogues.

        For each of ``n_draws`` posterior draws, ``N_obs`` detected clusters are drawn from
        p_obs(θ) p(θ|Λ) (p_obs from the selection grid), given the measurement errors of
        randomly chosen catalogue objects if the model has them, and histogrammed.

        Parameters
        ----------
        n_draws : int
            Posterior draws to replicate.
        bins : mapping, optional
            Bin edges per column (``log_mass``, ``log_age`` or ``av``); default 0.25 dex in
            mass and 0.3 dex in age from the lower edges of the model's supports.
        seed : int, optional

        Returns
        -------
        dict
            ``{column: {"edges", "observed" (counts), "replicated" (n_draws, n_bins)}}``.
        """
        bins = dict(bins or _default_bins(self.model))
        rng = np.random.default_rng(self.seed + 1 if seed is None else seed)
        params = self.params()
        n_total = len(next(iter(params.values())))
        chosen = rng.choice(n_total, size=min(n_draws, n_total), replace=False)
        n_obs = self.data.n_objects
        theta_obs = np.asarray(self.data.theta)
        out = {
            c: {
                "edges": np.asarray(bins[c]),
                "observed": np.histogram(theta_obs[:, THETA_COLUMNS.index(c)], bins[c])[0],
                "replicated": [],
            }
            for c in bins
        }
        alpha = self.draws("detected_fraction")
        for s in chosen:
            draw = {k: v[s] for k, v in params.items()}
            theta = _sample_detected(
                self.model,
                draw,
                self.grid.selection,
                n_obs,
                float(alpha[s]),
                int(rng.integers(2**31)),
                rng,
            )
            if self.model.measurement_error != "none":
                pick = rng.integers(n_obs, size=n_obs)
                lo, hi = np.asarray(self.data.sigma_lo)[pick], np.asarray(self.data.sigma_hi)[pick]
                z = rng.standard_normal(theta.shape)
                noise = np.where(z < 0, lo, hi) * z
                for j, name in enumerate(THETA_COLUMNS):
                    if name in self.model.error_columns:
                        theta[:, j] += noise[:, j]
            for c in bins:
                out[c]["replicated"].append(
                    np.histogram(theta[:, THETA_COLUMNS.index(c)], bins[c])[0]
                )
        for c in bins:
            out[c]["replicated"] = np.asarray(out[c]["replicated"])
        return out

    def plot_ppc(self, **kwargs):
        """Posterior predictive histograms of log M and log T; see :func:`plot_ppc`."""
        return plot_ppc(self, **kwargs)

    def plot_pair(self, **kwargs):
        """Pair (corner) plot of the hyperparameters; see :func:`plot_pair`."""
        return plot_pair(self, **kwargs)


def _default_bins(model: PopulationModel) -> dict[str, np.ndarray]:
    """0.25 dex in mass (up to 10^7 Msun) and 0.3 dex in age, starting at the supports' lower
    edges."""

    def edges(low, high, width):
        values = np.arange(low, high - 1e-9, width)
        return np.append(values, high)

    m_low, m_high = model.log_mass_range
    t_low, t_high = model.log_age_range
    return {
        "log_mass": edges(m_low, min(m_high, max(7.0, m_low + 1.0)), 0.25),
        "log_age": edges(t_low, t_high, 0.3),
    }


def _nanmax(values) -> float:
    values = np.asarray(values, np.float64)
    return float(np.max(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")


def _sample_detected(
    model,
    params,
    selection: SelectionGrid,
    n_obs: int,
    alpha: float,
    seed: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n_obs`` clusters drawn from p(θ|Λ) and thinned by the grid's p_obs."""
    kept = []
    n_kept = 0
    key = jax.random.PRNGKey(seed)
    size = int(2 ** np.ceil(np.log2(min(max(1.5 * n_obs / max(alpha, 1e-6), 4096), 2**21))))
    for _ in range(1000):
        key, sub = jax.random.split(key)
        theta = sample_population(model, params, size, sub)
        p = np.asarray(
            selection.interpolate(*(jnp.asarray(theta[:, j], jnp.float32) for j in range(3)))
        )
        detected = theta[rng.random(size) < p]
        kept.append(detected)
        n_kept += len(detected)
        if n_kept >= n_obs:
            break
    return np.concatenate(kept)[:n_obs]


def plot_ppc(
    result: FitResult,
    *,
    axes=None,
    n_draws: int = 100,
    bins=None,
    seed=None,
    color="tab:blue",
    title: str | None = None,
    ppc: Mapping | None = None,
):
    """Observed log M and log T histograms against the posterior predictive 68% / 95% bands.

    ``ppc``: the output of :meth:`FitResult.posterior_predictive` (computed if not given).
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if ppc is None:
        ppc = result.posterior_predictive(n_draws=n_draws, bins=bins, seed=seed)
    if axes is None:
        fig, axes = plt.subplots(1, len(ppc), figsize=(5.2 * len(ppc), 3.8))
    axes = np.atleast_1d(axes)
    labels = {
        "log_mass": r"$\log_{10}(M/\mathrm{M}_\odot)$",
        "log_age": r"$\log_{10}(T/\mathrm{yr})$",
        "av": r"$A_V$ [mag]",
    }
    for ax, (column, entry) in zip(axes, ppc.items()):
        edges, replicated = entry["edges"], entry["replicated"]
        q = np.quantile(replicated, [0.025, 0.16, 0.5, 0.84, 0.975], axis=0)
        ax.fill_between(
            edges,
            np.append(q[0], q[0][-1]),
            np.append(q[4], q[4][-1]),
            step="post",
            color=color,
            alpha=0.2,
            label="posterior predictive 95%",
        )
        ax.fill_between(
            edges,
            np.append(q[1], q[1][-1]),
            np.append(q[3], q[3][-1]),
            step="post",
            color=color,
            alpha=0.4,
            label="68%",
        )
        ax.stairs(q[2], edges, color=color, lw=1, ls="--", label="median")
        ax.stairs(entry["observed"], edges, color="k", lw=1.6, label="observed")
        ax.set_xlabel(labels.get(column, column))
        ax.set_ylabel("clusters per bin")
    axes[0].legend(fontsize="small")
    fig = axes[0].figure
    fig.suptitle(title or result.model.describe(), fontsize="medium")
    fig.tight_layout()
    return fig


def plot_pair(
    result: FitResult, *, var_names=None, reference: Mapping[str, float] | None = None, **kwargs
):
    """Corner plot of the scalar hyperparameters (``arviz.plot_pair`` with marginals).

    ``reference``: values to mark (e.g. published fits or the truth).  Returns the figure.
    """
    import arviz as az

    var_names = list(var_names or result.model.scalar_parameters)
    kwargs.setdefault("kind", "kde" if result.draws(var_names[0]).size <= 4000 else "scatter")
    kwargs.setdefault("marginals", True)
    kwargs.setdefault("figsize", (2.3 * len(var_names) + 0.6, 2.3 * len(var_names) + 0.6))
    kwargs.setdefault("textsize", 9)
    if reference:
        kwargs.setdefault(
            "reference_values", {k: v for k, v in reference.items() if k in var_names}
        )
    axes = az.plot_pair(result.idata, var_names=var_names, **kwargs)
    fig = np.atleast_1d(axes).ravel()[0].figure
    fig.tight_layout()
    return fig
