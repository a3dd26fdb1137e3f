"""Inputs shared by the validation, completeness-map and figure modules.

Reading the tables they take (:func:`_to_pandas`, :func:`_require`, :func:`_binary`:
astropy/pandas/structured/mapping tables to a DataFrame, required columns, 0/1 labels),
adapting the selection functions they evaluate (:class:`CallableSelection`,
:func:`_as_predictor`, :func:`_predict`), and the names they share
(:data:`PIPELINE_STEPS`, the percentiles reported). Re-exported by
:mod:`jaxcomp.selection.validation`; see ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..ast.cuts import STAGES
from .inputs import LEGUS_BANDS, PHYSICAL_INPUTS

__all__ = ["PAPER_PERCENTILES", "PERCENTILES", "PIPELINE_STEPS", "CallableSelection"]

#: Percentiles of ``|p_hat - p_true|`` reported (paper section 4.1.2).
PERCENTILES: tuple[int, ...] = (50, 90, 95)

#: The paper's 50th/90th/95th percentiles of ``|p_hat - p_true|`` on its test set of
#: 5000 clusters x 100 repeats (Tang et al. 2026, section 4.1.2), for display.
PAPER_PERCENTILES: dict[str, dict[str, float]] = {
    "physical": {"p50": 0.007, "p90": 0.200, "p95": 0.356},
    "photometric": {"p50": 0.006, "p90": 0.177, "p95": 0.321},
}

#: The catalogue pipeline's steps, in order (the flag columns of a campaign's labels;

#: The catalogue pipeline's steps, in order (the flag columns of a campaign's labels):
#: :data:`jaxcomp.ast.cuts.STAGES` itself.  The flag of step k on an injected cluster
#: means "reached step k": it passed steps 0..k.
PIPELINE_STEPS: tuple[str, ...] = STAGES

_PHYSICAL_NAMES = tuple(spec.name for spec in PHYSICAL_INPUTS)
_MAGNITUDE_COLUMNS = tuple(f"mag_{band}" for band in LEGUS_BANDS)


# ======================================================================================
# small helpers


def _to_pandas(table, what: str = "table"):
    """An astropy Table, pandas DataFrame, structured array or mapping as a DataFrame."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True)
    if hasattr(table, "to_pandas") and hasattr(table, "colnames"):
        return table.to_pandas().reset_index(drop=True)
    if getattr(getattr(table, "dtype", None), "names", None):
        return pd.DataFrame.from_records(table)
    if isinstance(table, Mapping):
        return pd.DataFrame({str(k): np.asarray(v) for k, v in table.items()})
    raise TypeError(
        f"{what} must be an astropy Table, pandas DataFrame, structured array or mapping of "
        f"columns, got {type(table).__name__}"
    )


def _require(df, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(
            f"the {what} lacks column(s) {missing}; it has {sorted(map(str, df.columns))}"
        )


def _binary(values, name: str) -> np.ndarray:
    """0/1 (or boolean) column as int64; NaN or other values are errors."""
    raw = np.asarray(values)
    if raw.dtype == bool:
        return raw.astype(np.int64)
    try:
        numeric = raw.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"column {name!r} must hold 0/1 or booleans ({error})") from error
    if np.isnan(numeric).any():
        raise ValueError(
            f"column {name!r} has {int(np.isnan(numeric).sum())} NaN value(s); every injection "
            "needs a 0/1 outcome"
        )
    bad = ~np.isin(numeric, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"column {name!r} must hold only 0 and 1 (or booleans); found "
            f"{np.unique(numeric[bad])[:5]}"
        )
    return numeric.astype(np.int64)


# ======================================================================================
# predictors: a SelectionFunction, or a plain callable with named inputs


@dataclass(frozen=True)
class CallableSelection:
    """Wrap a plain function of named columns so it can be validated like a network.

    Parameters
    ----------
    function : callable
        Called as ``function(*columns)`` with one float64 array per name of
        ``input_names`` (in that order); must return probabilities in [0, 1] of the
        same length.  :class:`jaxcomp.selection.synthetic.LogisticSelection` is such a
        function of ``("log_mass", "log_age", "av")``.
    input_names : tuple of str
        Column names the function takes, in order.
    name : str
        Label used in reports and figures.

    Examples
    --------
    >>> from jaxcomp.selection.synthetic import LogisticSelection
    >>> truth = CallableSelection(LogisticSelection(), ("log_mass", "log_age", "av"), "truth")
    """

    function: Callable
    input_names: tuple[str, ...] = _PHYSICAL_NAMES
    name: str = "callable"

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"function must be callable, got {type(self.function).__name__}")
        names = tuple(str(n) for n in self.input_names)
        if not names:
            raise ValueError("input_names must name at least one column")
        object.__setattr__(self, "input_names", names)

    def predict(
        self, data, *, out_of_domain: str | None = None
    ) -> np.ndarray:  # same API as SelectionFunction.predict
        """Probabilities for a table holding the named columns."""
        from .function import columns_to_array

        values = columns_to_array(data, self.input_names)
        p = np.asarray(self.function(*values.T), dtype=np.float64).reshape(-1)
        if p.shape[0] != values.shape[0]:
            raise ValueError(
                f"{self.name}: the function returned {p.shape[0]} values for {values.shape[0]} rows"
            )
        return p


def _as_predictor(sf, input_names: Sequence[str] | None):
    """A SelectionFunction / object with ``predict`` and ``input_names``, or a wrapped callable."""
    if hasattr(sf, "predict") and hasattr(sf, "input_names"):
        if input_names is not None and tuple(input_names) != tuple(sf.input_names):
            raise ValueError(
                f"input_names {tuple(input_names)} differ from the selection function's "
                f"{tuple(sf.input_names)}; omit input_names for a SelectionFunction"
            )
        return sf
    if callable(sf):
        if input_names is None:
            raise ValueError(
                "a plain callable needs input_names (the columns it takes, in order), or wrap it "
                "in CallableSelection"
            )
        return CallableSelection(sf, tuple(input_names), getattr(sf, "__name__", type(sf).__name__))
    raise TypeError(
        f"expected a SelectionFunction, an object with predict() and input_names, or a callable; "
        f"got {type(sf).__name__}"
    )


def _predict(predictor, data, out_of_domain: str | None) -> np.ndarray:
    kwargs = {} if out_of_domain is None else {"out_of_domain": out_of_domain}
    p = np.asarray(predictor.predict(data, **kwargs), dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(p)):
        raise ValueError(
            f"the selection function returned {int((~np.isfinite(p)).sum())} non-finite "
            "probabilities (inputs outside its domain under the 'nan' policy?); pass "
            "out_of_domain='clip' or restrict the test clusters"
        )
    if np.any((p < 0) | (p > 1)):
        raise ValueError("the selection function returned probabilities outside [0, 1]")
    return p
