"""The values of a run configuration: :class:`ConfigError`, the conversion of TOML values to a
section's field types (:func:`_coerce`), the check helper that names the key
(:func:`_require`), and the writing of resolved values back as plain data and TOML."""

from __future__ import annotations

import json
import typing

from ..errors import JaxcompError

__all__ = ["ConfigError"]


class ConfigError(JaxcompError, ValueError):
    """A configuration that cannot run; the message names the offending key."""


def _coerce(section: str, key: str, value, hint):
    where = f"[{section}] {key}"
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if origin is typing.Literal:
        options = typing.get_args(hint)
        if value not in options:
            listed = (
                " or ".join(repr(o) for o in options)
                if len(options) <= 2
                else "one of " + ", ".join(repr(o) for o in options)
            )
            raise ConfigError(f"{where} must be {listed}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(section, f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(
            _coerce(section, f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args))
        )
    raise TypeError(f"unsupported configuration type {hint} for {where}")  # pragma: no cover


def _require(condition: bool, section: str, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"[{section}] {key} {message}")


def _parse_size(text: str):
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")  # pragma: no cover
