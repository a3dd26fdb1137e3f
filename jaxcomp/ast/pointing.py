"""The LEGUS NGC 628 pointings a mock field can be made of: one frozen spec per pointing.

Everything that differs between the central (``"ngc628c"``) and the east (``"ngc628e"``)
mock lives in a :class:`MockPointing`: the frame, its WCS (a TAN projection fitted to the
pointing's catalogue, (x - 1, y - 1) -> (RA, Dec)), the catalogue the real sources come from,
the position of the galaxy's nucleus in the frame (the diffuse light is that of the galaxy,
centred on the nucleus), the zeropoints and exposure times, the Adamo+2017 50% recovery
magnitudes the noise is calibrated to, and the calibration and PSF files. The recipe of the
mock (:mod:`jaxcomp.ast.mock`) is the same for every pointing; the galaxy-wide constants
(disc, bulge, colours, field-star luminosity function) stay in that module.

The PSF and noise-calibration files of a pointing are read here (:func:`mock_psfs`,
:func:`mock_noise_calibration`); both pointings use the same HST effective PSFs
(``data/mock/ngc628c_mock_psf.fits``: one PSF per band and per instrument model; F555W is on
ACS/WFC in C and on WFC3/UVIS in E, whose PSF at 0.0396"/px differs little at this sampling
and is not modelled separately — see ``data/mock/README.md``).

NGC 628E facts (measured on the shipped catalogue, ``tests/test_ast_pointing.py``)
    593 sources (all classes) at x = 390..5745, y = 752..5742 px (1-based) of its own drizzled
    frame; the TAN fit leaves 0.35 px median residual (the catalogue's coordinate rounding), the
    same as C's. NGC 628's nucleus (RA 01:36:41.745, Dec +15:47:01.18) falls at (6811.2, 5176.9)
    px of that frame, beyond its east edge (x = 6000): E's sources lie 1500-6850 px (2.9-13.0
    kpc at 9.9 Mpc, median 5.6 kpc) from the nucleus, C's 5-4590 px (median 3.3 kpc), so E's
    old diffuse light is the outer disc's. Every source has an F555W magnitude;
    37/24 are masked in F275W/F336W and 38/37 in F435W/F814W (37 of them outside the ACS
    footprint, whose edge crosses the frame). LEGUS kept E sources with CI >= 1.3 (C: 1.4).
    The mock's E frame is 6000 x 6000 px (the catalogue plus a margin, like C's 7040 x 6400).
    Adamo+2017's E per-band recovery curves cross 50% at F275W 23.63, F336W 23.91, F435W 25.59,
    F555W 25.58, F814W 24.85 mag (linear interpolation of the shipped table): the E UV bands,
    F336W above all (0.55 mag shallower than C), are the ones that differ.

Zeropoints and exposure times of E
    Not shipped with the catalogue, and not found offline. The mock uses C's values for every
    band (same instruments, except F555W, WFC3/UVIS in E): in the mock they only convert
    magnitudes to counts and set the sources' own Poisson noise; the depth is set by the
    calibrated effective background B, fitted to E's Adamo+2017 50% magnitudes, which absorbs
    any zeropoint or exposure-time difference at the detection limit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Mapping

import numpy as np

from .._data import data_path
from ..catalogues import ADAMO17_PUBLISHED_50PCT_NGC628C
from ..survey import BANDS
from .field import NGC628C_EXPTIMES, NGC628C_ZEROPOINTS
from .profiles import PSFModel

__all__ = [
    "PointingName",
    "MockPointing",
    "MOCK_POINTINGS",
    "ADAMO17_50PCT_NGC628E",
    "MOCK_PSF_OVERSAMPLING",
    "MOCK_NOISE_CORRELATION",
    "NoiseCorrelation",
    "mock_pointing",
    "mock_psfs",
    "mock_psf_digest",
    "mock_noise_calibration",
    "background_rates",
]

PointingName = Literal["ngc628c", "ngc628e"]

#: Samples per pixel of the mock's effective PSFs.
MOCK_PSF_OVERSAMPLING: int = 4

#: How a mock's pixel noise is correlated: ``"drizzle"`` (the drizzled frames' covariance,
#: :mod:`jaxcomp.ast.drizzle_noise`) or ``"white"`` (independent pixels, for diagnostics).
NoiseCorrelation = Literal["drizzle", "white"]
#: Pixel-to-pixel covariance of the mock's noise, the one its noise calibrations are made with:
#: that of the drizzled frames.
MOCK_NOISE_CORRELATION: NoiseCorrelation = "drizzle"

#: 50% magnitudes of Adamo+2017's per-band recovery curves in NGC628E (apparent Vega mag): the
#: linear interpolation of the shipped table (:func:`jaxcomp.catalogues.adamo17_50pct_magnitudes`,
#: 23.627, 23.911, 25.586, 25.576, 24.852) rounded to 0.01 mag, as the published C values are.
ADAMO17_50PCT_NGC628E: dict[str, float] = {
    "F275W": 23.63,
    "F336W": 23.91,
    "F435W": 25.59,
    "F555W": 25.58,
    "F814W": 24.85,
}


@dataclass(frozen=True)
class MockPointing:
    """What makes a mock field that of one LEGUS NGC 628 pointing.

    Attributes
    ----------
    name : {"ngc628c", "ngc628e"}
        The pointing (also the :func:`jaxcomp.catalogues.read_legus` catalogue key).
    title : str
        Human-readable name ("NGC 628C").
    shape : (int, int)
        Full frame (ny, nx) [px] at 0.0396"/px.
    wcs_crpix, wcs_crval, wcs_cd
        TAN WCS fitted to the catalogue (x - 1, y - 1) -> (RA, Dec): CRPIX (1-based FITS),
        CRVAL [deg], CD [deg/px].
    nucleus_px : (float, float)
        NGC 628's nucleus in the frame's 0-based pixels (x, y) (the centre of the old disc and
        bulge; may lie outside the frame).
    zeropoints, exptimes : Mapping[str, float]
        Vega zeropoint [mag for 1 count/s] and exposure time [s] per band.
    m50_target : Mapping[str, float]
        Adamo+2017 single-band 50% recovery magnitudes the noise is calibrated to.
    noise_file : str
        Calibration file below ``data/mock`` (``scripts/calibrate_mock_noise.py``).
    ci_min : float
        The LEGUS catalogue's concentration-index cut in this pointing [mag] (C 1.4, E 1.3;
        ``data/legus/README.md``): use it as ``CutsConfig(ci_min=...)`` when a campaign on this
        pointing's mock must select as the pointing's catalogue did (:meth:`pipeline_config`).
    psf_file : str
        Effective PSFs below ``data/mock`` (``scripts/build_mock_psfs.py``).
    seed_key : tuple of int
        Appended to the spawn keys of the field stars and noise, so two pointings drawn with one
        seed are independent (empty for C: its draws predate the pointings).
    """

    name: PointingName
    title: str
    shape: tuple[int, int]
    wcs_crpix: tuple[float, float]
    wcs_crval: tuple[float, float]
    wcs_cd: tuple[tuple[float, float], tuple[float, float]]
    nucleus_px: tuple[float, float]
    zeropoints: Mapping[str, float]
    exptimes: Mapping[str, float]
    m50_target: Mapping[str, float]
    noise_file: str
    ci_min: float = 1.4
    psf_file: str = "ngc628c_mock_psf.fits"
    seed_key: tuple[int, ...] = ()

    def pipeline_config(self, base=None):
        """``base`` (default :data:`jaxcomp.ast.settings.DEFAULT_CONFIG`) with this pointing's CI
        cut."""
        from dataclasses import replace

        from .settings import DEFAULT_CONFIG

        base = DEFAULT_CONFIG if base is None else base
        return replace(base, cuts=replace(base.cuts, ci_min=self.ci_min))

    def wcs(self, window: tuple[int, int, int, int] | None = None):
        """The TAN WCS of the full frame, or of ``window = (y0, y1, x0, x1)`` of it."""
        from astropy.wcs import WCS

        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = list(self.wcs_crval)
        w.wcs.crpix = list(self.wcs_crpix)
        w.wcs.cd = np.array(self.wcs_cd)
        w.wcs.cunit = ["deg", "deg"]
        w.wcs.set()
        if window is None:
            return w
        y0, y1, x0, x1 = window
        return w.slice((slice(y0, y1), slice(x0, x1)))


MOCK_POINTINGS: dict[str, MockPointing] = {
    "ngc628c": MockPointing(
        name="ngc628c",
        title="NGC 628C",
        shape=(7040, 6400),
        wcs_crpix=(3158.28732423, 3578.45615088),
        wcs_crval=(24.16585156, 15.77676286),
        wcs_cd=((-1.10056386e-05, 2.30018222e-10), (1.70545543e-10, 1.10055166e-05)),
        nucleus_px=(2450.3, 4204.3),
        zeropoints=NGC628C_ZEROPOINTS,
        exptimes=NGC628C_EXPTIMES,
        m50_target=ADAMO17_PUBLISHED_50PCT_NGC628C,
        noise_file="ngc628c_mock_noise.json",
    ),
    "ngc628e": MockPointing(
        name="ngc628e",
        title="NGC 628E",
        shape=(6000, 6000),
        wcs_crpix=(3067.01218105, 3246.95668647),
        wcs_crval=(24.21676914, 15.76241214),
        wcs_cd=((-1.10054821e-05, 5.73766165e-10), (4.33951400e-10, 1.10055561e-05)),
        nucleus_px=(6811.2, 5176.9),
        zeropoints=NGC628C_ZEROPOINTS,
        exptimes=NGC628C_EXPTIMES,
        m50_target=ADAMO17_50PCT_NGC628E,
        noise_file="ngc628e_mock_noise.json",
        ci_min=1.3,
        seed_key=(1,),
    ),
}


def mock_pointing(pointing: str | MockPointing = "ngc628c") -> MockPointing:
    """The :class:`MockPointing` called ``pointing`` ("ngc628c" or "ngc628e")."""
    if isinstance(pointing, MockPointing):
        return pointing
    key = str(pointing).strip().lower().replace("-", "").replace("_", "")
    if key not in MOCK_POINTINGS:
        raise ValueError(
            f"unknown mock pointing {pointing!r}; expected one of {sorted(MOCK_POINTINGS)}"
        )
    return MOCK_POINTINGS[key]


# ---------------------------------------------------------------------------------------
# the pointing's files


@lru_cache(maxsize=4)
def _psf_images(psf_file: str) -> dict[str, np.ndarray]:
    from astropy.io import fits

    path = data_path("mock", psf_file)
    if not path.is_file():
        raise FileNotFoundError(f"the mock PSFs {path} are missing; run scripts/build_mock_psfs.py")
    with fits.open(path, checksum=True) as hdul:
        images = {b: np.array(hdul[b].data, dtype=np.float64) for b in BANDS}
        ov = int(hdul[0].header["PSFOVERS"])
    if ov != MOCK_PSF_OVERSAMPLING:
        raise ValueError(
            f"{path} is sampled {ov}x, expected {MOCK_PSF_OVERSAMPLING}x; run "
            "scripts/build_mock_psfs.py"
        )
    return images


@lru_cache(maxsize=4)
def _psf_models(psf_file: str) -> dict[str, PSFModel]:
    return {
        b: PSFModel(image=img, oversampling=MOCK_PSF_OVERSAMPLING)
        for b, img in _psf_images(psf_file).items()
    }


def mock_psfs(pointing: str | MockPointing = "ngc628c") -> dict[str, PSFModel]:
    """The mock field's effective PSF of each band (``data/mock/<psf_file>``)."""
    return _psf_models(mock_pointing(pointing).psf_file)


