"""Ports of SExtractor 2.x's own background, deblending and CLEAN (opt-in detection).

* :mod:`.background` - :func:`sextractor_background` (``back.c``).
* :mod:`.deblend` - :func:`sextractor_deblend` (``deblend.c``).
* :mod:`.clean` - :func:`sextractor_clean` (``clean.c``) and its driver on a detection table.

:data:`jaxcomp.ast.settings.SEXTRACTOR_PORT` switches all three on; the default pipeline
uses the photutils mapping (:data:`jaxcomp.ast.settings.SEXTRACTOR_TO_PHOTUTILS`). Measured
against SExtractor 2.25 in ``benchmarks/compare_sextractor.py``; see
``docs/architecture.md``.
"""

from .background import sextractor_background
from .clean import sextractor_clean
from .deblend import sextractor_deblend

__all__ = ["sextractor_background", "sextractor_clean", "sextractor_deblend"]
