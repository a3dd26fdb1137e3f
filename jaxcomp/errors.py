"""The exceptions jaxcomp raises for bad inputs and faults.

Every error that is the user's to fix (a bad file, a bad option, a configuration that cannot
run) derives from :class:`JaxcompError`.  The classes also keep the built-in base they had
before (``ValueError``, ``KeyError``, ``TypeError``, ``RuntimeError``), so existing
``except ValueError`` code still catches them.  The ``jaxcomp`` command prints these as one
line, ``jaxcomp: error: <message>``, and exits with status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

__all__ = ["InputError", "InputTypeError", "JaxcompError", "MissingColumnError"]


class JaxcompError(Exception):
    """Base of every jaxcomp error that reports a bad input or an environment fault."""


class InputError(JaxcompError, ValueError):
    """An input file or table is unusable (wrong columns, units, values or content)."""


class InputTypeError(JaxcompError, TypeError):
    """An argument has the wrong type (e.g. strings where numbers are needed)."""


class MissingColumnError(JaxcompError, KeyError):
    """A table lacks a column that is needed (a ``KeyError`` whose message is readable)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
