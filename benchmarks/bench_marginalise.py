"""Marginalising a selection function on the paper's 500 x 500 x 50 grid: jaxcomp versus plain numpy
float32.

Usage::

    python benchmarks/bench_marginalise.py              # full run: 500 x 500 x 50 = 12.5 M grid
    points
    python benchmarks/bench_marginalise.py --quick      # CI smoke run: 100 x 100 x 10 (< 60 s)
    python benchmarks/bench_marginalise.py --json results.json

What is measured (Tang et al. 2026, sec. 4.4.1; :mod:`jaxcomp.demographics.marginalise`):

1. **network evaluation on the grid**: p_obs of a 3-512-512-1 network (the
   library's architecture, random weights, exact-erf GELU, ``out_of_domain=
   "clip"``; built as in ``bench_selection_throughput.py``) at every node of a
   regular (log M, log T, A_V) grid over the network's domain.  jaxcomp:
   :meth:`SelectionGrid.from_selection` (blocks of flat indices -> points ->
   :func:`evaluate_in_chunks`, chunk 4096).  numpy: the same points, built the
   same way, through a float32 numpy MLP (``numpy_p`` of
   ``bench_selection_throughput.py``: matmuls + ``scipy.special.erf`` GELU,
   chunks of 8192).  The grid is cut into slabs of ``--slab-rows`` log M rows
   (25 rows = 625,000 points); each round evaluates one slab with both
   implementations (order rotated), so background load hits both alike and, over
   the rounds, both evaluate the whole grid once: the totals are sums over slabs.
   jaxcomp's slabs are evaluated with ``points_per_call`` = slab size (one
   compiled call per slab, no padded block); the library's default call on the
   whole grid is also timed once (``--whole-grid``, default on in the full run).
2. **the marginalisation sums** on the assembled float32 grid, with the
   quadrature weights of the population distributions (8-point Gauss-Legendre on
   every cell split at the distributions' breakpoints; see
   :func:`jaxcomp.demographics.quadrature_weights`): eq. 14
   ``p_obs(log M, log T) = sum_k P_ijk w^A_k`` (:func:`p_obs_mass_age`), eq. 16
   ``p_corr(log T) = sum_ik w^M_i P_ijk w^A_k`` (:func:`p_corr_log_age`) and
   ``p_corr(log M) = sum_jk P_ijk w^T_j w^A_k`` (:func:`p_corr_log_mass`), for a
   Schechter CMF (alpha = -2.16, log M_break = 5.61), a broken-power-law CAF
   (Tang et al. 2024 defaults) and a 4-bin p(A_V).  numpy: the same quadrature
   rule re-implemented in numpy (weights in float64, then float32) and the sums
   as float32 BLAS matrix-vector products.  Timed in ``--sum-rounds`` interleaved
   rounds (median / best).

Everything is first checked to agree: max |Δp| of the network over every grid
point evaluated, and of the marginals (tolerance 1e-5).  The fraction of the
float32 matmul peak divides the MLP's matmul FLOPs (2 (3*512 + 512*512 + 512)
per point, nothing for activations) by the rate of a jitted 4096^2
``jnp.dot`` re-measured in every round.  Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import bench_selection_throughput as throughput  # noqa: E402

TOLERANCE = 1e-5
PAPER_SHAPE = (500, 500, 50)
MASS_PARAMS = {"alpha": -2.16, "log_mass_break": 5.61}  # Tang et al. 2024 (NGC 628)
AGE_PARAMS = {
    "alpha": -1.41,
    "log_age_break": 8.22,
    "alpha_young": 0.0,
}  # BrokenPowerLawLogAge defaults
AV_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
AV_EDGES = (0.0, 0.75, 1.5, 2.25, 3.0)
LN10 = math.log(10.0)


# ---------------------------------------------------------- numpy reference
def _log_int_exp(beta: float, lower: float, upper: float) -> float:
    """log of the integral of exp(beta x) over [lower, upper] (float64)."""
    if upper <= lower:
        return -math.inf
    if abs(beta * (upper - lower)) < 1e-8:
        return math.log(upper - lower) + beta * 0.5 * (lower + upper)
    top, bottom = beta * upper, beta * lower
    high, low = max(top, bottom), min(top, bottom)
    return high + math.log1p(-math.exp(low - high)) - math.log(abs(beta))


def numpy_mass_density(alpha: float, log_mass_break: float, low: float, high: float):
    """log p(log M) of the truncated Schechter form, normalised like ``SchechterLogMass`` (16x16
    Gauss-Legendre)."""

    def unnormalised(x):
        return (alpha + 1.0) * LN10 * x - np.power(10.0, x - log_mass_break)

    nodes, weights = np.polynomial.legendre.leggauss(16)
    panel = np.linspace(0.0, 1.0, 17)
    t = (
        0.5 * (panel[:-1, None] + panel[1:, None])
        + 0.5 * (panel[1:, None] - panel[:-1, None]) * nodes
    ).ravel()
    w = (0.5 * (panel[1:, None] - panel[:-1, None]) * weights).ravel()
    eff_high = max(min(high, log_mass_break + 1.7), low + 1e-3 * (high - low))
    x = low + (eff_high - low) * t
    log_f = unnormalised(x) + np.log(w)
    log_z = np.max(log_f) + np.log(np.sum(np.exp(log_f - np.max(log_f)))) + np.log(eff_high - low)

    def log_density(v):
        with np.errstate(over="ignore"):
            out = unnormalised(v) - log_z
        return np.where((v >= low) & (v <= high), out, -np.inf)

    return log_density, np.array([low, high])


def numpy_age_density(
    alpha: float, log_age_break: float, alpha_young: float, low: float, high: float
):
    """log p(log T) of the continuous broken power law (``BrokenPowerLawLogAge``)."""
    beta_young, beta_old = (alpha_young + 1.0) * LN10, (alpha + 1.0) * LN10
    x_break = min(max(log_age_break, low), high)
    log_z = np.logaddexp(
        _log_int_exp(beta_young, low - log_age_break, x_break - log_age_break),
        _log_int_exp(beta_old, x_break - log_age_break, high - log_age_break),
    )

    def log_density(v):
        dx = v - log_age_break
        return np.where(
            (v >= low) & (v <= high),
            np.where(dx < 0, beta_young * dx, beta_old * dx) - log_z,
            -np.inf,
        )

    return log_density, np.array([low, x_break, high])


def numpy_av_density(edges, weights):
    """log p(A_V) of the piecewise-constant histogram (``PiecewiseConstantAV``)."""
    edges = np.asarray(edges, np.float64)
    probabilities = np.asarray(weights, np.float64) / np.sum(weights)
    log_densities = np.log(probabilities / np.diff(edges))

    def log_density(v):
        index = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(probabilities) - 1)
        return np.where((v >= edges[0]) & (v <= edges[-1]), log_densities[index], -np.inf)

    return log_density, edges


def numpy_quadrature_weights(density, nodes, n_gauss: int = 8) -> np.ndarray:
    """numpy port of :func:`jaxcomp.demographics.quadrature_weights` (float64)."""
    log_density, breakpoints = density
    nodes = np.asarray(nodes, np.float64)
    t, gw = np.polynomial.legendre.leggauss(n_gauss)

    def integrate(edges):
        left, right = edges[..., :-1], edges[..., 1:]
        half = 0.5 * (right - left)
        x = (0.5 * (right + left))[..., None] + half[..., None] * t
        with np.errstate(divide="ignore"):
            mass = half[..., None] * gw * np.exp(log_density(x))
        return x, mass

    lower, upper = nodes[:-1, None], nodes[1:, None]
    cell_edges = np.concatenate([lower, np.clip(breakpoints[None, :], lower, upper), upper], axis=1)
    x, mass = integrate(cell_edges)
    frac = (x - lower[..., None]) / (upper - lower)[..., None]
    weights = np.zeros(nodes.shape[0])
    weights[:-1] += np.sum(mass * (1.0 - frac), axis=(1, 2))
    weights[1:] += np.sum(mass * frac, axis=(1, 2))
    below = np.concatenate([np.minimum(breakpoints, nodes[0]), nodes[:1]])
    above = np.concatenate([nodes[-1:], np.maximum(breakpoints, nodes[-1])])
    weights[0] += np.sum(integrate(below)[1])
    weights[-1] += np.sum(integrate(above)[1])
    return weights


class NumpyMarginals:
    """The three marginals in numpy float32: weights per call, then BLAS matrix-vector products."""

    def __init__(self, axes, mass_range, age_range):
        self.axes = [np.asarray(a, np.float64) for a in axes]
        self.mass_range, self.age_range = mass_range, age_range

    def weights(self, which: str) -> np.ndarray:
        if which == "mass":
            density = numpy_mass_density(
                MASS_PARAMS["alpha"], MASS_PARAMS["log_mass_break"], *self.mass_range
            )
            nodes = self.axes[0]
        elif which == "age":
            density = numpy_age_density(
                AGE_PARAMS["alpha"],
                AGE_PARAMS["log_age_break"],
                AGE_PARAMS["alpha_young"],
                *self.age_range,
            )
            nodes = self.axes[1]
        else:
            density = numpy_av_density(AV_EDGES, AV_WEIGHTS)
            nodes = self.axes[2]
        return numpy_quadrature_weights(density, nodes).astype(np.float32)

    def p_obs_mass_age(self, p: np.ndarray) -> np.ndarray:  # eq. 14
        n_mass, n_age, n_av = p.shape
        return (p.reshape(n_mass * n_age, n_av) @ self.weights("av")).reshape(n_mass, n_age)

    def p_corr_log_age(self, p: np.ndarray) -> np.ndarray:  # eq. 16
        n_mass, n_age, n_av = p.shape
        return (self.weights("mass") @ p.reshape(n_mass, n_age * n_av)).reshape(
            n_age, n_av
        ) @ self.weights("av")

    def p_corr_log_mass(self, p: np.ndarray) -> np.ndarray:
        n_mass, n_age, n_av = p.shape
        return (p.reshape(n_mass * n_age, n_av) @ self.weights("av")).reshape(
            n_mass, n_age
        ) @ self.weights("age")


def grid_points(axes, rows: slice, order) -> np.ndarray:
    """float32 points of the grid rows ``rows`` (C order over (log M, log T, A_V)), columns in
    ``order``."""
    sub = (axes[0][rows], axes[1], axes[2])
    i, j, k = np.unravel_index(
        np.arange(len(sub[0]) * len(sub[1]) * len(sub[2])), tuple(len(a) for a in sub)
    )
    columns = (sub[0][i], sub[1][j], sub[2][k])
    return np.stack([columns[o] for o in order], axis=-1).astype(np.float32)


# ------------------------------------------------------------------ jaxcomp
def jaxcomp_distributions(mass_range, age_range):
    from jaxcomp.demographics import BrokenPowerLawLogAge, PiecewiseConstantAV, SchechterLogMass

    return {
        "mass": SchechterLogMass(MASS_PARAMS["alpha"], MASS_PARAMS["log_mass_break"], *mass_range),
        "age": BrokenPowerLawLogAge(
            AGE_PARAMS["alpha"], AGE_PARAMS["log_age_break"], AGE_PARAMS["alpha_young"], *age_range
        ),
        "av": PiecewiseConstantAV(AV_EDGES, AV_WEIGHTS),
    }


def jaxcomp_marginals(grid, distributions) -> dict:
    import jax

    from jaxcomp.demographics import p_corr_log_age, p_corr_log_mass, p_obs_mass_age

    d = distributions
    return {
        "eq. 14 p_obs(log M, log T)": lambda: jax.block_until_ready(p_obs_mass_age(grid, d["av"])),
        "eq. 16 p_corr(log T)": lambda: jax.block_until_ready(
            p_corr_log_age(grid, d["mass"], d["av"])
        ),
        "p_corr(log M)": lambda: jax.block_until_ready(p_corr_log_mass(grid, d["age"], d["av"])),
    }


# ------------------------------------------------------------------ benchmark
def run(args) -> dict:
    import jax  # noqa: F401

    from jaxcomp.demographics import SelectionGrid
    from jaxcomp.demographics.marginalise import PHYSICAL_AXES
    from jaxcomp.selection.evaluate import DEFAULT_CHUNK_SIZE

    info = _common.machine_info()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, jax {info['jax']}, numpy {info['numpy']}, "
        f"load average {info['load_average_at_start']}"
    )
    sf = throughput.build_selection_function(3, args.width, seed=args.seed)
    params = throughput.numpy_parameters(sf)
    shape = tuple(args.grid)
    n_points = int(np.prod(shape))
    domain = sf.domain
    axes = [np.linspace(*domain[name], n) for name, n in zip(PHYSICAL_AXES, shape)]
    order = [PHYSICAL_AXES.index(name) for name in sf.input_names]
    flops_per_point = 2.0 * (3 * args.width + args.width * args.width + args.width)
    slab_rows = min(args.slab_rows, shape[0])
    slabs = [slice(s, min(s + slab_rows, shape[0])) for s in range(0, shape[0], slab_rows)]
    if slabs[-1].stop - slabs[-1].start < 2:  # SelectionGrid axes need >= 2 nodes
        slabs[-2:] = [slice(slabs[-2].start, slabs[-1].stop)]
    chunk = DEFAULT_CHUNK_SIZE
    print(
        f"\n=== grid {shape[0]} x {shape[1]} x {shape[2]} = {n_points:,} points, network "
        f"3-{args.width}-{args.width}-1 "
        f"({flops_per_point / 1e3:.0f} kFLOP/point, {n_points * flops_per_point / 1e12:.2f} "
        "TFLOP), "
        f"{len(slabs)} slabs of {slab_rows} log M rows ==="
    )
    matmul = _common.matmul_runner(args.peak_size)

    def jax_slab(rows: slice) -> np.ndarray:
        n = (rows.stop - rows.start) * shape[1] * shape[2]
        per_call = -(-n // chunk) * chunk  # one compiled call per slab, no padded block
        grid = SelectionGrid.from_selection(
            sf, axes[0][rows], axes[1], axes[2], chunk_size=chunk, points_per_call=per_call
        )
        return np.asarray(grid.p_obs)

    def numpy_slab(rows: slice) -> np.ndarray:
        points = grid_points(axes, rows, order)
        return throughput.numpy_p(params, points, chunk=args.numpy_chunk).reshape(
            -1, shape[1], shape[2]
        )

    # ----------------------------------------------- warm-up (compiles), agreement on the first
    # slab
    start = time.perf_counter()
    jax_slab(slabs[0])
    if slabs[-1].stop - slabs[-1].start != slabs[0].stop - slabs[0].start:
        jax_slab(slabs[-1])
    compile_s = time.perf_counter() - start
    numpy_slab(slice(0, 2))

    # -------------------------------------------------- network evaluation, interleaved slab by
    # slab
    p_jax = np.empty(shape, np.float32)
    p_np = np.empty(shape, np.float32)
    seconds = {"jaxcomp SelectionGrid.from_selection": [], "numpy float32 MLP (scipy erf)": []}
    peaks = []
    runs = {
        "jaxcomp SelectionGrid.from_selection": lambda rows: jax_slab(rows),
        "numpy float32 MLP (scipy erf)": lambda rows: numpy_slab(rows),
    }
    targets = {"jaxcomp SelectionGrid.from_selection": p_jax, "numpy float32 MLP (scipy erf)": p_np}
    for index, rows in enumerate(slabs):
        peaks.append(2.0 * args.peak_size**3 / _common.timed(matmul)[0] / 1e9)
        names = list(runs)
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed, values = _common.timed(runs[name], rows)
            seconds[name].append(elapsed)
            targets[name][rows] = values
        print(
            f"  slab {index + 1}/{len(slabs)}: jaxcomp "
            f"{seconds['jaxcomp SelectionGrid.from_selection'][-1]:.2f} s, "
            f"numpy {seconds['numpy float32 MLP (scipy erf)'][-1]:.2f} s, matmul peak "
            f"{peaks[-1]:.0f} GFLOP/s, "
            f"load average {_common.load_average()}",
            flush=True,
        )
    max_dp = float(np.max(np.abs(p_jax - p_np)))
    print(f"agreement: max |dp| jaxcomp vs numpy over all {n_points:,} grid points = {max_dp:.1e}")
    if not max_dp <= TOLERANCE:
        raise SystemExit(f"network evaluations disagree by {max_dp} > {TOLERANCE}")

    slab_points = [(s.stop - s.start) * shape[1] * shape[2] for s in slabs]
    network = {}
    for name, values in seconds.items():
        total = sum(values)
        network[name] = {
            "seconds_total": total,
            "seconds_per_slab": _common.stats(values),
            "points_per_s": n_points / total,
            "gflops": n_points * flops_per_point / total / 1e9,
            "fraction_of_peak_median": statistics.median(
                n * flops_per_point / t / 1e9 / g for n, t, g in zip(slab_points, values, peaks)
            ),
            "fraction_of_median_peak_overall": n_points
            * flops_per_point
            / total
            / 1e9
            / statistics.median(peaks),
            "fraction_of_best_peak_best_slab": max(
                n * flops_per_point / t for n, t in zip(slab_points, values)
            )
            / 1e9
            / max(peaks),
        }
    jname, nname = "jaxcomp SelectionGrid.from_selection", "numpy float32 MLP (scipy erf)"
    paired = [b / a for a, b in zip(seconds[jname], seconds[nname])]
    network_ratio = {
        "total": network[nname]["seconds_total"] / network[jname]["seconds_total"],
        "best_vs_best_slab": min(seconds[nname]) / min(seconds[jname]),
        "paired_median": statistics.median(paired),
        "paired_min": min(paired),
        "paired_max": max(paired),
    }
    rows = [
        [
            name,
            f"{r['seconds_total']:.1f}",
            f"{r['seconds_per_slab']['median']:.2f}",
            f"{r['seconds_per_slab']['min']:.2f}",
            f"{r['points_per_s']:,.0f}",
            f"{100 * r['fraction_of_peak_median']:.0f}%",
        ]
        for name, r in network.items()
    ]
    print(
        _common.table(
            rows,
            [
                "network on the grid",
                "total s",
                "slab median s",
                "slab best s",
                "pts/s",
                "of peak (median)",
            ],
        )
    )
    print(
        f"  (peak: jitted {args.peak_size}^2 jnp.dot per round, {min(peaks):.0f}-{max(peaks):.0f} "
        "GFLOP/s, "
        f"median {statistics.median(peaks):.0f})"
    )
    print(
        f"  jaxcomp / numpy (speed): {network_ratio['total']:.2f}x total, best slab vs best slab "
        f"{network_ratio['best_vs_best_slab']:.2f}x, per slab {network_ratio['paired_min']:.2f}-"
        f"{network_ratio['paired_max']:.2f}x (median {network_ratio['paired_median']:.2f}x)"
    )

    whole = None
    if args.whole_grid:
        peak_before = 2.0 * args.peak_size**3 / _common.timed(matmul)[0] / 1e9
        elapsed, grid_whole = _common.timed(SelectionGrid.from_selection, sf, shape=shape)
        peak_after = 2.0 * args.peak_size**3 / _common.timed(matmul)[0] / 1e9
        whole_dp = float(np.max(np.abs(np.asarray(grid_whole.p_obs) - p_np)))
        whole = {
            "seconds": elapsed,
            "points_per_s": n_points / elapsed,
            "fraction_of_peak": n_points
            * flops_per_point
            / elapsed
            / 1e9
            / (0.5 * (peak_before + peak_after)),
            "max_abs_dp_vs_numpy": whole_dp,
        }
        print(
            "  library default call on the whole grid (SelectionGrid.from_selection(sf, "
            f"shape={shape}), "
            f"includes its compile): {elapsed:.1f} s = {whole['points_per_s']:,.0f} pts/s, "
            f"{100 * whole['fraction_of_peak']:.0f}% of peak, max |dp| vs numpy {whole_dp:.1e}"
        )

    # ---------------------------------------------------------------- the sums
    grid = SelectionGrid.from_arrays(*axes, p_jax)
    distributions = jaxcomp_distributions(domain["log_mass"], domain["log_age"])
    jax_sums = jaxcomp_marginals(grid, distributions)
    np_marg = NumpyMarginals(axes, domain["log_mass"], domain["log_age"])
    np_sums = {
        "eq. 14 p_obs(log M, log T)": lambda: np_marg.p_obs_mass_age(p_jax),
        "eq. 16 p_corr(log T)": lambda: np_marg.p_corr_log_age(p_jax),
        "p_corr(log M)": lambda: np_marg.p_corr_log_mass(p_jax),
    }
    first_call = {}
    sum_dp = {}
    for name in jax_sums:
        first_call[name], value = _common.timed(jax_sums[name])
        sum_dp[name] = float(np.max(np.abs(np.asarray(value) - np_sums[name]())))
    weights_dp = {}
    from jaxcomp.demographics import quadrature_weights

    for which, axis in (("mass", 0), ("age", 1), ("av", 2)):
        w = np.asarray(quadrature_weights(distributions[which], getattr(grid, PHYSICAL_AXES[axis])))
        weights_dp[which] = float(np.max(np.abs(w - np_marg.weights(which))))
    print(
        "\nmarginals: max |dp| jaxcomp vs numpy: "
        + ", ".join(f"{k} {v:.1e}" for k, v in sum_dp.items())
        + "; quadrature weights max |dw|: "
        + ", ".join(f"{k} {v:.1e}" for k, v in weights_dp.items())
    )
    if not max(sum_dp.values()) <= TOLERANCE:
        raise SystemExit(f"marginals disagree by more than {TOLERANCE}: {sum_dp}")
    sum_seconds = {f"jaxcomp {k}": [] for k in jax_sums} | {f"numpy {k}": [] for k in np_sums}
    calls = {f"jaxcomp {k}": f for k, f in jax_sums.items()} | {
        f"numpy {k}": f for k, f in np_sums.items()
    }
    for index in range(args.sum_rounds):
        names = list(calls)
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            sum_seconds[name].append(_common.timed(calls[name])[0])
    nbytes = p_jax.nbytes
    sums = {}
    rows = []
    for name in jax_sums:
        j, n = sum_seconds[f"jaxcomp {name}"], sum_seconds[f"numpy {name}"]
        paired = [b / a for a, b in zip(j, n)]
        sums[name] = {
            "jaxcomp": _common.stats(j),
            "numpy": _common.stats(n),
            "jaxcomp_first_call_s": first_call[name],
            "ratio_median": statistics.median(n) / statistics.median(j),
            "ratio_best": min(n) / min(j),
            "paired_min": min(paired),
            "paired_max": max(paired),
            "jaxcomp_gb_per_s_median": nbytes / statistics.median(j) / 1e9,
            "numpy_gb_per_s_median": nbytes / statistics.median(n) / 1e9,
            "max_abs_dp": sum_dp[name],
        }
        rows.append(
            [
                name,
                f"{1e3 * statistics.median(j):.1f}",
                f"{1e3 * min(j):.1f}",
                f"{1e3 * statistics.median(n):.1f}",
                f"{1e3 * min(n):.1f}",
                f"{sums[name]['ratio_median']:.2f}x",
                f"{sums[name]['ratio_best']:.2f}x",
                f"{sums[name]['jaxcomp_gb_per_s_median']:.1f}",
                f"{1e3 * first_call[name]:.0f}",
            ]
        )
    print(
        f"marginalisation sums on the {n_points:,}-point float32 grid ({nbytes / 1e6:.0f} MB), "
        f"{args.sum_rounds} "
        f"interleaved rounds (weights computed inside every call for both):"
    )
    print(
        _common.table(
            rows,
            [
                "marginal",
                "jaxcomp ms",
                "best",
                "numpy ms",
                "best",
                "jaxcomp/numpy",
                "best/best",
                "jaxcomp GB/s",
                "1st call ms",
            ],
        )
    )

    total_j = network[jname]["seconds_total"] + sum(
        statistics.median(v["jaxcomp"]["all"]) for v in sums.values()
    )
    total_n = network[nname]["seconds_total"] + sum(
        statistics.median(v["numpy"]["all"]) for v in sums.values()
    )
    print(
        f"\nRATIOS jaxcomp / numpy (speed): network on the grid {network_ratio['total']:.2f}x "
        f"({network[jname]['seconds_total']:.1f} s vs {network[nname]['seconds_total']:.1f} s, "
        "jaxcomp at "
        f"{100 * network[jname]['fraction_of_peak_median']:.0f}% of the matmul peak, numpy "
        f"{100 * network[nname]['fraction_of_peak_median']:.0f}%); sums "
        + ", ".join(f"{k} {v['ratio_median']:.2f}x" for k, v in sums.items())
        + f"; grid + three marginals {total_n / total_j:.2f}x"
    )
    return {
        "benchmark": "marginalise",
        "quick": args.quick,
        "machine": info,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "grid_shape": list(shape),
        "n_points": n_points,
        "flops_per_point": flops_per_point,
        "slabs": [[s.start, s.stop] for s in slabs],
        "jaxcomp_compile_s_first_slab": compile_s,
        "matmul_peak_gflops_per_round": peaks,
        "distributions": {
            "mass": {"SchechterLogMass": MASS_PARAMS},
            "age": {"BrokenPowerLawLogAge": AGE_PARAMS},
            "av": {"edges": AV_EDGES, "weights": AV_WEIGHTS},
        },
        "network": network,
        "network_ratio_jaxcomp_over_numpy": network_ratio,
        "network_max_abs_dp": max_dp,
        "whole_grid_library_call": whole,
        "sums": sums,
        "quadrature_weights_max_abs_dw": weights_dp,
        "total_ratio_grid_plus_marginals": total_n / total_j,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 x 100 x 10 grid, CI smoke run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--grid", type=int, nargs=3, help="nodes in (log M, log T, A_V) (default 500 500 50)"
    )
    parser.add_argument("--slab-rows", type=int, default=25, help="log M rows per timed slab")
    parser.add_argument("--numpy-chunk", type=int, default=8192, help="points per numpy MLP chunk")
    parser.add_argument(
        "--sum-rounds", type=int, help="interleaved rounds of the marginal sums (default 20)"
    )
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peak-size", type=int, help="matrix size of the matmul-peak probe (default 4096)"
    )
    parser.add_argument(
        "--whole-grid",
        dest="whole_grid",
        action="store_true",
        default=None,
        help="also time the library's default call on the whole grid (default on, off with "
        "--quick)",
    )
    parser.add_argument("--no-whole-grid", dest="whole_grid", action="store_false")
    args = parser.parse_args(argv)
    if args.quick:
        args.grid = args.grid or [100, 100, 10]
        args.sum_rounds = args.sum_rounds or 10
        args.peak_size = args.peak_size or 2048
        args.whole_grid = False if args.whole_grid is None else args.whole_grid
    args.grid = args.grid or list(PAPER_SHAPE)
    args.sum_rounds = args.sum_rounds or 20
    args.peak_size = args.peak_size or 4096
    args.whole_grid = True if args.whole_grid is None else args.whole_grid
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    payload = run(args)
    if args.json:
        _common.write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
