"""Single-threaded BLAS for the small matrix products of rendering and photometry.

The cluster renderer multiplies many small matrices (tens by ~125); multi-threaded
OpenBLAS makes those several times slower, especially on busy machines (measured: 5x on
a loaded 2-core machine), and the campaign parallelises over frames anyway. With
``threadpoolctl`` installed, :func:`single_threaded_blas` limits BLAS to one thread
inside the block; without it, it does nothing (set ``OPENBLAS_NUM_THREADS=1``).
"""

from __future__ import annotations

import contextlib

__all__ = ["single_threaded_blas"]


def single_threaded_blas():
    """Context manager: BLAS (OpenBLAS, MKL, BLIS) limited to one thread inside the block."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
