"""Effective PSFs built from a frame's own stars (Anderson & King 2000, via photutils).

A real five-band frame rarely comes with a PSF model, and the artificial clusters
must be convolved with the PSF the catalogue pipeline actually saw. This module
builds each band's effective PSF (ePSF: the PSF integrated over a pixel, sampled
``oversampling`` times per pixel) from the isolated, unsaturated point sources of
that band's image, with :class:`photutils.psf.EPSFBuilder`.

The star selection is explicit (:class:`EPSFStarSelection`), and every candidate
is reported with the reason it was used or rejected (:func:`build_epsf` returns
the table). The steps, per band:

1. *Background*: :class:`photutils.background.Background2D` (box
   ``background_box_px``) gives the background and its rms; the image minus the
   background is what is searched and measured.
2. *Detection*: :class:`photutils.detection.DAOStarFinder` at
   ``detection_threshold_sigma`` x the median background rms (kernel FWHM
   ``detection_fwhm_px``) finds the candidates and every neighbour.
3. *Measurement*: aperture photometry at 1 and 3 px (local background from a
   plane fitted to the pixels outside the cutout, out to 1.5 x its half-size, already
   removed; also each star's local background rms), giving
   ``mag = -2.5 log10(f(3 px)) + ZP`` [Vega mag, no aperture correction],
   ``ci = m(1 px) - m(3 px)`` and the S/N of f(3 px); DAOStarFinder's
   ``roundness1``/``roundness2`` and ``peak``.
4. *Cuts*, in this order (the first failed one is the reason): ``edge`` (the
   cutout leaves the image or touches missing data), ``saturated`` (peak >=
   ``peak_max``), ``magnitude``, ``snr``, ``isolation`` (another detection within
   ``isolation_radius_px``), ``roundness`` (both roundness1 and roundness2 in
   ``roundness_range``), ``ci`` (CI in ``ci_range``, then within
   ``ci_clip_mag`` of the stellar locus, the most concentrated well-populated
   peak of the CIs of the stars passing so far: clusters and blends are broader), ``max_stars`` (the
   brightest
   ``max_stars`` are kept).
5. *Build*: cutouts of ``cutout_px`` px, background-subtracted, go to
   :class:`~photutils.psf.EPSFBuilder` (``oversampling``, ``iterations``), which
   gives a first ePSF. Each star's fitted model is subtracted from its box, the
   neighbours' light left over is masked (``neighbour_mask_sigma``,
   :mod:`jaxcomp.ast.epsf_neighbours`), the local background refitted without it, and
   the builder run again on the masked stars; this gives the core. Beyond the radius
   where the stack becomes noise the wings are the stars' inverse-variance weighted
   azimuthal profile (``wing_weighting``, see
   :mod:`jaxcomp.ast.epsf_wings`), out to the ePSF's corners; the result is
   normalised and returned as a :class:`jaxcomp.ast.profiles.PSFModel`.

Fewer than ``min_stars`` usable stars raise :class:`EPSFError`, which says how
many passed each cut and how to give the PSF instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .epsf_neighbours import aperture_sum, concentration_excess, neighbour_mask
from .epsf_selection import REJECTION_REASONS, EPSFError, EPSFStarSelection
from .epsf_wings import clean_wings, plane_background, weighted_wing_profile
from .profiles import PSFModel

__all__ = [
    "EPSFError",
    "EPSFResult",
    "EPSFStarSelection",
    "build_epsf",
    "plot_epsf",
    "psf_encircled_energy",
]


@dataclass(frozen=True, eq=False)
class EPSFResult:
    """A band's ePSF and the stars behind it.

    ``psf`` is the :class:`PSFModel`; ``stars`` an astropy Table with one row per
    candidate: ``x, y`` [px, 0-based], ``mag`` [Vega], ``snr``, ``ci`` [mag],
    ``roundness1``, ``roundness2``, ``peak`` [counts/s], ``nearest_px`` (distance to the
    nearest other detection), ``used`` (bool) and ``reason`` ("used" or the cut that
    rejected it, see ``REJECTION_REASONS``); ``band`` and ``selection`` record the inputs.
    """

    band: str
    psf: PSFModel
    stars: object
    selection: EPSFStarSelection

    @property
    def n_used(self) -> int:
        return int(np.sum(self.stars["used"]))


def _ci_locus(ci: np.ndarray, width: float, min_count: int) -> float:
    """The CI of the stellar locus: the most concentrated peak of the CI distribution holding
    ``min_count`` stars.

    Point sources pile up at one CI (the PSF's, spread by noise and pixel phase) and
    nothing real is more concentrated; clusters spread to larger CIs and, in a crowded
    frame, can outnumber the stars. So the locus is the lowest-CI local maximum of the
    CI density (Gaussian kernel, sigma = width / 3) with at least ``min_count`` CIs
    within ``width`` of it; failing any, the highest maximum.
    """
    ci = ci[np.isfinite(ci)]
    if ci.size < 3:
        return float(np.median(ci)) if ci.size else float("nan")
    bw = max(width / 3.0, 1e-3)
    grid = np.arange(ci.min() - bw, ci.max() + bw, bw / 4.0)
    density = np.exp(-0.5 * ((grid[:, None] - ci[None, :]) / bw) ** 2).sum(axis=1)
    peaks = np.nonzero((density >= np.roll(density, 1)) & (density > np.roll(density, -1)))[0]
    for k in peaks:
        if np.sum(np.abs(ci - grid[k]) <= width) >= min_count:
            return float(grid[k])
    return float(grid[int(np.argmax(density))])


def _counts(reasons: list[str], n_candidates: int) -> str:
    left = n_candidates
    parts = [f"{n_candidates} candidate(s) detected"]
    for reason in REJECTION_REASONS:
        k = sum(r == reason for r in reasons)
        left -= k
        parts.append(f"{left} passed '{reason}'" + (f" ({k} rejected)" if k else ""))
    return "; ".join(parts)


def build_epsf(
    image,
    band: str,
    zeropoint: float,
    *,
    exptime: float | None = None,
    selection: EPSFStarSelection | None = None,
    mask=None,
    source: str = "",
) -> EPSFResult:
    """Build one band's effective PSF from the image's isolated, unsaturated point sources.

    Parameters
    ----------
    image : 2D array
        The band's image [counts/s]; NaN pixels are missing data.
    band : str
        The band's name (for messages and the table).
    zeropoint : float
        Vega zeropoint [mag of 1 count/s] for the magnitude cut.
    exptime : float, optional
        Exposure time [s]; adds the stars' Poisson noise to the S/N (else background only).
    selection : EPSFStarSelection, optional
        The star selection (default :class:`EPSFStarSelection()`).
    mask : 2D bool array, optional
        True where the data are missing or bad (added to the NaN pixels).
    source : str
        Where the image comes from (a file name), for the error message.

    Returns
    -------
    EPSFResult

    Raises
    ------
    EPSFError
        If fewer than ``selection.min_stars`` stars are usable; the message says how many
        passed each cut and how to supply a PSF instead.
    """
    from astropy.stats import SigmaClip
    from astropy.table import Table
    from photutils.background import Background2D, MedianBackground
    from photutils.detection import DAOStarFinder
    from photutils.psf import EPSFBuilder, EPSFStar, EPSFStars

    sel = EPSFStarSelection() if selection is None else selection
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"{band}: the image must be 2D, got shape {data.shape}")
    bad = ~np.isfinite(data)
    if mask is not None:
        bad |= np.asarray(mask, bool)
    where = f" ({source})" if source else ""
    if bad.all():
        raise EPSFError(f"{band}{where}: no valid pixels to build a PSF from")

    box = int(min(sel.background_box_px, max(8, min(data.shape) // 4)))
    bkg = Background2D(
        np.where(bad, 0.0, data),
        box,
        mask=bad,
        filter_size=(3, 3),
        sigma_clip=SigmaClip(sigma=3.0),
        bkg_estimator=MedianBackground(),
    )
    sub = np.where(bad, 0.0, data - bkg.background)
    rms = (
        float(np.median(bkg.background_rms[~bad]))
        if (~bad).any()
        else float(bkg.background_rms_median)
    )
    rms = max(rms, 1e-30)

    finder = DAOStarFinder(
        threshold=sel.detection_threshold_sigma * rms,
        fwhm=sel.detection_fwhm_px,
        exclude_border=False,
        sharpness_range=None,
        roundness_range=None,
    )
    found = finder(sub, mask=bad)
    if found is not None and len(found):
        xs = np.asarray(
            found["x_centroid"] if "x_centroid" in found.colnames else found["xcentroid"], float
        )
        ys = np.asarray(
            found["y_centroid"] if "y_centroid" in found.colnames else found["ycentroid"], float
        )
        r1 = np.asarray(found["roundness1"], float)
        r2 = np.asarray(found["roundness2"], float)
        peak = np.asarray(found["peak"], float)
    else:
        xs = ys = r1 = r2 = peak = np.zeros(0)
    n = xs.size

    # nearest other detection
    nearest = np.full(n, np.inf)
    if n > 1:
        from scipy.spatial import cKDTree

        d, _ = cKDTree(np.column_stack([xs, ys])).query(np.column_stack([xs, ys]), k=2)
        nearest = d[:, 1]

    h = sel.cutout_px // 2
    H = math.ceil(1.5 * h) + 1  # the box whose outer ring gives the local background
    ny, nx = data.shape
    ix, iy = np.rint(xs).astype(int), np.rint(ys).astype(int)
    inside = (ix - H >= 0) & (iy - H >= 0) & (ix + H < nx) & (iy + H < ny)
    f1 = np.full(n, np.nan)
    f3 = np.full(n, np.nan)
    cutouts: dict[int, tuple[np.ndarray, int, int]] = {}
    yy, xx = np.mgrid[-H : H + 1, -H : H + 1]
    ring = (np.abs(xx) > h) | (np.abs(yy) > h)  # outside the cutout, whose corners hold PSF light
    edge = ~inside
    local_rms = np.full(n, np.nan)
    n_masked = np.zeros(n, np.int64)
    ci_excess = np.full(n, np.nan)
    inner = (slice(H - h, H + h + 1), slice(H - h, H + h + 1))  # the cutout in its box
    boxes: dict[int, np.ndarray] = {}  # each star's box minus its local background
    for k in np.nonzero(inside)[0]:
        sl = (slice(iy[k] - H, iy[k] + H + 1), slice(ix[k] - H, ix[k] + H + 1))
        if bad[sl].any():
            edge[k] = True
            continue
        big = data[sl]
        plane, local_rms[k] = plane_background(big, ring)
        boxes[k] = big - plane
        cutouts[k] = (boxes[k][inner], ix[k] - h, iy[k] - h)
    for k, (
        stamp,
        x0,
        y0,
    ) in cutouts.items():  # aperture fluxes on the local-background-subtracted cutouts
        f1[k] = aperture_sum(stamp, xs[k] - x0, ys[k] - y0, 1.0)
        f3[k] = aperture_sum(stamp, xs[k] - x0, ys[k] - y0, 3.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(f3 > 0, -2.5 * np.log10(f3) + zeropoint, np.nan)
        ci = np.where((f1 > 0) & (f3 > 0), -2.5 * np.log10(f1 / f3), np.nan)
        noise2 = math.pi * 9.0 * rms**2 + (np.clip(f3, 0, None) / exptime if exptime else 0.0)
        snr = f3 / np.sqrt(noise2)

    reason = np.array(["used"] * n, dtype=object)

    def cut(condition, name):
        reject = (reason == "used") & ~condition
        reason[reject] = name

    cut(~edge, "edge")
    cut(np.ones(n, bool) if sel.peak_max is None else (peak < float(sel.peak_max)), "saturated")
    cut((mag >= sel.mag_range[0]) & (mag <= sel.mag_range[1]), "magnitude")
    cut(snr >= sel.min_snr, "snr")
    cut(nearest > sel.isolation_radius_px, "isolation")
    lo, hi = sel.roundness_range
    cut((r1 >= lo) & (r1 <= hi) & (r2 >= lo) & (r2 <= hi), "roundness")
    cut((ci >= sel.ci_range[0]) & (ci <= sel.ci_range[1]), "ci")
    ok = reason == "used"
    if ok.any() and math.isfinite(sel.ci_clip_mag):
        locus = _ci_locus(ci[ok], sel.ci_clip_mag, sel.min_stars)
        cut(np.abs(ci - locus) <= sel.ci_clip_mag, "ci")
    ok = np.nonzero(reason == "used")[0]
    if ok.size > sel.max_stars:
        order = ok[np.argsort(mag[ok])]
        reason[order[sel.max_stars :]] = "max_stars"

    def table():
        t = Table(
            {
                "x": xs,
                "y": ys,
                "mag": mag,
                "snr": snr,
                "ci": ci,
                "roundness1": r1,
                "roundness2": r2,
                "peak": peak,
                "nearest_px": nearest,
                "n_masked_px": n_masked,
                "ci_excess_sigma": ci_excess,
                "used": reason == "used",
                "reason": np.asarray(reason, dtype=str) if n else np.zeros(0, dtype="U10"),
            },
            meta={"band": band, "zeropoint": float(zeropoint), "background_rms": rms},
        )
        for col, unit in (
            ("x", "pix"),
            ("y", "pix"),
            ("mag", "mag"),
            ("ci", "mag"),
            ("nearest_px", "pix"),
        ):
            t[col].unit = unit
        return t

    def fail(why: str):
        raise EPSFError(
            f"{band}{where}: cannot build the effective PSF from the frame's stars: {why}. "
            f"{_counts(list(reason), n)}. Loosen the star selection (EPSFStarSelection: e.g. "
            "min_snr, "
            "isolation_radius_px, ci_range, mag_range, min_stars), or supply the PSF: the psf= "
            "argument of "
            "read_field_fits (a Gaussian FWHM in px, an ePSF image or a PSFModel, per band), a "
            "'PSF' image "
            "extension (or a PSFFWHM keyword [px]) in the band's FITS file, or in a workflow "
            "[field] "
            "psf = 'gaussian' with psf_fwhm_px = [five FWHMs] (the selection there: the psf_* keys)"
        )

    use = np.nonzero(reason == "used")[0]
    if use.size < sel.min_stars:
        fail(f"only {use.size} usable star(s), at least {sel.min_stars} needed")

    builder = EPSFBuilder(
        oversampling=sel.oversampling,
        maxiters=sel.iterations,
        progress_bar=False,
        smoothing_kernel=sel.smoothing_kernel,
    )
    masks: dict[int, np.ndarray] = {}  # the neighbours' pixels in each star's cutout

    def masked(k: int, fill: float) -> np.ndarray:
        """Star ``k``'s cutout with its neighbours' pixels set to ``fill``."""
        return np.where(masks[k], fill, cutouts[k][0]) if k in masks else cutouts[k][0]

    def build(stars_k: np.ndarray):
        """EPSFBuilder on the stars ``stars_k``: (result, the stars it kept, their fits)."""
        import warnings

        stars = EPSFStars(
            [
                EPSFStar(
                    masked(k, 0.0),
                    weights=(~masks[k]).astype(float) if k in masks else None,
                    cutout_center=(xs[k] - cutouts[k][1], ys[k] - cutouts[k][2]),
                    origin=(cutouts[k][1], cutouts[k][2]),
                    id_label=int(k),
                )
                for k in stars_k
            ]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = builder(stars)
        dropped = {int(i) for i in getattr(result, "excluded_star_indices", [])}
        reason[np.asarray([int(stars_k[i]) for i in dropped], int)] = "builder"
        kept = [i for i in range(stars_k.size) if i not in dropped]
        return result, stars_k[kept], [result.fitted_stars.all_stars[i] for i in kept]

    built, kept_k, fitted = build(use)
    if kept_k.size >= sel.min_stars and (
        math.isfinite(sel.neighbour_mask_sigma) or math.isfinite(sel.extended_sigma)
    ):
        # second pass, around the first ePSF's model of each star: the neighbours' light is
        # masked and the star's background refitted without it, and a star measurably
        # broader than the model at its own centre is no point source; the ePSF is rebuilt.
        # The point-source test is repeated once against the rebuilt ePSF (the first one is
        # broadened by the very sources it should reject)
        yb, xb = np.mgrid[-H : H + 1, -H : H + 1] + H
        for test_round in range(2):
            for k, st in zip(kept_k, fitted):
                cx, cy = (float(v) + (H - h) for v in st.cutout_center)
                model = built.epsf.evaluate(xb, yb, float(st.flux), cx, cy)
                if test_round == 0:
                    near = np.zeros(model.shape, bool)
                    if math.isfinite(sel.neighbour_mask_sigma):
                        near = neighbour_mask(
                            boxes[k] - model,
                            float(local_rms[k]),
                            (cx, cy),
                            threshold_sigma=sel.neighbour_mask_sigma,
                            protect_radius_px=0.5 * sel.isolation_radius_px,
                            dilate_px=sel.neighbour_dilate_px,
                        )
                        big = data[iy[k] - H : iy[k] + H + 1, ix[k] - H : ix[k] + H + 1]
                        plane, local_rms[k] = plane_background(np.where(near, np.nan, big), ring)
                        boxes[k] = big - plane
                        cutouts[k] = (boxes[k][inner], cutouts[k][1], cutouts[k][2])
                    masks[k] = near[inner]
                    n_masked[k] = int(near[inner].sum())
                ci_excess[k] = concentration_excess(
                    cutouts[k][0],
                    model[inner],
                    tuple(float(v) for v in st.cutout_center),
                    float(local_rms[k]),
                    exptime,
                )
            n_before = kept_k.size
            if math.isfinite(sel.extended_sigma):
                # against the stars' own locus: the model is broadened by what it should reject
                locus = float(np.nanmedian(ci_excess[kept_k]))
                cut(~(ci_excess - min(locus, 0.0) > sel.extended_sigma), "extended")
                kept_k = kept_k[reason[kept_k] == "used"]
            if kept_k.size < sel.min_stars or (test_round == 1 and kept_k.size == n_before):
                break
            built, kept_k, fitted = build(kept_k)
    use = np.nonzero(reason == "used")[0]
    if use.size < sel.min_stars:
        fail(
            f"after the ePSF builder and the point-source test only {use.size} star(s) are left "
            f"(< {sel.min_stars})"
        )
    epsf = built.epsf
    img = np.asarray(epsf.data, dtype=np.float64)
    if not (np.all(np.isfinite(img)) and img.sum() > 0):
        fail("the ePSF builder returned an empty or non-finite image")
    profile = None
    if sel.wing_weighting == "inverse_variance":
        profile = weighted_wing_profile(
            [masked(k, np.nan) for k in kept_k],
            [tuple(st.cutout_center) for st in fitted],
            np.array([float(st.flux) for st in fitted]),
            np.array([local_rms[k] for k in kept_k]),
            sel.oversampling,
            int(math.ceil(math.hypot(*img.shape) / 2.0)) + 2,
        )
    img = clean_wings(img, sel.oversampling, sel.wing_snr, profile)
    psf = PSFModel(image=img, oversampling=sel.oversampling)
    return EPSFResult(band=band, psf=psf, stars=table(), selection=sel)


def psf_encircled_energy(psf, radii_px=(1.0, 2.0, 3.0, 4.0)) -> np.ndarray:
    """Encircled energy of a PSF at ``radii_px`` [px], measured on a rendered point source.

    The PSF (anything :func:`jaxcomp.ast.profiles.as_psf` takes) is rendered as a point
    source centred on a pixel centre with :func:`jaxcomp.ast.profiles.render_stamps`,
    and exact circular-aperture sums give the fraction of the total flux; the same
    procedure for any two PSFs makes them comparable (the LEGUS CI is
    ``-2.5 log10(EE(1) / EE(3))``).
    """
    from photutils.aperture import CircularAperture, aperture_photometry

    from .profiles import render_stamps

    stamps = render_stamps([0.0], [0.0], [1.0], 0.0, psf)[0]
    stamp, c = stamps.data[0], float(stamps.half_size)
    radii = np.atleast_1d(np.asarray(radii_px, float))
    ph = aperture_photometry(
        stamp, [CircularAperture((c, c), r=float(r)) for r in radii], method="exact"
    )
    return np.array([float(ph[f"aperture_sum_{i}"][0]) for i in range(radii.size)]) / float(
        stamp.sum()
    )


def plot_epsf(results: Mapping[str, EPSFResult], path, *, title: str = "") -> str:
    """Figure of each band's ePSF (log image) and encircled energy against radius (matplotlib
    Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = list(results)
    fig, axes = plt.subplots(2, len(bands), figsize=(3.0 * len(bands), 6.2), squeeze=False)
    radii = np.linspace(0.5, 8.0, 16)
    for j, b in enumerate(bands):
        r = results[b]
        img = r.psf.image
        ax = axes[0, j]
        ax.imshow(
            np.log10(np.clip(img / img.max(), 1e-4, None)),
            origin="lower",
            cmap="viridis",
            vmin=-4,
            vmax=0,
        )
        ax.set_title(f"{b}: {r.n_used} stars")
        ax.set_xticks([])
        ax.set_yticks([])
        ee = psf_encircled_energy(r.psf, radii)
        ax = axes[1, j]
        ax.plot(radii, ee, "k-")
        ci = -2.5 * math.log10(
            psf_encircled_energy(r.psf, (1.0,))[0] / psf_encircled_energy(r.psf, (3.0,))[0]
        )
        ax.set_xlabel("radius [px]")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.text(0.95, 0.05, f"CI = {ci:.3f}", transform=ax.transAxes, ha="right")
        if j == 0:
            ax.set_ylabel("encircled energy")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
