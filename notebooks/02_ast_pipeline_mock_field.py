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
# # 2. Artificial cluster tests on the mock NGC 628C field
#
# An artificial cluster test (AST) injects synthetic clusters of known mass, age, extinction and
# radius into the images, reruns the **whole** catalogue pipeline and records which of them
# reach the final catalogue. jaxcomp ships an embedded mock of the LEGUS NGC 628C pointing
# (`jaxcomp.ast.mock`): the 3080 catalogue sources at their catalogue positions and magnitudes,
# field stars, diffuse light (disk, bulge, spiral arms) and noise calibrated so that classical
# single-band tests reach the Adamo et al. (2017) 50% recovery magnitudes. It is **not** the
# real HST image, only something that behaves like it.
#
# This notebook:
# 1. renders a crop of the mock field and its white-light image;
# 2. runs the LEGUS-like catalogue pipeline on the unmodified frame and compares the result with
#    the sources that were placed in the mock;
# 3. injects one frame of library clusters (`run_frame`), shows which pipeline step removed
#    which clusters, and plots recovery;
# 4. runs a tiny campaign (`run_campaign`) at two radii.
#
# `JAXCOMP_NOTEBOOK_QUICK=1` uses a 600 × 600 px crop and a few hundred clusters; otherwise the
# 1500 × 1500 px "small" crop (the whole 7040 × 6400 px frame is `make_mock_field("legus")`).

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


def stretch(image, reference=None):
    """asinh stretch between the 1st and 99.7th percentiles (of ``reference``), for display only."""
    lo, hi = np.percentile(image if reference is None else reference, [1.0, 99.7])
    return np.arcsinh(np.clip((image - lo) / (hi - lo), 0, None) * 10) / np.arcsinh(10)


# %% [markdown]
# ## The mock field
#
# A crop centred on the busiest region of the LEGUS NGC 628C frame. Pixels are 0.0396 arcsec,
# about 1.9 pc at the adopted distance modulus of 29.98 mag. Images are sky-subtracted count
# rates in the five LEGUS bands.

# %%
from jaxcomp.ast import make_mock_field, mock_truth

size = (600, 600) if QUICK else "small"
start = time.perf_counter()
field = make_mock_field(size, seed=0)
print(
    f"{field.name}: {field.shape[0]} x {field.shape[1]} px, {field.pc_per_px:.2f} pc/px, "
    f"rendered in {time.perf_counter() - start:.1f} s"
)
print("zeropoints [Vega mag]:", field.zeropoints)
print("exposure times [s]:  ", field.exptimes)
truth = mock_truth(field)
print(
    f"{len(truth)} catalogue sources placed in this crop; by visual class:",
    dict(zip(*np.unique(np.asarray(truth["class_mode"]), return_counts=True))),
)

# %% [markdown]
# ## The catalogue pipeline on the unmodified frame
#
# `run_pipeline` chains the LEGUS steps: the white-light image (a weighted quadrature sum of the
# five bands), SExtractor-like detection on it, aperture photometry (1, 3 and 4 px apertures,
# average aperture corrections) in every band, and the catalogue cuts:
#
# | step | flag | cut |
# |---|---|---|
# | detection | `detected` | a source in the white-light segmentation |
# | stage 1 | `passes_err` | σ(V) ≤ 0.3 mag and σ(B) or σ(I) ≤ 0.3 mag |
# | stage 1 | `passes_ci` | concentration index m(1 px) − m(3 px) in V ≥ 1.4 mag |
# | stage 2 | `passes_nband` | at least 4 bands with σ ≤ 0.3 mag |
# | stage 2 | `passes_mv` | M_V ≤ −6 mag |
#
# A source is in the final catalogue (`C`) if it passes all of them.

# %%
from jaxcomp.ast import compare_with_truth, run_pipeline
from jaxcomp.ast.pipeline import STAGES

start = time.perf_counter()
baseline = run_pipeline(field)
catalogue = baseline.catalogue
print(
    f"pipeline in {time.perf_counter() - start:.1f} s: {len(catalogue)} detections, "
    f"{int(np.sum(catalogue['C']))} in the final catalogue"
)
for step in STAGES:
    print(f"  {step:>12s}: {int(np.sum(catalogue[step])):4d} sources pass this cut on its own")

