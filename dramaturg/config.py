"""Typed, validated run configuration shared by every algorithm.

Each algorithm's `Config` is a frozen dataclass that extends `RunConfig` with its own fields. A
field's one-line docstring (the string literal under it) is its help text on the command line.
Every value is checked at construction, before any environment or model is built.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value outside what is allowed; the message names field, value and range."""


def read_json(path: Path, error: type[Exception] = ConfigError) -> Any:
    """The JSON document in `path`; a missing, unreadable or non-JSON file raises `error` naming it."""
    if not path.is_file():
        raise error(f"{path}: missing")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from exc


def owner(cls: type) -> str:
    """How errors name a config class: the algorithm's module name, e.g. `ppo`."""
    return cls.__module__.rsplit(".", 1)[-1] if cls.__module__.startswith("dramaturg.algos") else cls.__qualname__


def fail(cfg: Any, name: str, allowed: str) -> typing.NoReturn:
    value = getattr(cfg, name, None)
    raise ConfigError(f"{owner(type(cfg))}: {name} = {value!r} is invalid: {allowed}")


def require(cfg: Any, ok: bool, name: str, allowed: str) -> None:
    if not ok:
        fail(cfg, name, allowed)


def positive(cfg: Any, *names: str) -> None:
    for name in names:
        require(cfg, 0 < getattr(cfg, name) < math.inf, name, "must be > 0 and finite")


def non_negative(cfg: Any, *names: str) -> None:
    for name in names:
        require(cfg, 0 <= getattr(cfg, name) < math.inf, name, "must be >= 0 and finite")


def unit_interval(cfg: Any, *names: str) -> None:
    for name in names:
        require(cfg, 0.0 <= getattr(cfg, name) <= 1.0, name, "must be in [0, 1]")


def layer_widths(cfg: Any, *names: str) -> None:
    for name in names:
        widths = getattr(cfg, name)
        require(cfg, widths is None or all(w >= 1 for w in widths), name, "layer widths must be >= 1")


def one_of(cfg: Any, name: str, choices: typing.Iterable[str]) -> None:
    choices = tuple(choices)
    require(cfg, getattr(cfg, name) in choices, name, f"must be one of {', '.join(choices)}")


def key_list(cfg: Any, name: str) -> None:
    """A comma-separated list of observation keys: empty (every key), or distinct non-empty names."""
    value = getattr(cfg, name)
    if not value:
        return
    keys = [k.strip() for k in value.split(",")]
    require(cfg, all(keys), name, "must be empty (every key) or name at least one key, comma-separated, e.g. obs")
    require(cfg, len(set(keys)) == len(keys), name, "names a key twice")


@dataclass(frozen=True)
class RunConfig:
    """What every training run has: the environment, the budget, and the run's bookkeeping."""

    env: str = "CartPole-v1"
    """Gymnasium id, or `package.module:Name` for your own environment class or factory."""
    env_kwargs: dict = field(default_factory=dict)
    """Keyword arguments for the environment constructor (JSON on the command line)."""
    seed: int = 0
    """Seed of every random number generator of the run."""
    total_steps: int = 100_000
    """Environment steps to train for, summed over the parallel environments."""
    num_envs: int = 1
    """Parallel environments stepped as one batch."""
    vector_env: str = "sync"
    """`sync` steps the environments in this process, `async` in one subprocess each."""
    env_timeout: float = 60.0
    """Seconds an `async` environment worker may take to start or to answer one reset or step."""
    device: str = "auto"
    """Where networks and batches live: auto (cuda if available), cpu, cuda or cuda:N."""
    run_dir: str | None = None
    """Folder for config, metrics, checkpoints and the final policy (default runs/ALGO-ENV-SEED)."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy every this many environment steps (0: never)."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    checkpoint_every: int = 10_000
    """Write a checkpoint every this many environment steps (0: only at the end)."""
    stop_at_return: float | None = None
    """Stop at the first evaluation whose mean return is at least this."""
    normalize_obs: bool = False
    """Normalise observations by running mean and variance (saved with the policy)."""
    normalize_reward: bool = False
    """Scale rewards by the running standard deviation of the discounted return."""
    trend: int = 0
    """Observe the last k readings as a trend (TBSAC, Chen et al. 2023): 0 off, k >= 2 (the paper's 3)."""
    trend_form: str = "differences"
    """With trend k: differences, [o_t - o_{t-1}, ... (k-1 of them), o_t], or readings, o_{t-k+1..t}."""
    log_every: int = 1_000
    """Write training metrics every this many environment steps."""
    progress: bool = True
    """Show a progress bar."""
    torch_threads: int = 0
    """Threads for torch on the CPU (0: torch's default)."""
    check_finite: bool = True
    """Stop, naming the tensor, at the first nan or inf in an observation, reward, loss, gradient
    or parameter (checked on the device; read after each on-policy update and at each log,
    evaluation and checkpoint)."""
    compile: bool = False
    """Compile the update steps with torch.compile (pays on a GPU and in long runs; the first
    call takes tens of seconds on a CPU)."""

    def __post_init__(self) -> None:
        check_types(self)
        require(self, bool(self.env.strip()), "env", "must name an environment")
        non_negative(self, "seed", "eval_every", "checkpoint_every", "torch_threads")
        positive(self, "total_steps", "num_envs", "eval_episodes", "log_every")
        one_of(self, "vector_env", ("sync", "async"))
        positive(self, "env_timeout")
        require(self, re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None, "device", "must be auto, cpu, cuda or cuda:N")
        require(self, self.trend == 0 or self.trend >= 2, "trend", "must be 0 (off) or >= 2 readings")
        one_of(self, "trend_form", ("differences", "readings"))
        if self.trend:
            require(self, not self.env.startswith("dramaturg/"), "trend", f"needs a Gymnasium environment, not the native {self.env}")
        if self.stop_at_return is not None:
            require(self, self.eval_every > 0, "eval_every", "must be > 0 when stop_at_return is set")
            require(self, math.isfinite(self.stop_at_return), "stop_at_return", "must be finite")


@dataclass(frozen=True)
class OffPolicyConfig(RunConfig):
    """The replay and update schedule of the off-policy loop, shared by SAC, TD3 and their kin."""

    buffer_size: int = 1_000_000
    """Replay buffer capacity in transitions."""
    learning_starts: int = 100
    """Environment steps of uniformly random actions before learning starts."""
    batch_size: int = 256
    """Transitions per gradient step."""
    train_freq: int = 1
    """Update every this many environment steps (per environment)."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak coefficient of the target networks."""

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "buffer_size", "batch_size", "train_freq", "gradient_steps")
        non_negative(self, "learning_starts")
        unit_interval(self, "gamma")
        require(self, 0.0 < self.tau <= 1.0, "tau", "must be in (0, 1]")
        require(self, self.batch_size <= self.buffer_size, "batch_size", f"must be <= buffer_size ({self.buffer_size})")
        require(self, self.num_envs <= self.buffer_size, "num_envs", f"must be <= buffer_size ({self.buffer_size})")


