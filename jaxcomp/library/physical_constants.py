"""Physical constants of the per-star photometry build (cgs units, wavelengths in Angstrom).

The one home of the constants used by :mod:`jaxcomp.library.stellar_inputs`,
:mod:`jaxcomp.library.band_projection`, :mod:`jaxcomp.library.build` and
:mod:`jaxcomp.library.wmbasic`.
"""

__all__ = ["L_SUN_ERG_S", "TEN_PARSEC_CM", "LYMAN_LIMIT_ANGSTROM"]

#: Nominal solar luminosity (IAU 2015 resolution B3) [erg s^-1].
L_SUN_ERG_S = 3.828e33
#: 10 parsec [cm].
TEN_PARSEC_CM = 10.0 * 3.0856775814913673e18
_SIGMA_SB = 5.670374419e-5  # erg s^-1 cm^-2 K^-4
_H = 6.62607015e-27  # erg s
_C_ANGSTROM = 2.99792458e18  # Angstrom s^-1
_K_B = 1.380649e-16  # erg K^-1
#: Hydrogen ionisation edge [Angstrom] (13.598 eV).
LYMAN_LIMIT_ANGSTROM = 911.75
