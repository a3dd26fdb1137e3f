"""Issue 14: every bad input is a clear error before any work; nothing stale is reused, nothing
half-written.

Each test takes a *class* of bad input (parametrised) and checks the message, the exit status of
the command line (2, one line ``jaxcomp: error: ...``, no traceback) and that nothing was written.
"""

from __future__ import annotations

import errno
import json

import jax
import numpy as np
import pytest
from astropy.table import Table

from jaxcomp import SelectionFunction
from jaxcomp._io import read_table, write_table
from jaxcomp.ast.campaign_config import CampaignError
from jaxcomp.ast.campaign_plan import validate_library
from jaxcomp.cli import main
from jaxcomp.demographics import validate_catalogue
from jaxcomp.errors import InputError, JaxcompError
from jaxcomp.selection.artefact import ArtefactError, read_artefact, write_artefact
from jaxcomp.workflow.config import ConfigError, check_inputs, load_config, parse_config
from jaxcomp.workflow.runner import RunError, _fingerprints, run_workflow
from tests.ast_campaign_helpers import tiny_library
from tests.test_selection_function import make_selection_function, physical_points
from tests.test_workflow import TINY


def run(*argv):
    return main([str(a) for a in argv])


def one_line_error(capsys, *fragments):
    """The command's stderr: one ``jaxcomp: error:`` line containing every fragment, no
    traceback."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxcomp: error: "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("bad_inputs")


@pytest.fixture(scope="module")
def artefact(root):
    return make_selection_function(widths=(4,)).save(root / "phys.safetensors")


@pytest.fixture(scope="module")
def catalogue():
    rng = np.random.default_rng(1)
    n = 60
    return Table(
        {
            "log_mass": rng.uniform(3, 5, n),
            "log_age": rng.uniform(6, 9, n),
            "av": rng.uniform(0, 2, n),
        }
    )


# ------------------------------------------------------------------ a. NaN weights in an artefact
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("tensor", ["hidden.0.kernel", "head.bias"])
def test_artefact_with_non_finite_weights_is_refused_at_load(
    root, artefact, capsys, monkeypatch, bad, tensor
):
    header, tensors = read_artefact(artefact)
    header = {k: v for k, v in header.items() if k not in ("tensors_sha256", "header_sha256")}
    tensors = dict(tensors)
    damaged = tensors[tensor].copy()
    damaged.flat[0] = bad
    tensors[tensor] = damaged
    path = root / f"nan_{tensor}_{bad}.safetensors"
    with pytest.raises(
        ArtefactError, match=rf"tensor '{tensor}' has 1 NaN or infinite .* would be written"
    ):
        write_artefact(path, header, tensors)  # never written by jaxcomp ...
    assert not path.exists()
    with monkeypatch.context() as patch:  # ... but by another tool, with valid checksums
        patch.setattr("jaxcomp.selection.artefact._check_finite", lambda *a: None)
        write_artefact(path, header, tensors)
    with pytest.raises(
        ArtefactError, match=rf"{path.name}: tensor '{tensor}' has 1 NaN or infinite"
    ):
        SelectionFunction.load(path)
    write_table(Table({"log_mass": [3.0], "log_age": [7.0], "av": [1.0]}), root / "points.csv")
    assert run("predict", path, root / "points.csv", "--out", root / "never.csv") == 2
    one_line_error(capsys, str(path), repr(tensor))
    assert not (root / "never.csv").exists()


# ------------------------------------------------------------------ b. the pure call: opt-in
# checks, types
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_checked_selection_function_raises_on_non_finite_inputs(bad):
    sf = make_selection_function(widths=(4,))
    x = physical_points(4)
    x[2, 1] = bad
    checked = sf.with_checks()
    assert checked.checked and not sf.checked
    np.testing.assert_allclose(checked(x[:2]), sf(x[:2]))  # same values where the inputs are fine
    with pytest.raises(Exception, match="NaN or infinite"):
        checked(x)
    with pytest.raises(Exception, match="NaN or infinite"):
        jax.block_until_ready(jax.jit(lambda model, points: model(points))(checked, x))
    with pytest.raises(Exception, match="NaN or infinite"):
        checked.logit(x)
    # the unchecked call stays pure and silent (NaN in, NaN or a clipped number out), under jit too
    assert np.asarray(sf(x)).shape == (4,)
    assert np.asarray(jax.jit(lambda model, points: model(points))(sf, x)).shape == (4,)


def test_checked_error_policy_refuses_points_outside_the_domain():
    checked = make_selection_function(widths=(4,), policy="error").with_checks()
    x = physical_points(3)
    checked(x)
    x[0, 0] = 12.0
    with pytest.raises(Exception, match="outside the valid domain"):
        checked(x)


@pytest.mark.parametrize(
    "x",
    [
        np.array([["3", "7", "1"]]),
        np.array([[3.0, "7", None]], dtype=object),
        [["a", "b", "c"]],
        np.array([[1 + 1j, 2, 3]]),
    ],
)
def test_non_numeric_input_is_a_type_error_naming_the_argument(x):
    sf = make_selection_function(widths=(4,))
    for call in (sf, sf.logit, sf.spread, sf.features):
        with pytest.raises(TypeError, match="SelectionFunction input x must be numbers"):
            call(x)


# ------------------------------------------------------------------ c. duplicated column names
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".fits"])
def test_duplicated_column_names_are_refused(root, artefact, catalogue, capsys, suffix):
    path = root / f"duplicated{suffix}"
    values = [np.asarray(catalogue[c]) for c in ("log_mass", "log_age", "av")] + [
        np.asarray(catalogue["log_mass"]) + 1
    ]
    names = ["log_mass", "log_age", "av", "log_mass"]
    if suffix == ".csv":
        lines = [",".join(names)] + [",".join(f"{v:.4f}" for v in row) for row in zip(*values)]
        path.write_text("\n".join(lines) + "\n")
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(values, names=names), path)
    else:
        from astropy.io import fits

        columns = [fits.Column(name=f"c{i}", format="D", array=v) for i, v in enumerate(values)]
        fits.BinTableHDU.from_columns(columns).writeto(path)
        raw = path.read_bytes()  # astropy will not write a repeated name: edit the header cards
        for i, name in enumerate(names):
            raw = raw.replace(f"'c{i}      '".encode(), f"'{name:<8}'".encode())
        path.write_bytes(raw)
    with pytest.raises(InputError, match="duplicated column name"):
        read_table(path)
    for command in ("correct", "fit"):
        assert run(command, path, "--selection", artefact, "--out", root / f"never_{command}") == 2
        one_line_error(capsys, "duplicated column name(s) log_mass", str(path))
        assert not (root / f"never_{command}").exists()


# ------------------------------------------------------------------ d. one catalogue validation
# everywhere
@pytest.mark.parametrize(
    "column, change, hint",
    [
        (
            "log_age",
            lambda v: v - 6.0,
            "log10 of the age in Myr",
        ),  # log10(Myr) instead of log10(yr)
        ("log_age", lambda v: 10.0**v, "log10 of the age in Myr"),  # a linear age
        ("log_mass", lambda v: v + 7.0, "log10 of the mass in Msun"),  # 9.5-12
        ("log_mass", lambda v: 10.0**v, "log10 of the mass in Msun"),  # a linear mass
        ("av", lambda v: v + 50.0, "A_V in magnitudes"),
    ],
)
def test_catalogue_in_wrong_units_is_refused_with_one_message_everywhere(
    root, artefact, catalogue, capsys, column, change, hint
):
    bad = catalogue.copy()
    bad[column] = change(np.asarray(bad[column]))
    path = root / f"units_{column}.ecsv"
    write_table(bad, path)
    expected = f"column {column} does not look like"
    with pytest.raises(InputError, match=expected) as api:
        validate_catalogue(bad, label=f"catalogue {path}")
    assert hint in str(api.value)
    with pytest.raises(InputError, match=expected):  # --drop-invalid does not hide a units mistake
        validate_catalogue(bad, drop_invalid=True)
    messages = {str(api.value)}
    for command in ("correct", "fit"):
        for extra in ((), ("--drop-invalid",)):
            assert (
                run(
                    command,
                    path,
                    "--selection",
                    artefact,
                    "--out",
                    root / f"never_{command}",
                    *extra,
                )
                == 2
            )
            messages.add(one_line_error(capsys, expected, hint).removeprefix("jaxcomp: error: "))
            assert not (root / f"never_{command}").exists()
    with pytest.raises(
        ConfigError, match=expected
    ) as workflow:  # the workflow's check at configuration load
        check_inputs(parse_config(tiny(catalogue={"source": str(path)})))
    messages.add(str(workflow.value).split(": ", 1)[1])
    assert len(messages) == 1, (
        messages
    )  # the same words from the API, both commands and the workflow
    from jaxcomp.demographics import PopulationModel
    from jaxcomp.demographics.likelihood import prepare_data

    with pytest.raises(
        InputError, match=expected
    ) as fit_api:  # the fit's API, on a table in memory
        prepare_data(bad, PopulationModel(mass="power_law", age="power_law"))
    assert str(fit_api.value).split(": ", 1)[1] == messages.pop().split(": ", 1)[1]


def test_a_few_sentinels_are_rows_not_units(catalogue):
    bad = catalogue.copy()
    bad["log_age"][:3] = -99.0
    with pytest.raises(InputError, match="3 of 60 row"):
        validate_catalogue(bad)
    kept, dropped = validate_catalogue(bad, drop_invalid=True, say=lambda *a: None)
    assert dropped == 3 and len(kept) == 57


# ------------------------------------------------------------------ e. library magnitudes
@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda df: df.assign(mag_F555W=np.nan), "no finite magnitude"),
        (
            lambda df: df.assign(**{c: np.nan for c in df.columns if c.startswith("mag_")}),
            "no finite magnitude",
        ),
        (
            lambda df: df.assign(mag_F336W=10 ** (-0.4 * (df["mag_F336W"] + 48.6))),
            "does not look like apparent Vega",
        ),
        (
            lambda df: df.assign(mag_F814W=10 ** (-0.4 * (df["mag_F814W"] - 25.0))),
            "does not look like apparent Vega",
        ),
        (
            lambda df: df.assign(mag_F435W=df["mag_F435W"] - 30.0),
            "does not look like apparent Vega",
        ),  # absolute mags
    ],
)
def test_library_without_plausible_magnitudes_is_refused(root, capsys, mutate, match):
    library = mutate(tiny_library(200))
    with pytest.raises(CampaignError, match=match):
        validate_library(library)
    path = root / "bad_library.parquet"
    write_table(Table.from_pandas(library), path)
    out = root / "never_campaign"
    assert (
        run(
            "ast",
            "run",
            "--library",
            path,
            "--out",
            out,
            "--reff",
            "1,2",
            "--frames-per-reff",
            "1",
            "--clusters-per-frame",
            "10",
            "--quiet",
        )
        == 2
    )
    one_line_error(capsys, match)
    assert not out.exists()
    validate_library(tiny_library(200))  # a good library passes


# ------------------------------------------------------------------ workflow: inputs, stale
# directories
def tiny(**sections):
    """The test workflow's tiny configuration (tests/test_workflow.py) with ``sections`` changed."""
    data = json.loads(json.dumps(TINY))
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return data


