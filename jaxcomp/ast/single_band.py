"""Classical single-band artificial cluster tests (the Adamo+2017 kind) and 50% magnitudes.

Adamo et al. (2017) measured the completeness of the NGC 628 images one filter at a
time: artificial clusters injected in one band, extracted in that band alone,
recovered as a function of magnitude (``data/legus/adamo17_...json``; 50% at F275W
23.63, F336W 24.46, F435W 25.58, F555W 25.58, F814W 24.73 mag in NGC628C). The mock
field's noise is calibrated against those numbers with the test implemented here
(:data:`ADAMO17_RECIPE`):

* clusters: EFF (gamma = 3) profiles convolved with the band's PSF, r_eff drawn from
  {1, 2, 3, 4, 5} pc (compact young clusters, Ryon+2017), with their own shot noise;
* positions: uniform over the frame, in windows of 256 x 256 px (16 clusters each, at
  least 24 px apart and 20 px from the window edge), the windows spread uniformly over
  the whole frame (only the window is rendered and processed: the tests are local);
* detection in that band alone: SExtractor-like, background mesh 30 px, threshold
  3 sigma per pixel, at least 5 connected pixels, no filtering, LEGUS deblending
  (:func:`jaxcomp.ast.detection.detect` with those settings);
* photometry: the LEGUS apertures (4 px, sky annulus 7-8 px, IRAF errors);
* recovered: a detection that did not exist before injection (one-to-one greedy
  match of the pre-injection detections, 3 px) lies within 3 px, and its magnitude
  error in the band is <= 0.3 mag (the LEGUS error cut).

The exact Adamo+2017 settings (detection threshold, radii) are not all published; this
recipe is the LEGUS photometry with a conventional single-band SExtractor detection.
The 50% magnitude is where a logistic ``p(m) = p_max / (1 + exp((m - m0) / w))``,
fitted by maximum likelihood, crosses 0.5 (:func:`fit_m50`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..survey import BANDS, NGC628_DISTANCE_MODULUS, PIXEL_SCALE_ARCSEC

__all__ = [
    "SingleBandRecipe",
    "ADAMO17_RECIPE",
    "fit_m50",
    "single_band_windows",
    "mock_single_band_test",
    "mock_m50",
]


@dataclass(frozen=True)
class SingleBandRecipe:
    """Settings of a single-band artificial cluster test (defaults: :data:`ADAMO17_RECIPE`)."""

    detect_nsigma: float = 3.0
    detect_npixels: int = 5
    back_size: int = 30
    max_err: float = 0.3
    match_radius_px: float = 3.0
    r_eff_pc: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)
    window_px: int = 256
    clusters_per_window: int = 16
    min_sep_px: float = 24.0
    edge_px: int = 20
    mag_range: tuple[float, float] = (-1.75, 1.25)  # relative to the band's target 50% magnitude

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


ADAMO17_RECIPE = SingleBandRecipe()


def fit_m50(mags, recovered) -> dict:
    """Fit ``p(m) = p_max / (1 + exp((m - m0)/w))`` by maximum likelihood; return the 50% magnitude.

    Returns ``{"m50", "m0", "width", "p_max", "n"}``; ``m50`` is NaN if the fitted
    ``p_max`` is below 0.5.
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    m = np.asarray(mags, dtype=np.float64)
    k = np.asarray(recovered, dtype=np.float64)
    if m.size < 10:
        raise ValueError("fit_m50 needs at least 10 test clusters")

    def nll(p):
        m0, logw, lp = p
        pm = expit(lp) * (1 - 1e-9)
        q = pm * expit(-(m - m0) / math.exp(logw))
        q = np.clip(q, 1e-12, 1 - 1e-12)
        return -np.sum(k * np.log(q) + (1 - k) * np.log1p(-q))

    # start from the magnitude where the running fraction crosses one half
    order = np.argsort(m)
    run = np.convolve(k[order], np.ones(15) / 15, mode="same")
    i = int(np.argmin(np.abs(run - 0.5)))
    start = np.array([m[order][i], math.log(0.15), 4.0])
    res = minimize(
        nll, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 4000}
    )
    m0, logw, lp = res.x
    w = math.exp(logw)
    pmax = float(expit(lp))
    m50 = m0 + w * math.log(2 * pmax - 1) if pmax > 0.5 else float("nan")
    return {"m50": float(m50), "m0": float(m0), "width": w, "p_max": pmax, "n": int(m.size)}


