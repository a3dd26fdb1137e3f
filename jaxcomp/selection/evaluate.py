"""Jitted, chunked evaluation of pure functions over millions of points.

Evaluating a network on a (500 x 500 x 50)-point grid in one call would hold
every hidden activation in memory at once (12.5 M points x 512 floats).  These
helpers cut the points into fixed-size chunks that ``jax.lax.map`` walks through
inside one compiled call, and cut very long inputs into a bounded number of such
calls, so memory stays bounded and only two shapes are ever compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

__all__ = ["evaluate_in_chunks", "DEFAULT_CHUNK_SIZE", "DEFAULT_POINTS_PER_CALL"]

#: Points per ``lax.map`` step; ~4096 keeps a 512-wide layer's activations in cache.
DEFAULT_CHUNK_SIZE = 4096
#: Points per compiled call; bounds host and device memory for any input length.
DEFAULT_POINTS_PER_CALL = 1 << 18


@partial(jax.jit, static_argnums=0)
def _map_over_chunks(function: Callable, model, chunks: jax.Array) -> jax.Array:
    return jax.lax.map(lambda chunk: function(model, chunk), chunks)


def evaluate_in_chunks(
    function: Callable,
    model,
    points: np.ndarray | jax.Array,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    points_per_call: int = DEFAULT_POINTS_PER_CALL,
    progress: bool = False,
) -> np.ndarray:
    """Evaluate ``function(model, points)`` in bounded memory.

    Parameters
    ----------
    function : callable
        Pure function ``(model, chunk) -> values`` mapping an array of shape
        ``(n, ...)`` to values with leading axis ``n``.  It must be hashable
        (a module-level function or a bound method of an immutable object);
        ``model`` is passed as a traced pytree argument, never baked in.
    model : pytree
        Weights or any pytree the function needs (e.g. a ``SelectionFunction``).
    points : array, shape (n, ...)
        Points along the leading axis.
    chunk_size : int
        Points per ``lax.map`` step.
    points_per_call : int
        Points per compiled call, rounded down to a multiple of ``chunk_size``.
    progress : bool
        Show a progress bar over compiled calls.

    Returns
    -------
    numpy.ndarray
        Values with leading axis ``n``.
    """
    points = np.asarray(points)
    n_points = points.shape[0]
    if n_points == 0:
        raise ValueError("no points to evaluate: the input has length 0 along its first axis")
    chunk_size = int(min(chunk_size, n_points))
    per_call = max(chunk_size, (int(points_per_call) // chunk_size) * chunk_size)
    # One padded length for every call when the input spans several calls.
    call_length = per_call if n_points > per_call else -(-n_points // chunk_size) * chunk_size
    outputs = []
    starts = range(0, n_points, call_length)
    for start in tqdm(starts, disable=not progress, desc="evaluating", unit="call"):
        block = points[start : start + call_length]
        n_block = block.shape[0]
        if n_block < call_length:
            pad = np.repeat(block[-1:], call_length - n_block, axis=0)
            block = np.concatenate([block, pad], axis=0)
        chunks = jnp.asarray(block).reshape((-1, chunk_size) + block.shape[1:])
        values = _map_over_chunks(function, model, chunks)
        values = np.asarray(values).reshape((call_length,) + values.shape[2:])
        outputs.append(values[:n_block])
    return np.concatenate(outputs, axis=0)
