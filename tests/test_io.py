"""Atomic writes: no half-written files, ordinary permissions."""

import os
import stat

import pytest

from jaxcomp._io import atomic_write_bytes, atomic_write_text


def test_atomic_write_gives_ordinary_permissions_and_no_leftovers(tmp_path):
    reference = tmp_path / "reference.txt"
    reference.write_text("x")  # what a plain open() gives under this process's umask
    written = atomic_write_text(tmp_path / "out.txt", "hello")
    assert written.read_text() == "hello"
    assert stat.S_IMODE(os.stat(written).st_mode) == stat.S_IMODE(os.stat(reference).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "reference.txt"]


def test_failed_write_leaves_the_old_file(tmp_path):
    target = atomic_write_bytes(tmp_path / "a.bin", b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
