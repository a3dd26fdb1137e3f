"""Read the published C-4 completeness networks without torch, sklearn or ``pickle.load``.

The C-4 package (``cluster-completeness-pipeline`` on PyPI) ships its two
completeness MLPs as torch zip checkpoints (``best_model_{phys,phot}_*.pt``)
and its input scalers as joblib-pickled scikit-learn ``StandardScaler``
objects (``scaler_{phys,phot}_*.pkl``).  Loading those with ``torch.load`` /
``joblib.load`` executes whatever the pickle stream asks for, so a tampered
file could run arbitrary code.  This module reads both formats with
*restricted* unpicklers instead:

* every global a pickle references is looked up in an explicit allow-list
  and replaced by a small local stand-in written here (nothing from torch,
  sklearn or joblib is ever imported); any other global raises
  :class:`UnsafePickleError` *before* anything is called;
* tensors and arrays are rebuilt with numpy directly from the raw bytes in
  the file (dtype, shape, stride, storage offset and byte order honoured);
* the result is made of plain ``dict`` / ``list`` / ``tuple`` / ``str`` /
  ``int`` / ``float`` / ``bool`` / ``None`` / :class:`numpy.ndarray` only.

Formats
-------
torch zip checkpoint (``torch.save`` with the zip serialisation, torch >= 1.6)
    A zip archive whose entries all live under one folder ``<name>/``:
    ``<name>/data.pkl`` is a pickle of the saved object in which every tensor
    appears as ``torch._utils._rebuild_tensor_v2(storage, storage_offset,
    size, stride, requires_grad, backward_hooks[, metadata])``.  ``storage``
    is a *persistent id* ``('storage', <torch.XxxStorage class>, key,
    location, numel)`` whose bytes are in ``<name>/data/<key>``, written in
    the byte order named by ``<name>/byteorder`` (``little`` when absent).
    Other records (``version``, ``.format_version``, ``.storage_alignment``,
    ``.data/serialization_id``) are not needed for reading.
joblib pickle (``joblib.dump``, joblib >= 0.10)
    An ordinary pickle stream (optionally zlib/gzip/bz2/xz/lzma compressed as
    a whole), except that each numpy array is pickled as a
    ``joblib.numpy_pickle.NumpyArrayWrapper`` object whose state holds
    ``shape``, ``order``, ``dtype`` (and, for joblib >= 1.2,
    ``numpy_array_alignment_bytes``).  Immediately after the ``BUILD``
    opcode of that wrapper the array bytes follow *outside* the pickle
    opcodes: one byte giving a padding length ``p`` and ``p`` padding bytes
    (only when ``numpy_array_alignment_bytes`` is present), then
    ``prod(shape) * itemsize`` raw bytes (Fortran order when
    ``order == 'F'``).  Arrays of ``object`` dtype are instead written as a
    nested, separate pickle at that position.

Notes
-----
``read_torch_checkpoint`` maps every storage location (the C-4 files were
saved from ``cuda:0``) to host numpy arrays; ``bfloat16`` storages are
widened losslessly to ``float32`` because numpy has no ``bfloat16``.
The ``_metadata`` attribute that ``nn.Module.state_dict`` attaches to its
``OrderedDict`` (per-module version numbers) is dropped.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import os
import pickle
import re
import struct
import zipfile
import zlib
from typing import Any, Callable, NoReturn

import numpy as np

from ..errors import JaxcompError

__all__ = [
    "UnsafePickleError",
    "read_joblib_standard_scaler",
    "read_torch_checkpoint",
]

#: Upper bound on the decompressed size of a compressed joblib file (bytes).
_MAX_JOBLIB_BYTES = 1 << 30


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class UnsafePickleError(JaxcompError, ValueError):
    """A pickle referenced a global that is not on the reader's allow-list.

    Raised before the global is resolved or called: the file is not loaded,
    because unpickling an arbitrary global (e.g. ``os.system``) can execute
    arbitrary code.

    Parameters
    ----------
    global_name : str
        The offending global as ``"module.name"``.
    path : str or None, optional
        The file being read, included in the message when given.
    context : str, optional
        What the reader was allowed to rebuild (appears in the message).

    Attributes
    ----------
    global_name : str
        The offending global as ``"module.name"``.
    path : str or None
        The file being read.
    """

    def __init__(self, global_name: str, path: str | None = None, context: str = "") -> None:
        self.global_name = global_name
        self.path = path
        where = f" in {path!r}" if path is not None else ""
        allowed = f" of globals needed for {context}" if context else ""
        super().__init__(
            f"refused to unpickle the global '{global_name}'{where}: it is not on "
            f"the allow-list{allowed}. Resolving or calling an arbitrary global "
            "while unpickling could execute arbitrary code, so the file was not "
            "loaded."
        )


class _FileError(ValueError):
    """A ``ValueError`` whose message already names the file (not re-wrapped)."""


def _fail(path: str, what: str, exc: BaseException | None = None) -> NoReturn:
    """Raise a ``ValueError`` that names ``path``."""
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    raise _FileError(f"{path!r}: {what}{detail}") from exc


# ---------------------------------------------------------------------------
# Safe stand-ins shared by both readers
# ---------------------------------------------------------------------------


class _NoBuild:
    """Mix-in refusing the pickle ``BUILD`` opcode (no state may be set)."""

    __slots__ = ()

    def __setstate__(self, state: object) -> NoReturn:
        raise pickle.UnpicklingError(f"BUILD is not allowed on {type(self).__name__} objects")


class _SafeCallable(_NoBuild):
    """Opaque wrapper for an allowed global that may be called.

    Wrapping (rather than handing out the function itself) means a pickle can
    neither mutate the function (``BUILD`` would otherwise ``setattr`` on it)
    nor use it as a class for ``NEWOBJ``.
    """

    __slots__ = ("_fn", "_name")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self._name = name
        self._fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<allowed global {self._name}>"


class _Marker(_NoBuild):
    """Opaque, non-callable token standing in for an allowed class reference."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<marker {self.name}>"


