"""The files of a many-field fit: posterior tables, shrinkage plots, the LOO comparison.

One writer for ``jaxcomp fit --field ...`` and the workflow's many-field ``fit`` stage
(:func:`write_multifield_outputs`), so both leave the same files:

``posterior_fields.ecsv``
    One row per (pooling, field, parameter): the per-field hyperparameters
    (``alpha_M``, ``log_M_break``, ``alpha_T`` ..., ``av_weights[k]``) and the detected
    fraction α_f, with mean, sd, equal-tailed 68% and 95% intervals, r_hat and ESS.
``posterior_population.ecsv``
    One row per (pooling, parameter) of the population level (``*_mean``, ``*_scatter``,
    ``*_slope``, ``av_logit_mean[k]``); no rows for no pooling, which has none.
``posterior.md``, ``report.txt``
    The chosen pooling's tables as Markdown; every fit's ArviZ summary.
``shrinkage_<parameter>.png``
    :func:`~jaxcomp.demographics.plot_shrinkage` of each per-field parameter, every fitted
    pooling side by side.
``loo.ecsv``
    With several poolings: ``arviz.compare`` (PSIS-LOO) of the fits, best first.
``idata_<pooling>.nc`` (or ``.json``)
    Each fit's InferenceData.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = [
    "comparison_table",
    "multifield_markdown",
    "posterior_tables",
    "write_multifield_outputs",
]

_COLUMNS = ("mean", "sd", "q025", "q16", "median", "q84", "q975", "r_hat", "ess_bulk", "ess_tail")


def _statistics(chains: np.ndarray) -> list[float]:
    """Mean, sd, 2.5/16/50/84/97.5% quantiles, r_hat and bulk/tail ESS of (chain, draw) draws."""
    import arviz as az

    chains = np.asarray(chains, np.float64)
    flat = chains.ravel()
    quantiles = np.quantile(flat, [0.025, 0.16, 0.5, 0.84, 0.975]).tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one chain: r_hat is undefined (nan)
        r_hat = float(az.rhat(chains)) if chains.shape[0] > 1 else float("nan")
        ess_bulk = float(az.ess(chains, method="bulk"))
        ess_tail = float(az.ess(chains, method="tail"))
    sd = float(np.std(flat, ddof=1)) if flat.size > 1 else 0.0
    return [float(np.mean(flat)), sd, *quantiles, r_hat, ess_bulk, ess_tail]


def _chains(result, name: str) -> np.ndarray:
    """Draws of ``name`` with their chains kept: (chain, draw, ...)."""
    return np.asarray(result.idata.posterior[name])


def posterior_tables(result):
    """Per-field and population posterior tables of one :class:`MultiFieldResult`.

    Returns
    -------
    (astropy.table.Table, astropy.table.Table)
        ``fields`` (columns ``pooling``, ``field``, ``parameter`` and the statistics) and
        ``population`` (``pooling``, ``parameter`` and the statistics).
    """
    from astropy.table import Table

    model = result.model
    pooling = model.pooling
    field_rows = []
    for f, field in enumerate(result.field_names):
        for name in model.field_parameters:
            field_rows.append((pooling, field, name, *_statistics(_chains(result, name)[:, :, f])))
        if model.has_av_weights:
            weights = _chains(result, "av_weights")
            for k in range(weights.shape[-1]):
                field_rows.append(
                    (pooling, field, f"av_weights[{k}]", *_statistics(weights[:, :, f, k]))
                )
        fraction = _chains(result, "detected_fraction")[:, :, f]
        field_rows.append((pooling, field, "detected_fraction", *_statistics(fraction)))
    population_rows = [
        (pooling, name, *_statistics(_chains(result, name))) for name in model.population_parameters
    ]
    if "av_logit_mean" in result.idata.posterior:
        logits = _chains(result, "av_logit_mean")
        population_rows += [
            (pooling, f"av_logit_mean[{k}]", *_statistics(logits[:, :, k]))
            for k in range(logits.shape[-1])
        ]
    fields = Table(
        rows=field_rows or None,
        names=("pooling", "field", "parameter", *_COLUMNS),
        dtype=(str, str, str, *(float,) * len(_COLUMNS)),
    )
    population = Table(
        rows=population_rows or None,
        names=("pooling", "parameter", *_COLUMNS),
        dtype=(str, str, *(float,) * len(_COLUMNS)),
    )
    meta = {
        "model": model.describe(),
        "pooling": pooling,
        "fields": list(result.field_names),
        "n_objects": [int(n) for n in result.n_objects],
        "seed": int(result.seed),
        "num_divergences": int(result.num_divergences),
        "intervals": "equal-tailed 68% (q16-q84) and 95% (q025-q975)",
    }
    fields.meta.update(meta)
    population.meta.update(meta)
    return fields, population


def comparison_table(comparison):
    """``arviz.compare``'s DataFrame as a table (column ``pooling`` first)."""
    from astropy.table import Table

    frame = comparison.reset_index().rename(columns={"index": "pooling"})
    frame["warning"] = frame["warning"].astype(bool)
    if "scale" in frame:
        frame["scale"] = frame["scale"].astype(str)
    return Table.from_pandas(frame)


