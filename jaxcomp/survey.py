"""The survey constants of LEGUS NGC 628C, in one place (imported, never copied).

Everything else derives from these: the catalogue readers (:mod:`jaxcomp.catalogues`), the
library photometry (:mod:`jaxcomp.library`), the field and its cuts (:mod:`jaxcomp.ast`), the
selection-function inputs (:mod:`jaxcomp.selection.inputs`) and the workflow configuration.
The LEGUS pipeline settings (apertures, thresholds, cut values) live in
:mod:`jaxcomp.ast.settings`; see ``docs/architecture.md``.  No imports: this module is safe
to use from anywhere.
"""

from __future__ import annotations

__all__ = ["BANDS", "NGC628_DISTANCE_MODULUS", "PIXEL_SCALE_ARCSEC", "R_V"]

#: The five LEGUS bands, blue to red (WFC3/UVIS F275W, F336W; ACS/WFC F435W, F555W, F814W).
BANDS: tuple[str, ...] = ("F275W", "F336W", "F435W", "F555W", "F814W")
#: Distance modulus of NGC 628 [mag] (9.9 Mpc; Calzetti et al. 2015, AJ 149, 51).
NGC628_DISTANCE_MODULUS: float = 29.98
#: Pixel scale of the drizzled LEGUS NGC 628C images [arcsec/px].
PIXEL_SCALE_ARCSEC: float = 0.0396
#: Ratio of total to selective extinction used by the LEGUS SED fits (Milky Way law).
R_V: float = 3.1
