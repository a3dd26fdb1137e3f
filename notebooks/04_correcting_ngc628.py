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
# # 4. Completeness-corrected age and mass functions of NGC 628C
#
# This notebook repeats section 4.4 of Tang et al. (2026, C-4) on the LEGUS NGC 628C
# catalogue with the **published** C-4 physical selection function:
#
# 1. the class 1-3 clusters of the LEGUS catalogue (Adamo et al. 2017 SED-fit masses, ages and
#    extinctions), shipped with jaxcomp;
# 2. the C-4 physical network (from the PyPI package `cluster-completeness-pipeline` 0.1.0,
#    downloaded once with pip and read without executing any pickled code);
# 3. p_obs tabulated on a (log M, log T, A_V) grid (`SelectionGrid`);
# 4. p(A_V) estimated from the clusters in the region where the catalogue is complete even at
#    A_V = 3 mag;
# 5. the marginal completeness p_corr(log T) and p_corr(log M) under assumed mass and age
#    distributions (eq. 16), and the corrected cluster age function (CAF) and mass function
#    (CMF) with the paper's bands (eq. 17-18).
#
# `inference/ngc628_corrections.py` is the script version that writes every table; this
# notebook shows the steps. `JAXCOMP_NOTEBOOK_QUICK=1` uses a coarse 121 × 105 × 13 grid; the
# full run uses the paper's 500 × 500 × 50 (a few minutes on two CPU cores).

# %%
import os
import sys
from pathlib import Path

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

QUICK = os.environ.get("JAXCOMP_NOTEBOOK_QUICK") == "1"
print(f"QUICK mode: {QUICK}")


def repo_root() -> Path:
    """The jaxcomp repository (for its inference/ scripts): $JAXCOMP_REPO, else next to this file,
    else the cwd."""
    if os.environ.get("JAXCOMP_REPO"):
        return Path(os.environ["JAXCOMP_REPO"]).resolve()
    try:
        return Path(__file__).resolve().parents[1]  # run as a script: notebooks/..
    except NameError:  # in Jupyter there is no __file__; the kernel starts in notebooks/
        cwd = Path.cwd().resolve()
        return cwd if (cwd / "inference").is_dir() else cwd.parent


INFERENCE = repo_root() / "inference"
if not (INFERENCE / "ngc628_corrections.py").is_file():
    raise FileNotFoundError(
        f"{INFERENCE}/ngc628_corrections.py not found; set JAXCOMP_REPO to the jaxcomp repository"
    )
sys.path.insert(0, str(INFERENCE))


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


def values(column):
    """A (masked) table column as a float array with NaN for masked entries."""
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


# %% [markdown]
# ## The catalogue
#
# `load_catalogue` (the loader of `jaxcomp correct`) reads the LEGUS HLSP table with `read_legus`,
# which masks its sentinel values and derives `log_mass`, `log_age` and `av` (= 3.1 E(B−V)) from
# the best-fit SED columns; `drop_invalid=True` keeps the clusters with an SED fit.

# %%
from jaxcomp.demographics import load_catalogue

catalogue, catalogue_info = load_catalogue(
    legus="ngc628c", classes=(1, 2, 3), drop_invalid=True, say=lambda *a: None
)
log_mass, log_age, av = (values(catalogue[c]) for c in ("log_mass", "log_age", "av"))
print(
    f"NGC 628C class 1-3 clusters with SED fits: {len(catalogue)} (of "
    f"{catalogue_info['n_rows_read']})"
)
print(
    f"  log M [Msun]: median {np.median(log_mass):.2f}, 5-95% {np.percentile(log_mass, 5):.2f}-"
    f"{np.percentile(log_mass, 95):.2f}"
)
print(
    f"  log T [yr]:   median {np.median(log_age):.2f}, 5-95% {np.percentile(log_age, 5):.2f}-"
    f"{np.percentile(log_age, 95):.2f}"
)
print(f"  A_V [mag]:    median {np.nanmedian(av):.2f}, {np.sum(av > 3)} clusters above 3 mag")

# %% [markdown]
# ## The C-4 physical network
#
# `fetch_c4_checkpoints` (from `inference/ngc628_corrections.py`) runs
# `pip download --no-deps cluster-completeness-pipeline==0.1.0` once into `~/.cache/jaxcomp/c4`
# (or `$JAXCOMP_C4_CACHE`), checks the wheel's SHA-256 and unpacks it. If `JAXCOMP_C4_DIR`
# points to an unpacked `completeness_nn_api/checkpoints` folder it is used instead.
# `import_c4` reads the PyTorch checkpoint and the scikit-learn scalers with restricted
# unpicklers (no torch, no scikit-learn, nothing executed). C-4's network takes linear mass and
# age; the imported function takes `log_mass` and `log_age` like every jaxcomp selection function.

