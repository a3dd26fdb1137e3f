"""Synthetic cluster libraries for artificial cluster tests (C-4 paper, section 3.2.1).

:func:`generate_library` draws ``n`` clusters with

- ``log_mass`` uniform on [2, 8] (log10 Msun, initial stellar mass),
- age log-uniform on [1e5, 1.5e10] yr (``log_age`` uniform on [5, 10.176]),
- ``av`` uniform on [0, 3] mag,
- ``r_eff_pc`` from the ``"flat"`` model (1, 2, ..., 10 pc with equal weight) or the
  ``"K19"`` model (``log10 r_eff = 0.14 log10 M + N(0, 0.21)``, rounded to the nearest
  integer pc; values outside 1..10 pc are clipped to 1 or 10 pc by default, or redrawn),

and computes their stochastic HST photometry (apparent Vega magnitudes at the NGC 628
distance modulus, 29.98 mag) with :class:`~jaxcomp.library.synthesis.PopulationSynthesis`:
stellar light plus, by default (``nebular=True``), the nebular emission of each cluster's
own ionising photons for clusters younger than 10 Myr (covering fraction 0.5, the C-4
library's; :mod:`jaxcomp.library.nebular`).

Ages outside the isochrone grid
    The Padova 2007 isochrones start at 10^5.5 yr and end at 10^10.15 yr.  Clusters
    drawn younger than 10^5.5 yr (9.7% of a log-uniform library) are synthesised
    with the 10^5.5 yr isochrone - its stars are all on the zero-age main sequence in
    these models, so the photometry of a 10^5-10^5.5 yr cluster would hardly differ -
    and clusters older than the last isochrone with the last one (ages from 10^10.15 to
    10^10.18 yr, about 0.5%).  Their ``log_age`` column keeps the drawn age and the
    boolean column ``age_clamped`` flags them, so users can drop or keep them.

Randomness
    Everything follows from ``seed``: the cluster properties from one child of
    ``numpy.random.SeedSequence(seed)``, the stars of each block of ``chunk_size`` clusters
    from its own grandchild, so the table is identical whatever ``n_workers`` is.  The
    seed, the configuration and the stellar-data provenance are stored in the table's
    metadata (``DataFrame.attrs["jaxcomp_library"]``, and the Parquet schema metadata
    written by :func:`write_library`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .._version import __version__
from ..errors import InputError
from .bands import DEFAULT_BANDS
from .imf import IMF, IMF_KINDS
from .nebular import NebularEmission
from .photometry import ISOCHRONE_SETS, StarPhotometry
from .synthesis import NGC628_DISTANCE_MODULUS, PopulationSynthesis, SynthesisOptions

__all__ = ["LibraryConfig", "generate_library", "write_library", "read_library", "LIBRARY_COLUMNS", "RADIUS_MODELS"]

RADIUS_MODELS = ("flat", "K19")
METADATA_KEY = "jaxcomp_library"


def _columns(bands) -> tuple[str, ...]:
    return ("cluster_id", "log_mass", "log_age", "av", "r_eff_pc", *(f"mag_{b}" for b in bands), "age_clamped")


LIBRARY_COLUMNS = _columns(DEFAULT_BANDS)
COLUMN_UNITS = {
    "cluster_id": "",
    "log_mass": "log10(Msun), initial stellar mass",
    "log_age": "log10(yr)",
    "av": "mag (V-band extinction, Fitzpatrick 1999 R_V=3.1)",
    "r_eff_pc": "pc (effective radius)",
    "age_clamped": "bool (photometry uses the nearest isochrone age)",
}


@dataclass(frozen=True)
class LibraryConfig:
    """Configuration of a synthetic cluster library.

    Parameters
    ----------
    log_mass_range : tuple of float
        Range of log10(M / Msun), drawn uniformly (default (2, 8)).
    age_range_yr : tuple of float
        Range of age [yr], drawn log-uniformly (default (1e5, 1.5e10)).
    av_range : tuple of float
        Range of A_V [mag], drawn uniformly (default (0, 3)); must lie within [0, 3].
    radius_model : {"flat", "K19"}
        Effective-radius prescription (default "flat").
    k19_slope : float
        Slope of log10 r_eff on log10 M in the K19 model (default 0.14).
    k19_scatter_dex : float
        Gaussian scatter of log10 r_eff [dex] in the K19 model (default 0.21).
    k19_out_of_range : {"clip", "redraw"}
        K19 radii that round outside 1..10 pc are clipped (default) or redrawn.
    distance_modulus : float
        Distance modulus [mag] (default 29.98, NGC 628).
    isochrones : str
        Isochrone set (default "padova2007_z0.0190").
    imf_kind : str
        IMF ("chabrier2005" default, or "kroupa2001").
    imf_min_mass, imf_max_mass : float
        IMF limits [Msun] (default 0.08, 120).
    bands : tuple of str
        Bands (default the five LEGUS bands).
    stochastic : bool
        Stochastic IMF sampling (default) or fully sampled populations.
    nebular : bool
        Add nebular emission (H and He recombination lines, nebular continuum, metal lines)
        driven by each cluster's own ionising photons to clusters younger than
        ``nebular_max_age_yr`` (default True, as the C-4 SLUG library and the LEGUS fits;
        False gives stellar light only).  See :mod:`jaxcomp.library.nebular`.
    nebular_covering_fraction : float
        Fraction of the ionising photons turned into nebular light, in [0, 1] (default 0.5,
        the C-4 library's phi; SLUG's own default is 0.73).
    nebular_te_k : float
        Electron temperature [K] of the emissivities, 5000-25000 (default 1e4).
    nebular_ne_cm3 : float
        Electron density [cm^-3], 100-1e4 (default 100).
    nebular_av_factor : float
        Nebular over stellar A_V, in [1, 3] (default 1: the same screen; the C-4 library
        used 2.1).
    nebular_max_age_yr : float
        Clusters at least this old get no nebular light (default 1e7 yr, as SLUG).
    synthesis : SynthesisOptions
        Numerical settings of the synthesis.
    chunk_size : int
        Clusters per independently seeded block (default 10000).
    """

    log_mass_range: tuple[float, float] = (2.0, 8.0)
    age_range_yr: tuple[float, float] = (1e5, 1.5e10)
    av_range: tuple[float, float] = (0.0, 3.0)
    radius_model: Literal["flat", "K19"] = "flat"
    k19_slope: float = 0.14
    k19_scatter_dex: float = 0.21
    k19_out_of_range: Literal["clip", "redraw"] = "clip"
    distance_modulus: float = NGC628_DISTANCE_MODULUS
    isochrones: str = "padova2007_z0.0190"
    imf_kind: str = "chabrier2005"
    imf_min_mass: float = 0.08
    imf_max_mass: float = 120.0
    bands: tuple[str, ...] = DEFAULT_BANDS
    stochastic: bool = True
    nebular: bool = True
    nebular_covering_fraction: float = 0.5
    nebular_te_k: float = 1.0e4
    nebular_ne_cm3: float = 100.0
    nebular_av_factor: float = 1.0
    nebular_max_age_yr: float = 1.0e7
    synthesis: SynthesisOptions = field(default_factory=SynthesisOptions)
    chunk_size: int = 10_000

    def __post_init__(self) -> None:
        lo, hi = self.log_mass_range
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or hi > 12:
            raise ValueError(f"log_mass_range must be an increasing pair of finite log10(Msun) values <= 12, got {self.log_mass_range}")
        a0, a1 = self.age_range_yr
        if not (a0 > 0 and a1 > a0 and math.isfinite(a1)):
            raise ValueError(f"age_range_yr must be an increasing pair of positive ages in yr, got {self.age_range_yr}")
        v0, v1 = self.av_range
        if not (0.0 <= v0 <= v1 <= 3.0):
            raise ValueError(f"av_range must satisfy 0 <= min <= max <= 3 mag, got {self.av_range}")
        if self.radius_model not in RADIUS_MODELS:
            raise ValueError(f"radius_model must be one of {RADIUS_MODELS}, got {self.radius_model!r}")
        if self.k19_out_of_range not in ("clip", "redraw"):
            raise ValueError(f"k19_out_of_range must be 'clip' or 'redraw', got {self.k19_out_of_range!r}")
        if self.k19_scatter_dex < 0:
            raise ValueError(f"k19_scatter_dex must be >= 0, got {self.k19_scatter_dex}")
        if self.isochrones not in ISOCHRONE_SETS:
            raise ValueError(f"unknown isochrone set {self.isochrones!r}; choose one of {ISOCHRONE_SETS}")
        if self.imf_kind not in IMF_KINDS:
            raise ValueError(f"unknown IMF {self.imf_kind!r}; choose one of {IMF_KINDS}")
        IMF(self.imf_kind, self.imf_min_mass, self.imf_max_mass)  # validates the limits
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not isinstance(self.nebular, bool):
            raise InputError(f"nebular must be True or False, got {self.nebular!r}")
        self.nebular_emission()  # validates the nebular options (also when nebular=False)
        object.__setattr__(self, "bands", tuple(self.bands))

    def nebular_emission(self) -> NebularEmission:
        """The :class:`NebularEmission` of the ``nebular_*`` options (InputError naming a bad option)."""
        names = {
            "covering_fraction": "nebular_covering_fraction", "electron_temperature_k": "nebular_te_k",
            "electron_density_cm3": "nebular_ne_cm3", "av_factor": "nebular_av_factor",
            "max_age_yr": "nebular_max_age_yr",
        }
        try:
            return NebularEmission(
                covering_fraction=self.nebular_covering_fraction, electron_temperature_k=self.nebular_te_k,
                electron_density_cm3=self.nebular_ne_cm3, av_factor=self.nebular_av_factor,
                max_age_yr=self.nebular_max_age_yr,
            )
        except (InputError, TypeError) as error:
            message = str(error)
            for inner, outer in names.items():
                message = message.replace(f"nebular {inner}", outer)
            raise InputError(f"LibraryConfig: {message}") from error

    @property
    def imf(self) -> IMF:
        """The configured IMF."""
        return IMF(self.imf_kind, self.imf_min_mass, self.imf_max_mass)

    def build_model(self) -> PopulationSynthesis:
        """A :class:`PopulationSynthesis` for this configuration."""
        photometry = StarPhotometry.load(self.isochrones, bands=self.bands)
        nebular = self.nebular_emission() if self.nebular else None
        return PopulationSynthesis(photometry, self.imf, options=self.synthesis, nebular=nebular)

    def to_dict(self) -> dict:
        """JSON-serialisable representation."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _draw_radii(log_mass, config: LibraryConfig, gen: np.random.Generator) -> np.ndarray:
    n = log_mass.size
    if config.radius_model == "flat":
        return gen.integers(1, 11, size=n)
    radius = np.rint(10.0 ** (config.k19_slope * log_mass + gen.normal(0.0, config.k19_scatter_dex, n)))
    if config.k19_out_of_range == "clip":
        return np.clip(radius, 1, 10).astype(np.int64)
    bad = (radius < 1) | (radius > 10)
    for _ in range(10_000):
        if not bad.any():
            break
        radius[bad] = np.rint(10.0 ** (config.k19_slope * log_mass[bad] + gen.normal(0.0, config.k19_scatter_dex, bad.sum())))
        bad = (radius < 1) | (radius > 10)
    if bad.any():
        raise ValueError("K19 radii could not be redrawn into 1..10 pc; use k19_out_of_range='clip'")
    return radius.astype(np.int64)


