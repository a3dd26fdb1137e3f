"""Import of the published C-4 NGC 628C completeness networks.

The PyPI package ``cluster-completeness-pipeline`` 0.1.0 (Tang et al. 2026)
ships two PyTorch MLPs (3-512-512-1 and 5-512-512-1, exact GELU) trained on
NGC 628C artificial cluster tests, with scikit-learn ``StandardScaler`` objects
pickled by joblib.  :func:`import_c4` reads them with restricted unpicklers
(:mod:`jaxcomp.selection._safe_pickle`) that rebuild only arrays and refuse every
other global, so nothing in the files is executed and neither torch nor
scikit-learn is needed.

C-4's physical network takes *linear* mass [Msun] and age [yr]; the imported
:class:`SelectionFunction` takes ``log_mass``, ``log_age`` and ``av`` like every
jaxcomp selection function and applies ``10**x`` internally (transform
``"pow10"``).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .._io import file_sha256
from .._version import __version__
from ._safe_pickle import read_joblib_standard_scaler, read_torch_checkpoint
from .function import SelectionFunction, _tensors_to_weights
from .inputs import PHOTOMETRIC_INPUTS, PHYSICAL_INPUTS, InputSpec
from .network import NetworkConfig, abstract_network

__all__ = ["import_c4", "C4_SOURCE"]

C4_SOURCE = "PyPI cluster-completeness-pipeline 0.1.0, completeness_nn_api/checkpoints"
C4_CITATION = (
    "Tang, J. et al. 2026, 'C-4: the Cluster Completeness Correction Calculator', "
    "arXiv:2604.05291; "
    "networks from the PyPI package cluster-completeness-pipeline 0.1.0 (NGC 628C)"
)

_C4_LABEL = (
    "C = 1 if the injected cluster enters the NGC 628C LEGUS-like catalogue (C-4 pipeline: "
    "SExtractor "
    "detection on the white-light image, CI >= 1.4, >= 4 bands with err <= 0.3, M_V <= -6, 3 px "
    "match)"
)


def _physical_specs() -> tuple[InputSpec, ...]:
    log_mass, log_age, av = PHYSICAL_INPUTS
    return (
        InputSpec(
            log_mass.name,
            log_mass.unit,
            log_mass.domain,
            "pow10",
            "log10 cluster mass [Msun]; C-4 standardises the linear mass",
        ),
        InputSpec(
            log_age.name,
            log_age.unit,
            log_age.domain,
            "pow10",
            "log10 cluster age [yr]; C-4 standardises the linear age",
        ),
        av,
    )


def _photometric_specs(mean: np.ndarray, scale: np.ndarray) -> tuple[InputSpec, ...]:
    # C-4 does not publish the magnitude range of its library; mean +- 4 sd of its
    # scaler brackets the training magnitudes.
    return tuple(
        InputSpec(
            spec.name,
            spec.unit,
            (float(m - 4 * s), float(m + 4 * s)),
            description=spec.description + " (domain: C-4 scaler mean +- 4 sd)",
        )
        for spec, m, s in zip(PHOTOMETRIC_INPUTS, mean, scale)
    )


def import_c4(
    directory: str | Path, kind: str, *, model_name: str = "model0", out_of_domain: str = "clip"
) -> SelectionFunction:
    """Read a published C-4 network as a :class:`SelectionFunction`.

    Parameters
    ----------
    directory : path
        Folder holding ``best_model_{kind}_{model_name}.pt`` and
        ``scaler_{kind}_{model_name}.pkl`` (``completeness_nn_api/checkpoints``
        of the unpacked wheel).  Get it with
        ``pip download --no-deps cluster-completeness-pipeline==0.1.0`` and unzip.
    kind : {"phys", "phot"}
        Physical network (inputs ``log_mass`` [log10 Msun], ``log_age`` [log10 yr],
        ``av`` [mag]) or photometric network (five Vega magnitudes F275W, F336W,
        F435W, F555W, F814W).
    model_name : str
        Suffix of the checkpoint files.
    out_of_domain : {"clip", "nan", "error"}
        Domain policy of the imported function.

    Returns
    -------
    SelectionFunction
        One-member selection function reproducing C-4's outputs.
    """
    if kind not in ("phys", "phot"):
        raise ValueError(f"kind must be 'phys' or 'phot', got {kind!r}")
    directory = Path(directory)
    checkpoint_path = directory / f"best_model_{kind}_{model_name}.pt"
    scaler_path = directory / f"scaler_{kind}_{model_name}.pkl"
    for path in (checkpoint_path, scaler_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"C-4 file not found: {path}; point `directory` at completeness_nn_api/checkpoints "
                "of "
                "the unpacked cluster-completeness-pipeline 0.1.0 wheel"
            )
    checkpoint = read_torch_checkpoint(checkpoint_path)
    scaler = read_joblib_standard_scaler(scaler_path)
    try:
        model_config = checkpoint["model_config"]
        state = checkpoint["model_state_dict"]
        n_inputs, hidden, n_hidden = (
            int(model_config[k]) for k in ("input_dim", "hidden_dim", "n_hidden")
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{checkpoint_path} is not a C-4 checkpoint ({error!r})") from error
    expected_inputs = 3 if kind == "phys" else 5
    if n_inputs != expected_inputs:
        raise ValueError(
            f"{checkpoint_path}: {n_inputs} inputs, expected {expected_inputs} for {kind!r}"
        )
    mean = np.asarray(scaler["mean"], dtype=np.float64)
    scale = np.asarray(scaler["scale"], dtype=np.float64)
    if mean.shape != (n_inputs,) or scale.shape != (n_inputs,):
        raise ValueError(
            f"{scaler_path}: scaler shapes {mean.shape}/{scale.shape} do not match {n_inputs} "
            "inputs"
        )

    config = NetworkConfig(n_inputs, (hidden,) * n_hidden, "gelu")
    layers = [f"hidden.{i}" for i in range(n_hidden)] + ["head"]
    tensors = {}
    for index, layer in enumerate(layers):
        weight = np.asarray(state[f"net.{2 * index}.weight"], dtype=np.float32)
        bias = np.asarray(state[f"net.{2 * index}.bias"], dtype=np.float32)
        tensors[f"{layer}.kernel"] = weight.T[None]  # torch stores (out, in)
        tensors[f"{layer}.bias"] = bias[None]
    _, abstract = abstract_network(config)
    weights = _tensors_to_weights(abstract, {k: jnp.asarray(v) for k, v in tensors.items()})
    specs = _physical_specs() if kind == "phys" else _photometric_specs(mean, scale)
    metadata = {
        "label": {"column": "C", "definition": _C4_LABEL},
        "citation": C4_CITATION,
        "provenance": {
            "source": C4_SOURCE,
            "imported_with_jaxcomp": __version__,
            "files": {
                checkpoint_path.name: file_sha256(checkpoint_path),
                scaler_path.name: file_sha256(scaler_path),
            },
            "original_inputs": (
                ["mass [Msun]", "age [yr]", "A_V [mag]"]
                if kind == "phys"
                else [s.name for s in PHOTOMETRIC_INPUTS]
            ),
            "scaler_n_samples_seen": scaler.get("n_samples_seen"),
            "galaxy": "NGC 628C",
        },
    }
    return SelectionFunction.from_weights(
        input_specs=specs,
        mean=mean,
        scale=scale,
        network_config=config,
        weights=weights,
        out_of_domain=out_of_domain,
        metadata=metadata,
    )