comparison = compare_with_truth(catalogue, truth)
print(
    "\nplaced catalogue sources recovered (3 px match): detected "
    f"{comparison['completeness_detected']:.2f}, "
    f"final catalogue {comparison['completeness_final']:.2f}; purity of the final catalogue "
    f"{comparison['purity_final']:.3f}"
)
for cls, row in comparison["by_class"].items():
    print(
        f"  class {cls}: {row['n']:3d} sources, detected {row['completeness_detected']:.2f}, "
        f"final {row['completeness_final']:.2f}"
    )

# %% [markdown]
# Every placed source is in the real LEGUS catalogue, so on the real images it passed detection
# and the stage-1 cuts, and the visually classified ones (classes 1-4) also passed stage 2; the
# mock pipeline recovers fewer of them (the module docstring of `jaxcomp.ast.mock` quantifies
# this: about 68% of class 1-3 sources on the 1500 px crop). The two causes measured there are
# the diffuse light, which keeps the full noise in the white light on the bright arms, and the
# Gaussian PSF, which needs more extended cluster profiles to reproduce the catalogue
# concentration indices. Class 0 sources were not inspected by LEGUS, which classified only
# sources that passed its stage-2 cuts; most of them are fainter than M_V = −6 and fail the M_V
# cut here too, as they should. (Class 4 sources were inspected and judged not to be clusters.)

# %%
wl = baseline.white_light
final = np.asarray(catalogue["C"], bool)
fig, ax = plt.subplots(figsize=(6.5, 6.2))
ax.imshow(stretch(wl), origin="lower", cmap="gray_r")
ax.plot(
    truth["x"],
    truth["y"],
    "o",
    mfc="none",
    mec="tab:blue",
    ms=9,
    mew=0.8,
    label="placed catalogue sources",
)
ax.plot(
    catalogue["x"][final],
    catalogue["y"][final],
    "+",
    color="tab:red",
    ms=7,
    label="pipeline final catalogue",
)
ax.plot(
    catalogue["x"][~final],
    catalogue["y"][~final],
    "x",
    color="tab:orange",
    ms=4,
    mew=0.7,
    label="detected, removed by a cut",
)
ax.set(
    title=f"white light, {field.shape[1]} x {field.shape[0]} px crop",
    xlabel="x [px]",
    ylabel="y [px]",
)
ax.legend(fontsize=7, loc="upper right")
save(fig, "white_light.png")

# %% [markdown]
# ## A cluster library
#
# Artificial clusters come from the stochastic library of `jaxcomp.library`: log M uniform on
# [2, 8], ages log-uniform on [1e5, 1.5e10] yr, A_V uniform on [0, 3] mag, radii 1-10 pc,
# photometry by sampling individual stars from the IMF on Padova isochrones, at the NGC 628
# distance.

# %%
from jaxcomp.library import LibraryConfig, generate_library

n_library = 300 if QUICK else 3000
start = time.perf_counter()
library = generate_library(n_library, LibraryConfig(), seed=7)
print(f"{len(library)} library clusters in {time.perf_counter() - start:.1f} s")
print(
    library[["cluster_id", "log_mass", "log_age", "av", "r_eff_pc", "mag_F555W"]]
    .head()
    .to_string(index=False)
)

# %% [markdown]
# ## One AST frame
#
# `run_frame` draws positions following the white light smoothed over 120 pc (at least
# 3 r_eff apart), renders every cluster (PSF-convolved EFF profile, shot noise) into the five
# bands, reruns the pipeline and matches: an injected cluster is recovered at a step if a source
# that passed the cuts up to that step lies within 3 px and did not already exist there before
# injection. All clusters of one frame share one radius, as in the paper (here 3 pc).
#
# To get useful numbers from one small frame we inject far more clusters per pixel than the
# paper (500 per 7040 × 6400 px frame, one per ~90,000 px²): here one per 3000 px² in quick
# mode. Crowding between injected clusters is therefore much higher than in a real campaign;
# we measure its effect below.

