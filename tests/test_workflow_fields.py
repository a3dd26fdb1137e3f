"""``[[fields]]`` in the workflow: parsing, the errors that name the field, and a small run of the
many-field fit stage with its report."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from jaxcomp._io import write_table
from jaxcomp.demographics import PopulationModel, simulate_catalogue
from jaxcomp.selection import SelectionFunction
from jaxcomp.workflow.config import ConfigError, load_config, parse_config
from jaxcomp.workflow.runner import plan_stages, run_workflow, stage_status
from tests.test_demographics_cli import logistic_artefact

#: Small campaigns (the defaults need a large library): sections the many-field fit does not read.
SMALL = {
    "library": {"n_clusters": 1500},
    "campaign": {
        "r_eff_pc": [3, 6],
        "clusters_per_frame": 80,
        "train_frames_per_reff": 3,
        "test_clusters_per_reff": 80,
        "test_repeats": 3,
    },
}
MODEL = PopulationModel(mass="power_law", age="power_law")
TRUTH = {"alpha_M": -2.0, "alpha_T": -0.8, "av_weights": np.array([0.4, 0.3, 0.2, 0.1])}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two simulated fields (tables) seen through the logistic artefact, and a configuration
    file naming them by relative paths."""
    root = tmp_path_factory.mktemp("workflow_fields")
    artefact = logistic_artefact(root / "phys.safetensors")
    selection = SelectionFunction.load(artefact)
    for f, (name, n) in enumerate((("east", 160), ("west", 120))):
        catalogue = simulate_catalogue(MODEL, TRUTH, selection, n_obs=n, seed=20 + f)
        catalogue.meta.clear()
        write_table(catalogue, root / f"{name}.ecsv")
    text = """
[run]
name = "fields"
seed = 1

[library]
n_clusters = 1500

[campaign]
r_eff_pc = [3, 6]
clusters_per_frame = 80
train_frames_per_reff = 3
test_clusters_per_reff = 80
test_repeats = 3

[fit]
mass = "power_law"
chains = 2
warmup = 100
samples = 100
grid = [41, 26, 7]
pooling = "complete"

[[fields]]
name = "east"
catalogue = "east.ecsv"
selection = "phys.safetensors"

[[fields]]
name = "west"
catalogue = "west.ecsv"
selection = "phys.safetensors"
"""
    (root / "fields.toml").write_text(text)
    return root, tomllib.loads(text)


def _with_fields(data, root, **changes):
    data = json.loads(json.dumps(data))
    for entry in data.get("fields", []):
        for key in ("catalogue", "selection"):
            if entry[key].endswith((".ecsv", ".safetensors")):
                entry[key] = str(root / entry[key])
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        if section.startswith("field"):
            data["fields"][int(section[5:])][key] = value
        else:
            data.setdefault(section, {})[key] = value
    return data


def test_fields_parse_resolve_and_round_trip(inputs):
    root, _ = inputs
    config = load_config(root / "fields.toml")
    assert [f.name for f in config.fields] == ["east", "west"]
    assert config.fields[0].catalogue == str(root / "east.ecsv")  # relative to the file
    assert config.fields[1].selection == str(root / "phys.safetensors")
    assert config.fit.pooling == "complete" and not config.fit.compare_pooling
    assert parse_config(tomllib.loads(config.to_toml())) == config
    assert "[[fields]]" in config.to_toml()
    # without fields the fields-only keys are left out of the resolved configuration and hashes
    plain = parse_config({**SMALL, "fit": {"mass": "power_law"}})
    assert "pooling" not in plain.to_dict()["fit"] and "fields" not in plain.to_dict()
    # a field without selection takes [fit] selection (a network of the run): fit needs train
    data = {**SMALL, "fields": [{"name": "a", "catalogue": "legus:ngc628c"}]}
    network = parse_config(data)
    assert network.fields[0].selection == "physical"
    from jaxcomp.workflow.stages import STAGES, stage_depends

    fit = next(s for s in STAGES if s.name == "fit")
    assert stage_depends(fit, network) == ("train",)
    assert stage_depends(fit, config) == ()


