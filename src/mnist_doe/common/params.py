"""Typed, checked view of params.yaml.

Every stage reads its knobs through `load()`, which refuses unknown keys, wrong types
and impossible values with one line naming the key, before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .words import plural

PARAMS_FILE = "params.yaml"
MAX_FILE_BYTES = 4 << 20  # params.yaml is a few kB; a file of megabytes is not a set of knobs
MAX_VALUES = 100_000  # scalars, lists and mappings after YAML aliases are expanded

FAMILIES = ("dense", "cnn", "lstm", "logreg", "mlp")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "nadam")
RECIPES = ("translate+rotate", "translate+zoom", "translate+zoom+rotate")
AUGMENT_MODES = ("static", "fresh")
FILL_MODES = ("nearest", "constant")
DUPLICATE_POLICIES = ("keep", "drop", "quarantine")
PROTOCOLS = ("holdout", "kfold", "test-only")
SCHEDULES = ("none", "step", "exponential", "multiply")
MONITORS = ("val_loss", "val_accuracy")  # what early stopping and the plateau rule watch
ENGINES = ("fast", "keras")  # the fast loop (engine/loop.py) or model.fit (engine/keras_fit.py)
# a cell name becomes part of a shell command (dvc.yaml: train's cmd) and of paths: nothing else
# no '.': DVC reads a cell's params as the path doe.cells.<name>, and a dot would split it
CELL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

# What a cell builds (engine/models.py's docstring describes every key)
IMAGE_SIDE = 28  # the MNIST family's images: a cnn is checked against it when params load
ACTIVATIONS = ("relu", "elu", "selu", "gelu", "swish", "tanh", "sigmoid", "leaky_relu", "linear")
PADDINGS = ("same", "valid")
POOLINGS = ("max", "average", "none")
TOPS = ("flatten", "global_average")
BN_POSITIONS = ("before", "after")
SCALINGS = ("unit", "centred")
SOLVERS = ("lbfgs", "newton-cg", "newton-cholesky", "sag", "saga")  # logreg
MLP_SOLVERS = ("sgd", "adam")  # the mlp's solver is its optimizer
MLP_SCHEDULES = ("none", "invscaling")
KERAS_NET_KEYS = ("activation", "activity_l1", "activity_l2", "batch_norm_position", "input_batch_norm", "input_scaling")
HEAD_KEYS = ("head", "head_dropout", "head_batch_norm")
CNN_KEYS = ("filter_growth", "convs_per_block", "kernel_size", "padding", "pooling", "pool_padding",
            "block_dropout", "top", "flatten_batch_norm")
FAMILY_KEYS = {
    "dense": KERAS_NET_KEYS,
    "cnn": KERAS_NET_KEYS + CNN_KEYS + HEAD_KEYS,
    "lstm": KERAS_NET_KEYS + HEAD_KEYS,
    "logreg": ("C", "solver"),
    "mlp": ("alpha", "power_t"),
}
# train knobs a baseline cannot honour: refused when a baseline cell sets them itself
KERAS_ONLY_KNOBS = ("dropout", "l1", "l2", "batch_norm", "mixed_precision", "decay_rate", "decay_epochs", "rho",
                    "decay_start", "plateau_patience", "plateau_monitor", "plateau_factor", "plateau_min_delta",
                    "plateau_cooldown", "plateau_min_lr", "engine")
BASELINE_REFUSES = {
    "mlp": KERAS_ONLY_KNOBS,
    "logreg": KERAS_ONLY_KNOBS + ("batch_size", "optimizer", "learning_rate", "patience", "schedule", "momentum",
                                  "nesterov", "beta_1", "beta_2", "epsilon", "monitor", "min_delta",
                                  "restore_best_weights"),
}
# optimizer knobs (None: the library's own default) and the optimizers that take them
OPTIMIZER_KNOBS = {
    "momentum": ("sgd", "rmsprop"), "nesterov": ("sgd",), "beta_1": ("adam", "nadam"),
    "beta_2": ("adam", "nadam"), "epsilon": ("adam", "nadam", "rmsprop"), "rho": ("rmsprop",),
}


class ParamsError(ValueError):
    """params.yaml holds a key, type or value the pipeline cannot run with."""


@dataclass(frozen=True)
class DataParams:
    train_csv: str = ""
    test_csv: str = ""
    test_labels_csv: str = ""
    labels: list = field(default_factory=list)
    kaggle_zip: str = ""  # Kaggle's competition zip (train.csv, test.csv, sample_submission.csv)
    sample_submission_csv: str = ""  # its ImageIds and column names shape each submission
    class_names: dict = field(default_factory=dict)  # label -> name shown in tables, plots, answers


def _check_data(data: DataParams) -> None:
    """The data section's own rules: which files go together, and what a label can be."""
    from ..readers.csvfile import normalise_label  # readers import common: import here, not above

    _require(
        not (data.kaggle_zip and (data.train_csv or data.test_csv)),
        "set 'data.kaggle_zip' or 'data.train_csv' and 'data.test_csv', not both",
    )
    _require(
        bool(data.test_csv) == bool(data.train_csv),
        "set both 'data.train_csv' and 'data.test_csv', or neither (the embedded digits)",
    )
    _require(
        not data.test_labels_csv or bool(data.test_csv or data.kaggle_zip),
        "'data.test_labels_csv' is set but 'data.test_csv' is empty",
    )
    _require(
        not data.sample_submission_csv or bool(data.test_csv or data.kaggle_zip),
        "'data.sample_submission_csv' is set but neither 'data.test_csv' nor 'data.kaggle_zip' is",
    )
    _require(isinstance(data.class_names, dict),
             f"'data.class_names' must be a mapping of label to name, got {data.class_names!r}")
    names: set[str] = set()
    for label, name in data.class_names.items():
        _require(isinstance(label, (str, int)) and not isinstance(label, bool) and normalise_label(label) != "",
                 f"'data.class_names' has the key {label!r}; each key is a label (a number or a string)")
        _require(isinstance(name, str) and name.strip() != "",
                 f"'data.class_names.{label}' must be a non-empty name, got {name!r}")
        _require(name not in names, f"'data.class_names' gives the name {name!r} to two labels")
        names.add(name)
    seen: dict[str, Any] = {}
    for value in data.labels:
        _require(
            isinstance(value, (str, int, float)) and not isinstance(value, bool),
            f"'data.labels' holds {value!r}; each label is a number or a string "
            "(not a list, a mapping, a boolean or an empty entry)",
        )
        _require(
            not isinstance(value, float) or abs(value) != float("inf") and value == value,
            f"'data.labels' holds {value!r}; a label is a finite number or a string",
        )
        key = normalise_label(value)
        _require(key != "", "'data.labels' holds an empty label")
        _require(
            key not in seen,
            f"'data.labels' lists {seen.get(key)!r} and {value!r}, which are one label ({key})",
        )
        seen[key] = value
    _require(
        len(seen) != 1,
        f"'data.labels' lists one label ({next(iter(seen), '')}); a classifier needs at least two",
    )


