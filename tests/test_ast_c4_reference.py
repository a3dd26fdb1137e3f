"""The C-4 reference injections (jaxcomp.ast.c4_reference): how C-4 made and measured them."""

from __future__ import annotations

import numpy as np
import pytest

from jaxcomp.ast.c4_reference import (
    C4_PHOT_EPADU,
    c4_injection_exposure_s,
    read_c4_injection_ci,
)
from jaxcomp.ast.pointing import mock_pointing


@pytest.mark.parametrize("band", ["F336W", "F555W", "F814W"])
def test_c4_errors_are_iraf_errors_with_a_gain_of_one_on_count_rates(band):
    """C-4's 3 px errors are at least, and for most clusters equal to, the Poisson error of
    the 3 px flux in counts/s with IRAF epadu = 1 (the sky terms add a little); with the
    frame's real gain (its exposure time) they would be 30-50 times smaller."""
    real = read_c4_injection_ci(band)
    flux3 = 10.0 ** (-0.4 * (real["mag3"] - mock_pointing("ngc628c").zeropoints[band]))
    ratio = real["err3"] / (1.0857 / np.sqrt(flux3 * C4_PHOT_EPADU))
    assert ratio.min() > 0.975  # the file's 3-decimal rounding
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)


def test_c4_injection_exposure_is_the_baolab_rescaling():
    # ZPOINT 1e10 counts at 0 mag, divided by 1e10 * 10**(-0.4 ZP): F555W ZP 25.731 -> 0.510 s
    assert c4_injection_exposure_s(25.731) == pytest.approx(1e10 * 10 ** (-0.4 * 25.731))
    assert c4_injection_exposure_s(25.731) == pytest.approx(0.510, abs=0.001)
    assert c4_injection_exposure_s(23.4836) == pytest.approx(4.04, abs=0.01)
