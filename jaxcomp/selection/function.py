"""`SelectionFunction`: p_obs(theta) as an immutable, differentiable JAX pytree.

A selection function is the probability that a cluster with properties theta
enters the catalogue.  This object bundles an ensemble of MLPs (leading member
axis on every weight), the input standardisation and the domain policy.  It is
an :class:`equinox.Module`, so it can be passed into ``jax.jit``-compiled code,
differentiated with ``jax.grad`` and mapped with ``jax.vmap``; its weights are
traced arguments, never constants baked into a compiled program.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .._version import __version__
from ..errors import InputTypeError, JaxcompError, MissingColumnError
from .artefact import ArtefactError, read_artefact, write_artefact
from .evaluate import DEFAULT_CHUNK_SIZE, evaluate_in_chunks
from .inputs import OUT_OF_DOMAIN_POLICIES, InputSpec
from .network import NetworkConfig, abstract_network, apply_network

__all__ = ["SelectionFunction", "InputDomainError", "columns_to_array"]

CITATION = (
    "Tang et al. 2026, C-4: the Cluster Completeness Correction Calculator (arXiv:2604.05291); "
    "jaxcomp (this package)"
)


class InputDomainError(JaxcompError, ValueError):
    """Inputs outside the domain on which a selection function is valid."""


def _standardise(values, specs: tuple[InputSpec, ...], mean, scale, xp):
    """Feature ``(transform(x) - mean) / scale`` per input, in the dtype of ``values``.

    ``pow10`` inputs are computed as ``10**(x - log10 scale) - mean/scale``, which
    never overflows and keeps the relative precision of ``x``.
    """
    columns = []
    for index, spec in enumerate(specs):
        column = values[..., index]
        if spec.transform == "pow10":
            columns.append(
                xp.power(10.0, column - xp.log10(scale[index])) - mean[index] / scale[index]
            )
        else:
            columns.append((column - mean[index]) / scale[index])
    return xp.stack(columns, axis=-1)


def _flatten_weights(weights: nnx.State) -> dict:
    """Weight leaves keyed by dotted path, e.g. ``"hidden.0.kernel"``."""
    flat = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, Mapping):
            for key, child in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            flat[prefix] = node

    walk("", nnx.to_pure_dict(weights))
    return flat


def _weights_to_tensors(weights: nnx.State) -> dict[str, np.ndarray]:
    return {name: np.asarray(leaf) for name, leaf in _flatten_weights(weights).items()}


def _tensors_to_weights(
    abstract_weights: nnx.State, tensors: Mapping[str, np.ndarray]
) -> nnx.State:
    pure: dict = {}
    for name, value in tensors.items():
        node = pure
        keys = [int(part) if part.isdigit() else part for part in name.split(".")]
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = jnp.asarray(value)
    weights = jax.tree.map(lambda leaf: leaf, abstract_weights)
    nnx.replace_by_pure_dict(weights, pure)
    return weights


def columns_to_array(
    data, names: tuple[str, ...], units: Mapping[str, str] | None = None
) -> np.ndarray:
    """Stack named columns of a table into a float64 array ``(n, len(names))``.

    Parameters
    ----------
    data : astropy.table.Table, pandas.DataFrame, mapping of arrays, or numpy structured array
        The named columns.
    names : tuple of str
        Columns to take, in order.
    units : mapping, optional
        Expected astropy unit string per name; a column carrying a different,
        non-convertible unit is an error, a convertible one is converted.
    """
    import astropy.units as u

    available = _column_names(data)
    missing = [name for name in names if name not in available]
    if missing:
        raise MissingColumnError(
            f"missing input column(s) {missing}; this selection function needs {list(names)} "
            f"and the table has {sorted(available)}"
        )
    stacked = []
    for name in names:
        column = data[name]
        unit = getattr(column, "unit", None)
        values = np.asarray(getattr(column, "value", column))
        if np.ma.isMaskedArray(column) and np.ma.count_masked(column):
            raise ValueError(
                f"column {name!r} has {np.ma.count_masked(column)} masked values; "
                "drop or fill those rows before predicting"
            )
        expected = (units or {}).get(name)
        if unit is not None and expected is not None and str(unit) not in ("", "None"):
            given, wanted = u.Unit(unit), u.Unit(expected)
            if given != wanted:
                try:
                    values = (values * given).to_value(wanted)
                except (u.UnitConversionError, u.UnitTypeError, TypeError) as error:
                    raise ValueError(
                        f"column {name!r} has unit {given} but {wanted} is expected "
                        f"({error}); convert it first, e.g. log_mass = log10(mass / Msun)"
                    ) from error
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"column {name!r} is not numeric ({error})") from error
        if values.ndim != 1:
            raise ValueError(f"column {name!r} must be one-dimensional, got shape {values.shape}")
        stacked.append(values)
    lengths = {len(v) for v in stacked}
    if len(lengths) != 1:
        raise ValueError(f"input columns have different lengths: {sorted(lengths)}")
    return np.stack(stacked, axis=-1)


def _column_names(data) -> set[str]:
    if hasattr(data, "colnames"):
        return set(data.colnames)
    if hasattr(data, "columns"):
        return {str(c) for c in data.columns}
    if getattr(getattr(data, "dtype", None), "names", None):
        return set(data.dtype.names)
    if isinstance(data, Mapping):
        return {str(k) for k in data}
    raise TypeError(
        "expected an astropy Table, pandas DataFrame, mapping or structured array, got "
        f"{type(data).__name__}"
    )


class SelectionFunction(eqx.Module):
    """Probability p_obs(theta) that a cluster enters the catalogue.

    Call it on an array whose last axis follows :attr:`input_names`:
    ``sf(x)`` is the ensemble-mean probability, :meth:`logit` its logit,
    :meth:`spread` the standard deviation over ensemble members.  All three
    are pure and work under ``jit``, ``vmap`` and ``grad``.  For tables with
    named columns use :meth:`predict`, which validates names, units,
    finiteness and domain: **predict is the checked entry point**.  Build one
    with :func:`jaxcomp.train_selection_function`,
    :func:`jaxcomp.selection.import_c4` or :meth:`load`.

    The pure calls do not look at the values of ``x`` (NaN in, NaN out), so
    they cost nothing extra under ``jit``.  :meth:`with_checks` returns a copy
    whose pure calls also raise (inside ``jit`` too, via
    :func:`equinox.error_if`) on NaN or infinite inputs, and on inputs outside
    the domain when the policy is ``"error"``.  Non-numeric inputs (strings,
    objects) always raise a :class:`TypeError` naming the argument.

    Notes
    -----
    Inputs outside the training domain follow the artefact's policy
    (``header["out_of_domain"]``): ``"clip"`` clamps to the domain edge,
    ``"nan"`` and ``"error"`` return NaN from the pure call (``predict``
    raises for ``"error"``).
    """

    graphdef: nnx.GraphDef = eqx.field(static=True)
    weights: nnx.State
    feature_mean: jax.Array
    feature_scale: jax.Array
    domain_lower: jax.Array
    domain_upper: jax.Array
    input_specs: tuple[InputSpec, ...] = eqx.field(static=True)
    network_config: NetworkConfig = eqx.field(static=True)
    out_of_domain: str = eqx.field(static=True)
    metadata_json: str = eqx.field(static=True)
    checked: bool = eqx.field(static=True, default=False)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_weights(
        cls,
        *,
        input_specs: tuple[InputSpec, ...],
        mean: np.ndarray,
        scale: np.ndarray,
        network_config: NetworkConfig,
        weights: nnx.State,
        out_of_domain: str = "clip",
        metadata: Mapping | None = None,
    ) -> SelectionFunction:
        """Assemble a selection function from its parts.

        ``weights`` must carry a leading ensemble-member axis on every leaf.
        ``mean`` and ``scale`` (float64) standardise the transformed inputs.
        """
        input_specs = tuple(input_specs)
        mean = np.asarray(mean, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64)
        n_inputs = len(input_specs)
        if mean.shape != (n_inputs,) or scale.shape != (n_inputs,):
            raise ValueError(
                f"standardisation has shapes {mean.shape}/{scale.shape}, expected ({n_inputs},)"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError("standardisation mean must be finite and scale finite and positive")
        if network_config.n_inputs != n_inputs:
            raise ValueError(
                f"network takes {network_config.n_inputs} inputs, specs name {n_inputs}"
            )
        if out_of_domain not in OUT_OF_DOMAIN_POLICIES:
            raise ValueError(
                f"out_of_domain must be one of {OUT_OF_DOMAIN_POLICIES}, got {out_of_domain!r}"
            )
        graphdef, _ = abstract_network(network_config)
        return cls(
            graphdef=graphdef,
            weights=weights,
            feature_mean=jnp.asarray(mean, dtype=jnp.float32),
            feature_scale=jnp.asarray(scale, dtype=jnp.float32),
            domain_lower=jnp.asarray([s.domain[0] for s in input_specs], dtype=jnp.float32),
            domain_upper=jnp.asarray([s.domain[1] for s in input_specs], dtype=jnp.float32),
            input_specs=input_specs,
            network_config=network_config,
            out_of_domain=out_of_domain,
            metadata_json=json.dumps(
                {
                    "standardisation": {"mean": mean.tolist(), "scale": scale.tolist()},
                    **dict(metadata or {}),
                },
                sort_keys=True,
            ),
        )

    # ------------------------------------------------------------- properties
    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the inputs, in the order of the last axis of ``x``."""
        return tuple(spec.name for spec in self.input_specs)

    @property
    def input_units(self) -> dict[str, str]:
        """Unit of each input (astropy strings)."""
        return {spec.name: spec.unit for spec in self.input_specs}

    @property
    def domain(self) -> dict[str, tuple[float, float]]:
        """Valid ``(lower, upper)`` range of each input."""
        return {spec.name: spec.domain for spec in self.input_specs}

    @property
    def n_members(self) -> int:
        """Number of ensemble members."""
        return int(jax.tree.leaves(self.weights)[0].shape[0])

    @property
    def metadata(self) -> dict:
        """Standardisation, training record, provenance and citation."""
        return json.loads(self.metadata_json)

    @property
    def header(self) -> dict:
        """The JSON header written by :meth:`save`."""
        metadata = self.metadata
        return {
            "jaxcomp_version": __version__,
            "inputs": [
                {**spec.to_json(), "standardisation": {"mean": m, "scale": s}}
                for spec, m, s in zip(
                    self.input_specs,
                    metadata["standardisation"]["mean"],
                    metadata["standardisation"]["scale"],
                )
            ],
            "out_of_domain": self.out_of_domain,
            "network": {**self.network_config.to_json(), "n_members": self.n_members},
            "ensemble": "probability = mean over members of sigmoid(logit); spread = their "
            "standard deviation",
            "citation": metadata.pop("citation", CITATION),
            **{k: v for k, v in metadata.items() if k != "standardisation"},
        }

    # ------------------------------------------------------------ pure calls
    def _check_last_axis(self, x: jax.Array) -> None:
        if x.ndim < 1 or x.shape[-1] != len(self.input_specs):
            raise ValueError(
                f"input has shape {x.shape}; its last axis must have {len(self.input_specs)} "
                f"entries in the order {self.input_names}"
            )

    def _as_input(self, x) -> jax.Array:
        """``x`` as a JAX array: refuse non-numeric input; in checked mode, NaN/inf and (policy
        ``"error"``) out-of-domain values raise, inside ``jit`` too."""
        dtype = x.dtype if isinstance(x, jax.Array) else np.asarray(x).dtype
        if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
            raise InputTypeError(
                f"SelectionFunction input x must be numbers (columns {self.input_names}), got an "
                "array of dtype "
                f"{dtype}; convert it with np.asarray(x, dtype=float), or pass a table to predict()"
            )
        x = jnp.asarray(x)
        self._check_last_axis(x)
        if self.checked:
            x = eqx.error_if(
                x,
                ~jnp.isfinite(x),
                f"SelectionFunction input x has NaN or infinite values "
                f"(columns {self.input_names}); remove or fill them",
            )
            if self.out_of_domain == "error":
                x = eqx.error_if(
                    x,
                    self._outside(x),
                    f"SelectionFunction input x lies outside the valid domain {self.domain}",
                )
        return x

    def with_checks(self, enabled: bool = True) -> SelectionFunction:
        """A copy whose pure calls check their inputs (NaN/inf; domain for policy ``"error"``).

        The checks use :func:`equinox.error_if`, so they work under ``jit``, ``vmap`` and
        ``grad`` and raise at run time; they cost a reduction over the inputs per call.
        """
        return dataclasses.replace(self, checked=bool(enabled))

    def features(self, x: jax.Array) -> jax.Array:
        """Standardised network features of ``x`` (after the domain policy)."""
        return self._features(self._as_input(x))

    def _features(self, x: jax.Array) -> jax.Array:
        if self.out_of_domain == "clip":
            x = jnp.clip(x, self.domain_lower, self.domain_upper)
        return _standardise(x, self.input_specs, self.feature_mean, self.feature_scale, jnp)

    def _outside(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        return jnp.any((x < self.domain_lower) | (x > self.domain_upper), axis=-1)

    def _mask_domain(self, x: jax.Array, value: jax.Array) -> jax.Array:
        if self.out_of_domain == "clip":
            return value
        return jnp.where(self._outside(x), jnp.nan, value)

    def member_logits_from_features(self, features: jax.Array) -> jax.Array:
        """Logits of every member, shape ``(n_members, ...)``, for standardised features."""
        return jax.vmap(lambda w: apply_network(self.graphdef, w, features))(self.weights)

    def member_logits(self, x: jax.Array) -> jax.Array:
        """Logit of every ensemble member, shape ``(n_members, ...)``."""
        x = self._as_input(x)
        return self._mask_domain(x, self.member_logits_from_features(self._features(x)))

    def logit(self, x: jax.Array) -> jax.Array:
        """Logit of the ensemble-mean probability, ``log p - log(1 - p)``."""
        logits = self.member_logits(x)
        if logits.shape[0] == 1:
            return logits[0]
        log_k = math.log(logits.shape[0])
        log_p = jax.nn.logsumexp(jax.nn.log_sigmoid(logits), axis=0) - log_k
        log_q = jax.nn.logsumexp(jax.nn.log_sigmoid(-logits), axis=0) - log_k
        return log_p - log_q

    def log_p_obs(self, x: jax.Array) -> jax.Array:
        """Natural log of the ensemble-mean probability (stable for tiny p)."""
        logits = self.member_logits(x)
        return jax.nn.logsumexp(jax.nn.log_sigmoid(logits), axis=0) - math.log(logits.shape[0])

    def __call__(self, x: jax.Array) -> jax.Array:
        """Ensemble-mean probability p_obs for ``x`` of shape ``(..., n_inputs)``."""
        return jnp.mean(jax.nn.sigmoid(self.member_logits(x)), axis=0)

    def spread(self, x: jax.Array) -> jax.Array:
        """Standard deviation of p_obs over ensemble members (0 for one member)."""
        return jnp.std(jax.nn.sigmoid(self.member_logits(x)), axis=0)

    # ------------------------------------------------------- validating call
    def _mean_and_spread_from_features(self, features: jax.Array) -> jax.Array:
        probabilities = jax.nn.sigmoid(self.member_logits_from_features(features))
        return jnp.stack([probabilities.mean(axis=0), probabilities.std(axis=0)], axis=-1)

    def validate(self, data, *, out_of_domain: str | None = None) -> np.ndarray:
        """Named columns to a checked float64 array ``(n, n_inputs)``.

        Checks names, units, numeric type, finiteness and domain (with the
        artefact's policy, or ``out_of_domain`` if given); returns the values
        after clipping where the policy is ``"clip"``.
        """
        policy = out_of_domain or self.out_of_domain
        if policy not in OUT_OF_DOMAIN_POLICIES:
            raise ValueError(
                f"out_of_domain must be one of {OUT_OF_DOMAIN_POLICIES}, got {policy!r}"
            )
        values = columns_to_array(data, self.input_names, self.input_units)
        if values.shape[0] == 0:
            raise ValueError("the table has no rows")
        bad = ~np.isfinite(values)
        if bad.any():
            rows, cols = np.nonzero(bad)
            names = sorted({self.input_names[c] for c in cols})
            raise ValueError(
                f"{len(set(rows))} row(s) have NaN or infinite values in {names} "
                f"(first row {rows[0]}); remove or fill them before predicting"
            )
        lower = np.array([s.domain[0] for s in self.input_specs])
        upper = np.array([s.domain[1] for s in self.input_specs])
        outside = (values < lower) | (values > upper)
        if outside.any():
            counts = {name: int(n) for name, n in zip(self.input_names, outside.sum(axis=0)) if n}
            message = (
                f"{int(outside.any(axis=1).sum())} row(s) lie outside the valid domain "
                f"({counts}; domain {self.domain})"
            )
            if policy == "error":
                raise InputDomainError(
                    message + "; restrict the inputs, or pass out_of_domain='clip' or 'nan'"
                )
            if policy == "clip":
                if out_of_domain is None:  # an explicit out_of_domain="clip" silences the warning
                    warnings.warn(
                        message + "; clipped to the domain edge (pass out_of_domain='clip' "
                        "to silence this)",
                        stacklevel=3,
                    )
                values = np.clip(values, lower, upper)
        return values

    def predict(
        self,
        data,
        *,
        out_of_domain: str | None = None,
        return_spread: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Validated p_obs for a table of named columns.

        Parameters
        ----------
        data : astropy.table.Table, pandas.DataFrame, mapping or structured array
            Must contain every name in :attr:`input_names` (extra columns are ignored).
        out_of_domain : {"clip", "nan", "error"}, optional
            Override the artefact's domain policy.
        return_spread : bool
            Also return the ensemble standard deviation.
        chunk_size : int
            Points per compiled chunk; memory is bounded for any table length.
        progress : bool
            Show a progress bar for long tables.

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            p_obs (and its spread) per row.

        Notes
        -----
        Standardisation is done in float64 on the host, so imported networks that
        standardise linear mass and age (C-4) are reproduced without float32
        rounding of the raw inputs.
        """
        policy = out_of_domain or self.out_of_domain
        values = self.validate(data, out_of_domain=out_of_domain)
        standardisation = self.metadata["standardisation"]
        mean, scale = np.asarray(standardisation["mean"]), np.asarray(standardisation["scale"])
        features = _standardise(values, self.input_specs, mean, scale, np).astype(np.float32)
        result = evaluate_in_chunks(
            SelectionFunction._mean_and_spread_from_features,
            self,
            features,
            chunk_size=chunk_size,
            progress=progress,
        )
        probability, spread = result[:, 0], result[:, 1]
        if policy == "nan":
            outside = np.any(
                (values < np.asarray(self.domain_lower)) | (values > np.asarray(self.domain_upper)),
                axis=1,
            )
            probability = np.where(outside, np.nan, probability)
            spread = np.where(outside, np.nan, spread)
        return (probability, spread) if return_spread else probability

    def with_out_of_domain(self, policy: str) -> SelectionFunction:
        """A copy with another domain policy (``"clip"``, ``"nan"`` or ``"error"``)."""
        if policy not in OUT_OF_DOMAIN_POLICIES:
            raise ValueError(
                f"out_of_domain must be one of {OUT_OF_DOMAIN_POLICIES}, got {policy!r}"
            )
        return dataclasses.replace(self, out_of_domain=policy)

    # ------------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the artefact (safetensors weights + JSON header) atomically."""
        return write_artefact(path, self.header, _weights_to_tensors(self.weights))

    @classmethod
    def load(cls, path: str | os.PathLike) -> SelectionFunction:
        """Load an artefact written by :meth:`save`, verifying its checksums.

        Nothing in the file is executed: weights are raw safetensors arrays and
        the header is JSON.
        """
        header, tensors = read_artefact(path)
        try:
            specs = tuple(InputSpec.from_json(record) for record in header["inputs"])
            mean = np.array(
                [r["standardisation"]["mean"] for r in header["inputs"]], dtype=np.float64
            )
            scale = np.array(
                [r["standardisation"]["scale"] for r in header["inputs"]], dtype=np.float64
            )
            network = header["network"]
            config = NetworkConfig(
                n_inputs=int(network["n_inputs"]),
                hidden_widths=tuple(network["hidden_widths"]),
                activation=network["activation"],
            )
            out_of_domain = header["out_of_domain"]
        except (KeyError, TypeError, ValueError) as error:
            raise ArtefactError(f"{path}: malformed jaxcomp header ({error!r})") from error
        _, abstract = abstract_network(config)
        expected = {name: tuple(leaf.shape) for name, leaf in _flatten_weights(abstract).items()}
        given = {name: tuple(value.shape[1:]) for name, value in tensors.items()}
        if given != expected:
            raise ArtefactError(
                f"{path}: weights {given} do not match the declared network {expected}"
            )
        reserved = {
            "inputs",
            "jaxcomp_version",
            "out_of_domain",
            "network",
            "format",
            "schema_version",
            "tensors_sha256",
            "header_sha256",
            "ensemble",
        }
        metadata = {key: value for key, value in header.items() if key not in reserved}
        return cls.from_weights(
            input_specs=specs,
            mean=mean,
            scale=scale,
            network_config=config,
            weights=_tensors_to_weights(abstract, tensors),
            out_of_domain=out_of_domain,
            metadata=metadata,
        )

    def __repr__(self) -> str:
        return (
            f"SelectionFunction(inputs={self.input_names}, members={self.n_members}, "
            f"hidden={self.network_config.hidden_widths}, out_of_domain={self.out_of_domain!r}"
            + (", checked=True)" if self.checked else ")")
        )