@dataclass(frozen=True)
class ValidateParams:
    min_class_rows: int = 5
    duplicates: str = "keep"


@dataclass(frozen=True)
class SplitParams:
    protocol: str = "holdout"
    val_fraction: float = 0.2
    folds: int = 5
    replicates: int = 1
    seed: int = 42


@dataclass(frozen=True)
class BudgetParams:
    max_runs: int = 50


@dataclass(frozen=True)
class AugmentParams:
    copies: int = 3
    recipes: list = field(default_factory=lambda: list(RECIPES))
    translate: float = 0.1
    rotate: float = 0.1
    zoom: float = 0.15
    seed: int = 42
    # static: the copies above, made once by the augment stage; fresh: the train stage draws
    # new transforms for every image every epoch, with ImageDataGenerator's ranges below
    mode: str = "static"
    rotation_range: float = 10.0  # degrees
    zoom_range: float = 0.1
    width_shift_range: float = 0.1  # fractions of the side
    height_shift_range: float = 0.1
    fill_mode: str = "nearest"  # or constant (0)
    horizontal_flip: bool = False  # half the images mirrored left to right, drawn anew every epoch (fresh only)


@dataclass(frozen=True)
class TrainParams:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    dropout: float = 0.2
    patience: int = 0
    seed: int = 42
    mixed_precision: bool = False
    schedule: str = "none"
    decay_rate: float = 0.5
    decay_epochs: int = 5
    l1: float = 0.0
    l2: float = 0.0
    batch_norm: bool = False
    # optimizer knobs; None (null) leaves the library's default (OPTIMIZER_KNOBS: which take which)
    momentum: float | None = field(default=None, metadata={"kind": float})
    nesterov: bool | None = field(default=None, metadata={"kind": bool})
    beta_1: float | None = field(default=None, metadata={"kind": float})
    beta_2: float | None = field(default=None, metadata={"kind": float})
    epsilon: float | None = field(default=None, metadata={"kind": float})
    rho: float | None = field(default=None, metadata={"kind": float})
    # early stopping (on when patience > 0), as Keras 3's EarlyStopping
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best_weights: bool = True  # the best epoch's weights at the end, stopped early or not
    # ReduceLROnPlateau (on when plateau_patience > 0)
    plateau_patience: int = 0
    plateau_monitor: str = "val_loss"
    plateau_factor: float = 0.1
    plateau_min_delta: float = 1e-4
    plateau_cooldown: int = 0
    plateau_min_lr: float = 0.0
    decay_start: int = 2  # schedule multiply: first epoch (from 1) at a multiplied rate
    engine: str = "fast"


REFIT_OFF, REFIT_BEST = "none", "best"  # refit.cell: no refit; evaluate's best cell
# names a cell may not have: the refit's outputs are models/refit/ and submissions/refit.csv
RESERVED_CELL_NAMES = ("refit",)


