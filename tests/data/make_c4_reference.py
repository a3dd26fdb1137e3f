"""Regenerate ``tests/data/c4_reference.npz`` with C-4's own torch/sklearn code.

The file holds reference outputs of the published C-4 completeness networks
(PyPI ``cluster-completeness-pipeline==0.1.0``, package
``completeness_nn_api``), computed with the real torch / scikit-learn /
joblib stack, so that jaxcomp's torch-free readers and ports can be tested
without any of those installed.

How to rerun
------------
This needs a separate environment with torch; the test suite does not::

    python3.11 -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch==2.13.0 scikit-learn joblib numpy
    /work/venv-torch/bin/python tests/data/make_c4_reference.py

The wheel is fetched with ``pip download --no-deps
cluster-completeness-pipeline==0.1.0`` into ``$JAXCOMP_C4_CACHE`` (default
``~/.cache/jaxcomp/c4``, the same cache the tests use) unless ``--wheel-dir``
points at an already unpacked wheel.  The file was generated with
python 3.11.7, torch 2.13.0+cpu, scikit-learn 1.9.1, joblib 1.6.0 and
numpy 2.4.6 (the exact strings are stored in the ``versions`` entry).

What is stored
--------------
``versions``
    ``name=version`` strings of the stack used.
``file_names``, ``file_sha256``
    sha256 of the four checkpoint files that were read.
``phys_log_mass``, ``phys_log_age``, ``phys_av`` (4000,) float64
    Physical test points, ``np.random.default_rng(SEED_PHYS)``:
    log10 mass/Msun ~ U[2, 8], log10 age/yr ~ U[5, log10 1.5e10],
    A_V ~ U[0, 3].  C-4 takes *linear* mass and age: ``10**x`` in float64.
``phys_logit``, ``phys_prob`` (4000,) float32
    C-4's network output before / after the sigmoid.
``phot_mags`` (4000, 5) float64
    Five magnitudes, ``np.random.default_rng(SEED_PHOT)``, band j uniform in
    ``mean_j +- 3 scale_j`` of the phot scaler.
``phot_logit``, ``phot_prob`` (4000,) float32
``{phys,phot}_net.{0,2,4}.{weight,bias}``
    The checkpoint tensors as read by ``torch.load`` (torch layout: a Linear
    weight is (out_features, in_features)).
``{phys,phot}_model_config``
    ``[input_dim, hidden_dim, n_hidden]``.
``{phys,phot}_scaler_{mean,scale,var,n_samples_seen}``
    As read by ``joblib.load``.
``fixture_*``
    Small extra files written by the real torch.save / joblib.dump /
    pickle.dumps (stored as uint8 bytes) with the values they contain
    (``fixture_torch_expect_*``, ``fixture_scaler_expect_*``), to test format
    corners the C-4 files do not exercise: strided views with storage offsets,
    shared storages, float16/bfloat16/int/bool/complex/0-d/empty tensors,
    ``nn.Parameter``, numpy scalars, object-dtype ``feature_names_in_``,
    zlib compression, plain pickles, ``with_std=False``.

Inference follows ``completeness_nn_api.ngc628_completeness`` exactly:
``scaler.transform`` on float64 input, ``torch.tensor(..., float32)``, the
MLP (``nn.GELU()`` default, i.e. the exact erf form), ``sigmoid``; the
probabilities are also checked against ``ngc628_completeness_predict``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

WHEEL_SPEC = "cluster-completeness-pipeline==0.1.0"
N_POINTS = 4000
SEED_PHYS = 20260309
SEED_PHOT = 20260310
OUT = Path(__file__).resolve().parent / "c4_reference.npz"


def _unpacked_wheel(wheel_dir: str | None) -> Path:
    """Return the directory of the unpacked C-4 wheel (downloading if needed)."""
    if wheel_dir is not None:
        return Path(wheel_dir).resolve()
    cache = Path(os.environ.get("JAXCOMP_C4_CACHE", "~/.cache/jaxcomp/c4")).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("cluster_completeness_pipeline-0.1.0-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL_SPEC, "-d", str(cache)],
            check=True,
        )
        wheels = sorted(cache.glob("cluster_completeness_pipeline-0.1.0-*.whl"))
    target = Path(tempfile.mkdtemp(prefix="c4_wheel_"))
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extractall(target)
    return target


def _bytes(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8).copy()


def _torch_fixture(torch: object) -> dict[str, np.ndarray]:
    """A torch.save file covering strides, offsets, dtypes and containers."""
    base = torch.arange(60, dtype=torch.float64).reshape(6, 10)
    view = base[1:5, 2:8:2].t()  # storage offset 12, stride (2, 10)
    tail = base[4:, 3:7]  # another view of the same storage
    obj = {
        "view_t": view,
        "shared_base": base,
        "shared_tail": tail,
        "f32": torch.linspace(-1.0, 1.0, 12, dtype=torch.float32).reshape(3, 4),
        "f16": torch.linspace(-2.0, 2.0, 7, dtype=torch.float16),
        "bf16": torch.tensor([1.5, -2.25, 3.0e38, 0.0], dtype=torch.bfloat16),
        "i64": torch.arange(-3, 3, dtype=torch.int64),
        "i32": torch.tensor([[1, -2], [3, -4]], dtype=torch.int32),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.tensor([1 + 2j, -3.5j], dtype=torch.complex64),
        "scalar0d": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.full((2, 2), 0.25)),
        "nested": {"list": [torch.ones(2), 1, "a", 2.5, None, True], "tuple": (1, (2, "b"))},
        "np_f64": np.float64(0.125),
        "np_i64": np.int64(-7),
    }
    buf = io.BytesIO()
    torch.save(obj, buf)
    out = {"fixture_torch_pt": _bytes(buf.getvalue())}
    for name, val in obj.items():
        if isinstance(val, torch.Tensor):
            t = val.detach()
            if t.dtype == torch.bfloat16:
                t = t.float()
            out[f"fixture_torch_expect_{name}"] = t.numpy().copy()
    out["fixture_torch_expect_nested_list0"] = obj["nested"]["list"][0].numpy().copy()
    return out


def _scaler_fixtures(StandardScaler: type, joblib: object) -> dict[str, np.ndarray]:
    """joblib/pickle files of small scalers (feature names, zlib, plain pickle)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(50, 4)) * [1.0, 10.0, 0.1, 1e6] + [0.0, -5.0, 2.0, 1e7]
    named = StandardScaler().fit(x)
    # What sklearn sets when fitted on a DataFrame (pandas is not needed here).
    named.feature_names_in_ = np.asarray(["F275W", "F336W", "F438W", "F814W"], dtype=object)
    no_std = StandardScaler(with_std=False).fit(x)
    out: dict[str, np.ndarray] = {}
    for key, obj, kwargs in [
        ("named_joblib", named, {}),
        ("named_joblib_zlib", named, {"compress": 3}),
        ("nostd_joblib", no_std, {}),
    ]:
        buf = io.BytesIO()
        joblib.dump(obj, buf, **kwargs)
        out[f"fixture_scaler_{key}"] = _bytes(buf.getvalue())
    out["fixture_scaler_named_pickle5"] = _bytes(pickle.dumps(named, protocol=5))
    out["fixture_scaler_named_pickle2"] = _bytes(pickle.dumps(named, protocol=2))
    out["fixture_scaler_expect_mean"] = named.mean_
    out["fixture_scaler_expect_scale"] = named.scale_
    out["fixture_scaler_expect_var"] = named.var_
    out["fixture_scaler_expect_names"] = np.asarray(named.feature_names_in_, dtype=str)
    out["fixture_scaler_expect_nostd_mean"] = no_std.mean_
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel-dir", help="already unpacked C-4 wheel")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    import joblib
    import sklearn
    import torch
    from sklearn.preprocessing import StandardScaler

    torch.manual_seed(0)
    wheel = _unpacked_wheel(args.wheel_dir)
    sys.path.insert(0, str(wheel))
    from completeness_nn_api.inference import load_model_and_scalers
    from completeness_nn_api.ngc628_completeness import ngc628_completeness_predict

    ckpt_dir = wheel / "completeness_nn_api" / "checkpoints"
    device = torch.device("cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model_phys, model_phot, scaler_phys, scaler_phot = load_model_and_scalers(
            ckpt_dir, "model0", device=device
        )
    pickled_by = sorted(
        {
            str(w.message.original_sklearn_version)
            for w in caught
            if hasattr(w.message, "original_sklearn_version")
        }
    )

    def run(model: torch.nn.Module, scaler: object, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x_scaled = scaler.transform(np.asarray(x, dtype=np.float64))
        x_t = torch.tensor(x_scaled, dtype=torch.float32, device=device)
        with torch.no_grad():
            logits = model(x_t).squeeze(-1)
        return logits.numpy().copy(), torch.sigmoid(logits).numpy().copy()

    out: dict[str, np.ndarray] = {}

    rng = np.random.default_rng(SEED_PHYS)
    log_mass = rng.uniform(2.0, 8.0, N_POINTS)
    log_age = rng.uniform(5.0, np.log10(1.5e10), N_POINTS)
    av = rng.uniform(0.0, 3.0, N_POINTS)
    x_phys = np.column_stack([10.0**log_mass, 10.0**log_age, av])
    logit, prob = run(model_phys, scaler_phys, x_phys)
    api_prob = ngc628_completeness_predict(
        phys=(x_phys[:, 0], x_phys[:, 1], av), model_dir=ckpt_dir
    )
    np.testing.assert_array_equal(api_prob, prob)
    out.update(
        phys_log_mass=log_mass, phys_log_age=log_age, phys_av=av, phys_logit=logit, phys_prob=prob
    )

    rng = np.random.default_rng(SEED_PHOT)
    lo = scaler_phot.mean_ - 3.0 * scaler_phot.scale_
    hi = scaler_phot.mean_ + 3.0 * scaler_phot.scale_
    mags = rng.uniform(lo, hi, size=(N_POINTS, 5))
    logit, prob = run(model_phot, scaler_phot, mags)
    api_prob = ngc628_completeness_predict(phot=mags, model_dir=ckpt_dir)
    np.testing.assert_array_equal(api_prob, prob)
    out.update(phot_mags=mags, phot_logit=logit, phot_prob=prob)

    names, digests = [], []
    for kind in ("phys", "phot"):
        pt = ckpt_dir / f"best_model_{kind}_model0.pt"
        pkl = ckpt_dir / f"scaler_{kind}_model0.pkl"
        ckpt = torch.load(pt, map_location="cpu", weights_only=True)
        cfg = ckpt["model_config"]
        out[f"{kind}_model_config"] = np.array(
            [cfg["input_dim"], cfg["hidden_dim"], cfg["n_hidden"]]
        )
        for name, tensor in ckpt["model_state_dict"].items():
            out[f"{kind}_{name}"] = tensor.numpy().copy()
        scaler = joblib.load(pkl)
        out[f"{kind}_scaler_mean"] = scaler.mean_
        out[f"{kind}_scaler_scale"] = scaler.scale_
        out[f"{kind}_scaler_var"] = scaler.var_
        out[f"{kind}_scaler_n_samples_seen"] = np.asarray(scaler.n_samples_seen_)
        for p in (pt, pkl):
            names.append(p.name)
            digests.append(hashlib.sha256(p.read_bytes()).hexdigest())
    out["file_names"] = np.array(names)
    out["file_sha256"] = np.array(digests)

    out.update(_torch_fixture(torch))
    out.update(_scaler_fixtures(StandardScaler, joblib))

    out["versions"] = np.array(
        [
            f"python={platform.python_version()}",
            f"torch={torch.__version__}",
            f"scikit-learn={sklearn.__version__}",
            f"joblib={joblib.__version__}",
            f"numpy={np.__version__}",
            f"c4={WHEEL_SPEC}",
            f"scalers_pickled_by_scikit-learn={','.join(pickled_by) or 'same'}",
        ]
    )
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB, {len(out)} arrays)")


if __name__ == "__main__":
    main()
