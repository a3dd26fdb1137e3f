"""Test-design campaigns: each test cluster's measured recovery probability.

:func:`p_true_table` turns the labels of a campaign that re-injects the same library
clusters in R frames (:class:`jaxcomp.ast.campaign.CampaignConfig` with
``design="test"``, or :func:`jaxcomp.selection.synthetic.simulate_labels`) into one row
per test cluster with ``n_repeats``, ``n_detected`` and ``p_true = n_detected /
n_repeats`` (paper eq. 10), the table :func:`jaxcomp.selection.validation.validate_selection`
scores a selection function on. See ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._common import (
    _MAGNITUDE_COLUMNS,
    _PHYSICAL_NAMES,
    PIPELINE_STEPS,
    _binary,
    _require,
    _to_pandas,
)

__all__ = ["p_true_table"]

#: Columns of a labels table that vary between the repeats of one injected cluster.
_PER_INJECTION = frozenset(
    {
        "frame",
        "repeat",
        "x",
        "y",
        "x_meas",
        "y_meas",
        "sep_px",
        "ci_meas",
        "design",
        *PIPELINE_STEPS,
    }
)
_OUTPUT = ("n_repeats", "n_detected", "p_true")


def p_true_table(
    labels,
    id_column: str | Sequence[str] = "cluster_id",
    label_column: str = "C",
    *,
    min_repeats: int = 2,
):
    """One row per re-injected test cluster with its measured recovery probability.

    Implements paper eq. 10, ``p_true = (1/N_rep) sum_n C_n``, on the labels of a
    test-design campaign (:class:`jaxcomp.ast.campaign.CampaignConfig` with
    ``design="test"``), in which each library cluster is injected in
    ``frames_per_reff`` frames with new positions and shot noise.

    Parameters
    ----------
    labels : astropy.table.Table, pandas.DataFrame or mapping
        Per-injection labels: the id column(s), the binary label (``C``: 1 if the
        injected cluster is in the final catalogue) and the cluster's properties
        (``log_mass, log_age, av, r_eff_pc, mag_<band>``, ...), as written by
        :func:`jaxcomp.ast.campaign.run_campaign` or
        :func:`jaxcomp.selection.synthetic.simulate_labels`.
    id_column : str or sequence of str
        Column(s) identifying one injected cluster (default ``"cluster_id"``; a
        campaign never gives two radii the same library cluster, so the id alone
        suffices; pass ``("cluster_id", "r_eff_pc")`` for concatenated campaigns).
    label_column : str
        The binary recovery label (default ``"C"``).
    min_repeats : int
        Fewest injections a cluster may have (default 2); a table where a cluster
        appears fewer times is refused.

    Returns
    -------
    astropy.table.Table
        Sorted by id, with the id column(s); every per-cluster column of ``labels``
        (all columns except the per-injection ones: ``frame, repeat, x, y``, the step
        flags, ``*_meas``, ``sep_px``, ``design`` and the label), taken from the
        cluster's first repeat (smallest ``repeat``, then ``frame``, else first row);
        ``n_repeats`` (injections), ``n_detected`` (injections with label 1, i.e.
        recovered into the final catalogue; not the ``detected`` step flag) and
        ``p_true = n_detected / n_repeats``.  A carried column whose name collides
        with these three (e.g. the analytic ``p_true`` of
        :func:`~jaxcomp.selection.synthetic.simulate_labels`) is renamed
        ``<name>_input``.  ``meta`` records the columns used and the totals.

    Raises
    ------
    KeyError
        A missing id or label column.
    ValueError
        An empty table; NaN ids or labels, or labels other than 0/1; clusters with
        fewer than ``min_repeats`` injections (e.g. a training-design campaign, in
        which no cluster is used twice); a cluster whose physical inputs or
        magnitudes differ between its repeats (the id does not identify one cluster).
    """
    from astropy.table import Table

    df = _to_pandas(labels, "labels")
    ids = (id_column,) if isinstance(id_column, str) else tuple(id_column)
    if not ids:
        raise ValueError("id_column must name at least one column")
    _require(df, [*ids, label_column], "labels table")
    if len(df) == 0:
        raise ValueError("the labels table is empty")
    if isinstance(min_repeats, bool) or int(min_repeats) < 1:
        raise ValueError(f"min_repeats must be a positive integer, got {min_repeats!r}")
    for name in ids:
        column = df[name]
        if column.isna().any():
            raise ValueError(f"id column {name!r} has {int(column.isna().sum())} missing value(s)")
    y = _binary(df[label_column].to_numpy(), label_column)

    # order: group, then repeat, then frame, then row  -> the first row of a group is its first
    # repeat
    keys = [np.arange(len(df))]
    for name in ("frame", "repeat"):
        if name in df.columns and name not in ids:
            keys.append(df[name].to_numpy())
    group_codes = []
    for name in reversed(ids):
        group_codes.append(np.unique(df[name].to_numpy(), return_inverse=True)[1].reshape(-1))
    keys.extend(group_codes)
    order = np.lexsort(keys)
    df = df.iloc[order].reset_index(drop=True)
    y = y[order]
    group_matrix = np.stack(
        [np.unique(df[name].to_numpy(), return_inverse=True)[1].reshape(-1) for name in ids], 1
    )
    new_group = np.ones(len(df), bool)
    new_group[1:] = np.any(group_matrix[1:] != group_matrix[:-1], axis=1)
    starts = np.flatnonzero(new_group)
    group = np.cumsum(new_group) - 1
    n_repeats = np.diff(np.append(starts, len(df)))
    n_detected = np.bincount(group, weights=y, minlength=starts.size).astype(np.int64)

    few = n_repeats < int(min_repeats)
    if few.any():
        if np.all(n_repeats == 1):
            design = (
                f" (design column: {sorted(set(map(str, df['design'])))})"
                if "design" in df.columns
                else ""
            )
            raise ValueError(
                f"every cluster of the {len(df)}-row labels table was injected once{design}: this "
                "looks like a "
                "training-design campaign, which has no repeats; p_true needs a test-design "
                "campaign "
                "(CampaignConfig(design='test'), each cluster re-injected frames_per_reff times)"
            )
        raise ValueError(
            f"{int(few.sum())} of {starts.size} clusters have fewer than {min_repeats} injections "
            f"(smallest: {int(n_repeats.min())}); pass min_repeats to accept them"
        )

    carried = [
        c
        for c in df.columns
        if c not in ids
        and c != label_column
        and c not in _PER_INJECTION
        and not str(c).endswith("_meas")
        and not str(c).startswith("magerr_")
    ]
    identity = [c for c in carried if c in (*_PHYSICAL_NAMES, "r_eff_pc", *_MAGNITUDE_COLUMNS)]
    varying = []
    for name in identity:
        values = df[name].to_numpy()
        first = values[starts][group]
        try:
            same = (values == first) | (
                np.isnan(values.astype(float)) & np.isnan(first.astype(float))
            )
        except (TypeError, ValueError):
            same = values == first
        if not np.all(same):
            varying.append(name)
    if varying:
        raise ValueError(
            f"column(s) {varying} differ between rows with the same {list(ids)}: the id does not "
            "identify one "
            "injected cluster (concatenated campaigns? pass id_column=('cluster_id', 'r_eff_pc') "
            "or a unique id)"
        )

    out = Table()
    for name in ids:
        out[name] = df[name].to_numpy()[starts]
    for name in carried:
        target = f"{name}_input" if name in _OUTPUT else name
        out[target] = df[name].to_numpy()[starts]
    out["n_repeats"] = n_repeats.astype(np.int64)
    out["n_detected"] = n_detected
    out["p_true"] = n_detected / n_repeats
    out.meta.update(
        {
            "id_columns": list(ids),
            "label_column": label_column,
            "n_clusters": int(starts.size),
            "n_injections": len(df),
            "p_true_definition": "fraction of a cluster's repeated injections recovered (label = "
            "1); Tang+2026 eq. 10",
        }
    )
    source_meta = getattr(labels, "meta", None) or {}
    for key in ("campaign", "config_hash"):
        if key in source_meta:
            out.meta[key] = source_meta[key]
    return out