def _config_file(root, name, **sections):
    lines = []
    for section, values in tiny(**sections).items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = root / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "sections, match",
    [
        ({"catalogue": {"source": "no_such_catalogue.parquet"}}, "catalogue not found"),
        ({"catalogue": {"source": "."}}, "is a directory"),
        ({"field": {"kind": "fits", "directory": "no_such_frames"}}, "is not a directory"),
        ({"field": {"kind": "fits", "directory": "."}}, "holds no FITS files"),
    ],
)
def test_workflow_with_missing_inputs_fails_before_any_stage(
    tmp_path, capsys, monkeypatch, sections, match
):
    monkeypatch.chdir(tmp_path)
    path = _config_file(tmp_path, "missing", **sections)
    with pytest.raises(ConfigError, match=match):
        load_config(path)
    with pytest.raises(ConfigError, match=match):
        run_workflow(parse_config(tiny(**sections)), tmp_path / "api-run", progress=False)
    assert run("run", path, "--out", tmp_path / "cli-run", "--quiet") == 2
    one_line_error(capsys, match)
    assert not (tmp_path / "api-run").exists() and not (tmp_path / "cli-run").exists()


def _recorded_run(run_dir, config):
    run_dir.mkdir()
    (run_dir / "run.json").write_text(
        json.dumps({"config_hash": config.hash(), "config": config.to_dict()})
    )