_WORKER_MODEL: dict = {}


@contextlib.contextmanager
def _main_module_detached():
    """Start worker processes without re-running the parent's ``__main__``.

    With the ``spawn`` start method every new worker first re-imports the parent's main
    module, from its file (``__main__.__file__``) or by name (``__main__.__spec__``).
    That fails when the parent is a script piped through standard input
    (``__file__ == "<stdin>"``, no such file), and re-runs the whole script in every
    worker when it lacks an ``if __name__ == "__main__":`` guard.  The workers need
    nothing from the main module (the task function and the configuration live in
    jaxcomp and are imported by name), so the main module's file and spec are hidden
    while the pool starts its processes, exactly as for an interactive session.
    """
    main = sys.modules.get("__main__")
    saved = {}
    if main is not None:
        for name in ("__file__", "__spec__"):
            if name in vars(main):
                saved[name] = vars(main)[name]
        if "__file__" in saved:
            del main.__file__
        if "__spec__" in saved:
            main.__spec__ = None
    try:
        yield
    finally:
        if main is not None:
            for name, value in saved.items():
                setattr(main, name, value)


def _worker_init(config: LibraryConfig) -> None:
    # per-process cache of the synthesis tables inside pool workers only
    _WORKER_MODEL["model"] = config.build_model()