# -- field introspection ----------------------------------------------------------------------


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstring under each field, from the class sources along the MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, after in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


@cache
def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _options(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _fits(value: Any, tp: Any) -> bool:
    for option in _options(tp):
        origin = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return True
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option in (bool, str, dict) and isinstance(value, option):
            return True
        if origin is tuple and isinstance(value, tuple):
            return all(_fits(v, _element(option)) for v in value)
    return False


def _element(tp: Any) -> Any:
    """The element type of `tuple[X, ...]` (int for a bare tuple)."""
    args = typing.get_args(tp)
    return args[0] if args else int


def check_types(cfg: Any) -> None:
    """Reject values of the wrong type and turn ints into floats where a float is asked for."""
    for name, tp in field_types(type(cfg)).items():
        value = getattr(cfg, name)
        if not _fits(tuple(value) if isinstance(value, list) else value, tp):
            fail(cfg, name, f"must be of type {_describe(tp)}")
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(cfg, name, value)
        if float in _options(tp) and isinstance(value, int):
            object.__setattr__(cfg, name, float(value))
        floats = any(typing.get_origin(o) is tuple and _element(o) is float for o in _options(tp))
        if floats and isinstance(value, tuple):
            object.__setattr__(cfg, name, tuple(float(v) for v in value))


def parse_value(cls: type, name: str, text: str) -> Any:
    """Turn a command-line string into the field's type."""
    tp = field_types(cls)[name]
    options = _options(tp)
    lowered = text.strip().lower()
    if type(None) in options and lowered in ("none", "null"):
        return None
    for option in options:
        origin = typing.get_origin(option) or option
        try:
            if option is bool:
                if lowered in ("true", "1", "yes", "on"):
                    return True
                if lowered in ("false", "0", "no", "off"):
                    return False
            elif option is int:
                return int(text)
            elif option is float:
                return float(text)
            elif option is str:
                return text
            elif option is dict:
                value = json.loads(text)
                if isinstance(value, dict):
                    return value
            elif origin is tuple:
                element = _element(option)
                if text.strip().startswith("["):
                    items = json.loads(text)
                else:
                    items = [element(v) for v in text.split(",") if v.strip()]
                if isinstance(items, list) and all(_fits(v, element) for v in items):
                    return tuple(element(v) for v in items)
        except ValueError:
            continue
    raise ConfigError(f"{owner(cls)}: {name} = {text!r} is invalid: must be of type {_describe(tp)}")


def suggest(name: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build a config, rejecting unknown field names with the closest known ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise ConfigError(f"{owner(cls)}: unknown field {key!r}{suggest(key, names)}")
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    return {f.name: _jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
