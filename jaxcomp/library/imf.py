"""Stellar initial mass functions (IMFs) and stochastic drawing of individual stars.

Two IMFs are available, both as continuous, piecewise functions of the stellar
initial mass ``m`` [Msun] normalised to one star between ``min_mass`` and
``max_mass``:

``"chabrier2005"``
    Chabrier (2005, ASSL 327, 41), the IMF of the C-4 / SLUG library: for
    ``m <= 1 Msun`` a log-normal ``dN/dlog10 m ∝ exp[-(log10 m - log10 0.2)^2 / (2 * 0.55^2)]``;
    above 1 Msun the power law ``dN/dlog10 m ∝ m^-1.35`` (``dN/dm ∝ m^-2.35``), joined
    continuously at 1 Msun.
``"kroupa2001"``
    Kroupa (2001, MNRAS 322, 231): ``dN/dm ∝ m^-0.3`` below 0.08 Msun, ``m^-1.3``
    from 0.08 to 0.5 Msun and ``m^-2.3`` above, continuous at the breaks.

Number and mass integrals, and the inverse of the number cumulative distribution,
are analytic (power laws in closed form, the log-normal through ``erf``/``erfinv``),
so drawing stars is exact inverse-transform sampling with no tabulation error.

Every random draw takes an explicit :class:`numpy.random.Generator` (or an integer
seed that is turned into one); nothing here touches global random state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from scipy.special import erf, ndtr, ndtri

__all__ = ["IMF", "IMF_KINDS", "SAMPLING_METHODS", "chabrier2005", "kroupa2001", "sample_imf", "as_generator"]

IMF_KINDS = ("chabrier2005", "kroupa2001")
SAMPLING_METHODS = ("stop_nearest", "stop_before", "stop_after", "poisson")

_LN10 = math.log(10.0)


def as_generator(rng: np.random.Generator | int | np.random.SeedSequence) -> np.random.Generator:
    """Return a numpy Generator from a Generator, an integer seed or a SeedSequence.

    Parameters
    ----------
    rng : numpy.random.Generator or int or numpy.random.SeedSequence
        The source of randomness.  ``None`` is refused on purpose: every draw in
        jaxcomp is reproducible from an explicit seed.

    Raises
    ------
    ValueError
        If ``rng`` is ``None`` or of another type.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer, np.random.SeedSequence)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise ValueError(
        f"an explicit random source is required, got {rng!r}; pass a numpy.random.Generator "
        "(e.g. numpy.random.default_rng(42)) or an integer seed"
    )


