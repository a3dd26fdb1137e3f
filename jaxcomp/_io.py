"""Small I/O helpers shared by every stage: atomic writes and table reading."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "array_digest",
    "atomic_savefig",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "read_table",
    "write_table",
]


def _read_umask() -> int:
    umask = os.umask(0o022)  # os.umask can only be read by setting it: restore at once
    os.umask(umask)
    return umask


#: Permissions of files written here: those an ordinary ``open()`` would give (read once, at
# import).
_FILE_MODE = 0o666 & ~_read_umask()


def _temporary_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    # mkstemp creates the file 0600; give the final file the permissions an ordinary open() would
    os.fchmod(handle, _FILE_MODE)
    os.close(handle)
    return Path(name)


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write bytes through a temporary file, fsync and an atomic rename.

    A crash mid-write leaves either the old file or nothing, never half a file.
    """
    path = Path(path)
    tmp = _temporary_beside(path)
    try:
        with open(tmp, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text through a temporary file and an atomic rename."""
    return atomic_write_bytes(path, text.encode())


def atomic_savefig(figure, path: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = _temporary_beside(path)
    try:
        figure.savefig(
            tmp, format=path.suffix.lstrip(".") or "png", dpi=kwargs.pop("dpi", 120), **kwargs
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(figure)
    return path


def read_table(path: str | os.PathLike):
    """Read a table (Parquet, FITS, ECSV, CSV) into an astropy Table.

    Parquet is read with pyarrow (no code execution); FITS and ECSV with astropy.
    """
    from astropy.table import Table

    from .errors import InputError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    if path.is_dir():
        raise InputError(
            f"{path} is a directory; give a table file (.parquet, .fits, .ecsv or .csv)"
        )
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            _refuse_duplicate_columns(path, pq.read_schema(path).names)
            return Table.from_pandas(pq.read_table(path).to_pandas())
        if suffix in (".fits", ".fit", ".fits.gz"):
            _refuse_duplicate_columns(path, _fits_column_names(path))
            return Table.read(path, format="fits")
        if suffix == ".ecsv":
            return Table.read(path, format="ascii.ecsv")
        if suffix in (".csv", ".txt"):
            _refuse_duplicate_columns(path, _csv_column_names(path))
            return Table.read(path, format="ascii.csv")
    except InputError:
        raise
    except Exception as error:  # the readers raise many types; name the file
        raise InputError(f"could not read table {path}: {error}") from error
    raise ValueError(
        f"unknown table format {path.suffix!r} for {path}; use .parquet, .fits, .ecsv or .csv"
    )


def _refuse_duplicate_columns(path: Path, names) -> None:
    """A table whose header names a column twice is ambiguous: refuse it rather than pick one."""
    from .errors import InputError

    seen, repeated = set(), []
    for name in (str(n).strip() for n in names):
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if repeated:
        raise InputError(
            f"table {path} has duplicated column name(s) {', '.join(repeated)}; "
            "rename or drop the extra column(s) so that each name is used once"
        )


def _csv_column_names(path: Path) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            if line.strip() and not line.lstrip().startswith("#"):
                return next(csv.reader([line]))
    return []


def _fits_column_names(path: Path) -> list[str]:
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdus:
        for hdu in hdus:
            if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
                return [
                    hdu.header.get(f"TTYPE{i}", "")
                    for i in range(1, hdu.header.get("TFIELDS", 0) + 1)
                ]
    return []


def write_table(table, path: str | os.PathLike) -> Path:
    """Write an astropy Table atomically; the format follows the file suffix."""
    path = Path(path)
    tmp = _temporary_beside(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            frame = table.to_pandas() if hasattr(table, "to_pandas") else table
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
            meta = dict(arrow.schema.metadata or {})
            meta[b"jaxcomp"] = json.dumps(
                dict(getattr(table, "meta", {}) or {}), default=str
            ).encode()
            pq.write_table(arrow.replace_schema_metadata(meta), tmp)
        elif suffix in (".fits", ".fit"):
            table.write(tmp, format="fits", overwrite=True)
        elif suffix == ".ecsv":
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        elif suffix == ".csv":
            table.write(tmp, format="ascii.csv", overwrite=True)
        else:
            raise ValueError(
                f"unknown table format {path.suffix!r}; use .parquet, .fits, .ecsv or .csv"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def array_digest(*arrays: np.ndarray) -> str:
    """SHA-256 over arrays' dtypes, shapes and bytes (a content hash of data)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str(array.dtype).encode())
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike, *, limit: int | None = None) -> str:
    """SHA-256 of a file's bytes (of its first ``limit`` bytes if given), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    remaining = limit
    with open(path, "rb") as stream:
        while remaining is None or remaining > 0:
            block = stream.read(1 << 20 if remaining is None else min(1 << 20, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest.hexdigest()


def save_inference_data(idata, directory: str | os.PathLike, stem: str = "idata") -> dict:
    """Write an ArviZ InferenceData as ``<stem>.nc`` (netCDF), else as ``<stem>.json``.

    Both via a temporary file and a rename.  netCDF needs a back end (netCDF4, h5netcdf or
    scipy); without one (or with an attribute netCDF cannot hold) the ArviZ JSON form is
    written instead.

    Returns
    -------
    dict
        ``file`` (the name written, or None), ``format`` (``"netcdf"`` or ``"arviz-json"``)
        and the errors met (``netcdf_error``, ``json_error``).
    """
    directory = Path(directory)
    tmp = directory / f".{stem}.tmp.nc"
    try:
        idata.to_netcdf(str(tmp))
        os.replace(tmp, directory / f"{stem}.nc")
        return {"file": f"{stem}.nc", "format": "netcdf"}
    except Exception as error:  # no netCDF back end or an unwritable attribute
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
    finally:
        tmp.unlink(missing_ok=True)
    tmp_json = directory / f".{stem}.tmp.json"
    try:
        idata.to_json(str(tmp_json))
        os.replace(tmp_json, directory / f"{stem}.json")
        return {"file": f"{stem}.json", "format": "arviz-json", "netcdf_error": reason}
    except Exception as error:
        return {"file": None, "netcdf_error": reason, "json_error": str(error).splitlines()[0]}
    finally:
        tmp_json.unlink(missing_ok=True)
