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
# # 3. Training selection functions on ASTs and validating them
#
# The C-4 recipe (Tang et al. 2026, sections 3.2-4.1) uses two artificial-cluster campaigns:
#
# * a **training** campaign: many distinct library clusters, each injected once, giving one
#   0/1 label per cluster (the paper: 10 radii × 49 frames × 500 clusters = 245,000 labels);
# * a **test** campaign: a smaller set of clusters, each re-injected in many frames with new
#   positions and noise (the paper: 500 per radius × 100 repeats), so that every test cluster
#   has a measured recovery probability p_true = n_recovered / n_repeats.
#
# Networks trained on the first are judged against p_true from the second. Two networks are
# trained: a **physical** one on (log M, log T, A_V) and a **photometric** one on the five
# LEGUS magnitudes.
#
# This notebook runs both campaigns at toy sizes on a crop of the mock NGC 628C field, trains
# both networks briefly and validates them with `jaxcomp.selection.validation`. The toy sizes
# are far too small to reproduce the paper's accuracy; the end of the notebook says why and by
# how much. `JAXCOMP_NOTEBOOK_QUICK=1` selects the smallest sizes (a CI check); without it the
# sizes are larger but still well below the paper's.

# %%
import os
import sys
import time

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

QUICK = os.environ.get("JAXCOMP_NOTEBOOK_QUICK") == "1"
print(f"QUICK mode: {QUICK}")

if QUICK:
    SIZES = dict(
        field=(600, 600),
        radii=(2.0, 5.0),
        train_frames=4,
        train_per_frame=70,
        test_clusters=40,
        test_repeats=8,
        hidden=(32, 32),
        epochs=60,
        batch=128,
    )
else:
    SIZES = dict(
        field="small",
        radii=tuple(float(r) for r in range(1, 11)),
        train_frames=5,
        train_per_frame=300,
        test_clusters=50,
        test_repeats=20,
        hidden=(128, 128),
        epochs=100,
        batch=1024,
    )
print(SIZES)


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
# ## Field and library
#
# `match_library_reff=False` below draws a frame's clusters from the whole library and gives
# them the frame's radius, so the library needs no particular radius distribution (the paper
# instead uses library rows whose own radius matches the frame's).

# %%
from jaxcomp.ast import make_mock_field
from jaxcomp.library import LibraryConfig, generate_library

field = make_mock_field(SIZES["field"], seed=0)
n_radii = len(SIZES["radii"])
n_library = (
    n_radii * (SIZES["train_frames"] * SIZES["train_per_frame"] + SIZES["test_clusters"]) + 50
)
start = time.perf_counter()
library = generate_library(n_library, LibraryConfig(), seed=11)
print(
    f"field {field.shape}, library of {len(library)} clusters in {time.perf_counter() - start:.1f} "
    "s"
)

# %% [markdown]
# ## Training and test campaigns
#
# The test campaign excludes every cluster used in training. Both run in this process
# (`executor="serial"`) in quick mode and on a process pool otherwise.

# %%
from jaxcomp.ast import CampaignConfig, run_campaign

executor = "serial" if QUICK else "process"
train_config = CampaignConfig(
    design="train",
    r_eff_pc=SIZES["radii"],
    frames_per_reff=SIZES["train_frames"],
    clusters_per_frame=SIZES["train_per_frame"],
    seed=1,
    match_library_reff=False,
)
start = time.perf_counter()
train_labels = run_campaign(
    field, library, train_config, "campaign_train", executor=executor, progress=not QUICK
)
print(
    f"training campaign: {train_config.n_frames} frames, {len(train_labels)} labels "
    f"({np.mean(train_labels['C']):.3f} recovered) in {time.perf_counter() - start:.1f} s"
)

test_config = CampaignConfig(
    design="test",
    r_eff_pc=SIZES["radii"],
    frames_per_reff=SIZES["test_repeats"],
    clusters_per_frame=SIZES["test_clusters"],
    seed=2,
    match_library_reff=False,
)
start = time.perf_counter()
test_labels = run_campaign(
    field,
    library,
    test_config,
    "campaign_test",
    executor=executor,
    progress=not QUICK,
    exclude=np.unique(np.asarray(train_labels["cluster_id"])),
)
print(
    f"test campaign: {test_config.n_frames} frames, {len(test_labels)} injections of "
    f"{len(np.unique(np.asarray(test_labels['cluster_id'])))} clusters in "
    f"{time.perf_counter() - start:.1f} s"
)

# %% [markdown]
# ## p_true of the test clusters
#
# `p_true_table` collapses the repeats: one row per test cluster with its properties,
# `n_repeats`, `n_detected` (repeats recovered into the final catalogue) and
# p_true = n_detected / n_repeats (paper eq. 10). With R repeats p_true is itself a binomial
# estimate with standard error sqrt(p (1 − p) / R): 0.18 at p = 0.5 for R = 8, 0.05 for the
# paper's R = 100.

