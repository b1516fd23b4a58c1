"""The settings of one training run, with the seed's defaults."""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from seqlm.config.bounds import (
    check_device_name,
    check_epochs,
    check_float32,
    check_model_size,
    check_seed,
    check_threads,
    python_number,
)
from seqlm.config.choices import (
    CLEANINGS,
    OPTIMIZER_LR,
    OPTIMIZERS,
    SCHEDULES,
    check_choice,
    check_graph_setting,
)
from seqlm.data.text import check_encoding, check_prefix_text
from seqlm.errors import UsageError
from seqlm.model.limits import check_generate_length

#: The defaults of ``seqlm eval --dynamic`` (docs/training.md, "How the defaults were
#: chosen"): RMS-scaled steps, which measured best on every model tried, at this step
#: size; plain steps (``--dynamic-plain``) take ``DYNAMIC_PLAIN_LR`` unless told.
DYNAMIC_RMS = True
DYNAMIC_LR = 0.0003
DYNAMIC_PLAIN_LR = 0.1
DYNAMIC_DECAY = 0.001
DYNAMIC_STEPS = 10
#: Dynamic evaluation reads the text as this many streams side by side: one reads it in
#: order, so every segment is scored by weights that have adapted to all the text before
#: it (as Krause et al. do); more streams are faster on a long text and adapt less.
DYNAMIC_STREAMS = 1

#: The text ``seqlm run`` continues after training unless told ``--prefix``; on a text
#: that has none of its tokens the run continues the text's own opening instead.
DEFAULT_PREFIX = "time traveller"


#: The settings that hold a component's options.
OPTION_TABLES = ("tokenizer_options", "sampler_options", "cell_options", "trainer_options")