def _photometry_task(args):
    log_mass, log_age, av, seed_seq, config = args
    model = _WORKER_MODEL["model"]
    return _run_block(model, log_mass, log_age, av, seed_seq, config)


def _run_block(model, log_mass, log_age, av, seed_seq, config: LibraryConfig):
    return model.cluster_magnitudes(
        log_mass, log_age, av, rng=np.random.default_rng(seed_seq), distance_modulus=config.distance_modulus,
        stochastic=config.stochastic, age_out_of_range="clamp",
    )


def _check_picklable_config(config: LibraryConfig) -> None:
    """Workers import the configuration by name: it must be jaxcomp's own class."""
    for item in (config, config.synthesis):
        module = type(item).__module__
        if not module.startswith("jaxcomp."):
            raise TypeError(
                f"n_workers > 1 needs a jaxcomp {type(item).__name__} (workers import it by name), got one "
                f"defined in {module!r}; use n_workers=1 or the jaxcomp class"
            )


def generate_library(
    n: int,
    config: LibraryConfig | None = None,
    seed: int = 0,
    *,
    n_workers: int = 1,
    model: PopulationSynthesis | None = None,
    progress=None,
):
    """Generate a synthetic cluster library.

    Parameters
    ----------
    n : int
        Number of clusters (>= 1).
    config : LibraryConfig, optional
        Library configuration (default ``LibraryConfig()``).
    seed : int
        Master seed (>= 0); the table is a deterministic function of (n, config, seed).
    n_workers : int
        Processes for the photometry (default 1); the result does not depend on it.
        Workers are started with the ``spawn`` method without re-running the caller's
        ``__main__`` (so this works from scripts piped through standard input, notebooks
        and scripts without an ``if __name__ == "__main__":`` guard); each worker imports
        jaxcomp and builds the synthesis tables once (a few seconds).
    model : PopulationSynthesis, optional
        Prebuilt synthesis for ``config`` (used when ``n_workers == 1``).
    progress : callable, optional
        Called as ``progress(done_clusters, n)`` after each block.

    Returns
    -------
    pandas.DataFrame
        Columns ``cluster_id, log_mass, log_age, av, r_eff_pc, mag_<band>..., age_clamped``;
        ``attrs["jaxcomp_library"]`` holds the seed, configuration, units, versions and
        stellar-data provenance.
    """

    config = LibraryConfig() if config is None else config
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer number of clusters, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    n = int(n)
    properties_seq, stars_seq = np.random.SeedSequence(int(seed)).spawn(2)
    gen = np.random.default_rng(properties_seq)
    log_mass = gen.uniform(*config.log_mass_range, size=n)
    log_age = gen.uniform(math.log10(config.age_range_yr[0]), math.log10(config.age_range_yr[1]), size=n)
    av = gen.uniform(*config.av_range, size=n)
    r_eff = _draw_radii(log_mass, config, gen)
    return _synthesise(log_mass, log_age, av, r_eff, config, stars_seq, int(seed), n_workers=n_workers, model=model,
                       progress=progress)


