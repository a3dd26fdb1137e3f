"""Tables of the population synthesis: isochrone nodes, IMF integrals and the lookups on them.

From the per-star photometry of :class:`~jaxcomp.library.photometry.StarPhotometry` and
the IMF, :class:`SynthesisTables` precomputes once per
:class:`~jaxcomp.library.synthesis.PopulationSynthesis` (of which it is a base class) the
refined isochrone nodes with their fluxes and extinction polynomials, the IMF integrals
per unit cluster mass (cumulative extincted fluxes at tabulated A_V, band-band second
moments, variance threshold masses), and looks single stars and fully sampled continua
up in them.  The method is described in :mod:`jaxcomp.library.synthesis`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SynthesisTables"]

_LN10 = math.log(10.0)
_UNEVOLVED_MASS_RATIO = 0.8
_UNEVOLVED_MIN_LOG_G = 3.5


def _refine_isochrone(mass, mag, coef, dlog):
    """Insert points so that adjacent initial masses differ by at most ``dlog`` dex.

    Magnitudes and extinction coefficients of inserted points are linear in log mass.
    """
    log_m = np.log10(mass)
    gaps = np.diff(log_m)
    n_sub = np.where(gaps > dlog, np.ceil(gaps / dlog).astype(int), 1)
    if np.all(n_sub == 1):
        return mass, mag, coef
    left = np.repeat(np.arange(mass.size - 1), n_sub)
    frac = np.concatenate([np.arange(n) / n for n in n_sub])
    new_log_m = log_m[left] + frac * gaps[left]
    new_mag = mag[left] + frac[:, None] * (mag[left + 1] - mag[left])
    new_coef = coef[left] + frac[:, None, None] * (coef[left + 1] - coef[left])
    return (
        np.concatenate([10**new_log_m, mass[-1:]]),
        np.concatenate([new_mag, mag[-1:]]),
        np.concatenate([new_coef, coef[-1:]]),
    )


def _horner_extinction(coef, av):
    """A_band [mag] = Σ_k c_k A_V^k for coef (..., 4) and av broadcastable to coef[..., 0]."""
    out = coef[..., -1] * av
    for k in range(coef.shape[-1] - 2, -1, -1):
        out = (out + coef[..., k]) * av
    return out


class SynthesisTables:
    """Node tables and lookups of :class:`~jaxcomp.library.synthesis.PopulationSynthesis` (a base class of it).

    The host sets ``_table_photometry``, ``imf`` and ``options`` before calling
    :meth:`_build_tables`; the lookups read only the read-only arrays built there.
    """

    # ----------------------------------------------------------------- tables
    def _build_tables(self) -> None:
        phot, imf, opt = self._table_photometry, self.imf, self.options
        masses, mags, coefs, alive = [], [], [], []
        for sl in phot.isochrone_slices():
            m = phot.initial_mass[sl]
            mag = phot.magnitude[sl]
            coef = phot.extinction_coefficients[sl]
            m, mag, coef = _refine_isochrone(m, mag, coef, opt.refine_dlog_mass)
            if imf.min_mass < m[0]:
                m, mag, coef = np.concatenate([[imf.min_mass], m]), np.vstack([mag[:1], mag]), np.concatenate([coef[:1], coef])
            top = sl.stop - 1
            unevolved = (
                phot.current_mass[top] >= _UNEVOLVED_MASS_RATIO * phot.initial_mass[top]
                and phot.log_g[top] >= _UNEVOLVED_MIN_LOG_G
            )
            if m[-1] < imf.max_mass:
                if unevolved:
                    m = np.concatenate([m, [imf.max_mass]])
                    mag = np.vstack([mag, mag[-1:]])
                    coef = np.concatenate([coef, coef[-1:]])
                    alive.append(imf.max_mass)
                else:
                    alive.append(m[-1])
                    dark = np.full((2, mag.shape[1]), np.inf)
                    m = np.concatenate([m, [m[-1] * (1 + 1e-9), max(imf.max_mass, m[-1] * (1 + 2e-9))]])
                    mag = np.vstack([mag, dark])
                    coef = np.concatenate([coef, coef[-1:], coef[-1:]])
            else:
                alive.append(imf.max_mass)
            masses.append(m)
            mags.append(mag)
            coefs.append(coef)
        sizes = np.array([m.size for m in masses])
        self._iso_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._iso_stop = np.cumsum(sizes)
        self._alive_mass = np.array(alive)
        self._node_mass = np.concatenate(masses)
        self._node_flux = 10.0 ** (-0.4 * np.concatenate(mags))  # (K, n_bands), zero-magnitude units at 10 pc
        self._node_coef = np.concatenate(coefs)  # (K, n_bands, 4)
        iso_index = np.repeat(np.arange(sizes.size), sizes)
        self._node_key = iso_index * 10.0 + np.log10(self._node_mass) + 3.0
        if np.any(np.diff(self._node_key) < 0):
            raise ValueError("isochrone initial masses must be non-decreasing within each isochrone")

        # IMF integrals per unit cluster mass (1 Msun formed)
        mean = imf.mean_mass
        self._node_number = imf.number_fraction_below(self._node_mass) / mean  # stars per Msun below m
        self._node_massfrac = imf.mass_fraction_below(self._node_mass)  # Msun per Msun below m
        m0, m1 = self._node_mass[:-1], self._node_mass[1:]
        d_num = np.diff(self._node_number)
        d_mass = np.diff(self._node_massfrac)
        width = m1 - m0
        same_iso = iso_index[:-1] == iso_index[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(width > 0, (m1 * d_num - d_mass) / width, 0.0)
        alpha = np.clip(np.where(same_iso, alpha, 0.0), 0.0, np.where(same_iso, d_num, 0.0))
        beta = np.where(same_iso, d_num, 0.0) - alpha
        self._interval_alpha = np.append(alpha, 0.0)
        self._interval_beta = np.append(beta, 0.0)

        # fully sampled (cumulative) extincted flux at A_V table nodes
        step = opt.av_table_step
        self._av_table = np.arange(0.0, 3.0 + 0.5 * step, step)
        att = 10.0 ** (-0.4 * _horner_extinction(self._node_coef[:, :, None, :], self._av_table[None, None, :]))
        g = self._node_flux[:, :, None] * att  # (K, n_bands, n_av)
        interval = self._interval_alpha[:, None, None] * g
        interval[:-1] += self._interval_beta[:-1, None, None] * g[1:]
        exclusive = np.concatenate([np.zeros((1,) + interval.shape[1:]), np.cumsum(interval, axis=0)[:-1]])
        self._cumulative_flux = exclusive - exclusive[self._iso_start][iso_index]  # (K, n_bands, n_av)
        self._log_cumulative_flux = np.log(np.maximum(self._cumulative_flux, 1e-300))

        # cumulative band-band second moments (Poisson covariance per Msun formed), float32
        n_bands = self._node_flux.shape[1]
        self._pair_b, self._pair_c = np.triu_indices(n_bands)
        products = g[:, self._pair_b, :] * g[:, self._pair_c, :]  # (K, n_pairs, n_av)
        moment = self._interval_alpha[:, None, None] * products
        moment[:-1] += self._interval_beta[:-1, None, None] * products[1:]
        exclusive = np.concatenate([np.zeros((1,) + moment.shape[1:]), np.cumsum(moment, axis=0)[:-1]])
        self._cumulative_moment = (exclusive - exclusive[self._iso_start][iso_index]).astype(np.float32)
        del products, moment, exclusive

        # variance threshold mass per isochrone
        f2 = self._node_flux**2
        var_interval = self._interval_alpha[:, None] * f2
        var_interval[:-1] += self._interval_beta[:-1, None] * f2[1:]
        var_threshold = np.empty(sizes.size)
        for j, (a, b) in enumerate(zip(self._iso_start, self._iso_stop)):
            cum = np.concatenate([np.zeros((1, f2.shape[1])), np.cumsum(var_interval[a : b - 1], axis=0)])
            total = cum[-1]
            ok = np.all(cum <= self.options.variance_tolerance * np.maximum(total, 1e-300), axis=1)
            var_threshold[j] = self._node_mass[a + int(np.flatnonzero(ok)[-1])]
        self._variance_threshold_mass = np.minimum(var_threshold, self._alive_mass)
        for name in (
            "_iso_start", "_iso_stop", "_alive_mass", "_node_mass", "_node_flux", "_node_coef", "_node_key",
            "_node_number", "_node_massfrac", "_interval_alpha", "_interval_beta", "_av_table", "_cumulative_flux",
            "_log_cumulative_flux", "_variance_threshold_mass", "_cumulative_moment",
        ):
            getattr(self, name).setflags(write=False)

    # ------------------------------------------------------------ lookups
    def _locate(self, iso, mass):
        """Index k of the table interval [m_k, m_k+1] holding ``mass`` on isochrone ``iso``, and its fraction."""
        key = iso * 10.0 + np.log10(mass) + 3.0
        k = np.searchsorted(self._node_key, key, side="right") - 1
        k = np.clip(k, self._iso_start[iso], self._iso_stop[iso] - 2)
        m0 = self._node_mass[k]
        width = self._node_mass[k + 1] - m0
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(width > 0, (mass - m0) / width, 0.0)
        return k, np.clip(t, 0.0, 1.0)

    def _attenuated(self, k, av):
        """Extincted node fluxes (n, n_bands) at nodes k behind av (n,)."""
        coef = np.take(self._node_coef, k, axis=0)
        return np.take(self._node_flux, k, axis=0) * np.exp(-0.4 * _LN10 * _horner_extinction(coef, av[:, None]))

    def _star_flux(self, iso, mass, av):
        k, t = self._locate(iso, mass)
        g0 = self._attenuated(k, av)
        g1 = self._attenuated(k + 1, av)
        return g0 + t[:, None] * (g1 - g0)

    def _continuum(self, iso, upper_mass, av):
        """Flux (n, n_bands) per Msun formed of the stars below ``upper_mass``, fully sampled, behind av."""
        k, _ = self._locate(iso, upper_mass)
        step = self.options.av_table_step
        n_av = self._av_table.size
        x = av / step
        i0 = np.clip(np.rint(x).astype(int) - 1, 0, n_av - 3)
        u = (x - i0)[:, None]
        logc = self._log_cumulative_flux[k]  # (n, n_bands, n_av)
        rows = np.arange(k.size)
        l0, l1, l2 = logc[rows, :, i0], logc[rows, :, i0 + 1], logc[rows, :, i0 + 2]
        table = np.exp(0.5 * (u - 1) * (u - 2) * l0 - u * (u - 2) * l1 + 0.5 * u * (u - 1) * l2)
        table = np.where(self._cumulative_flux[k][rows, :, i0] > 0, table, 0.0)
        mean = self.imf.mean_mass
        d_num = self.imf.number_fraction_below(upper_mass) / mean - self._node_number[k]
        d_mass = self.imf.mass_fraction_below(upper_mass) - self._node_massfrac[k]
        m0 = self._node_mass[k]
        width = self._node_mass[k + 1] - m0
        g0 = self._attenuated(k, av)
        g1 = self._attenuated(k + 1, av)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(width[:, None] > 0, (g1 - g0) / width[:, None], 0.0)
        partial = g0 * d_num[:, None] + slope * (d_mass - m0 * d_num)[:, None]
        return table + np.maximum(partial, 0.0)

    def _variance_below(self, iso, upper_mass):
        """IMF integral of flux^2 per Msun formed below upper_mass (unextincted), node-trapezoid accuracy."""
        k, t = self._locate(iso, upper_mass)
        f2 = self._node_flux**2
        out = np.empty((iso.size, f2.shape[1]))
        for i in range(iso.size):
            a = self._iso_start[iso[i]]
            seg = self._interval_alpha[a : k[i], None] * f2[a : k[i]] + self._interval_beta[a : k[i], None] * f2[a + 1 : k[i] + 1]
            partial = t[i] * (self._interval_alpha[k[i]] * f2[k[i]] + self._interval_beta[k[i]] * f2[k[i] + 1])
            out[i] = seg.sum(axis=0) + partial
        return out