# %%
from jaxcomp.ast import prepare_field, run_frame

n_inject = 120 if QUICK else 400
frame_clusters = library.iloc[:n_inject].drop(columns="r_eff_pc")
prepared = prepare_field(
    field
)  # the pre-injection catalogue, white light and position density (cached)
start = time.perf_counter()
labels, injected = run_frame(
    field, frame_clusters, r_eff_pc=3.0, seed=1, baseline=prepared, return_images=True
)
print(
    f"one frame of {len(labels)} clusters in {time.perf_counter() - start:.1f} s; "
    f"{int(np.sum(labels['C']))} recovered into the final catalogue"
)

# %% [markdown]
# ### Which step removed which clusters
#
# The step flags are cumulative ("reached step k"). For every lost cluster the first step it
# did not reach is the one that removed it.


# %%
def removed_by(labels):
    """Index of the first step each cluster did not reach (-1: recovered)."""
    flags = np.column_stack([np.asarray(labels[s], bool) for s in STAGES])
    return np.where(np.asarray(labels["C"], bool), -1, np.argmin(flags, axis=1))


def report_steps(labels, indent="  "):
    first_fail = removed_by(labels)
    mags = np.asarray(labels["mag_F555W"])
    print(f"{indent}{len(labels)} injected, {np.sum(first_fail < 0)} recovered")
    for k, step in enumerate(STAGES):
        lost = first_fail == k
        median = f", median injected F555W {np.median(mags[lost]):.1f} mag" if lost.any() else ""
        print(f"{indent}removed at {step:>12s}: {lost.sum():4d} clusters{median}")


