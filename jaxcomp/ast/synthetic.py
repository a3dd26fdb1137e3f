"""Small synthetic fields for tests and benchmarks (flat sky, noise, optional sources).

Not the mock NGC 628C field (that one follows the real galaxy); this is a flat,
seeded stand-in with the NGC 628C calibration, useful to exercise the pipeline.
"""

from __future__ import annotations

import numpy as np

from ..catalogues import BANDS
from .field import NGC628C_EXPTIMES, Field
from .profiles import add_stamps, render_multiband

__all__ = ["DEFAULT_SKY_RATES", "DEFAULT_READ_NOISE_E", "synthetic_field"]

#: Rough sky levels [counts/s/px] of drizzled 0.0396" LEGUS pixels (order of magnitude).
DEFAULT_SKY_RATES: dict[str, float] = {
    "F275W": 0.002,
    "F336W": 0.004,
    "F435W": 0.03,
    "F555W": 0.05,
    "F814W": 0.06,
}
#: Effective read noise per pixel of the combined exposures [e-].
DEFAULT_READ_NOISE_E: float = 5.0


def synthetic_field(
    shape=(600, 600),
    seed=0,
    *,
    sky: dict | None = None,
    noise: bool = True,
    read_noise_e: float = DEFAULT_READ_NOISE_E,
    sources=None,
    psf=2.0,
    name: str = "synthetic",
    **field_kwargs,
) -> Field:
    """A flat-sky five-band field with Gaussian sky + read noise and optional sources.

    ``sources``: a mapping/table with ``x, y, r_eff_px`` and ``mag_<band>`` columns,
    rendered noiselessly (they play the role of pre-existing objects). The noise per
    pixel is Normal(0, sqrt(sky t + read_noise^2) / t) in counts/s.
    """
    rng = np.random.default_rng(seed)
    sky = dict(DEFAULT_SKY_RATES if sky is None else sky)
    exptimes = dict(field_kwargs.pop("exptimes", NGC628C_EXPTIMES))
    images = {}
    for b in BANDS:
        img = np.full(shape, sky[b], np.float32)
        if noise:
            sigma = np.sqrt(sky[b] * exptimes[b] + read_noise_e**2) / exptimes[b]
            img += rng.normal(0.0, sigma, shape).astype(np.float32)
        images[b] = img
    field = Field(images=images, exptimes=exptimes, psf=psf, name=name, **field_kwargs)
    if sources is None or len(sources["x"]) == 0:
        return field
    rates = {b: field.mag_to_rate(b, np.asarray(sources[f"mag_{b}"], float)) for b in BANDS}
    stamps = render_multiband(
        np.asarray(sources["x"], float),
        np.asarray(sources["y"], float),
        rates,
        np.asarray(sources["r_eff_px"], float),
        dict(field.psf),
    )
    for b in BANDS:
        add_stamps(images[b], stamps[b])
    return Field(images=images, exptimes=exptimes, psf=psf, name=name, **field_kwargs)
