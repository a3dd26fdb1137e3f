"""`jaxcomp fit --field ...`: several fields in one hierarchical fit, end to end, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table

from jaxcomp._io import write_table
from jaxcomp.cli import main
from jaxcomp.demographics import PopulationModel, SelectionGrid, simulate_catalogue
from jaxcomp.selection import SelectionFunction
from jaxcomp.selection.synthetic import LogisticSelection
from tests.test_demographics_cli import logistic_artefact

MODEL = PopulationModel(mass="power_law", age="power_law")
TRUTH = {"alpha_M": -2.0, "alpha_T": -0.8, "av_weights": np.array([0.4, 0.3, 0.2, 0.1])}
SHAPE = (41, 26, 7)
MODEL_OPTIONS = ("--mass", "power_law", "--age", "power_law")
SAMPLER = ("--chains", "2", "--warmup", "100", "--samples", "100", "--seed", "5", "--quiet")


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Three fields: 'deep' with the logistic artefact (its grid computed by the command), 'mid'
    and 'shallow' with saved grids of shallower logistic selections."""
    root = tmp_path_factory.mktemp("fit_fields_cli")
    artefact = logistic_artefact(root / "deep.safetensors")
    selections = {
        "deep": SelectionFunction.load(artefact),
        "mid": LogisticSelection(log_mass_50_young=3.0),
        "shallow": LogisticSelection(log_mass_50_young=3.5),
    }
    specs = {}
    for f, ((name, selection), n) in enumerate(zip(selections.items(), (150, 100, 80))):
        catalogue = simulate_catalogue(MODEL, TRUTH, selection, n_obs=n, seed=10 + f)
        catalogue.meta.clear()
        write_table(catalogue, root / f"{name}.ecsv")
        if name == "deep":
            selection_spec = artefact
        else:
            selection_spec = root / f"{name}_grid.npz"
            SelectionGrid.from_selection(selection, shape=SHAPE).save(selection_spec)
        specs[name] = (root / f"{name}.ecsv", selection_spec)
    return root, specs


def field_args(specs, names=("deep", "mid", "shallow")):
    args = []
    for name in names:
        args += ["--field", name, *specs[name]]
    return args


def run(*argv):
    return main([str(a) for a in argv])