def library_from_properties(log_mass, log_age, av, config: LibraryConfig | None = None, seed: int = 0, *,
                            r_eff_pc=None, n_workers: int = 1, model: PopulationSynthesis | None = None,
                            progress=None):
    """A library of clusters with given masses, ages and extinctions (e.g. drawn from a known population).

    The photometry is synthesised exactly as in :func:`generate_library` (stochastic
    IMF sampling per ``config``); the radii are drawn from ``config``'s radius
    prescription unless given.

    Parameters
    ----------
    log_mass, log_age, av : array, shape (n,)
        log10 mass [Msun], log10 age [yr], V-band extinction [mag]; finite, ``av >= 0``
        (ages outside the isochrone grid are clamped and flagged in ``age_clamped``).
    config : LibraryConfig, optional
        Bands, IMF, distance modulus and radius prescription (its ranges are not used).
    seed : int
        Seed of the star sampling (and of the radii, when drawn).
    r_eff_pc : array, shape (n,), optional
        Half-light radii [pc] (integers 1..10 for the standard AST design).

    Returns
    -------
    pandas.DataFrame
        As :func:`generate_library`.
    """
    config = LibraryConfig() if config is None else config
    arrays = [np.asarray(a, dtype=np.float64) for a in (log_mass, log_age, av)]
    if any(a.ndim != 1 for a in arrays) or len({a.shape for a in arrays}) != 1 or arrays[0].size == 0:
        raise ValueError("log_mass, log_age and av must be non-empty one-dimensional arrays of equal length")
    for name, a in zip(("log_mass", "log_age", "av"), arrays):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} has NaN or infinite values")
    if np.any(arrays[2] < 0):
        raise ValueError("av must be >= 0 mag")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    properties_seq, stars_seq = np.random.SeedSequence(int(seed)).spawn(2)
    if r_eff_pc is None:
        r_eff = _draw_radii(arrays[0], config, np.random.default_rng(properties_seq))
    else:
        r_eff = np.asarray(r_eff_pc)
        if r_eff.shape != arrays[0].shape or not np.all(np.isfinite(r_eff)) or np.any(r_eff <= 0):
            raise ValueError("r_eff_pc must be positive, finite and have the length of log_mass")
    return _synthesise(*arrays, r_eff, config, stars_seq, int(seed), n_workers=n_workers, model=model,
                       progress=progress)


