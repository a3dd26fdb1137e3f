"""Tiny, deterministic inputs for the campaign tests (also imported by their subprocesses)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxcomp.ast.campaign_config import CampaignConfig
from jaxcomp.ast.synthetic import synthetic_field
from jaxcomp.catalogues import BANDS


def tiny_field(shape=(300, 300)):
    """A 300 x 300 px synthetic field with 25 pre-existing sources."""
    rng = np.random.default_rng(3)
    n = 25
    src = {
        "x": rng.uniform(10, shape[1] - 10, n),
        "y": rng.uniform(10, shape[0] - 10, n),
        "r_eff_px": rng.uniform(0, 2, n),
    }
    for b in BANDS:
        src[f"mag_{b}"] = rng.uniform(20.5, 24.0, n)
    return synthetic_field(shape, seed=1, sources=src, name="tiny")


def tiny_library(n=800, seed=0):
    """Library-like rows: cluster_id, log_mass, log_age, av, r_eff_pc (1-3 pc), mag_<band>."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "cluster_id": np.arange(n, dtype=np.int64) + 1000,
            "log_mass": rng.uniform(2, 8, n),
            "log_age": rng.uniform(5, 10, n),
            "av": rng.uniform(0, 3, n),
            "r_eff_pc": rng.integers(1, 4, n).astype(np.int64),
        }
    )
    mv = rng.uniform(20.0, 27.0, n)
    for b, c in zip(BANDS, (-0.5, -0.3, 0.2, 0.0, -0.4)):
        df[f"mag_{b}"] = mv + c
    return df


def tiny_config(**kw):
    base = dict(r_eff_pc=(1.0, 2.0), frames_per_reff=4, clusters_per_frame=20, seed=5)
    base.update(kw)
    return CampaignConfig(**base)
