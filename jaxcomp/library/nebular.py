"""Nebular emission of young clusters: lines and continuum per ionising photon.

A cluster's stars emit ``Q(H0)`` hydrogen-ionising photons per second (summed over its
drawn stars, or integrated over the IMF; :class:`~jaxcomp.library.synthesis.PopulationSynthesis`).
A fraction ``phi`` (the covering fraction) of them is absorbed by the surrounding gas and
reprocessed into nebular light; the rest escapes or is absorbed by dust.  In ionisation
equilibrium (case B) the recombination rate equals the absorbed photon rate,
``n_e n_p V = phi Q(H0) / alpha_B(T_e)``, and every nebular luminosity is that volume
emission measure times an emissivity:

H I recombination lines
    pyneb ``RecAtom('H', 1)`` case-B emissivities (Storey & Hummer 1995), Balmer and Paschen
    series up to upper level 40 (Brackett lines lie beyond all bands), at (T_e, n_e),
    interpolated as pyneb does; ``alpha_B`` from pyneb's
    Storey & Hummer (1995) total case-B recombination coefficient.
He I recombination lines
    pyneb ``RecAtom('He', 1)`` emissivities (its default data, Porter et al.) times
    ``n(He+)/n(H+)`` (``helium_abundance``, default 0.085: all helium singly ionised, the
    solar He/H of Asplund et al. 2009).  No He II (the clusters' spectra are too soft).
Nebular continuum
    pyneb ``Continuum`` (H I and He I free-bound from Ercolano & Storey 2006, two-photon,
    free-free), per ``n_e n_p``, on a 2 Angstrom grid from 1200 to 11000 Angstrom.
Metal lines
    The published Cloudy line ratios of ``data/nebular`` (Calabrò et al. 2023, solar
    metallicity, log U = -3, n_H = 100 cm^-3; see its README) times the pyneb H-beta
    luminosity; the unlisted doublet partners from pyneb ``Atom`` emissivity ratios.

Everything is linear in ``Q(H0)`` at fixed (T_e, n_e, phi), so it is computed once per
configuration and band set (:func:`nebular_band_table`, cached): the absolute Vega
magnitude, at 10 pc, of the nebular light of ``Q(H0) = 10^50 s^-1`` in every band, and
its band extinction on a grid of A_V.  Lines are delta functions projected through the
filter (photon counting, ``λ T(λ)``), the continuum is integrated on its grid; the filter
curves (sedpy) and Vega spectrum are those of the star table, so the magnitudes add to the
stellar ones consistently.

Extinction
    The nebular light is extincted through its own spectrum by the star table's law
    (Fitzpatrick 1999, R_V = 3.1) with ``A_V,neb = av_factor x A_V``: by default 1, the
    same screen as the stars, as in the LEGUS Yggdrasil fits that the catalogue
    comparison checks; the C-4 SLUG library used 2.1 (Tang et al. 2026, Appendix B).
Ages
    Nebular light is added only to clusters younger than ``max_age_yr`` (default 10 Myr,
    SLUG's rule in the C-4 library); older clusters have expelled their gas, and the
    (small) ionising output of their post-AGB stars would otherwise light up nebulae.

This module imports pyneb, sedpy and dust_extinction only when a table is built; it never
imports JAX.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass

import numpy as np

from .._data import data_path
from ..errors import InputError

__all__ = [
    "METAL_LINE_TABLE",
    "NE_RANGE_CM3",
    "TE_RANGE_K",
    "NebularBandTable",
    "NebularEmission",
    "band_table_for",
    "hbeta_luminosity_per_photon",
    "nebular_band_table",
    "nebular_spectrum",
    "recombination_coefficient_b",
]

#: Electron temperatures [K] covered by the pyneb H I (500-30000 K) and He I (5000-25000 K)
#: emissivity tables together.
TE_RANGE_K = (5000.0, 25000.0)
#: Electron densities [cm^-3] allowed: pyneb's H I tables start at 100 cm^-3, and the
#: metal-line ratios (computed at n_H = 100 cm^-3) hold well below the critical densities
#: of [O II] and [S II] (a few 10^3 cm^-3), so at most 10^4 cm^-3.
NE_RANGE_CM3 = (100.0, 1.0e4)
#: The shipped metal-line table (see data/nebular/README.md).
METAL_LINE_TABLE = "metal_lines_calabro2023_z0.0152_logU-3_n100.csv"

_Q_REFERENCE = 1e50  # s^-1; must equal photometry.IONISING_REFERENCE_RATE
_RYDBERG_H_PER_ANGSTROM = 1.0967757e-3  # Rydberg constant for hydrogen [Angstrom^-1]
_MAX_UPPER_LEVEL = 40
_CONTINUUM_GRID = (1200.0, 11000.0, 2.0)  # Angstrom: start, stop, step
_AV_STEP = 0.05
_TEN_PARSEC_CM = 10.0 * 3.0856775814913673e18


@dataclass(frozen=True)
class NebularEmission:
    """Physical settings of the nebular emission.

    Parameters
    ----------
    covering_fraction : float
        Fraction ``phi`` of the ionising photons reprocessed into nebular light inside the
        photometric aperture, in [0, 1] (default 0.5, the value of the C-4 SLUG library,
        Tang et al. 2026 Appendix B, and of the LEGUS Yggdrasil fits; SLUG's own default
        is 0.73).
    electron_temperature_k : float
        T_e [K] of the emissivities, in :data:`TE_RANGE_K` (default 10^4 K).
    electron_density_cm3 : float
        n_e [cm^-3], in :data:`NE_RANGE_CM3` (default 100 cm^-3).
    helium_abundance : float
        n(He+)/n(H+) (default 0.085), in [0, 0.2].
    av_factor : float
        Nebular over stellar V-band extinction (default 1: the same screen), in [1, 3].
    max_age_yr : float
        Clusters at least this old get no nebular light (default 1e7 yr), > 0.
    """

    covering_fraction: float = 0.5
    electron_temperature_k: float = 1.0e4
    electron_density_cm3: float = 100.0
    helium_abundance: float = 0.085
    av_factor: float = 1.0
    max_age_yr: float = 1.0e7

    def __post_init__(self) -> None:
        for name in ("covering_fraction", "electron_temperature_k", "electron_density_cm3",
                     "helium_abundance", "av_factor", "max_age_yr"):
            value = getattr(self, name)
            number = isinstance(value, (int, float, np.integer, np.floating))
            if isinstance(value, bool) or not number:
                raise InputError(f"nebular {name} must be a number, got {value!r}")
        phi = float(self.covering_fraction)
        if not (math.isfinite(phi) and 0.0 <= phi <= 1.0):
            raise InputError(
                f"nebular covering_fraction must lie in [0, 1] (the fraction of ionising photons "
                f"absorbed by the gas), got {self.covering_fraction!r}"
            )
        te = float(self.electron_temperature_k)
        if not (math.isfinite(te) and TE_RANGE_K[0] <= te <= TE_RANGE_K[1]):
            raise InputError(
                f"nebular electron_temperature_k = {self.electron_temperature_k!r} K is outside "
                f"the {TE_RANGE_K[0]:.0f}-{TE_RANGE_K[1]:.0f} K covered by pyneb's H I and He I "
                "emissivity tables; pass a temperature inside it (10^4 K is typical of H II "
                "regions)"
            )
        ne = float(self.electron_density_cm3)
        if not (math.isfinite(ne) and NE_RANGE_CM3[0] <= ne <= NE_RANGE_CM3[1]):
            raise InputError(
                f"nebular electron_density_cm3 = {self.electron_density_cm3!r} cm^-3 is outside "
                f"{NE_RANGE_CM3[0]:.0f}-{NE_RANGE_CM3[1]:.0f} cm^-3 (pyneb's H I tables start at "
                "100; the metal-line ratios hold below ~10^4); pass a density inside it"
            )
        y = float(self.helium_abundance)
        if not (math.isfinite(y) and 0.0 <= y <= 0.2):
            raise InputError(
                "nebular helium_abundance n(He+)/n(H+) must lie in [0, 0.2], "
                f"got {self.helium_abundance!r}"
            )
        f = float(self.av_factor)
        if not (math.isfinite(f) and 1.0 <= f <= 3.0):
            raise InputError(
                "nebular av_factor (nebular / stellar A_V) must lie in [1, 3], "
                f"got {self.av_factor!r}"
            )
        if not (math.isfinite(float(self.max_age_yr)) and self.max_age_yr > 0):
            raise InputError(
                f"nebular max_age_yr must be a positive age in yr, got {self.max_age_yr!r}"
            )

    def to_dict(self) -> dict:
        """JSON-serialisable settings (recorded in library metadata)."""
        return {
            "covering_fraction": float(self.covering_fraction),
            "electron_temperature_k": float(self.electron_temperature_k),
            "electron_density_cm3": float(self.electron_density_cm3),
            "helium_abundance": float(self.helium_abundance),
            "av_factor": float(self.av_factor),
            "max_age_yr": float(self.max_age_yr),
            "metal_lines": METAL_LINE_TABLE,
        }


# ---------------------------------------------------------------------------- physics
def _pyneb():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyneb

    return pyneb


@functools.cache
def _h_atom():
    pn = _pyneb()
    pn.atomicData.setDataFile("h_i_trc_SH95-caseB.dat")
    return pn.RecAtom("H", 1)


def recombination_coefficient_b(
    electron_temperature_k: float, electron_density_cm3: float
) -> float:
    """Case-B H recombination coefficient alpha_B [cm^3 s^-1] (Storey & Hummer 1995 via pyneb).

    pyneb's ``h_i_trc_SH95-caseB.dat`` table interpolated as ``RecAtom.getTotRecombination``
    does (linear on the Delaunay triangulation of its (log n_e, log T_e) grid).  At 10^4 K and
    100 cm^-3 it is 2.585e-13 (Osterbrock & Ferland 2006, Table 2.1: 2.59e-13).
    """
    atom = _h_atom()
    points = np.column_stack([atom.lg_den_grid.ravel(), atom.lg_tem_grid.ravel()])
    query = (math.log10(electron_density_cm3), math.log10(electron_temperature_k))
    return float(_linear_on_triangulation(points, atom.alpha_grid.ravel()[:, None], query)[0])


def _linear_on_triangulation(points, values, query):
    """Piecewise-linear interpolation on the Delaunay triangulation of 2-d ``points``.

    The interpolant of ``scipy.interpolate.griddata(method="linear")`` (which pyneb uses),
    evaluated at one point: the barycentric weights of the query in every triangle are
    computed at once and the triangle that contains it is used.  (scipy's own point
    location costs several seconds on first use in some environments.)  NaN outside the
    convex hull, as griddata.
    """
    from scipy.spatial import Delaunay

    tri = Delaunay(points)
    corners = points[tri.simplices]  # (n_tri, 3, 2)
    base = corners[:, 2, :]
    edges = np.stack([corners[:, 0, :] - base, corners[:, 1, :] - base], axis=-1)  # (n_tri, 2, 2)
    det = edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]
    d = np.asarray(query, float) - base
    w0 = (d[:, 0] * edges[:, 1, 1] - d[:, 1] * edges[:, 0, 1]) / det
    w1 = (edges[:, 0, 0] * d[:, 1] - edges[:, 1, 0] * d[:, 0]) / det
    weights = np.stack([w0, w1, 1.0 - w0 - w1], axis=1)
    scale = np.abs(weights).max(axis=1)
    inside = np.flatnonzero(weights.min(axis=1) >= -1e-12 * np.maximum(scale, 1.0))
    if inside.size == 0:
        return np.full(values.shape[1], np.nan)
    k = inside[0]
    return weights[k] @ values[tri.simplices[k]]


def _recombination_emissivities(atom, labels, te, ne):
    """pyneb recombination-line emissivities [erg cm^3 s^-1] of many lines at once.

    The same interpolation as ``pyneb.RecAtom.getEmissivity`` (linear on the triangulation
    of (1/T_e, log n_e) over the atom's data grid, density clamped to the grid), with one
    triangulation for all lines instead of one per line.
    """
    points = np.column_stack(
        [1.0 / np.asarray(atom.temp, float).ravel(), np.asarray(atom.log_dens, float).ravel()]
    )
    values = np.column_stack(
        [np.asarray(atom._RecombData[label], float).ravel() for label in labels]
    )
    log_ne = float(np.clip(math.log10(ne), points[:, 1].min(), points[:, 1].max()))
    return np.asarray(_linear_on_triangulation(points, values, (1.0 / te, log_ne)), float)


def _hydrogen_lines(te, ne):
    """Balmer and Paschen lines (upper level <= 40) below 11000 A: wavelengths, emissivities."""
    waves, labels = [], []
    for lower in (2, 3):
        for upper in range(lower + 1, _MAX_UPPER_LEVEL + 1):
            wave = 1.0 / (_RYDBERG_H_PER_ANGSTROM * (1.0 / lower**2 - 1.0 / upper**2))
            if wave <= _CONTINUUM_GRID[1]:
                waves.append(wave)
                labels.append(f"{upper}_{lower}")
    return np.array(waves), _recombination_emissivities(_h_atom(), labels, te, ne)


def _helium_lines(te, ne):
    pn = _pyneb()
    atom = pn.RecAtom("He", 1)
    labels = [label for label in atom.labels if 1000.0 <= float(label) <= _CONTINUUM_GRID[1]]
    emissivities = _recombination_emissivities(atom, labels, te, ne)
    keep = np.isfinite(emissivities) & (emissivities > 0)
    return np.array([float(label) for label in labels])[keep], emissivities[keep]


def _metal_lines(te, ne, hbeta_emissivity):
    """Wavelengths [A] and emissivities (per n_e n_p) of the metal lines."""
    pn = _pyneb()
    rows = []
    with open(data_path("nebular", METAL_LINE_TABLE), newline="") as stream:
        reader = csv.DictReader(line for line in stream if not line.startswith("#"))
        rows = list(reader)
    by_label = {r["label"]: r for r in rows}
    waves, emissivities = [], []
    for r in rows:
        wave = float(r["wavelength_angstrom"])
        if r["intensity_hbeta_100"]:
            ratio = float(r["intensity_hbeta_100"]) / 100.0
        else:
            partner = by_label[r["partner_of"]]
            element = "".join(c for c in r["ion"] if c.isalpha())
            atom = pn.Atom(element, int("".join(c for c in r["ion"] if c.isdigit())))
            own = float(np.asarray(atom.getEmissivity(te, ne, wave=round(wave))).ravel()[0])
            other = float(
                np.asarray(
                    atom.getEmissivity(te, ne, wave=round(float(partner["wavelength_angstrom"])))
                ).ravel()[0]
            )
            ratio = float(partner["intensity_hbeta_100"]) / 100.0 * own / other
        waves.append(wave)
        emissivities.append(ratio * hbeta_emissivity)
    return np.array(waves), np.array(emissivities)


def nebular_spectrum(emission: NebularEmission, ionising_photon_rate: float = _Q_REFERENCE) -> dict:
    """The nebular spectrum of ``ionising_photon_rate`` [s^-1] hydrogen-ionising photons.

    Returns
    -------
    dict
        ``wavelength`` [Angstrom] and ``continuum`` [erg s^-1 Angstrom^-1] on the continuum
        grid; ``line_wavelength`` [Angstrom], ``line_luminosity`` [erg s^-1] and
        ``line_kind`` ("H I", "He I", "metal"); ``hbeta_luminosity`` [erg s^-1];
        ``emission_measure`` ``n_e n_p V`` [cm^-3].
    """
    pn = _pyneb()
    te, ne = float(emission.electron_temperature_k), float(emission.electron_density_cm3)
    alpha_b = recombination_coefficient_b(te, ne)
    measure = emission.covering_fraction * float(ionising_photon_rate) / alpha_b
    h_wave, h_emis = _hydrogen_lines(te, ne)
    he_wave, he_emis = _helium_lines(te, ne)
    hbeta = float(_recombination_emissivities(_h_atom(), ["4_2"], te, ne)[0])
    m_wave, m_emis = _metal_lines(te, ne, hbeta)
    start, stop, step = _CONTINUUM_GRID
    wave = np.arange(start, stop + 0.5 * step, step)
    continuum = pn.Continuum().get_continuum(
        tem=te, den=ne, He1_H=float(emission.helium_abundance), He2_H=0.0, wl=wave, HI_label=None
    )
    continuum = np.asarray(continuum, float).ravel()
    kinds = ["H I"] * h_wave.size + ["He I"] * he_wave.size + ["metal"] * m_wave.size
    return {
        "wavelength": wave,
        "continuum": measure * continuum,
        "line_wavelength": np.concatenate([h_wave, he_wave, m_wave]),
        "line_luminosity": measure
        * np.concatenate([h_emis, emission.helium_abundance * he_emis, m_emis]),
        "line_kind": np.array(kinds),
        "hbeta_luminosity": measure * hbeta,
        "emission_measure": measure,
    }


# ------------------------------------------------------------------------- band table
@dataclass(frozen=True)
class NebularBandTable:
    """Band magnitudes of the nebular light of Q(H0) = 10^50 s^-1 and their extinction.

    Attributes
    ----------
    bands : tuple of str
    magnitude : numpy.ndarray, shape (n_bands,)
        Absolute Vega magnitude at 10 pc of the unextincted nebular light of
        ``Q(H0) = 10^50 s^-1`` (covering fraction included) [mag].
    av : numpy.ndarray, shape (n_av,)
        Nebular A_V nodes [mag], 0 to 9 in steps of 0.05.
    band_extinction : numpy.ndarray, shape (n_av, n_bands)
        A_band [mag] of the nebular spectrum behind those A_V.
    line_fraction : dict
        Fraction of each band's unextincted nebular photon counts from H I lines, He I
        lines, metal lines and the continuum.
    """

    bands: tuple
    magnitude: np.ndarray
    av: np.ndarray
    band_extinction: np.ndarray
    line_fraction: dict

    def flux(self, ionising_rate_1e50, av_nebular) -> np.ndarray:
        """Nebular band fluxes (n, n_bands) in units of a 0-mag source at 10 pc.

        ``ionising_rate_1e50`` (n,) is Q(H0) / 10^50 s^-1 and ``av_nebular`` (n,) the nebular
        A_V [mag] (clipped to the table, 0-9 mag).
        """
        x = np.clip(np.asarray(av_nebular, float) / _AV_STEP, 0.0, self.av.size - 1.000001)
        i = np.floor(x).astype(int)
        t = (x - i)[:, None]
        a_band = (1 - t) * self.band_extinction[i] + t * self.band_extinction[i + 1]
        return np.asarray(ionising_rate_1e50, float)[:, None] * 10.0 ** (
            -0.4 * (self.magnitude[None, :] + a_band)
        )


def _band_counts(spectrum, filt, curve, avs):
    from .band_projection import photon_counts

    counts = photon_counts(
        spectrum["wavelength"], spectrum["continuum"], filt, curve, avs
    )  # (n_av,)
    lw, ll = spectrum["line_wavelength"], spectrum["line_luminosity"]
    trans = np.interp(lw, filt.wavelength, filt.transmission, left=0.0, right=0.0)
    inside = trans > 0
    k = curve(lw[inside]) if np.any(inside) else np.zeros(0)
    att = 10.0 ** (-0.4 * np.asarray(avs)[:, None] * k[None, :])
    per_line = ll[inside] * lw[inside] * trans[inside]
    line_counts = att @ per_line
    kinds = spectrum["line_kind"][inside]
    parts = {kind: float(per_line[kinds == kind].sum()) for kind in ("H I", "He I", "metal")}
    parts["continuum"] = float(counts[0])
    return counts + line_counts, parts


@functools.lru_cache(maxsize=16)
def nebular_band_table(
    emission: NebularEmission,
    sedpy_names: tuple,
    bands: tuple,
    extinction_law: str = "F99",
    r_v: float = 3.1,
) -> NebularBandTable:
    """Per-band nebular magnitudes of Q(H0) = 10^50 s^-1 and their extinction (cached).

    Parameters
    ----------
    emission : NebularEmission
    sedpy_names : tuple of str
        sedpy filter names (as in the star table).
    bands : tuple of str
        Band names, same order.
    extinction_law, r_v
        The star table's extinction law (see :func:`jaxcomp.library.band_projection.extinction_curve`).
    """
    from .band_projection import _vega, extinction_curve, load_filter, photon_counts

    spectrum = nebular_spectrum(emission, _Q_REFERENCE)
    scale = 1.0 / (4.0 * math.pi * _TEN_PARSEC_CM**2)
    curve = extinction_curve(extinction_law, r_v)
    avs = np.arange(0.0, 9.0 + 0.5 * _AV_STEP, _AV_STEP)
    vega_wave, vega_flux, _ = _vega()
    mags = np.empty(len(bands))
    ext = np.empty((avs.size, len(bands)))
    fractions = {}
    for b, name in enumerate(sedpy_names):
        filt = load_filter(name)
        counts, parts = _band_counts(spectrum, filt, curve, avs)
        vega = photon_counts(vega_wave, vega_flux, filt)
        mags[b] = -2.5 * math.log10(scale * counts[0] / vega)
        ext[:, b] = -2.5 * np.log10(counts / counts[0])
        total = sum(parts.values())
        fractions[bands[b]] = {k: v / total for k, v in parts.items()}
    return NebularBandTable(tuple(bands), mags, avs, ext, fractions)


def band_table_for(emission: NebularEmission, photometry) -> NebularBandTable:
    """:func:`nebular_band_table` for the filters and extinction law of a star table.

    ``photometry`` is a :class:`~jaxcomp.library.photometry.StarPhotometry` (its
    ``sedpy_names``, ``bands`` and the extinction law recorded in its provenance).
    """
    law = photometry.provenance.get("extinction", {})
    return nebular_band_table(
        emission,
        tuple(photometry.sedpy_names),
        tuple(photometry.bands),
        law.get("law", "F99"),
        float(law.get("r_v", 3.1)),
    )


def hbeta_luminosity_per_photon(emission: NebularEmission) -> float:
    """L(H-beta) [erg] per hydrogen-ionising photon (covering fraction included)."""
    return nebular_spectrum(emission, 1.0)["hbeta_luminosity"]
