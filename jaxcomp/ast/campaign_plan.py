"""Checking a campaign's inputs and planning its frames.

:func:`validate_library` checks a cluster library, :func:`check_field_capacity` that the
field can hold a frame's clusters at the minimum spacing, and :func:`plan_campaign`
decides which library rows go to which frame (deterministic in the seed; see
:mod:`jaxcomp.ast.campaign`).
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from ..survey import BANDS
from .campaign_config import REQUIRED_LIBRARY_COLUMNS, CampaignConfig, CampaignError, FrameSpec
from .field import Field
from .inject import MIN_SPACING_REFF

__all__ = [
    "validate_library",
    "check_field_capacity",
    "plan_campaign",
]

#: Random sequential adsorption of discs jams at this covered fraction of the plane.
RSA_JAMMING_FRACTION: float = 0.547


def _as_dataframe(library):
    import pandas as pd
    from astropy.table import Table

    if isinstance(library, pd.DataFrame):
        return library.reset_index(drop=True)
    if isinstance(library, Table):
        return library.to_pandas().reset_index(drop=True)
    if isinstance(library, (str, os.PathLike)):
        from .._io import read_table

        return read_table(library).to_pandas().reset_index(drop=True)
    try:
        return pd.DataFrame(library)
    except Exception as error:  # noqa: BLE001
        raise CampaignError(
            f"library must be a table (pandas, astropy, path), got {type(library).__name__}"
        ) from error


def validate_library(library, config: CampaignConfig | None = None):
    """Check a library table for a campaign; return it as a pandas DataFrame.

    Needs ``cluster_id`` (unique integers) and ``mag_<band>`` for the five bands
    (numbers; NaN means no light in that band), and ``r_eff_pc`` when
    ``config.match_library_reff``. Raises :class:`CampaignError` naming what is wrong.
    """
    df = _as_dataframe(library)
    config = CampaignConfig() if config is None else config
    need = list(REQUIRED_LIBRARY_COLUMNS) + (["r_eff_pc"] if config.match_library_reff else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        hint = (
            " (or set match_library_reff=False to give every cluster the frame's radius)"
            if missing == ["r_eff_pc"]
            else ""
        )
        raise CampaignError(f"the library lacks column(s) {missing}; a campaign needs {need}{hint}")
    if len(df) == 0:
        raise CampaignError("the library is empty")
    ids = df["cluster_id"].to_numpy()
    if not np.issubdtype(ids.dtype, np.integer):
        raise CampaignError(f"cluster_id must be integers, got dtype {ids.dtype}")
    if len(np.unique(ids)) != len(ids):
        raise CampaignError("cluster_id has duplicates; each library cluster needs a unique id")
    for c in need[1:]:
        if not np.issubdtype(df[c].to_numpy().dtype, np.number):
            raise CampaignError(f"library column {c!r} must be numeric, got dtype {df[c].dtype}")
    for band in BANDS:
        _check_magnitudes(f"mag_{band}", df[f"mag_{band}"].to_numpy(dtype=np.float64))
    return df


#: Apparent Vega magnitudes of library clusters lie inside this range (a 1e8 Msun cluster in
#: the LMC is ~4 mag, a 100 Msun one at 30 Mpc ~38 mag): a column with more than
#: ``1 - PLAUSIBLE_FRACTION`` of its values outside it holds something else (fluxes or count
#: rates, spread over decades; absolute magnitudes; sentinels).
PLAUSIBLE_MAGNITUDES: tuple[float, float] = (5.0, 45.0)
PLAUSIBLE_FRACTION: float = 0.9


def _check_magnitudes(column: str, values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise CampaignError(
            f"library column {column!r} has no finite magnitude (all NaN or infinite): every "
            "injected cluster would be invisible; regenerate or fix the library"
        )
    low, high = PLAUSIBLE_MAGNITUDES
    outside = int(np.count_nonzero((finite < low) | (finite > high)))
    if outside > (1.0 - PLAUSIBLE_FRACTION) * finite.size:
        raise CampaignError(
            f"library column {column!r} does not look like apparent Vega magnitudes: {outside} of "
            f"{finite.size} "
            f"values lie outside {low:g} to {high:g} mag (median {np.median(finite):.4g}); fluxes "
            "or count rates "
            "must be converted first (mag = zeropoint - 2.5 log10(flux))"
        )


def check_field_capacity(field: Field, config: CampaignConfig) -> None:
    """Raise :class:`CampaignError` if the field cannot hold a frame at the minimum spacing.

    The clusters of a frame are drawn one by one and rejected if closer than
    3 r_eff to one already placed (random sequential adsorption); that process jams
    when discs of diameter 3 r_eff cover ~54.7% of the area, so a frame of ``n``
    clusters needs ``n pi (3 r_eff)^2 / 4 <= 0.547 x footprint``.
    """
    area = int(np.count_nonzero(field.footprint))
    r_max = max(config.r_eff_pc)
    sep = MIN_SPACING_REFF * float(field.r_eff_px(r_max))
    n_max = RSA_JAMMING_FRACTION * area / (math.pi * sep * sep / 4.0)
    if config.clusters_per_frame > n_max:
        raise CampaignError(
            f"the field is too small for {config.clusters_per_frame} clusters per frame at r_eff = "
            f"{r_max:g} pc: "
            f"they must be {sep:.1f} px apart (3 r_eff) and random placement fills at most "
            f"~{int(n_max)} in its "
            f"{area} px footprint; use fewer clusters per frame, smaller radii or a larger field"
        )


def plan_campaign(
    library, config: CampaignConfig, exclude: Sequence[int] | None = None
) -> list[FrameSpec]:
    """The frames of a campaign (deterministic in the library, config and ``exclude``)."""
    df = validate_library(library, config)
    ids = df["cluster_id"].to_numpy()
    usable = np.ones(len(df), bool)
    if exclude is not None:
        usable &= ~np.isin(
            ids, np.asarray(list(exclude) if not isinstance(exclude, np.ndarray) else exclude)
        )
    per_frame = config.clusters_per_frame
    need = per_frame * config.frames_per_reff if config.design == "train" else config.test_clusters
    frames: list[FrameSpec] = []
    if not config.match_library_reff:
        rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0,)))
        pool = rng.permutation(np.nonzero(usable)[0])
        total = need * len(config.r_eff_pc)
        if pool.size < total:
            raise CampaignError(
                f"the library has {pool.size} usable clusters but the campaign needs {total} "
                f"({len(config.r_eff_pc)} radii x {need}) without reuse"
            )
    for i, r in enumerate(config.r_eff_pc):
        if config.match_library_reff:
            radius = df["r_eff_pc"].to_numpy(dtype=np.float64)
            subset = np.nonzero(usable & np.isclose(radius, r, rtol=0, atol=1e-6))[0]
            rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0, i)))
            chosen = rng.permutation(subset)
            if chosen.size < need:
                what = (
                    "frames_per_reff x clusters_per_frame"
                    if config.design == "train"
                    else "test clusters"
                )
                raise CampaignError(
                    f"the library has {chosen.size} usable clusters with r_eff_pc = {r:g} but the "
                    f"{config.design} "
                    f"design needs {need} "
                    f"({what}) without reuse; generate a larger library or use fewer frames"
                )
        else:
            chosen = pool[i * need : (i + 1) * need]
        for j in range(config.frames_per_reff):
            if config.design == "train":
                parts = [chosen[j * per_frame : (j + 1) * per_frame]]
            else:
                parts = [chosen[c : min(c + per_frame, need)] for c in range(0, need, per_frame)]
            for rows in parts:
                frames.append(
                    FrameSpec(
                        frame=len(frames),
                        r_eff_pc=float(r),
                        repeat=j if config.design == "test" else 0,
                        rows=np.sort(rows),
                    )
                )
    return frames