@lru_cache(maxsize=4)
def _psf_digest(psf_file: str) -> str:
    h = hashlib.sha256()
    for b, img in _psf_images(psf_file).items():
        h.update(b.encode())
        h.update(np.ascontiguousarray(img, dtype="<f8").tobytes())
    return h.hexdigest()


def mock_psf_digest(pointing: str | MockPointing = "ngc628c") -> str:
    """sha256 of the mock PSF images (what the noise calibration records)."""
    return _psf_digest(mock_pointing(pointing).psf_file)


@lru_cache(maxsize=4)
def _noise_file_payload(noise_file: str) -> dict:
    path = data_path("mock", noise_file)
    if not path.is_file():
        raise FileNotFoundError(
            f"the mock noise calibration {path} is missing; run scripts/calibrate_mock_noise.py"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def mock_noise_calibration(pointing: str | MockPointing = "ngc628c") -> dict:
    """The calibrated noise constants and their provenance (``data/mock/<noise_file>``).

    Keys: ``background_rate`` (band -> effective background B [counts/s/px]),
    ``read_noise_e``, ``psf_sha256`` (the PSFs it was made with), ``noise_correlation`` (the
    noise covariance it was made with), ``m50_target`` (Adamo+2017),
    ``m50_mock`` (measured on the calibrated mock), ``recipe`` (the single-band test) and
    ``provenance``.
    """
    return json.loads(json.dumps(_noise_file_payload(mock_pointing(pointing).noise_file)))


def background_rates(pointing: str | MockPointing = "ngc628c") -> dict[str, float]:
    """The calibrated effective background B [counts/s/px] of each band of a pointing."""
    p = mock_pointing(pointing)
    payload = _noise_file_payload(p.noise_file)
    if payload.get("psf_sha256") != mock_psf_digest(p):
        raise ValueError(
            f"the mock noise calibration data/mock/{p.noise_file} was made with other PSFs than "
            f"data/mock/{p.psf_file}; rerun scripts/calibrate_mock_noise.py --pointing {p.name}"
        )
    made_with = payload.get("noise_correlation", "white")
    if made_with != MOCK_NOISE_CORRELATION:
        raise ValueError(
            f"the mock noise calibration data/mock/{p.noise_file} was made with {made_with!r} "
            f"noise, the mock draws {MOCK_NOISE_CORRELATION!r} noise; rerun "
            f"scripts/calibrate_mock_noise.py --pointing {p.name}"
        )
    rates = payload["background_rate"]
    return {b: float(rates[b]) for b in BANDS}
