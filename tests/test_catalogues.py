"""Tests of the LEGUS NGC 628 catalogue readers (jaxcomp.catalogues) and shipped data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxcomp._data as _data_module
from jaxcomp._data import data_path
from jaxcomp.catalogues import (
    ADAMO17_PUBLISHED_50PCT_NGC628C,
    BANDS,
    LEGUS_NGC628_FILES,
    R_V,
    adamo17_50pct_magnitudes,
    find_duplicates,
    read_adamo17_completeness,
    read_legus,
    read_legus_ngc628,
)


@pytest.fixture(scope="module")
def cat_c():
    return read_legus("ngc628c")


@pytest.fixture(scope="module")
def cat_e():
    return read_legus("ngc628e")


@pytest.fixture(scope="module")
def raw_c():
    return np.loadtxt(data_path("legus", LEGUS_NGC628_FILES["ngc628c"]))


@pytest.fixture(scope="module")
def all_c():
    return read_legus("ngc628c", classes=None)


def _class_counts(t):
    return [int(np.sum(t["class_mode"] == k)) for k in (1, 2, 3)]


# --------------------------------------------------------------------------- shipped data


def test_data_path_finds_shipped_files():
    for name in list(LEGUS_NGC628_FILES.values()) + [
        "adamo17_ngc628_per_band_ast_completeness.json",
        "README.md",
    ]:
        assert data_path("legus", name).is_file()
    assert data_path().is_dir()


def test_data_path_missing_names_what_and_where():
    with pytest.raises(FileNotFoundError, match="no_such_file.txt") as info:
        data_path("legus", "no_such_file.txt")
    assert "installed package data" in str(info.value)
    assert "source checkout" in str(info.value)


def test_data_path_wheel_layout(tmp_path):
    """An installed package (no pyproject.toml next to it) finds jaxcomp/data."""
    pkg = tmp_path / "site" / "jaxcomp"
    (pkg / "data" / "legus").mkdir(parents=True)
    shutil.copy(_data_module.__file__, pkg / "_data.py")
    (pkg / "__init__.py").write_text("")  # a regular package, so it shadows an installed jaxcomp
    (pkg / "data" / "legus" / "probe.txt").write_text("x")
    code = (
        "from jaxcomp._data import data_path; p = data_path('legus', 'probe.txt'); "
        "print(p)\n"
        "try:\n    data_path('legus', 'absent.txt')\n"
        "except FileNotFoundError as e:\n    print('ERR', e)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    lines = res.stdout.strip().splitlines()
    assert Path(lines[0]) == pkg / "data" / "legus" / "probe.txt"
    assert lines[1].startswith("ERR") and "absent.txt" in lines[1]


# --------------------------------------------------------------------------- class counts


def test_class_counts_per_pointing(cat_c, cat_e):
    assert _class_counts(cat_c) == [334, 357, 326] and len(cat_c) == 1017
    assert _class_counts(cat_e) == [92, 80, 87] and len(cat_e) == 259
    assert set(cat_c["field"]) == {"ngc628c"} and set(cat_e["field"]) == {"ngc628e"}


def test_classes_none_keeps_everything(all_c):
    assert len(all_c) == 3080
    assert int(np.sum(all_c["class_mode"] == 0)) == 1521
    assert int(np.sum(all_c["class_mode"] == 4)) == 542
    assert len(read_legus("ngc628e", classes=None)) == 593
    assert len(read_legus("ngc628c", classes=(4,))) == 542


def test_class_mean_selection_rounds_half_up(all_c):
    t = read_legus("ngc628c", class_column="mean")
    expected = np.isin(np.floor(np.asarray(all_c["class_mean"]) + 0.5), [1, 2, 3])
    assert len(t) == int(expected.sum())
    with pytest.raises(ValueError, match="class_column"):
        read_legus("ngc628c", class_column="median")


def test_joined_and_deduplicated():
    t = read_legus_ngc628()
    assert len(t) == 1262
    assert t.meta["n_duplicates"] == 14
    assert len(t.meta["duplicates_removed"]) == 14
    assert np.all(t["duplicate_of"] == -1)
    # (field, id) is a unique key
    keys = {(f, i) for f, i in zip(t["field"], t["id"])}
    assert len(keys) == len(t)

    t_all = read_legus_ngc628(deduplicate=False)
    assert len(t_all) == 1017 + 259
    dup = t_all["duplicate_of"] >= 0
    assert int(dup.sum()) == 14
    assert set(t_all["field"][dup]) == {"ngc628e"}
    # every flagged row points at a C class 1-3 source and lies within 0.1 arcsec
    c_ids = set(t_all["id"][t_all["field"] == "ngc628c"])
    assert set(t_all["duplicate_of"][dup]) <= c_ids
    assert float(np.max(t_all["duplicate_sep_arcsec"][dup])) < 0.075
    assert np.all(t_all["duplicate_sep_arcsec"].mask == ~dup)


def test_duplicate_count_is_insensitive_to_tolerance(cat_c, cat_e):
    """Class 1-3 duplicates sit at <= 0.072 arcsec (coordinate rounding), next pair at 0.33."""
    for tol in (0.08, 0.1, 0.2, 0.3):
        assert len(find_duplicates(cat_c, cat_e, tolerance_arcsec=tol)) == 14
    assert len(find_duplicates(cat_c, cat_e, tolerance_arcsec=0.5)) == 16
    d = find_duplicates(cat_c, cat_e)
    assert np.all(np.asarray(d["sep_arcsec"]) <= 0.0721)
    assert len(find_duplicates(cat_c[:0], cat_e)) == 0


# --------------------------------------------------------------------------- sentinels


def test_magnitude_sentinels_are_masked(all_c, raw_c):
    for k, band in enumerate(BANDS):
        m_raw = raw_c[:, 5 + 2 * k]
        outside = np.isclose(m_raw, 66.666, rtol=0, atol=1e-4)
        undetected = np.isclose(m_raw, 99.999, rtol=0, atol=1e-4)
        mag = all_c[f"mag_{band}"]
        assert np.array_equal(np.asarray(mag.mask), outside | undetected)
        assert np.array_equal(np.asarray(all_c[f"in_footprint_{band}"]), ~outside)
        assert np.array_equal(np.asarray(all_c[f"detected_{band}"]), ~outside & ~undetected)
        assert np.all(all_c[f"magerr_{band}"].mask[mag.mask])
        good = np.asarray(mag[~mag.mask])
        assert good.max() < 40 and good.min() > 10
        assert np.all(np.isnan(mag.filled()[mag.mask]))
    # the known counts in NGC628C, F275W
    assert int((~all_c["in_footprint_F275W"]).sum()) == 673
    assert int((all_c["in_footprint_F275W"] & ~all_c["detected_F275W"]).sum()) == 198


def test_unfitted_sources_have_masked_physics(all_c):
    nofit = np.asarray(all_c["n_filters"]) == 0
    assert nofit.sum() == 1179
    for name in (
        "age_best_yr",
        "mass_best_msun",
        "ebv_best",
        "log_mass",
        "log_age",
        "av",
        "chi2_red",
        "q_prob",
    ):
        assert np.array_equal(np.asarray(all_c[name].mask), nofit), name
    # residual 200 = band not used in the fit
    for band in BANDS:
        r = all_c[f"sed_resid_{band}"]
        assert not np.any(np.asarray(r[~r.mask]) == 200.0)


def test_units():
    t = read_legus("ngc628e")
    assert str(t["ra_deg"].unit) == "deg" and str(t["x_px"].unit) == "pix"
    assert str(t["mag_F555W"].unit) == "mag" and str(t["age_best_yr"].unit) == "yr"
    assert str(t["mass_best_msun"].unit) == "solMass" and str(t["av"].unit) == "mag"
    assert str(t["log_mass"].unit) == "dex(solMass)" and str(t["log_age"].unit) == "dex(yr)"
    assert t.meta["instruments"]["F555W"] == "WFC3/UVIS"


# --------------------------------------------------------------------------- physics columns


def test_av_is_3p1_ebv(all_c):
    for av, ebv in (("av", "ebv_best"), ("av_lo", "ebv_min"), ("av_hi", "ebv_max")):
        a, e = all_c[av], all_c[ebv]
        assert np.array_equal(a.mask, e.mask)
        np.testing.assert_allclose(np.asarray(a[~a.mask]), R_V * np.asarray(e[~e.mask]), rtol=1e-12)
    assert R_V == 3.1


def test_log_columns_match_linear(all_c):
    for log, lin in (
        ("log_mass", "mass_best_msun"),
        ("log_mass_lo", "mass_min_msun"),
        ("log_mass_hi", "mass_max_msun"),
        ("log_age", "age_best_yr"),
        ("log_age_lo", "age_min_yr"),
        ("log_age_hi", "age_max_yr"),
    ):
        a, b = all_c[log], all_c[lin]
        assert np.array_equal(a.mask, b.mask)
        np.testing.assert_allclose(np.asarray(a[~a.mask]), np.log10(np.asarray(b[~b.mask])))


@pytest.mark.parametrize("field, n_missing_range", [("ngc628c", 10), ("ngc628e", 1)])
def test_ranges_ordered_and_missing_ranges_masked(field, n_missing_range):
    """Decision: max/min == 0 means 'no 68% range delivered' and is masked.

    Among class 1-3 clusters that happens for 10 rows in NGC628C and 1 in NGC628E
    (age/mass/E(B-V) best present, max = min = 0; raw, they would violate
    min <= best <= max). Every other row satisfies lo <= best <= hi.
    """
    t = read_legus(field)
    for q in ("log_mass", "log_age", "av"):
        lo, best, hi = t[f"{q}_lo"], t[q], t[f"{q}_hi"]
        assert not np.any(best.mask)  # every class 1-3 cluster was SED-fitted
        assert int(lo.mask.sum()) == n_missing_range
        assert np.array_equal(lo.mask, hi.mask)
        ok = ~lo.mask
        lo_, b_, hi_ = (np.asarray(x)[ok] for x in (lo, best, hi))
        assert int(np.sum((lo_ > b_) | (b_ > hi_))) == 0
    # the masked rows are exactly those with a zero range in the raw file
    zero = (np.asarray(t["age_max_yr"].data) == 0) & (np.asarray(t["mass_min_msun"].data) == 0)
    assert np.array_equal(zero, np.asarray(t["log_age_lo"].mask))


# --------------------------------------------------------------------------- corrupt files


def _good_lines(n=5):
    path = data_path("legus", LEGUS_NGC628_FILES["ngc628e"])
    with open(path) as fh:
        return [next(fh) for _ in range(n)]


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.tab"
    with pytest.raises(FileNotFoundError, match="nope.tab"):
        read_legus(missing)


def test_wrong_column_count(tmp_path):
    lines = _good_lines()
    lines[2] = " ".join(lines[2].split()[:34]) + "\n"
    bad = tmp_path / "short.tab"
    bad.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"short\.tab: line 3: expected 35 .* found 34"):
        read_legus(bad, classes=None)


def test_non_numeric_value(tmp_path):
    lines = _good_lines()
    tok = lines[3].split()
    tok[5] = "abc"
    lines[3] = " ".join(tok) + "\n"
    bad = tmp_path / "text.tab"
    bad.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"text\.tab: line 4: column 6 \(mag_F275W\).*'abc'"):
        read_legus(bad, classes=None)


def test_nan_and_non_integer_class(tmp_path):
    lines = _good_lines()
    tok = lines[1].split()
    tok[19] = "nan"
    bad = tmp_path / "nan.tab"
    bad.write_text("".join(lines[:1] + [" ".join(tok) + "\n"] + lines[2:]))
    with pytest.raises(ValueError, match=r"line 2: column 20 \(mass_best_msun\)"):
        read_legus(bad, classes=None)
    tok = lines[0].split()
    tok[33] = "1.5"
    bad2 = tmp_path / "cls.tab"
    bad2.write_text(" ".join(tok) + "\n" + "".join(lines[1:]))
    with pytest.raises(
        ValueError, match=r"cls\.tab: line 1: column 34 \(class_mode\) must be an integer"
    ):
        read_legus(bad2, classes=None)


def test_empty_file_and_comments(tmp_path):
    empty = tmp_path / "empty.tab"
    empty.write_text("\n# nothing here\n")
    with pytest.raises(ValueError, match="no data rows"):
        read_legus(empty)
    ok = tmp_path / "hlsp_legus_hst_acs-wfc3_ngc628-e_copy.tab"
    ok.write_text("# a comment\n\n" + "".join(_good_lines()))
    t = read_legus(ok, classes=None)
    assert len(t) == 5 and t["field"][0] == "ngc628e"


# --------------------------------------------------------------------------- Adamo+2017 ASTs


def test_adamo17_structure():
    for field in ("ngc628c", "ngc628e"):
        curves = read_adamo17_completeness(field)
        assert list(curves) == list(BANDS)
        for band, (mag, frac) in curves.items():
            assert mag.shape == frac.shape == (12,)
            assert np.all(np.diff(mag) > 0)
            assert 20.2 < mag[0] < 20.3 and 25.7 < mag[-1] < 25.8
            assert np.all((frac >= 0) & (frac <= 1))
            assert frac[0] == 1.0


def test_adamo17_50pct_matches_published():
    got = adamo17_50pct_magnitudes("ngc628c")
    for band, ref in ADAMO17_PUBLISHED_50PCT_NGC628C.items():
        assert abs(got[band] - ref) < 0.05, (band, got[band], ref)
    e = adamo17_50pct_magnitudes("NGC628E")
    assert all(np.isfinite(v) for v in e.values())


def test_adamo17_malformed(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "ngc628c": {
                    "filters": ["ACS_F555W"],
                    "mag": [[21, 20]],
                    "completeness_pct": [[100, 50]],
                }
            }
        )
    )
    with pytest.raises(ValueError, match="not strictly increasing"):
        read_adamo17_completeness("ngc628c", path=bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_adamo17_completeness("ngc628c", path=bad)
    with pytest.raises(ValueError, match="unknown field"):
        read_adamo17_completeness("ngc1313")
