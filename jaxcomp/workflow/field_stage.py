"""The ``field`` stage (a FITS field read and checked, its PSFs built from the stars) and the
field every injecting stage uses (:func:`load_field`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..survey import BANDS
from .config import RunConfig
from .stage_context import StageContext, _figure

__all__ = ["load_field", "run_field"]


_PSF_FILE = "psf_{band}.fits"


def load_field(config: RunConfig, run_dir: str | os.PathLike | None = None):
    """The field of the run (built from the seed for the mock; read from FITS otherwise).

    For a FITS field, the PSFs the ``field`` stage built from the stars
    (``RUN_DIR/field/psf_<band>.fits``) are used when ``run_dir`` is given, so every stage
    injects with the same PSFs; without them, they are built again.
    """
    from ..ast import make_mock_field

    section = config.field
    if section.kind == "fits":
        return _read_fits_field(section, run_dir)[0]
    size = section.size
    if size not in ("small", "legus"):
        ny, nx = (int(v) for v in size.lower().split("x"))
        size = (ny, nx)
    return make_mock_field(size, seed=config.run.seed, pointing=section.pointing)


def _read_fits_field(section, run_dir=None, *, rebuild: bool = False):
    """``(field, {band: EPSFResult})`` of a ``[field] kind = "fits"`` section."""
    from ..ast import read_field_fits
    from ..ast.profiles import PSFModel

    kwargs = {}
    if section.zeropoints:
        kwargs["zeropoints"] = dict(zip(BANDS, section.zeropoints))
    if section.distance_modulus:
        kwargs["distance_modulus"] = section.distance_modulus
    if section.psf == "gaussian":
        psf = dict(zip(BANDS, section.psf_fwhm_px))
    else:
        psf = "stars" if section.psf == "stars" else None
        if run_dir is not None and not rebuild:
            from astropy.io import fits

            saved = {}
            for band in BANDS:
                path = Path(run_dir) / "field" / _PSF_FILE.format(band=band)
                if path.is_file():
                    with fits.open(path) as hdul:
                        saved[band] = PSFModel(
                            image=np.asarray(hdul[0].data, float),
                            oversampling=int(hdul[0].header["PSFOVERS"]),
                        )
            if saved and (section.psf == "auto" or len(saved) == len(BANDS)):
                psf = saved  # "auto": the other bands' PSFs come from their files
    return read_field_fits(
        section.directory,
        psf=psf,
        epsf_selection=section.epsf_selection(),
        return_epsf=True,
        **kwargs,
    )


def run_field(ctx: StageContext) -> dict:
    """The FITS field: read and checked once, its PSFs built from the stars where the files give
    none."""
    from astropy.io import fits

    from ..ast.epsf import plot_epsf, psf_encircled_energy

    section = ctx.config.field
    field, built = _read_fits_field(section, rebuild=True)
    figures, tables, outputs, metrics = [], [], {}, {"shape": list(field.shape), "name": field.name}
    psf_metrics = {}
    for band in BANDS:
        ee = psf_encircled_energy(field.psf[band], (1.0, 2.0, 3.0, 4.0))
        entry = {
            "source": "stars" if band in built else "given",
            "psf": field.psf[band].describe(),
            "encircled_energy_1_2_3_4px": [round(float(v), 5) for v in ee],
            "ci_mag": round(float(-2.5 * np.log10(ee[0] / ee[2])), 4),
        }
        if band in built:
            result = built[band]
            header = fits.Header()
            header["BAND"] = (band, "band")
            header["PSFOVERS"] = (result.psf.oversampling, "PSF samples per image pixel")
            header["NSTARS"] = (result.n_used, "stars stacked")
            fits.PrimaryHDU(np.asarray(result.psf.image, np.float64), header=header).writeto(
                ctx.directory / _PSF_FILE.format(band=band), overwrite=True
            )
            name = f"psf_stars_{band}.ecsv"
            result.stars.write(ctx.directory / name, format="ascii.ecsv", overwrite=True)
            tables.append(
                {
                    "path": name,
                    "max_rows": 15,
                    "caption": f"{band}: the ePSF candidates, used or the "
                    "cut that rejected them (first rows).",
                }
            )
            outputs[f"psf_{band}"] = _PSF_FILE.format(band=band)
            entry["stars_used"] = result.n_used
        psf_metrics[band] = entry
    metrics["psf"] = psf_metrics
    if built:
        figure = plot_epsf(
            built, ctx.directory / "psf.png", title=f"{field.name}: effective PSFs from the stars"
        )
        figures.append(
            _figure(
                Path(figure),
                "Effective PSFs built from the frame's stars (log scale) and their "
                "encircled energy against radius.",
            )
        )
    described = ", ".join(f"{b} {'from the stars' if b in built else 'given'}" for b in BANDS)
    return {
        "description": f"Five FITS images from {section.directory} ({field.shape[1]} x "
        f"{field.shape[0]} px); "
        f"PSFs: {described}.",
        "metrics": metrics,
        "figures": figures,
        "tables": tables,
        "outputs": outputs,
    }
