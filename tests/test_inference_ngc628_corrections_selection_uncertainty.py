"""inference/ngc628_corrections_selection_uncertainty.py end to end on the real NGC 628C catalogue
with synthetic member grids whose spread is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from jaxcomp.demographics import SelectionGrid
from jaxcomp.selection.synthetic import LogisticSelection

#: member m sees f_m times the same p_obs: every member's p_corr is f_m / mean(f) times the mean's
FACTORS = np.array([0.7, 0.85, 1.0])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import ngc628_corrections_selection_uncertainty as script  # inference/ is on sys.path

    tmp = tmp_path_factory.mktemp("selcorr")
    axes = (np.linspace(2.0, 8.0, 49), np.linspace(5.0, 10.2, 53), np.linspace(0.0, 3.0, 7))
    p_obs = LogisticSelection.linear()(*np.meshgrid(*axes, indexing="ij"))
    paths = []
    for m, factor in enumerate(FACTORS):
        paths.append(SelectionGrid.from_arrays(*axes, factor * p_obs).save(tmp / f"m{m}.npz"))
    out = tmp / "out"
    summary = script.main(
        ["--member-grids", *map(str, paths), "--work-dir", str(tmp), "-o", str(out)]
    )
    return summary, out


def test_the_selection_error_is_the_known_spread(run):
    summary, out = run
    assert summary["n_clusters"] == 1017 and summary["n_members"] == 3
    caf = Table.read(out / "caf.ecsv")
    n_raw = np.asarray(caf["n_raw"], float)
    assert int(n_raw.sum()) == 1017  # every cluster is inside the age bins (6.0-10.2)
    usable = (n_raw > 0) & ~np.asarray(caf["masked"], bool)
    assert usable.sum() >= 5
    # N_corr,m = N_raw mean(f) / (f_m p_mean): sel / Poisson = sqrt(N_raw) sd(mean(f) / f_m)
    expected = np.sqrt(n_raw[usable]) * np.std(FACTORS.mean() / FACTORS, ddof=1)
    ratio = [r["sel_over_poisson"] for r in summary["bins"]["caf"]]
    np.testing.assert_allclose(np.asarray(ratio)[usable], expected, rtol=1e-5)
    assert summary["headline"]["caf"]["median_sel_over_poisson"] == pytest.approx(
        np.median(expected), rel=1e-5
    )
    total = np.asarray(caf["n_corr_total_err"], float)[usable]
    np.testing.assert_allclose(
        total, np.hypot(caf["n_corr_err"], caf["n_corr_sel_err"])[usable], rtol=1e-12
    )


def test_the_outputs_are_written(run):
    summary, out = run
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["headline"] == json.loads(json.dumps(summary["headline"]))
    assert len(on_disk["catalogue"]["sha256"]) == 64
    assert all(len(g["sha256"]) == 64 for g in on_disk["selection"]["member_grids"])
    markdown = (out / "summary.md").read_text()
    assert "| 6.00-6.30 |" in markdown and "sel / Poisson" in markdown
    assert "n_corr_sel_err" in Table.read(out / "cmf.ecsv").colnames
    assert (out / "corrections.png").stat().st_size > 20_000
