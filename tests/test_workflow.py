"""The TOML workflow: configuration checks, the stage runner, skipping, re-running, the CLI."""

from __future__ import annotations

import json
import tomllib

import pytest

from jaxcomp.workflow.config import ConfigError, load_config, parse_config
from jaxcomp.workflow.runner import RunError, plan_stages, run_workflow, stage_status

TINY = {
    "run": {"name": "tiny", "seed": 3, "workers": 1},
    "field": {"kind": "mock", "size": "360x360"},
    "library": {"n_clusters": 1500},
    "campaign": {
        "r_eff_pc": [3, 6],
        "clusters_per_frame": 80,
        "train_frames_per_reff": 3,
        "test_clusters_per_reff": 80,
        "test_repeats": 3,
    },
    "networks": {
        "inputs": ["physical", "photometric", "physical+r_eff_pc"],
        "hidden": [8],
        "epochs": 3,
        "batch_size": 256,
        "learning_rates": [1e-2],
        "weight_decays": [1e-3],
    },
    "validation": {"min_count": 2},
    "population": {"n_clusters": 320, "clusters_per_frame": 80},
    "correct": {"grid": [21, 19, 5]},
    "fit": {
        "chains": 1,
        "warmup": 40,
        "samples": 40,
        "grid": [21, 19, 5],
        "selection": "physical+r_eff_pc",
    },
}