report_steps(labels)
columns = ["cluster_id", "log_mass", "log_age", "av", "mag_F555W", *STAGES, "C"]
example = labels[columns][np.argsort(np.asarray(labels["mag_F555W"]))][:: max(1, n_inject // 12)]
for name in ("log_mass", "log_age", "av", "mag_F555W"):
    example[name].format = ".2f"
example.pprint(max_lines=-1, max_width=-1)

# %% [markdown]
# The F555W magnitude is the injected (true) magnitude of the cluster. Most lost clusters are
# simply too faint to be detected in the white light; a few are detected but have fewer than
# four bands with σ ≤ 0.3 mag (old or reddened clusters are faint in the UV). The M_V ≤ −6 cut
# (m_V ≤ 23.98 at this distance) removes clusters that were detected and measured but are
# intrinsically faint, near the detection limit.
#
# Bright clusters can be lost too. The library reaches m_V ≈ 11 (10^8 Msun, young), and the
# segmentation of such a cluster on the white light covers hundreds to thousands of pixels; a
# cluster inside it is merged with it (the detection is then more than 3 px away from both
# injected positions). At our high injection density this happens often:

# %%
x_inj, y_inj = np.asarray(labels["x"]), np.asarray(labels["y"])
mag_v = np.asarray(labels["mag_F555W"])
lost_bright = np.flatnonzero(~np.asarray(labels["C"], bool) & (mag_v < 22.5))
distance = np.hypot(x_inj[:, None] - x_inj[None, :], y_inj[:, None] - y_inj[None, :])
brighter_near = (distance < 30) & (mag_v[None, :] < mag_v[:, None])
near = brighter_near[lost_bright].any(axis=1)
print(
    f"{np.sum(mag_v < 22.5)} injected clusters brighter than m_V = 22.5, {len(lost_bright)} of "
    "them lost; "
    f"{near.sum()} of those have a brighter injected cluster within 30 px"
)

# %%
recovered = np.asarray(labels["C"], bool)
flags = np.column_stack([np.asarray(labels[s], bool) for s in STAGES])
from jaxcomp.ast import white_light

wl_injected = white_light(injected, field.footprint)
fig, axes = plt.subplots(1, 2, figsize=(11, 5.4), sharex=True, sharey=True)
for ax, image, title in (
    (axes[0], wl, "before injection"),
    (axes[1], wl_injected, "after injection"),
):
    ax.imshow(stretch(image, reference=wl), origin="lower", cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title)
axes[1].plot(
    x_inj[recovered],
    y_inj[recovered],
    "o",
    mfc="none",
    mec="tab:green",
    ms=9,
    label="recovered (C = 1)",
)
axes[1].plot(
    x_inj[~recovered], y_inj[~recovered], "o", mfc="none", mec="tab:red", ms=9, label="lost (C = 0)"
)
axes[1].legend(fontsize=7, loc="upper right")
save(fig, "injected_frame.png")

fig, ax = plt.subplots(figsize=(6.4, 4.2))
mag = np.asarray(labels["mag_F555W"])
edges = np.arange(np.floor(np.nanmin(mag)), min(np.nanmax(mag), 32) + 0.5, 0.5)
for k, step in enumerate(STAGES):
    reached = flags[:, k]
    n, _ = np.histogram(mag, edges)
    hit, _ = np.histogram(mag[reached], edges)
    good = n > 0
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax.plot(centres[good], hit[good] / n[good], "o-", ms=3, lw=1, label=f"reached {step}")
ax.axvline(field.distance_modulus - 6.0, color="k", ls=":", lw=0.8, label="M_V = -6")
ax.set(
    xlabel="injected F555W [Vega mag]",
    ylabel="fraction",
    ylim=(-0.03, 1.03),
    title=f"one frame, {len(labels)} clusters, r_eff = 3 pc",
)
ax.legend(fontsize=7)
save(fig, "recovery_by_step.png")

# %% [markdown]
# ## A tiny campaign
#
# `run_campaign` runs many frames (each with its own seed derived from the campaign seed), can
# resume after an interruption, and writes one Parquet file per frame plus `labels.parquet` into
# a directory. Here two radii with two frames each; `match_library_reff=False` draws clusters
# from the whole library and gives them the frame's radius (the paper instead picks library rows
# whose radius matches). `executor="serial"` runs in this process; the default is a process pool.

# %%
from jaxcomp.ast import CampaignConfig, plot_recovery, run_campaign

config = CampaignConfig(
    design="train",
    r_eff_pc=(1.0, 6.0),
    frames_per_reff=2,
    clusters_per_frame=60 if QUICK else 300,
    seed=3,
    match_library_reff=False,
)
start = time.perf_counter()
campaign = run_campaign(
    field,
    library,
    config,
    "campaign_tiny",
    executor="serial" if QUICK else "process",
    progress=not QUICK,
)
print(f"{config.n_frames} frames, {len(campaign)} labels in {time.perf_counter() - start:.1f} s")
radius_column = np.asarray(campaign["r_eff_pc"])
bright = np.asarray(campaign["mag_F555W"]) < 22.5
for radius in config.r_eff_pc:
    rows = radius_column == radius
    print(
        f"r_eff = {radius:g} pc: recovered fraction {np.mean(np.asarray(campaign['C'])[rows]):.3f}"
    )
    report_steps(campaign[rows])
    ci = np.asarray(campaign["ci_meas"])[rows & bright]
    print(
        f"  clusters brighter than F555W = 22.5: {np.sum(rows & bright)}, recovered "
        f"{np.mean(np.asarray(campaign['C'])[rows & bright]):.2f}, median measured CI "
        f"{np.nanmedian(ci):.2f} mag"
    )
show(plot_recovery(campaign, "recovery.png", title="tiny campaign on the mock NGC 628C crop"))

# %% [markdown]
# The radius matters as much as the brightness. At r_eff = 1 pc (about 0.5 px) a cluster is
# almost a point source: bright ones are detected and well measured, but their concentration
# index falls below the 1.4 mag cut that is meant to remove stars, so almost none enters the
# catalogue. (How compact a cluster must be to fail this cut depends on the PSF; the mock's
# PSFs are Gaussians without the wings of the real HST PSF.) At 6 pc nearly every cluster
# brighter than m_V ≈ 22.5 is recovered, and the losses move to faint magnitudes, where the
# white-light detection and the four-band and M_V cuts act.
#
# With so few clusters per bin these numbers are noisy; notebook 3 turns campaign labels into
# selection functions, and a real measurement needs a campaign like the paper's (10 radii ×
# 49 frames × 500 clusters for training, plus repeated test frames).