_NDARRAY = _Marker("numpy.ndarray")

_DTYPE_STR = re.compile(
    r"^[<>|=]?[?bBhHiIlLqQpPefdgFDGSaUVOMmuic][0-9]{0,6}(\[[0-9a-zA-Z]{1,4}\])?$"
)


def _safe_dtype(obj: object, align: object = False, copy: object = True) -> np.dtype:
    """Stand-in for ``numpy.dtype`` as used by numpy's pickle reduction.

    Only simple type strings are accepted, and a fresh copy is always made so
    the ``BUILD`` that follows cannot alter numpy's cached builtin dtypes.
    """
    if not isinstance(obj, str) or not _DTYPE_STR.match(obj):
        raise pickle.UnpicklingError(f"unsupported numpy dtype spec {obj!r}")
    return np.dtype(obj, align=bool(align), copy=True)


def _check_plain_dtype(dtype: object) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError(f"expected a numpy dtype, got {type(dtype).__name__}")
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"object dtype {dtype} is not allowed here")
    return dtype


def _safe_scalar(dtype: object, data: object = None) -> Any:
    """Stand-in for ``numpy._core.multiarray.scalar`` (numpy scalar from bytes)."""
    dt = _check_plain_dtype(dtype)
    if not isinstance(data, (bytes, bytearray)) or len(data) != dt.itemsize:
        raise pickle.UnpicklingError(
            f"numpy scalar of dtype {dt} needs {dt.itemsize} bytes of data"
        )
    return np.frombuffer(bytes(data), dtype=dt, count=1)[0]


def _safe_codecs_encode(obj: object, encoding: object = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode`` as emitted for ``bytes`` by protocol 2."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only _codecs.encode(str, 'latin1') is allowed")
    return obj.encode("latin1")


def _check_shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise pickle.UnpicklingError(f"invalid array shape {shape!r}")
    return tuple(int(s) for s in shape)


def _native(arr: np.ndarray) -> np.ndarray:
    """Return ``arr`` as a writable, C-contiguous, native-byte-order copy."""
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))