def _markdown_rows(table, label_columns) -> list[str]:
    lines = []
    for row in table:
        labels = " | ".join(str(row[c]) for c in label_columns)
        r_hat = f"{row['r_hat']:.3f}" if np.isfinite(row["r_hat"]) else "n/a"
        lines.append(
            f"| {labels} | {row['median']:.3f} | [{row['q16']:.3f}, {row['q84']:.3f}] | "
            f"[{row['q025']:.3f}, {row['q975']:.3f}] | {r_hat} | {row['ess_bulk']:.0f} |"
        )
    return lines


def multifield_markdown(fields, population, comparison=None) -> str:
    """The tables of :func:`posterior_tables` (and a LOO comparison) as Markdown."""
    meta = fields.meta
    head = "| median | 68% interval | 95% interval | r_hat | ESS bulk |"
    lines = [
        f"Posterior of {meta['model']} ({len(meta['fields'])} fields, "
        f"{sum(meta['n_objects'])} clusters, seed {meta['seed']}, "
        f"{meta['num_divergences']} divergences)",
        "",
    ]
    if len(population):
        lines += [
            "Population:",
            "",
            "| parameter " + head,
            "|---|---|---|---|---|---|",
            *_markdown_rows(population, ("parameter",)),
            "",
        ]
    lines += [
        "Fields:",
        "",
        "| field | parameter " + head,
        "|---|---|---|---|---|---|---|",
        *_markdown_rows(fields, ("field", "parameter")),
    ]
    if comparison is not None:
        lines += [
            "",
            "PSIS-LOO comparison (best first):",
            "",
            "| pooling | elpd_loo | p_loo | elpd_diff | dse | weight |",
            "|---|---|---|---|---|---|",
        ]
        for pooling, row in comparison.iterrows():
            lines.append(
                f"| {pooling} | {row['elpd_loo']:.1f} | {row['p_loo']:.1f} | "
                f"{row['elpd_diff']:.1f} | {row['dse']:.1f} | {row['weight']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _diagnostics(result) -> dict:
    def finite(values):
        return [float(v) for v in values if np.isfinite(v)]

    summary = result.summary
    return {
        "num_divergences": int(result.num_divergences),
        "max_r_hat": max(finite(summary["r_hat"]), default=None),
        "min_ess_bulk": min(finite(summary["ess_bulk"]), default=None),
        "sampling_s": round(float(result.runtime_s), 2),
    }


def write_multifield_outputs(results, directory, *, main: str, comparison=None, truth=None):
    """Write the files of a many-field fit (see the module docstring) into ``directory``.

    Parameters
    ----------
    results : mapping of str to MultiFieldResult
        The fits by pooling form (one, or the three of
        :func:`~jaxcomp.demographics.compare_pooling`), all of the same fields.
    directory : path
        An existing directory; every file is written to a temporary name and renamed.
    main : str
        The pooling whose tables ``posterior.md`` shows (a key of ``results``).
    comparison : pandas.DataFrame, optional
        ``arviz.compare``'s table (written as ``loo.ecsv``).
    truth : mapping of str to array, optional
        True per-field values (simulations), marked on the shrinkage plots.

    Returns
    -------
    dict
        ``files`` (every name written), ``tables`` and ``figures`` (name and caption, for a
        report), ``idata`` (per pooling: :func:`jaxcomp._io.save_inference_data`'s record),
        ``diagnostics`` (per pooling: divergences, max r_hat, min bulk ESS, sampling time).
    """
    import matplotlib.pyplot as plt

    from .._io import atomic_savefig, atomic_write_text, save_inference_data, write_table
    from .multifield_plots import plot_shrinkage

    results = dict(results)
    if main not in results:
        raise InputError(f"main pooling {main!r} is not among the fits {sorted(results)}")
    directory = Path(directory)
    files, figures, idata = [], [], {}
    field_tables, population_tables = [], []
    for pooling, result in results.items():
        fields, population = posterior_tables(result)
        field_tables.append(fields)
        population_tables.append(population)
        if pooling == main:
            markdown = multifield_markdown(fields, population, comparison)
        idata[pooling] = save_inference_data(result.idata, directory, f"idata_{pooling}")
        if idata[pooling]["file"]:
            files.append(idata[pooling]["file"])
    from astropy.table import vstack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # metadata of the fits differ (pooling): keep the first
        fields = vstack(field_tables, metadata_conflicts="silent")
        population = vstack(population_tables, metadata_conflicts="silent")
    for table in (fields, population):
        table.meta["poolings"] = list(results)
    write_table(fields, directory / "posterior_fields.ecsv")
    write_table(population, directory / "posterior_population.ecsv")
    atomic_write_text(directory / "posterior.md", markdown)
    atomic_write_text(
        directory / "report.txt", "\n\n".join(r.report() for r in results.values()) + "\n"
    )
    files += ["posterior_fields.ecsv", "posterior_population.ecsv", "posterior.md", "report.txt"]
    tables = [
        {
            "path": "posterior_population.ecsv",
            "caption": "Population-level posterior (means, scatters, slopes) of each pooling form.",
        },
        {
            "path": "posterior_fields.ecsv",
            "caption": "Per-field posterior of each pooling form (hyperparameters, A_V bin "
            "probabilities, detected fraction).",
            "max_rows": 200,
        },
    ]
    if comparison is not None:
        write_table(comparison_table(comparison), directory / "loo.ecsv")
        files.append("loo.ecsv")
        tables.insert(
            0, {"path": "loo.ecsv", "caption": "PSIS-LOO comparison of the pooling forms."}
        )
    model = results[main].model
    truth = dict(truth or {})
    for name in model.field_parameters:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # matplotlib layout chatter
            figure = plot_shrinkage(results, name, truth=truth.get(name))
            atomic_savefig(figure, directory / f"shrinkage_{name}.png", dpi=110)
        plt.close(figure)
        files.append(f"shrinkage_{name}.png")
        figures.append(
            {
                "path": f"shrinkage_{name}.png",
                "caption": f"Shrinkage of {name}: per-field posteriors (median and 68% interval) "
                "under "
                f"{', '.join(results)} pooling"
                + (", with the partial-pooling population mean" if "partial" in results else "")
                + ".",
            }
        )
    return {
        "files": files,
        "tables": tables,
        "figures": figures,
        "idata": idata,
        "diagnostics": {pooling: _diagnostics(r) for pooling, r in results.items()},
    }
