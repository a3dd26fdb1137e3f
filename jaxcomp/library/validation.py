"""Validation of the cluster photometry against the LEGUS NGC 628 catalogue.

The LEGUS catalogues give, for every fitted cluster, a best-fit mass, age and E(B-V)
from deterministic (fully sampled) Yggdrasil SSPs (Kroupa IMF 0.1-100 Msun, Padova-AGB
tracks, Z = 0.02, nebular emission, Milky Way extinction, A_V = 3.1 E(B-V)) and the
observed Vega magnitudes those fits were made to.  :func:`legus_photometry_comparison`
predicts each cluster's five magnitudes from its catalogue (M, t, A_V) with jaxcomp's
synthesis (deterministic SSP mode, and stochastic draws) at the NGC 628 distance
modulus (29.98 mag), and :func:`summarise_comparison` reports, per band and age range,
the median offset ``predicted - observed`` and the robust scatter ``1.4826 x MAD``.

The catalogue's own best-fit model magnitudes
    The ``sed_resid_<band>`` columns are ``model - observed``: ``observed + residual +
    2.5 log10(M)`` is the same, to 1e-4 mag, for every cluster sharing a fitted age and
    E(B-V) (:func:`catalogue_model_consistency` measures this), whereas ``observed -
    residual`` scatters by 0.05-0.14 mag.  So ``fit_<band> = observed + residual`` is
    the Yggdrasil magnitude at the catalogue's (M, t, E(B-V)), and the offset of a
    prediction splits exactly into ``(predicted - fit) + (fit - observed)``: a
    model-to-model part and the catalogue's own fit residual.  Aperture corrections and
    the zero points of the data enter only the second part (the catalogue was fitted to
    these very magnitudes).

Clusters with A_V > 3 mag (6 of the 1017 class 1-3 clusters of NGC 628C) lie outside
the A_V range of jaxcomp's band-extinction tables and are excluded (``usable`` False);
a band where the cluster was not detected or lies outside the footprint is skipped for
that band only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .bands import DEFAULT_BANDS
from .imf import IMF
from .nebular import NebularEmission
from .photometry import MAX_AV, StarPhotometry
from .synthesis import NGC628_DISTANCE_MODULUS, PopulationSynthesis

__all__ = [
    "AGE_RANGES",
    "YOUNG_AGE_RANGES",
    "MAX_MEDIAN_OFFSET_MAG",
    "MAX_ROBUST_SCATTER_MAG",
    "like_for_like_model",
    "robust_offset",
    "legus_photometry_comparison",
    "summarise_comparison",
    "catalogue_model_consistency",
]

#: Age ranges of the report: (label, lower log10 age [yr] inclusive, upper exclusive).
AGE_RANGES: tuple[tuple[str, float, float], ...] = (
    ("all", -math.inf, math.inf),
    ("<10 Myr", -math.inf, 7.0),
    ("10-100 Myr", 7.0, 8.0),
    (">100 Myr", 8.0, math.inf),
)
#: Finer split of the young clusters (the catalogue's ages are 1, 2, 3, ..., 9 Myr).
YOUNG_AGE_RANGES: tuple[tuple[str, float, float], ...] = (
    ("1-2 Myr", -math.inf, 6.4),
    ("3-9 Myr", 6.4, 7.0),
)
#: Acceptance criteria of the issue: |median offset| and robust scatter [mag].
MAX_MEDIAN_OFFSET_MAG = 0.3
MAX_ROBUST_SCATTER_MAG = 0.3


def like_for_like_model(isochrones: str = "padova2007_z0.0190", *, nebular: bool = True,
                        covering_fraction: float = 0.5) -> PopulationSynthesis:
    """Synthesis matching the catalogue's fits as far as jaxcomp can.

    Padova 2007 Z = 0.019 isochrones (the closest to Padova-AGB Z = 0.02), the Kroupa
    (2001) IMF over 0.1-100 Msun and, by default, nebular emission with covering fraction
    0.5 and the stars' extinction (as the catalogue's Yggdrasil fits, Adamo et al. 2017);
    ``nebular=False`` gives the stellar light alone.
    """
    emission = NebularEmission(covering_fraction=covering_fraction) if nebular else None
    return PopulationSynthesis(StarPhotometry.load(isochrones), IMF("kroupa2001", 0.1, 100.0), nebular=emission)


def robust_offset(values) -> tuple[int, float, float]:
    """(number of finite values, median, 1.4826 x median absolute deviation) [mag]."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0, math.nan, math.nan
    median = float(np.median(values))
    return int(values.size), median, float(1.4826 * np.median(np.abs(values - median)))