# %%
from ngc628_corrections import fetch_c4_checkpoints

from jaxcomp.selection.c4 import import_c4

c4_dir = (
    Path(os.environ["JAXCOMP_C4_DIR"])
    if os.environ.get("JAXCOMP_C4_DIR")
    else fetch_c4_checkpoints()
)
selection = import_c4(c4_dir, "phys")
print(selection)
print("domain:", selection.domain)
example = {
    "log_mass": np.array([3.0, 3.0, 4.0, 4.0]),
    "log_age": np.array([6.5, 8.5, 6.5, 8.5]),
    "av": np.array([0.5, 0.5, 0.5, 0.5]),
}
for m, t, p in zip(example["log_mass"], example["log_age"], selection.predict(example)):
    print(f"  p_obs(log M = {m}, log T = {t}, A_V = 0.5) = {p:.3f}")

# %% [markdown]
# ## p_obs on a grid
#
# The integrals below need p_obs at many points. `SelectionGrid.from_selection` evaluates the
# network once on a regular grid over its domain (in bounded memory); the marginals are then
# jitted, differentiable quadratures over that table (p_obs linear between nodes, integrated
# exactly against the population densities).

# %%
import time

from jaxcomp.demographics import PAPER_GRID_SHAPE, SelectionGrid

shape = (121, 105, 13) if QUICK else PAPER_GRID_SHAPE
start = time.perf_counter()
grid = SelectionGrid.from_selection(selection, shape=shape, progress=not QUICK)
print(f"p_obs on a {grid.shape} grid in {time.perf_counter() - start:.1f} s")
grid.save("selection_grid.npz")

# %% [markdown]
# ## p(A_V)
#
# The catalogue's A_V distribution is itself biased by selection: reddened clusters are
# harder to detect. The paper's estimate uses only clusters inside the contour
# p_obs(log M, log T, A_V = 3) = 0.5, where even a cluster with the largest extinction of the
# library would be detected more often than not, and histograms their A_V in four bins on
# [0, 3] mag.

# %%
from jaxcomp.demographics import estimate_av_distribution

av_estimate = estimate_av_distribution(selection, catalogue, return_details=True)
av_distribution = av_estimate.distribution
print(
    f"{av_estimate.n_selected} clusters inside p_obs(A_V = 3) >= 0.5 "
    f"({av_estimate.n_outside_range} of them with A_V > 3 mag, dropped)"
)
for lo, hi, count, prob in zip(
    av_estimate.edges[:-1],
    av_estimate.edges[1:],
    av_estimate.counts,
    np.asarray(av_distribution.probabilities),
):
    print(f"  A_V {lo:.2f}-{hi:.2f} mag: {count:3d} clusters, probability {prob:.3f}")

# %% [markdown]
# ## Marginal completeness under assumed populations
#
# The correction of the age function needs the completeness at each age averaged over masses
# and extinctions, p_corr(log T) = ∬ p_obs p(log M) p(A_V) (eq. 16), so it depends on the
# assumed mass function; likewise p_corr(log M) depends on the assumed age distribution. The
# paper uses two of each (supports: the C-4 library ranges, log M in [2, 8], age in
# [1e5, 1.5e10] yr):
#
# | | mass function (for the CAF) | age distribution (for the CMF) |
# |---|---|---|
# | Tang+2024 | Schechter, α_M = −2.16, log M_break = 5.61 | dN/dlog T ∝ T to log T = 8.22, α_T =
# −1.41 above |
# | Adamo+2017 | power law, α_M = −2.09 | power law, α_T = −0.8 on log T in [6, 8.3] |
#
# (α_M and α_T are the slopes of dN/dM and dN/dT.)
#
# The quadratures run in float64 (`jax.enable_x64` as a context: the global JAX configuration
# is left alone).

# %%
import jax

from jaxcomp.demographics import (
    LOG_AGE_RANGE,
    LOG_MASS_RANGE,
    BrokenPowerLawLogAge,
    PiecewiseConstantAV,
    PowerLawLogAge,
    PowerLawLogMass,
    SchechterLogMass,
    interpolate_marginal,
    marginal_completeness,
    p_obs_mass_age,
)