@pytest.mark.parametrize(
    "change",
    [
        {"run": {"seed": 4}},
        {"correct": {"grid": [20, 20, 5]}},
        {"library": {"n_clusters": 1600}, "fit": {"enabled": False}},
    ],
)
def test_run_directory_of_another_configuration_is_refused_unless_forced(
    tmp_path, capsys, monkeypatch, change
):
    run_dir = tmp_path / "run"
    _recorded_run(run_dir, parse_config(tiny()))
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(RunError, match=r"holds a run of a different configuration .*pass --force"):
        run_workflow(parse_config(tiny(**change)), run_dir, progress=False)
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing touched
    path = _config_file(tmp_path, "other", **change)
    assert run("run", path, "--out", run_dir, "--quiet") == 2
    one_line_error(capsys, "different configuration", f"[{min(change)}]", "--force")
    # --force (with or without stages) accepts it; where the work runs is not a different
    # configuration
    calls = []
    monkeypatch.setattr("jaxcomp.workflow.runner.run_workflow", lambda *a, **k: calls.append(k))
    assert (
        run("run", path, "--out", run_dir, "--force", "--quiet") == 0
        and calls[-1]["replace"] is True
    )
    assert (
        run("run", path, "--out", run_dir, "--quiet", "--force", "fit") == 0
        and calls[-1]["replace"] is True
    )
    assert run("run", path, "--out", run_dir, "--quiet") == 0 and calls[-1]["replace"] is False
    assert run("demo", "--quick", "--out", run_dir, "--quiet", "--seed", "5", "--force") == 0
    assert calls[-1]["replace"] is True
    assert (
        run("demo", "--quick", "--out", run_dir, "--quiet") == 0 and calls[-1]["replace"] is False
    )
    monkeypatch.undo()
    from jaxcomp.workflow.runner import _changed_sections

    record = json.loads((run_dir / "run.json").read_text())
    assert _changed_sections(record, parse_config(tiny(run={"workers": 2}))) == []