def legus_photometry_comparison(
    catalogue: str = "ngc628c",
    *,
    model: PopulationSynthesis | None = None,
    bands: Sequence[str] = DEFAULT_BANDS,
    classes: Sequence[int] = (1, 2, 3),
    distance_modulus: float = NGC628_DISTANCE_MODULUS,
    stochastic_seed: int | None = 0,
    n_stochastic: int = 1,
):
    """Predict every catalogue cluster's magnitudes from its catalogue (M, t, A_V).

    Parameters
    ----------
    catalogue : str
        ``"ngc628c"`` (default) or ``"ngc628e"``, or the path of a LEGUS multiband table.
    model : PopulationSynthesis, optional
        Synthesis to use (default :func:`like_for_like_model`: Padova 2007, Kroupa
        0.1-100 Msun).  Its bands must include ``bands``.
    bands : sequence of str
        Bands to compare (default the five LEGUS bands).
    classes : sequence of int
        Visual classes kept (default 1-3).
    distance_modulus : float
        Distance modulus [mag] (default 29.98, as used by the catalogue).
    stochastic_seed : int or None
        Seed of the stochastic predictions; ``None`` skips them.
    n_stochastic : int
        Stochastic realisations per cluster; the first is ``stoch_<band>``, and with more
        than one their per-cluster median is ``stoch_median_<band>``.

    Returns
    -------
    pandas.DataFrame
        One row per catalogue cluster: ``id, log_mass, log_age, av, usable`` and per band
        ``obs_<band>`` (observed, NaN where not detected), ``fit_<band>`` (the
        catalogue's Yggdrasil model = observed + SED residual, NaN where that band was
        not fitted), ``det_<band>`` (jaxcomp deterministic SSP) and, if requested,
        ``stoch_<band>`` (one stochastic draw) and ``stoch_median_<band>``.
        ``attrs`` records the settings and the number of excluded clusters.
    """
    import pandas as pd

    from ..catalogues import read_legus

    table = read_legus(catalogue, classes=classes)
    model = like_for_like_model() if model is None else model
    missing = [b for b in bands if b not in model.bands]
    if missing:
        raise ValueError(f"the synthesis model lacks bands {missing}; it provides {model.bands}")
    band_index = [model.bands.index(b) for b in bands]

    log_mass = np.asarray(table["log_mass"].filled(np.nan), float)
    log_age = np.asarray(table["log_age"].filled(np.nan), float)
    av = np.asarray(table["av"].filled(np.nan), float)
    usable = np.isfinite(log_mass) & np.isfinite(log_age) & np.isfinite(av) & (av <= MAX_AV)
    data = {
        "id": np.asarray(table["id"]),
        "log_mass": log_mass,
        "log_age": log_age,
        "av": av,
        "usable": usable,
    }
    for band in bands:
        obs = np.asarray(table[f"mag_{band}"].filled(np.nan), float)
        resid = np.asarray(table[f"sed_resid_{band}"].filled(np.nan), float)
        data[f"obs_{band}"] = obs
        data[f"fit_{band}"] = obs + resid

    rows = np.flatnonzero(usable)
    det = np.full((log_age.size, len(bands)), np.nan)
    det[rows] = model.cluster_magnitudes(
        log_mass[rows], log_age[rows], av[rows], rng=0, stochastic=False, distance_modulus=distance_modulus
    )[:, band_index]
    for i, band in enumerate(bands):
        data[f"det_{band}"] = det[:, i]
    if stochastic_seed is not None:
        if n_stochastic < 1:
            raise ValueError(f"n_stochastic must be >= 1, got {n_stochastic}")
        gen = np.random.default_rng(stochastic_seed)
        draws = np.full((n_stochastic, log_age.size, len(bands)), np.nan)
        for k in range(n_stochastic):
            draws[k, rows] = model.cluster_magnitudes(
                log_mass[rows], log_age[rows], av[rows], rng=gen, stochastic=True, distance_modulus=distance_modulus
            )[:, band_index]
        for i, band in enumerate(bands):
            data[f"stoch_{band}"] = draws[0, :, i]
            if n_stochastic > 1:
                data[f"stoch_median_{band}"] = np.median(draws[:, :, i], axis=0)
    frame = pd.DataFrame(data)
    frame.attrs["legus_comparison"] = {
        "catalogue": str(catalogue),
        "classes": [int(c) for c in classes],
        "bands": list(bands),
        "distance_modulus": float(distance_modulus),
        "isochrones": model.photometry.name,
        "imf": {"kind": model.imf.kind, "min_mass": model.imf.min_mass, "max_mass": model.imf.max_mass},
        "n_clusters": int(log_age.size),
        "n_excluded_av_above_3": int(np.sum(np.isfinite(av) & (av > MAX_AV))),
        "stochastic_seed": stochastic_seed,
        "n_stochastic": int(n_stochastic) if stochastic_seed is not None else 0,
        "nebular_emission": (model.nebular.to_dict() if model.nebular is not None else "not included")
        if hasattr(model, "nebular") else "not included",
    }
    return frame


