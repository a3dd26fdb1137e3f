"""Artificial cluster injection and one AST frame (paper section 3.2.2-3.2.3).

:func:`run_frame` is one frame of the artificial cluster tests: draw positions
(:func:`draw_positions`, probability proportional to the field's white light smoothed
with a Gaussian of sigma = 120 pc, at least 3 r_eff apart, inside the footprint),
render the clusters into every band with their own shot noise (:func:`inject`), rerun
the whole catalogue pipeline on the injected frame and match the injected positions to
the final catalogue, ignoring sources that existed there before injection. The
pre-injection products (white light, catalogue, position density, aperture
corrections) are computed once per field and configuration (:func:`prepare_field`)
and cached.

All randomness comes from ``numpy.random.default_rng(seed)``: the seed's
``SeedSequence`` is split into one stream for positions and one for the shot noise.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, replace
from typing import Literal, Mapping

import numpy as np
from astropy.table import Column, MaskedColumn, Table

from ..catalogues import BANDS
from .background import MeshStatistics
from .cuts import STAGES
from .field import Field
from .matching import match_injected
from .pipeline import StepTimer, run_pipeline
from .profiles import add_stamps, render_multiband
from .settings import DEFAULT_CONFIG, PipelineConfig

__all__ = [
    "POSITION_SMOOTHING_PC",
    "MIN_SPACING_REFF",
    "PositionDensity",
    "FieldBaseline",
    "position_density",
    "draw_positions",
    "inject",
    "noisy_stamps",
    "prepare_field",
    "clear_baseline_cache",
    "run_frame",
]

#: Smoothing scale of the white light for drawing positions [pc] (paper: 120 pc).
POSITION_SMOOTHING_PC: float = 120.0
#: Minimum spacing between injected clusters, in units of r_eff (paper: 3).
MIN_SPACING_REFF: float = 3.0
#: Above this share of the frame covered by windows, a ``reprocess="local"`` frame is run
#: in full: no faster, and the injections then move the frame-wide statistics that the
#: local mode freezes.
LOCAL_MAX_AREA_FRACTION: float = 0.5
#: Window margins [px] a ``reprocess="local"`` frame tries, wider each time a segment near
#: a cluster is cut by a window edge, before the frame is run in full.
LOCAL_MARGINS_PX: tuple[int, ...] = (40, 80, 160)
#: Hexagonal packing density of discs: no more than this fraction of the area can be covered.
_HEX_PACKING = math.pi / (2.0 * math.sqrt(3.0))


@dataclass(frozen=True, eq=False)
class PositionDensity:
    """Probability of each ``block x block`` pixel cell (smoothed white light x footprint)."""

    prob: np.ndarray  # (ny_cells, nx_cells), sums to one
    block: int
    shape: tuple[int, int]  # image shape
    sigma_px: float
    footprint_px: int


def position_density(
    white_light: np.ndarray, footprint: np.ndarray, sigma_px: float
) -> PositionDensity:
    """Position probability density: the white light smoothed by a Gaussian of ``sigma_px``.

    The white light (0 outside the footprint) is averaged in square cells of
    ``block = max(1, floor(sigma_px / 8))`` px and smoothed there with
    ``sigma_px / block`` (zero beyond the image, i.e. a plain convolution); a cell's
    probability is the smoothed intensity times its number of footprint pixels. Within
    a cell positions are uniform, a piecewise-constant approximation at <= sigma/8 of
    a density that varies on the scale sigma. Costs a fraction of a second on a
    7000 x 7000 field, once per field.
    """
    from scipy.ndimage import gaussian_filter

    if not sigma_px > 0:
        raise ValueError(f"sigma_px must be > 0, got {sigma_px}")
    ny, nx = white_light.shape
    block = max(1, int(sigma_px // 8))
    py, px = (-ny) % block, (-nx) % block
    wl = np.where(footprint, white_light, 0).astype(np.float64)
    fp = footprint.astype(np.float64)
    if py or px:
        wl = np.pad(wl, ((0, py), (0, px)))
        fp = np.pad(fp, ((0, py), (0, px)))
    cy, cx = wl.shape[0] // block, wl.shape[1] // block
    wl_c = wl.reshape(cy, block, cx, block).mean(axis=(1, 3))
    fp_c = fp.reshape(cy, block, cx, block).sum(axis=(1, 3))
    smooth = gaussian_filter(wl_c, sigma_px / block, mode="constant", cval=0.0, truncate=4.0)
    prob = np.clip(smooth, 0, None) * fp_c
    total = prob.sum()
    if not total > 0:
        # a blank white light: fall back to uniform over the footprint
        prob = fp_c.copy()
        total = prob.sum()
    return PositionDensity(
        prob=prob / total,
        block=block,
        shape=(ny, nx),
        sigma_px=float(sigma_px),
        footprint_px=int(footprint.sum()),
    )


def draw_positions(
    density: PositionDensity,
    footprint: np.ndarray,
    n: int,
    min_sep_px: float,
    rng: np.random.Generator,
    *,
    max_attempts: int | None = None,
    edge_margin_px: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` positions from ``density``, inside the footprint, at least ``min_sep_px`` apart.

    Candidates are drawn one after the other; one closer than ``min_sep_px`` to an
    accepted position, or outside the footprint, is rejected and redrawn (the paper's
    procedure). ``edge_margin_px`` also rejects candidates closer than that to the
    image's edges (pixel centres at 0 .. n - 1, the image spanning -0.5 .. n - 0.5): for
    a crop of a larger frame, whose edges are not the survey's (see
    :class:`~jaxcomp.ast.campaign.CampaignConfig`). Raises ValueError if ``n`` discs of
    diameter ``min_sep_px`` cannot fit in the footprint (hexagonal packing bound) or if
    ``max_attempts`` (default ``200 n + 10000``) candidates do not yield ``n`` positions.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    margin = float(edge_margin_px)
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"edge_margin_px must be a finite number >= 0, got {edge_margin_px!r}")
    if 2 * margin >= min(density.shape):
        raise ValueError(
            f"edge_margin_px = {margin:g} leaves no room in a {density.shape[0]} x "
            f"{density.shape[1]} "
            "px image; use a margin below half the image's smaller side"
        )
    if n == 0:
        return np.zeros(0), np.zeros(0)
    area = density.footprint_px
    if min_sep_px > 0:
        n_max = _HEX_PACKING * area / (math.pi * (min_sep_px / 2.0) ** 2)
        if n > n_max:
            raise ValueError(
                f"the field is too small for {n} clusters {min_sep_px:.1f} px apart: its footprint "
                f"({area} px) holds at most ~{int(n_max)}; inject fewer clusters per frame, use "
                "smaller radii or a larger field"
            )
    max_attempts = 200 * n + 10000 if max_attempts is None else int(max_attempts)
    flat = density.prob.ravel()
    cdf = np.cumsum(flat)
    cdf /= cdf[-1]
    ncx = density.prob.shape[1]
    ny, nx = density.shape
    xs = np.empty(n)
    ys = np.empty(n)
    k = 0
    attempts = 0
    sep2 = float(min_sep_px) ** 2
    batch = max(64, 2 * n)
    while k < n:
        if attempts >= max_attempts:
            raise ValueError(
                f"placed only {k} of {n} clusters after {attempts} candidate positions (minimum "
                f"spacing {min_sep_px:.1f} px, footprint {area} px); inject fewer clusters per "
                "frame "
                "or use a larger field"
            )
        u = rng.random((batch, 3))
        cell = np.minimum(np.searchsorted(cdf, u[:, 0], side="right"), flat.size - 1)
        cx = (cell % ncx) * density.block + u[:, 1] * density.block - 0.5
        cy = (cell // ncx) * density.block + u[:, 2] * density.block - 0.5
        for x, y in zip(cx, cy):
            attempts += 1
            ix, iy = int(round(x)), int(round(y))
            if not (0 <= ix < nx and 0 <= iy < ny) or not footprint[iy, ix]:
                continue
            if margin and min(x + 0.5, y + 0.5, nx - 0.5 - x, ny - 0.5 - y) < margin:
                continue
            if k and sep2 > 0:
                d2 = (xs[:k] - x) ** 2 + (ys[:k] - y) ** 2
                if d2.min() < sep2:
                    continue
            xs[k] = x
            ys[k] = y
            k += 1
            if k == n or attempts >= max_attempts:
                break
    return xs, ys


def _cluster_mags(clusters, band: str) -> np.ndarray:
    col = f"mag_{band}"
    if col not in clusters.colnames:
        raise ValueError(
            f"clusters lack column {col!r}; the library must give mag_<band> for {list(BANDS)}"
        )
    c = clusters[col]
    m = np.asarray(c.filled(np.nan) if isinstance(c, MaskedColumn) else c, dtype=np.float64)
    return m


def noisy_stamps(
    field: Field,
    x,
    y,
    mags: Mapping[str, np.ndarray],
    r_eff_px,
    rng: np.random.Generator,
    *,
    noise: bool = True,
) -> dict[str, list]:
    """The clusters' stamps per band (:class:`~jaxcomp.ast.profiles.Stamps`), with their shot noise.

    ``mags[band]`` are apparent Vega magnitudes (NaN or >= 90: no light in that band);
    counts/s = 10^(-0.4 (m - ZP)). Each cluster's stamp (PSF-convolved EFF, see
    :mod:`jaxcomp.ast.profiles`) gets Poisson noise from its own counts over the
    band's exposure time: pixel = Poisson(rate x t) / t. The draws are made band by
    band in a fixed order, so the same ``rng`` state gives the same pixels whether the
    stamps are then added to the whole frame (:func:`inject`) or to windows of it
    (:mod:`jaxcomp.ast.local`).
    """
    rates = {}
    for b in BANDS:
        m = np.asarray(mags[b], dtype=np.float64)
        m = np.where(np.isfinite(m) & (m < 90), m, np.inf)
        rates[b] = field.mag_to_rate(b, m)
    stamps = render_multiband(x, y, rates, r_eff_px, dict(field.psf))
    if not noise:
        return {b: list(stamps[b]) for b in BANDS}
    out = {}
    for b in BANDS:
        t = field.exptimes[b]
        # one draw over the band's stamps laid end to end: the same numbers as one draw
        # per stamp in turn (the generator fills an array element by element, in C order)
        if len(stamps[b]) == 1:  # one radius per frame: no concatenation, no split
            (st,) = stamps[b]
            lam = np.maximum(st.data, 0.0)
            lam *= t
            out[b] = [replace(st, data=rng.poisson(lam) / t)]
            continue
        flat = np.concatenate(
            [np.maximum(st.data, 0.0).ravel() * t for st in stamps[b]] or [np.zeros(0)]
        )
        counts = np.split(rng.poisson(flat) / t, np.cumsum([st.data.size for st in stamps[b]])[:-1])
        out[b] = [replace(st, data=c.reshape(st.data.shape)) for st, c in zip(stamps[b], counts)]
    return out


def inject(
    field: Field,
    x,
    y,
    mags: Mapping[str, np.ndarray],
    r_eff_px,
    rng: np.random.Generator,
    images: Mapping[str, np.ndarray] | None = None,
    *,
    noise: bool = True,
    stamps: Mapping[str, list] | None = None,
) -> dict[str, np.ndarray]:
    """Return new images with clusters added (the field's images are not modified).

    The stamps are :func:`noisy_stamps` (or the given ``stamps``).
    """
    base = field.images if images is None else images
    if stamps is None:
        stamps = noisy_stamps(field, x, y, mags, r_eff_px, rng, noise=noise)
    out = {}
    for b in BANDS:
        img = np.array(base[b], dtype=np.float32, copy=True)
        add_stamps(img, stamps[b])
        out[b] = img
    return out


@dataclass(frozen=True, eq=False)
class FieldBaseline:
    """Pre-injection products of a field: computed once, reused by every frame."""

    catalogue: Table
    white_light: np.ndarray
    density: PositionDensity
    aperture_corrections: dict[str, float]
    timings: dict[str, dict[str, float]]
    band_medians: dict[str, float] | None = None  # what the white light subtracted per band
    mesh: MeshStatistics | None = None  # white-light background-mesh statistics


_BASELINES: "weakref.WeakKeyDictionary[Field, dict]" = weakref.WeakKeyDictionary()


def prepare_field(
    field: Field,
    config: PipelineConfig = DEFAULT_CONFIG,
    *,
    smoothing_pc: float = POSITION_SMOOTHING_PC,
) -> FieldBaseline:
    """The pre-injection catalogue, white light and position density (cached per field/config)."""
    per_field = _BASELINES.setdefault(field, {})
    key = (config, float(smoothing_pc))
    if key in per_field:
        return per_field[key]
    res = run_pipeline(field, config=config)
    timer = StepTimer()
    timer.update(res.timings)
    with timer("position_density"):
        density = position_density(res.white_light, field.footprint, smoothing_pc / field.pc_per_px)
    timings = timer.times
    baseline = FieldBaseline(
        catalogue=res.catalogue,
        white_light=res.white_light,
        density=density,
        aperture_corrections=res.aperture_corrections,
        timings=timings,
        band_medians=res.band_medians,
        mesh=res.mesh_statistics,
    )
    per_field[key] = baseline
    return baseline


def clear_baseline_cache(field: Field | None = None) -> None:
    """Forget cached baselines (of one field, or all)."""
    if field is None:
        _BASELINES.clear()
    else:
        _BASELINES.pop(field, None)


def _as_table(clusters) -> Table:
    if isinstance(clusters, Table):
        return clusters
    try:
        import pandas as pd

        if isinstance(clusters, pd.DataFrame):
            return Table.from_pandas(clusters)
    except ImportError:  # pragma: no cover
        pass
    return Table(clusters)


def run_frame(
    field: Field,
    clusters,
    r_eff_pc: float | None = None,
    seed=0,
    *,
    frame: int = 0,
    config: PipelineConfig = DEFAULT_CONFIG,
    baseline: FieldBaseline | None = None,
    noise: bool = True,
    positions: tuple[np.ndarray, np.ndarray] | None = None,
    return_images: bool = False,
    reprocess: Literal["full", "local"] = "full",
    edge_margin_px: float = 0.0,
):
    """One artificial-cluster frame: inject ``clusters``, rerun the pipeline, label them.

    Parameters
    ----------
    field : Field
    clusters : astropy Table, pandas DataFrame or mapping of columns
        The library rows to inject (all columns are carried into the output); needs
        ``mag_F275W .. mag_F814W`` (apparent Vega) and, if ``r_eff_pc`` is None, an
        ``r_eff_pc`` column.
    r_eff_pc : float, optional
        The frame's common effective radius [pc] (the paper injects one radius per
        frame). If the table also has ``r_eff_pc`` the two must agree.
    seed : int or numpy SeedSequence
        Seeds positions and shot noise (independent streams).
    frame : int
        Written to the ``frame`` column.
    baseline : FieldBaseline, optional
        Pre-injection products; default :func:`prepare_field` (cached).
    noise : bool
        Add the clusters' shot noise (default True).
    positions : (x, y), optional
        Use these positions instead of drawing them.
    return_images : bool
        Also return the injected images.
    reprocess : {"full", "local"}
        Re-run the pipeline on the whole injected frame (default), or only on windows
        around the clusters with the frame-wide statistics frozen at the pre-injection
        frame's (:mod:`jaxcomp.ast.local`), faster when the clusters cover a small part of
        the frame. Windows whose edge cuts a segment near a cluster are widened
        (:data:`LOCAL_MARGINS_PX`); a frame still cut, or whose windows would cover more
        than :data:`LOCAL_MAX_AREA_FRACTION` of it, is run in full (``meta["fallback"]``).
    edge_margin_px : float
        Keep drawn positions at least this far [px] from the image's edges (see
        :func:`draw_positions`; ignored when ``positions`` are given).

    Returns
    -------
    astropy.table.Table
        The library columns, then ``frame``, ``x``, ``y`` (injected position, 0-based
        px), ``detected, passes_err, passes_ci, passes_nband, passes_mv, C`` (see
        :func:`~jaxcomp.ast.matching.match_injected`), the measured ``mag_<band>_meas``,
        ``magerr_<band>_meas``, ``ci_meas``, ``x_meas``, ``y_meas``, ``sep_px``.
        ``meta`` holds the field name, seed, radius and per-step timings (wall and CPU).
    """
    timer = StepTimer()
    w_start, c_start = time.perf_counter(), time.process_time()
    tab = _as_table(clusters)
    n = len(tab)
    if r_eff_pc is None:
        if "r_eff_pc" not in tab.colnames:
            raise ValueError("give r_eff_pc or an r_eff_pc column in clusters")
        radii = np.asarray(tab["r_eff_pc"], dtype=np.float64)
    else:
        radii = np.full(n, float(r_eff_pc))
        if (
            "r_eff_pc" in tab.colnames
            and n
            and not np.allclose(np.asarray(tab["r_eff_pc"], float), r_eff_pc)
        ):
            raise ValueError(
                f"r_eff_pc={r_eff_pc} disagrees with the clusters' r_eff_pc column "
                f"(values {np.unique(np.asarray(tab['r_eff_pc']))[:5]})"
            )
    if n and (np.any(~np.isfinite(radii)) or np.any(radii <= 0)):
        raise ValueError("r_eff_pc must be finite and > 0")
    mags = {b: _cluster_mags(tab, b) for b in BANDS}

    with timer("baseline"):
        if baseline is None:
            baseline = prepare_field(field, config)

    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # the first two children of ``ss``, made without ss.spawn(), which would advance the
    # caller's sequence (the same SeedSequence passed twice must give the same frame)
    pos_ss, noise_ss = (
        np.random.SeedSequence(
            ss.entropy, spawn_key=tuple(ss.spawn_key) + (k,), pool_size=ss.pool_size
        )
        for k in (0, 1)
    )
    r_px = field.r_eff_px(radii)
    with timer("positions"):
        if positions is None:
            min_sep = MIN_SPACING_REFF * float(r_px.max()) if n else 0.0
            x, y = draw_positions(
                baseline.density,
                field.footprint,
                n,
                min_sep,
                np.random.default_rng(pos_ss),
                edge_margin_px=edge_margin_px,
            )
        else:
            x, y = (np.asarray(v, dtype=np.float64) for v in positions)
            if x.shape != (n,) or y.shape != (n,):
                raise ValueError(f"positions must be two arrays of length {n}")

    if reprocess not in ("full", "local"):
        raise ValueError(f"reprocess must be 'full' or 'local', got {reprocess!r}")
    with timer("render"):
        stamps = noisy_stamps(field, x, y, mags, r_px, np.random.default_rng(noise_ss), noise=noise)
    fallback = False
    catalogue = injected = None
    if reprocess == "local" and n:
        if baseline.mesh is None or baseline.band_medians is None:
            raise ValueError(
                "reprocess='local' needs a baseline from prepare_field with the default background "
                "(background_impl='fast': band medians and mesh statistics)"
            )
        from .local import run_pipeline_local

        first = stamps[BANDS[0]]
        iy = np.empty(n, np.int64)
        ix = np.empty(n, np.int64)
        half = np.empty(n, np.int64)
        for st in first:
            iy[st.index], ix[st.index], half[st.index] = st.iy, st.ix, st.half_size
        for margin in LOCAL_MARGINS_PX:
            local = run_pipeline_local(
                field,
                stamps,
                iy,
                ix,
                half,
                config,
                medians=baseline.band_medians,
                mesh=baseline.mesh,
                aperture_corrections=baseline.aperture_corrections,
                margin_px=margin,
                max_area_fraction=LOCAL_MAX_AREA_FRACTION,
                pre_catalogue=baseline.catalogue,
            )
            timer.update(local.timings)
            if local.catalogue is None:
                break
            if not local.unreliable.any():
                catalogue = local.catalogue
                break
        fallback = catalogue is None
    if catalogue is None or return_images:
        with timer("inject"):
            injected = inject(field, x, y, mags, r_px, None, noise=noise, stamps=stamps)
    if catalogue is None:
        res = run_pipeline(field, injected, config)
        timer.update(res.timings)
        catalogue = res.catalogue

    with timer("match"):
        m = match_injected(x, y, catalogue, baseline.catalogue, config.cuts.match_radius_px)

    out = tab.copy(copy_data=True)
    if "r_eff_pc" not in out.colnames:
        out["r_eff_pc"] = radii
        out["r_eff_pc"].unit = "pc"
    out["frame"] = np.full(n, int(frame), np.int64)
    out["x"] = Column(
        x, unit="pix", description="injected x (0-based pixel, centre of pixel 0 at 0)"
    )
    out["y"] = Column(y, unit="pix", description="injected y (0-based pixel)")
    for col in m.colnames:
        out[col] = m[col]
    timer.times["total"] = {
        "wall_s": time.perf_counter() - w_start,
        "cpu_s": time.process_time() - c_start,
    }
    out.meta.update(
        {
            "field": field.name,
            "seed": repr(seed),
            "frame": int(frame),
            "r_eff_pc": float(radii[0]) if n and np.all(radii == radii[0]) else "mixed",
            "n_sources_pre": len(baseline.catalogue),
            "n_sources_post": len(catalogue),
            "reprocess": reprocess,
            "fallback": fallback,
            "timings": timer.times,
            "stages": list(STAGES),
        }
    )
    if return_images:
        return out, injected
    return out
