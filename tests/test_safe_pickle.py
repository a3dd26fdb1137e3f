"""Tests for the torch-free, pickle-safe readers of the C-4 network files.

No torch, scikit-learn or joblib is needed: the reference values were made
once with the real stack by ``tests/data/make_c4_reference.py``.  Hostile
pickles are crafted here with a pure-Python pickler that writes ``GLOBAL``
opcodes by name, so nothing dangerous is ever imported or called.
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxcomp.selection._safe_pickle import (
    UnsafePickleError,
    read_joblib_standard_scaler,
    read_torch_checkpoint,
)

REFERENCE = Path(__file__).resolve().parent / "data" / "c4_reference.npz"
KINDS = {"phys": 3, "phot": 5}
LAYERS = ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as npz:
        return {k: npz[k] for k in npz.files}


# ---------------------------------------------------------------------------
# Crafting pickles without importing what they name
# ---------------------------------------------------------------------------


class G:
    """A global referenced by name; pickled as ``GLOBAL module name``."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # pickle's save_reduce wants a callable
        raise AssertionError("crafting helper is never called")


class R:
    """Pickled as ``func(*args)`` (``REDUCE``), then ``BUILD state`` if given."""

    def __init__(self, func: G, args: tuple, state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __call__(self, *args: Any) -> Any:  # may itself be reduced (nested payloads)
        raise AssertionError("crafting helper is never called")

    def __reduce__(self) -> tuple:
        if self.state is None:
            return (self.func, self.args)
        return (self.func, self.args, self.state)


class Storage:
    """Pickled as torch's storage persistent id."""

    def __init__(self, storage_type: str, key: str, numel: int, location: str = "cpu") -> None:
        self.pid = ("storage", G("torch", storage_type), key, location, numel)


class CraftPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_g(self, obj: G) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[G] = save_g

    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, Storage) else None


def craft(obj: Any, protocol: int = 2) -> bytes:
    buf = io.BytesIO()
    CraftPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def tensor(storage: Storage, offset: int, size: tuple, stride: tuple) -> R:
    hooks = R(G("collections", "OrderedDict"), ())
    return R(G("torch._utils", "_rebuild_tensor_v2"), (storage, offset, size, stride, False, hooks))


def write_torch_zip(
    path: Path,
    data_pkl: bytes,
    storages: dict[str, bytes] | None = None,
    byteorder: str | None = "little",
    prefix: str = "archive",
) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/data.pkl", data_pkl)
        if byteorder is not None:
            zf.writestr(f"{prefix}/byteorder", byteorder)
        for key, raw in (storages or {}).items():
            zf.writestr(f"{prefix}/data/{key}", raw)
        zf.writestr(f"{prefix}/version", "3\n")
    return path


def write_bytes(path: Path, data: bytes | np.ndarray) -> Path:
    path.write_bytes(data.tobytes() if isinstance(data, np.ndarray) else data)
    return path


# ---------------------------------------------------------------------------
# The real C-4 files
# ---------------------------------------------------------------------------