def summarise_comparison(
    frame,
    *,
    predictions: Sequence[str] = ("det",),
    reference: str = "obs",
    age_ranges: Sequence[tuple[str, float, float]] = AGE_RANGES,
    bands: Sequence[str] | None = None,
):
    """Median offset and robust scatter of ``prediction - reference`` per band and age range.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`legus_photometry_comparison`.
    predictions : sequence of str
        Column prefixes to evaluate: ``"det"``, ``"stoch"``, ``"stoch_median"``, ``"fit"``.
    reference : str
        Column prefix of the reference (``"obs"`` default, or ``"fit"``).
    age_ranges : sequence of (label, lo, hi)
        log10 age ranges, lower bound inclusive (default :data:`AGE_RANGES`).
    bands : sequence of str, optional
        Default: the bands of the comparison.

    Returns
    -------
    pandas.DataFrame
        Columns ``prediction, band, age_range, n, median_offset_mag, robust_scatter_mag,
        passes`` (``passes``: |median| < 0.3 and scatter < 0.3 mag).
    """
    import pandas as pd

    bands = list(frame.attrs.get("legus_comparison", {}).get("bands", DEFAULT_BANDS)) if bands is None else list(bands)
    records = []
    usable = frame["usable"].to_numpy()
    log_age = frame["log_age"].to_numpy()
    for prediction in predictions:
        for band in bands:
            column = f"{prediction}_{band}"
            if column not in frame:
                raise ValueError(f"no column {column!r} in the comparison table")
            diff = frame[column].to_numpy() - frame[f"{reference}_{band}"].to_numpy()
            for label, lo, hi in age_ranges:
                select = usable & (log_age >= lo) & (log_age < hi)
                n, median, scatter = robust_offset(diff[select])
                records.append({
                    "prediction": prediction,
                    "band": band,
                    "age_range": label,
                    "n": n,
                    "median_offset_mag": median,
                    "robust_scatter_mag": scatter,
                    "passes": bool(n > 0 and abs(median) < MAX_MEDIAN_OFFSET_MAG and scatter < MAX_ROBUST_SCATTER_MAG),
                })
    return pd.DataFrame.from_records(records)


def catalogue_model_consistency(frame, bands: Sequence[str] | None = None, min_group: int = 3) -> dict:
    """How well ``observed +/- residual + 2.5 log10 M`` is constant at fixed (age, A_V).

    Returns, per band, the median over (age, A_V) groups of at least ``min_group``
    clusters of the standard deviation of ``obs + resid + 2.5 log M`` (``"plus"``) and
    of ``obs - resid + 2.5 log M`` (``"minus"``).  Per-unit-mass model magnitudes are
    constant within a group, so the sign with a near-zero spread is the right one.
    """
    bands = list(frame.attrs.get("legus_comparison", {}).get("bands", DEFAULT_BANDS)) if bands is None else list(bands)
    key = np.round(frame["log_age"].to_numpy(), 4) * 1000 + np.round(frame["av"].to_numpy(), 4)
    out = {}
    for band in bands:
        obs = frame[f"obs_{band}"].to_numpy()
        resid = frame[f"fit_{band}"].to_numpy() - obs
        spreads = {"plus": [], "minus": []}
        for value in np.unique(key[np.isfinite(key)]):
            for sign, name in ((1.0, "plus"), (-1.0, "minus")):
                per_mass = obs + sign * resid + 2.5 * frame["log_mass"].to_numpy()
                group = per_mass[(key == value) & np.isfinite(per_mass)]
                if group.size >= min_group:
                    spreads[name].append(float(np.std(group)))
        out[band] = {name: (float(np.median(v)) if v else math.nan) for name, v in spreads.items()}
    return out