def _str_object_array(values: object, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    """Build an object array from a list of ``str`` (e.g. ``feature_names_in_``)."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise pickle.UnpicklingError("object arrays may only contain str")
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    if math.prod(shape) != len(values):
        raise pickle.UnpicklingError("object array size does not match its shape")
    return arr.reshape(shape, order="F" if fortran else "C")


class _NDArrayStandIn(_NoBuild):
    """Result of ``numpy...._reconstruct``: becomes an array on ``BUILD``."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:  # type: ignore[override]
        if self.array is not None:
            raise pickle.UnpicklingError("array state set twice")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("unexpected ndarray pickle state")
        if len(state) == 5:
            state = state[1:]  # drop the version number
        shape, dtype, fortran, raw = state
        shape = _check_shape(shape)
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError("ndarray state without a numpy dtype")
        if dtype.hasobject:
            self.array = _str_object_array(raw, shape, bool(fortran))
            return
        if not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("ndarray state without raw bytes")
        count = math.prod(shape)
        if len(raw) != count * dtype.itemsize:
            raise pickle.UnpicklingError("ndarray data length does not match its shape")
        flat = np.frombuffer(bytes(raw), dtype=dtype, count=count)
        self.array = _native(flat.reshape(shape, order="F" if fortran else "C"))


def _safe_reconstruct(
    subtype: object, shape: object = (0,), dtype: object = b"b"
) -> _NDArrayStandIn:
    """Stand-in for ``numpy._core.multiarray._reconstruct`` (plain ndarray only)."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("only plain numpy.ndarray can be reconstructed")
    return _NDArrayStandIn()


def _safe_frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """Stand-in for ``numpy._core.numeric._frombuffer`` (pickle protocol 5 arrays)."""
    dt = _check_plain_dtype(dtype)
    shape_t = _check_shape(shape)
    if not isinstance(buf, (bytes, bytearray)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("invalid in-band ndarray buffer")
    count = math.prod(shape_t)
    if len(buf) != count * dt.itemsize:
        raise pickle.UnpicklingError("ndarray buffer length does not match its shape")
    flat = np.frombuffer(bytes(buf), dtype=dt, count=count)
    return _native(flat.reshape(shape_t, order=order))


_NUMPY_SCALAR_GLOBALS: dict[tuple[str, str], object] = {}
for _mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
    _NUMPY_SCALAR_GLOBALS[(_mod, "scalar")] = _SafeCallable(f"{_mod}.scalar", _safe_scalar)
_NUMPY_SCALAR_GLOBALS[("numpy", "dtype")] = _SafeCallable("numpy.dtype", _safe_dtype)
_NUMPY_SCALAR_GLOBALS[("_codecs", "encode")] = _SafeCallable("_codecs.encode", _safe_codecs_encode)

_NUMPY_ARRAY_GLOBALS: dict[tuple[str, str], object] = {("numpy", "ndarray"): _NDARRAY}
for _mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
    _NUMPY_ARRAY_GLOBALS[(_mod, "_reconstruct")] = _SafeCallable(
        f"{_mod}._reconstruct", _safe_reconstruct
    )
for _mod in ("numpy._core.numeric", "numpy.core.numeric"):
    _NUMPY_ARRAY_GLOBALS[(_mod, "_frombuffer")] = _SafeCallable(
        f"{_mod}._frombuffer", _safe_frombuffer
    )


# ---------------------------------------------------------------------------
# Converting the unpickled graph into plain Python / numpy objects
# ---------------------------------------------------------------------------


class _PickledOrderedDict(dict):
    """Stand-in for ``collections.OrderedDict`` (a plain dict keeps order).

    ``torch``'s ``state_dict()`` attaches a ``_metadata`` attribute, which
    pickle restores with ``BUILD``; it is kept here and dropped on output.
    """

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("unexpected OrderedDict state")
        object.__setattr__(self, "_pickle_state", state)


_SCALAR_TYPES = (str, bytes, int, float, complex, bool, type(None))


def _to_plain(obj: object, memo: dict[int, object] | None = None) -> Any:
    """Recursively convert unpickled stand-ins into plain objects.

    Raises
    ------
    pickle.UnpicklingError
        If an object is neither plain nor a known stand-in.
    """
    if memo is None:
        memo = {}
    if isinstance(obj, np.generic):  # before the scalar check: np.float64 is a float
        if isinstance(obj, np.void) or obj.dtype.hasobject:
            raise pickle.UnpicklingError("structured numpy scalars are not supported")
        return obj.item()
    if isinstance(obj, _SCALAR_TYPES):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject and not all(isinstance(v, str) for v in obj.flat):
            raise pickle.UnpicklingError("object arrays may only contain str")
        memo[key] = obj
        return obj
    if isinstance(obj, _NDArrayStandIn):
        if obj.array is None:
            raise pickle.UnpicklingError("ndarray without state")
        return _to_plain(obj.array, memo)
    if isinstance(obj, dict):  # also _PickledOrderedDict
        out_d: dict[Any, Any] = {}
        memo[key] = out_d
        for k, v in obj.items():
            out_d[_to_plain(k, memo)] = _to_plain(v, memo)
        return out_d
    if isinstance(obj, list):
        out_l: list[Any] = []
        memo[key] = out_l
        out_l.extend(_to_plain(v, memo) for v in obj)
        return out_l
    if isinstance(obj, tuple):
        out_t = tuple(_to_plain(v, memo) for v in obj)
        memo[key] = out_t
        return out_t
    raise pickle.UnpicklingError(
        f"unexpected object of type {type(obj).__name__} in the unpickled data"
    )


# ---------------------------------------------------------------------------
# torch zip checkpoints
# ---------------------------------------------------------------------------

# torch storage class name -> numpy type code (byte order added from the file).
_TORCH_STORAGES: dict[str, str] = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",  # widened to float32 after reading
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
    "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16",
    "UntypedStorage": "u1",
}


class _StorageType(_NoBuild):
    """Token for a ``torch.XxxStorage`` class named in a persistent id."""

    __slots__ = ("name", "code")

    def __init__(self, name: str, code: str) -> None:
        self.name = name
        self.code = code


class _Storage(_NoBuild):
    """A storage read from ``data/<key>``: a 1-D read-only numpy array."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _as_int(x: object, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise pickle.UnpicklingError(f"{what} must be an integer, got {x!r}")
    return int(x)


def _rebuild_tensor_v2(
    storage: object,
    storage_offset: object,
    size: object,
    stride: object,
    requires_grad: object = False,
    backward_hooks: object = None,
    metadata: object = None,
) -> np.ndarray:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: a strided numpy view, copied."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor storage must come from a persistent id")
    offset = _as_int(storage_offset, "storage offset")
    shape = _check_shape(size)
    if not isinstance(stride, (tuple, list)) or len(stride) != len(shape):
        raise pickle.UnpicklingError(f"stride {stride!r} does not match size {shape}")
    strides = tuple(_as_int(s, "stride") for s in stride)
    base = storage.array
    if offset < 0 or any(s < 0 for s in strides):
        raise pickle.UnpicklingError("negative storage offset or stride")
    if 0 in shape:
        return np.zeros(shape, dtype=base.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= base.size:
        raise pickle.UnpicklingError(
            f"tensor of size {shape}, stride {strides}, offset {offset} reaches past "
            f"its storage of {base.size} elements"
        )
    view = np.lib.stride_tricks.as_strided(
        base[offset:],
        shape=shape,
        strides=tuple(s * base.itemsize for s in strides),
        writeable=False,
    )
    return np.array(view, order="C", copy=True)


def _rebuild_parameter(
    data: object, requires_grad: object = False, backward_hooks: object = None
) -> object:
    """Stand-in for ``torch._utils._rebuild_parameter``: the parameter's data."""
    if not isinstance(data, np.ndarray):
        raise pickle.UnpicklingError("parameter data must be a tensor")
    return data


_TORCH_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): _PickledOrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _SafeCallable(
        "torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2
    ),
    ("torch._utils", "_rebuild_parameter"): _SafeCallable(
        "torch._utils._rebuild_parameter", _rebuild_parameter
    ),
    **{("torch", name): _StorageType(name, code) for name, code in _TORCH_STORAGES.items()},
    **_NUMPY_SCALAR_GLOBALS,
}