def test_three_fields_partial_pooling(fields, capsys):
    """One partial-pooling fit (each NUTS program compiles for ~8 s: the three-form comparison,
    --compare-pooling, is exercised by notebooks/06_many_fields.py through the same
    compare_pooling and write_multifield_outputs)."""
    root, specs = fields
    out = root / "fit"
    argv = (
        "fit",
        *field_args(specs),
        "--grid",
        *SHAPE,
        *MODEL_OPTIONS,
        *SAMPLER,
        "--target-accept",
        "0.9",
        "--out",
        out,
    )
    assert run(*argv) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "3 fields, partial pooling" in printed
    for name in (
        "posterior_fields.ecsv",
        "posterior_population.ecsv",
        "posterior.md",
        "report.txt",
        "shrinkage_alpha_M.png",
        "shrinkage_alpha_T.png",
        "fit.json",
    ):
        assert (out / name).is_file(), name
    # the artefact's grid is cached under its hash; the saved grids are used as they are
    cached = sorted(p.name for p in out.glob("selection_grid_*_41x26x7.npz"))
    assert len(cached) == 1
    record = json.loads((out / "fit.json").read_text())
    assert record["status"] == "complete" and record["seed"] == 5
    configuration = record["configuration"]
    assert [f["name"] for f in configuration["fields"]] == ["deep", "mid", "shallow"]
    assert len(configuration["fields"][0]["selection_sha256"]) == 64
    assert len(configuration["fields"][1]["grid_file_sha256"]) == 64
    assert configuration["pooling"] == "partial" and not configuration["compare_pooling"]
    assert record["n_clusters"] == {"deep": 150, "mid": 100, "shallow": 80}
    assert set(record["diagnostics"]) == {"partial", "warnings"} and record["loo"] is None
    assert record["diagnostics"]["partial"]["num_divergences"] <= 3
    assert (out / record["idata"]["partial"]["file"]).is_file()
    # per-field and population posteriors: every field, the truth recovered
    per_field = Table.read(out / "posterior_fields.ecsv")
    assert set(per_field["pooling"]) == {"partial"} and len(per_field) == 3 * (2 + 4 + 1)
    rows = per_field[(per_field["pooling"] == "partial") & (per_field["parameter"] == "alpha_M")]
    assert list(rows["field"]) == ["deep", "mid", "shallow"]
    assert np.all(np.abs(rows["median"] - TRUTH["alpha_M"]) < 0.3)
    assert np.all((rows["q025"] < rows["median"]) & (rows["median"] < rows["q975"]))
    fractions = per_field[per_field["parameter"] == "detected_fraction"]
    assert np.all((fractions["median"] > 0) & (fractions["median"] < 1))
    population = Table.read(out / "posterior_population.ecsv")
    row = population[
        (population["pooling"] == "partial") & (population["parameter"] == "alpha_M_mean")
    ]
    assert len(row) == 1 and row["q025"][0] < TRUTH["alpha_M"] < row["q975"][0]
    assert set(population[population["pooling"] == "partial"]["parameter"]) >= {
        "alpha_M_mean",
        "alpha_M_scatter",
        "alpha_T_mean",
        "alpha_T_scatter",
        "av_logit_scatter",
    }
    markdown = (out / "posterior.md").read_text()
    assert "| alpha_M_mean |" in markdown and "| shallow | alpha_M |" in markdown

    # the same configuration reruns (the cached grid reused); another one needs --overwrite
    changed = [a if a != "0.9" else "0.85" for a in argv]
    assert run(*changed) == 2
    error = capsys.readouterr().err
    assert "different configuration (changed: target_accept)" in error


def test_bad_field_inputs_name_the_field(fields, capsys):
    root, specs = fields
    outside = Table.read(specs["mid"][0])
    outside["log_mass"] = 8.5  # every cluster above the mass support [2, 8]
    write_table(outside, root / "outside.ecsv")
    narrow = SelectionGrid.from_selection(
        LogisticSelection(), log_mass=np.linspace(3.0, 8.0, 41), shape=SHAPE
    )
    narrow.save(root / "narrow.npz")
    deep = specs["deep"]
    cases = [
        (
            ["--field", "deep", *deep, "--field", "deep", *specs["mid"]],
            "field name 'deep' is given more than once",
        ),
        (
            ["--field", "deep", *deep, "--field", "mid", root / "outside.ecsv", specs["mid"][1]],
            "field 'mid': no cluster lies inside log M in (2.0, 8.0)",
        ),
        (
            ["--field", "deep", *deep, "--field", "mid", specs["mid"][0], root / "narrow.npz"],
            "field 'mid': its selection grid covers log_mass [3, 8] but the model asks for [2, 8]",
        ),
        (
            ["--field", "deep", *deep, "--field", "gone", root / "missing.ecsv", deep[1]],
            "field 'gone': catalogue not found",
        ),
        (
            ["--field", "deep", *deep, "--field", "mid", specs["mid"][0], root / "missing.npz"],
            "field 'mid': selection grid not found",
        ),
        (
            ["--field", "deep", *deep, "--selection", deep[1]],
            "--selection belong to the single-field fit",
        ),
        (
            [deep[0], "--selection", deep[1], "--pooling", "none"],
            "--pooling, --compare-pooling and --parametrisation fit several fields",
        ),
        (
            [deep[0], "--selection", deep[1], "--parametrisation", "centred"],
            "--pooling, --compare-pooling and --parametrisation fit several fields",
        ),
    ]
    for argv, message in cases:
        assert run("fit", *argv, "--grid", *SHAPE, "--out", root / "never", "--quiet") == 2, message
        error = capsys.readouterr().err
        assert error.startswith("jaxcomp: error: ") and message in error, (message, error)
        assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert not (root / "never").exists()