def test_fingerprints_follow_the_content_of_input_files(tmp_path, catalogue):
    path = tmp_path / "catalogue.ecsv"
    write_table(catalogue, path)
    config = parse_config(tiny(catalogue={"source": str(path)}))
    before = _fingerprints(config)
    changed = catalogue.copy()
    changed["log_mass"][0] += 0.5
    write_table(changed, path)  # same path, same configuration
    after = _fingerprints(config)
    assert after["correct"] != before["correct"] and after["fit"] != before["fit"]
    assert all(
        after[s] == before[s] for s in ("library", "ast_train", "ast_test", "train", "validate")
    )
    # FITS frames: size, modification time and header
    frames = tmp_path / "frames"
    frames.mkdir()
    from astropy.io import fits

    for band in ("F275W", "F336W", "F435W", "F555W", "F814W"):
        fits.PrimaryHDU(
            np.zeros((8, 8), np.float32), header=fits.Header({"EXPTIME": 100.0})
        ).writeto(frames / f"f_{band}.fits")
    config = parse_config(tiny(field={"kind": "fits", "directory": str(frames)}))
    before = _fingerprints(config)
    with fits.open(frames / "f_F555W.fits", mode="update") as hdus:
        hdus[0].header["EXPTIME"] = 200.0
    after = _fingerprints(config)
    assert (
        after["ast_train"] != before["ast_train"] and after["correct"] != before["correct"]
    )  # downstream too
    assert after["library"] == before["library"]


# ------------------------------------------------------------------ tracebacks become messages
def test_command_line_faults_are_one_line(root, artefact, capsys, monkeypatch, tmp_path):
    write_table(Table({"log_mass": [3.0], "log_age": [7.0], "av": [1.0]}), root / "points.csv")
    assert run("predict", tmp_path, root / "points.csv", "--out", tmp_path / "o.csv") == 2
    one_line_error(capsys, "is a directory")
    assert run("predict", artefact, tmp_path, "--out", tmp_path / "o.csv") == 2
    one_line_error(capsys, "is a directory")
    for spec, fragment in (
        ("mock:huge", "size must be"),
        ("mock:small:seed=x", "seed must be an integer"),
        ("mockery", "unknown field kind"),
    ):
        assert (
            run(
                "ast",
                "run",
                "--field",
                spec,
                "--library",
                root / "none.parquet",
                "--out",
                tmp_path / "c",
            )
            == 2
        )
        one_line_error(capsys, "table not found")  # the library is read (and checked) first
        path = root / "ok_library.parquet"
        write_table(Table.from_pandas(tiny_library(200)), path)
        assert run("ast", "run", "--field", spec, "--library", path, "--out", tmp_path / "c") == 2
        one_line_error(capsys, fragment, spec)
    # a run directory under a file (not writable), and file systems that refuse writes
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert run("run", _config_file(tmp_path, "plain"), "--out", blocker / "run", "--quiet") == 2
    one_line_error(capsys, str(blocker))


