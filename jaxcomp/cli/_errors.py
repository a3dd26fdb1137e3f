"""How the ``jaxcomp`` command reports errors: a user's error in one line, a bug with its
traceback."""

from __future__ import annotations

import argparse
import errno
import sys

from ..errors import JaxcompError

__all__ = ["USER_ERRORS", "error_message", "fail", "run_handler"]

#: Errors that are the user's to fix: bad inputs (JaxcompError, and ValueError from validation)
#: and environment faults (missing or unreadable files, permissions, a full disk).  Anything
#: else (a bare TypeError, KeyError, AttributeError, ...) is a bug and keeps its traceback.
USER_ERRORS = (JaxcompError, ValueError, OSError)


def error_message(error: BaseException) -> str:
    """One line describing ``error`` for the command line."""
    if isinstance(error, OSError) and not isinstance(error, JaxcompError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        other = f" -> {error.filename2}" if getattr(error, "filename2", None) else ""
        hint = {
            errno.ENOSPC: " (the disk is full; free space or write elsewhere)",
            errno.EACCES: " (no permission; choose a directory you can write to)",
            errno.EROFS: " (read-only file system; choose a directory you can write to)",
            errno.EISDIR: " (a directory was given where a file is needed)",
        }.get(error.errno, "")
        return f"{error.strerror}{where}{other}{hint}"
    message = str(error)
    return " ".join(message.split()) or type(error).__name__


def fail(message: str) -> int:
    """Print ``jaxcomp: error: <message>`` to stderr and return the exit status 2."""
    print(f"jaxcomp: error: {message}", file=sys.stderr)
    return 2


def run_handler(args: argparse.Namespace) -> int:
    """Call ``args.func(args)``; print a user's error as one line and return status 2."""
    try:
        return args.func(args)
    except USER_ERRORS as error:
        return fail(error_message(error))
