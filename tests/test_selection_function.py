"""SelectionFunction: pure JAX behaviour, ensembles, artefact round trip and bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from jaxcomp import ArtefactError, InputDomainError, SelectionFunction, evaluate_in_chunks
from jaxcomp.selection import artefact
from jaxcomp.selection.inputs import PHOTOMETRIC_INPUTS, PHYSICAL_INPUTS, InputSpec
from jaxcomp.selection.network import NetworkConfig, apply_network, init_network


def make_selection_function(
    n_members=1, specs=PHYSICAL_INPUTS, policy="clip", widths=(32, 32), seed=0
):
    config = NetworkConfig(len(specs), widths)
    members = [init_network(config, seed + m)[1] for m in range(n_members)]
    weights = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
    lows = np.array([s.domain[0] for s in specs])
    highs = np.array([s.domain[1] for s in specs])
    return SelectionFunction.from_weights(
        input_specs=specs,
        mean=(lows + highs) / 2,
        scale=(highs - lows) / 3.5,
        network_config=config,
        weights=weights,
        out_of_domain=policy,
        metadata={"provenance": {"test": True}},
    )


def physical_points(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform([2.0, 5.0, 0.0], [8.0, 10.17, 3.0], size=(n, 3))


@pytest.fixture(scope="module")
def sf():
    return make_selection_function()


@pytest.fixture(scope="module")
def ensemble():
    return make_selection_function(n_members=3)


def test_call_matches_the_network_applied_by_hand(sf):
    x = physical_points(50)
    standardisation = sf.metadata["standardisation"]
    features = (x - np.array(standardisation["mean"])) / np.array(standardisation["scale"])
    member = jax.tree.map(lambda leaf: leaf[0], sf.weights)
    expected = jax.nn.sigmoid(apply_network(sf.graphdef, member, features.astype(np.float32)))
    np.testing.assert_allclose(sf(jnp.asarray(x, jnp.float32)), expected, atol=2e-6)


def test_jit_vmap_and_pytree_argument(sf):
    x = jnp.asarray(physical_points(64), jnp.float32)
    direct = sf(x)
    np.testing.assert_allclose(
        jax.jit(lambda model, points: model(points))(sf, x), direct, atol=1e-6
    )
    np.testing.assert_allclose(jax.vmap(sf)(x), direct, atol=1e-6)
    # the weights are leaves of the pytree, not static data
    leaves = jax.tree.leaves(sf)
    assert sum(leaf.size for leaf in leaves) > 32 * 32
    doubled = jax.tree.map(lambda leaf: leaf, sf)
    assert jax.tree.structure(doubled) == jax.tree.structure(sf)


def test_gradient_matches_finite_differences(sf):
    with jax.enable_x64(True):
        model = jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), sf)
        x = jnp.asarray(physical_points(5, seed=3), jnp.float64)
        grad = jax.vmap(jax.grad(lambda point: model(point)))(x)
        step = 1e-5
        for axis in range(3):
            shift = jnp.zeros(3).at[axis].set(step)
            finite = (model(x + shift) - model(x - shift)) / (2 * step)
            np.testing.assert_allclose(grad[:, axis], finite, rtol=1e-6, atol=1e-9)


def test_logit_and_log_p_obs_are_consistent(ensemble):
    x = jnp.asarray(physical_points(100), jnp.float32)
    p = ensemble(x)
    np.testing.assert_allclose(jax.nn.sigmoid(ensemble.logit(x)), p, atol=1e-6)
    np.testing.assert_allclose(jnp.exp(ensemble.log_p_obs(x)), p, rtol=1e-5)


def test_ensemble_mean_and_spread(ensemble):
    x = jnp.asarray(physical_points(100), jnp.float32)
    members = [
        SelectionFunction.from_weights(
            input_specs=ensemble.input_specs,
            mean=np.array(ensemble.metadata["standardisation"]["mean"]),
            scale=np.array(ensemble.metadata["standardisation"]["scale"]),
            network_config=ensemble.network_config,
            weights=jax.tree.map(lambda leaf, m=m: leaf[m : m + 1], ensemble.weights),
        )(x)
        for m in range(3)
    ]
    members = np.stack(members)
    assert ensemble.n_members == 3
    np.testing.assert_allclose(ensemble(x), members.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(ensemble.spread(x), members.std(axis=0), atol=1e-6)
    assert float(jnp.max(ensemble.spread(x))) > 0


def test_chunked_evaluation_equals_direct(sf):
    x = physical_points(10_007, seed=1).astype(np.float32)
    chunked = evaluate_in_chunks(
        SelectionFunction.__call__, sf, x, chunk_size=512, points_per_call=2048
    )
    np.testing.assert_allclose(chunked, np.asarray(sf(jnp.asarray(x))), atol=1e-6)
    with pytest.raises(ValueError, match="no points"):
        evaluate_in_chunks(SelectionFunction.__call__, sf, np.zeros((0, 3)))


def test_predict_accepts_tables_frames_and_mappings(sf):
    x = physical_points(200, seed=2)
    mapping = {"log_mass": x[:, 0], "log_age": x[:, 1], "av": x[:, 2], "extra": np.ones(200)}
    from_mapping = sf.predict(mapping)
    np.testing.assert_allclose(sf.predict(Table(mapping)), from_mapping)
    np.testing.assert_allclose(sf.predict(pd.DataFrame(mapping)), from_mapping)
    np.testing.assert_allclose(from_mapping, np.asarray(sf(jnp.asarray(x, jnp.float32))), atol=2e-6)
    probability, spread = sf.predict(mapping, return_spread=True)
    assert spread.shape == probability.shape and np.all(spread == 0)


def test_predict_checks_units(sf):
    x = physical_points(10)
    table = Table({"log_mass": x[:, 0], "log_age": x[:, 1], "av": x[:, 2]})
    table["log_mass"].unit = "dex(Msun)"
    table["av"].unit = "mag"
    assert np.all(np.isfinite(sf.predict(table)))
    # a linear mass in Msun is converted to dex(Msun) by astropy
    linear = table.copy()
    linear["log_mass"] = 10 ** x[:, 0]
    linear["log_mass"].unit = "Msun"
    np.testing.assert_allclose(sf.predict(linear), sf.predict(table), atol=1e-6)
    table["log_mass"].unit = "pc"
    with pytest.raises(ValueError, match="log_mass.*unit"):
        sf.predict(table)


def test_save_then_load_is_bit_identical(tmp_path, ensemble):
    path = ensemble.save(tmp_path / "sf.safetensors")
    loaded = SelectionFunction.load(path)
    for original, restored in zip(jax.tree.leaves(ensemble), jax.tree.leaves(loaded)):
        assert original.dtype == restored.dtype
        np.testing.assert_array_equal(np.asarray(original), np.asarray(restored))
    x = jnp.asarray(physical_points(1000), jnp.float32)
    np.testing.assert_array_equal(np.asarray(ensemble(x)), np.asarray(loaded(x)))
    assert loaded.input_names == ensemble.input_names and loaded.n_members == 3
    # saving the loaded object again gives the same tensors and header body
    again = loaded.save(tmp_path / "again.safetensors")
    first, second = artefact.read_artefact(path), artefact.read_artefact(again)
    assert first[0]["tensors_sha256"] == second[0]["tensors_sha256"]
    assert first[0]["inputs"] == second[0]["inputs"]


def test_header_documents_the_artefact(tmp_path, sf):
    header = artefact.read_header(sf.save(tmp_path / "sf.safetensors"))
    for key in (
        "schema_version",
        "jaxcomp_version",
        "inputs",
        "out_of_domain",
        "network",
        "citation",
        "tensors_sha256",
        "header_sha256",
        "provenance",
    ):
        assert key in header, key
    first = header["inputs"][0]
    assert first["name"] == "log_mass" and first["unit"] == "dex(Msun)"
    assert set(first) >= {"domain", "transform", "standardisation"}
    assert header["network"]["hidden_widths"] == [32, 32]


def test_wrong_number_of_inputs(sf):
    with pytest.raises(ValueError, match="last axis must have 3"):
        sf(jnp.zeros((4, 5)))
    with pytest.raises(KeyError, match="missing input column"):
        sf.predict({"log_mass": [3.0], "log_age": [7.0]})


def test_nan_and_inf_are_refused(sf):
    with pytest.raises(ValueError, match="NaN or infinite.*log_age"):
        sf.predict({"log_mass": [3.0, 4.0], "log_age": [np.nan, 7.0], "av": [0.1, 0.2]})
    with pytest.raises(ValueError, match="NaN or infinite"):
        sf.predict({"log_mass": [np.inf], "log_age": [7.0], "av": [0.1]})


def test_out_of_domain_policies(sf):
    inside = {"log_mass": [3.0], "log_age": [7.0], "av": [1.0]}
    outside = {"log_mass": [9.5], "log_age": [7.0], "av": [1.0]}
    edge = {"log_mass": [8.0], "log_age": [7.0], "av": [1.0]}
    with pytest.raises(InputDomainError, match="log_mass"):
        sf.predict(outside, out_of_domain="error")
    with pytest.warns(UserWarning, match="clipped"):
        clipped = sf.predict(outside)  # the artefact's policy is "clip"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice is silent
        np.testing.assert_allclose(sf.predict(outside, out_of_domain="clip"), clipped)
    np.testing.assert_allclose(clipped, sf.predict(edge))
    assert np.isnan(sf.predict(outside, out_of_domain="nan")[0])
    assert np.isfinite(sf.predict(inside, out_of_domain="error")[0])
    strict = sf.with_out_of_domain("nan")
    assert np.isnan(float(strict(jnp.array([9.5, 7.0, 1.0]))))
    np.testing.assert_allclose(float(sf(jnp.array([9.5, 7.0, 1.0]))), clipped[0], atol=1e-6)
    with pytest.raises(ValueError, match="out_of_domain"):
        sf.with_out_of_domain("ignore")


def test_tampered_weights_are_refused(tmp_path, sf):
    path = sf.save(tmp_path / "sf.safetensors")
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtefactError, match="checksum"):
        SelectionFunction.load(path)


def test_tampered_header_is_refused(tmp_path, sf):
    path = sf.save(tmp_path / "sf.safetensors")
    raw = path.read_bytes()
    tampered = raw.replace(b'\\"out_of_domain\\": \\"clip\\"', b'\\"out_of_domain\\": \\"nan \\"')
    assert tampered != raw
    path.write_bytes(tampered)
    with pytest.raises(ArtefactError, match="header checksum"):
        SelectionFunction.load(path)


def test_truncated_and_foreign_files_are_refused(tmp_path, sf):
    path = sf.save(tmp_path / "sf.safetensors")
    raw = path.read_bytes()
    for cut in (4, 100, len(raw) - 7):
        path.write_bytes(raw[:cut])
        with pytest.raises(ArtefactError):
            SelectionFunction.load(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ArtefactError):
        SelectionFunction.load(junk)
    with pytest.raises(FileNotFoundError):
        SelectionFunction.load(tmp_path / "missing.safetensors")


def test_newer_schema_is_refused(tmp_path, sf, monkeypatch):
    monkeypatch.setattr(artefact, "SCHEMA_VERSION", artefact.SCHEMA_VERSION + 1)
    path = sf.save(tmp_path / "future.safetensors")
    monkeypatch.undo()
    with pytest.raises(ArtefactError, match="newer"):
        SelectionFunction.load(path)


def test_failed_write_leaves_nothing(tmp_path, sf, monkeypatch):
    target = tmp_path / "sf.safetensors"

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(artefact, "save_safetensors_bytes", lambda *a, **k: b"x" * 10)
    monkeypatch.setattr("jaxcomp._io.os.replace", explode)
    with pytest.raises(OSError, match="disk full"):
        sf.save(target)
    assert list(tmp_path.iterdir()) == []


def test_extra_named_inputs_and_photometric_set():
    specs = PHYSICAL_INPUTS + (InputSpec("r_eff_pc", "pc", (1.0, 10.0)),)
    model = make_selection_function(specs=specs)
    assert model.input_names[-1] == "r_eff_pc"
    x = physical_points(5)
    data = {"log_mass": x[:, 0], "log_age": x[:, 1], "av": x[:, 2], "r_eff_pc": np.full(5, 3.0)}
    assert model.predict(data).shape == (5,)
    photometric = make_selection_function(specs=PHOTOMETRIC_INPUTS)
    assert photometric.input_names == (
        "mag_F275W",
        "mag_F336W",
        "mag_F435W",
        "mag_F555W",
        "mag_F814W",
    )


def test_import_changes_no_global_jax_setting():
    code = (
        "import jax, json\n"
        "names = ['jax_enable_x64', 'jax_default_matmul_precision', 'jax_platforms', "
        "'jax_debug_nans',"
        " 'jax_disable_jit', 'jax_default_device']\n"
        "before = {n: str(getattr(jax.config, n)) for n in names}\n"
        "import jaxcomp, jaxcomp.selection.training, jaxcomp.cli\n"
        "after = {n: str(getattr(jax.config, n)) for n in names}\n"
        "print(json.dumps([before, after]))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    before, after = json.loads(output.stdout.strip().splitlines()[-1])
    assert before == after


def test_standardisation_errors():
    config = NetworkConfig(3, (4,))
    weights = jax.tree.map(lambda leaf: leaf[None], init_network(config, 0)[1])
    with pytest.raises(ValueError, match="scale finite and positive"):
        SelectionFunction.from_weights(
            input_specs=PHYSICAL_INPUTS,
            mean=np.zeros(3),
            scale=np.zeros(3),
            network_config=config,
            weights=weights,
        )
    with pytest.raises(ValueError, match="network takes 3 inputs"):
        SelectionFunction.from_weights(
            input_specs=PHOTOMETRIC_INPUTS,
            mean=np.zeros(5),
            scale=np.ones(5),
            network_config=config,
            weights=weights,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="domain"):
            InputSpec("log_mass", "dex(Msun)", (3.0, 3.0))


def test_public_api_is_reexported():
    import jaxcomp

    for name in jaxcomp.__all__:
        assert getattr(jaxcomp, name) is not None, name
    assert jaxcomp.SelectionFunction is SelectionFunction
    with pytest.raises(AttributeError, match="no attribute"):
        jaxcomp.not_a_thing  # noqa: B018


def test_gelu_is_the_exact_erf_form():
    from jaxcomp.selection.network import _exact_gelu

    x = jnp.linspace(-12, 12, 2001)
    np.testing.assert_allclose(_exact_gelu(x), jax.nn.gelu(x, approximate=False), atol=2e-6)
    # and not the tanh approximation, which differs by up to ~5e-4
    assert float(jnp.max(jnp.abs(_exact_gelu(x) - jax.nn.gelu(x, approximate=True)))) > 1e-4
