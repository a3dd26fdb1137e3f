"""The runnable sensitivity study of inference/ runs end to end on the real catalogue and the C-4
network."""

import json

import pytest


def test_sensitivity_script_on_a_coarse_grid(c4_checkpoint_dir, tmp_path):
    import sensitivity  # inference/ is on sys.path through [tool.pytest.ini_options] pythonpath

    summary = sensitivity.main(
        [
            "--c4-dir",
            str(c4_checkpoint_dir),
            "--grid",
            "61",
            "46",
            "11",
            "--depths",
            "-1",
            "0",
            "1",
            "-o",
            str(tmp_path),
        ]
    )
    # the published-network fit of the Adamo+2017 sample: α_M = -2.47 ± 0.07 with NUTS on a fine
    # grid
    alpha_m, sigma = summary["maximum_likelihood"]["alpha_M"]
    assert alpha_m == pytest.approx(-2.47, abs=0.1) and 0.04 < sigma < 0.1
    for key, value in summary["slope_sensitivity_per_mag"].items():  # implicit derivative = refit
        assert value["implicit"] == pytest.approx(
            value["refit_central_difference"], rel=0.05, abs=0.01
        ), key
    power = summary["fisher_forecast"]["power-law CMF (ML fit)"]
    assert all(
        a > b for a, b in zip(power["sigma_alpha_M"], power["sigma_alpha_M"][1:])
    )  # deeper is better
    assert summary["sigma_alpha_M_at_survey_depth"]["fisher"] == pytest.approx(
        summary["sigma_alpha_M_at_survey_depth"]["laplace_on_data"], rel=0.2
    )
    assert (
        json.loads((tmp_path / "summary.json").read_text())["n_clusters"] == summary["n_clusters"]
    )
    assert (tmp_path / "fisher_forecast.png").stat().st_size > 10_000