@dataclass(frozen=True)
class _Segment:
    """One piece of a piecewise IMF on ``[lower_mass, upper_mass]`` [Msun].

    ``kind == "power_law"``: ``dN/dm = amplitude * m**-slope``.
    ``kind == "lognormal"``: ``dN/dlog10 m = amplitude * exp(-(log10 m - log10_peak_mass)**2 / (2 sigma_dex**2))``.
    """

    lower_mass: float
    upper_mass: float
    kind: str
    amplitude: float
    slope: float = 0.0
    log10_peak_mass: float = 0.0
    sigma_dex: float = 1.0

    # --- power-law helpers -------------------------------------------------
    def _power_integral(self, m1, m2, exponent):
        """Integral of amplitude * m**(exponent - 1 - slope + 1) ... in closed form.

        Returns ``∫ amplitude * m**(exponent - slope) dm`` from m1 to m2 (exponent 0 for
        number, 1 for mass).
        """
        p = exponent - self.slope + 1.0
        if abs(p) < 1e-12:
            return self.amplitude * (np.log(m2) - np.log(m1))
        return self.amplitude * (np.power(m2, p) - np.power(m1, p)) / p

    # --- log-normal helpers ------------------------------------------------
    def _lognormal_z(self, m, shift=0.0):
        return (np.log10(m) - self.log10_peak_mass - shift) / (self.sigma_dex * math.sqrt(2.0))

    def number(self, m1, m2):
        """Number of stars (unnormalised) between masses ``m1 <= m2`` inside the segment."""
        if self.kind == "power_law":
            return self._power_integral(m1, m2, 0.0)
        scale = self.amplitude * self.sigma_dex * math.sqrt(math.pi / 2.0)
        return scale * (erf(self._lognormal_z(m2)) - erf(self._lognormal_z(m1)))

    def mass(self, m1, m2):
        """Mass in stars [Msun] (unnormalised) between ``m1 <= m2`` inside the segment."""
        if self.kind == "power_law":
            return self._power_integral(m1, m2, 1.0)
        shift = self.sigma_dex**2 * _LN10
        scale = (
            self.amplitude
            * self.sigma_dex
            * math.sqrt(math.pi / 2.0)
            * math.exp(self.log10_peak_mass * _LN10 + 0.5 * (self.sigma_dex * _LN10) ** 2)
        )
        return scale * (erf(self._lognormal_z(m2, shift)) - erf(self._lognormal_z(m1, shift)))

    def mass_squared(self, m1, m2):
        """∫ m^2 dN [Msun^2] (unnormalised) between ``m1 <= m2`` inside the segment."""
        if self.kind == "power_law":
            return self._power_integral(m1, m2, 2.0)
        shift = 2.0 * self.sigma_dex**2 * _LN10
        scale = (
            self.amplitude
            * self.sigma_dex
            * math.sqrt(math.pi / 2.0)
            * math.exp(2.0 * self.log10_peak_mass * _LN10 + 2.0 * (self.sigma_dex * _LN10) ** 2)
        )
        return scale * (erf(self._lognormal_z(m2, shift)) - erf(self._lognormal_z(m1, shift)))

    def mass_at_number(self, number_above_lower):
        """Inverse of :meth:`number`: the mass m with ``number(lower_mass, m) = number_above_lower``."""
        m1 = self.lower_mass
        if self.kind == "power_law":
            p = 1.0 - self.slope
            if abs(p) < 1e-12:
                return m1 * np.exp(number_above_lower / self.amplitude)
            return np.power(m1**p + number_above_lower * p / self.amplitude, 1.0 / p)
        # number = amplitude * sigma * sqrt(2 pi) * [Phi(t) - Phi(t1)], t = (log10 m - peak) / sigma
        scale = self.amplitude * self.sigma_dex * math.sqrt(2.0 * math.pi)
        t1 = (math.log10(m1) - self.log10_peak_mass) / self.sigma_dex
        p = float(ndtr(t1)) + np.atleast_1d(np.asarray(number_above_lower, dtype=float)) / scale
        np.clip(p, 1e-300, 1.0 - 1e-16, out=p)
        t = ndtri(p)
        return np.exp(_LN10 * (self.log10_peak_mass + self.sigma_dex * t))

    def density(self, m):
        """dN/dm (unnormalised) at mass m [Msun^-1]."""
        if self.kind == "power_law":
            return self.amplitude * np.power(m, -self.slope)
        z = (np.log10(m) - self.log10_peak_mass) / self.sigma_dex
        return self.amplitude * np.exp(-0.5 * z * z) / (m * _LN10)


def _raw_segments(kind: str) -> list[_Segment]:
    """Unclipped, continuous segments of an IMF over (0, inf), amplitudes unnormalised."""
    if kind == "chabrier2005":
        sigma = 0.55
        log_peak = math.log10(0.2)
        lognormal = _Segment(0.0, 1.0, "lognormal", 1.0, log10_peak_mass=log_peak, sigma_dex=sigma)
        # continuity of dN/dm at 1 Msun: lognormal density there / 1**-2.35
        amp_high = float(lognormal.density(1.0))
        return [lognormal, _Segment(1.0, math.inf, "power_law", amp_high, slope=2.35)]
    if kind == "kroupa2001":
        low = _Segment(0.0, 0.08, "power_law", 1.0, slope=0.3)
        mid_amp = 0.08 ** (-0.3) / 0.08 ** (-1.3)
        mid = _Segment(0.08, 0.5, "power_law", mid_amp, slope=1.3)
        high_amp = mid_amp * 0.5 ** (-1.3) / 0.5 ** (-2.3)
        return [low, mid, _Segment(0.5, math.inf, "power_law", high_amp, slope=2.3)]
    raise ValueError(f"unknown IMF kind {kind!r}; choose one of {IMF_KINDS}")


