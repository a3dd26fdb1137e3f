"""Import of the published C-4 NGC 628C networks, checked against C-4's own torch outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomp import SelectionFunction
from jaxcomp.cli import main
from jaxcomp.selection import LEGUS_BANDS
from jaxcomp.selection._safe_pickle import UnsafePickleError
from jaxcomp.selection.c4 import import_c4

from .conftest import REPO_ROOT

REFERENCE = np.load(REPO_ROOT / "tests" / "data" / "c4_reference.npz")


@pytest.fixture(scope="module")
def phys(c4_checkpoint_dir):
    return import_c4(c4_checkpoint_dir, "phys")


@pytest.fixture(scope="module")
def phot(c4_checkpoint_dir):
    return import_c4(c4_checkpoint_dir, "phot")


def physical_table():
    return {
        "log_mass": REFERENCE["phys_log_mass"],
        "log_age": REFERENCE["phys_log_age"],
        "av": REFERENCE["phys_av"],
    }


def photometric_table():
    return {f"mag_{band}": REFERENCE["phot_mags"][:, i] for i, band in enumerate(LEGUS_BANDS)}


def test_physical_network_reproduces_c4_to_1e_4(phys):
    assert phys.input_names == ("log_mass", "log_age", "av")
    probability = phys.predict(physical_table())
    assert np.max(np.abs(probability - REFERENCE["phys_prob"])) < 1e-4
    # the pure float32 call, with log inputs rounded to float32, stays within 1e-4 too
    x = np.stack(list(physical_table().values()), axis=-1)
    pure = np.asarray(phys(jnp.asarray(x, jnp.float32)))
    assert np.max(np.abs(pure - REFERENCE["phys_prob"])) < 1e-4
    # the reference spans the whole range of outcomes
    assert REFERENCE["phys_prob"].min() < 0.01 and REFERENCE["phys_prob"].max() > 0.99


def test_photometric_network_reproduces_c4_to_1e_5(phot):
    probability = phot.predict(photometric_table())
    assert np.max(np.abs(probability - REFERENCE["phot_prob"])) < 1e-5
    logits = np.asarray(phot.logit(jnp.asarray(REFERENCE["phot_mags"], jnp.float32)))
    np.testing.assert_allclose(logits, REFERENCE["phot_logit"], atol=1e-3, rtol=1e-5)


def test_imported_network_is_a_normal_differentiable_selection_function(phys, tmp_path):
    x = jnp.array([[4.0, 7.0, 0.5], [5.0, 8.5, 1.0]])
    gradient = jax.vmap(jax.grad(lambda point: phys(point)))(x)
    assert np.all(np.isfinite(gradient))
    assert np.all(gradient[:, 0] >= 0)  # more massive clusters are easier to find
    loaded = SelectionFunction.load(phys.save(tmp_path / "c4_phys.safetensors"))
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(phys(x)))
    header = loaded.header
    assert header["inputs"][0]["transform"] == "pow10"
    assert "Tang" in header["citation"]
    assert len(header["provenance"]["files"]) == 2


def test_cli_import_and_info(c4_checkpoint_dir, tmp_path, capsys):
    out = tmp_path / "phot.safetensors"
    assert main(["import-c4", str(c4_checkpoint_dir), "phot", "--out", str(out)]) == 0
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert '"mag_F555W"' in printed and '"schema_version": 1' in printed


def test_missing_files_and_bad_kind(tmp_path, c4_checkpoint_dir):
    with pytest.raises(ValueError, match="kind"):
        import_c4(c4_checkpoint_dir, "both")
    with pytest.raises(FileNotFoundError, match="best_model_phys_model0.pt"):
        import_c4(tmp_path, "phys")


def test_payload_in_a_scaler_never_runs(tmp_path, c4_checkpoint_dir):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    for name in ("best_model_phys_model0.pt",):
        (tmp_path / name).write_bytes((c4_checkpoint_dir / name).read_bytes())
    (tmp_path / "scaler_phys_model0.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UnsafePickleError, match="system"):
        import_c4(tmp_path, "phys")
    assert not marker.exists()
