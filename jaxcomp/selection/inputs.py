"""Named, unit-carrying inputs of a selection function.

A selection function is a function of a fixed, ordered set of named physical or
photometric quantities.  :class:`InputSpec` records, for each of them, the unit,
the transform applied before standardisation, and the domain on which the
function was trained.  Two standard sets are provided: the physical inputs
(``log_mass``, ``log_age``, ``av``) and the photometric inputs (five HST Vega
magnitudes of the LEGUS bands).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..survey import BANDS

__all__ = [
    "InputSpec",
    "TRANSFORMS",
    "OUT_OF_DOMAIN_POLICIES",
    "LEGUS_BANDS",
    "PHYSICAL_INPUTS",
    "PHOTOMETRIC_INPUTS",
    "default_input_spec",
    "resolve_inputs",
]

#: Transforms applied to an input before standardisation.  ``"identity"`` feeds
#: the value as given; ``"pow10"`` feeds ``10**value`` (used by imported networks
#: trained on linear mass [Msun] and linear age [yr]).
TRANSFORMS = ("identity", "pow10")

#: What happens to an input outside its domain: ``"clip"`` clamps it to the
#: domain edge (flat extrapolation), ``"nan"`` returns NaN, ``"error"`` makes the
#: validating :meth:`SelectionFunction.predict` raise (the pure call returns NaN).
OUT_OF_DOMAIN_POLICIES = ("clip", "nan", "error")

#: The five LEGUS NGC 628 bands, blue to red.
LEGUS_BANDS = BANDS

#: Paper library ranges (Tang et al. 2026, section 3.2): log M in [2, 8],
#: age in [1e5, 1.5e10] yr, A_V in [0, 3] mag.
_LOG_AGE_MAX = float(np.log10(1.5e10))


@dataclass(frozen=True)
class InputSpec:
    """One named input of a selection function.

    Parameters
    ----------
    name : str
        Column name, e.g. ``"log_mass"`` or ``"mag_F555W"``.
    unit : str
        Unit as an astropy-parsable string (``"dex(Msun)"``, ``"mag"``, ``"pc"``);
        the empty string means dimensionless.
    domain : tuple of float
        ``(lower, upper)`` range of values the function was trained on, in ``unit``.
    transform : str
        One of :data:`TRANSFORMS`, applied before standardisation.
    description : str
        Human-readable meaning.
    """

    name: str
    unit: str
    domain: tuple[float, float]
    transform: str = "identity"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"input name must be a non-empty string, got {self.name!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"input {self.name!r}: unknown transform {self.transform!r}; "
                f"choose one of {TRANSFORMS}"
            )
        lower, upper = (float(v) for v in self.domain)
        if not (np.isfinite(lower) and np.isfinite(upper) and lower < upper):
            raise ValueError(
                f"input {self.name!r}: domain must be finite with lower < upper, got "
                f"{self.domain!r}"
            )
        object.__setattr__(self, "domain", (lower, upper))

    def to_json(self) -> dict:
        """Return a JSON-serialisable dictionary."""
        return {
            "name": self.name,
            "unit": self.unit,
            "domain": list(self.domain),
            "transform": self.transform,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, record: dict) -> InputSpec:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=record["name"],
            unit=record["unit"],
            domain=tuple(record["domain"]),
            transform=record.get("transform", "identity"),
            description=record.get("description", ""),
        )


PHYSICAL_INPUTS: tuple[InputSpec, ...] = (
    InputSpec("log_mass", "dex(Msun)", (2.0, 8.0), description="log10 cluster mass [Msun]"),
    InputSpec("log_age", "dex(yr)", (5.0, _LOG_AGE_MAX), description="log10 cluster age [yr]"),
    InputSpec("av", "mag", (0.0, 3.0), description="V-band extinction A_V [mag]"),
)

PHOTOMETRIC_INPUTS: tuple[InputSpec, ...] = tuple(
    InputSpec(f"mag_{band}", "mag", (10.0, 40.0), description=f"apparent Vega magnitude in {band}")
    for band in LEGUS_BANDS
)

_KNOWN = {spec.name: spec for spec in PHYSICAL_INPUTS + PHOTOMETRIC_INPUTS}
_KNOWN_UNITS = {"r_eff_pc": ("pc", "effective (half-light) radius [pc]")}


def default_input_spec(name: str, values: np.ndarray | None = None) -> InputSpec:
    """Specification of a named input, with its domain taken from data if given.

    Standard names (the physical and photometric sets) keep their units; their
    domain becomes the range of ``values`` when values are given.  Any other
    numeric column is accepted as an extra input: its unit is inferred from a
    ``_pc``/``_mag`` style suffix where known and is dimensionless otherwise.
    """
    if name in _KNOWN:
        base = _KNOWN[name]
    else:
        unit, description = _KNOWN_UNITS.get(name, ("", f"user-supplied input {name}"))
        base = InputSpec(name, unit, (0.0, 1.0), description=description)
    if values is None:
        return base
    values = np.asarray(values, dtype=np.float64)
    lower, upper = float(np.min(values)), float(np.max(values))
    if lower == upper:
        raise ValueError(
            f"input {name!r} is constant ({lower}) in the training labels; "
            "a constant column carries no information: drop it from the inputs"
        )
    return InputSpec(name, base.unit, (lower, upper), base.transform, base.description)


def resolve_inputs(inputs: str | tuple | list) -> tuple[str, ...]:
    """Turn ``"physical"``, ``"photometric"`` or a list of names into input names.

    ``"physical"`` may be extended, e.g. ``"physical+r_eff_pc"``.
    """
    if isinstance(inputs, str):
        parts = [p.strip() for p in inputs.replace(",", "+").split("+") if p.strip()]
        names: list[str] = []
        for part in parts:
            if part in ("physical", "phys"):
                names += [s.name for s in PHYSICAL_INPUTS]
            elif part in ("photometric", "phot"):
                names += [s.name for s in PHOTOMETRIC_INPUTS]
            else:
                names.append(part)
    else:
        names = [str(n) for n in inputs]
    if not names:
        raise ValueError("no inputs given: use 'physical', 'photometric' or a list of column names")
    if len(set(names)) != len(names):
        raise ValueError(f"inputs contain duplicates: {names}")
    return tuple(names)
