# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.16.0
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Many fields, one model: pooling, PSIS-LOO and shrinkage
#
# A survey covers several fields (galaxies, or pointings of one galaxy), each with its own
# depth, extinction and distance, hence its own selection function p_obs, and its own
# catalogue. Fitting each field alone (notebook 5) ignores that the fields' cluster populations
# are related; fitting them as one catalogue ignores that they differ. The hierarchical model of
# `jaxcomp.demographics.MultiFieldModel` sits between: every field f has its own
# hyperparameters Λ_f (α_M, α_T, the A_V bin probabilities), drawn from a population
# distribution (mean and scatter). Its two limits are the same model with the scatter at 0
# (**complete pooling**: one shared Λ) and at ∞ (**no pooling**: independent fields).
#
# Here we simulate a few fields whose α_M scatters around −2, each seen through a selection of
# different depth, fit them with the three pooling forms, rank the forms by PSIS-LOO
# (leave-one-cluster-out predictive accuracy) and draw the per-field posteriors: partial pooling
# pulls the poorly measured fields towards the population mean (shrinkage).
#
# `JAXCOMP_NOTEBOOK_QUICK=1` fits 3 small fields with 2 short chains (most of its time is JAX
# compiling the three samplers); without it, 6 fields with 4 chains of 500 + 500 steps.

# %%
import os
import sys
import warnings

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

QUICK = os.environ.get("JAXCOMP_NOTEBOOK_QUICK") == "1"
print(f"QUICK mode: {QUICK}")
if QUICK:
    # CI check only: a lower XLA optimisation level compiles the samplers faster (and runs them a
    # little slower). It must be set before JAX is first imported.
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


def save(fig, name):
    """Write a matplotlib figure into the working directory (and display it in a notebook)."""
    fig.savefig(name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {name}")
    if IN_NOTEBOOK:
        from IPython.display import Image, display

        display(Image(filename=name))


# %% [markdown]
# ## Simulated fields
#
# Each field has its own α_M ~ N(−2.0, 0.15) (α_T = −0.8 and the A_V probabilities are shared
# here) and its own depth: the analytic `LogisticSelection` (50% completeness at 10^2.5 Msun
# for young clusters, rising with age and A_V) made shallower by 0-2 mag (0.4 dex in mass per
# mag). Every random draw comes from one recorded seed. The fits use each field's p_obs
# tabulated on a `SelectionGrid`, as they would for a trained network or the published C-4
# networks.

# %%
from jaxcomp.demographics import PopulationModel, SelectionGrid, simulate_catalogue
from jaxcomp.selection.synthetic import LogisticSelection

SEED = 6
N_FIELDS = 3 if QUICK else 6
N_PER_FIELD = (250, 120, 60) if QUICK else (800, 500, 300, 200, 120, 80)
rng = np.random.default_rng(SEED)
true_alpha_m = -2.0 + 0.15 * rng.standard_normal(N_FIELDS)
shifts_mag = np.linspace(0.0, 2.0, N_FIELDS)
population = PopulationModel(mass="power_law", age="power_law", log_age_range=(6.0, 9.5))
names, catalogues, grids = [], [], []
for f in range(N_FIELDS):
    selection = LogisticSelection(log_mass_50_young=2.5 + 0.4 * shifts_mag[f], age_slope=0.6)
    truth = {
        "alpha_M": true_alpha_m[f],
        "alpha_T": -0.8,
        "av_weights": np.array([0.4, 0.3, 0.2, 0.1]),
    }
    catalogues.append(
        simulate_catalogue(population, truth, selection, n_obs=N_PER_FIELD[f], seed=SEED + f)
    )
    grids.append(SelectionGrid.from_selection(selection, shape=(41, 26, 7)))
    names.append(f"field{f}")
    print(
        f"{names[-1]}: depth shift {shifts_mag[f]:.1f} mag, alpha_M = {true_alpha_m[f]:+.3f}, "
        f"{N_PER_FIELD[f]} detected clusters"
    )

# %% [markdown]
# ## Three pooling forms, ranked by PSIS-LOO
#
# `compare_pooling` fits the same fields with complete, partial and no pooling (one NUTS
# program each, all fields in one jitted, vmapped log density) and ranks the fits with
# `arviz.compare` on the per-cluster log-likelihood. `elpd_loo` is the expected log predictive
# density of a left-out cluster (higher is better); `elpd_diff` and `dse` are each form's
# difference from the best and its standard error.

# %%
from jaxcomp.demographics import MultiFieldModel, compare_pooling

sampler = (
    {"num_warmup": 100, "num_samples": 100, "num_chains": 2}
    if QUICK
    else {"num_warmup": 500, "num_samples": 500, "num_chains": 4}
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # a few divergences in the short chains
    results, comparison = compare_pooling(
        catalogues,
        grids,
        MultiFieldModel(population),
        field_names=names,
        seed=SEED,
        target_accept_prob=0.9,
        **sampler,
    )
print(comparison[["rank", "elpd_loo", "p_loo", "elpd_diff", "dse", "weight"]].round(2))
partial = results["partial"]
low, high = partial.interval("alpha_M_mean", 0.95)
print(
    f"partial pooling: population alpha_M mean {np.median(partial.draws('alpha_M_mean')):+.3f} "
    f"[{low:+.3f}, {high:+.3f}] (95%), scatter "
    f"{np.median(partial.draws('alpha_M_scatter')):.3f}; "
    f"divergences {sum(r.num_divergences for r in results.values())}"
)

# %% [markdown]
# ## Shrinkage
#
# The per-field α_M posteriors of the three fits, fields ordered by their no-pooling median,
# with the true values (crosses) and the partial-pooling population mean (dashed). No pooling
# gives the widest intervals for the shallow, small fields; complete pooling gives every field
# the same value; partial pooling pulls each field towards the mean by as much as its own data
# leave room for.

# %%
from jaxcomp.demographics import plot_shrinkage

save(plot_shrinkage(results, "alpha_M", truth=true_alpha_m), "many_fields_shrinkage_alpha_M.png")
for pooling, result in results.items():
    errors = np.median(result.draws("alpha_M"), axis=0) - true_alpha_m
    rms = np.sqrt(np.mean(errors**2))
    print(f"{pooling:>8} pooling: RMS error of the per-field alpha_M medians {rms:.3f}")

# %% [markdown]
# ## The same from the command line and in a workflow
#
# `write_multifield_outputs` writes the files `jaxcomp fit --field ...` and the workflow's
# `[[fields]]` fit leave: per-field and population posterior tables, the shrinkage plots, the
# LOO table and each fit's InferenceData. From the shell, with catalogues and physical
# selection-function artefacts (or saved `SelectionGrid` files) of your own:
#
# ```bash
# jaxcomp fit --field ngc628c legus:ngc628c c4_phys.safetensors \
#             --field ngc628e legus:ngc628e ngc628e_phys.safetensors \
#             --compare-pooling --out fit_fields/
# ```

# %%
from pathlib import Path

from jaxcomp.demographics import write_multifield_outputs

out = Path("many_fields_fit")
out.mkdir(exist_ok=True)
written = write_multifield_outputs(results, out, main="partial", comparison=comparison)
print("wrote", ", ".join(sorted(written["files"])), "into", out)
print((out / "posterior.md").read_text()[:1500])
