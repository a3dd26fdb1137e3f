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
# # 1. Quick start: a selection function p_obs
#
# A cluster catalogue does not contain every cluster in the field. The **selection function**
# (or completeness) p_obs(θ) is the probability that a cluster with true properties
# θ = (log10 M/Msun, log10 T/yr, A_V/mag) ends up in the final catalogue, after detection,
# photometry and every catalogue cut. It is measured with artificial cluster tests (ASTs):
# synthetic clusters are injected into the real images, the catalogue pipeline is rerun, and
# each injected cluster gets a label C = 1 (recovered) or C = 0 (lost). A single label is a
# Bernoulli draw with probability p_obs(θ); a neural network trained with binary cross-entropy
# on many labels estimates p_obs(θ) itself.
#
# In this notebook the labels are drawn from a **known** analytic surface
# (`jaxcomp.selection.synthetic.LogisticSelection`: a logistic in log mass whose 50% mass
# limit rises with age and with extinction), so we can compare the trained network with the
# truth. Notebooks 2 and 3 make labels with real ASTs on a mock NGC 628C field.
#
# Run as a script, `JAXCOMP_NOTEBOOK_QUICK=1` selects a small training set and a small
# network (a CI check of about half a minute); without it the sizes follow the paper.

# %%
import os
import sys
import time
import warnings

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

QUICK = os.environ.get("JAXCOMP_NOTEBOOK_QUICK") == "1"
print(f"QUICK mode: {QUICK}")


def show(path):
    """Report a figure written into the working directory, and display it in a notebook."""
    print(f"wrote {path}")
    if IN_NOTEBOOK:
        from IPython.display import Image, display

        display(Image(filename=str(path)))


def save(fig, name):
    """Write a matplotlib figure into the working directory (and display it in a notebook)."""
    fig.savefig(name, dpi=110, bbox_inches="tight")
    plt.close(fig)
    show(name)


# %% [markdown]
# ## Labels from a known selection surface
#
# `simulate_labels` draws clusters uniformly over the library domain of the C-4 paper
# (log M in [2, 8], log T in [5, log10 1.5e10], A_V in [0, 3]) and gives each one a label
# C ~ Bernoulli(p_true). The true surface has its 50% mass limit at log M = 3.0 for young
# clusters, rising by 0.8 dex per dex of age above log T ≈ 6.7 and by 0.4 dex per magnitude
# of A_V, with a transition width of 0.3 dex in mass.

# %%
from jaxcomp.selection.synthetic import LogisticSelection, simulate_labels

truth = LogisticSelection()
n_labels = 20_000 if QUICK else 245_000
labels = simulate_labels(n_labels, seed=1, selection=truth)
print(labels[:5])
print(f"{len(labels)} labels, recovered fraction {labels['C'].mean():.3f}")
print(
    f"50% mass limit of the truth at log T = 7, A_V = 0: log M = {truth.log_mass_50(7.0, 0.0):.2f}"
)
print(f"                          at log T = 9, A_V = 1: log M = {truth.log_mass_50(9.0, 1.0):.2f}")

# %% [markdown]
# ## Training
#
# `train_selection_function` fits an MLP on (log_mass, log_age, av) with unweighted binary
# cross-entropy (so that outputs stay calibrated probabilities), splits train / validation /
# test by injected cluster, keeps the epoch with the lowest validation loss and, over a grid of
# learning rates and weight decays, the best grid point. `n_members=2` trains a second network
# from another seed: the mean of the two is p_obs and their standard deviation a rough spread.
#
# The paper's recipe is 2 × 512 GELU units, 100 epochs, batch 4096 and a 4 × 6 grid. The quick
# mode uses 2 × 32 units, 12 epochs and a single grid point; the full mode the paper's network
# with 60 epochs and two learning rates (about ten minutes on two CPU cores).

# %%
from jaxcomp.selection import TrainConfig, train_selection_function

if QUICK:
    config = TrainConfig(
        hidden_widths=(32, 32),
        epochs=12,
        batch_size=1024,
        learning_rates=(1e-2,),
        weight_decays=(1e-3,),
        n_members=2,
        seed=0,
    )
else:
    config = TrainConfig(
        hidden_widths=(512, 512),
        epochs=60,
        batch_size=4096,
        learning_rates=(5e-3, 1e-2),
        weight_decays=(1e-3,),
        n_members=2,
        seed=0,
    )
start = time.perf_counter()
result = train_selection_function(labels, "physical", config, progress=not QUICK)
sf = result.selection_function
print(f"trained in {time.perf_counter() - start:.1f} s: {sf}")
print(
    f"chosen learning rate {result.best_learning_rate:g}, weight decay {result.best_weight_decay:g}"
)
for history in result.histories:
    print(
        f"  member {history.member}: best epoch {history.best_epoch}, "
        f"validation loss {history.best_validation_loss:.4f}"
    )

# %%
from jaxcomp.selection.training import plot_loss_curves

