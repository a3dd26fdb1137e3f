"""Training selection functions on artificial-cluster-test labels.

The recipe follows the paper (Tang et al. 2026, section 3.3 and appendix D)
and fixes its pitfalls:

* unweighted binary cross-entropy on logits, so outputs stay calibrated
  probabilities (no class re-weighting);
* the train / validation / test split is by injected-cluster identity, so all
  repeats of one cluster fall on one side, and is stratified by label;
* inputs are the log quantities (``log_mass``, ``log_age``), standardised with
  training-split statistics stored inside the model;
* AdamW with linear warm-up over the first 10% of steps then cosine decay,
  batch 4096, best epoch chosen on validation loss, and a grid search over the
  peak learning rate and weight decay chosen by validation loss;
* an ensemble of members trained from different seeds gives a mean and a spread;
  with ``ensemble_resampling="bootstrap"`` every member is also trained on a
  bootstrap resample of the training clusters (all repeats of a cluster drawn
  together), so the spread measures the finite-campaign uncertainty of p_obs
  (Efron & Tibshirani 1993, ch. 6; bagging, Breiman 1996), not only the
  optimiser's.

One epoch is a single compiled ``lax.scan`` over mini-batches; the learning rate
and weight decay are traced values, so the whole grid search compiles once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from .._io import array_digest
from .._version import __version__
from ..errors import MissingColumnError
from .calibration import (
    CalibrationReport,
    calibration_report,
    ensemble_coverage,
    member_probabilities,
)
from .function import SelectionFunction, columns_to_array
from .inputs import OUT_OF_DOMAIN_POLICIES, default_input_spec, resolve_inputs
from .network import NetworkConfig, apply_network, init_network

__all__ = [
    "ENSEMBLE_RESAMPLING",
    "LABEL_DEFINITION",
    "PAPER_LEARNING_RATES",
    "PAPER_WEIGHT_DECAYS",
    "LabelSet",
    "TrainConfig",
    "TrainingHistory",
    "TrainingResult",
    "bootstrap_rows",
    "plot_loss_curves",
    "prepare_labels",
    "split_by_group",
    "train_selection_function",
]

#: Appendix D grid of peak learning rates.
PAPER_LEARNING_RATES = (5e-3, 1e-2, 5e-2, 1e-1)
#: Appendix D grid of AdamW weight decays.
PAPER_WEIGHT_DECAYS = (1e-3, 5e-3, 1e-2, 3e-2, 5e-2, 1e-1)

#: How the members of an ensemble differ (``TrainConfig.ensemble_resampling``).
ENSEMBLE_RESAMPLING = ("seed", "bootstrap")

LABEL_DEFINITION = (
    "C = 1 if the injected cluster has a source within 3 px of its injected position in the final "
    "catalogue (after detection, photometry, error, CI, n-band and M_V cuts) that was not present "
    "before injection; C = 0 otherwise"
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained selection function (with the labels).

    Parameters
    ----------
    hidden_widths : tuple of int
        Hidden-layer widths (default: the paper's 512, 512).
    epochs : int
        Passes over the training split per fit (paper: about 100).
    batch_size : int
        Mini-batch size (paper: 4096); reduced to the training-set size if larger.
    learning_rates, weight_decays : tuple of float
        Grid of AdamW peak learning rates and weight decays; every pair is fitted
        and the one with the lowest best-epoch validation loss is kept.
    warmup_fraction : float
        Fraction of steps with a linear warm-up from 0 to the peak learning rate,
        followed by cosine decay to 0.
    validation_fraction, test_fraction : float
        Fractions of injected clusters held out for model selection and for the
        calibration report.
    n_members : int
        Ensemble size; extra members reuse the chosen hyperparameters with new seeds.
    ensemble_resampling : {"seed", "bootstrap"}
        ``"seed"`` (default): member 0 is the grid search's best fit, the others
        differ only in their initialisation and shuffling seeds.  ``"bootstrap"``:
        after the grid search on the full training split, *all* ``n_members``
        members are trained with the chosen hyperparameters, each on its own
        bootstrap resample of the training clusters (drawn with replacement by
        ``group_column``, so all repeats of a cluster go in together, as often as
        the cluster is drawn) and its own seed; the validation split, used for
        early stopping, is not resampled.  The member spread then estimates the
        sampling uncertainty of p_obs from a campaign of this size.
    seed : int
        Seed of the split, initialisation and shuffling; recorded in the artefact.
    out_of_domain : str
        Domain policy written into the artefact (see :data:`OUT_OF_DOMAIN_POLICIES`).
    label_column, group_column : str
        Names of the binary label and of the injected-cluster identity.
    """

    hidden_widths: tuple[int, ...] = (512, 512)
    epochs: int = 100
    batch_size: int = 4096
    learning_rates: tuple[float, ...] = PAPER_LEARNING_RATES
    weight_decays: tuple[float, ...] = PAPER_WEIGHT_DECAYS
    warmup_fraction: float = 0.1
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    n_members: int = 1
    ensemble_resampling: Literal["seed", "bootstrap"] = "seed"
    seed: int = 0
    out_of_domain: str = "clip"
    label_column: str = "C"
    group_column: str = "cluster_id"

    def __post_init__(self) -> None:
        for name in ("hidden_widths", "learning_rates", "weight_decays"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.epochs < 1 or self.batch_size < 1 or self.n_members < 1:
            raise ValueError("epochs, batch_size and n_members must all be >= 1")
        if not self.learning_rates or not self.weight_decays:
            raise ValueError("the learning-rate and weight-decay grids must not be empty")
        if any(lr <= 0 for lr in self.learning_rates) or any(wd < 0 for wd in self.weight_decays):
            raise ValueError("learning rates must be > 0 and weight decays >= 0")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not (0 < self.validation_fraction < 1 and 0 < self.test_fraction < 1
                and self.validation_fraction + self.test_fraction < 0.9):
            raise ValueError(
                "validation_fraction and test_fraction must be in (0, 1) and sum below 0.9, got "
                f"{self.validation_fraction} and {self.test_fraction}"
            )
        if self.out_of_domain not in OUT_OF_DOMAIN_POLICIES:
            raise ValueError(f"out_of_domain must be one of {OUT_OF_DOMAIN_POLICIES}")
        if self.ensemble_resampling not in ENSEMBLE_RESAMPLING:
            raise ValueError(f"ensemble_resampling must be one of {ENSEMBLE_RESAMPLING}, got "
                             f"{self.ensemble_resampling!r}")
        if self.ensemble_resampling == "bootstrap" and self.n_members < 2:
            raise ValueError("ensemble_resampling='bootstrap' needs n_members >= 2 (a spread needs several "
                             "members; 5 or more is advisable)")

    def to_json(self) -> dict:
        record = dataclasses.asdict(self)
        if record["ensemble_resampling"] == "seed":  # the default: same record (and digest) as before
            del record["ensemble_resampling"]
        return record

    def digest(self, input_names: tuple[str, ...]) -> str:
        """SHA-256 of the configuration and the input names."""
        record = {"config": self.to_json(), "inputs": list(input_names)}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class LabelSet:
    """Validated training labels: inputs, labels and injected-cluster groups."""

    input_names: tuple[str, ...]
    inputs: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    @property
    def digest(self) -> str:
        """Content hash of the inputs, labels and groups."""
        return array_digest(self.inputs, self.labels, self.groups)


def prepare_labels(table, inputs="physical", *, label_column: str = "C",
                   group_column: str = "cluster_id") -> LabelSet:
    """Check a labels table and extract inputs, binary labels and groups.

    Parameters
    ----------
    table : astropy Table, pandas DataFrame or mapping of arrays
        Must hold the input columns and the label column; the group column
        (injected-cluster identity) is used when present, otherwise each row is
        its own cluster.
    inputs : str or sequence of str
        ``"physical"``, ``"photometric"``, ``"physical+r_eff_pc"`` or column names.
    """
    names = resolve_inputs(inputs)
    units = {name: default_input_spec(name).unit for name in names}
    values = columns_to_array(table, names, units)
    if values.shape[0] == 0:
        raise ValueError("the labels table is empty: nothing to train on")
    bad = ~np.isfinite(values)
    if bad.any():
        columns = sorted({names[c] for c in np.nonzero(bad)[1]})
        raise ValueError(
            f"{int(bad.any(axis=1).sum())} training row(s) have NaN or infinite inputs in {columns}; "
            "drop them first"
        )
    if label_column not in _names(table):
        raise MissingColumnError(f"labels table has no label column {label_column!r}; columns: {sorted(_names(table))}")
    raw = np.asarray(table[label_column])
    if raw.dtype == bool:
        labels = raw.astype(np.float32)
    else:
        numeric = np.asarray(raw, dtype=np.float64)
        if not np.all(np.isin(numeric, (0.0, 1.0))):
            offending = np.unique(numeric[~np.isin(numeric, (0.0, 1.0))])[:5]
            raise ValueError(
                f"label column {label_column!r} must contain only 0 and 1 (or booleans); found {offending}"
            )
        labels = numeric.astype(np.float32)
    if labels.min() == labels.max():
        raise ValueError(
            f"all {labels.size} labels are {int(labels[0])}: a selection function needs both recovered "
            "and lost clusters; widen the range of injected properties"
        )
    if group_column in _names(table):
        groups = np.unique(np.asarray(table[group_column]), return_inverse=True)[1].astype(np.int64)
    else:
        groups = np.arange(labels.size, dtype=np.int64)
    return LabelSet(names, values, labels, groups)


def _names(table) -> set[str]:
    if hasattr(table, "colnames"):
        return set(table.colnames)
    if hasattr(table, "columns"):
        return {str(c) for c in table.columns}
    return set(table)


def split_by_group(groups: np.ndarray, labels: np.ndarray, *, validation_fraction: float,
                   test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Split rows into train / validation / test by group, stratified by label.

    All rows of one group (one injected cluster re-injected several times) land
    in the same split.  Groups are stratified by whether their labels are all 0,
    all 1 or mixed, so each split keeps the recovered fraction.

    Returns
    -------
    dict
        Boolean row masks ``"train"``, ``"validation"``, ``"test"``.
    """
    groups = np.asarray(groups)
    n_groups = int(groups.max()) + 1
    group_mean = np.bincount(groups, weights=labels, minlength=n_groups) / np.maximum(
        np.bincount(groups, minlength=n_groups), 1
    )
    stratum = np.where(group_mean == 0, 0, np.where(group_mean == 1, 2, 1))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    assignment = np.zeros(n_groups, dtype=np.int8)  # 0 train, 1 validation, 2 test
    for value in (0, 1, 2):
        members = np.flatnonzero(stratum == value)
        rng.shuffle(members)
        n_test = int(round(test_fraction * members.size))
        n_val = int(round(validation_fraction * members.size))
        assignment[members[:n_test]] = 2
        assignment[members[n_test : n_test + n_val]] = 1
    row = assignment[groups]
    masks = {"train": row == 0, "validation": row == 1, "test": row == 2}
    for name, mask in masks.items():
        if mask.sum() == 0 or labels[mask].min() == labels[mask].max():
            raise ValueError(
                f"the {name} split has {int(mask.sum())} rows and not both label values; "
                "provide more labels (or more injected clusters)"
            )
    return masks


def bootstrap_rows(groups: np.ndarray, rows: np.ndarray, seed: int, member: int) -> np.ndarray:
    """Row indices of one cluster bootstrap resample of ``rows``.

    The distinct groups (injected clusters) among ``rows`` are drawn with
    replacement, as many as there are; every row of a drawn group is included
    once per draw, so the repeats of one cluster stay together and the resample
    has the same number of clusters (and, when all clusters have the same number
    of repeats, the same number of rows) as the original.

    Parameters
    ----------
    groups : ndarray of int, shape (n_rows_total,)
        Group (injected-cluster) index of every row of the labels table.
    rows : ndarray of int
        Indices of the rows to resample (e.g. the training split).
    seed, member : int
        The draw is a function of ``(seed, member)`` only.

    Returns
    -------
    ndarray of int
        Sorted row indices (with repetitions).
    """
    rows = np.asarray(rows)
    row_groups = np.asarray(groups)[rows]
    distinct = np.unique(row_groups)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(member), 0xB0075]))
    drawn = rng.choice(distinct, size=distinct.size, replace=True)
    multiplicity = np.bincount(drawn, minlength=int(row_groups.max()) + 1)
    return np.repeat(rows, multiplicity[row_groups])


# ----------------------------------------------------------------- optimisation
def _optimizer(peak_learning_rate, weight_decay, total_steps: int, warmup_steps: int):
    """AdamW with linear warm-up then cosine decay; hyperparameters may be traced."""
    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = step / max(warmup_steps, 1)
        progress = jnp.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)
        cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return peak_learning_rate * jnp.where(step < warmup_steps, warm, cosine)

    return optax.adamw(learning_rate=schedule, weight_decay=weight_decay)


def _loss(graphdef, weights, features, labels):
    logits = apply_network(graphdef, weights, features)
    return optax.sigmoid_binary_cross_entropy(logits, labels).mean()


@partial(jax.jit, static_argnames=("graphdef", "n_batches", "batch_size", "total_steps", "warmup_steps"),
         donate_argnames=("weights", "opt_state"))
def _train_epoch(graphdef, weights, opt_state, features, labels, key, peak_learning_rate, weight_decay,
                 *, n_batches, batch_size, total_steps, warmup_steps):
    optimizer = _optimizer(peak_learning_rate, weight_decay, total_steps, warmup_steps)
    order = jax.random.permutation(key, features.shape[0])[: n_batches * batch_size]

    def step(carry, batch_index):
        weights, opt_state = carry
        loss, grads = jax.value_and_grad(_loss, argnums=1)(
            graphdef, weights, features[batch_index], labels[batch_index]
        )
        updates, opt_state = optimizer.update(grads, opt_state, weights)
        return (optax.apply_updates(weights, updates), opt_state), loss

    (weights, opt_state), losses = jax.lax.scan(
        step, (weights, opt_state), order.reshape(n_batches, batch_size)
    )
    return weights, opt_state, losses.mean()


@partial(jax.jit, static_argnames=("graphdef",))
def _mean_loss(graphdef, weights, feature_chunks, label_chunks, weight_chunks):
    def chunk_loss(args):
        features, labels, row_weights = args
        logits = apply_network(graphdef, weights, features)
        return jnp.sum(row_weights * optax.sigmoid_binary_cross_entropy(logits, labels))

    total = jax.lax.map(chunk_loss, (feature_chunks, label_chunks, weight_chunks)).sum()
    return total / weight_chunks.sum()


def _chunked(features: np.ndarray, labels: np.ndarray, chunk: int = 4096):
    n = features.shape[0]
    chunk = min(chunk, n)
    padded = -(-n // chunk) * chunk
    pad = padded - n
    row_weights = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    features = np.concatenate([features, np.repeat(features[-1:], pad, axis=0)])
    labels = np.concatenate([labels, np.repeat(labels[-1:], pad)])
    shape = (padded // chunk, chunk)
    return (jnp.asarray(features.reshape(shape + features.shape[1:])),
            jnp.asarray(labels.reshape(shape)), jnp.asarray(row_weights.reshape(shape)))


@dataclass(frozen=True)
class TrainingHistory:
    """Loss curves of one fit (one grid point or one ensemble member).

    ``member`` is 0 for the grid-search fits (the first ensemble member with
    ``ensemble_resampling="seed"``); the bootstrap members are numbered 1 to
    ``n_members``.
    """

    learning_rate: float
    weight_decay: float
    member: int
    train_loss: np.ndarray
    validation_loss: np.ndarray
    best_epoch: int
    seconds: float

    @property
    def best_validation_loss(self) -> float:
        return float(self.validation_loss[self.best_epoch])

    def to_json(self) -> dict:
        return {
            "learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
            "member": self.member, "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss, "seconds": self.seconds,
        }


def _fit(graphdef, weights, train, validation, *, learning_rate, weight_decay, member, config,
         progress_bar) -> tuple[nnx.State, TrainingHistory]:
    features, labels = train
    batch_size = min(config.batch_size, features.shape[0])
    n_batches = features.shape[0] // batch_size
    total_steps = n_batches * config.epochs
    warmup_steps = int(round(config.warmup_fraction * total_steps))
    optimizer = _optimizer(learning_rate, weight_decay, total_steps, warmup_steps)
    opt_state = optimizer.init(weights)
    weights = jax.tree.map(jnp.copy, weights)
    features, labels = jnp.asarray(features), jnp.asarray(labels)
    shuffle_key = jax.random.fold_in(jax.random.key(config.seed), member)
    best_weights, best_loss, best_epoch = weights, np.inf, 0
    train_curve, validation_curve = [], []
    start = time.perf_counter()
    for epoch in range(config.epochs):
        weights, opt_state, train_loss = _train_epoch(
            graphdef, weights, opt_state, features, labels, jax.random.fold_in(shuffle_key, epoch),
            jnp.float32(learning_rate), jnp.float32(weight_decay),
            n_batches=n_batches, batch_size=batch_size, total_steps=total_steps, warmup_steps=warmup_steps,
        )
        validation_loss = float(_mean_loss(graphdef, weights, *validation))
        train_curve.append(float(train_loss))
        validation_curve.append(validation_loss)
        if validation_loss < best_loss:
            best_weights = jax.tree.map(jnp.copy, weights)
            best_loss, best_epoch = validation_loss, epoch
        progress_bar.update(1)
        progress_bar.set_postfix(lr=learning_rate, wd=weight_decay, val=f"{validation_loss:.4f}",
                                 best=f"{best_loss:.4f}")
    history = TrainingHistory(learning_rate, weight_decay, member, np.array(train_curve),
                              np.array(validation_curve), best_epoch, time.perf_counter() - start)
    return best_weights, history


@dataclass(frozen=True)
class TrainingResult:
    """A trained selection function with its training record."""

    selection_function: SelectionFunction
    config: TrainConfig
    histories: tuple[TrainingHistory, ...]
    best_learning_rate: float
    best_weight_decay: float
    test_calibration: CalibrationReport
    split: dict[str, np.ndarray] = field(repr=False)
    labels: LabelSet = field(repr=False)
    test_spread_coverage: dict | None = None

    def grid(self) -> list[dict]:
        """Best validation loss of each grid point (member 0)."""
        return [h.to_json() for h in self.histories if h.member == 0]


def train_selection_function(table, inputs="physical", config: TrainConfig | None = None, *,
                             progress: bool = True, provenance: dict | None = None) -> TrainingResult:
    """Train a (possibly ensembled) selection function on AST labels.

    Parameters
    ----------
    table : astropy Table, pandas DataFrame or mapping
        Labels table with the input columns, the binary label ``config.label_column``
        and, ideally, the injected-cluster identity ``config.group_column``.
    inputs : str or sequence of str
        ``"physical"`` (log_mass, log_age, av), ``"photometric"`` (five magnitudes),
        ``"physical+r_eff_pc"`` or any list of numeric column names.
    config : TrainConfig, optional
        Hyperparameters and seed; the defaults are the paper's.
    progress : bool
        Show a progress bar (epochs over the whole grid and ensemble).
    provenance : dict, optional
        Extra provenance recorded in the artefact (e.g. the AST campaign).

    Returns
    -------
    TrainingResult
        ``.selection_function`` is ready to use and to :meth:`~SelectionFunction.save`.
    """
    config = config or TrainConfig()
    labels = prepare_labels(table, inputs, label_column=config.label_column, group_column=config.group_column)
    split = split_by_group(labels.groups, labels.labels, validation_fraction=config.validation_fraction,
                           test_fraction=config.test_fraction, seed=config.seed)
    train_inputs = labels.inputs[split["train"]]
    specs = tuple(default_input_spec(name, labels.inputs[:, i]) for i, name in enumerate(labels.input_names))
    mean, scale = train_inputs.mean(axis=0), train_inputs.std(axis=0)
    if np.any(scale == 0):
        constant = [n for n, s in zip(labels.input_names, scale) if s == 0]
        raise ValueError(f"inputs {constant} are constant in the training split; drop them")

    def standardise(rows):
        return ((labels.inputs[rows] - mean) / scale).astype(np.float32)

    train = (standardise(split["train"]), labels.labels[split["train"]])
    validation = _chunked(standardise(split["validation"]), labels.labels[split["validation"]])
    network_config = NetworkConfig(len(specs), config.hidden_widths)

    grid = [(lr, wd) for lr in config.learning_rates for wd in config.weight_decays]
    bootstrap = config.ensemble_resampling == "bootstrap"
    extra_members = range(config.n_members) if bootstrap else range(1, config.n_members)
    total_epochs = config.epochs * (len(grid) + len(extra_members))
    train_rows = np.flatnonzero(split["train"])
    resampled_rows = []
    histories, fits = [], []
    with tqdm(total=total_epochs, disable=not progress, desc="training", unit="epoch") as bar:
        graphdef, initial = init_network(network_config, config.seed)
        for lr, wd in grid:
            weights, history = _fit(graphdef, initial, train, validation, learning_rate=lr, weight_decay=wd,
                                    member=0, config=config, progress_bar=bar)
            histories.append(history)
            fits.append(weights)
        best = int(np.argmin([h.best_validation_loss for h in histories]))
        best_lr, best_wd = grid[best]
        members = [] if bootstrap else [fits[best]]
        for member in extra_members:
            _, initial = init_network(network_config, config.seed + member)
            member_train = train
            if bootstrap:
                rows = bootstrap_rows(labels.groups, train_rows, config.seed, member)
                resampled_rows.append(rows)
                member_train = (((labels.inputs[rows] - mean) / scale).astype(np.float32), labels.labels[rows])
            weights, history = _fit(graphdef, initial, member_train, validation, learning_rate=best_lr,
                                    weight_decay=best_wd, member=member + int(bootstrap), config=config,
                                    progress_bar=bar)
            histories.append(history)
            members.append(weights)
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)

    def selection_function(metadata):
        return SelectionFunction.from_weights(
            input_specs=specs, mean=mean, scale=scale, network_config=network_config, weights=stacked,
            out_of_domain=config.out_of_domain, metadata=metadata,
        )

    unrecorded = selection_function({})
    test_rows = labels.inputs[split["test"]]
    test_p = unrecorded.predict(dict(zip(labels.input_names, test_rows.T)), out_of_domain="clip")
    test_report = calibration_report(test_p, labels.labels[split["test"]])
    spread_coverage = _test_spread_coverage(unrecorded, labels, split["test"], config.seed)
    chosen = [h for h in histories if h.member > 0 or (not bootstrap and (h.learning_rate, h.weight_decay)
                                                        == (best_lr, best_wd))]
    metadata = {
        "label": {"column": config.label_column, "definition": LABEL_DEFINITION},
        "training": {
            "trained_with_jaxcomp": __version__,
            "config": config.to_json(),
            "config_sha256": config.digest(labels.input_names),
            "labels_sha256": labels.digest,
            "n_rows": {k: int(v.sum()) for k, v in split.items()},
            "n_clusters": {k: int(np.unique(labels.groups[v]).size) for k, v in split.items()},
            "standardisation_from": "training split",
            "best_learning_rate": best_lr,
            "best_weight_decay": best_wd,
            "grid": [h.to_json() for h in histories if h.member == 0],
            "members": [h.to_json() for h in chosen],
            "ensemble_resampling": config.ensemble_resampling,
            "ensemble_resampling_definition": (
                "members trained from different seeds on the same training split" if not bootstrap else
                "every member trained on its own bootstrap resample of the training clusters (drawn with "
                "replacement by cluster identity, all repeats together; bootstrap_rows(groups, rows, seed, "
                "member)) and its own seed, after the grid search on the full training split"),
            **({"bootstrap_rows_sha256": [array_digest(r) for r in resampled_rows]} if bootstrap else {}),
            "test_metrics": test_report.summary(),
            "test_spread_coverage": spread_coverage,
        },
        "provenance": dict(provenance or {}),
    }
    return TrainingResult(selection_function(metadata), config, tuple(histories), best_lr, best_wd,
                          test_report, split, labels, spread_coverage)


def _test_spread_coverage(selection: SelectionFunction, labels: LabelSet, test: np.ndarray,
                          seed: int) -> dict | None:
    """:func:`ensemble_coverage` of the test split's repeated injections (None: one member or no repeats)."""
    if selection.n_members < 2:
        return None
    groups = labels.groups[test]
    distinct, first, repeats = np.unique(groups, return_index=True, return_counts=True)
    if repeats.max() < 2:
        return None
    detected = np.bincount(np.searchsorted(distinct, groups), weights=labels.labels[test]).astype(np.int64)
    rows = labels.inputs[test][first]
    member_p = member_probabilities(selection.with_out_of_domain("clip"), dict(zip(labels.input_names, rows.T)))
    return ensemble_coverage(member_p, n_detected=detected, n_repeats=repeats, seed=seed).summary()


def plot_loss_curves(result: TrainingResult, path: str | Path) -> Path:
    """Training and validation loss per epoch for every grid point and member."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .._io import atomic_savefig

    has_members = any(history.member for history in result.histories)
    if has_members:
        figure, (grid_axis, member_axis) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    else:  # a single network: no empty panel for ensemble members
        figure, grid_axis = plt.subplots(figsize=(6, 4))
        member_axis = None
    for history in result.histories:
        is_best = (history.learning_rate, history.weight_decay) == (result.best_learning_rate,
                                                                     result.best_weight_decay)
        axis = grid_axis if history.member == 0 else member_axis
        label = f"lr={history.learning_rate:g}, wd={history.weight_decay:g}"
        if history.member:
            label = f"member {history.member}"
        line, = axis.plot(history.validation_loss, lw=2 if is_best else 0.8, alpha=1 if is_best else 0.5,
                          label=label + (" (chosen)" if is_best and history.member == 0 else ""))
        axis.plot(history.train_loss, lw=0.8, ls=":", color=line.get_color())
        axis.plot(history.best_epoch, history.best_validation_loss, "o", color=line.get_color(), ms=3)
    grid_axis.set_title("grid search (solid: validation, dotted: training)")
    if member_axis is not None:
        member_axis.set_title("extra ensemble members")
    for axis in (a for a in (grid_axis, member_axis) if a is not None):
        axis.set_xlabel("epoch")
        axis.set_yscale("log")
        if axis.lines:
            axis.legend(fontsize=6, ncol=2)
    grid_axis.set_ylabel("binary cross-entropy")
    figure.tight_layout()
    return atomic_savefig(figure, path)