_STORAGE_KEY = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")


class _TorchUnpickler(pickle.Unpickler):
    """Restricted unpickler for ``data.pkl`` inside a torch zip checkpoint."""

    def __init__(
        self,
        file: io.BufferedIOBase,
        *,
        archive: zipfile.ZipFile,
        prefix: str,
        byteorder: str,
        path: str,
    ) -> None:
        super().__init__(file, encoding="utf-8")
        self._archive = archive
        self._prefix = prefix
        self._byteorder = "<" if byteorder == "little" else ">"
        self._path = path
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> object:
        try:
            return _TORCH_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"{module}.{name}", self._path, "rebuilding torch tensors"
            ) from None

    def persistent_load(self, pid: object) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError("persistent id without a torch storage type")
        if not isinstance(key, str) or not _STORAGE_KEY.match(key):
            raise pickle.UnpicklingError(f"invalid storage key {key!r:.80}")
        numel = _as_int(numel, "storage size")
        cached = self._storages.get(key)
        if cached is not None:
            return cached
        single_byte = stype.code in ("b1", "u1", "i1")
        dtype = np.dtype(stype.code if single_byte else self._byteorder + stype.code)
        record = f"{self._prefix}data/{key}"
        try:
            info = self._archive.getinfo(record)
        except KeyError:
            raise pickle.UnpicklingError(f"missing storage record {record!r}") from None
        if numel < 0 or info.file_size != numel * dtype.itemsize:
            raise pickle.UnpicklingError(
                f"storage record {record!r} holds {info.file_size} bytes, expected "
                f"{numel} x {dtype.itemsize}"
            )
        raw = self._archive.read(record)
        arr = np.frombuffer(raw, dtype=dtype, count=numel)
        if stype.name == "BFloat16Storage":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        else:
            arr = arr.astype(dtype.newbyteorder("="), copy=False)
        arr.flags.writeable = False
        storage = _Storage(arr)
        self._storages[key] = storage
        return storage