def _synthesise(log_mass, log_age, av, r_eff, config: LibraryConfig, stars_seq, seed: int, *, n_workers: int,
                model, progress):
    import pandas as pd

    n = log_mass.shape[0]
    if model is None or n_workers > 1:
        model = config.build_model() if n_workers == 1 else None
    elif model.bands != config.bands:
        raise ValueError(f"model bands {model.bands} differ from config bands {config.bands}")
    elif (model.nebular if config.nebular else None) != (config.nebular_emission() if config.nebular else None):
        raise ValueError(
            f"the model's nebular emission ({model.nebular}) differs from the configuration's "
            f"(nebular={config.nebular}); build the model with config.build_model()"
        )
    # the parent only needs the isochrone ages and provenance when workers do the synthesis
    photometry = model.photometry if model is not None else StarPhotometry.load(config.isochrones, bands=config.bands)
    grid = photometry.isochrone_log_ages
    age_clamped = (log_age < grid[0]) | (log_age > grid[-1])

    nebular_table = model.nebular_table if model is not None else None
    blocks = [slice(a, min(a + config.chunk_size, n)) for a in range(0, n, config.chunk_size)]
    seeds = stars_seq.spawn(len(blocks))
    mags = np.empty((n, len(config.bands)))
    tasks = [(log_mass[b], log_age[b], av[b], s, config) for b, s in zip(blocks, seeds)]
    done = 0
    if n_workers == 1:
        for block, task in zip(blocks, tasks):
            mags[block] = _run_block(model, *task[:4], config)
            done += block.stop - block.start
            if progress is not None:
                progress(done, n)
    else:
        _check_picklable_config(config)
        context = mp.get_context("spawn")
        with _main_module_detached():
            pool = ProcessPoolExecutor(
                max_workers=min(n_workers, len(blocks)), mp_context=context, initializer=_worker_init, initargs=(config,)
            )
            futures = [pool.submit(_photometry_task, task) for task in tasks]  # all workers start here
        nebular_table = _nebular_table(config, photometry)  # for the metadata, while the workers run
        with pool:
            for block, future in zip(blocks, futures):
                mags[block] = future.result()
                done += block.stop - block.start
                if progress is not None:
                    progress(done, n)

    data = {
        "cluster_id": np.arange(n, dtype=np.int64),
        "log_mass": log_mass,
        "log_age": log_age,
        "av": av,
        "r_eff_pc": r_eff.astype(np.int64),
    }
    for i, band in enumerate(config.bands):
        data[f"mag_{band}"] = mags[:, i]
    data["age_clamped"] = age_clamped
    frame = pd.DataFrame(data, columns=list(_columns(config.bands)))
    provenance = photometry.provenance
    frame.attrs[METADATA_KEY] = {
        "seed": int(seed),
        "n_clusters": n,
        "config": config.to_dict(),
        "units": {**COLUMN_UNITS, **{f"mag_{b}": "apparent Vega mag (HST)" for b in config.bands}},
        "isochrone_log_age_range": [float(grid[0]), float(grid[-1])],
        "n_age_clamped": int(age_clamped.sum()),
        "stellar_data": {
            "isochrones": config.isochrones,
            "content_sha256": provenance.get("content_sha256"),
            "built_utc": provenance.get("created_utc"),
        },
        "nebular_emission": _nebular_metadata(config, nebular_table),
        "jaxcomp_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return frame


def _nebular_table(config: LibraryConfig, photometry: StarPhotometry):
    """The nebular band table of ``config`` (cached per process), or None without nebular light."""
    if not config.nebular:
        return None
    from .nebular import band_table_for

    return band_table_for(config.nebular_emission(), photometry)


def _nebular_metadata(config: LibraryConfig, table) -> dict | str:
    if not config.nebular:
        return "not included"
    from importlib.metadata import version

    out = {"included": True, **config.nebular_emission().to_dict(), "pyneb_version": version("pyneb")}
    if table is not None:
        out["abs_mag_per_1e50_ionising_photons_per_s"] = dict(zip(table.bands, map(float, table.magnitude)))
    return out


def write_library(frame, path: str | os.PathLike) -> Path:
    """Write a library table to Parquet atomically, with its metadata in the schema.

    Parameters
    ----------
    frame : pandas.DataFrame
        A table from :func:`generate_library`.
    path : str or PathLike
        Destination ``.parquet`` file; written to a temporary file beside it first and
        moved into place with ``os.replace``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix.lower() not in (".parquet", ".pq"):
        raise ValueError(f"library tables are written as Parquet; use a .parquet path, got {path.name!r}")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY.encode()] = json.dumps(frame.attrs.get(METADATA_KEY, {}), sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_library(path: str | os.PathLike):
    """Read a library written by :func:`write_library`; metadata goes to ``attrs["jaxcomp_library"]``."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame = table.to_pandas()
    raw = (table.schema.metadata or {}).get(METADATA_KEY.encode())
    frame.attrs[METADATA_KEY] = json.loads(raw) if raw else {}
    return frame