def single_band_windows(
    n_windows: int,
    seed,
    recipe: SingleBandRecipe = ADAMO17_RECIPE,
    frame_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """``n_windows`` windows (y0, y1, x0, x1), uniform over the frame (default: the full NGC 628C
    mock)."""
    from .mock_frame import MOCK_SHAPE

    ny, nx = frame_shape or MOCK_SHAPE
    s = recipe.window_px
    rng = np.random.default_rng(seed)
    y0 = rng.integers(0, ny - s + 1, n_windows)
    x0 = rng.integers(0, nx - s + 1, n_windows)
    return np.column_stack([y0, y0 + s, x0, x0 + s])


def _positions(rng, n, size, edge, min_sep):
    xs, ys = [], []
    tries = 0
    while len(xs) < n:
        tries += 1
        if tries > 10000:
            raise ValueError(f"cannot place {n} clusters {min_sep} px apart in a {size} px window")
        x, y = rng.uniform(edge, size - 1 - edge, 2)
        if all((x - a) ** 2 + (y - b) ** 2 >= min_sep**2 for a, b in zip(xs, ys)):
            xs.append(x)
            ys.append(y)
    return np.array(xs), np.array(ys)


def _detect(image: np.ndarray, recipe: SingleBandRecipe):
    from .detection import detect
    from .settings import SExtractorConfig

    cfg = SExtractorConfig(
        detect_thresh=recipe.detect_nsigma,
        detect_minarea=recipe.detect_npixels,
        back_size=recipe.back_size,
    )
    table, _ = detect(image, None, cfg)
    return np.column_stack([np.asarray(table["x"], float), np.asarray(table["y"], float)])


def mock_single_band_test(
    band: str,
    n_windows: int,
    seed: int = 0,
    *,
    target_m50: float | None = None,
    background_rate: float | None = None,
    field_seed: int = 0,
    recipe: SingleBandRecipe = ADAMO17_RECIPE,
    pointing: str = "ngc628c",
):
    """Run single-band artificial cluster tests in ``band`` on windows of a pointing's full mock.

    ``target_m50`` (default the pointing's Adamo+2017 value) centres the magnitude range
    ``target + recipe.mag_range``; ``background_rate`` overrides the band's
    calibrated effective background [counts/s/px]. Everything (windows, clusters,
    positions, shot noise) follows from ``seed``, so tests with different backgrounds
    use the same clusters (common random numbers). Returns an astropy Table with one
    row per cluster: ``window, x, y, mag, r_eff_pc, detected, magerr, recovered``.
    """
    from ._threads import single_threaded_blas

    with single_threaded_blas():
        return _mock_single_band_test(
            band,
            n_windows,
            seed,
            target_m50=target_m50,
            background_rate=background_rate,
            field_seed=field_seed,
            recipe=recipe,
            pointing=pointing,
        )


def _mock_single_band_test(
    band, n_windows, seed, *, target_m50, background_rate, field_seed, recipe, pointing
):
    from astropy.table import Table
    from scipy.spatial import cKDTree

    from .matching import _claimed
    from .mock_render import render_mock
    from .photometry import aperture_photometry
    from .pointing import mock_pointing, mock_psfs
    from .profiles import add_stamps, pc_per_pixel, render_multiband
    from .settings import PhotometryConfig

    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}")
    pt = mock_pointing(pointing)
    target = pt.m50_target[band] if target_m50 is None else float(target_m50)
    bkg = None if background_rate is None else {band: float(background_rate)}
    ss = np.random.SeedSequence(int(seed), spawn_key=(BANDS.index(band),))
    win_ss, cl_ss = ss.spawn(2)
    windows = single_band_windows(n_windows, win_ss, recipe, pt.shape)
    rng = np.random.default_rng(cl_ss)
    zp, t = pt.zeropoints[band], pt.exptimes[band]
    psf = mock_psfs(pt)[band]
    pcpx = pc_per_pixel(PIXEL_SCALE_ARCSEC, NGC628_DISTANCE_MODULUS)
    phot_cfg = PhotometryConfig()
    rows = {
        k: [] for k in ("window", "x", "y", "mag", "r_eff_pc", "detected", "magerr", "recovered")
    }
    n = recipe.clusters_per_window
    for w, win in enumerate(windows):
        x, y = _positions(rng, n, recipe.window_px, recipe.edge_px, recipe.min_sep_px)
        mags = target + rng.uniform(*recipe.mag_range, n)
        reff = rng.choice(np.asarray(recipe.r_eff_pc, float), n)
        noise_rng = np.random.default_rng(rng.integers(0, 2**63))
        img0 = render_mock(
            tuple(int(v) for v in win), field_seed, (band,), background_rate=bkg, pointing=pt.name
        )[band]
        pre = _detect(img0, recipe)
        img = img0.astype(np.float64)
        rates = 10.0 ** (-0.4 * (mags - zp))
        for r in np.unique(reff):
            sel = np.nonzero(reff == r)[0]
            stamps = render_multiband(x[sel], y[sel], {band: rates[sel]}, r / pcpx, {band: psf})[
                band
            ]
            for st in stamps:
                data = noise_rng.poisson(np.maximum(st.data, 0.0) * t) / t
                add_stamps(
                    img,
                    [
                        type(st)(
                            data=data,
                            index=st.index,
                            ix=st.ix,
                            iy=st.iy,
                            half_size=st.half_size,
                            outside_fraction=st.outside_fraction,
                        )
                    ],
                )
        img = img.astype(np.float32)
        post = _detect(img, recipe)
        claimed = _claimed(post, pre, recipe.match_radius_px) if len(post) else np.zeros(0, bool)
        fresh = post[~claimed]
        det = np.zeros(n, bool)
        err = np.full(n, np.inf)
        if len(fresh):
            d, k = cKDTree(fresh).query(
                np.column_stack([x, y]), k=1, distance_upper_bound=recipe.match_radius_px
            )
            det = np.isfinite(d)
            if det.any():
                src = fresh[k[det]]
                ph = aperture_photometry(
                    {b: img for b in BANDS},
                    src[:, 0],
                    src[:, 1],
                    {b: zp for b in BANDS},
                    {b: t for b in BANDS},
                    phot_cfg,
                )
                err[det] = np.asarray(ph[f"magerr_{band}"], float)
        rows["window"].append(np.full(n, w))
        rows["x"].append(x + win[2])
        rows["y"].append(y + win[0])
        rows["mag"].append(mags)
        rows["r_eff_pc"].append(reff)
        rows["detected"].append(det)
        rows["magerr"].append(err)
        rows["recovered"].append(det & (err <= recipe.max_err))
    out = Table({k: np.concatenate(v) for k, v in rows.items()})
    out.meta.update(
        {
            "band": band,
            "seed": int(seed),
            "field_seed": int(field_seed),
            "target_m50": target,
            "background_rate": background_rate,
            "recipe": recipe.to_dict(),
            "pointing": pt.name,
        }
    )
    return out


def mock_m50(band: str, n_windows: int = 60, seed: int = 0, **kwargs) -> dict:
    """50% recovery magnitude of single-band tests on the mock (see
    :func:`mock_single_band_test`)."""
    t = mock_single_band_test(band, n_windows, seed, **kwargs)
    fit = fit_m50(t["mag"], t["recovered"])
    fit["band"] = band
    fit["detected_fraction"] = float(np.mean(t["detected"]))
    return fit