def _find_data_pkl(names: list[str]) -> str:
    """Return the archive prefix (``'<name>/'``) of the single ``data.pkl``."""
    candidates = [
        n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)
    ]
    if len(candidates) != 1:
        raise LookupError(
            "no data.pkl record" if not candidates else f"several data.pkl records {candidates}"
        )
    return candidates[0][: -len("data.pkl")]


def read_torch_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a torch zip checkpoint into plain Python and numpy objects.

    Nothing from torch is imported and ``torch.load`` / ``pickle.load`` are
    never called: ``data.pkl`` is unpickled by a restricted unpickler whose
    allow-list holds only what is needed to rebuild tensors and their
    containers (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
    ``torch._utils._rebuild_parameter``, the ``torch.XxxStorage`` types used
    in persistent ids) plus numpy scalar reconstruction (``numpy.dtype``,
    ``numpy[._]core.multiarray.scalar`` and ``_codecs.encode`` for protocol-2
    bytes), each replaced by a local stand-in.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.pt`` file written by ``torch.save`` (zip format).

    Returns
    -------
    dict
        The saved object with every tensor as a C-contiguous, writable
        :class:`numpy.ndarray` in native byte order, of the tensor's dtype
        (``bfloat16`` widened to ``float32``) and in torch's layout (e.g. a
        ``Linear`` weight is ``(out_features, in_features)``); ``OrderedDict``
        becomes ``dict`` and numpy scalars become Python scalars.

    Raises
    ------
    UnsafePickleError
        If ``data.pkl`` references any global outside the allow-list; raised
        before that global is resolved, so nothing is executed.
    ValueError
        If the file is not a zip archive (e.g. the legacy pre-1.6 format or
        random bytes), is truncated or corrupt, lacks a single ``data.pkl``,
        has inconsistent storages, or does not contain a dict.  The message
        names the file.
    FileNotFoundError
        If ``path`` does not exist.
    """
    spath = os.fspath(path)
    with open(spath, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        if head == b"\x80\x02\x8a\x0a":  # PROTO 2, LONG1 <torch's magic number>
            _fail(
                spath,
                "is a legacy (pre-1.6, non-zip) torch file; only the zip checkpoint format is "
                "supported",
            )
        try:
            archive = zipfile.ZipFile(fh)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            EOFError,
            OSError,
            ValueError,
            struct.error,
        ) as exc:
            _fail(
                spath,
                "is not a readable torch zip checkpoint (truncated or corrupt zip archive?)",
                exc,
            )
        with archive:
            try:
                prefix = _find_data_pkl(archive.namelist())
            except LookupError as exc:
                _fail(spath, "is a zip archive but not a torch checkpoint", exc)
            try:
                byteorder = "little"
                if f"{prefix}byteorder" in archive.NameToInfo:
                    byteorder = (
                        archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
                    )
                if byteorder not in ("little", "big"):
                    _fail(spath, f"has an unknown storage byte order {byteorder!r}")
                data_pkl = archive.read(f"{prefix}data.pkl")
                unpickler = _TorchUnpickler(
                    io.BytesIO(data_pkl),
                    archive=archive,
                    prefix=prefix,
                    byteorder=byteorder,
                    path=spath,
                )
                obj = unpickler.load()
                result = _to_plain(obj)
            except (UnsafePickleError, _FileError):
                raise
            except (
                pickle.UnpicklingError,
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                ValueError,
                TypeError,
                KeyError,
                IndexError,
                AttributeError,
                OverflowError,
                struct.error,
                RecursionError,
                NotImplementedError,
                MemoryError,
            ) as exc:
                _fail(
                    spath,
                    "could not be read as a torch checkpoint (corrupt or unsupported content)",
                    exc,
                )
    if not isinstance(result, dict):
        _fail(spath, f"holds a {type(result).__name__}, expected a dict checkpoint")
    return result


# ---------------------------------------------------------------------------
# joblib-pickled sklearn StandardScaler
# ---------------------------------------------------------------------------


class _StandardScalerStandIn:
    """Stand-in for ``sklearn.preprocessing.StandardScaler``: keeps its state dict."""

    __slots__ = ("state",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        if args or kwargs:
            raise pickle.UnpicklingError("StandardScaler must be rebuilt without arguments")
        self.state: dict[str, Any] | None = None

    def __setstate__(self, state: object) -> None:
        if not hasattr(self, "state"):
            self.state = None
        if self.state is not None or not isinstance(state, dict):
            raise pickle.UnpicklingError("unexpected StandardScaler state")
        self.state = state


class _ArrayWrapperStandIn:
    """Stand-in for ``joblib.numpy_pickle.NumpyArrayWrapper`` (state only)."""

    __slots__ = ("state",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        if args or kwargs:
            raise pickle.UnpicklingError("NumpyArrayWrapper must be rebuilt without arguments")
        self.state: dict[str, Any] | None = None

    def __setstate__(self, state: object) -> None:
        if not hasattr(self, "state"):
            self.state = None
        if self.state is not None or not isinstance(state, dict):
            raise pickle.UnpicklingError("unexpected NumpyArrayWrapper state")
        self.state = state


_JOBLIB_GLOBALS: dict[tuple[str, str], object] = {
    ("sklearn.preprocessing._data", "StandardScaler"): _StandardScalerStandIn,
    ("sklearn.preprocessing.data", "StandardScaler"): _StandardScalerStandIn,
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): _ArrayWrapperStandIn,
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"): _ArrayWrapperStandIn,
    ("numpy", "memmap"): _NDARRAY,
    **_NUMPY_ARRAY_GLOBALS,
    **_NUMPY_SCALAR_GLOBALS,
}


class _OpcodeTable(dict):
    """Opcode dispatch table reporting unknown opcodes as ``UnpicklingError``."""

    def __missing__(self, key: int) -> NoReturn:
        raise pickle.UnpicklingError(f"invalid pickle opcode {bytes([key])!r}")


class _JoblibUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Restricted pure-Python unpickler understanding joblib's array layout.

    The pure-Python unpickler is used (as joblib itself does) because it reads
    the stream exactly, without read-ahead, so the raw array bytes that
    follow a ``NumpyArrayWrapper``'s ``BUILD`` can be read in place.
    """

    dispatch = _OpcodeTable(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: io.BytesIO, *, path: str, depth: int = 0) -> None:
        super().__init__(file)
        self._stream = file
        self._path = path
        self._depth = depth

    def find_class(self, module: str, name: str) -> object:
        try:
            return _JOBLIB_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"{module}.{name}", self._path, "a joblib-pickled sklearn StandardScaler"
            ) from None

    def _read_exact(self, n: int, what: str) -> bytes:
        frame = self._unframer.current_frame
        if frame is not None and frame.tell() != len(frame.getbuffer()):
            raise pickle.UnpicklingError(f"{what} starts inside a pickle frame")
        remaining = len(self._stream.getbuffer()) - self._stream.tell()
        if n > remaining:
            raise pickle.UnpicklingError(
                f"file truncated: {what} needs {n} bytes, {remaining} left"
            )
        return self._stream.read(n)

    def _read_wrapped_array(self, wrapper: _ArrayWrapperStandIn) -> np.ndarray:
        state = wrapper.state or {}
        if state.get("subclass") is not _NDARRAY:
            raise pickle.UnpicklingError("NumpyArrayWrapper of a non-ndarray class")
        shape = _check_shape(state.get("shape"))
        order = state.get("order")
        dtype = state.get("dtype")
        if order not in ("C", "F") or not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError("invalid NumpyArrayWrapper state")
        if dtype.hasobject:
            # joblib pickles object arrays as a separate pickle in the stream.
            if self._depth > 0:
                raise pickle.UnpicklingError("nested object arrays are not supported")
            self._read_exact(0, "object array")
            nested = _JoblibUnpickler(self._stream, path=self._path, depth=self._depth + 1)
            arr = _to_plain(nested.load())
            if not isinstance(arr, np.ndarray) or not arr.dtype.hasobject:
                raise pickle.UnpicklingError("object array payload is not an object ndarray")
            if arr.shape != shape:
                raise pickle.UnpicklingError("object array shape does not match its wrapper")
            return arr
        if "numpy_array_alignment_bytes" in state:
            (pad,) = self._read_exact(1, "array padding length")
            self._read_exact(pad, "array padding")
        count = math.prod(shape)
        raw = self._read_exact(count * dtype.itemsize, "array data")
        flat = np.frombuffer(raw, dtype=dtype, count=count)
        if order == "F":
            arr = flat.reshape(shape[::-1]).T
        else:
            arr = flat.reshape(shape)
        return _native(arr)

    def load_build(self) -> None:
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        top = self.stack[-1]
        if isinstance(top, _ArrayWrapperStandIn):
            self.stack[-1] = self._read_wrapped_array(top)
        elif isinstance(top, _NDArrayStandIn):
            self.stack[-1] = top.array

    dispatch[pickle.BUILD[0]] = load_build


