"""How much the two former correction recipes differ, and which is closer to the exact answer.

Before ``jaxcomp.demographics.correct_catalogue`` there were two copies of the completeness
correction: ``jaxcomp correct`` computed the marginals in float64 and interpolated them with
``numpy.interp`` (float64); the workflow's ``correct`` stage used JAX's default float32 for both
(``p_corr_log_*`` and ``interpolate_marginal``).  This script runs both recipes on a known
selection surface (``LogisticSelection.linear()``) tabulated on the demo's correction grid
(121 x 105 x 13) and on a finer one (481 x 209 x 49), and compares the per-cluster ``p_corr``
and the corrected counts with each other and with the exact marginal of the *tabulated*
surface (the grid's trilinear interpolant integrated in float64 by midpoint sums 256x finer than
the grid, relative error < 1e-8, so the
comparison isolates the arithmetic, not the grid resolution).

Run: ``python benchmarks/correction_precision.py [--json benchmarks/results/FILE.json]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _recipes(grid, catalogue, mass, age, av, age_bins, mass_bins):
    from jaxcomp.demographics import (
        correct_catalogue,
        corrected_age_function,
        corrected_mass_function,
        interpolate_marginal,
        p_corr_log_age,
        p_corr_log_mass,
    )

    new = correct_catalogue(
        catalogue,
        grid,
        mass_distribution=mass,
        age_distribution=age,
        av_distribution=av,
        age_bins=age_bins,
        mass_bins=mass_bins,
    )
    # the former workflow recipe (float32 throughout)
    p_age = p_corr_log_age(grid, mass, av)
    p_mass = p_corr_log_mass(grid, age, av)
    log_age = np.asarray(catalogue["log_age"], float)
    log_mass = np.asarray(catalogue["log_mass"], float)
    old_p_age = np.asarray(interpolate_marginal(grid.log_age, p_age, log_age), np.float64)
    old_p_mass = np.asarray(interpolate_marginal(grid.log_mass, p_mass, log_mass), np.float64)
    old_caf = corrected_age_function(log_age, old_p_age, age_bins)
    old_cmf = corrected_mass_function(log_mass, old_p_mass, mass_bins)
    return new, (old_p_age, old_p_mass, old_caf, old_cmf)


def _exact_marginals(grid, mass, age, av, refine: int = 256):
    """p_corr of the grid's piecewise-linear surface by dense float64 midpoint sums."""
    import jax

    from jaxcomp.demographics.correct import _float64

    axes = [np.asarray(a, np.float64) for a in (grid.log_mass, grid.log_age, grid.av)]
    p = np.asarray(grid.p_obs, np.float64)

    def fine(axis):
        n = (axis.shape[0] - 1) * refine
        edges = np.linspace(axis[0], axis[-1], n + 1)
        return 0.5 * (edges[1:] + edges[:-1])

    def density(distribution, x):
        with jax.enable_x64(True):
            d = _float64(distribution)
            return np.exp(np.asarray(d.log_prob(jax.numpy.asarray(x)), np.float64))

    def node_weights(axis, x, w):  # integral weights of the nodes under linear interpolation
        index = np.clip(np.searchsorted(axis, x) - 1, 0, axis.shape[0] - 2)
        frac = (x - axis[index]) / (axis[index + 1] - axis[index])
        out = np.zeros(axis.shape[0])
        np.add.at(out, index, w * (1 - frac))
        np.add.at(out, index + 1, w * frac)
        return out

    xm, xa, xt = fine(axes[0]), fine(axes[2]), fine(axes[1])
    node_mass = node_weights(axes[0], xm, density(mass, xm) * (xm[1] - xm[0]))
    node_av = node_weights(axes[2], xa, density(av, xa) * (xa[1] - xa[0]))
    node_age = node_weights(axes[1], xt, density(age, xt) * (xt[1] - xt[0]))
    p_age = np.einsum("i,ijk,k->j", node_mass, p, node_av)
    p_mass = np.einsum("j,ijk,k->i", node_age, p, node_av)
    return axes[1], p_age, axes[0], p_mass


