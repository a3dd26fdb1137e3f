"""Figures of multi-field fits: per-field posteriors under each pooling form (shrinkage)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["plot_shrinkage"]


def plot_shrinkage(results, name: str = "alpha_M", *, truth=None, ax=None):
    """Per-field posteriors of ``name`` under each pooling form, with the population mean.

    Parameters
    ----------
    results : mapping of str to MultiFieldResult
        E.g. the first output of :func:`compare_pooling`; the fields must be the same.
    name : str
        A per-field parameter.
    truth : array, optional
        True per-field values (simulations), drawn as crosses.
    ax : matplotlib axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Posterior medians and 68% intervals per field (fields ordered by their
        no-pooling or first result's median); the partial-pooling population mean as a line.
    """
    import matplotlib.pyplot as plt

    results = dict(results)
    if not results:
        raise InputError("plot_shrinkage needs at least one result")
    names = {r.field_names for r in results.values()}
    if len(names) != 1:
        raise InputError("the results cover different fields; compare fits of the same fields")
    field_names = next(iter(names))
    reference = results.get("none", next(iter(results.values())))
    order = np.argsort(np.median(reference.draws(name), axis=0))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.3 * len(field_names) + 2.0), 3.8))
    offsets = np.linspace(-0.2, 0.2, len(results)) if len(results) > 1 else [0.0]
    x = np.arange(len(field_names))
    for offset, (pooling, result) in zip(offsets, results.items()):
        q = np.quantile(result.draws(name), [0.16, 0.5, 0.84], axis=0)[:, order]
        ax.errorbar(
            x + offset,
            q[1],
            yerr=[q[1] - q[0], q[2] - q[1]],
            fmt="o",
            ms=3,
            lw=1,
            label=f"{pooling} pooling",
        )
        if pooling == "partial" and f"{name}_mean" in result.idata.posterior:
            ax.axhline(
                float(np.median(result.draws(f"{name}_mean"))),
                color="0.4",
                lw=1,
                ls="--",
                label="population mean (partial)",
            )
    if truth is not None:
        ax.plot(x, np.asarray(truth, np.float64)[order], "kx", ms=5, label="truth")
    ax.set_xticks(x, [field_names[i] for i in order], rotation=90, fontsize="x-small")
    ax.set_ylabel(name)
    ax.legend(fontsize="small")
    ax.figure.tight_layout()
    return ax.figure