# %%
from jaxcomp.selection.validation import p_true_table

table = p_true_table(test_labels)
print(
    table[
        "cluster_id", "r_eff_pc", "log_mass", "log_age", "av", "n_repeats", "n_detected", "p_true"
    ][:8]
)
p = np.asarray(table["p_true"])
print(
    f"{len(table)} test clusters: {np.mean(p == 0):.0%} never recovered, {np.mean(p == 1):.0%} "
    "always, "
    f"{np.mean((p > 0) & (p < 1)):.0%} in between"
)

# %% [markdown]
# ## Training the two networks
#
# The same recipe as notebook 1 (binary cross-entropy, split by cluster, best epoch on the
# validation split), with a small network and a single learning rate. The photometric network
# sees the five *true* (injected) magnitudes of each cluster, not measured ones.

# %%
from jaxcomp.selection import TrainConfig, train_selection_function

config = TrainConfig(
    hidden_widths=SIZES["hidden"],
    epochs=SIZES["epochs"],
    batch_size=SIZES["batch"],
    learning_rates=(1e-2,),
    weight_decays=(1e-3,),
    seed=0,
)
networks = {}
for kind in ("physical", "photometric"):
    start = time.perf_counter()
    result = train_selection_function(train_labels, kind, config, progress=False)
    networks[kind] = result.selection_function
    report = result.test_calibration
    print(
        f"{kind:>11s}: {result.labels.inputs.shape[0]} labels, best epoch "
        f"{result.histories[0].best_epoch}, "
        f"held-out ECE {report.ece:.3f}, Brier {report.brier:.3f} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    networks[kind].save(f"selection_{kind}.safetensors")

# %% [markdown]
# ## Validation against p_true
#
# `validate_selection` predicts p_hat for every test cluster and reports the percentiles of
# |p_hat − p_true| (paper eq. 12 and Fig. 7), together with the **binomial floor**: the same
# percentiles for a network equal to the truth, which still differs from p_true by the binomial
# noise of R repeats. Bins with fewer than `min_count` test clusters are omitted from the binned
# comparisons (the paper uses 80 of 5000 clusters; here a handful).

# %%
from jaxcomp.selection.validation import (
    plot_binned_comparison,
    plot_error_cdf,
    plot_validation_reliability,
    plot_z_hexbin,
    validate_selection,
)

min_count = 5 if QUICK else 20
n_bins = {
    c: 10
    for c in (
        "log_mass",
        "log_age",
        "mag_F275W",
        "mag_F336W",
        "mag_F435W",
        "mag_F555W",
        "mag_F814W",
    )
}
validations = {}
for kind, sf in networks.items():
    validations[kind] = validate_selection(
        sf,
        table,
        name=kind,
        min_count=min_count,
        n_bins=n_bins,
        out_of_domain="clip",
        drop_nonfinite=True,
    )
    print(validations[kind].summary())

# %%
show(plot_error_cdf(validations, "error_cdf.png"))
show(
    plot_binned_comparison(
        validations,
        "binned_comparison.png",
        columns=["log_mass", "log_age", "mag_F555W", "mag_F814W"],
    )
)
show(plot_z_hexbin(validations["physical"], "z_hexbin_physical.png", gridsize=15, mincnt=1))
show(plot_validation_reliability(validations["physical"], "reliability_physical.png"))

# %% [markdown]
# `error_cdf.png` is the paper's Fig. 7: the cumulative distribution of |p_hat − p_true| with
# the 50th/90th/95th percentiles (filled symbols), the binomial floor (crosses) and the paper's
# values (open symbols). `z_hexbin_physical.png` is Fig. 6, in z = atanh(2p − 1), which spreads
# out probabilities near 0 and 1; clusters recovered in none or all of their repeats sit on the
# dashed edge lines.

# %%
from jaxcomp.selection.validation import PAPER_PERCENTILES

print(f"{'':>11s}  {'p50':>6s} {'p90':>6s} {'p95':>6s}   (|p_hat - p_true| percentiles)")
for kind, v in validations.items():
    ours, floor, paper = v.percentiles, v.binomial_floor, PAPER_PERCENTILES[kind]
    print(f"{kind:>11s}  {ours['p50']:6.3f} {ours['p90']:6.3f} {ours['p95']:6.3f}   this notebook")
    print(
        f"{'':>11s}  {floor['p50']:6.3f} {floor['p90']:6.3f} {floor['p95']:6.3f}   binomial floor "
        "with "
        f"{int(np.median(v.n_repeats))} repeats"
    )
    print(
        f"{'':>11s}  {paper['p50']:6.3f} {paper['p90']:6.3f} {paper['p95']:6.3f}   "
        "Tang+2026 (5000 clusters x 100 repeats)"
    )

# %% [markdown]
# ## Reading these numbers against the paper's
#
# Compare each row with the binomial floor first: the floor is what a perfect network would
# score against p_true from this many repeats. Then the paper.

# %%
for kind, v in validations.items():
    ours, floor, paper = v.percentiles, v.binomial_floor, PAPER_PERCENTILES[kind]
    print(
        f"{kind:>11s}: median {ours['p50'] / paper['p50']:.0f} x the paper's; "
        f"above the binomial floor by {ours['p50'] - floor['p50']:+.3f} (p50), "
        f"{ours['p90'] - floor['p90']:+.3f} (p90), {ours['p95'] - floor['p95']:+.3f} (p95)"
    )
for kind, v in validations.items():
    extreme = (v.p_true == 0) | (v.p_true == 1)
    print(
        f"{kind:>11s}: median |p_hat - p_true| over the {extreme.sum()} clusters recovered in none "
        "or all "
        f"repeats {np.median(v.abs_error[extreme]):.3f}, over the others "
        f"{np.median(v.abs_error[~extreme]):.3f}"
    )
radius = np.asarray(table["r_eff_pc"])
for r in np.unique(radius):
    rows = radius == r
    print(
        f"  r_eff = {r:g} pc: mean p_true {np.mean(p[rows]):.2f}, mean p_hat (physical) "
        f"{np.mean(validations['physical'].p_hat[rows]):.2f}, median |error| "
        f"{np.median(validations['physical'].abs_error[rows]):.3f}"
    )

# %% [markdown]
# **The median** is the sharpest test. In the paper it is 0.007: most test clusters are far from
# the transition, and both the network and 100 repeats agree that they are always or never
# recovered. Here it is an order of magnitude larger. The lines above separate the causes:
#
# * **Repeats.** p_true from R repeats has a standard error of up to 0.5 / √R: 0.18 for R = 8,
#   0.05 for the paper's R = 100. The binomial-floor row is what a perfect network would score
#   against p_true this noisy; part of the error on clusters recovered in none or all repeats is
#   this floor again (a cluster with a true p of 0.95 is recovered in all 8 of 8 repeats two
#   times out of three).
# * **Training labels.** A few hundred (quick mode) or 15,000 (full mode) instead of 245,000: the
#   network sees few clusters in the transition between p ≈ 0 and p ≈ 1, where the information
#   is, so the position and width of the transition are poorly determined.
# * **Radius.** Neither network sees the cluster radius, so each predicts an average over the
#   campaign's radii (the per-radius lines). How much that costs depends on how differently the
#   radii behave. On this mock field 1 pc clusters are an extreme case: they nearly always fail
#   the concentration-index cut (notebook 2). The quick mode uses 2 and 5 pc, which behave
#   similarly; in the full-size run of this notebook (all ten radii), the 1 pc test clusters got
#   p_hat ≈ 0.4 against p_true ≈ 0.01, and they alone pushed the 95th percentile to about 0.6.
#   A network that takes the radius as an input (`train_selection_function(labels,
#   "physical+r_eff_pc", ...)`) avoids this; for a catalogue without radii,
#   `jaxcomp.selection.RadiusMarginalisedSelection` averages it over a radius prescription
#   (flat or K19) and is again a function of (log M, log T, A_V).
# * **Crowding and test-set size.** The frames here are far more crowded than the paper's (one
#   cluster per few thousand px² instead of ~90,000 px²), which makes even bright clusters fail
#   now and then, and with tens to hundreds of test clusters the 90th and 95th percentiles are
#   set by a handful of clusters each.
#
# So the 90th and 95th percentiles can land close to the paper's (as in quick mode) or far above
# them (full mode) for reasons that have little to do with how well the network learned; compare
# them with the binomial floor and look at where the large errors come from before drawing
# conclusions. Calibration is a different question: in the full-size run the held-out ECE was
# 0.015 despite the large per-cluster errors, because a reliability curve averages over radii
# just as the network does. In quick mode the held-out split has under a hundred labels, too few
# for the ECE to mean much.
#
# For a larger run use `jaxcomp demo`: the embedded end-to-end workflow on the 1500 px mock
# crop at the paper's density (25 clusters per frame, rerun on windows around them with
# `reprocess = "local"`; 10 radii, 30,000 training labels, 500 test clusters per radius × 10
# repeats, the two networks with and without the radius, then the demographics; its
# configuration `data/workflows/demo.toml` is sized for under 15 minutes on 2 cores). There the
# radius-aware networks reach |p_hat − p_true| percentiles of about 0.007 / 0.09 / 0.15, at the
# binomial floor of 10 repeats (README, "What the demo shows"). `jaxcomp demo --quick`
# is a few-minute check of the installation. A TOML workflow (`jaxcomp run`) can be given the
# paper's full sizes (49 training frames per radius, 500 test clusters × 100 repeats).
