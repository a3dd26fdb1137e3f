"""The ``library`` stage: the cluster library of the campaigns, and the library settings the
other stages share (:func:`_library_config`, :func:`_library_provenance`)."""

from __future__ import annotations

import numpy as np

from .config import RunConfig
from .stage_context import StageContext

__all__ = ["run_library"]


def _library_config(config: RunConfig, **overrides):
    from ..library import LibraryConfig

    lib = config.library
    kwargs = dict(
        log_mass_range=tuple(lib.log_mass_range),
        age_range_yr=(10.0 ** lib.log_age_range[0], 10.0 ** lib.log_age_range[1]),
        av_range=tuple(lib.av_range),
        radius_model=lib.radius_model,
        bands=tuple(lib.bands),
        nebular=lib.nebular,
        nebular_covering_fraction=lib.nebular_covering_fraction,
        nebular_te_k=lib.nebular_te_k,
        nebular_ne_cm3=lib.nebular_ne_cm3,
        nebular_av_factor=lib.nebular_av_factor,
    )
    kwargs.update(overrides)
    return LibraryConfig(**kwargs)


def _library_provenance(config: RunConfig) -> dict:
    """The library settings a network's labels were made with (recorded in the artefact header)."""
    lib = _library_config(config)
    keys = (
        "isochrones",
        "imf_kind",
        "imf_min_mass",
        "imf_max_mass",
        "stochastic",
        "nebular",
        "nebular_covering_fraction",
        "nebular_te_k",
        "nebular_ne_cm3",
        "nebular_av_factor",
        "nebular_max_age_yr",
    )
    return {k: getattr(lib, k) for k in keys}


def _tqdm_callback(enabled: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="cluster", disable=not enabled, smoothing=0.1)

    def update(done, n):
        bar.update(done - bar.n)
        if done >= n:
            bar.close()

    return update


def run_library(ctx: StageContext) -> dict:
    from ..library import generate_library, write_library

    n = ctx.config.library.n_clusters
    library = generate_library(
        n,
        _library_config(ctx.config),
        seed=ctx.seed,
        n_workers=ctx.workers,
        progress=_tqdm_callback(ctx.progress, n, "library"),
    )
    if ctx.config.library.radius_model == "flat":
        # flat over the campaign's radii (the photometry does not depend on the radius)
        rng = np.random.default_rng(np.random.SeedSequence(ctx.seed, spawn_key=(7,)))
        library["r_eff_pc"] = rng.choice(np.asarray(ctx.config.campaign.r_eff_pc), size=n).astype(
            np.int64
        )
    write_library(library, ctx.directory / "library.parquet")
    counts = library["r_eff_pc"].value_counts().sort_index()
    return {
        "description": (
            f"{n} clusters with log M uniform on {list(ctx.config.library.log_mass_range)}, log T "
            f"uniform on {list(ctx.config.library.log_age_range)}, A_V uniform on "
            f"{list(ctx.config.library.av_range)} mag, radii '{ctx.config.library.radius_model}'"
            + (
                f" over {list(ctx.config.campaign.r_eff_pc)} pc"
                if ctx.config.library.radius_model == "flat"
                else ""
            )
            + "; "
            "stars drawn from the Chabrier (2005) IMF, Padova isochrones, Milky Way extinction, "
            "distance modulus 29.98."
        ),
        "metrics": {
            "n_clusters": n,
            "clusters_per_radius": {f"{int(r)} pc": int(c) for r, c in counts.items()},
            "age_clamped": int(library["age_clamped"].sum()),
        },
        "outputs": {"library": "library.parquet"},
    }


def _read_library(ctx: StageContext):
    from ..library import read_library

    return read_library(ctx.stage_dir("library") / "library.parquet")
