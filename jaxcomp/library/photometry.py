"""The shipped per-star photometry table: absolute HST Vega magnitudes of isochrone stars.

:class:`StarPhotometry` loads one of the compact tables in ``data/stellar/`` (built by
``scripts/build_star_photometry.py``, see :mod:`jaxcomp.library.build` for the method):

- for every isochrone point (log age, initial mass, current mass, log L, log Teff,
  log g, phase) the absolute Vega magnitude in each band, from the Castelli & Kurucz
  (2004) atmospheres interpolated in (Teff, log g), scaled to the star's luminosity and
  placed at 10 pc;
- the band grid: magnitudes of 1 L_sun stars at every (log Teff, log g) atmosphere node
  without and with A_V = 0.375...3 mag of Fitzpatrick (1999, R_V = 3.1) extinction.  From
  it each star's band extinction ``A_band(A_V) = Σ_{k=1..4} c_k A_V^k`` through its own
  spectrum and the filter is recomputed on load (exact interpolation through A_V =
  0.75, 1.5, 2.25, 3 mag; error below 0.0011 mag on [0, 3] mag).

- the hydrogen-ionising photon rate of every isochrone star, ``Q(H0)`` [s^-1], from the
  same atmospheres (``grid_log_q_h0``: the rate of a 1 L_sun star at every atmosphere
  node, interpolated like the band fluxes), which drives the nebular emission of
  :mod:`jaxcomp.library.nebular`.

Isochrone sets shipped: ``"padova2007_z0.0190"`` (default; closest to the Padova-AGB
Z = 0.02 tracks behind the LEGUS fits), ``"parsec_z0.0140"`` and ``"parsec_z0.0200"``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .._data import data_path
from .._io import array_digest
from .bands import normalise_bands
from .stellar_grid import (
    BandGrid,
    evaluate_extinction_polynomial,
    extinction_polynomial,
    star_photometry_from_band_grid,
)

__all__ = ["StarPhotometry", "ISOCHRONE_SETS", "DEFAULT_ISOCHRONES", "MAX_AV", "IONISING_BAND", "IONISING_REFERENCE_RATE"]

ISOCHRONE_SETS = ("padova2007_z0.0190", "parsec_z0.0140", "parsec_z0.0200")
DEFAULT_ISOCHRONES = "padova2007_z0.0190"
#: Largest A_V [mag] covered by the stored extinction polynomials.
MAX_AV = 3.0
#: Name of the pseudo-band that carries a star's hydrogen-ionising photon rate (see
#: :meth:`StarPhotometry.with_ionising_band`).
IONISING_BAND = "Q_H0"
#: Q(H0) [s^-1] of "magnitude" 0 in the :data:`IONISING_BAND` pseudo-band.
IONISING_REFERENCE_RATE = 1e50
_LOG_Q_FLOOR = -300.0

_FORMAT_VERSION = 1
_REQUIRED = (
    "bands", "sedpy_names", "log_age", "initial_mass", "current_mass", "log_luminosity", "log_teff", "log_g",
    "phase", "magnitude", "grid_log_teff", "grid_log_g", "grid_q_mag", "grid_av", "grid_q_mag_extincted",
    "extinction_fit_av", "provenance_json", "format_version",
)
_REBUILD_HINT = (
    "regenerate it with `python scripts/build_star_photometry.py` (needs the raw stellar inputs) "
    "or reinstall jaxcomp to restore the shipped copy"
)


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class StarPhotometry:
    """Absolute Vega magnitudes of every isochrone point of one isochrone set.

    Attributes
    ----------
    name : str
        Isochrone set, e.g. ``"padova2007_z0.0190"``.
    bands : tuple of str
        Band names, in the column order of ``magnitude``.
    sedpy_names : tuple of str
        sedpy filter names of the bands.
    log_age : numpy.ndarray, shape (n,)
        log10(age / yr) of each point's isochrone.
    initial_mass, current_mass : numpy.ndarray, shape (n,)
        Initial and current stellar mass [Msun]; non-decreasing initial mass within an isochrone.
    log_luminosity : numpy.ndarray, shape (n,)
        log10(L / L_sun).
    log_teff : numpy.ndarray, shape (n,)
        log10(Teff / K).
    log_g : numpy.ndarray, shape (n,)
        log10(g / cm s^-2).
    phase : numpy.ndarray, shape (n,)
        Evolutionary phase flag of the isochrone file.
    magnitude : numpy.ndarray, shape (n, n_bands)
        Absolute Vega magnitude [mag] (at 10 pc, no extinction).
    extinction_coefficients : numpy.ndarray, shape (n, n_bands, 4)
        ``c_1..c_4`` of ``A_band = Σ c_k A_V^k`` [mag] for A_V in [0, 3] mag.
    band_grid : BandGrid
        1 L_sun magnitudes on the atmosphere grid (also behind A_V = ``band_grid.av_nodes``).
    extinction_fit_av : numpy.ndarray, shape (4,)
        A_V nodes [mag] through which the extinction polynomials pass.
    provenance : Mapping
        Build provenance (input sha256s, package versions, date, checks).
    """

    name: str
    bands: tuple[str, ...]
    sedpy_names: tuple[str, ...]
    log_age: np.ndarray
    initial_mass: np.ndarray
    current_mass: np.ndarray
    log_luminosity: np.ndarray
    log_teff: np.ndarray
    log_g: np.ndarray
    phase: np.ndarray
    magnitude: np.ndarray
    extinction_coefficients: np.ndarray
    band_grid: BandGrid
    extinction_fit_av: np.ndarray
    provenance: Any = field(repr=False)
    grid_log_q_h0: np.ndarray | None = field(default=None, repr=False)
    log_ionising_photon_rate: np.ndarray | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ loading
    @staticmethod
    def available() -> tuple[str, ...]:
        """Names of the isochrone sets whose tables ship with jaxcomp."""
        return tuple(n for n in ISOCHRONE_SETS if _shipped_path(n, must_exist=False) is not None)

    @classmethod
    def load(cls, isochrones: str = DEFAULT_ISOCHRONES, *, path: str | Path | None = None, bands=None) -> "StarPhotometry":
        """Load a per-star photometry table.

        Parameters
        ----------
        isochrones : str
            Shipped isochrone set (see :data:`ISOCHRONE_SETS`); ignored if ``path`` is given.
        path : str or Path, optional
            A table written by ``scripts/build_star_photometry.py`` (e.g. one with extra bands).
        bands : sequence of str, optional
            Keep only these bands (default: all in the file).

        Returns
        -------
        StarPhotometry

        Raises
        ------
        ValueError
            For an unknown isochrone set or band, or a corrupt / inconsistent file (the
            message names the file and how to regenerate it).
        FileNotFoundError
            If the file does not exist.
        """
        if path is None:
            if isochrones not in ISOCHRONE_SETS:
                raise ValueError(f"unknown isochrone set {isochrones!r}; choose one of {ISOCHRONE_SETS}")
            path = _shipped_path(isochrones, must_exist=True)
            name = isochrones
        else:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"star photometry file {path} does not exist")
            name = path.stem.removeprefix("star_photometry_")
        table = cls._from_file(Path(path), name)
        return table if bands is None else table.select_bands(bands)

    @classmethod
    def _from_file(cls, path: Path, name: str) -> "StarPhotometry":
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [k for k in _REQUIRED if k not in archive.files]
                if missing:
                    raise ValueError(f"missing arrays {missing}")
                arrays = {k: archive[k] for k in archive.files}
            provenance = json.loads(str(arrays.pop("provenance_json")))
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError, json.JSONDecodeError) as error:
            raise ValueError(f"star photometry file {path} is corrupt or not a jaxcomp table ({error}); {_REBUILD_HINT}") from error
        version = int(arrays.pop("format_version"))
        if version != _FORMAT_VERSION:
            raise ValueError(f"star photometry file {path} has format version {version}, expected {_FORMAT_VERSION}; {_REBUILD_HINT}")
        digest = array_digest(*(arrays[k] for k in sorted(arrays)))
        if digest != provenance.get("content_sha256"):
            raise ValueError(f"star photometry file {path} fails its content checksum (corrupt or edited); {_REBUILD_HINT}")

        bands = tuple(str(b) for b in arrays["bands"])
        grid = BandGrid(
            arrays["grid_log_teff"], arrays["grid_log_g"], bands, arrays["grid_q_mag"], arrays["grid_av"],
            arrays["grid_q_mag_extincted"],
        )
        fit_av = arrays["extinction_fit_av"]
        index = [int(np.flatnonzero(np.isclose(grid.av_nodes, a))[0]) for a in fit_av]
        mags_from_grid, band_ext = star_photometry_from_band_grid(
            grid, arrays["log_luminosity"], arrays["log_teff"], arrays["log_g"]
        )
        stored = arrays["magnitude"].astype(float)
        n = arrays["log_age"].size
        shapes_ok = stored.shape == (n, len(bands)) and all(
            arrays[k].shape == (n,) for k in ("initial_mass", "current_mass", "log_luminosity", "log_teff", "log_g", "phase")
        )
        if not shapes_ok or not np.all(np.isfinite(stored)):
            raise ValueError(f"star photometry file {path} has inconsistent array shapes or non-finite magnitudes; {_REBUILD_HINT}")
        mismatch = float(np.max(np.abs(mags_from_grid - stored)))
        if mismatch > 2e-3:
            raise ValueError(
                f"star photometry file {path}: per-star magnitudes disagree with its atmosphere band grid by "
                f"{mismatch:.3g} mag; {_REBUILD_HINT}"
            )
        coefficients = extinction_polynomial(fit_av, band_ext[..., index])
        grid_log_q = arrays.get("grid_log_q_h0")
        log_q = None
        if grid_log_q is not None:
            if grid_log_q.shape != grid.q_mag.shape[:2]:
                raise ValueError(f"star photometry file {path}: grid_log_q_h0 has shape {grid_log_q.shape}, "
                                 f"expected {grid.q_mag.shape[:2]}; {_REBUILD_HINT}")
            log_q = _readonly(_star_log_q(grid, grid_log_q, arrays["log_luminosity"], arrays["log_teff"], arrays["log_g"]))
            grid_log_q = _readonly(grid_log_q.astype(float))
        return cls(
            name=name,
            bands=bands,
            sedpy_names=tuple(str(s) for s in arrays["sedpy_names"]),
            log_age=_readonly(arrays["log_age"].astype(float)),
            initial_mass=_readonly(arrays["initial_mass"].astype(float)),
            current_mass=_readonly(arrays["current_mass"].astype(float)),
            log_luminosity=_readonly(arrays["log_luminosity"].astype(float)),
            log_teff=_readonly(arrays["log_teff"].astype(float)),
            log_g=_readonly(arrays["log_g"].astype(float)),
            phase=_readonly(arrays["phase"]),
            magnitude=_readonly(stored),
            extinction_coefficients=_readonly(coefficients),
            band_grid=grid,
            extinction_fit_av=_readonly(fit_av.astype(float)),
            provenance=MappingProxyType(provenance),
            grid_log_q_h0=grid_log_q,
            log_ionising_photon_rate=log_q,
        )

    # ------------------------------------------------------------- structure
    @property
    def isochrone_log_ages(self) -> np.ndarray:
        """Sorted distinct log10(age / yr) of the isochrones."""
        return np.unique(self.log_age)

    def isochrone_slices(self) -> list[slice]:
        """Row slices of each isochrone, in order of :attr:`isochrone_log_ages`."""
        ages = self.isochrone_log_ages
        starts = np.searchsorted(self.log_age, ages, side="left")
        stops = np.searchsorted(self.log_age, ages, side="right")
        if not np.all(np.diff(self.log_age) >= 0):
            raise ValueError(f"isochrones of {self.name} are not stored in order of age")
        return [slice(int(a), int(b)) for a, b in zip(starts, stops)]

    def select_bands(self, bands) -> "StarPhotometry":
        """A copy restricted to ``bands`` (in that order); ValueError for an unknown band."""
        chosen = normalise_bands(bands, self.bands)
        idx = [self.bands.index(b) for b in chosen]
        grid = BandGrid(
            self.band_grid.log_teff, self.band_grid.log_g, chosen, self.band_grid.q_mag[..., idx],
            self.band_grid.av_nodes, self.band_grid.q_mag_extincted[..., idx, :],
        )
        return replace(
            self,
            bands=chosen,
            sedpy_names=tuple(self.sedpy_names[i] for i in idx),
            magnitude=_readonly(self.magnitude[:, idx]),
            extinction_coefficients=_readonly(self.extinction_coefficients[:, idx]),
            band_grid=grid,
        )

    @property
    def has_ionising_photons(self) -> bool:
        """Whether the table holds hydrogen-ionising photon rates (``grid_log_q_h0``)."""
        return self.log_ionising_photon_rate is not None

    def with_ionising_band(self) -> StarPhotometry:
        """A copy with the pseudo-band :data:`IONISING_BAND` appended.

        Its "magnitude" is ``-2.5 log10(Q(H0) / 10^50 s^-1)`` and its extinction is zero,
        so summing ``10^(-0.4 m)`` over stars (as the synthesis does for every band)
        sums their ionising photon rates in units of 10^50 s^-1.  Stars without
        ionising flux get a rate of 10^-300 s^-1 (flux 0 to double precision).

        Raises
        ------
        ValueError
            If the table has no ionising photon rates (built before they were added).
        """
        if not self.has_ionising_photons:
            raise ValueError(
                f"the star photometry table {self.name} has no ionising photon rates (grid_log_q_h0); "
                f"nebular emission needs them: {_REBUILD_HINT}"
            )
        if IONISING_BAND in self.bands:
            return self
        log_ref = np.log10(IONISING_REFERENCE_RATE)
        star_mag = -2.5 * (self.log_ionising_photon_rate - log_ref)
        grid_mag = -2.5 * (self.grid_log_q_h0 - log_ref)
        grid = BandGrid(
            self.band_grid.log_teff, self.band_grid.log_g, self.bands + (IONISING_BAND,),
            np.concatenate([self.band_grid.q_mag, grid_mag[..., None]], axis=-1),
            self.band_grid.av_nodes,
            np.concatenate(
                [self.band_grid.q_mag_extincted,
                 np.repeat(grid_mag[..., None, None], self.band_grid.av_nodes.size, axis=-1)], axis=-2
            ),
        )
        zeros = np.zeros(self.extinction_coefficients.shape[:1] + (1,) + self.extinction_coefficients.shape[2:])
        return replace(
            self,
            bands=self.bands + (IONISING_BAND,),
            sedpy_names=self.sedpy_names + ("",),
            magnitude=_readonly(np.concatenate([self.magnitude, star_mag[:, None]], axis=1)),
            extinction_coefficients=_readonly(np.concatenate([self.extinction_coefficients, zeros], axis=1)),
            band_grid=grid,
        )

    # ------------------------------------------------------------ stars by (L, T, g)
    def star_magnitudes(self, log_luminosity, log_teff, log_g, av=0.0, bands=None) -> np.ndarray:
        """Absolute Vega magnitudes of arbitrary stars through the atmosphere grid.

        Parameters
        ----------
        log_luminosity : array_like
            log10(L / L_sun).
        log_teff : array_like
            log10(Teff / K) (clamped to the atmosphere grid, 2000 K - 10^5.45 K).
        log_g : array_like
            log10(g / cm s^-2) (clamped to 0-5).
        av : float
            Visual extinction A_V [mag], 0 <= A_V <= 3.
        bands : sequence of str, optional
            Bands to return (default all).

        Returns
        -------
        numpy.ndarray, shape (n, n_bands)
            Magnitudes [mag] at 10 pc, extincted by ``av`` through each star's spectrum.
        """
        check_av(av)
        chosen = normalise_bands(bands, self.bands)
        idx = [self.bands.index(b) for b in chosen]
        log_l, log_t, log_grav = np.broadcast_arrays(
            np.atleast_1d(np.asarray(log_luminosity, float)), np.atleast_1d(np.asarray(log_teff, float)),
            np.atleast_1d(np.asarray(log_g, float)),
        )
        mags, band_ext = star_photometry_from_band_grid(self.band_grid, log_l.ravel(), log_t.ravel(), log_grav.ravel())
        if float(av) > 0.0:
            index = [int(np.flatnonzero(np.isclose(self.band_grid.av_nodes, a))[0]) for a in self.extinction_fit_av]
            coefficients = extinction_polynomial(self.extinction_fit_av, band_ext[..., index])
            mags = mags + evaluate_extinction_polynomial(coefficients, float(av))[..., 0]
        return mags[:, idx]

    def band_extinction(self, av, star_index=None) -> np.ndarray:
        """Band extinction A_band [mag] of isochrone stars behind A_V = ``av`` [mag].

        Returns an array of shape (n_stars, n_bands) for the rows ``star_index`` (default all).
        """
        check_av(av)
        coefficients = self.extinction_coefficients if star_index is None else self.extinction_coefficients[star_index]
        return evaluate_extinction_polynomial(coefficients, float(av))[..., 0]


def check_av(av) -> np.ndarray:
    """Validate visual extinctions: finite, 0 <= A_V <= 3 mag; returns them as a float array."""
    values = np.asarray(av, dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError("A_V must be finite (in mag)")
    if np.any(values < 0.0):
        raise ValueError(
            f"A_V must be >= 0 mag (got min {values.min():.4g}); extinction is a foreground dust screen, "
            "use av=0 for none"
        )
    if np.any(values > MAX_AV + 1e-12):
        raise ValueError(
            f"A_V = {values.max():.4g} mag exceeds the {MAX_AV} mag range of the stored band-extinction "
            "polynomials; use A_V in [0, 3] mag"
        )
    return values


def _star_log_q(grid: BandGrid, grid_log_q, log_luminosity, log_teff, log_g) -> np.ndarray:
    """log10 Q(H0) [s^-1] of stars: (L/L_sun) times the bilinear mean of the node rates (linear)."""
    from .stellar_grid import _bilinear

    ix, iy, tx, ty = _bilinear(grid.log_teff, grid.log_g, np.asarray(log_teff, float), np.asarray(log_g, float))
    lin = 10.0 ** np.asarray(grid_log_q, float)
    value = (lin[ix, iy] * (1 - tx) * (1 - ty) + lin[ix + 1, iy] * tx * (1 - ty)
             + lin[ix, iy + 1] * (1 - tx) * ty + lin[ix + 1, iy + 1] * tx * ty)
    with np.errstate(divide="ignore"):
        return np.maximum(np.asarray(log_luminosity, float) + np.log10(value), _LOG_Q_FLOOR)


def _shipped_path(name: str, must_exist: bool) -> Path | None:
    try:
        return data_path("stellar", f"star_photometry_{name}.npz")
    except FileNotFoundError:
        if must_exist:
            raise
        return None