def _joblib_bytes(path: str) -> bytes:
    """The (decompressed) pickle stream of a joblib file."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:1] == b"\x78":  # zlib (joblib compress=True / 'zlib')
        d = zlib.decompressobj()
        out = d.decompress(raw, _MAX_JOBLIB_BYTES + 1)
        if not d.eof:
            raise ValueError("truncated or oversized zlib stream")
        return _check_size(out)
    openers: list[tuple[bytes, Callable[[io.BytesIO], Any]]] = [
        (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f)),
        (b"BZh", lambda f: bz2.BZ2File(f)),
        (b"\xfd7zXZ", lambda f: lzma.LZMAFile(f, format=lzma.FORMAT_XZ)),
        (b"\x5d\x00\x00", lambda f: lzma.LZMAFile(f, format=lzma.FORMAT_ALONE)),
    ]
    for magic, opener in openers:
        if raw.startswith(magic):
            with opener(io.BytesIO(raw)) as f:
                return _check_size(f.read(_MAX_JOBLIB_BYTES + 1))
    if raw.startswith(b"\x04\x22\x4d\x18"):
        raise ValueError("is lz4-compressed, which is not supported")
    if raw.startswith(b"ZF"):
        raise ValueError("uses joblib's pre-0.10 compressed format, which is not supported")
    return raw


def _check_size(data: bytes) -> bytes:
    if len(data) > _MAX_JOBLIB_BYTES:
        raise ValueError("decompresses to more than 1 GiB")
    return data


def read_joblib_standard_scaler(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a joblib-pickled scikit-learn ``StandardScaler`` as a plain dict.

    Neither sklearn nor joblib is imported and ``joblib.load`` / ``pickle.load``
    are never called.  The restricted unpickler allows only the
    ``StandardScaler`` class (rebuilt as its state dict), joblib's
    ``NumpyArrayWrapper`` (array bytes read from the stream as joblib's format
    defines), numpy dtype / scalar / plain-ndarray reconstruction (both the
    ``numpy._core`` and ``numpy.core`` spellings) and ``_codecs.encode``.
    A scaler written with plain ``pickle.dump`` (arrays pickled by numpy
    itself) and joblib files compressed with zlib, gzip, bz2, xz or lzma are
    read too.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.pkl`` file written by ``joblib.dump(scaler, path)``.

    Returns
    -------
    dict
        ``mean``, ``scale``, ``var`` : float64 ndarray of shape
        ``(n_features_in,)``, or None where the scaler has none (e.g.
        ``with_std=False`` leaves ``scale`` None);
        ``n_features_in`` : int;
        ``n_samples_seen`` : int, or int64 ndarray when per-feature (a
        float / float64 ndarray only if the stored count is fractional, as
        with sample weights; recent scikit-learn stores whole counts as
        floats, which are returned as int);
        ``with_mean``, ``with_std`` : bool;
        ``feature_names_in`` : object ndarray of str (only if present);
        ``sklearn_version`` : str (only if recorded in the pickle).
        ``transform(x)`` is ``(x - mean) / scale`` with the missing parts
        skipped.

    Raises
    ------
    UnsafePickleError
        If the pickle references any global outside the allow-list; raised
        before that global is resolved, so nothing is executed.
    ValueError
        If the file is truncated, corrupt, compressed in an unsupported way,
        not a fitted ``StandardScaler``, or internally inconsistent.  The
        message names the file.
    FileNotFoundError
        If ``path`` does not exist.
    """
    spath = os.fspath(path)
    try:
        data = _joblib_bytes(spath)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        _fail(spath, "could not be read as a joblib file", exc)
    try:
        obj = _JoblibUnpickler(io.BytesIO(data), path=spath).load()
        if not isinstance(obj, _StandardScalerStandIn) or obj.state is None:
            raise pickle.UnpicklingError(
                f"the pickle holds {type(obj).__name__}, not a StandardScaler"
            )
        state = _to_plain(obj.state)
    except (UnsafePickleError, _FileError):
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        struct.error,
        RecursionError,
        MemoryError,
        NotImplementedError,
    ) as exc:
        _fail(spath, "could not be read as a joblib-pickled StandardScaler", exc)
    return _scaler_dict(state, spath)