show(plot_loss_curves(result, "loss_curves.png"))

# %% [markdown]
# ## The artefact: one `.safetensors` file
#
# `save` writes the weights (plain arrays, nothing executable) and a JSON header with the
# inputs, their units and domain, the standardisation, the out-of-domain policy, the training
# configuration, hashes of the labels and the configuration, and test metrics. Both parts carry
# SHA-256 checksums that `load` verifies. `jaxcomp info FILE` prints the same header.

# %%
from jaxcomp import SelectionFunction

path = sf.save("selection_physical.safetensors")
print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} kB)")
loaded = SelectionFunction.load(path)
header = loaded.header
print("header keys:", sorted(header))
for record in header["inputs"]:
    print(
        f"  {record['name']:>9s} [{record['unit']}], domain "
        f"{np.round(record['domain'], 3).tolist()}"
    )
print("out-of-domain policy:", header["out_of_domain"])
print(
    "test-split metrics:",
    {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in header["training"]["test_metrics"].items()
    },
)
x = np.array([[3.5, 7.0, 0.5], [5.0, 9.0, 1.0]], dtype=np.float32)
print("saved and reloaded give the same p_obs:", np.asarray(sf(x)), np.asarray(loaded(x)))

# %% [markdown]
# ## A pure JAX function: jit, vmap, grad
#
# A `SelectionFunction` is an immutable equinox pytree. Its call is pure, so it can be compiled,
# mapped and differentiated. Pass it **as an argument** to a jitted function: the weights are
# then traced inputs and not constants baked into the compiled program.
#
# For the logistic truth, dp/dlog M at the 50% point is 1 / (4 × width) = 0.83 per dex, and
# dp/dA_V there is −0.4 times that (one magnitude of extinction moves the limit by 0.4 dex);
# the age derivative is smaller than −0.8 times it because the knee of the true surface is a
# softplus that is not yet fully "on" at log T = 7.

# %%
import jax
import jax.numpy as jnp


@jax.jit
def expected_detected(sf, log_mass, log_age, av):
    """Expected number of detections among clusters at the given properties."""
    return sf(jnp.stack([log_mass, log_age, av], axis=-1)).sum()


rng = np.random.default_rng(2)
population = [
    jnp.asarray(v, jnp.float32)
    for v in (rng.uniform(3, 6, 1000), rng.uniform(6, 9, 1000), rng.uniform(0, 2, 1000))
]
n_det = float(expected_detected(loaded, *population))
n_true = float(truth(*(np.asarray(v, np.float64) for v in population)).sum())
print(f"expected detections among 1000 clusters: network {n_det:.1f}, truth {n_true:.1f}")

# gradient of p_obs with respect to theta, at the 50% point of the truth (log T = 7, A_V = 0.5)
theta = jnp.array([truth.log_mass_50(7.0, 0.5), 7.0, 0.5], jnp.float32)
gradient = jax.grad(lambda t: loaded(t))(theta)
print(f"p_obs at the true 50% point: {float(loaded(theta)):.3f}")
print("d p_obs / d(log M, log T, A_V), network:", np.round(np.asarray(gradient), 3))
step = 1e-5  # the truth is numpy: central differences
theta64 = np.asarray(theta, np.float64)
truth_gradient = [
    (truth(*(theta64 + step * e)) - truth(*(theta64 - step * e))) / (2 * step) for e in np.eye(3)
]
print("                                  truth:", np.round(truth_gradient, 3))


# vmap: the 50% completeness curve in age, one bisection per age, mapped over ages
def mass_at_half(sf, log_age, av=0.0):
    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        above = sf(jnp.stack([mid, log_age, av])) > 0.5
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 30, body, (jnp.float32(2.0), jnp.float32(8.0)))
    return 0.5 * (lo + hi)


ages = jnp.linspace(6.0, 10.0, 9)
limit = jax.jit(jax.vmap(mass_at_half, in_axes=(None, 0)))(loaded, ages)
print("log T       :", np.round(np.asarray(ages), 2))
print("M50 network :", np.round(np.asarray(limit), 2))
print("M50 truth   :", np.round(truth.log_mass_50(np.asarray(ages), 0.0), 2))

# %% [markdown]
# ## Tables with named columns: `predict`
#
# For catalogue tables use `predict`: it takes columns by name (in any order; extra columns are
# ignored), checks units, finiteness and the training domain, and evaluates in compiled chunks.

# %%
from astropy.table import Table

from jaxcomp import InputDomainError

catalogue = Table(
    {
        "id": [1, 2, 3],
        "av": [0.2, 1.0, 2.5],
        "log_age": [6.5, 8.0, 9.5],
        "log_mass": [3.5, 4.5, 5.5],
    }
)
p, spread = loaded.predict(catalogue, return_spread=True)
catalogue["p_obs"] = p
catalogue["p_obs_spread"] = spread
catalogue["p_true"] = truth(catalogue["log_mass"], catalogue["log_age"], catalogue["av"])
catalogue["p_obs"].format = catalogue["p_obs_spread"].format = catalogue["p_true"].format = ".3f"
print(catalogue)

