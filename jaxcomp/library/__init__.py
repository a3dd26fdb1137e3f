"""Cluster library: stochastic stellar-population synthesis of HST cluster photometry.

Stage 1 of the jaxcomp pipeline (see ``docs/architecture.md``): from a cluster's initial mass, age,
extinction and radius to its apparent Vega magnitudes in the LEGUS bands F275W, F336W,
F435W, F555W and F814W, computed offline from shipped compact tables.

- :class:`StarPhotometry` - per-star absolute magnitudes of every isochrone point
  (Padova 2007 Z = 0.019 by default, PARSEC Z = 0.014 / 0.020 as alternatives), from the
  Castelli & Kurucz (2004) atmospheres, HST throughputs and Vega from astro-sedpy, and
  per-star band-extinction polynomials for the Fitzpatrick (1999) R_V = 3.1 law.
- :class:`IMF`, :func:`sample_imf` - Chabrier (2005) / Kroupa (2001) IMFs and drawing of
  individual stars from an explicit seed or numpy Generator.
- :class:`PopulationSynthesis`, :func:`cluster_magnitudes`, :func:`ssp_magnitudes` -
  stochastic and fully sampled cluster photometry.
- :class:`LibraryConfig`, :func:`generate_library`, :func:`write_library`,
  :func:`read_library` - the artificial-cluster library of the C-4 paper.
- :func:`read_library_table`, :func:`read_slug_library`, :func:`validate_library_table`,
  :func:`write_library_fits` - libraries made elsewhere (SLUG FITS outputs, any table
  with the library columns) and FITS output (:mod:`jaxcomp.library.external`).
- :mod:`jaxcomp.cli.library` - the ``jaxcomp library`` subcommand;
  :mod:`jaxcomp.library.validation` - the comparison with the LEGUS NGC 628 catalogue.

- :class:`NebularEmission`, :func:`nebular_band_table` - nebular lines and continuum
  (pyneb) driven by each cluster's own ionising photons, on by default in
  :class:`LibraryConfig` (:mod:`jaxcomp.library.nebular`).

Everything
here is numpy (the library is stochastic, not differentiable) and holds no global state.
"""

from .bands import DEFAULT_BANDS, SEDPY_FILTER_NAMES
from .external import (
    read_library_table,
    read_slug_library,
    validate_library_table,
    write_library_fits,
)
from .imf import IMF, chabrier2005, kroupa2001, sample_imf
from .library import (
    LIBRARY_COLUMNS,
    LibraryConfig,
    generate_library,
    library_from_properties,
    read_library,
    write_library,
)
from .nebular import NebularEmission, nebular_band_table, nebular_spectrum
from .photometry import DEFAULT_ISOCHRONES, ISOCHRONE_SETS, StarPhotometry
from .synthesis import (
    NGC628_DISTANCE_MODULUS,
    PopulationSynthesis,
    SynthesisOptions,
    cluster_magnitudes,
    ssp_magnitudes,
)

__all__ = [
    "DEFAULT_BANDS",
    "SEDPY_FILTER_NAMES",
    "IMF",
    "chabrier2005",
    "kroupa2001",
    "sample_imf",
    "StarPhotometry",
    "NebularEmission",
    "nebular_band_table",
    "nebular_spectrum",
    "ISOCHRONE_SETS",
    "DEFAULT_ISOCHRONES",
    "PopulationSynthesis",
    "SynthesisOptions",
    "NGC628_DISTANCE_MODULUS",
    "cluster_magnitudes",
    "ssp_magnitudes",
    "LibraryConfig",
    "generate_library",
    "library_from_properties",
    "write_library",
    "read_library",
    "LIBRARY_COLUMNS",
    "read_library_table",
    "read_slug_library",
    "validate_library_table",
    "write_library_fits",
]