mass_models = {
    "Tang+24 CMF": SchechterLogMass(-2.16, 5.61, *LOG_MASS_RANGE),
    "Adamo+17 CMF": PowerLawLogMass(-2.09, *LOG_MASS_RANGE),
}
age_models = {
    "Tang+24 CAF": BrokenPowerLawLogAge(-1.41, 8.22, 0.0, *LOG_AGE_RANGE),
    "Adamo+17 CAF": PowerLawLogAge(-0.8, 6.0, 8.3),
}
# p_corr(log T) over each mass function and p_corr(log M) over each age distribution (float64)
p_age, p_mass = {}, {}
for (mass_name, mass), (age_name, age) in zip(mass_models.items(), age_models.items()):
    p_age[mass_name], p_mass[age_name] = marginal_completeness(grid, mass, age, av_distribution)
with jax.enable_x64(True):
    av64 = PiecewiseConstantAV(
        np.asarray(av_distribution.edges, np.float64),
        np.asarray(av_distribution.weights, np.float64),
    )
    plane = np.asarray(p_obs_mass_age(grid, av64))

for name, p in p_age.items():
    at = {t: float(interpolate_marginal(grid.log_age, p, t)) for t in (6.5, 7.5, 8.5, 9.5)}
    print(
        f"p_corr(log T) assuming the {name}: " + ", ".join(f"{v:.3f} at {t}" for t, v in at.items())
    )
for name, p in p_mass.items():
    at = {m: float(interpolate_marginal(grid.log_mass, p, m)) for m in (3.0, 3.5, 4.0, 5.0)}
    print(
        f"p_corr(log M) assuming the {name}: " + ", ".join(f"{v:.3f} at {m}" for m, v in at.items())
    )

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
image = axes[0].pcolormesh(
    np.asarray(grid.log_mass),
    np.asarray(grid.log_age),
    plane.T,
    shading="auto",
    vmin=0,
    vmax=1,
    cmap="viridis",
    rasterized=True,
)
axes[0].contour(
    np.asarray(grid.log_mass),
    np.asarray(grid.log_age),
    np.asarray(grid.at_av(3.0)).T,
    levels=[0.5],
    colors="w",
    linestyles="--",
)
axes[0].plot(log_mass, log_age, "k.", ms=1.5, alpha=0.5)
axes[0].set(
    xlim=(2, 7),
    ylim=(6, 10),
    xlabel="log10 M [Msun]",
    ylabel="log10 T [yr]",
    title="p_obs averaged over p(A_V)\ndashed: p_obs(A_V = 3) = 0.5",
)
fig.colorbar(image, ax=axes[0], label="p_obs")
for name, p in p_age.items():
    axes[1].plot(np.asarray(grid.log_age), p, label=f"assuming {name}")
axes[1].set(
    xlabel="log10 T [yr]", ylabel="p_corr(log T)", yscale="log", ylim=(1e-4, 1.5), xlim=(5, 10.2)
)
for name, p in p_mass.items():
    axes[2].plot(np.asarray(grid.log_mass), p, label=f"assuming {name}")
axes[2].set(xlabel="log10 M [Msun]", ylabel="p_corr(log M)", xlim=(2, 6))
for ax in axes[1:]:
    ax.legend(fontsize=8)
fig.tight_layout()
save(fig, "completeness_maps.png")

# %% [markdown]
# ## Corrected CAF and CMF
#
# For every observed cluster i take p_corr,i = p_corr(log T_i) (or p_corr(log M_i)); in each bin
# N_corr = N_raw / mean_i p_corr,i (eq. 17), and the band runs from N_raw / p84 to N_raw / p16 of
# the p_corr,i in the bin (eq. 18: the spread of the per-cluster corrections, not a formal error).
# Per-cluster values are clipped at 1e-10 for the CAF (bins with mean < 1e-3 are masked) and at
# 1e-3 for the CMF, as in the paper. Bins are 0.3 dex in age and 0.25 dex in mass.

# %%
from jaxcomp.demographics import correct_catalogue, plot_corrected_distribution

age_bins = np.arange(6.0, 10.2 + 1e-9, 0.3)
mass_bins = np.arange(2.0, 6.0 + 1e-9, 0.25)
caf, cmf = {}, {}
for (mass_name, mass), (age_name, age) in zip(mass_models.items(), age_models.items()):
    result = correct_catalogue(
        catalogue,
        grid,
        mass_distribution=mass,
        age_distribution=age,
        av_distribution=av_distribution,
        age_bins=age_bins,
        mass_bins=mass_bins,
    )
    caf[mass_name], cmf[age_name] = result.caf, result.cmf
for name, table in caf.items():
    table.write(f"caf_{name.split()[0].replace('+', '')}.ecsv", overwrite=True)
for name, table in cmf.items():
    table.write(f"cmf_{name.split()[0].replace('+', '')}.ecsv", overwrite=True)

