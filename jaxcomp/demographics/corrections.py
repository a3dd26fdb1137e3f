"""Completeness-corrected cluster mass and age functions (Tang et al. 2026, section 4.4.2, eq.
17-18).

For each observed cluster ``i`` take its marginal completeness ``p_corr,i``
(``p_corr(log_age_i)`` for the age function, ``p_corr(log_mass_i)`` for the mass
function; see :mod:`jaxcomp.demographics.marginalise`).  In every bin,

* ``N_corr = N_raw / mean_i(p_corr,i)`` (eq. 17),
* ``N_lo = N_raw / p84`` and ``N_hi = N_raw / p16`` with ``p16``, ``p84`` the
  16th and 84th percentiles of the ``p_corr,i`` in the bin (eq. 18: a rough
  band from the spread of corrections, not a formal error).

With an ensemble selection function (``p_corr_members``: each member's marginal
completeness per cluster), every member gives its own correction
``N_corr,m = N_raw / mean_i(p_corr,i,m)``; their standard deviation over members
(``n_corr_sel_err``) is the selection's uncertainty of the correction, reported next
to the Poisson error and the paper's p16-p84 envelope, and combined with the
Poisson error in quadrature (``n_corr_total_err``; independent sources).  Compute
the members' completeness with
:func:`~jaxcomp.demographics.selection_uncertainty.over_members`, e.g.
``over_members(p_corr_log_age, member_grid, mass, av)``.

The per-object values are clipped from below first: at 1e-10 for the age
function, whose bins with mean completeness < 1e-3 are then masked, and at
1e-3 for the mass function (the paper's choices, the defaults of
:func:`corrected_age_function` and :func:`corrected_mass_function`).

This estimator is the paper's.  It is unbiased for narrow bins when the assumed
population distributions are right; within a wide bin where completeness
varies it is biased low (the observed clusters over-represent the more
complete part of the bin).  The principled alternative is the
selection-normalised likelihood (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import astropy.units as u
import numpy as np
from astropy.table import MaskedColumn, Table

__all__ = [
    "corrected_counts",
    "corrected_age_function",
    "corrected_mass_function",
    "plot_corrected_distribution",
    "AGE_CLIP",
    "AGE_MIN_MEAN",
    "MASS_CLIP",
]

#: Lower clip of per-object p_corr for the age function (Tang+2026).
AGE_CLIP = 1e-10
#: Bins of the age function with mean p_corr below this are masked (Tang+2026).
AGE_MIN_MEAN = 1e-3
#: Lower clip of per-object p_corr for the mass function (Tang+2026).
MASS_CLIP = 1e-3

_UNITS = {"log_age": u.dex(u.yr), "log_mass": u.dex(u.solMass), "av": u.mag}
_LABELS = {
    "log_age": r"$\log_{10}(T/\mathrm{yr})$",
    "log_mass": r"$\log_{10}(M/\mathrm{M}_\odot)$",
}


def _as_values(values, name: str) -> np.ndarray:
    column = getattr(values, "value", values)
    if np.ma.isMaskedArray(column):
        column = np.ma.filled(column.astype(np.float64), np.nan)
    array = np.asarray(column, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def corrected_counts(
    values,
    p_corr,
    bins,
    *,
    quantity: Literal["log_age", "log_mass"] = "log_age",
    clip: float = AGE_CLIP,
    min_mean: float | None = AGE_MIN_MEAN,
    p_corr_members=None,
) -> Table:
    """Raw and completeness-corrected histogram of one quantity (eq. 17-18).

    Parameters
    ----------
    values : array, shape (n,)
        The quantity per observed cluster, e.g. log_age [log10 yr] or log_mass
        [log10 Msun].  Masked or non-finite entries are dropped.
    p_corr : array of shape (n,) or callable
        Per-cluster marginal completeness ``p_corr,i`` in [0, 1], or a function
        returning it for ``values`` (e.g. ``lambda x: interpolate_marginal(grid.log_age, p, x)``).
    bins : array, shape (n_bins + 1,)
        Strictly increasing bin edges in the unit of ``values``.  Clusters
        outside the edges are not counted.
    quantity : str
        Name of the quantity (``"log_age"`` or ``"log_mass"``): names the bin
        columns and sets their unit.
    clip : float
        Lower clip applied to each ``p_corr,i`` before averaging.
    min_mean : float or None
        Mask bins whose mean clipped completeness is below this (``None``: no masking).
    p_corr_members : array of shape (n_members, n) or callable, optional
        The marginal completeness of every member of an ensemble selection function
        (a callable returns it for ``values``); adds the selection's uncertainty of the
        correction (``n_corr_sel_err``, ``n_corr_total_err`` and their ``dn_`` forms).
        ``p_corr`` stays the completeness the correction uses (normally the ensemble
        mean, i.e. the mean over members).

    Returns
    -------
    astropy.table.Table
        One row per bin: ``{quantity}_lo``, ``{quantity}_hi``, ``{quantity}_centre``
        (bin edges and centre), ``width`` [dex or mag], ``n_raw`` (observed
        count), ``n_raw_err`` (sqrt(n_raw)), ``p_mean``, ``p16``, ``p84`` (of the
        clipped p_corr,i in the bin; NaN in empty bins), ``correction``
        (1 / p_mean), ``n_corr``, ``n_corr_lo``, ``n_corr_hi``, ``n_corr_err``
        (sqrt(n_raw) / p_mean, the Poisson error of the raw count propagated),
        ``dn_raw``, ``dn_corr``, ``dn_corr_lo``, ``dn_corr_hi``, ``dn_corr_err``
        (the same per unit of the quantity, i.e. dN/dlogT or dN/dlogM [per dex]),
        and ``masked`` (bins below ``min_mean``; their corrected columns are masked).
        With ``p_corr_members`` also ``n_corr_sel_err`` (standard deviation over
        members, ddof 1, of ``N_raw / p_mean,m``), ``n_corr_total_err``
        (``sqrt(n_corr_err² + n_corr_sel_err²)``) and ``dn_corr_sel_err``,
        ``dn_corr_total_err``.
        Empty bins have ``n_corr = 0``.  ``meta`` records the options.
    """
    x = _as_values(values, "values")
    if callable(p_corr):
        p = np.asarray(p_corr(np.where(np.isfinite(x), x, 0.0)), dtype=np.float64)
    else:
        p = _as_values(p_corr, "p_corr")
    if p.shape != x.shape:
        raise ValueError(f"p_corr has shape {p.shape} but values has shape {x.shape}")
    bins = np.asarray(bins, dtype=np.float64)
    if bins.ndim != 1 or bins.shape[0] < 2 or np.any(np.diff(bins) <= 0):
        raise ValueError("bins must be a strictly increasing 1-d array with at least 2 edges")
    if not 0.0 < clip < 1.0:
        raise ValueError(f"clip must be in (0, 1), got {clip}")
    keep = np.isfinite(x)
    bad = keep & ~(np.isfinite(p) & (p >= 0) & (p <= 1))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} p_corr value(s) are NaN or outside [0, 1]")
    members = None
    if p_corr_members is not None:
        if callable(p_corr_members):
            members = np.asarray(p_corr_members(np.where(np.isfinite(x), x, 0.0)), np.float64)
        else:
            members = np.asarray(p_corr_members, np.float64)
        if members.ndim != 2 or members.shape[1] != x.shape[0] or members.shape[0] < 2:
            raise ValueError(
                f"p_corr_members must have shape (n_members >= 2, {x.shape[0]}), got "
                f"{members.shape}"
            )
        bad_members = keep & ~np.all(np.isfinite(members) & (members >= 0) & (members <= 1), axis=0)
        if bad_members.any():
            raise ValueError(
                f"{int(bad_members.sum())} cluster(s) have member p_corr NaN or outside [0, 1]"
            )
        members = np.clip(members[:, keep], clip, 1.0)
    x, p = x[keep], np.clip(p[keep], clip, 1.0)
    inside = (x >= bins[0]) & (x <= bins[-1])
    x, p = x[inside], p[inside]
    if members is not None:
        members = members[:, inside]
    index = np.clip(np.searchsorted(bins, x, side="right") - 1, 0, bins.shape[0] - 2)
    n_bins = bins.shape[0] - 1
    n_raw = np.bincount(index, minlength=n_bins)
    p_mean = np.full(n_bins, np.nan)
    p16 = np.full(n_bins, np.nan)
    p84 = np.full(n_bins, np.nan)
    for b in np.nonzero(n_raw)[0]:
        in_bin = p[index == b]
        p_mean[b] = in_bin.mean()
        p16[b], p84[b] = np.percentile(in_bin, [16.0, 84.0])
    occupied = n_raw > 0
    masked = occupied & (p_mean < min_mean) if min_mean is not None else np.zeros(n_bins, bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_corr = np.where(occupied, n_raw / p_mean, 0.0)
        n_lo = np.where(occupied, n_raw / p84, 0.0)
        n_hi = np.where(occupied, n_raw / p16, 0.0)
        n_err = np.where(occupied, np.sqrt(n_raw) / p_mean, 0.0)
    width = np.diff(bins)
    unit = _UNITS.get(quantity)
    table = Table()
    table[f"{quantity}_lo"] = MaskedColumn(bins[:-1], unit=unit, description="lower bin edge")
    table[f"{quantity}_hi"] = MaskedColumn(bins[1:], unit=unit, description="upper bin edge")
    table[f"{quantity}_centre"] = MaskedColumn(
        0.5 * (bins[1:] + bins[:-1]), unit=unit, description="bin centre"
    )
    table["width"] = MaskedColumn(width, description=f"bin width in {quantity} (dex or mag)")
    table["n_raw"] = MaskedColumn(n_raw, description="observed clusters in the bin")
    table["n_raw_err"] = MaskedColumn(np.sqrt(n_raw), description="Poisson error sqrt(n_raw)")
    for name, data, desc in (
        ("p_mean", p_mean, "mean clipped p_corr of the bin's clusters (eq. 17)"),
        ("p16", p16, "16th percentile of the bin's clipped p_corr"),
        ("p84", p84, "84th percentile of the bin's clipped p_corr"),
    ):
        table[name] = MaskedColumn(data, mask=~occupied, description=desc, fill_value=np.nan)
    corrected = {
        "correction": (np.where(occupied, 1.0 / p_mean, np.nan), "correction factor 1 / p_mean"),
        "n_corr": (n_corr, "completeness-corrected count N_raw / p_mean (eq. 17)"),
        "n_corr_lo": (n_lo, "N_raw / p84 (eq. 18)"),
        "n_corr_hi": (n_hi, "N_raw / p16 (eq. 18)"),
        "n_corr_err": (n_err, "sqrt(N_raw) / p_mean: Poisson error of the raw count, propagated"),
    }
    for name, (data, desc) in corrected.items():
        table[name] = MaskedColumn(data, mask=masked, description=desc, fill_value=np.nan)
    table["dn_raw"] = MaskedColumn(
        n_raw / width, description=f"dN/d{quantity} of the raw counts [per unit]"
    )
    for name in ("n_corr", "n_corr_lo", "n_corr_hi", "n_corr_err"):
        table["d" + name] = MaskedColumn(
            corrected[name][0] / width,
            mask=masked,
            fill_value=np.nan,
            description=f"{name} per unit {quantity} (dN/d{quantity})",
        )
    if members is not None:
        member_mean = np.full((members.shape[0], n_bins), np.nan)
        for b in np.nonzero(n_raw)[0]:
            member_mean[:, b] = members[:, index == b].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sel_err = np.where(occupied, np.std(n_raw / member_mean, axis=0, ddof=1), 0.0)
        total_err = np.hypot(n_err, sel_err)
        for name, data, desc in (
            (
                "n_corr_sel_err",
                sel_err,
                "standard deviation over selection members of N_raw / p_mean,m",
            ),
            (
                "n_corr_total_err",
                total_err,
                "sqrt(n_corr_err^2 + n_corr_sel_err^2): Poisson and selection",
            ),
        ):
            table[name] = MaskedColumn(data, mask=masked, description=desc, fill_value=np.nan)
            table["d" + name] = MaskedColumn(
                data / width,
                mask=masked,
                fill_value=np.nan,
                description=f"{name} per unit {quantity} (dN/d{quantity})",
            )
    table["masked"] = MaskedColumn(
        masked, description=f"mean p_corr below {min_mean}: no correction"
    )
    table.meta.update(
        {
            "quantity": quantity,
            "clip": float(clip),
            "min_mean": None if min_mean is None else float(min_mean),
            "n_clusters": int(x.shape[0]),
            "n_clipped": int(np.sum(p <= clip)),
            "n_selection_members": None if members is None else int(members.shape[0]),
            "estimator": "N_corr = N_raw / mean(p_corr,i); band N_raw/p84 .. N_raw/p16 "
            "(Tang+2026 eq. 17-18)",
        }
    )
    return table


def corrected_age_function(
    log_age,
    p_corr,
    bins,
    *,
    clip: float = AGE_CLIP,
    min_mean: float | None = AGE_MIN_MEAN,
    p_corr_members=None,
) -> Table:
    """Completeness-corrected cluster age function dN/dlog_age (CAF).

    :func:`corrected_counts` with the paper's age settings: ``p_corr,i =
    p_corr(log_age_i)`` clipped at 1e-10, bins with mean < 1e-3 masked.

    Parameters
    ----------
    log_age : array
        log10 age [yr] of each observed cluster.
    p_corr : array or callable
        Marginal completeness per cluster (marginalised over an assumed mass
        function and p(A_V)), or a function of log_age.
    bins : array
        Bin edges in log10 age [yr].
    p_corr_members : array (n_members, n) or callable, optional
        Each selection member's completeness: adds the selection's error bars
        (see :func:`corrected_counts`).
    """
    return corrected_counts(
        log_age,
        p_corr,
        bins,
        quantity="log_age",
        clip=clip,
        min_mean=min_mean,
        p_corr_members=p_corr_members,
    )


def corrected_mass_function(
    log_mass,
    p_corr,
    bins,
    *,
    clip: float = MASS_CLIP,
    min_mean: float | None = None,
    p_corr_members=None,
) -> Table:
    """Completeness-corrected cluster mass function dN/dlog_mass (CMF).

    :func:`corrected_counts` with the paper's mass settings: ``p_corr,i =
    p_corr(log_mass_i)`` clipped at 1e-3, no masking.

    Parameters
    ----------
    log_mass : array
        log10 mass [Msun] of each observed cluster.
    p_corr : array or callable
        Marginal completeness per cluster (marginalised over an assumed age
        distribution and p(A_V)), or a function of log_mass.
    bins : array
        Bin edges in log10 mass [Msun].
    p_corr_members : array (n_members, n) or callable, optional
        Each selection member's completeness: adds the selection's error bars
        (see :func:`corrected_counts`).
    """
    return corrected_counts(
        log_mass,
        p_corr,
        bins,
        quantity="log_mass",
        clip=clip,
        min_mean=min_mean,
        p_corr_members=p_corr_members,
    )


def _unmasked(column) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)


def plot_corrected_distribution(
    corrected: Table | Mapping[str, Table],
    *,
    ax=None,
    colors: Sequence[str] | None = None,
    show_raw: bool = True,
    shade: tuple[float, float] | None = None,
    shade_label: str | None = None,
    band_alpha: float = 0.25,
    title: str | None = None,
) -> object:
    """Plot raw and corrected dN/dlog_age or dN/dlog_mass on log-log axes, with the p16-p84 band.

    Parameters
    ----------
    corrected : Table or mapping of label -> Table
        Output(s) of :func:`corrected_counts` sharing the same bins and raw
        counts (e.g. one per assumed population model).  The raw histogram is
        taken from the first table.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into (a new figure otherwise).
    colors : sequence of str, optional
        One colour per corrected table.
    show_raw : bool
        Draw the raw histogram (black).
    shade : (float, float), optional
        Range of the quantity to shade grey (e.g. the traditional limits:
        log_age > 8.3 or log_mass < log10 5000).
    shade_label : str, optional
        Legend label of the shaded range.
    band_alpha : float
        Opacity of the p16-p84 bands.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        The axes (x: the log quantity, y: dN per dex on a log scale).
    """
    import matplotlib.pyplot as plt

    tables = {"corrected": corrected} if isinstance(corrected, Table) else dict(corrected)
    if not tables:
        raise ValueError("nothing to plot")
    first = next(iter(tables.values()))
    quantity = first.meta.get("quantity", "log_age")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 4.5))
    colors = (
        list(colors)
        if colors is not None
        else ["tab:orange", "tab:green", "tab:blue", "tab:red", "tab:purple"]
    )
    edges = np.append(_unmasked(first[f"{quantity}_lo"]), _unmasked(first[f"{quantity}_hi"])[-1])
    centre = _unmasked(first[f"{quantity}_centre"])
    if shade is not None:
        ax.axvspan(*shade, color="0.85", zorder=0, label=shade_label)
    if show_raw:
        raw = _unmasked(first["dn_raw"])
        ax.stairs(np.where(raw > 0, raw, np.nan), edges, color="k", lw=1.5, label="raw")
    for (label, table), color in zip(tables.items(), colors):
        dn = _unmasked(table["dn_corr"])
        lo = _unmasked(table["dn_corr_lo"])
        hi = _unmasked(table["dn_corr_hi"])
        good = np.isfinite(dn) & (dn > 0)
        ax.plot(centre[good], dn[good], "o-", color=color, ms=3.5, lw=1.5, label=label)
        ax.fill_between(
            centre,
            np.where(good, lo, np.nan),
            np.where(good, hi, np.nan),
            color=color,
            alpha=band_alpha,
            lw=0,
        )
        if (
            "dn_corr_sel_err" in table.colnames
        ):  # the selection's uncertainty next to the p16-p84 band
            ax.errorbar(
                centre[good],
                dn[good],
                yerr=_unmasked(table["dn_corr_sel_err"])[good],
                fmt="none",
                ecolor=color,
                elinewidth=1.0,
                capsize=2.5,
            )
    ax.set_yscale("log")
    ax.set_xlabel(_LABELS.get(quantity, quantity))
    ax.set_ylabel(
        rf"$\mathrm{{d}}N/\mathrm{{d}}\,${_LABELS.get(quantity, quantity)} [dex$^{{-1}}$]"
    )
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize="small")
    return ax