@pytest.mark.parametrize(
    "code, words",
    [(errno.ENOSPC, "disk is full"), (errno.EACCES, "no permission"), (errno.EROFS, "read-only")],
)
def test_write_faults_are_one_line_and_leave_nothing(tmp_path, capsys, monkeypatch, code, words):
    import os

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / "x"))

    # jaxcomp library: the generation is stubbed, the write fails
    monkeypatch.setattr(
        "jaxcomp.library.library.generate_library", lambda n, config, **k: tiny_library(n)
    )
    monkeypatch.setattr("jaxcomp.library.library.write_library", refuse)
    assert run("library", "--n", "20", "--out", tmp_path / "lib.parquet", "--quiet") == 2
    one_line_error(capsys, words)
    # jaxcomp field mock
    monkeypatch.setattr("jaxcomp.ast.mock.make_mock_field", lambda *a, **k: object())
    monkeypatch.setattr("jaxcomp.ast.field_fits.write_field_fits", refuse)
    assert run("field", "mock", "--out", tmp_path / "field") == 2
    one_line_error(capsys, words)
    # jaxcomp run: the first write into the run directory fails
    monkeypatch.setattr("jaxcomp.workflow.runner.atomic_write_text", refuse)
    assert run("run", _config_file(tmp_path, "plain"), "--out", tmp_path / "run", "--quiet") == 2
    one_line_error(capsys, words)


def test_bugs_keep_their_tracebacks(monkeypatch, artefact, tmp_path):
    def buggy(*args, **kwargs):
        raise KeyError("an internal key")

    monkeypatch.setattr("jaxcomp.selection.artefact.read_header", buggy)
    with pytest.raises(KeyError):
        run("info", artefact)

    def typo(*args, **kwargs):
        return None + 1

    monkeypatch.setattr("jaxcomp.selection.artefact.read_header", typo)
    with pytest.raises(TypeError):
        run("info", artefact)


def test_error_classes_keep_their_builtin_bases():
    from jaxcomp.ast.campaign_config import CampaignError as C
    from jaxcomp.selection import InputDomainError
    from jaxcomp.selection._safe_pickle import UnsafePickleError

    for cls, base in (
        (C, ValueError),
        (ConfigError, ValueError),
        (RunError, RuntimeError),
        (InputDomainError, ValueError),
        (ArtefactError, ValueError),
        (UnsafePickleError, ValueError),
        (InputError, ValueError),
    ):
        assert issubclass(cls, JaxcompError) and issubclass(cls, base)


def test_an_output_modified_after_its_stage_ran_reruns_it_and_downstream(tmp_path):
    from jaxcomp._io import file_sha256
    from jaxcomp.workflow.runner import plan_stages, stage_status

    config = parse_config(tiny())
    fingerprints = _fingerprints(config)
    run_dir = tmp_path / "run"
    for name, fingerprint in fingerprints.items():  # a finished run, as the runner records it
        (run_dir / name).mkdir(parents=True)
        output = run_dir / name / f"{name}.parquet"
        output.write_bytes(name.encode() * 100)
        record = {
            "status": "done",
            "fingerprint": fingerprint,
            "output_sha256": {output.name: file_sha256(output)},
        }
        (run_dir / name / "stage.json").write_text(json.dumps(record))
    assert (
        set(stage_status(run_dir, config).values()) == {"up to date"}
        and plan_stages(run_dir, config) == []
    )
    (run_dir / "train" / "train.parquet").write_bytes(b"edited by hand")
    assert stage_status(run_dir, config)["train"] == "outputs changed"
    assert plan_stages(run_dir, config) == ["train", "validate", "correct", "fit"]
    (run_dir / "train" / "train.parquet").unlink()
    (run_dir / "library" / "library.parquet").unlink()
    assert stage_status(run_dir, config)["library"] == "outputs changed"
    assert plan_stages(run_dir, config)[:2] == ["library", "ast_train"]