def test_reference_matches_downloaded_files(c4_checkpoint_dir: Path, ref: dict) -> None:
    for name, digest in zip(ref["file_names"], ref["file_sha256"]):
        assert hashlib.sha256((c4_checkpoint_dir / str(name)).read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_real_checkpoint(c4_checkpoint_dir: Path, ref: dict, kind: str) -> None:
    ckpt = read_torch_checkpoint(c4_checkpoint_dir / f"best_model_{kind}_model0.pt")
    n_in = KINDS[kind]
    assert set(ckpt) == {"model_state_dict", "model_config"}
    assert type(ckpt["model_state_dict"]) is dict
    assert ckpt["model_config"] == {"input_dim": n_in, "hidden_dim": 512, "n_hidden": 2}
    assert list(ref[f"{kind}_model_config"]) == [n_in, 512, 2]
    state = ckpt["model_state_dict"]
    assert tuple(state) == LAYERS
    # torch layout: Linear weights are (out_features, in_features).
    shapes = [(512, n_in), (512,), (512, 512), (512,), (1, 512), (1,)]
    for name, shape in zip(LAYERS, shapes):
        arr = state[name]
        assert type(arr) is np.ndarray and arr.dtype == np.float32 and arr.shape == shape
        assert arr.flags.c_contiguous and arr.flags.writeable
        np.testing.assert_array_equal(arr, ref[f"{kind}_{name}"])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_real_scaler(c4_checkpoint_dir: Path, ref: dict, kind: str) -> None:
    sc = read_joblib_standard_scaler(c4_checkpoint_dir / f"scaler_{kind}_model0.pkl")
    n_in = KINDS[kind]
    for key in ("mean", "scale", "var"):
        assert sc[key].dtype == np.float64 and sc[key].shape == (n_in,)
        np.testing.assert_array_equal(sc[key], ref[f"{kind}_scaler_{key}"])
    assert sc["n_features_in"] == n_in
    assert sc["n_samples_seen"] == int(ref[f"{kind}_scaler_n_samples_seen"]) == 200_000
    assert sc["with_mean"] is True and sc["with_std"] is True
    assert "feature_names_in" not in sc
    assert sc["sklearn_version"] == "1.6.1"


def test_numpy_forward_pass_reproduces_c4(c4_checkpoint_dir: Path, ref: dict) -> None:
    """Weights + scalers read here give C-4's torch outputs (exact-erf GELU)."""
    from scipy.special import erf

    def gelu(x: np.ndarray) -> np.ndarray:
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))

    inputs = {
        "phys": np.column_stack(
            [10.0 ** ref["phys_log_mass"], 10.0 ** ref["phys_log_age"], ref["phys_av"]]
        ),
        "phot": ref["phot_mags"],
    }
    for kind, x in inputs.items():
        sc = read_joblib_standard_scaler(c4_checkpoint_dir / f"scaler_{kind}_model0.pkl")
        w = read_torch_checkpoint(c4_checkpoint_dir / f"best_model_{kind}_model0.pt")[
            "model_state_dict"
        ]
        h = ((x - sc["mean"]) / sc["scale"]).astype(np.float32).astype(np.float64)
        h = gelu(h @ w["net.0.weight"].T.astype(np.float64) + w["net.0.bias"])
        h = gelu(h @ w["net.2.weight"].T.astype(np.float64) + w["net.2.bias"])
        logit = (h @ w["net.4.weight"].T.astype(np.float64) + w["net.4.bias"])[:, 0]
        np.testing.assert_allclose(logit, ref[f"{kind}_logit"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(1.0 / (1.0 + np.exp(-logit)), ref[f"{kind}_prob"], atol=2e-5)


def test_readers_never_call_pickle_load(
    c4_checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pickle.load/loads must not be used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    read_torch_checkpoint(c4_checkpoint_dir / "best_model_phys_model0.pt")
    read_joblib_standard_scaler(c4_checkpoint_dir / "scaler_phys_model0.pkl")


# ---------------------------------------------------------------------------
# Format corners, against files written by the real torch / joblib
# ---------------------------------------------------------------------------


def test_torch_fixture_dtypes_strides_offsets(tmp_path: Path, ref: dict) -> None:
    ckpt = read_torch_checkpoint(write_bytes(tmp_path / "f.pt", ref["fixture_torch_pt"]))
    prefix = "fixture_torch_expect_"
    for key in (k[len(prefix) :] for k in ref if k.startswith(prefix)):
        if key == "nested_list0":
            continue
        got, want = ckpt[key], ref[prefix + key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)
        assert got.flags.c_contiguous and got.flags.writeable
    assert ckpt["f16"].dtype == np.float16 and ckpt["bf16"].dtype == np.float32
    # Views of one storage come back as independent copies.
    ckpt["shared_base"][:] = -1.0
    assert ckpt["view_t"][0, 0] == 12.0 and ckpt["shared_tail"][0, 0] == 43.0
    nested = ckpt["nested"]
    np.testing.assert_array_equal(nested["list"][0], ref["fixture_torch_expect_nested_list0"])
    assert nested["list"][1:] == [1, "a", 2.5, None, True]
    assert nested["tuple"] == (1, (2, "b"))
    assert type(ckpt["np_f64"]) is float and ckpt["np_f64"] == 0.125
    assert type(ckpt["np_i64"]) is int and ckpt["np_i64"] == -7


@pytest.mark.parametrize(
    "blob", ["named_joblib", "named_joblib_zlib", "named_pickle5", "named_pickle2"]
)
def test_scaler_fixtures(tmp_path: Path, ref: dict, blob: str) -> None:
    sc = read_joblib_standard_scaler(write_bytes(tmp_path / "s.pkl", ref[f"fixture_scaler_{blob}"]))
    for key in ("mean", "scale", "var"):
        np.testing.assert_array_equal(sc[key], ref[f"fixture_scaler_expect_{key}"])
    assert sc["feature_names_in"].dtype == object
    assert list(sc["feature_names_in"]) == list(ref["fixture_scaler_expect_names"])
    assert sc["n_features_in"] == 4 and sc["n_samples_seen"] == 50


def test_scaler_without_std(tmp_path: Path, ref: dict) -> None:
    sc = read_joblib_standard_scaler(
        write_bytes(tmp_path / "s.pkl", ref["fixture_scaler_nostd_joblib"])
    )
    np.testing.assert_array_equal(sc["mean"], ref["fixture_scaler_expect_nostd_mean"])
    assert sc["scale"] is None and sc["var"] is None and sc["with_std"] is False


def test_big_endian_strided_checkpoint(tmp_path: Path) -> None:
    base = np.arange(24, dtype=np.float64)
    ints = np.array([1, -2, 3, 70000], dtype=np.int32)
    obj = {
        "w": tensor(Storage("DoubleStorage", "0", 24), 5, (3, 2), (1, 6)),
        "i": tensor(Storage("IntStorage", "1", 4), 1, (3,), (1,)),
        "s": tensor(Storage("DoubleStorage", "0", 24), 23, (), ()),
    }
    path = write_torch_zip(
        tmp_path / "be.pt",
        craft(obj),
        {"0": base.astype(">f8").tobytes(), "1": ints.astype(">i4").tobytes()},
        byteorder="big",
    )
    ckpt = read_torch_checkpoint(path)
    np.testing.assert_array_equal(
        ckpt["w"], np.array([[5, 11], [6, 12], [7, 13]], dtype=np.float64)
    )
    np.testing.assert_array_equal(ckpt["i"], ints[1:])
    assert ckpt["s"].shape == () and ckpt["s"] == 23.0
    assert all(a.dtype.isnative for a in ckpt.values())


# ---------------------------------------------------------------------------
# Hostile pickles
# ---------------------------------------------------------------------------


def _payloads(marker: Path) -> dict[str, Any]:
    """Global name -> object whose unpickling would create ``marker``."""
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": R(G("os", "system"), (f"touch {marker}",)),
        "posix.system": R(G("posix", "system"), (f"touch {marker}",)),
        "builtins.exec": R(G("builtins", "exec"), (code,)),
        "builtins.eval": R(G("builtins", "eval"), (code,)),
        "subprocess.check_call": R(G("subprocess", "check_call"), (["touch", str(marker)],)),
        "subprocess.Popen": R(G("subprocess", "Popen"), (["touch", str(marker)],)),
    }


class _RealExecPayload:
    """Pickled by the real pickler as ``builtins.exec(code)``."""

    def __init__(self, marker: Path) -> None:
        self.code = f"open({str(marker)!r}, 'w').close()"

    def __reduce__(self) -> tuple:
        return (exec, (self.code,))


def _assert_refused(exc: UnsafePickleError, global_name: str, path: Path, marker: Path) -> None:
    assert isinstance(exc, ValueError)
    assert exc.global_name == global_name
    msg = str(exc)
    assert f"'{global_name}'" in msg and str(path) in msg
    assert "not loaded" in msg and "execute" in msg
    assert not marker.exists()


def test_payload_is_live_positive_control(tmp_path: Path) -> None:
    """The payloads really run under plain pickle, so the refusals below mean something."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_RealExecPayload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("name", list(_payloads(Path("x"))))
def test_bare_pickle_payload_refused(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    for protocol in (2, 4):
        path = write_bytes(tmp_path / "evil.pkl", craft(_payloads(marker)[name], protocol))
        with pytest.raises(UnsafePickleError) as info:
            read_joblib_standard_scaler(path)
        _assert_refused(info.value, name, path, marker)


@pytest.mark.parametrize("name", list(_payloads(Path("x"))))
def test_torch_zip_payload_refused(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    evil = _payloads(marker)[name]
    # Bare, and hidden after a legitimate tensor inside a checkpoint-like dict.
    for obj in (
        evil,
        {
            "model_state_dict": {"w": tensor(Storage("FloatStorage", "0", 2), 0, (2,), (1,))},
            "x": evil,
        },
    ):
        path = write_torch_zip(tmp_path / "evil.pt", craft(obj), {"0": b"\0" * 8})
        with pytest.raises(UnsafePickleError) as info:
            read_torch_checkpoint(path)
        _assert_refused(info.value, name, path, marker)


def test_real_pickler_payload_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps(_RealExecPayload(marker), protocol=4)
    path = write_bytes(tmp_path / "evil.pkl", data)
    with pytest.raises(UnsafePickleError) as info:
        read_joblib_standard_scaler(path)
    _assert_refused(info.value, "builtins.exec", path, marker)
    path = write_torch_zip(tmp_path / "evil.pt", data)
    with pytest.raises(UnsafePickleError) as info:
        read_torch_checkpoint(path)
    _assert_refused(info.value, "builtins.exec", path, marker)


def test_payload_inside_scaler_state_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    scaler = R(
        G("sklearn.preprocessing._data", "StandardScaler"),
        (),
        {"n_features_in_": 1, "mean_": _payloads(marker)["os.system"]},
    )
    path = write_bytes(tmp_path / "evil.pkl", craft(scaler, 4))
    with pytest.raises(UnsafePickleError) as info:
        read_joblib_standard_scaler(path)
    _assert_refused(info.value, "os.system", path, marker)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch._utils", "_import_dotted_name"),
        ("torch._utils", "_rebuild_tensor_v2.__globals__"),
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("torch", "FloatStorage.__init__"),
        ("collections", "OrderedDict.fromkeys"),
        ("numpy.testing._private.utils", "runstring"),
        ("numpy._core.multiarray", "_reconstruct"),  # allowed for scalers, not here
    ],
)
def test_torch_lookalike_globals_refused(tmp_path: Path, module: str, name: str) -> None:
    marker = tmp_path / "pwned"
    inner = R(G(module, name), ("os.system",))
    obj = {"state": R(inner, (f"touch {marker}",))}
    path = write_torch_zip(tmp_path / "evil.pt", craft(obj, 4))
    with pytest.raises(UnsafePickleError) as info:
        read_torch_checkpoint(path)
    _assert_refused(info.value, f"{module}.{name}", path, marker)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("joblib.numpy_pickle", "load"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper.read"),
        ("sklearn.preprocessing._data", "StandardScaler.__init__.__globals__"),
        ("sklearn.preprocessing._data", "MinMaxScaler"),
        ("numpy", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("numpy._core.multiarray", "scalar.__self__"),
        ("torch._utils", "_rebuild_tensor_v2"),  # allowed for checkpoints, not here
    ],
)
def test_scaler_lookalike_globals_refused(tmp_path: Path, module: str, name: str) -> None:
    marker = tmp_path / "pwned"
    obj = R(G(module, name), (f"open({str(marker)!r}, 'w').close()", {}))
    path = write_bytes(tmp_path / "evil.pkl", craft(obj, 4))
    with pytest.raises(UnsafePickleError) as info:
        read_joblib_standard_scaler(path)
    _assert_refused(info.value, f"{module}.{name}", path, marker)


def test_allowed_globals_cannot_be_misused(tmp_path: Path, c4_checkpoint_dir: Path) -> None:
    """Allowed names are stand-ins: not callable as storages, not mutable by BUILD."""
    cases = [
        # Calling a storage-type token.
        R(G("torch", "FloatStorage"), (10,)),
        # A tensor whose storage is not a persistent id.
        R(G("torch._utils", "_rebuild_tensor_v2"), (b"\0" * 8, 0, (2,), (1,), False, None)),
    ]
    for i, obj in enumerate(cases):
        path = write_torch_zip(tmp_path / f"m{i}.pt", craft({"x": obj}))
        with pytest.raises(ValueError, match=re.escape(str(path))):
            read_torch_checkpoint(path)
    # BUILD on the allowed function / class, trying to replace their defaults.
    for glob in (b"ctorch._utils\n_rebuild_tensor_v2\n", b"ccollections\nOrderedDict\n"):
        data = b"\x80\x02" + glob + b"N}X\x0c\x00\x00\x00__defaults__)s\x86b."
        path = write_torch_zip(tmp_path / "build.pt", data)
        with pytest.raises(ValueError, match="could not be read"):
            read_torch_checkpoint(path)
    # Nothing was altered: the real files still read identically.
    ckpt = read_torch_checkpoint(c4_checkpoint_dir / "best_model_phys_model0.pt")
    assert ckpt["model_state_dict"]["net.4.bias"].shape == (1,)


# ---------------------------------------------------------------------------
# Broken files
# ---------------------------------------------------------------------------


def test_truncated_and_corrupt_checkpoint(tmp_path: Path, c4_checkpoint_dir: Path) -> None:
    raw = (c4_checkpoint_dir / "best_model_phys_model0.pt").read_bytes()
    for i, data in enumerate([raw[: len(raw) // 2], raw[:-30], b""]):
        path = write_bytes(tmp_path / f"trunc{i}.pt", data)
        with pytest.raises(ValueError, match="truncated or corrupt zip") as info:
            read_torch_checkpoint(path)
        assert str(path) in str(info.value)
    # Flip a byte inside the 512x512 weight storage: zip CRC check fails.
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        start = zf.getinfo("best_model_phys_model0/data/2").header_offset
    name_len, extra_len = struct.unpack("<HH", raw[start + 26 : start + 30])
    offset = start + 30 + name_len + extra_len + 1000  # past the local file header
    corrupt = bytearray(raw)
    corrupt[offset] ^= 0xFF
    path = write_bytes(tmp_path / "crc.pt", bytes(corrupt))
    with pytest.raises(ValueError, match="crc.pt.*(?i:crc)"):
        read_torch_checkpoint(path)


def test_checkpoint_inconsistencies(tmp_path: Path) -> None:
    cases = {
        "no_data_pkl": None,
        "missing_storage": ({"w": tensor(Storage("FloatStorage", "9", 2), 0, (2,), (1,))}, {}),
        "short_storage": (
            {"w": tensor(Storage("FloatStorage", "0", 4), 0, (4,), (1,))},
            {"0": b"\0" * 8},
        ),
        "past_end": (
            {"w": tensor(Storage("FloatStorage", "0", 2), 1, (2,), (1,))},
            {"0": b"\0" * 8},
        ),
        "bad_key": ({"w": tensor(Storage("FloatStorage", "../x", 2), 0, (2,), (1,))}, {}),
        "not_a_dict": ([1, 2], {}),
    }
    for name, case in cases.items():
        path = tmp_path / f"{name}.pt"
        if case is None:
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr("archive/other.txt", "hello")
        else:
            write_torch_zip(path, craft(case[0]), case[1])
        with pytest.raises(ValueError) as info:
            read_torch_checkpoint(path)
        assert str(path) in str(info.value), name
        assert not isinstance(info.value, UnsafePickleError)


def test_random_bytes(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(4096)
    for reader in (read_torch_checkpoint, read_joblib_standard_scaler):
        path = write_bytes(tmp_path / "random.bin", data)
        with pytest.raises(ValueError) as info:
            reader(path)
        assert str(path) in str(info.value)


def test_truncated_scaler(tmp_path: Path, c4_checkpoint_dir: Path) -> None:
    raw = (c4_checkpoint_dir / "scaler_phot_model0.pkl").read_bytes()
    for cut in (0, 50, 0x1C8, len(raw) - 1):  # 0x1C8 is inside the mean_ array bytes
        path = write_bytes(tmp_path / f"cut{cut}.pkl", raw[:cut])
        with pytest.raises(ValueError) as info:
            read_joblib_standard_scaler(path)
        assert str(path) in str(info.value)
        assert not isinstance(info.value, UnsafePickleError)


def test_scaler_reader_rejects_other_objects(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "list.pkl", pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="not a StandardScaler"):
        read_joblib_standard_scaler(path)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_torch_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):
        read_joblib_standard_scaler(tmp_path / "nope.pkl")