def _scaler_dict(state: dict[str, Any], path: str) -> dict[str, Any]:
    """Validate a StandardScaler state dict and map it to the output dict."""
    if "n_features_in_" not in state or "n_samples_seen_" not in state:
        _fail(path, "holds a StandardScaler that is not fitted")
    n_features = state["n_features_in_"]
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        _fail(path, f"has an invalid n_features_in_ {n_features!r}")
    out: dict[str, Any] = {}
    for key in ("mean", "scale", "var"):
        value = state.get(key + "_")
        if value is not None:
            if not isinstance(value, np.ndarray) or value.shape != (n_features,):
                _fail(path, f"has a {key}_ that is not a ({n_features},) array")
            value = value.astype(np.float64)
        out[key] = value
    seen = state["n_samples_seen_"]
    if isinstance(seen, np.ndarray):
        if seen.shape != (n_features,) or seen.dtype.kind not in "iuf":
            _fail(path, "has an invalid per-feature n_samples_seen_")
        if seen.dtype.kind != "f" or np.all(seen == np.round(seen)):
            seen = seen.astype(np.int64)
    elif isinstance(seen, float) and seen >= 0 and float(seen).is_integer():
        seen = int(seen)  # recent scikit-learn stores a float count
    elif isinstance(seen, bool) or not isinstance(seen, (int, float)) or seen < 0:
        _fail(path, f"has an invalid n_samples_seen_ {seen!r}")
    out["n_features_in"] = n_features
    out["n_samples_seen"] = seen
    out["with_mean"] = bool(state.get("with_mean", True))
    out["with_std"] = bool(state.get("with_std", True))
    if "feature_names_in_" in state:
        names = state["feature_names_in_"]
        if not isinstance(names, np.ndarray) or names.shape != (n_features,):
            _fail(path, "has an invalid feature_names_in_")
        out["feature_names_in"] = names
    if isinstance(state.get("_sklearn_version"), str):
        out["sklearn_version"] = state["_sklearn_version"]
    return out
