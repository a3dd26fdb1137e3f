"""Checks of one field's selection grid and catalogue before the fields are stacked.

Used by :func:`~jaxcomp.demographics.multifield_model.stack_fields`, the ``jaxcomp fit --field``
command and the workflow's ``[[fields]]`` (which check every field before any grid is computed).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .likelihood import LikelihoodGrid
from .marginalise import SelectionGrid
from .models import THETA_COLUMNS, PopulationModel

__all__ = ["check_field", "check_field_names"]


def _check_grid(name: str, grid, model: PopulationModel) -> None:
    """The field's grid covers the model's supports and has its A_V bins."""
    if isinstance(grid, LikelihoodGrid):
        edges = np.asarray(grid.av_edges, np.float64)
        if edges.shape != (len(model.av_edges),) or not np.allclose(edges, model.av_edges):
            raise InputError(
                f"field {name!r}: its likelihood grid has A_V edges {edges.tolist()}, the "
                "model asks "
                f"for {list(model.av_edges)}; build it with LikelihoodGrid.build(grid, "
                "model.av_edges) or pass the SelectionGrid"
            )
        grid = grid.selection
    if not isinstance(grid, SelectionGrid):
        raise InputError(f"field {name!r}: expected a SelectionGrid, got {type(grid).__name__}")
    tolerance = 1e-4
    for axis, (low, high) in (
        ("log_mass", model.log_mass_range),
        ("log_age", model.log_age_range),
        ("av", (model.av_edges[0], model.av_edges[-1])),
    ):
        nodes = np.asarray(getattr(grid, axis), np.float64)
        if nodes[0] > low + tolerance or nodes[-1] < high - tolerance:
            raise InputError(
                f"field {name!r}: its selection grid covers {axis} [{nodes[0]:g}, "
                f"{nodes[-1]:g}] but "
                f"the model asks for [{low:g}, {high:g}]; rebuild the grid over the model's range "
                "(SelectionGrid.from_selection(..., log_mass=, log_age=, av=)) or narrow the model"
            )


def _check_inside_grid(name: str, theta: np.ndarray, grid) -> None:
    """Catalogue values inside the grid on which the field's p_obs is known."""
    selection = grid.selection if isinstance(grid, LikelihoodGrid) else grid
    for j, axis in enumerate(THETA_COLUMNS):
        nodes = np.asarray(getattr(selection, axis), np.float64)
        outside = (theta[:, j] < nodes[0] - 1e-6) | (theta[:, j] > nodes[-1] + 1e-6)
        if outside.any():
            raise InputError(
                f"field {name!r}: {int(outside.sum())} cluster(s) have {axis} outside its "
                "selection "
                f"grid [{nodes[0]:g}, {nodes[-1]:g}]; drop them or extend the grid"
            )


def check_field_names(names) -> list[str]:
    """The field names as strings; an :class:`InputError` for none or a repeated one."""
    names = [str(n) for n in names]
    if not names:
        raise InputError("no fields given")
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(
                f"field name {name!r} is given more than once; field names must be unique"
            )
        seen.add(name)
    return names


def check_field(name: str, grid, model: PopulationModel, theta=None) -> None:
    """One field's checks of :func:`stack_fields`, without preparing its data.

    The grid (SelectionGrid or LikelihoodGrid) must cover the model's mass, age and A_V
    ranges (and, for a LikelihoodGrid, have its A_V edges); the clusters ``theta``
    ((n, 3): log_mass [log10 Msun], log_age [log10 yr], av [mag]), if given, must be
    at least one and lie inside the grid.  Raises :class:`InputError` naming the field.
    ``grid`` may also be a physical selection function, whose grid is not computed yet:
    its domain is checked (on a 2 x 2 x 2 grid spanning the axes a full grid would).
    """
    if not isinstance(grid, (SelectionGrid, LikelihoodGrid)):
        grid = SelectionGrid.from_selection(grid, shape=(2, 2, 2))
    _check_grid(name, grid, model)
    if theta is not None:
        theta = np.asarray(theta, np.float64).reshape(-1, len(THETA_COLUMNS))
        if theta.shape[0] == 0:
            raise InputError(f"field {name!r} has no clusters; drop the field")
        _check_inside_grid(name, theta, grid)