def _json_ready(value: Any) -> Any:
    """A component option as JSON keeps it: an Enum member as its name (which converts
    back to the member when the run is resumed or loaded), tuples as lists."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


@dataclass
class RunConfig:
    """Everything ``seqlm run`` needs; each field is also a ``--option`` of the CLI.

    The defaults are the seed's: a character-level ``nn.LSTM`` with 256 hidden units,
    sequential batches of 32 x 35 tokens, SGD at learning rate 1 with clipping at 1,
    500 epochs on the first 10,000 characters of *The Time Machine*. One thing differs:
    the last 10% of those characters are held out for validation (``val_fraction=0``
    trains on all of them, exactly as the seed does).
    """

    cell: str = "lstm"
    sampler: str = "sequential"
    tokenizer: str = "char"
    trainer: str = "default"
    data: str | Path | None = None
    encoding: str = "utf-8"
    clean: str = "letters"
    max_tokens: int = 10000
    batch_size: int = 32
    num_steps: int = 35
    hidden: int = 256
    num_layers: int = 1
    bidirectional: bool = False
    cell_options: dict[str, Any] = field(default_factory=dict)
    tokenizer_options: dict[str, Any] = field(default_factory=dict)
    sampler_options: dict[str, Any] = field(default_factory=dict)
    trainer_options: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 0
    tie_weights: bool = False
    dropout: float = 0.0
    locked_dropout: bool = False
    activation_reg: float = 0.0
    temporal_reg: float = 0.0
    val_fraction: float = 0.1
    epochs: int = 500
    lr: float | None = None
    optimizer: str = "sgd"
    weight_decay: float | None = None
    schedule: str = "constant"
    warmup_epochs: int = 0
    precision: str = "fp32"
    cuda_graph: bool | str = "auto"  # "auto", True (demand) or False; see graph_policy
    clip: float = 1.0
    average: bool = False
    patience: int = 0
    device: str = "auto"
    threads: int = 0  # 0: the count the process has (torch: one per core); kept to the run
    seed: int | None = 0
    prefix: str = DEFAULT_PREFIX
    predict: int = 50
    out: str | Path | None = None
    force: bool = False
    checkpoint_every: int = 10
    keep_every: int = 0
    resume: str | Path | None = None
    log: list[str] = field(default_factory=list)
    log_every: int = 0

    def _check_types(self) -> None:
        """Every setting of its kind: from Python (seqlm.run or RunConfig), unlike the
        command line, any value can come, and torch would fail on it later, or take
        True for 1."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in OPTIONAL_TYPES:
                continue
            types = setting_types(f.name)
            value = python_number(value)  # numpy's scalars, from a sweep's arange
            setattr(self, f.name, value)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                if f.name == "log" and isinstance(value, str):
                    raise UsageError(f"log takes a list of logger names, got {value!r}; for "
                                     f"one, log=[{value!r}]")
                wanted = " or ".join(dict.fromkeys(
                    _PYTHON_TYPES[t] for t in types if not (t is int and float in types)))
                label = f.name if f.name.endswith("_options") else f"--{_flag(f.name)}"
                raise UsageError(f"{label} must be {wanted}, got {value!r}")

    def validate(self) -> RunConfig:
        """Raise :class:`UsageError` naming the first out-of-range setting; numbers of
        other kinds (numpy's) are replaced in place by Python's int or float."""
        self._check_types()
        positive = ("batch_size", "num_steps", "hidden", "num_layers", "epochs")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"--{_flag(name)} must be a whole number of at least 1, "
                                 f"got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"--lr must be greater than 0, got {self.lr!r}")
        if not 0 <= self.val_fraction < 1:
            raise UsageError(f"--val-fraction must be at least 0 and below 1 (0.1 holds out "
                             f"the last 10%), got {self.val_fraction!r}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be at least 0 and below 1, got {self.dropout!r}")
        if self.locked_dropout and not self.dropout:
            raise UsageError("--locked-dropout changes how --dropout draws its masks, and "
                             "--dropout is 0; set --dropout P too (0.35, say) or drop "
                             "--locked-dropout")
        for name in ("activation_reg", "temporal_reg"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UsageError(f"--{_flag(name)} must be 0 (off) or more, got {value!r}")
        for name in ("embedding_dim", "checkpoint_every", "keep_every", "warmup_epochs",
                     "threads", "log_every", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise UsageError(f"--{_flag(name)} must be a whole number, 0 or more, "
                                 f"got {value!r}")
        check_choice("--optimizer", self.optimizer, OPTIMIZERS)
        check_choice("--schedule", self.schedule, SCHEDULES)
        check_choice("--clean", self.clean, CLEANINGS)
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise UsageError(f"--weight-decay must be 0 or more, got {self.weight_decay!r}")
        if not self.clip >= 0:
            raise UsageError(f"--clip must be 0 (off) or more, got {self.clip!r}")
        if self.max_tokens < 0:
            raise UsageError(f"--max-tokens must be 0 (whole text) or more, got {self.max_tokens}")
        if self.predict < 0:
            raise UsageError(f"--predict must be 0 or more, got {self.predict}")
        check_device_name(self.device)
        if self.lr is not None and not math.isfinite(self.lr):
            raise UsageError(f"--lr must be a finite number greater than 0, got {self.lr!r}")
        check_prefix_text(self.prefix)
        self.check_paths()
        check_seed(self.seed)
        check_epochs(self.epochs)
        check_graph_setting(self.cuda_graph)
        # Limits torch would enforce late (an overflow) or not at all (a crash).
        check_threads(self.threads)
        check_model_size(self.hidden, self.embedding_dim, self.num_layers)
        check_float32("--lr", self.lr)
        check_float32("--weight-decay", self.weight_decay)
        check_generate_length("--predict", self.predict)
        bad = [name for name in self.log if not isinstance(name, str) or not name.strip()]
        if bad:
            raise UsageError(f"--log needs the name of a logger, got {bad[0]!r}; "
                             "seqlm list callbacks shows them")
        if self.val_fraction == 0:
            # Both decide by the validation loss, which needs held-out text.
            for name, on in (("patience", self.patience), ("average", self.average)):
                if on:
                    raise UsageError(f"--{name} needs held-out text to validate on; drop "
                                     "--val-fraction 0 or give a fraction such as 0.1")
        check_encoding(self.encoding)
        return self

    @property
    def learning_rate(self) -> float:
        """``lr``, or the chosen optimizer's usual rate when ``lr`` is None."""
        return self.lr if self.lr is not None else OPTIMIZER_LR.get(self.optimizer, 1.0)

    def check_paths(self) -> None:
        """``data``, ``out`` and ``resume`` are unset or name something: an empty one (an
        unset shell variable in ``--out $DIR``) would mean the current folder, and a run
        would write its files among the user's."""
        for name in ("data", "out", "resume"):
            value = getattr(self, name)
            if isinstance(value, str) and not value.strip():
                raise UsageError(f"--{name} is empty; give a path, or leave --{name} out")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (paths as strings)."""
        data = asdict(self)
        for key in ("data", "out", "resume"):
            if data[key] is not None:
                data[key] = str(data[key])
        data["log"] = list(data["log"])
        for key in OPTION_TABLES:
            data[key] = _json_ready(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Settings from :meth:`to_dict` output; keys this version does not know are dropped."""
        known = set(cls.field_names())
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def field_names(cls) -> list[str]:
        """The names of all settings."""
        return [f.name for f in fields(cls)]


#: The value types of settings whose default does not tell them: None (not given) or these.
OPTIONAL_TYPES: dict[str, tuple[type, ...]] = {
    "data": (str, Path), "lr": (int, float), "weight_decay": (int, float), "seed": (int,),
    "out": (str, Path), "resume": (str, Path), "cuda_graph": (bool, str),
}
#: How a message names each type.
_PYTHON_TYPES = {int: "a whole number", float: "a number", str: "a string",
                 Path: "a path", bool: "true or false", dict: "a dict of option names to values",
                 list: "a list", tuple: "a list"}


def setting_types(name: str) -> tuple[type, ...]:
    """The types a value of setting ``name`` may have (a number may be an int or a float;
    ``cuda_graph`` is true, false or "auto")."""
    if name in OPTIONAL_TYPES:
        return OPTIONAL_TYPES[name]
    spec = next(f for f in fields(RunConfig) if f.name == name)
    default = spec.default_factory() if callable(spec.default_factory) else spec.default
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (int, float)
    if isinstance(default, list):
        return (list, tuple)
    return (type(default),)


def _flag(name: str) -> str:
    return name.replace("_", "-")