@dataclass(frozen=True)
class IMF:
    """A stellar initial mass function between ``min_mass`` and ``max_mass``.

    Parameters
    ----------
    kind : {"chabrier2005", "kroupa2001"}
        Functional form (see the module docstring).
    min_mass : float
        Lower stellar mass limit [Msun] (default 0.08).
    max_mass : float
        Upper stellar mass limit [Msun] (default 120).

    Raises
    ------
    ValueError
        For an unknown ``kind``, non-finite or non-positive limits, or
        ``max_mass <= min_mass``.
    """

    kind: Literal["chabrier2005", "kroupa2001"] = "chabrier2005"
    min_mass: float = 0.08
    max_mass: float = 120.0

    def __post_init__(self) -> None:
        if self.kind not in IMF_KINDS:
            raise ValueError(f"unknown IMF kind {self.kind!r}; choose one of {IMF_KINDS}")
        lo, hi = float(self.min_mass), float(self.max_mass)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0.0:
            raise ValueError(
                f"IMF mass limits must be finite and positive, got min_mass={self.min_mass!r}, "
                f"max_mass={self.max_mass!r} [Msun]"
            )
        if hi <= lo:
            raise ValueError(
                f"IMF upper mass limit max_mass={hi} Msun is not above the lower limit min_mass={lo} Msun; "
                "swap the two values (e.g. IMF(min_mass=0.08, max_mass=120))"
            )

    # ------------------------------------------------------------------ setup
    @cached_property
    def _segments(self) -> tuple[_Segment, ...]:
        out = []
        for seg in _raw_segments(self.kind):
            lo, hi = max(seg.lower_mass, self.min_mass), min(seg.upper_mass, self.max_mass)
            if hi > lo:
                out.append(_Segment(lo, hi, seg.kind, seg.amplitude, seg.slope, seg.log10_peak_mass, seg.sigma_dex))
        return tuple(out)

    @cached_property
    def _segment_numbers(self) -> np.ndarray:
        return np.array([float(s.number(s.lower_mass, s.upper_mass)) for s in self._segments])

    @cached_property
    def _segment_masses(self) -> np.ndarray:
        return np.array([float(s.mass(s.lower_mass, s.upper_mass)) for s in self._segments])

    @cached_property
    def _edges(self) -> np.ndarray:
        return np.array([s.lower_mass for s in self._segments] + [self._segments[-1].upper_mass])

    @property
    def mean_mass(self) -> float:
        """Mean stellar initial mass [Msun]."""
        return float(self._segment_masses.sum() / self._segment_numbers.sum())

    @property
    def stars_per_unit_mass(self) -> float:
        """Number of stars per Msun of stars formed [Msun^-1]."""
        return 1.0 / self.mean_mass

    # ------------------------------------------------------------ cumulatives
    def _cumulative(self, mass, which: str) -> np.ndarray:
        m = np.clip(np.asarray(mass, dtype=float), self.min_mass, self.max_mass)
        totals = self._segment_numbers if which == "number" else self._segment_masses
        before = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
        out = np.zeros_like(m)
        for i, seg in enumerate(self._segments):
            inside = (m >= seg.lower_mass) & (m <= seg.upper_mass) if i == len(self._segments) - 1 else (
                (m >= seg.lower_mass) & (m < seg.upper_mass)
            )
            if np.any(inside):
                f = seg.number if which == "number" else seg.mass
                out[inside] = before[i] + f(seg.lower_mass, m[inside])
        return out / totals.sum()

    def moments_between(self, lower_mass, upper_mass):
        """Number fraction, mean mass [Msun] and mass variance [Msun^2] of the IMF truncated to [lower, upper].

        ``lower_mass`` and ``upper_mass`` broadcast; where the interval holds no stars the
        mean and variance are 0.
        """
        lo = np.clip(np.asarray(lower_mass, dtype=float), self.min_mass, self.max_mass)
        hi = np.clip(np.asarray(upper_mass, dtype=float), self.min_mass, self.max_mass)
        lo, hi = np.broadcast_arrays(lo, hi)
        number = np.zeros(lo.shape)
        mass = np.zeros(lo.shape)
        mass2 = np.zeros(lo.shape)
        for seg in self._segments:
            a = np.clip(lo, seg.lower_mass, seg.upper_mass)
            b = np.clip(hi, seg.lower_mass, seg.upper_mass)
            ok = b > a
            if np.any(ok):
                number[ok] += seg.number(a[ok], b[ok])
                mass[ok] += seg.mass(a[ok], b[ok])
                mass2[ok] += seg.mass_squared(a[ok], b[ok])
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(number > 0, mass / number, 0.0)
            variance = np.where(number > 0, np.maximum(mass2 / number - mean**2, 0.0), 0.0)
        return number / self._segment_numbers.sum(), mean, variance

    def number_fraction_below(self, mass) -> np.ndarray:
        """Fraction of stars (by number) with initial mass below ``mass`` [Msun]."""
        return self._cumulative(mass, "number")

    def mass_fraction_below(self, mass) -> np.ndarray:
        """Fraction of the stellar mass formed in stars below ``mass`` [Msun]."""
        return self._cumulative(mass, "mass")

    def dn_dm(self, mass) -> np.ndarray:
        """Probability density of stellar initial mass, dN/dm per star [Msun^-1] (zero outside the limits)."""
        m = np.asarray(mass, dtype=float)
        out = np.zeros_like(m)
        total = self._segment_numbers.sum()
        for i, seg in enumerate(self._segments):
            last = i == len(self._segments) - 1
            inside = (m >= seg.lower_mass) & ((m <= seg.upper_mass) if last else (m < seg.upper_mass))
            out[inside] = seg.density(m[inside]) / total
        return out

    def mass_at_number_fraction(self, fraction) -> np.ndarray:
        """Inverse of :meth:`number_fraction_below`: stellar mass [Msun] at a number fraction in [0, 1]."""
        cum = np.concatenate([[0.0], np.cumsum(self._segment_numbers)])
        fraction = np.asarray(fraction, dtype=float)
        target = fraction.reshape(-1) * cum[-1]
        np.clip(target, 0.0, cum[-1], out=target)
        if len(self._segments) == 1:
            out = np.atleast_1d(np.asarray(self._segments[0].mass_at_number(target), dtype=float))
        else:
            index = np.zeros(target.shape, dtype=np.intp)
            for edge in cum[1:-1]:
                index += target >= edge
            out = np.empty_like(target)
            for i, seg in enumerate(self._segments):
                sel = index == i
                if np.any(sel):
                    out[sel] = seg.mass_at_number(target[sel] - cum[i])
        np.clip(out, self.min_mass, self.max_mass, out=out)
        return out.reshape(fraction.shape)

    # ------------------------------------------------------------------ draws
    def draw(self, n_stars: int, rng: np.random.Generator | int) -> np.ndarray:
        """Draw ``n_stars`` independent initial masses [Msun] by inverse-transform sampling."""
        gen = as_generator(rng)
        return self.mass_at_number_fraction(gen.random(int(n_stars)))

    def draw_between(self, lower_mass, upper_mass, rng: np.random.Generator | int) -> np.ndarray:
        """Draw one mass per element from the IMF truncated to ``[lower_mass, upper_mass]`` [Msun].

        ``lower_mass`` and ``upper_mass`` are broadcast arrays; the output has their shape.
        """
        gen = as_generator(rng)
        lo = self.number_fraction_below(lower_mass)
        hi = self.number_fraction_below(upper_mass)
        u = gen.random(np.broadcast(lo, hi).shape)
        return self.mass_at_number_fraction(lo + u * (hi - lo))


