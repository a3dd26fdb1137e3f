"""Matplotlib loading and the axis labels shared by the selection figures.

Used by :mod:`jaxcomp.selection.validation_plots` and :mod:`jaxcomp.selection.map_plots`.
"""

from __future__ import annotations

from .inputs import LEGUS_BANDS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


_AXIS_LABELS = {
    "log_mass": "log mass [Msun]",
    "log_age": "log age [yr]",
    "av": "A_V [mag]",
    **{f"mag_{b}": f"{b} [Vega mag]" for b in LEGUS_BANDS},
}
