"""Argument types shared by the ``jaxcomp`` subcommands (each parser written once)."""

from __future__ import annotations

import argparse

__all__ = [
    "field_size",
    "float_list",
    "int_list",
    "non_negative_int",
    "optional_float",
    "positive_int",
]


def float_list(text: str) -> tuple[float, ...]:
    """``"1,2.5,3"`` -> ``(1.0, 2.5, 3.0)`` (empty items skipped)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def int_list(text: str) -> tuple[int, ...]:
    """``"512,512"`` -> ``(512, 512)`` (empty items skipped)."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def optional_float(text: str) -> float | None:
    """A number, or ``None`` for ``none`` / ``off`` / an empty string."""
    if text.lower() in ("none", "off", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def field_size(text: str) -> str | tuple[int, int]:
    """A mock field size: ``small``, ``legus`` or ``<ny>x<nx>`` (pixels)."""
    if text in ("small", "legus"):
        return text
    try:
        ny, nx = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be 'small', 'legus' or <ny>x<nx>, got {text!r}"
        ) from None
    return (ny, nx)