def chabrier2005(min_mass: float = 0.08, max_mass: float = 120.0) -> IMF:
    """The Chabrier (2005) IMF between ``min_mass`` and ``max_mass`` [Msun]."""
    return IMF("chabrier2005", min_mass, max_mass)


def kroupa2001(min_mass: float = 0.08, max_mass: float = 120.0) -> IMF:
    """The Kroupa (2001) IMF between ``min_mass`` and ``max_mass`` [Msun]."""
    return IMF("kroupa2001", min_mass, max_mass)


def sample_imf(
    cluster_mass: float,
    imf: IMF | None = None,
    *,
    rng: np.random.Generator | int,
    sampling: str = "stop_nearest",
) -> np.ndarray:
    """Draw the individual stars of a cluster of given initial mass.

    Parameters
    ----------
    cluster_mass : float
        Target initial (birth) stellar mass of the cluster [Msun], > 0.
    imf : IMF, optional
        The initial mass function (default Chabrier 2005, 0.08-120 Msun).
    rng : numpy.random.Generator or int
        Explicit random source (keyword-only, required).
    sampling : {"stop_nearest", "stop_before", "stop_after", "poisson"}
        How the mass budget is met.  ``"stop_nearest"`` (the SLUG default) draws
        stars until the running total passes ``cluster_mass`` and keeps the last
        star only if that brings the total closer to the target; ``"stop_before"``
        always drops it, ``"stop_after"`` always keeps it; ``"poisson"`` draws a
        Poisson number of stars with mean ``cluster_mass / imf.mean_mass`` and no
        mass constraint.

    Returns
    -------
    numpy.ndarray
        Initial masses of the stars [Msun], in the order drawn.

    Raises
    ------
    ValueError
        For a non-positive or non-finite ``cluster_mass`` or an unknown ``sampling``.
    """
    imf = IMF() if imf is None else imf
    gen = as_generator(rng)
    mass = float(cluster_mass)
    if not math.isfinite(mass) or mass <= 0.0:
        raise ValueError(f"cluster_mass must be a finite positive mass in Msun, got {cluster_mass!r}")
    if sampling not in SAMPLING_METHODS:
        raise ValueError(f"unknown sampling {sampling!r}; choose one of {SAMPLING_METHODS}")
    expected = mass / imf.mean_mass
    if sampling == "poisson":
        return imf.draw(gen.poisson(expected), gen)
    drawn: list[np.ndarray] = []
    total = 0.0
    while True:
        batch = imf.draw(int(expected + 5.0 * math.sqrt(expected) + 16), gen)
        running = total + np.cumsum(batch)
        crossing = int(np.searchsorted(running, mass, side="left"))
        if crossing < batch.size:
            before = total if crossing == 0 else running[crossing - 1]
            after = running[crossing]
            keep_last = sampling == "stop_after" or (
                sampling == "stop_nearest" and abs(after - mass) < abs(mass - before)
            )
            drawn.append(batch[: crossing + (1 if keep_last else 0)])
            return np.concatenate(drawn)
        drawn.append(batch)
        total = float(running[-1])
        expected = max((mass - total) / imf.mean_mass, 1.0)