def test_bad_fields_are_refused_naming_the_field(inputs, tmp_path):
    root, data = inputs
    base = _with_fields(data, root)
    cases = [
        (
            _with_fields(data, root, field1__name="east"),
            r"\[\[fields\]\] name 'east' is given more than once",
        ),
        (_with_fields(data, root, field0__colour="red"), r"\[fields #1 'east'\] unknown key"),
        (
            _with_fields(data, root, field1__selection="photometric"),
            r"\[\[fields\]\] 'west': selection = 'photometric' must be a network of this run",
        ),
        (
            _with_fields(data, root, field1__selection="physical+r_eff_pc"),
            r"'west': selection = 'physical\+r_eff_pc' needs that network",
        ),
        (
            _with_fields(data, root, field0__catalogue="legus:ngc1566"),
            r"'east': catalogue = 'legus:ngc1566'",
        ),
        (
            {**SMALL, "fit": {"pooling": "none"}},
            r"\[fit\] pooling is only read with \[\[fields\]\]",
        ),
        (_with_fields(data, root, fit__pooling="some"), r"\[fit\] pooling must be one of"),
        (
            {**SMALL, "fit": {"parametrisation": "centred"}},
            r"\[fit\] parametrisation is only read with \[\[fields\]\]",
        ),
        (
            _with_fields(data, root, fit__parametrisation="centered"),
            r"\[fit\] parametrisation must be 'non_centred' or 'centred', got 'centered'",
        ),
        (_with_fields(data, root, fit__enabled=False), r"\[fit\] enabled = false"),
    ]
    for case, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_config(case)
    # the input files: checked before anything runs, naming the field
    from jaxcomp.workflow.config import check_inputs

    outside = simulate_catalogue(
        MODEL, TRUTH, SelectionFunction.load(root / "phys.safetensors"), n_obs=20
    )
    outside["log_age"] = 9.9  # above the [population] age range (6, 9.5)
    outside.meta.clear()
    write_table(outside, tmp_path / "old.ecsv")
    cases = [
        (
            _with_fields(data, root, field1__catalogue=str(tmp_path / "old.ecsv")),
            r"field 'west': no cluster lies inside log M in \(3.0, 7.0\), log T in \(6.0, 9.5\)",
        ),
        (
            _with_fields(data, root, field0__catalogue=str(tmp_path / "none.ecsv")),
            r"field 'east': catalogue not found",
        ),
        (
            _with_fields(data, root, field0__selection=str(tmp_path / "none.safetensors")),
            r"'east': selection-function artefact not found",
        ),
        (  # a model wider than the artefact's domain (log M 2-8)
            _with_fields(
                data,
                root,
                library__log_mass_range=[1.5, 8.0],
                population__log_mass_range=[1.8, 7.0],
            ),
            r"field 'east': its selection grid covers log_mass \[2, 8\] but the model asks for "
            r"\[1.8, 7\]",
        ),
    ]
    for case, message in cases:
        with pytest.raises(ConfigError, match=message):
            check_inputs(parse_config(case))
    check_inputs(parse_config(base))  # the valid one passes


def test_many_field_fit_stage_runs_alone_and_reports(inputs, tmp_path):
    root, _ = inputs
    config = load_config(root / "fields.toml")
    run_dir = tmp_path / "run"
    assert plan_stages(run_dir, config, only=["fit"]) == ["fit"]  # no network needed
    messages = []
    run_workflow(config, run_dir, only=["fit"], progress=False, log=messages.append)
    assert "[train] not selected (to run), skipped" in messages
    stage = json.loads((run_dir / "fit" / "stage.json").read_text())
    assert stage["status"] == "done" and stage["depends"] == []
    metrics = stage["metrics"]
    assert metrics["fields"] == 2 and metrics["pooling"] == "complete"
    assert set(metrics["clusters"]) == {"east", "west"}
    assert metrics["population_median"]["alpha_M_mean"] == pytest.approx(-2.0, abs=0.3)
    assert {f["path"] for f in stage["figures"]} == {
        "shrinkage_alpha_M.png",
        "shrinkage_alpha_T.png",
    }
    assert {t["path"] for t in stage["tables"]} == {
        "posterior_population.ecsv",
        "posterior_fields.ecsv",
    }
    assert "posterior_fields.ecsv" in stage["output_sha256"]
    assert any(p.name.startswith("artefact_") for p in (run_dir / "grids").iterdir())
    html = (run_dir / "report.html").read_text()
    assert "alpha_M_mean" in html and "east" in html and "west" in html
    assert "shrinkage" in html.lower() and "missing file" not in html
    assert html.count("data:image/png;base64") >= 2
    assert stage_status(run_dir, config)["fit"] == "up to date"
    # editing a field's catalogue makes the fit out of date
    (root / "west.ecsv").write_text((root / "west.ecsv").read_text() + "\n")
    assert stage_status(run_dir, config)["fit"] == "changed"
