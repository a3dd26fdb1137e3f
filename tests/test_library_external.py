"""Libraries made elsewhere: SLUG FITS outputs and generic tables (jaxcomp.library.external).

The SLUG files here are written in the layout slugpy's ``read_cluster_prop`` /
``read_cluster_phot`` read (output_mode fits): HDU 1 of ``<model>_cluster_prop.fits``
holds ``UniqueID, Trial, Time, FormTime, Lifetime, TargetMass, BirthMass, LiveMass,
StellarMass, NumStar, MaxStarMass, A_V``; ``<model>_cluster_phot.fits`` holds
``UniqueID, Trial, Time`` then one column per filter (unit in TUNITn, suffixes ``_neb``,
``_ex``, ``_neb_ex``), all in HDU 1 ("fits") or one filter per HDU from HDU 2 ("fits2").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from jaxcomp.library import DEFAULT_BANDS
from jaxcomp.library.external import (
    SLUG_FILTER_NAMES,
    read_library_table,
    read_slug_library,
    validate_library_table,
    write_library_fits,
)

N = 12


def _slug_run(
    directory,
    *,
    layout="fits",
    unit="Vega mag",
    with_av=True,
    drop=None,
    shuffle_phot=False,
    model="run",
):
    rng = np.random.default_rng(3)
    ids = np.arange(1, N + 1, dtype=np.uint64)
    trial = np.arange(N, dtype=np.uint64)
    time = 10 ** rng.uniform(6, 9, N)
    birth = 10 ** rng.uniform(2, 6, N)
    prop_cols = [
        fits.Column("UniqueID", "K", array=ids),
        fits.Column("Trial", "K", array=trial),
        fits.Column("Time", "D", array=time),
        fits.Column("FormTime", "D", array=np.zeros(N)),
        fits.Column("Lifetime", "D", array=np.full(N, 1e12)),
        fits.Column("TargetMass", "D", array=birth * 1.01),
        fits.Column("BirthMass", "D", array=birth),
        fits.Column("LiveMass", "D", array=birth * 0.9),
        fits.Column("StellarMass", "D", array=birth * 0.95),
        fits.Column("NumStar", "K", array=np.full(N, 10)),
        fits.Column("MaxStarMass", "D", array=np.full(N, 20.0)),
    ]
    av = rng.uniform(0, 3, N)
    if with_av:
        prop_cols.append(fits.Column("A_V", "D", array=av))
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(prop_cols)]).writeto(
        directory / f"{model}_cluster_prop.fits"
    )

    absolute = {}
    filter_cols = []
    for suffix in ("", "_neb", "_ex", "_neb_ex"):
        for band, name in SLUG_FILTER_NAMES.items():
            if drop == name + suffix:
                continue
            values = -8.0 + rng.normal(0, 1, N)
            absolute[name + suffix] = values
            filter_cols.append(fits.Column(name + suffix, "D", array=values, unit=unit))
    order = rng.permutation(N) if shuffle_phot else np.arange(N)
    keys = [
        fits.Column("UniqueID", "K", array=ids[order]),
        fits.Column("Trial", "K", array=trial[order]),
        fits.Column("Time", "D", array=time[order]),
    ]
    for col in filter_cols:
        col.array = np.asarray(col.array)[order]
    if layout == "fits":
        hdus = [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(keys + filter_cols)]
    else:
        hdus = [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(keys)] + [
            fits.BinTableHDU.from_columns([c]) for c in filter_cols
        ]
    fits.HDUList(hdus).writeto(directory / f"{model}_cluster_phot.fits")
    return {"time": time, "birth": birth, "av": av, "absolute": absolute}


@pytest.mark.parametrize("layout", ["fits", "fits2"])
def test_read_slug_fits_layouts(tmp_path, layout):
    truth = _slug_run(tmp_path, layout=layout)
    frame = read_slug_library(
        tmp_path / "run_cluster_prop.fits", distance_modulus=29.98, radius_model="K19", seed=4
    )
    assert list(frame.columns[:10]) == [
        "cluster_id",
        "log_mass",
        "log_age",
        "av",
        "r_eff_pc",
        *(f"mag_{b}" for b in DEFAULT_BANDS),
    ]
    np.testing.assert_allclose(frame["log_mass"], np.log10(truth["birth"]))
    np.testing.assert_allclose(frame["log_age"], np.log10(truth["time"]))
    np.testing.assert_allclose(frame["av"], truth["av"])
    for band, name in SLUG_FILTER_NAMES.items():  # auto = nebular + extinction, moved to 29.98 mag
        np.testing.assert_allclose(
            frame[f"mag_{band}"], truth["absolute"][name + "_neb_ex"] + 29.98
        )
    assert frame["r_eff_pc"].between(1, 10).all()
    meta = frame.attrs["jaxcomp_library"]
    assert (
        meta["source"] == "SLUG"
        and meta["photometry_variant"] == "neb_ex"
        and meta["mass_column"] == "BirthMass"
    )
    # the phot file and the model base name find the same run; radii follow the seed
    again = read_slug_library(tmp_path / "run_cluster_phot.fits", radius_model="K19", seed=4)
    pd.testing.assert_frame_equal(frame, again)
    base = read_library_table(tmp_path / "run", radius_model="K19", seed=5)
    np.testing.assert_allclose(base["mag_F555W"], frame["mag_F555W"])


def test_slug_choices_units_and_row_matching(tmp_path):
    truth = _slug_run(tmp_path, unit="AB mag", shuffle_phot=True)
    frame = read_slug_library(
        tmp_path / "run", photometry="ex", mass="target", distance_modulus=0.0
    )
    from sedpy import observate

    offset = observate.Filter("wfc3_uvis_f275w").ab_to_vega  # m_Vega = m_AB + offset
    np.testing.assert_allclose(frame["mag_F275W"], truth["absolute"]["WFC3_UVIS_F275W_ex"] + offset)
    np.testing.assert_allclose(frame["log_mass"], np.log10(truth["birth"] * 1.01))
    with pytest.raises(ValueError, match="ignores extinction"):
        read_slug_library(tmp_path / "run", photometry="intrinsic")


def test_slug_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="cluster photometry file .* not found"):
        (tmp_path / "a").mkdir()
        _slug_run(tmp_path / "a")
        (tmp_path / "a" / "run_cluster_phot.fits").unlink()
        read_slug_library(tmp_path / "a" / "run_cluster_prop.fits")
    (tmp_path / "b").mkdir()
    _slug_run(tmp_path / "b", unit="erg/s/Hz")
    with pytest.raises(ValueError, match="erg/s/Hz.*Vega or AB"):
        read_slug_library(tmp_path / "b" / "run")
    (tmp_path / "c").mkdir()
    _slug_run(tmp_path / "c", drop="ACS_F814W_neb_ex")
    with pytest.raises(ValueError, match=r"no column 'ACS_F814W_neb_ex' for band F814W"):
        read_slug_library(tmp_path / "c" / "run", photometry="neb_ex")
    frame = read_slug_library(tmp_path / "c" / "run")  # auto falls back to the complete _ex set
    assert frame.attrs["jaxcomp_library"]["photometry_variant"] == "ex"
    (tmp_path / "e").mkdir()
    _slug_run(tmp_path / "e", drop="ACS_F814W_neb_ex")
    with fits.open(
        tmp_path / "e" / "run_cluster_phot.fits", memmap=False
    ) as hdul:  # remove ACS_F814W_ex too
        table = fits.BinTableHDU.from_columns(
            [c for c in hdul[1].columns if c.name != "ACS_F814W_ex"]
        )
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(
        tmp_path / "e" / "run_cluster_phot.fits", overwrite=True
    )
    with pytest.raises(ValueError, match=r"lacks the extincted .*ACS_F814W"):
        read_slug_library(tmp_path / "e" / "run")
    (tmp_path / "d").mkdir()
    _slug_run(tmp_path / "d", with_av=False)
    with pytest.raises(ValueError, match="no A_V column"):
        read_slug_library(tmp_path / "d" / "run", photometry="ex")
    assert (
        read_slug_library(tmp_path / "d" / "run")["av"] == 0
    ).all()  # auto: nebular, no extinction
    with pytest.raises(ValueError, match="no SLUG filter name"):
        read_slug_library(tmp_path / "d" / "run", bands=["F606W"])


def _generic(n=5):
    return pd.DataFrame(
        {
            "cluster_id": np.arange(n),
            "log_mass": np.linspace(3, 5, n),
            "log_age": np.linspace(6, 9, n),
            "av": np.linspace(0, 1, n),
            "r_eff_pc": np.arange(1, n + 1),
            "mag_F555W": np.linspace(20, 24, n),
            "extra": np.ones(n),
        }
    )


def test_generic_table_validation_messages():
    good = validate_library_table(_generic(), bands=["F555W"])
    assert list(good.columns) == [
        "cluster_id",
        "log_mass",
        "log_age",
        "av",
        "r_eff_pc",
        "mag_F555W",
        "extra",
    ]
    bad = _generic().rename(columns={"log_mass": "mass", "r_eff_pc": "r_eff"})
    with pytest.raises(
        ValueError,
        match=r"lacks required column\(s\) \['log_mass', 'r_eff_pc'\].*log10\(mass\).*rename it to "
        r"r_eff_pc",
    ):
        validate_library_table(bad)
    with pytest.raises(ValueError, match="no magnitude columns"):
        validate_library_table(_generic().drop(columns=["mag_F555W"]))
    with pytest.raises(ValueError, match=r"lacks magnitude column\(s\) \['mag_F814W'\]"):
        validate_library_table(_generic(), bands=["F555W", "F814W"])
    linear = _generic().assign(log_mass=[1e3, 1e4, 1e5, 1e3, 1e4])
    with pytest.raises(ValueError, match="linear mass"):
        validate_library_table(linear)
    with pytest.raises(ValueError, match="age in yr"):
        validate_library_table(_generic().assign(log_age=1e7))
    with pytest.raises(ValueError, match="repeat"):
        validate_library_table(_generic().assign(cluster_id=0))
    with pytest.raises(ValueError, match="non-finite"):
        validate_library_table(_generic().assign(av=[0, np.nan, 0, 0, 0]))
    with pytest.raises(ValueError, match="NaN"):
        validate_library_table(_generic().assign(mag_F555W=[20, np.nan, 21, 22, 23]))
    with pytest.raises(ValueError, match="not numeric"):
        validate_library_table(_generic().assign(av="x"))
    inf_ok = validate_library_table(_generic().assign(mag_F555W=[20, np.inf, 21, 22, 23]))
    assert np.isinf(inf_ok["mag_F555W"]).sum() == 1


def test_generic_files_round_trip(tmp_path):
    frame = _generic()
    frame.attrs["jaxcomp_library"] = {"seed": 3}
    csv = tmp_path / "lib.csv"
    frame.to_csv(csv, index=False)
    back = read_library_table(csv)
    np.testing.assert_allclose(back["mag_F555W"], frame["mag_F555W"])
    path = write_library_fits(frame, tmp_path / "lib.fits")
    back = read_library_table(path)
    assert back.attrs["jaxcomp_library"] == {"seed": 3}
    np.testing.assert_allclose(back["log_age"], frame["log_age"])
    with pytest.raises(ValueError, match="SLUG outputs only"):
        read_library_table(csv, radius_model="K19")
    broken = tmp_path / "broken.csv"
    frame.drop(columns=["av"]).to_csv(broken, index=False)
    with pytest.raises(ValueError, match=r"broken.csv lacks required column\(s\) \['av'\]"):
        read_library_table(broken)