@dataclass(frozen=True)
class RefitParams:
    """After the cells are compared, one cell trained again on every labelled row (its fit
    and validation rows), for `epochs`, and submitted (the refit stage)."""

    cell: str = REFIT_OFF  # none, best or a cell's name
    # best: the cell's best epoch by its `monitor` in its validation run; or a whole number
    epochs: Any = field(default=REFIT_BEST, metadata={"kind": object})


@dataclass(frozen=True)
class ReportParams:
    target_overall: float = 0.96
    target_per_class: float = 0.90


@dataclass(frozen=True)
class Net:
    """What a cell builds, every key resolved to one value per layer (dense, lstm, mlp) or per
    convolution block (cnn), per head layer (head_*). engine/models.py's docstring describes
    each key; the baselines use nodes and C, solver, alpha, power_t only."""

    nodes: tuple = ()  # widths (dense, mlp), filters (cnn), units (lstm)
    activation: str = "relu"
    dropout: tuple = ()  # dense: a rate per layer (0: no Dropout layer)
    l1: float = 0.0  # kernel penalties, from the train knobs
    l2: float = 0.0
    activity_l1: float = 0.0
    activity_l2: float = 0.0
    batch_norm: tuple = ()  # dense: per layer; cnn: per block
    batch_norm_position: str = "before"
    input_batch_norm: bool = False
    input_scaling: str = "unit"
    convs_per_block: tuple = ()
    kernel_size: int = 3
    padding: str = "same"
    pooling: tuple = ()
    pool_padding: str = "same"
    block_dropout: tuple = ()
    top: str = "flatten"
    flatten_batch_norm: bool = False
    head: tuple = ()  # cnn, lstm: dense widths before the softmax
    head_dropout: tuple = ()
    head_batch_norm: tuple = ()
    C: float = 1.0  # logreg
    solver: str = "lbfgs"
    alpha: float = 1e-4  # mlp
    power_t: float = 0.5

    @property
    def whole_batches(self) -> bool:
        """Whether every batch must be computed whole, not in parts: batch normalisation's
        statistics and activity penalties (Keras averages them over the batch) are the batch's."""
        return bool(self.input_batch_norm or any(self.batch_norm) or self.flatten_batch_norm
                    or any(self.head_batch_norm) or self.activity_l1 or self.activity_l2)


@dataclass(frozen=True)
class Cell:
    """One design cell: a family, its depth and width, its training knobs and what it builds.

    `nodes` is as params.yaml gives it: one width, or a tuple of one per layer / block. `net`
    holds every architecture key resolved; a Cell made without one gets the net that its
    layers, nodes and train knobs describe. `train.dropout` and `train.batch_norm` hold the
    cell's single values; lists of one per layer are in `net` only."""

    name: str
    family: str
    layers: int
    nodes: int | tuple
    train: TrainParams
    net: Net | None = None

    def __post_init__(self):
        if self.net is None:
            spec = {"layers": self.layers, "nodes": self.nodes}
            object.__setattr__(self, "net", resolve_net(f"doe.cells.{self.name}", self.family, spec, self.train))


@dataclass(frozen=True)
class Params:
    data: DataParams
    validate: ValidateParams
    split: SplitParams
    augment: AugmentParams
    train: TrainParams
    cells: dict[str, Cell]
    report: ReportParams = field(default_factory=ReportParams)
    budget: BudgetParams = field(default_factory=BudgetParams)
    ensemble: int = 0  # doe.ensemble: the best k cells' probabilities averaged (all, when fewer; 0: none)
    refit: RefitParams = field(default_factory=RefitParams)

    @property
    def runs_per_cell(self) -> int:
        """Trainings of one cell: one per fold (k-fold) and per replicate seed."""
        folds = self.split.folds if self.split.protocol == "kfold" else 1
        return folds * self.split.replicates


