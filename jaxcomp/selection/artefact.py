"""The portable selection-function artefact: a safetensors file with a JSON header.

One file holds everything: the weights as safetensors tensors (a format that
stores raw numbers and cannot execute code) and, in the safetensors metadata
under the key ``"jaxcomp"``, a JSON header with the schema version, inputs,
units, transforms, standardisation, domain policy, network architecture,
label definition, training record, provenance, citation and a SHA-256 digest
of every tensor.  Loading verifies the digests, so a truncated or tampered
file is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors_bytes
from safetensors.numpy import save as save_safetensors_bytes

from .._io import atomic_write_bytes
from ..errors import JaxcompError

__all__ = [
    "ARTEFACT_FORMAT",
    "SCHEMA_VERSION",
    "ArtefactError",
    "tensor_digest",
    "header_digest",
    "write_artefact",
    "read_artefact",
    "read_header",
]

ARTEFACT_FORMAT = "jaxcomp-selection-function"
SCHEMA_VERSION = 1
_METADATA_KEY = "jaxcomp"


class ArtefactError(JaxcompError, ValueError):
    """A selection-function artefact is unreadable, corrupt, tampered with or too new."""


def tensor_digest(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(repr(tuple(array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def header_digest(header: dict) -> str:
    """SHA-256 of the canonical JSON of a header, without its own digest field."""
    body = {key: value for key, value in header.items() if key != "header_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_artefact(path: str | os.PathLike, header: dict, tensors: dict[str, np.ndarray]) -> Path:
    """Write an artefact atomically; the header gains the format, schema and digest."""
    tensors = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    _check_finite(Path(path), tensors, "would be written")
    header = dict(header)
    header["format"] = ARTEFACT_FORMAT
    header["schema_version"] = SCHEMA_VERSION
    header["tensors_sha256"] = tensor_digest(tensors)
    header["header_sha256"] = header_digest(header)
    payload = save_safetensors_bytes(
        tensors, metadata={_METADATA_KEY: json.dumps(header, indent=1)}
    )
    return atomic_write_bytes(path, payload)


def _parse(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    if not path.exists():
        raise FileNotFoundError(f"selection-function artefact not found: {path}")
    if path.is_dir():
        raise ArtefactError(
            f"{path} is a directory; give the artefact file (.safetensors) inside it"
        )
    raw = path.read_bytes()
    if len(raw) < 8:
        raise ArtefactError(f"{path} is not a jaxcomp artefact: only {len(raw)} bytes (truncated?)")
    header_length = int.from_bytes(raw[:8], "little")
    if header_length <= 0 or 8 + header_length > len(raw):
        raise ArtefactError(
            f"{path} is truncated or not a safetensors file (declared header of "
            f"{header_length} bytes, file has {len(raw)}); re-export or re-download it"
        )
    try:
        safetensors_header = json.loads(raw[8 : 8 + header_length])
        tensors = load_safetensors_bytes(raw)
    except (SafetensorError, ValueError, UnicodeDecodeError) as error:
        raise ArtefactError(
            f"{path} is corrupt or truncated ({error}); re-export or re-download it"
        ) from error
    metadata = safetensors_header.get("__metadata__") or {}
    if _METADATA_KEY not in metadata:
        raise ArtefactError(
            f"{path} is a safetensors file without a jaxcomp header; "
            "it was not written by SelectionFunction.save"
        )
    try:
        header = json.loads(metadata[_METADATA_KEY])
    except json.JSONDecodeError as error:
        raise ArtefactError(f"{path}: the jaxcomp header is not valid JSON ({error})") from error
    return header, tensors


def _check_header(path: Path, header: dict) -> None:
    if header.get("format") != ARTEFACT_FORMAT:
        raise ArtefactError(f"{path}: format {header.get('format')!r} is not {ARTEFACT_FORMAT!r}")
    version = header.get("schema_version")
    if not isinstance(version, int):
        raise ArtefactError(f"{path}: header has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise ArtefactError(
            f"{path} uses artefact schema version {version}, newer than the {SCHEMA_VERSION} this "
            "jaxcomp understands; upgrade jaxcomp (pip install -U jaxcomp) to read it"
        )


def read_header(path: str | os.PathLike) -> dict:
    """Read and check the JSON header of an artefact (tensors are verified too)."""
    return read_artefact(path)[0]


def read_artefact(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read an artefact, check its schema and verify every tensor's checksum."""
    path = Path(path)
    header, tensors = _parse(path)
    _check_header(path, header)
    if header.get("header_sha256") != header_digest(header):
        raise ArtefactError(
            f"{path}: header checksum mismatch; the header was edited or damaged after export, "
            "so the file was refused (re-export it with SelectionFunction.save)"
        )
    expected = header.get("tensors_sha256")
    actual = tensor_digest(tensors)
    if expected != actual:
        raise ArtefactError(
            f"{path}: tensor checksum mismatch (header {expected}, file {actual}); the weights "
            "were modified or damaged after export, so the file was refused"
        )
    _check_finite(path, tensors, "was refused")
    return header, tensors


def _check_finite(path: Path, tensors: dict[str, np.ndarray], action: str) -> None:
    """Refuse weights with NaN or infinite entries (a diverged training, or a hand-edited file)."""
    for name in sorted(tensors):
        values = tensors[name]
        if np.issubdtype(values.dtype, np.floating) and not np.all(np.isfinite(values)):
            bad = int(np.count_nonzero(~np.isfinite(values)))
            raise ArtefactError(
                f"{path}: tensor {name!r} has {bad} NaN or infinite value(s) of {values.size}; the "
                "network "
                f"would predict NaN, so the file {action} (retrain or re-export it)"
            )
