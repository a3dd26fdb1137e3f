"""`jaxcomp correct` and `jaxcomp fit` end to end on a simulated catalogue, and their bad-input
errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from jaxcomp import SelectionFunction
from jaxcomp._io import read_table, write_table
from jaxcomp.cli import main
from jaxcomp.demographics import PopulationModel, simulate_catalogue
from jaxcomp.selection.function import _tensors_to_weights
from jaxcomp.selection.inputs import PHOTOMETRIC_INPUTS, PHYSICAL_INPUTS
from jaxcomp.selection.network import NetworkConfig, abstract_network
from jaxcomp.selection.synthetic import LogisticSelection

TRUTH = {"alpha_M": -2.0, "alpha_T": -0.8, "av_weights": np.array([0.4, 0.3, 0.2, 0.1])}
MODEL = PopulationModel(mass="power_law", age="power_law")
GRID = ("--grid", "41", "31", "7")


def logistic_artefact(path):
    """A physical SelectionFunction whose p_obs is exactly ``LogisticSelection.linear()`` (no
    training).

    One hidden GELU unit with a bias of 20 works in its linear regime (its argument stays
    in [10.5, 29.5] on the domain, where GELU(x) = x to float32 precision), so the logit is
    linear in the standardised inputs: ``(log_mass - m50(log_age, av)) / 0.3``.
    """
    truth = LogisticSelection.linear()
    lower = np.array([s.domain[0] for s in PHYSICAL_INPUTS])
    upper = np.array([s.domain[1] for s in PHYSICAL_INPUTS])
    mean, scale = (upper + lower) / 2, (upper - lower) / 2
    # logit = c + g . f for standardised features f = (x - mean) / scale
    slopes = np.array([1.0, -truth.age_slope, -truth.extinction_slope]) / truth.width
    g = slopes * scale
    c = (
        mean[0]
        - truth.log_mass_50_young
        - truth.age_slope * mean[1]
        - truth.extinction_slope * mean[2]
    ) / truth.width
    k, b = 2.0, 20.0
    tensors = {
        "hidden.0.kernel": (g / k).reshape(1, 3, 1),
        "hidden.0.bias": np.full((1, 1), b),
        "head.kernel": np.full((1, 1, 1), k),
        "head.bias": np.full((1, 1), c - k * b),
    }
    config = NetworkConfig(n_inputs=3, hidden_widths=(1,))
    weights = _tensors_to_weights(
        abstract_network(config)[1], {n: v.astype(np.float32) for n, v in tensors.items()}
    )
    sf = SelectionFunction.from_weights(
        input_specs=PHYSICAL_INPUTS,
        mean=mean,
        scale=scale,
        network_config=config,
        weights=weights,
        metadata={"note": "test: linear logistic selection"},
    )
    return sf.save(path)


def photometric_artefact(path):
    config = NetworkConfig(n_inputs=5, hidden_widths=(4,))
    tensors = {
        name: np.full((1, *leaf.shape), 0.1, np.float32)
        for name, leaf in {
            "hidden.0.kernel": np.zeros((5, 4)),
            "hidden.0.bias": np.zeros(4),
            "head.kernel": np.zeros((4, 1)),
            "head.bias": np.zeros(1),
        }.items()
    }
    weights = _tensors_to_weights(abstract_network(config)[1], tensors)
    sf = SelectionFunction.from_weights(
        input_specs=PHOTOMETRIC_INPUTS,
        mean=np.full(5, 25.0),
        scale=np.ones(5),
        network_config=config,
        weights=weights,
    )
    return sf.save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("demographics_cli")
    sf_path = logistic_artefact(root / "phys.safetensors")
    sf = SelectionFunction.load(sf_path)
    x = np.array([[3.0, 6.75, 0.0], [4.5, 8.0, 1.0], [2.5, 9.5, 2.0]])
    np.testing.assert_allclose(
        np.asarray(sf(x.astype(np.float32))), LogisticSelection.linear()(*x.T), atol=1e-4
    )
    catalogue = simulate_catalogue(MODEL, TRUTH, sf, n_obs=400, seed=3)
    catalogue.meta.clear()
    write_table(catalogue, root / "catalogue.ecsv")
    return {"root": root, "sf": sf_path, "catalogue": root / "catalogue.ecsv"}


def run(*argv):
    return main([str(a) for a in argv])


def test_correct_writes_tables_figures_and_record(inputs, capsys):
    out = inputs["root"] / "correct"
    args = (
        "correct",
        inputs["catalogue"],
        "--selection",
        inputs["sf"],
        *GRID,
        "--out",
        out,
        "--mass-function",
        "power_law",
        "--mass-alpha",
        "-2.0",
        "--age-function",
        "power_law",
        "--age-alpha",
        "-0.8",
        "--age-support",
        "6",
        "10.17",
        "--mass-bins",
        "2",
        "8",
        "0.25",
    )
    assert run(*args) == 0
    printed = capsys.readouterr().out
    assert "evaluating the selection function" in printed and "p(A_V):" in printed
    for name in (
        "caf.ecsv",
        "cmf.ecsv",
        "caf.png",
        "cmf.png",
        "av_distribution.ecsv",
        "correct.json",
        "selection_grid_41x31x7.npz",
        "selection_grid_41x31x7.json",
    ):
        assert (out / name).is_file(), name
    caf, cmf = Table.read(out / "caf.ecsv"), Table.read(out / "cmf.ecsv")
    for table in (caf, cmf):
        n_raw = np.asarray(table["n_raw"], float)
        n_corr = np.ma.filled(np.ma.asarray(table["n_corr"], float), np.nan)
        usable = np.isfinite(n_corr) & (n_raw > 0)
        assert usable.sum() >= 5
        assert np.all(n_corr[usable] >= n_raw[usable])
        assert np.all(np.ma.filled(np.ma.asarray(table["p_mean"], float), 0.5)[usable] <= 1)
    assert np.asarray(cmf["n_raw"]).sum() == 400  # every simulated mass lies in [2, 8]
    record = json.loads((out / "correct.json").read_text())
    assert record["status"] == "complete"
    assert record["configuration"]["mass_function"] == {
        "form": "power_law",
        "alpha": -2.0,
        "support": [2.0, 8.0],
    }
    assert (
        len(record["inputs"]["catalogue"]["sha256"]) == 64
        and len(record["inputs"]["selection"]["sha256"]) == 64
    )
    assert {"jaxcomp", "jax", "numpyro", "numpy"} <= set(record["versions"])
    assert record["results"]["cmf"]["n_corr"] > record["results"]["cmf"]["n_raw"]
    assert (
        sum(record["results"]["av_distribution"]["counts"])
        == record["results"]["av_distribution"]["n_selected"]
    )

    # same configuration: reruns and reuses the cached grid
    assert run(*args) == 0
    assert "reusing the cached selection grid" in capsys.readouterr().out
    # another configuration: refused, then allowed with --overwrite (the grid cache still matches)
    assert run(*args, "--av", "uniform") == 2
    error = capsys.readouterr().err
    assert "different configuration (changed: av)" in error and "--overwrite" in error
    assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert run(*args, "--av", "uniform", "--overwrite") == 0
    assert "reusing the cached selection grid" in capsys.readouterr().out
    assert (
        json.loads((out / "correct.json").read_text())["configuration"]["av"]["mode"] == "uniform"
    )


def test_fit_short_chain(inputs, capsys):
    out = inputs["root"] / "fit"
    assert (
        run(
            "fit",
            inputs["catalogue"],
            "--selection",
            inputs["sf"],
            "--grid",
            "61",
            "41",
            "7",
            "--out",
            out,
            "--mass",
            "power_law",
            "--age",
            "power_law",
            "--chains",
            "1",
            "--warmup",
            "50",
            "--samples",
            "50",
            "--seed",
            "4",
            "--ppc-draws",
            "4",
        )
        == 0
    )
    captured = capsys.readouterr()
    printed = captured.out
    assert "fitting power-law CMF" in printed and "divergences" in printed
    for name in ("posterior.ecsv", "posterior.md", "report.txt", "pair.png", "ppc.png", "fit.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "fit.json").read_text())
    assert record["seed"] == 4 and record["status"] == "complete"
    assert (
        record["idata"]["file"] in ("idata.nc", "idata.json")
        and (out / record["idata"]["file"]).is_file()
    )
    diagnostics = record["diagnostics"]
    assert {"num_divergences", "max_r_hat", "min_ess_bulk", "r_hat", "ess_bulk"} <= set(diagnostics)
    assert diagnostics["num_divergences"] <= 3
    posterior = Table.read(out / "posterior.ecsv")
    row = posterior[list(posterior["parameter"]).index("alpha_M")]
    assert abs(row["median"] - TRUTH["alpha_M"]) < 0.25 and row["q16"] < row["median"] < row["q84"]
    row = posterior[list(posterior["parameter"]).index("alpha_T")]
    assert abs(row["median"] - TRUTH["alpha_T"]) < 0.3
    assert "| alpha_M |" in (out / "posterior.md").read_text()
    assert "alpha_M" in (out / "report.txt").read_text()


def test_bad_inputs_exit_2_with_one_line(inputs, capsys):
    root = inputs["root"]
    catalogue = read_table(inputs["catalogue"])
    renamed = catalogue.copy()
    renamed.rename_column("av", "A_V")
    write_table(renamed, root / "renamed.ecsv")
    broken = catalogue.copy()
    broken["log_mass"][:3] = np.nan
    broken["av"][5] = -99.0
    write_table(broken, root / "broken.csv")
    photometric_artefact(root / "phot.safetensors")
    (root / "occupied").mkdir()
    (root / "occupied" / "notes.txt").write_text("mine")

    cases = [
        ((root / "missing.ecsv", "--selection", inputs["sf"]), "catalogue not found"),
        ((inputs["catalogue"], "--selection", root / "missing.safetensors"), "artefact not found"),
        ((root / "renamed.ecsv", "--selection", inputs["sf"]), "lacks column(s) av"),
        (
            (root / "broken.csv", "--selection", inputs["sf"]),
            "4 of 400 row(s) have NaN, masked or sentinel",
        ),
        (
            (inputs["catalogue"], "--selection", root / "phot.safetensors"),
            "physical one of (log_mass, log_age, av)",
        ),
        (
            (inputs["catalogue"], "--selection", inputs["sf"], "--out", root / "occupied"),
            "holds files of no",
        ),
        ((inputs["catalogue"],), "give --selection"),
    ]
    for command in ("correct", "fit"):
        for argv, message in cases:
            if "--out" not in argv:
                argv = (*argv, "--out", root / f"never_{command}")
            assert run(command, *argv, *GRID) == 2, (command, message)
            error = capsys.readouterr().err
            assert error.startswith("jaxcomp: error: ") and message in error, (command, error)
            assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert not (root / "never_correct").exists() and not (root / "never_fit").exists()
    assert (root / "occupied" / "notes.txt").read_text() == "mine"
    # the messages name the fixes, and the fixes work as far as the checks go
    assert (
        run(
            "correct",
            root / "broken.csv",
            "--selection",
            inputs["sf"],
            "--out",
            root / "occupied",
            *GRID,
        )
        == 2
    )
    assert "--drop-invalid" in capsys.readouterr().err
    assert (
        run(
            "correct",
            root / "renamed.ecsv",
            "--selection",
            inputs["sf"],
            "--columns",
            "av=A_V",
            "--out",
            root / "occupied",
            *GRID,
        )
        == 2
    )
    assert "holds files of no" in capsys.readouterr().err  # past the column check
    assert (
        run(
            "correct",
            root / "broken.csv",
            "--selection",
            inputs["sf"],
            "--drop-invalid",
            "--out",
            root / "occupied",
            *GRID,
        )
        == 2
    )
    captured = capsys.readouterr()
    assert "dropped 4 of 400 catalogue rows" in captured.out and "holds files of no" in captured.err