table = caf["Tang+24 CMF"][
    "log_age_centre", "n_raw", "p_mean", "correction", "n_corr", "n_corr_lo", "n_corr_hi"
]
for column in ("log_age_centre", "p_mean", "correction", "n_corr", "n_corr_lo", "n_corr_hi"):
    table[column].format = ".3g"
print("CAF corrected with the Tang+24 mass function:")
table.pprint(max_lines=-1, max_width=-1)

table = cmf["Tang+24 CAF"][
    "log_mass_centre", "n_raw", "p_mean", "correction", "n_corr", "n_corr_lo", "n_corr_hi"
]
for column in ("log_mass_centre", "p_mean", "correction", "n_corr", "n_corr_lo", "n_corr_hi"):
    table[column].format = ".3g"
print("\nCMF corrected with the Tang+24 age distribution:")
table.pprint(max_lines=-1, max_width=-1)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.6))
plot_corrected_distribution(
    {f"corrected, {k}": v for k, v in caf.items()},
    ax=axes[0],
    colors=["tab:green", "tab:orange"],
    shade=(np.log10(2e8), age_bins[-1]),
    shade_label="> 200 Myr",
    title="NGC 628C class 1-3: cluster age function",
)
plot_corrected_distribution(
    {f"corrected, {k}": v for k, v in cmf.items()},
    ax=axes[1],
    colors=["tab:green", "tab:orange"],
    shade=(mass_bins[0], np.log10(5e3)),
    shade_label="< 5000 Msun",
    title="NGC 628C class 1-3: cluster mass function",
)
fig.tight_layout()
save(fig, "corrected_caf_cmf.png")

# %% [markdown]
# ## What the numbers say
#
# Slopes of log10(dN/dx) against x, fitted by weighted least squares to the bin centres
# (`fit_log_slope` of the script), before and after correction:

# %%
from ngc628_corrections import fit_log_slope

for name, table in caf.items():
    raw, _ = fit_log_slope(table, "log_age", 6.0, 8.5, column="dn_raw")
    corrected, error = fit_log_slope(table, "log_age", 6.0, 8.5)
    print(
        f"CAF, log T 6.0-8.5, {name}: raw slope {raw:+.2f}, corrected {corrected:+.2f} ± "
        f"{error:.2f}"
    )
for name, table in cmf.items():
    raw, _ = fit_log_slope(table, "log_mass", 3.0, 5.0, column="dn_raw")
    corrected, error = fit_log_slope(table, "log_mass", 3.0, 5.0)
    print(
        f"CMF, log M 3.0-5.0, {name}: raw slope {raw:+.2f}, corrected {corrected:+.2f} ± "
        f"{error:.2f}"
    )

# %% [markdown]
# How to read these:
#
# * A slope of 0 in dN/dlog T means a constant formation rate and no disruption; a slope of −1
#   in dN/dlog M means dN/dM ∝ M^−2.
# * **The CAF hardly depends on the assumed mass function.** The two mass functions are both
#   close to dN/dM ∝ M^−2 over the masses that matter, so p_corr(log T) is almost the same
#   under either, and the corrected CAF rises with age (slope ≈ +0.6 here) where the raw one is
#   flat: the completeness falls by a factor of ~40 between 3 and 300 Myr as clusters fade.
#   The paper's caveat applies: this slope depends strongly on the assumed lower mass limit of
#   the mass function (2 here, the library's), because the network still detects a fraction of
#   very young clusters down to ~100 Msun.
# * **The CMF depends strongly on the assumed age distribution.** The Tang+24 age distribution
#   extends to 15 Gyr, where low-mass clusters are invisible, so its p_corr(log M) is several
#   times lower at log M ≈ 3 than under the Adamo+17 distribution (which stops at 200 Myr), and
#   the corrected CMF is correspondingly steeper. The correction is only as good as the
#   population it assumes.
# * The bands are the spread of per-cluster corrections within a bin (eq. 18), not a formal
#   error; they grow where the completeness changes quickly across a bin.
# * p(A_V) rests on only 17 clusters (those inside the A_V = 3 contour, less three with
#   A_V > 3 mag), so each of its four bins has a Poisson uncertainty of tens of per cent.
#
# The eq. 17 estimator is also biased low within wide bins where the completeness varies (the
# observed clusters over-represent the more complete part of a bin). The quick mode's coarse
# 121 × 105 × 13 grid is adequate here: with the paper's 500 × 500 × 50 grid the per-bin mean
# completeness changes by about 1% (at most 2%) and the slopes above not at all at the printed
# precision (checked when this notebook was written).
#
# The principled alternative is to fit the population and the selection together with the
# selection-normalised likelihood, which notebook 5 does on a simulated catalogue (and
# `inference/ngc628_fit.py` on this one).
