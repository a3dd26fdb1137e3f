"""Stochastic draws of cluster members for the population synthesis.

Per cluster, :class:`StochasticDraws` draws the individually sampled stars (whole
clusters with the mass budget enforced, or a Poisson number above the threshold mass),
the Gaussian scatter of the fully sampled rest, and sums the blended, extincted fluxes
of the drawn stars.  It is a base class of
:class:`~jaxcomp.library.synthesis.PopulationSynthesis` and works on the tables of
:class:`~jaxcomp.library.synthesis_tables.SynthesisTables`; the method is described in
:mod:`jaxcomp.library.synthesis`.
"""

from __future__ import annotations

import math

import numpy as np

from .synthesis_tables import _LN10, _horner_extinction

__all__ = ["StochasticDraws"]


class StochasticDraws:
    """Stochastic core of :class:`~jaxcomp.library.synthesis.PopulationSynthesis` (a base class of it).

    Uses the host's ``imf``, ``options`` and the tables and lookups of
    :class:`~jaxcomp.library.synthesis_tables.SynthesisTables`; every method takes an
    explicit numpy Generator where it draws.
    """

    # ------------------------------------------------------------ stochastic core
    def _chunks(self, mass):
        """Consecutive index slices holding about ``chunk_stars`` expected star draws each."""
        opt = self.options
        n_full = mass / self.imf.mean_mass
        cost = np.where(n_full <= opt.full_sampling_max_stars, n_full + 5 * np.sqrt(n_full) + 16, opt.max_stochastic_stars)
        edges = np.searchsorted(np.cumsum(cost), np.arange(opt.chunk_stars, cost.sum() + opt.chunk_stars, opt.chunk_stars))
        edges = np.unique(np.concatenate([[0], np.minimum(edges + 1, mass.size), [mass.size]]))
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    def _draw_whole_clusters(self, mass, threshold, gen):
        """Stop-rule sampling of every star of each cluster.

        The draw sequence of a cluster is split in two.  Its first ``n1`` stars - so many
        that their total stays below the cluster mass by more than 8 standard deviations
        - only matter through their masses: the number of them above ``threshold`` is
        binomial and those stars are drawn individually, while the total mass of the
        (thousands of) stars below is drawn from its normal distribution (the IMF's mean
        and variance below the threshold).  The remaining stars are drawn one by one until
        the running mass crosses the cluster mass, where the stop rule acts exactly as if
        every star had been drawn individually.

        Returns
        -------
        owner, star_mass : numpy.ndarray
            Index (into ``mass``) and mass [Msun] of individually drawn stars.
        aggregated_mass_below : numpy.ndarray, shape (n,)
            Total mass [Msun] of the aggregated stars below the threshold.
        """
        imf, rule = self.imf, self.options.sampling
        n_clusters = mass.size
        expected = mass / imf.mean_mass
        _, _, var_all = imf.moments_between(imf.min_mass, imf.max_mass)
        spread = math.sqrt(float(var_all)) / imf.mean_mass
        n_first = np.floor(expected - 8.0 * spread * np.sqrt(expected) - 20.0).astype(np.int64)
        n_first = np.maximum(n_first, 0)
        frac_below, mean_below, var_below = imf.moments_between(imf.min_mass, threshold)
        n_high = gen.binomial(n_first, np.clip(1.0 - frac_below, 0.0, 1.0))
        n_low = n_first - n_high
        low_mass = np.maximum(
            gen.normal(n_low * mean_below, np.sqrt(n_low * var_below)), 0.0
        ) * (n_low > 0)
        high_owner = np.repeat(np.arange(n_clusters), n_high)
        lo_frac = np.repeat(frac_below, n_high)
        high_mass = imf.mass_at_number_fraction(lo_frac + gen.random(high_owner.size) * (1.0 - lo_frac))
        first_total = low_mass + np.bincount(high_owner, weights=high_mass, minlength=n_clusters)
        overflow = first_total >= mass  # (practically never) restart those clusters from scratch
        if np.any(overflow):
            keep = ~overflow[high_owner]
            high_owner, high_mass = high_owner[keep], high_mass[keep]
            first_total[overflow] = 0.0
            low_mass[overflow] = 0.0
            n_first[overflow] = 0

        remaining = mass - first_total
        n_draw = np.ceil(remaining / imf.mean_mass + 5.0 * np.sqrt(np.maximum(remaining / imf.mean_mass, 1.0)) + 16).astype(np.int64)
        todo = np.arange(n_clusters)
        out_cluster, out_mass = [high_owner], [high_mass]
        while todo.size:
            counts = n_draw[todo]
            start = np.concatenate([[0], np.cumsum(counts)[:-1]])
            stars = imf.draw(int(counts.sum()), gen)
            running = np.cumsum(stars)
            base = np.where(start > 0, running[np.maximum(start - 1, 0)], 0.0)
            target = remaining[todo]
            cross = np.searchsorted(running, target + base, side="left")
            done = cross < start + counts
            crs = np.minimum(cross, start + counts - 1)
            before = np.where(crs > start, running[np.maximum(crs - 1, 0)] - base, 0.0)
            after = running[crs] - base
            if rule == "stop_after":
                keep_last = np.ones(todo.size, bool)
            elif rule == "stop_before":
                keep_last = np.zeros(todo.size, bool)
            else:
                keep_last = np.abs(after - target) < np.abs(target - before)
            n_keep = crs - start + keep_last
            owner = np.repeat(np.arange(todo.size), counts)
            position = np.arange(stars.size) - start[owner]
            keep = done[owner] & (position < n_keep[owner])
            out_cluster.append(todo[owner[keep]])
            out_mass.append(stars[keep])
            n_draw[todo[~done]] *= 2
            todo = todo[~done]
        return np.concatenate(out_cluster), np.concatenate(out_mass), low_mass

    def _stochastic_fluxes(self, mass, j, w, av, gen):
        n = mass.size
        threshold, alive, fully_drawn = self._thresholds_fast(mass, j)
        flux = np.zeros((n, self._n_columns))
        cont_lo = self._continuum(j, threshold, av)
        cont_hi = self._continuum(j + 1, threshold, av)
        continuum_per_mass = (1 - w)[:, None] * cont_lo + w[:, None] * cont_hi  # per Msun formed, stars < threshold

        star_cluster = []
        star_mass = []
        # whole-cluster regime: stars below the threshold count through their drawn mass
        whole = np.flatnonzero(fully_drawn)
        if whole.size:
            owner, m, aggregated = self._draw_whole_clusters(mass[whole], threshold[whole], gen)
            owner = whole[owner]
            below = m <= threshold[owner]
            mass_below = np.bincount(owner[below], weights=m[below], minlength=n)
            mass_below[whole] += aggregated
            frac_below = self.imf.mass_fraction_below(threshold)
            with np.errstate(divide="ignore", invalid="ignore"):
                per_mass_below = np.where(frac_below[:, None] > 0, continuum_per_mass / frac_below[:, None], 0.0)
            flux[whole] += (mass_below[:, None] * per_mass_below)[whole]
            star_cluster.append(owner[~below])
            star_mass.append(m[~below])
        # Poisson regime: stars above the threshold drawn one by one; below it a fully sampled
        # integral plus Gaussian scatter with the IMF's Poisson covariance across bands
        part = np.flatnonzero(~fully_drawn)
        if part.size:
            noise = self._continuum_scatter(mass[part], j[part], w[part], threshold[part], av[part], gen)
            mean_part = mass[part, None] * continuum_per_mass[part]
            flux[part] += np.maximum(mean_part + noise, 1e-3 * mean_part)
            n_alive = self.imf.number_fraction_below(alive[part])
            n_thr = self.imf.number_fraction_below(threshold[part])
            expected = mass[part] / self.imf.mean_mass * np.maximum(n_alive - n_thr, 0.0)
            counts = gen.poisson(expected)
            owner = np.repeat(part, counts)
            u = gen.random(owner.size)
            lo = np.repeat(n_thr, counts)
            hi = np.repeat(n_alive, counts)
            star_cluster.append(owner)
            star_mass.append(self.imf.mass_at_number_fraction(lo + u * (hi - lo)))
        if star_cluster:
            owner = np.concatenate(star_cluster)
            m = np.concatenate(star_mass)
            if owner.size:
                fw = self._member_fluxes(owner, m, j, w, av)
                for b in range(flux.shape[1]):
                    flux[:, b] += np.bincount(owner, weights=fw[:, b], minlength=n)
        return flux

    def _member_fluxes(self, owner, m, j, w, av):
        """Blended, extincted fluxes (n_stars, n_bands) of drawn stars of clusters ``owner``.

        Clusters with many drawn stars first attenuate every table node of their two
        isochrones (one polynomial per node instead of per star); the others attenuate
        per star.  Both are the same exact node-wise computation.
        """
        n = j.size
        per_cluster = np.bincount(owner, minlength=n)
        span = self._iso_stop[np.minimum(j + 1, self._iso_stop.size - 1)] - self._iso_start[j]
        tabled = per_cluster > span // 8
        out = np.empty((owner.size, self._n_columns))
        star_tabled = tabled[owner]
        if np.any(~star_tabled):
            o = owner[~star_tabled]
            a = av[o]
            out[~star_tabled] = (1 - w[o])[:, None] * self._star_flux(j[o], m[~star_tabled], a) + w[o][:, None] * self._star_flux(
                j[o] + 1, m[~star_tabled], a
            )
        if np.any(star_tabled):
            clusters = np.flatnonzero(tabled)
            first = self._iso_start[j[clusters]]
            length = self._iso_stop[j[clusters] + 1] - first
            base = np.concatenate([[0], np.cumsum(length)[:-1]])
            table = np.empty((int(length.sum()), self._n_columns))
            # clusters on the same isochrone pair share one contiguous block of nodes:
            # attenuate it for all their A_V at once (slices, no gathers)
            pair = j[clusters]
            order = np.argsort(pair, kind="stable")
            bounds = np.flatnonzero(np.diff(pair[order])) + 1
            for group in np.split(order, bounds):
                a, b = self._iso_start[pair[group[0]]], self._iso_stop[pair[group[0]] + 1]
                av_group = av[clusters[group]][:, None, None]
                att = np.exp(-0.4 * _LN10 * _horner_extinction(self._node_coef[None, a:b], av_group))
                block = self._node_flux[None, a:b] * att  # (n_group, n_nodes, n_bands)
                rows = base[group][:, None] + np.arange(b - a)[None, :]
                table[rows.ravel()] = block.reshape(-1, block.shape[-1])
            where = np.full(n, -1)
            where[clusters] = np.arange(clusters.size)
            o = owner[star_tabled]
            slot = where[o]
            ms = m[star_tabled]
            blended = np.zeros((o.size, self._n_columns))
            for iso, weight in ((j[o], 1 - w[o]), (j[o] + 1, w[o])):
                k, t = self._locate(iso, ms)
                row = base[slot] + (k - first[slot])
                g0 = np.take(table, row, axis=0)
                blended += weight[:, None] * (g0 + t[:, None] * (np.take(table, row + 1, axis=0) - g0))
            out[star_tabled] = blended
        return out

    def _continuum_scatter(self, mass, j, w, threshold, av, gen):
        """Gaussian flux scatter (n, n_bands) of the fully sampled stars below ``threshold``.

        Their summed flux has the IMF's Poisson covariance ``M ∫ φ F_b F_c dm`` (per band
        pair, extincted); many stars contribute, so it is drawn from a multivariate
        normal with that covariance.
        """
        n_bands = self._n_columns
        step = self.options.av_table_step
        x = av / step
        i0 = np.clip(np.floor(x).astype(int), 0, self._av_table.size - 2)
        u = np.clip(x - i0, 0.0, 1.0)
        cov = np.zeros((mass.size, n_bands, n_bands))
        rows = np.arange(mass.size)
        for iso, weight in ((j, 1 - w), (j + 1, w)):
            k, t = self._locate(iso, threshold)
            pairs = np.zeros((mass.size, self._pair_b.size))
            log_diag = np.zeros((mass.size, self._pair_b.size))
            for node, wt_m in ((k, 1 - t), (k + 1, t)):
                lo_av = self._cumulative_moment[node, :, i0].astype(float)
                hi_av = self._cumulative_moment[node, :, i0 + 1].astype(float)
                pairs += wt_m[:, None] * ((1 - u)[:, None] * lo_av + u[:, None] * hi_av)
                log_diag += wt_m[:, None] * ((1 - u)[:, None] * np.log(np.maximum(lo_av, 1e-300)) + u[:, None] * np.log(np.maximum(hi_av, 1e-300)))
            block = np.zeros((mass.size, n_bands, n_bands))
            block[:, self._pair_b, self._pair_c] = pairs
            block[:, self._pair_c, self._pair_b] = pairs
            # keep correlations from the linear A_V interpolation, variances from the log one
            diag_pair = self._pair_b == self._pair_c
            linear_var = np.maximum(pairs[:, diag_pair], 1e-300)
            target_var = np.exp(log_diag[:, diag_pair])
            scale = np.sqrt(np.where(linear_var > 1e-290, target_var / linear_var, 0.0))
            cov += (weight**2)[:, None, None] * block * scale[:, :, None] * scale[:, None, :]
        cov *= mass[:, None, None]
        eigval, eigvec = np.linalg.eigh(cov)
        z = gen.standard_normal((mass.size, n_bands)) * np.sqrt(np.maximum(eigval, 0.0))
        del rows
        return np.einsum("nij,nj->ni", eigvec, z)

    def _thresholds_fast(self, mass, j):
        imf, opt = self.imf, self.options
        mean = imf.mean_mass
        alive = np.maximum(self._alive_mass[j], self._alive_mass[j + 1])
        m_var = np.minimum(self._variance_threshold_mass[j], self._variance_threshold_mass[j + 1])
        fully_drawn = mass / mean <= opt.full_sampling_max_stars
        cap_fraction = imf.number_fraction_below(alive) - opt.max_stochastic_stars * mean / mass
        m_cap = np.where(cap_fraction > 0, imf.mass_at_number_fraction(np.clip(cap_fraction, 0, 1)), imf.min_mass)
        threshold = np.where(fully_drawn, m_var, np.maximum(m_var, m_cap))
        return np.clip(threshold, imf.min_mass, alive), alive, fully_drawn