def _with(**changes):
    config = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config.setdefault(section, {})[key] = value
    return config


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    "data, message",
    [
        ({"nonsense": {}}, r"unknown section\(s\) \[nonsense\]"),
        (_with(networks__epoch=3), r"\[networks\] unknown key\(s\) \['epoch'\]"),
        (_with(networks__epochs="many"), r"\[networks\] epochs must be an integer"),
        (_with(library__n_clusters=2.5), r"\[library\] n_clusters must be an integer"),
        (_with(campaign__r_eff_pc="3"), r"\[campaign\] r_eff_pc must be a list"),
        (_with(fit__grid=[21, 19]), r"\[fit\] grid must have 3 entries"),
        (_with(field__kind="jpeg"), r"\[field\] kind must be 'mock' or 'fits'"),
        (
            _with(library__bands=["F555W", "F814W"]),
            r"\[networks\] inputs: a photometric network needs all five bands",
        ),
        (
            _with(networks__inputs=["photometric"]),
            r"\[correct\] selection = 'physical' needs that network",
        ),
        (
            _with(networks__inputs=["physical", "photometric"]),
            r"\[fit\] selection = 'physical\+r_eff_pc' needs that network",
        ),
        (
            _with(networks__inputs=["physical", "physical+radius"]),
            r"\[networks\] inputs must be a list of distinct",
        ),
        (
            _with(library__n_clusters=200),
            r"\[library\] n_clusters = 200 is too small .* use n_clusters >= \d+",
        ),
        (
            _with(population__log_mass_range=[1.0, 7.0]),
            r"\[population\] log_mass_range .* outside \[library\]",
        ),
        (
            _with(population__alpha_M=-3.5),
            r"\[population\] alpha_M must lie inside the fit's prior",
        ),
        (_with(campaign__test_repeats=1), r"\[campaign\] test_repeats must be >= 2"),
        (
            _with(campaign__test_clusters_per_reff=20),
            r"\[campaign\] test_clusters_per_reff must be a multiple of clusters_per_frame",
        ),
        (_with(campaign__reprocess="windows"), r"\[campaign\] reprocess must be .full."),
        (
            _with(campaign__centring="centroid"),
            r"\[campaign\] centring must be 'iraf_centroid' or 'none', got 'centroid'",
        ),
        (
            _with(campaign__edge_margin_px=-2),
            r"\[campaign\] edge_margin_px must be a finite number of pixels >= 0",
        ),
        (_with(run__seed=True), r"\[run\] seed must be an integer"),
    ],
)
def test_bad_configurations_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_toml_round_trip_and_files(tmp_path):
    config = parse_config(TINY)
    assert parse_config(tomllib.loads(config.to_toml())) == config
    path = tmp_path / "bad.toml"
    path.write_text("[run\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_campaign_centring_reaches_the_pipeline():
    from types import SimpleNamespace

    from jaxcomp.ast import DEFAULT_CONFIG
    from jaxcomp.workflow.campaign_stages import _campaign_config

    default = parse_config(TINY)
    # IRAF centring is the default and is written into the resolved configuration
    assert default.to_dict()["campaign"]["centring"] == "iraf_centroid"
    off = parse_config(_with(campaign__centring="none"))
    # "none" is left out of it (the fingerprints of runs made before the option existed)
    assert "centring" not in off.to_dict()["campaign"]
    assert off.hash() != default.hash()
    assert parse_config(tomllib.loads(default.to_toml())) == default
    for config, centring in ((off, "none"), (default, "iraf_centroid")):
        for design in ("train", "test"):
            campaign = _campaign_config(SimpleNamespace(config=config, seed=1), design)
            assert campaign.pipeline.photometry.centring == centring
    assert _campaign_config(SimpleNamespace(config=default, seed=1), "train").pipeline == (
        DEFAULT_CONFIG
    )


def test_embedded_demo_configurations_are_valid():
    from jaxcomp.cli.workflow import demo_config_path

    full, quick = load_config(demo_config_path()), load_config(demo_config_path(quick=True))
    assert full.campaign.r_eff_pc == tuple(float(r) for r in range(1, 11))  # the paper's radii
    assert {"physical", "photometric"} <= set(
        full.networks.inputs
    ) and full.population.mass == "schechter"
    # the paper's density of injected clusters: 500 per 7040 x 6400 px frame
    from jaxcomp.workflow.field_stage import load_field

    shape = load_field(full).shape if full.field.size == "small" else None
    density = full.campaign.clusters_per_frame / (shape[0] * shape[1])
    assert 0.8 < density / (500 / (7040 * 6400)) < 1.25
    assert full.campaign.reprocess == "local"
    assert (
        full.campaign.edge_margin_px == quick.campaign.edge_margin_px == 5.0
    )  # crops: aperture inside the image
    assert quick.run.name == "demo-quick"


# ------------------------------------------------------------------ running
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "tiny"
    messages = []
    record = run_workflow(parse_config(TINY), run_dir, progress=False, log=messages.append)
    return run_dir, record, messages


def test_every_stage_runs_and_records_itself(tiny_run):
    run_dir, record, messages = tiny_run
    expected = [
        "library",
        "ast_train",
        "ast_test",
        "train",
        "validate",
        "population",
        "correct",
        "fit",
    ]
    assert record["stages"] == expected
    for name in expected:
        stage = json.loads((run_dir / name / "stage.json").read_text())
        assert stage["status"] == "done" and stage["seconds"] > 0 and isinstance(stage["seed"], int)
        for figure in stage["figures"]:
            assert (run_dir / name / figure["path"]).stat().st_size > 1000
    run = json.loads((run_dir / "run.json").read_text())
    assert run["versions"]["jaxcomp"] and run["config_hash"] == parse_config(TINY).hash()
    assert load_config(run_dir / "config.toml") == parse_config(TINY)
    validation = json.loads((run_dir / "validate" / "stage.json").read_text())["metrics"]
    assert set(validation["percentiles"]) == {"physical", "photometric", "physical+r_eff_pc"}
    assert validation["paper"]["physical+r_eff_pc"] == validation["paper"]["physical"]
    assert (run_dir / "train" / "selection_physical_r_eff_pc.safetensors").is_file()
    # the outputs are recorded by content, so a file edited later makes its stage re-run
    from jaxcomp._io import file_sha256

    library = json.loads((run_dir / "library" / "stage.json").read_text())
    assert library["output_sha256"] == {
        "library.parquet": file_sha256(run_dir / "library" / "library.parquet")
    }
    networks = json.loads((run_dir / "train" / "stage.json").read_text())["output_sha256"]
    assert "selection_physical.safetensors" in networks
    assert any(p.name.startswith("physical_r_eff_pc_") for p in (run_dir / "grids").iterdir())
    fit = json.loads((run_dir / "fit" / "stage.json").read_text())["metrics"]
    assert set(fit["recovery"]) == {"alpha_M", "log_M_break", "alpha_T"}
    html = (run_dir / "report.html").read_text()
    assert "0.356" in html and "Hierarchical fit" in html and "missing file" not in html
    # the campaigns did not reuse clusters between training and test
    from jaxcomp._io import read_table

    train = set(read_table(run_dir / "ast_train" / "labels.parquet")["cluster_id"])
    test = set(read_table(run_dir / "ast_test" / "labels.parquet")["cluster_id"])
    assert not train & test


def test_rerun_skips_and_changes_rerun_downstream_only(tiny_run):
    run_dir, _, _ = tiny_run
    config = parse_config(TINY)
    assert set(stage_status(run_dir, config).values()) == {"up to date"}
    messages = []
    run_workflow(config, run_dir, progress=False, report=False, log=messages.append)
    assert all("up to date" in m for m in messages)
    before = json.loads((run_dir / "train" / "stage.json").read_text())["started"]

    longer_fit = parse_config(_with(fit__samples=50))
    assert plan_stages(run_dir, longer_fit) == ["fit"]
    new_networks = parse_config(_with(networks__epochs=4))
    assert plan_stages(run_dir, new_networks) == ["train", "validate", "correct", "fit"]
    assert plan_stages(run_dir, config, force=["validate"]) == ["validate"]
    assert plan_stages(run_dir, config, only=["correct"]) == []

    finer_correction = parse_config(_with(correct__grid=[21, 19, 6]))
    assert plan_stages(run_dir, finer_correction) == ["correct"]
    with pytest.raises(
        RunError, match=r"different configuration \(section\(s\) \[correct\] differ.*--force"
    ):
        run_workflow(finer_correction, run_dir, progress=False, report=False, log=messages.append)
    messages = []
    run_workflow(
        finer_correction, run_dir, replace=True, progress=False, report=False, log=messages.append
    )
    assert any("section(s) [correct]" in m for m in messages)
    assert any(m.startswith("[correct] running") for m in messages)
    assert sum("up to date" in m for m in messages) == 7
    stage = json.loads((run_dir / "correct" / "stage.json").read_text())
    assert stage["config"]["correct"]["grid"] == [21, 19, 6]
    assert (
        json.loads((run_dir / "train" / "stage.json").read_text())["started"] == before
    )  # not re-run


def test_where_the_work_runs_does_not_change_fingerprints(tiny_run):
    run_dir = tiny_run[0]
    # (the last run of this directory used the finer correction grid)
    elsewhere = parse_config(
        _with(correct__grid=[21, 19, 6], run__workers=2, run__scheduler="tcp://127.0.0.1:8786")
    )
    assert plan_stages(run_dir, elsewhere) == []  # up to date: labels do not depend on the executor
    with pytest.raises(ConfigError, match=r"\[run\] scheduler must be a scheduler address"):
        parse_config(_with(run__scheduler="localhost"))


def test_foreign_directories_and_failed_stages(tmp_path, tiny_run, monkeypatch):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not made by 'jaxcomp run'"):
        run_workflow(parse_config(TINY), foreign, progress=False)
    with pytest.raises(RunError, match="unknown stage"):
        plan_stages(tiny_run[0], parse_config(TINY), only=["bogus"])
    # a missing input is refused before any stage runs
    run_dir = tiny_run[0]
    before = (run_dir / "correct" / "stage.json").read_text()
    missing = parse_config(_with(catalogue__source=str(tmp_path / "no_such_catalogue.parquet")))
    with pytest.raises(ConfigError, match="catalogue not found"):
        run_workflow(
            missing, run_dir, replace=True, progress=False, report=False, log=lambda *a: None
        )
    assert (run_dir / "correct" / "stage.json").read_text() == before
    # a stage that fails is recorded as failed, and reported as such
    import dataclasses

    from jaxcomp.workflow import runner

    def fail(ctx):
        raise RuntimeError("the correction broke")

    broken = parse_config(_with(correct__grid=[21, 19, 7]))
    stages = tuple(
        dataclasses.replace(s, run=fail) if s.name == "correct" else s for s in runner.STAGES
    )
    monkeypatch.setattr(runner, "STAGES", stages)
    with pytest.raises(
        RunError, match="stage 'correct' failed: RuntimeError: the correction broke"
    ):
        run_workflow(
            broken, run_dir, replace=True, progress=False, report=False, log=lambda *a: None
        )
    assert json.loads((run_dir / "correct" / "stage.json").read_text())["status"] == "failed"
    assert stage_status(run_dir, broken)["correct"] == "failed"


def test_command_line(tmp_path, capsys):
    from jaxcomp.cli import main

    path = tmp_path / "bad.toml"
    path.write_text("[networks]\nepochs = 'x'\n")
    assert main(["run", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "[networks] epochs must be an integer" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing started


# ------------------------------------------------------------------ a FITS field
def test_fits_field_directory_must_exist_before_anything_runs(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('[field]\nkind = "fits"\ndirectory = "no-such-images"\n')
    run_dir = tmp_path / "out"
    with pytest.raises(
        ConfigError, match=r"\[field\] directory 'no-such-images' does not exist.*no-such-images"
    ):
        run_workflow(config, run_dir, progress=False, log=lambda *a: None)
    assert not run_dir.exists()
    with pytest.raises(ConfigError, match=r"\[field\] directory"):
        parse_config(_with(field__kind="fits", field__directory=str(tmp_path / "nope")))


def test_fits_field_keys_are_checked_and_kept_out_of_mock_fingerprints(tmp_path):
    from jaxcomp.ast.epsf import EPSFStarSelection
    from jaxcomp.workflow.config import FieldSection

    mock = parse_config(TINY)
    assert set(mock.to_dict()["field"]) == {
        "kind",
        "size",
        "directory",
    }  # a mock run's fingerprints are unchanged
    fits_config = parse_config(
        _with(
            field__kind="fits",
            field__directory=str(tmp_path),
            field__psf="stars",
            field__psf_min_stars=4,
            field__psf_neighbour_mask_sigma=float("inf"),
            field__zeropoints=[22.0, 23.0, 25.0, 25.0, 25.0],
        )
    )
    assert parse_config(tomllib.loads(fits_config.to_toml())) == fits_config
    assert fits_config.to_dict()["field"]["psf_min_stars"] == 4
    assert fits_config.field.epsf_selection()["neighbour_mask_sigma"] == float("inf")
    # the [field] defaults are EPSFStarSelection's
    defaults = FieldSection(kind="fits", directory=str(tmp_path)).epsf_selection()
    assert EPSFStarSelection(**defaults) == EPSFStarSelection()
    for changes, message in [
        (
            {"field__psf": "moffat"},
            r"\[field\] psf must be one of 'auto', 'stars', 'gaussian', got 'moffat'",
        ),
        ({"field__psf": "gaussian"}, r"\[field\] psf_fwhm_px must be five FWHMs"),
        ({"field__psf_cutout_px": 24}, r"\[field\] psf_cutout_px must be an odd number"),
        ({"field__psf_ci_range": [1.4, 0.0]}, r"\[field\] psf_ci_range must be \[low, high\]"),
        ({"field__psf_extended_sigma": -1.0}, r"\[field\] psf_extended_sigma must be >= 0"),
        ({"field__zeropoints": [25.0]}, r"\[field\] zeropoints must be empty .* or five finite"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config(_with(field__kind="fits", field__directory=str(tmp_path), **changes))


def _star_grid_field(shape=(320, 320), spacing=40, seed=0):
    """A flat field with a grid of bright isolated point sources (Gaussian FWHM 2.2 px), and a few
    clusters."""
    import numpy as np

    from jaxcomp.ast import Field
    from jaxcomp.ast.field import BANDS
    from jaxcomp.ast.profiles import add_stamps, render_stamps

    rng = np.random.default_rng(seed)
    g = np.arange(spacing, shape[0] - spacing + 1, spacing, dtype=float)
    xs, ys = (v.ravel() + rng.uniform(-0.5, 0.5, v.size) for v in np.meshgrid(g, g))
    images = {}
    for b in BANDS:
        img = rng.normal(0.0, 0.003, shape)
        add_stamps(img, render_stamps(xs, ys, rng.uniform(5.0, 20.0, xs.size), 0.0, 2.2))
        add_stamps(
            img,
            render_stamps(xs[:5] + spacing / 2, ys[:5] + spacing / 2, np.full(5, 10.0), 3.0, 2.2),
        )
        images[b] = img.astype(np.float32)
    return Field(images, name="grid")


def test_fits_field_whose_stars_cannot_give_a_psf_leaves_no_run_directory(tmp_path):
    """Frames with three stars each and no PSF: the field stage's ePSF error, and no run dir."""
    import numpy as np
    from astropy.io import fits

    from jaxcomp.ast import Field, write_field_fits
    from jaxcomp.ast.field import BANDS
    from jaxcomp.ast.profiles import add_stamps, render_stamps

    rng = np.random.default_rng(5)
    images = {}
    for b in BANDS:
        img = rng.normal(0.0, 0.01, (160, 160))
        add_stamps(
            img, render_stamps(rng.uniform(30, 130, 3), rng.uniform(30, 130, 3), 50.0, 0.0, 2.0)
        )
        images[b] = img.astype(np.float32)
    directory = tmp_path / "images"
    directory.mkdir()
    for path in write_field_fits(Field(images), directory).values():
        with fits.open(path) as hdul:
            hdul = fits.HDUList([h.copy() for h in hdul])
        del hdul[0].header["PSFFWHM"]
        hdul.writeto(path, overwrite=True)
    config = parse_config(_with(field__kind="fits", field__directory=str(directory)))
    run_dir = tmp_path / "run"
    with pytest.raises(
        RunError, match=r"stage 'field' failed: EPSFError: F275W.*usable star"
    ) as info:
        run_workflow(config, run_dir, progress=False, report=False, log=lambda *a: None)
    assert "psf_fwhm_px" in str(info.value) and "was not created" in str(info.value)
    assert not run_dir.exists()


def test_fits_field_stage_writes_the_psfs_it_builds(tmp_path):
    import numpy as np
    from astropy.io import fits
    from astropy.table import Table

    from jaxcomp.ast import write_field_fits
    from jaxcomp.ast.field import BANDS
    from jaxcomp.workflow.field_stage import load_field

    images = tmp_path / "images"
    images.mkdir()
    paths = write_field_fits(_star_grid_field(), images)
    for path in paths.values():  # no PSF in the files: the field stage builds them
        with fits.open(path) as hdul:
            hdul = fits.HDUList([h.copy() for h in hdul])
        del hdul[0].header["PSFFWHM"]
        hdul.writeto(path, overwrite=True)
    config = parse_config(
        _with(field__kind="fits", field__directory=str(images), field__psf_iterations=4)
    )
    run_dir = tmp_path / "run"
    run_workflow(config, run_dir, only=["field"], progress=False, report=False, log=lambda *a: None)
    stage = json.loads((run_dir / "field" / "stage.json").read_text())
    assert stage["status"] == "done" and (run_dir / "field" / "psf.png").stat().st_size > 1000
    for b in BANDS:
        assert (run_dir / "field" / f"psf_{b}.fits").is_file()
        stars = Table.read(run_dir / "field" / f"psf_stars_{b}.ecsv")
        assert stars["used"].sum() == stage["metrics"]["psf"][b]["stars_used"] >= 30
        # the recovered PSF is the 2.2 px Gaussian the stars were rendered with
        assert stage["metrics"]["psf"][b]["source"] == "stars"
    from jaxcomp.ast.epsf import psf_encircled_energy

    truth = psf_encircled_energy(2.2, (1.0, 2.0, 3.0, 4.0))
    np.testing.assert_allclose(
        stage["metrics"]["psf"]["F555W"]["encircled_energy_1_2_3_4px"], truth, atol=0.01
    )
    # later stages inject with the PSFs the field stage wrote
    field = load_field(config, run_dir)
    with fits.open(run_dir / "field" / "psf_F814W.fits") as hdul:
        np.testing.assert_allclose(field.psf["F814W"].image, hdul[0].data / hdul[0].data.sum() * 9)
    assert stage_status(run_dir, config)["field"] == "up to date"
    plan = plan_stages(run_dir, config, only=["ast_train"])
    assert "field" not in plan and plan[-1] == "ast_train"
    from jaxcomp.workflow.stages import STAGES, stage_depends

    assert "field" in stage_depends(next(s for s in STAGES if s.name == "ast_train"), config)