def _typed(section: str, cls: type, raw: Any) -> Any:
    """Build dataclass `cls` from mapping `raw`, checking keys and types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{PARAMS_FILE}: '{section}' must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ParamsError(
            f"{PARAMS_FILE}: unknown key '{section}.{unknown[0]}' "
            f"(known: {', '.join(sorted(known))})"
        )
    values = {}
    for name, value in raw.items():
        if value is None and known[name].default is None:  # null: the library's default
            values[name] = None
            continue
        kind = known[name].metadata.get("kind") or (type(getattr(cls(), name)) if _has_default(cls) else None)
        values[name] = _check_type(f"{section}.{name}", value, kind)
    return cls(**values)


def _has_default(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in fields(cls)
    )


def _check_type(key: str, value: Any, kind: type | None) -> Any:
    if kind is None:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is bool and not isinstance(value, bool):
        raise ParamsError(f"{PARAMS_FILE}: '{key}' must be true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParamsError(f"{PARAMS_FILE}: '{key}' must be an integer, got {value!r}")
    if kind is float and not isinstance(value, float):
        raise ParamsError(f"{PARAMS_FILE}: '{key}' must be a number, got {value!r}")
    if kind is str and value is None:
        return ""
    if kind is str and not isinstance(value, str):
        raise ParamsError(f"{PARAMS_FILE}: '{key}' must be a string, got {value!r}")
    if kind is list and not isinstance(value, list):
        raise ParamsError(f"{PARAMS_FILE}: '{key}' must be a list, got {value!r}")
    return value


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ParamsError(f"{PARAMS_FILE}: {message}")


def _check_train(prefix: str, t: TrainParams) -> None:
    _require(t.epochs >= 1, f"'{prefix}.epochs' must be >= 1, got {t.epochs}")
    _require(t.batch_size >= 1, f"'{prefix}.batch_size' must be >= 1, got {t.batch_size}")
    _require(
        t.optimizer in OPTIMIZERS,
        f"'{prefix}.optimizer' is {t.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}",
    )
    _require(
        math.isfinite(t.learning_rate) and t.learning_rate > 0,
        f"'{prefix}.learning_rate' must be a finite number > 0, got {t.learning_rate}",
    )
    _require(0 <= t.dropout < 1, f"'{prefix}.dropout' must be in [0, 1), got {t.dropout}")
    _require(t.patience >= 0, f"'{prefix}.patience' must be >= 0, got {t.patience}")
    _require(
        t.schedule in SCHEDULES + MLP_SCHEDULES,
        f"'{prefix}.schedule' is {t.schedule!r}; choose one of {', '.join(dict.fromkeys(SCHEDULES + MLP_SCHEDULES))}",
    )
    _require(0 < t.decay_rate <= 1, f"'{prefix}.decay_rate' must be in (0, 1], got {t.decay_rate}")
    _require(t.decay_epochs >= 1, f"'{prefix}.decay_epochs' must be >= 1, got {t.decay_epochs}")
    _require(t.decay_start >= 1, f"'{prefix}.decay_start' must be >= 1 (epochs count from 1), got {t.decay_start}")
    for knob in ("monitor", "plateau_monitor"):
        value = getattr(t, knob)
        _require(value in MONITORS, f"'{prefix}.{knob}' is {value!r}; choose one of {', '.join(MONITORS)}")
    for knob in ("min_delta", "plateau_min_delta", "plateau_min_lr"):
        value = getattr(t, knob)
        _require(math.isfinite(value) and value >= 0, f"'{prefix}.{knob}' must be a finite number >= 0, got {value}")
    for knob in ("plateau_patience", "plateau_cooldown"):
        value = getattr(t, knob)
        _require(value >= 0, f"'{prefix}.{knob}' must be >= 0, got {value}")
    _require(0 < t.plateau_factor < 1, f"'{prefix}.plateau_factor' must be in (0, 1), got {t.plateau_factor}")
    _require(
        not t.plateau_patience or t.schedule in ("none", "multiply"),
        f"'{prefix}.plateau_patience' is {t.plateau_patience} with schedule {t.schedule!r}, which sets every "
        "epoch's rate afresh and would undo the plateau's reductions; use schedule none or multiply",
    )
    _require(t.engine in ENGINES, f"'{prefix}.engine' is {t.engine!r}; choose one of {', '.join(ENGINES)}")
    _require(
        all(math.isfinite(v) and v >= 0 for v in (t.l1, t.l2)),
        f"'{prefix}.l1' and '{prefix}.l2' must be finite numbers >= 0, got {t.l1}, {t.l2}",
    )
    for knob in ("momentum", "beta_1", "beta_2", "rho"):
        value = getattr(t, knob)
        _require(value is None or 0 <= value < 1, f"'{prefix}.{knob}' must be in [0, 1), got {value}")
    _require(
        t.epsilon is None or math.isfinite(t.epsilon) and t.epsilon > 0,
        f"'{prefix}.epsilon' must be a finite number > 0, got {t.epsilon}",
    )
    _require(not (t.nesterov and t.momentum == 0), f"'{prefix}.nesterov' needs momentum > 0, got momentum 0")


def _check_optimizer_knobs(prefix: str, given, t: TrainParams) -> None:
    """An optimizer knob set in this mapping (`given`) must be one its optimizer takes."""
    for knob, takers in OPTIMIZER_KNOBS.items():
        _require(
            knob not in given or getattr(t, knob) is None or t.optimizer in takers,
            f"'{prefix}.{knob}' is a knob of {' and '.join(takers)}; the optimizer here is {t.optimizer}",
        )


def _rate(key: str, value: Any) -> float:
    value = _check_type(key, value, float)
    _require(0 <= value < 1, f"'{key}' must be a rate in [0, 1), got {value}")
    return value


def _flag(key: str, value: Any) -> bool:
    return _check_type(key, value, bool)


def _count(key: str, value: Any) -> int:
    value = _check_type(key, value, int)
    _require(value >= 1, f"'{key}' must be >= 1, got {value}")
    return value


def _choice(options: tuple):
    def check(key: str, value: Any) -> str:
        _require(value in options, f"'{key}' is {value!r}; choose one of {', '.join(options)}")
        return value
    return check


def _each(key: str, value: Any, n: int, what: str, check) -> tuple:
    """One value per layer / block (`what`): `value` repeated, or a list of exactly `n` values."""
    if isinstance(value, (list, tuple)):
        _require(len(value) == n, f"'{key}' lists {plural(len(value), 'value')} for {plural(n, what)}")
        return tuple(check(key, v) for v in value)
    return (check(key, value),) * n


def _widths(key: str, spec: dict) -> tuple:
    """A width per layer / block: `nodes` as a list (`layers`, if given, its length), or one
    width `layers` times (a cnn's multiplied by `filter_growth` from block to block)."""
    nodes = spec["nodes"]
    if isinstance(nodes, (list, tuple)):
        _require(len(nodes) > 0, f"'{key}.nodes' is an empty list; give a width per layer")
        widths = tuple(_check_type(f"{key}.nodes", v, int) for v in nodes)
        bad = [w for w in widths if w < 1]
        _require(not bad, f"'{key}.nodes' holds {bad[0] if bad else ''}; each width must be >= 1")
        if spec.get("layers") is not None:
            layers = _check_type(f"{key}.layers", spec["layers"], int)
            _require(layers == len(widths),
                     f"'{key}.layers' is {layers} but '{key}.nodes' lists {plural(len(widths), 'width')}")
        _require("filter_growth" not in spec, f"'{key}.filter_growth' grows one 'nodes' value; here 'nodes' is a list")
        return widths
    layers = _check_type(f"{key}.layers", spec["layers"], int)
    nodes = _check_type(f"{key}.nodes", nodes, int)
    _require(layers >= 1, f"'{key}.layers' must be >= 1, got {layers}")
    _require(nodes >= 1, f"'{key}.nodes' must be >= 1, got {nodes}")
    growth = _check_type(f"{key}.filter_growth", spec.get("filter_growth", 1.0), float)
    _require(math.isfinite(growth) and growth > 0, f"'{key}.filter_growth' must be a finite number > 0, got {growth}")
    widths = tuple(nodes if growth == 1 else int(round(nodes * growth**i)) for i in range(layers))
    _require(min(widths) >= 1, f"'{key}.filter_growth' {growth} leaves block {widths.index(min(widths)) + 1} "
             "with no filters")
    return widths


def resolve_net(key: str, family: str, spec: dict, t: TrainParams) -> Net:
    """The net of a cell mapping `spec` (layers, nodes, its family's keys; dropout and
    batch_norm, one value or a list, else `t`'s) over its resolved train knobs `t`."""

    def get(name: str, kind: type, default: Any) -> Any:
        return _check_type(f"{key}.{name}", spec[name], kind) if name in spec else default

    widths = _widths(key, spec)
    n = len(widths)
    if family in ("logreg", "mlp"):
        C, alpha, power_t = get("C", float, 1.0), get("alpha", float, 1e-4), get("power_t", float, 0.5)
        _require(math.isfinite(C) and C > 0, f"'{key}.C' must be a finite number > 0, got {C}")
        _require(math.isfinite(alpha) and alpha >= 0, f"'{key}.alpha' must be a finite number >= 0, got {alpha}")
        _require(math.isfinite(power_t) and power_t >= 0, f"'{key}.power_t' must be a finite number >= 0, got {power_t}")
        _require("power_t" not in spec or t.schedule == "invscaling",
                 f"'{key}.power_t' is the exponent of schedule invscaling; this cell's schedule is {t.schedule}")
        solver = _choice(SOLVERS)(f"{key}.solver", get("solver", str, "lbfgs"))
        return Net(nodes=widths, C=C, solver=solver, alpha=alpha, power_t=power_t)

    activity = {k: get(k, float, 0.0) for k in ("activity_l1", "activity_l2")}
    _require(all(math.isfinite(v) and v >= 0 for v in activity.values()),
             f"'{key}.activity_l1' and '{key}.activity_l2' must be finite numbers >= 0, got "
             f"{activity['activity_l1']}, {activity['activity_l2']}")
    common = dict(
        nodes=widths, l1=t.l1, l2=t.l2, **activity,
        activation=_choice(ACTIVATIONS)(f"{key}.activation", get("activation", str, "relu")),
        batch_norm_position=_choice(BN_POSITIONS)(f"{key}.batch_norm_position", get("batch_norm_position", str, "before")),
        input_batch_norm=get("input_batch_norm", bool, False),
        input_scaling=_choice(SCALINGS)(f"{key}.input_scaling", get("input_scaling", str, "unit")),
    )
    listed = {k: isinstance(spec.get(k), (list, tuple)) for k in ("dropout", "batch_norm")}
    if family == "dense":
        return Net(
            **common,
            dropout=_each(f"{key}.dropout", spec.get("dropout", t.dropout), n, "layer", _rate),
            batch_norm=_each(f"{key}.batch_norm", spec.get("batch_norm", t.batch_norm), n, "layer", _flag),
        )
    head_of = "a cnn's is its head's; per block: block_dropout" if family == "cnn" else "an lstm's is its head's"
    _require(not listed["dropout"], f"'{key}.dropout' is one rate here ({head_of}; per head layer: head_dropout)")
    head = spec.get("head", [128])
    head = tuple(_count(f"{key}.head", w) for w in (head if isinstance(head, list) else [head]))
    if family == "cnn":
        cnn = dict(
            batch_norm=_each(f"{key}.batch_norm", spec.get("batch_norm", t.batch_norm), n, "block", _flag),
            convs_per_block=_each(f"{key}.convs_per_block", spec.get("convs_per_block", 1), n, "block", _count),
            kernel_size=_count(f"{key}.kernel_size", spec.get("kernel_size", 3)),
            padding=_choice(PADDINGS)(f"{key}.padding", get("padding", str, "same")),
            pooling=_each(f"{key}.pooling", spec.get("pooling", "max"), n, "block", _choice(POOLINGS)),
            pool_padding=_choice(PADDINGS)(f"{key}.pool_padding", get("pool_padding", str, "same")),
            block_dropout=_each(f"{key}.block_dropout", spec.get("block_dropout", 0.0), n, "block", _rate),
            top=_choice(TOPS)(f"{key}.top", get("top", str, "flatten")),
            flatten_batch_norm=get("flatten_batch_norm", bool, False),
        )
        head_norm = False if listed["batch_norm"] else spec.get("batch_norm", t.batch_norm)
    else:
        _require(not listed["batch_norm"],
                 f"'{key}.batch_norm' is one boolean for an lstm (its head's; per head layer: head_batch_norm)")
        cnn, head_norm = {}, spec.get("batch_norm", t.batch_norm)
    return Net(
        **common, **cnn, head=head,
        head_dropout=_each(f"{key}.head_dropout", spec.get("head_dropout", spec.get("dropout", t.dropout)), len(head),
                           "head layer", _rate),
        head_batch_norm=_each(f"{key}.head_batch_norm", spec.get("head_batch_norm", head_norm), len(head),
                              "head layer", _flag),
    )


def map_sizes(key: str, net: Net, side: int) -> list[int]:
    """The side of a cnn's feature map after each block, on `side` x `side` images; a
    convolution or pooling that would shrink it below 1x1 is refused, naming the block."""
    sizes, size, k = [], side, net.kernel_size
    for block, (convs, pool) in enumerate(zip(net.convs_per_block, net.pooling), 1):
        for _ in range(convs):
            if net.padding == "valid":
                _require(size >= k, f"'{key}': block {block}'s {k}x{k} valid convolution shrinks its {size}x{size} "
                         f"map below 1x1 (images {side}x{side}); use padding same, a smaller kernel_size or fewer blocks")
                size -= k - 1
        if pool != "none":
            _require(net.pool_padding == "same" or size >= 2,
                     f"'{key}': block {block}'s 2x2 valid pooling shrinks its {size}x{size} map below 1x1 "
                     f"(images {side}x{side}); use pool_padding same, pooling none or fewer blocks")
            size = -(-size // 2) if net.pool_padding == "same" else size // 2
        sizes.append(size)
    return sizes


def check_fits(cell: Cell, side: int) -> None:
    """Refuse a cnn cell whose blocks shrink `side` x `side` images below 1x1 (ParamsError)."""
    if cell.family == "cnn":
        map_sizes(f"doe.cells.{cell.name}", cell.net, side)


def _cell(name: str, raw: Any, shared: TrainParams) -> Cell:
    key = f"doe.cells.{name}"
    _require(
        CELL_NAME.fullmatch(str(name)) is not None,
        f"cell name {str(name)!r} must start with a letter or digit and hold only letters, digits, '-' and '_'",
    )
    _require(isinstance(raw, dict), f"'{key}' must be a mapping with family, layers, nodes")
    # with a list of widths, layers is its length and may be left out
    needed = ("family", "nodes") if isinstance(raw.get("nodes"), list) else ("family", "layers", "nodes")
    missing = [k for k in needed if k not in raw]
    _require(not missing, f"'{key}' is missing '{missing[0] if missing else ''}'")
    family = raw["family"]
    _require(
        family in FAMILIES, f"'{key}.family' is {family!r}; choose one of {', '.join(FAMILIES)}"
    )
    train_keys = {f.name for f in fields(TrainParams)}
    net_keys = {k for keys in FAMILY_KEYS.values() for k in keys}
    given = set(raw) - {"family", "layers", "nodes"}
    unknown = sorted(given - train_keys - net_keys)
    _require(
        not unknown,
        f"unknown key '{key}.{unknown[0] if unknown else ''}' "
        f"(a cell takes family, layers, nodes, any train knob ({', '.join(sorted(train_keys))}) "
        f"and its family's keys ({family}: {', '.join(FAMILY_KEYS[family])})",
    )
    foreign = sorted((given & net_keys) - set(FAMILY_KEYS[family]))
    owners = [f for f in FAMILIES if foreign and foreign[0] in FAMILY_KEYS[f]]
    _require(not foreign, f"'{key}.{foreign[0] if foreign else ''}' is a key of {' and '.join(owners)} cells; "
             f"a {family} cell does not take it")
    refused = sorted(given & set(BASELINE_REFUSES.get(family, ())))
    _require(not refused, f"'{key}.{refused[0] if refused else ''}' does not apply to a {family} cell "
             + ("(a Keras knob)" if refused and refused[0] in KERAS_ONLY_KNOBS else "(logreg takes epochs, seed, C, solver)"))
    # a list of dropout rates or batch-norm flags is the net's; one value is a train knob as ever
    overrides = {k: v for k, v in raw.items()
                 if k in train_keys and not (k in ("dropout", "batch_norm") and isinstance(v, list))}
    merged = {**dataclasses.asdict(shared), **overrides}
    train = _typed(key, TrainParams, merged)
    _check_train(key, train)
    _check_optimizer_knobs(key, given, train)
    if family == "mlp":
        _require(train.optimizer in MLP_SOLVERS,
                 f"'{key}.optimizer' is {train.optimizer!r}; an mlp's solver is one of {', '.join(MLP_SOLVERS)}")
        _require(train.schedule in MLP_SCHEDULES,
                 f"'{key}.schedule' is {train.schedule!r}; an mlp takes {' or '.join(MLP_SCHEDULES)}")
    elif family != "logreg":
        _require(train.schedule not in MLP_SCHEDULES[1:],
                 f"'{key}.schedule' is {train.schedule!r}, the mlp's; a {family} cell takes one of {', '.join(SCHEDULES)}")
    net = resolve_net(key, family, raw, train)
    if family == "cnn":
        map_sizes(key, net, IMAGE_SIDE)
    nodes = net.nodes if isinstance(raw["nodes"], list) else raw["nodes"]
    return Cell(name=str(name), family=family, layers=len(net.nodes), nodes=nodes, train=train, net=net)


def cell(name: str, raw: Any, shared: TrainParams | None = None) -> Cell:
    """One cell as `doe.cells` declares it (`raw`), checked and resolved on the `shared` train
    knobs (default: TrainParams' own); a ParamsError names what is wrong."""
    return _cell(name, raw, shared or TrainParams())


def parse(raw: Any) -> Params:
    """Check a params mapping and return its typed form."""
    _require(isinstance(raw, dict), "top level must be a mapping")
    sections = {"data", "validate", "split", "augment", "train", "doe", "report", "budget", "refit"}
    unknown = sorted(set(raw) - sections)
    _require(not unknown, f"unknown key '{unknown[0] if unknown else ''}' (known: {', '.join(sorted(sections))})")

    data = _typed("data", DataParams, raw.get("data"))
    validate = _typed("validate", ValidateParams, raw.get("validate"))
    split = _typed("split", SplitParams, raw.get("split"))
    augment = _typed("augment", AugmentParams, raw.get("augment"))
    train = _typed("train", TrainParams, raw.get("train"))

    _check_data(data)
    _require(
        validate.min_class_rows >= 1,
        f"'validate.min_class_rows' must be >= 1, got {validate.min_class_rows}",
    )
    _require(
        validate.duplicates in DUPLICATE_POLICIES,
        f"'validate.duplicates' is {validate.duplicates!r}; choose one of {', '.join(DUPLICATE_POLICIES)}",
    )
    _require(
        split.protocol in PROTOCOLS,
        f"'split.protocol' is {split.protocol!r}; choose one of {', '.join(PROTOCOLS)}",
    )
    _require(
        0 < split.val_fraction < 1,
        f"'split.val_fraction' must be inside (0, 1), got {split.val_fraction}",
    )
    _require(split.folds >= 2, f"'split.folds' must be >= 2, got {split.folds}")
    _require(split.replicates >= 1, f"'split.replicates' must be >= 1, got {split.replicates}")
    _require(
        split.protocol != "test-only" or bool(data.test_csv or data.kaggle_zip),
        "'split.protocol' test-only draws validation from a labelled test file; set data.test_csv",
    )
    budget = _typed("budget", BudgetParams, raw.get("budget"))
    _require(budget.max_runs >= 1, f"'budget.max_runs' must be >= 1, got {budget.max_runs}")
    _require(augment.copies >= 0, f"'augment.copies' must be >= 0, got {augment.copies}")
    for recipe in augment.recipes:
        _require(
            recipe in RECIPES,
            f"'augment.recipes' holds {recipe!r}; choose from {', '.join(RECIPES)}",
        )
    for knob in ("translate", "rotate", "zoom"):
        value = getattr(augment, knob)
        _require(0 <= value < 1, f"'augment.{knob}' must be in [0, 1), got {value}")
    _require(augment.mode in AUGMENT_MODES,
             f"'augment.mode' is {augment.mode!r}; choose one of {', '.join(AUGMENT_MODES)}")
    for knob in ("zoom_range", "width_shift_range", "height_shift_range"):
        value = getattr(augment, knob)
        _require(0 <= value < 1, f"'augment.{knob}' must be in [0, 1), got {value}")
    _require(0 <= augment.rotation_range <= 180,
             f"'augment.rotation_range' must be in [0, 180] degrees, got {augment.rotation_range}")
    _require(augment.fill_mode in FILL_MODES,
             f"'augment.fill_mode' is {augment.fill_mode!r}; choose one of {', '.join(FILL_MODES)}")
    _require(not augment.horizontal_flip or augment.mode == "fresh",
             "'augment.horizontal_flip' mirrors images afresh every epoch: it needs 'augment.mode: fresh'")
    _check_train("train", train)
    _check_optimizer_knobs("train", set(raw.get("train") or {}), train)
    report = _typed("report", ReportParams, raw.get("report"))
    for knob in ("target_overall", "target_per_class"):
        value = getattr(report, knob)
        _require(0 <= value <= 1, f"'report.{knob}' must be in [0, 1], got {value}")

    doe = raw.get("doe")
    _require(isinstance(doe, dict), "'doe' must be a mapping with 'cells'")
    unknown = sorted(set(doe) - {"cells", "ensemble"})
    _require(not unknown, f"unknown key 'doe.{unknown[0] if unknown else ''}' (known: cells, ensemble)")
    cells_raw = doe.get("cells")
    _require(isinstance(cells_raw, dict) and cells_raw, "'doe.cells' is empty: declare at least one design cell")
    cells = {str(name): _cell(name, spec, train) for name, spec in cells_raw.items()}
    taken = [name for name in cells if name in RESERVED_CELL_NAMES]
    _require(not taken, f"cell name {taken[0] if taken else ''!r} is taken: models/refit/ and submissions/refit.csv "
             "hold the refit's model and submission; rename the cell")
    ensemble = doe.get("ensemble", 0)
    _require(
        type(ensemble) is int and (ensemble == 0 or ensemble >= 2),
        f"'doe.ensemble' must be 0 (none) or a whole number of cells, 2 or more, got {ensemble!r}",
    )
    refit = _typed("refit", RefitParams, raw.get("refit"))
    _require(
        refit.cell in (REFIT_OFF, REFIT_BEST) or refit.cell in cells,
        f"'refit.cell' is {refit.cell!r}; choose {REFIT_OFF} (no refit), {REFIT_BEST} (the best cell) or a cell "
        f"of doe.cells ({', '.join(cells)})",
    )
    _require(
        refit.epochs == REFIT_BEST or type(refit.epochs) is int and refit.epochs >= 1,
        f"'refit.epochs' must be {REFIT_BEST} (the cell's best epoch) or a whole number of epochs >= 1, "
        f"got {refit.epochs!r}",
    )
    result = Params(
        data=data, validate=validate, split=split, augment=augment, train=train, cells=cells,
        report=report, budget=budget, ensemble=ensemble, refit=refit,
    )
    runs = len(cells) * result.runs_per_cell
    _require(
        runs <= budget.max_runs,
        f"the design needs {plural(runs, 'training run')} ({plural(len(cells), 'cell')} x "
        f"{plural(result.runs_per_cell // split.replicates, 'fold')} x {plural(split.replicates, 'replicate')}), "
        f"over budget.max_runs={budget.max_runs}; remove cells or raise the budget",
    )
    return result


class _Unreadable(Exception):
    """params.yaml cannot be read as a params file; the message says why."""


class _CountingLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a document whose aliases expand it beyond MAX_VALUES
    values (a "billion laughs": nine levels of ten aliases are 10**9 values) or refer to
    themselves, before any value is built from it."""

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """Values in `node` with every alias written out; each node is sized once."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise _Unreadable("a YAML alias refers to a value that holds it")
    open_.add(key)
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value)
    else:
        size = 1
    open_.discard(key)
    if size > MAX_VALUES:
        raise _Unreadable(f"expands to more than {MAX_VALUES:,} values (YAML anchors and aliases written out)")
    sizes[key] = size
    return size


def load(path: str | Path = PARAMS_FILE) -> Params:
    """Read and check params.yaml.

    The file is read with a size limit and a YAML loader that refuses aliases expanding it
    beyond MAX_VALUES values. DVC parses params.yaml itself, before any stage runs (for the
    `${doe.cells}` of dvc.yaml and the params it tracks), with its own YAML reader
    (ruamel.yaml) and no such limits: these checks keep the stages and tools that read
    params through `load()` safe, not DVC.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found (run from the project root)")
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ParamsError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB; a params file is a few kB of knobs")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte {err.start})") from None
    try:
        raw = yaml.load(text, Loader=_CountingLoader)  # noqa: S506  (a SafeLoader)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    except _Unreadable as err:
        raise ParamsError(f"{path}: {err}") from None
    except RecursionError:
        raise ParamsError(f"{path}: nested too deeply to be a params file") from None
    return parse(raw)