def measure(shape, n_clusters: int = 2000, seed: int = 0) -> dict:
    from astropy.table import Table

    from jaxcomp.demographics import (
        BrokenPowerLawLogAge,
        PiecewiseConstantAV,
        SchechterLogMass,
        SelectionGrid,
    )
    from jaxcomp.selection.synthetic import LogisticSelection

    selection = LogisticSelection.linear()
    # the grid's axes are float32: the age support ends on a float32 number so that the last node
    # is the support's edge (else p_corr holds p_obs constant over the 6e-8 dex sliver beyond it,
    # which the reference below would leave out)
    t_max = float(np.float32(np.log10(1.5e10)))
    axes = (
        np.linspace(2.0, 8.0, shape[0]),
        np.linspace(5.0, t_max, shape[1]),
        np.linspace(0.0, 3.0, shape[2]),
    )
    grid = SelectionGrid.from_arrays(*axes, selection(*np.meshgrid(*axes, indexing="ij")))
    rng = np.random.default_rng(seed)
    catalogue = Table(
        {
            "log_mass": rng.uniform(2.5, 6.5, n_clusters),
            "log_age": rng.uniform(6.0, 10.1, n_clusters),
        }
    )
    mass = SchechterLogMass(-2.16, 5.61, 2.0, 8.0)  # the paper's assumed distributions
    age = BrokenPowerLawLogAge(-1.41, 8.22, 0.0, 5.0, t_max)
    av = PiecewiseConstantAV(np.linspace(0, 3, 5), np.array([0.4, 0.3, 0.2, 0.1]))
    age_bins, mass_bins = np.arange(6.0, 10.21, 0.3), np.arange(2.5, 6.51, 0.25)
    new, (old_p_age, old_p_mass, old_caf, old_cmf) = _recipes(
        grid, catalogue, mass, age, av, age_bins, mass_bins
    )
    t_nodes, exact_age, m_nodes, exact_mass = _exact_marginals(grid, mass, age, av)
    exact_i_age = np.interp(catalogue["log_age"], t_nodes, exact_age)
    exact_i_mass = np.interp(catalogue["log_mass"], m_nodes, exact_mass)

    def rel(a, b):
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))

    def n_corr(table):
        return np.ma.filled(np.ma.asarray(table["n_corr"], float), np.nan)

    def rel_counts(a, b):
        both = np.isfinite(a) & np.isfinite(b) & (b > 0)
        return float(np.max(np.abs(a[both] - b[both]) / b[both]))

    from jaxcomp.demographics import corrected_age_function, corrected_mass_function

    exact_caf = n_corr(corrected_age_function(catalogue["log_age"], exact_i_age, age_bins))
    exact_cmf = n_corr(corrected_mass_function(catalogue["log_mass"], exact_i_mass, mass_bins))
    return {
        "grid_shape": list(shape),
        "n_clusters": n_clusters,
        "seed": seed,
        "max_rel_p_corr_age": {
            "float32_vs_exact": rel(old_p_age, exact_i_age),
            "float64_vs_exact": rel(new.p_corr_age, exact_i_age),
            "float32_vs_float64": rel(old_p_age, new.p_corr_age),
        },
        "max_rel_p_corr_mass": {
            "float32_vs_exact": rel(old_p_mass, exact_i_mass),
            "float64_vs_exact": rel(new.p_corr_mass, exact_i_mass),
            "float32_vs_float64": rel(old_p_mass, new.p_corr_mass),
        },
        "max_rel_n_corr_caf": {
            "float32_vs_exact": rel_counts(n_corr(old_caf), exact_caf),
            "float64_vs_exact": rel_counts(n_corr(new.caf), exact_caf),
        },
        "max_rel_n_corr_cmf": {
            "float32_vs_exact": rel_counts(n_corr(old_cmf), exact_cmf),
            "float64_vs_exact": rel_counts(n_corr(new.cmf), exact_cmf),
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)
    results = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "runs": [measure((121, 105, 13)), measure((481, 209, 49))],
    }
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