# %% [markdown]
# A missing column is an error that names what is needed; a value outside the training domain
# (here A_V = 4 mag, above the 3 mag of the library) is clipped to the domain edge with a
# warning under the default `clip` policy, or refused with `out_of_domain="error"`.

# %%
try:
    loaded.predict({"log_mass": [4.0], "log_age": [7.0]})
except KeyError as error:
    print("KeyError:", error)

outside = {"log_mass": [4.0], "log_age": [7.0], "av": [4.0]}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    p_clipped = loaded.predict(outside)
print(f"clip policy: p_obs = {p_clipped[0]:.3f}; warning: {caught[0].message}")
try:
    loaded.predict(outside, out_of_domain="error")
except InputDomainError as error:
    print("InputDomainError:", error)

# %% [markdown]
# ## Comparison with the truth
#
# On fresh random points over the whole library domain, and along log M at a few ages
# (A_V = 0.5). The network's domain is the range of its training labels, a hair inside
# [2, 8] × [5, 10.18] × [0, 3]; we pass `out_of_domain="clip"` to accept the few points on the
# outer edge silently.

# %%
check = rng.uniform([2.0, 5.0, 0.0], [8.0, 10.17, 3.0], size=(50_000, 3))
p_network = loaded.predict(
    {"log_mass": check[:, 0], "log_age": check[:, 1], "av": check[:, 2]}, out_of_domain="clip"
)
p_truth = truth(*check.T)
error = np.abs(p_network - p_truth)
print(
    f"|p_network - p_true| over 50,000 random points: median {np.median(error):.4f}, "
    f"90th percentile {np.percentile(error, 90):.4f}, max {error.max():.3f}"
)
transition = (p_truth > 0.05) & (p_truth < 0.95)
print(
    f"  in the transition region (0.05 < p_true < 0.95, {transition.mean():.0%} of points): "
    f"median {np.median(error[transition]):.4f}, 90th percentile "
    f"{np.percentile(error[transition], 90):.4f}"
)

fig, ax = plt.subplots(figsize=(6.4, 4.2))
log_mass = np.linspace(2, 8, 300)
for colour, age in zip(("C0", "C1", "C2", "C3"), (6.0, 7.5, 8.5, 9.5)):
    grid_points = {
        "log_mass": log_mass,
        "log_age": np.full_like(log_mass, age),
        "av": np.full_like(log_mass, 0.5),
    }
    p_grid, s_grid = loaded.predict(grid_points, return_spread=True, out_of_domain="clip")
    ax.plot(log_mass, truth(log_mass, age, 0.5), color=colour, ls="--", lw=1)
    ax.plot(log_mass, p_grid, color=colour, label=f"log T = {age}")
    ax.fill_between(log_mass, p_grid - s_grid, p_grid + s_grid, color=colour, alpha=0.2, lw=0)
ax.set(
    xlabel="log10 M [Msun]",
    ylabel="p_obs",
    title="network (solid, ± member spread) vs truth (dashed), A_V = 0.5",
)
ax.legend(fontsize=8)
save(fig, "network_vs_truth.png")

# %% [markdown]
# ## Calibration on held-out clusters
#
# Calibration asks: among clusters given p_obs ≈ 0.3, are 30% recovered? The report uses the
# test split of the labels (clusters never seen in training). ECE is the count-weighted mean
# gap between predicted and observed fractions in probability bins; the Brier score is the mean
# squared difference between p_obs and the 0/1 labels. Even a perfect network has a Brier
# score above zero (the labels are coin flips), so compare with the truth's own score.

# %%
from jaxcomp import calibration_report
from jaxcomp.selection.calibration import plot_reliability

report = result.test_calibration
print(
    f"network on {report.n} test labels: ECE {report.ece:.4f}, Brier {report.brier:.4f}, "
    f"log loss {report.log_loss:.4f}"
)
test_rows = result.split["test"]
truth_report = calibration_report(
    np.asarray(labels["p_true"])[test_rows], np.asarray(labels["C"])[test_rows]
)
print(
    f"the true p_obs on the same labels: ECE {truth_report.ece:.4f}, Brier "
    f"{truth_report.brier:.4f}, "
    f"log loss {truth_report.log_loss:.4f}"
)
show(plot_reliability(report, "reliability.png", title="held-out clusters"))

# %% [markdown]
# Even with the quick settings the network is calibrated about as well as the truth itself on
# these labels, and its errors against the true surface are a few per cent, concentrated in
# the transition region (0.05 < p < 0.95) that holds the information; more labels and a larger
# network shrink them. Real labels are harder: notebook 2 makes them the real way, by injecting
# library clusters into a mock NGC 628C field and rerunning the LEGUS catalogue pipeline, and
# notebook 3 trains and validates networks on them.
