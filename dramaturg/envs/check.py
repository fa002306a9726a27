"""Check a user's own environment against what dramaturg needs, before any training.

    report = inspect_env("mypkg.envs:MyEnv", {"size": 5})   # every problem found, and a summary
    check_env("mypkg.envs:MyEnv", {"size": 5})              # raises EnvCheckError if any

The environment is built as training builds it, its spaces are read, the signatures of `reset` and
`step` are bound, and it is reset and stepped with random actions for a few episodes; every value
returned is checked against the Gymnasium API and the spaces. A defect is reported once, naming the
method and the field, however often it recurs. Gymnasium's own passive checker is switched off
for registered ids, so that every problem is listed rather than the first raised.
"""

from __future__ import annotations

import inspect
import math
import numbers
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from dramaturg.envs.factory import EnvError, env_factory

__all__ = ["EnvCheckError", "EnvProblem", "EnvReport", "check_env", "inspect_env"]

# actions taken twice from the same seed to see that an episode replays exactly
_REPLAY_STEPS = 20


@dataclass(frozen=True)
class EnvProblem:
    """One defect: `method` is where it shows (constructor, observation_space, action_space, reset,
    step, close), `field` what is wrong there, `defect` a short kind (e.g. dtype, bounds)."""

    method: str
    field: str
    defect: str
    message: str

    def __str__(self) -> str:
        return f"{self.method}: {self.field}: {self.message}"


@dataclass(frozen=True)
class EnvReport:
    """What `inspect_env` found: the problems, the spaces, and how much was exercised."""

    env: str
    problems: tuple[EnvProblem, ...]
    observation_space: gym.Space | None
    action_space: gym.Space | None
    steps: int
    episodes_ended: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            lines = [f"{self.env}: {len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}:"]
            return "\n".join(lines + [f"  {p}" for p in self.problems])
        return (
            f"{self.env}: ok ({self.steps} steps, {self.episodes_ended} episode{'s' if self.episodes_ended != 1 else ''} ended; "
            f"observations {_brief(self.observation_space)}, actions {_brief(self.action_space)})"
        )


class EnvCheckError(EnvError):
    """An environment that failed `check_env`; `.report.problems` lists every defect."""

    def __init__(self, report: EnvReport):
        super().__init__(report.summary())
        self.report = report


def check_env(
    env: str | Callable[[], gym.Env], env_kwargs: dict[str, Any] | None = None, *, steps: int = 100, seed: int = 0
) -> EnvReport:
    """The report of `inspect_env` if the environment has no problem; otherwise EnvCheckError
    listing them all. An unknown id or unimportable class raises EnvError as training would."""
    report = inspect_env(env, env_kwargs, steps=steps, seed=seed)
    if report.problems:
        raise EnvCheckError(report)
    return report


def inspect_env(
    env: str | Callable[[], gym.Env], env_kwargs: dict[str, Any] | None = None, *, steps: int = 100, seed: int = 0
) -> EnvReport:
    """Build `env` (an id, `package.module:Name`, or a function returning a gymnasium.Env), then
    reset and step it `steps` times with random actions seeded by `seed`; every problem found."""
    name = env if isinstance(env, str) else getattr(env, "__qualname__", repr(env))
    make = _constructor(env, env_kwargs)
    found = _Found()
    try:
        instance = make()
    except Exception as exc:  # noqa: BLE001 (any constructor error is the environment's problem, reported)
        found.add("constructor", "call", "exception", f"raised {_exception(exc)}")
        return EnvReport(name, found.problems(), None, None, 0, 0)
    run = _Run(instance, found, seed)
    try:
        run.spaces()
        run.signatures()
        run.episodes(steps)
        run.replays_exactly()
    finally:
        try:
            instance.close()
        except Exception as exc:  # noqa: BLE001 (reported as a problem)
            found.add("close", "call", "exception", f"raised {_exception(exc)}")
    return EnvReport(name, found.problems(), run.obs_space, run.act_space, run.steps, run.episodes_ended)


# -- building ----------------------------------------------------------------------------------------


def _constructor(env: str | Callable[[], gym.Env], env_kwargs: dict[str, Any] | None) -> Callable[[], Any]:
    """How training builds `env`, minus Gymnasium's passive checker (it would stop at the first
    problem) for registered ids."""
    if not isinstance(env, str):
        return lambda: env(**(env_kwargs or {}))
    factory = env_factory(env, env_kwargs)  # raises EnvError naming an unknown id or a failed import
    if env in gym.registry:
        return lambda: gym.make(env, **({"disable_env_checker": True} | dict(env_kwargs or {})))
    return factory


class _Found:
    """Problems in the order found, one per (method, field, defect)."""

    def __init__(self) -> None:
        self._problems: dict[tuple[str, str, str], EnvProblem] = {}

    def add(self, method: str, field: str, defect: str, message: str) -> None:
        self._problems.setdefault((method, field, defect), EnvProblem(method, field, defect, message))

    def problems(self) -> tuple[EnvProblem, ...]:
        return tuple(self._problems.values())


class _Stop(Exception):
    """The environment cannot be exercised further (it raised, or returned something unreadable)."""


@dataclass
class _Run:
    """One environment being exercised: what has been learnt of it so far, and the problems."""

    env: Any
    found: _Found
    seed: int
    obs_space: gym.Space | None = None
    act_space: gym.Space | None = None
    reset_takes_seed: bool = True
    usable: bool = True
    steps: int = 0
    episodes_ended: int = 0

    # -- spaces and signatures -------------------------------------------------------------------

    def spaces(self) -> None:
        obs_space = getattr(self.env, "observation_space", None)
        act_space = getattr(self.env, "action_space", None)
        if _observation_space_ok(obs_space, self.found):
            self.obs_space = obs_space
        if _action_space_ok(act_space, self.found):
            self.act_space = act_space
            act_space.seed(self.seed)

    def signatures(self) -> None:
        core = self.env.unwrapped
        if not _binds(core.reset, seed=0, options=None):
            self.reset_takes_seed = False
            self.found.add(
                "reset", "signature", "signature",
                f"reset{_signature(core.reset)} does not accept the keywords seed and options; "
                "Gymnasium calls reset(*, seed=None, options=None)",
            )
        if not _binds(core.step, None):
            self.usable = False
            self.found.add(
                "step", "signature", "signature",
                f"step{_signature(core.step)} cannot be called as step(action); Gymnasium calls step(action)",
            )

    # -- exercising ----------------------------------------------------------------------------

    def episodes(self, steps: int) -> None:
        """Reset, then step with random actions, resetting where an episode ends."""
        if self.act_space is None or not self.usable:
            return
        try:
            self.reset(self.seed)
            for _ in range(steps):
                _, _, terminated, truncated, _ = self.step(self.act_space.sample())
                if _truthy(terminated) or _truthy(truncated):
                    self.episodes_ended += 1
                    self.reset(self.seed + self.episodes_ended)
        except _Stop:
            self.usable = False

    def reset(self, seed: int) -> Any:
        try:
            result = self.env.reset(seed=seed, options=None) if self.reset_takes_seed else self.env.reset()
        except Exception as exc:
            self.found.add("reset", "call", "exception", f"raised {_exception(exc)}")
            raise _Stop from exc
        if not isinstance(result, tuple) or len(result) != 2:
            self.found.add("reset", "return value", "arity", f"returned {_shape_of(result)}; expected a tuple (observation, info)")
            raise _Stop
        obs, info = result
        self.observation("reset", obs)
        _check_info("reset", info, self.found)
        return obs

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, Any]:
        self.steps += 1
        try:
            result = self.env.step(action)
        except Exception as exc:
            self.found.add("step", "call", "exception", f"raised {_exception(exc)} on action {action!r}")
            raise _Stop from exc
        if not isinstance(result, tuple) or len(result) != 5:
            old = " (observation, reward, done, info): the old Gym API" if isinstance(result, tuple) and len(result) == 4 else ""
            self.found.add(
                "step", "return value", "arity",
                f"returned {_shape_of(result)}{old}; expected a tuple (observation, reward, terminated, truncated, info)",
            )
            raise _Stop
        obs, reward, terminated, truncated, info = result
        self.observation("step", obs)
        _check_reward(reward, self.found)
        _check_flag("terminated", terminated, self.found)
        _check_flag("truncated", truncated, self.found)
        _check_info("step", info, self.found)
        return result

    def observation(self, method: str, obs: Any) -> None:
        if self.obs_space is not None:
            _check_observation(method, "observation", obs, self.obs_space, self.found)

    def replays_exactly(self) -> None:
        """The same seed and actions must give the same observations: exact resume rebuilds each
        environment by replaying its episode from the episode's seed."""
        if self.act_space is None or not self.usable or not self.reset_takes_seed:
            return
        actions = [self.act_space.sample() for _ in range(_REPLAY_STEPS)]
        try:
            first, second = self._trajectory(actions), self._trajectory(actions)
        except Exception:  # noqa: BLE001 (raised only here: the checks above have said what they could)
            return
        for t, (a, b) in enumerate(zip(first, second)):
            if not _same(a, b):
                where = "the first observation" if t == 0 else f"the observation after step {t}"
                self.found.add(
                    "reset", "seed", "seeding",
                    f"reset(seed={self.seed}) twice, then the same actions, gave different values for {where}; "
                    "exact resume replays each episode from its seed, so draw all randomness from self.np_random "
                    "after super().reset(seed=seed)",
                )
                return

    def _trajectory(self, actions: list[Any]) -> list[Any]:
        observations = [_copy(self.env.reset(seed=self.seed, options=None)[0])]
        for action in actions:
            obs, _, terminated, truncated, _ = self.env.step(action)
            observations.append(_copy(obs))
            if _truthy(terminated) or _truthy(truncated):
                break
        return observations


# -- spaces ------------------------------------------------------------------------------------------


def _observation_space_ok(space: Any, found: _Found) -> bool:
    if not isinstance(space, gym.spaces.Space):
        found.add("observation_space", "type", "space", f"is {_kind(space)}; expected a gymnasium.spaces.Box or Dict")
        return False
    if isinstance(space, gym.spaces.Box):
        return True
    if isinstance(space, gym.spaces.Dict):
        bad = {k: s for k, s in space.spaces.items() if not isinstance(s, gym.spaces.Box)}
        for key, sub in bad.items():
            found.add("observation_space", f"[{key!r}]", "space", f"{sub} is not supported; a Dict observation space holds Box spaces only")
        return not bad
    found.add("observation_space", "type", "space", f"{space} is not supported; dramaturg takes Box or Dict (of Box) observations")
    return False


def _action_space_ok(space: Any, found: _Found) -> bool:
    if not isinstance(space, gym.spaces.Space):
        found.add("action_space", "type", "space", f"is {_kind(space)}; expected a gymnasium.spaces.Discrete, MultiDiscrete or Box")
        return False
    if isinstance(space, gym.spaces.Discrete):
        if int(space.start) != 0:
            found.add("action_space", "start", "space", f"{space} starts at {int(space.start)}; policies choose actions 0..n-1, so start must be 0")
            return False
        return True
    if isinstance(space, gym.spaces.MultiDiscrete):
        if space.nvec.ndim != 1 or np.any(space.start != 0):
            found.add("action_space", "shape", "space", f"{space} is not supported; MultiDiscrete actions must be 1-D and start at 0")
            return False
        return True
    if isinstance(space, gym.spaces.Box):
        if len(space.shape) != 1:
            found.add("action_space", "shape", "space", f"{space} has shape {space.shape}; Box actions must be 1-D")
            return False
        return True
    found.add("action_space", "type", "space", f"{space} is not supported; dramaturg takes Discrete, MultiDiscrete or Box actions")
    return False


# -- returned values ---------------------------------------------------------------------------------


def _check_observation(method: str, name: str, obs: Any, space: gym.Space, found: _Found) -> None:
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(obs, Mapping):
            found.add(method, name, "type", f"is {_kind(obs)}; observation_space is a Dict, so expected a dict")
            return
        if set(obs) != set(space.spaces):
            found.add(method, name, "keys", f"has keys {sorted(obs)}; observation_space has {sorted(space.spaces)}")
        for key in space.spaces:
            if key in obs:
                _check_observation(method, f"{name}[{key!r}]", obs[key], space.spaces[key], found)
        return
    assert isinstance(space, gym.spaces.Box)
    if not isinstance(obs, np.ndarray):
        found.add(method, name, "type", f"is {_kind(obs)}; expected a numpy.ndarray of shape {space.shape} and dtype {space.dtype}")
        return
    if obs.dtype != space.dtype:
        found.add(method, name, "dtype", f"has dtype {obs.dtype}; observation_space has dtype {space.dtype}")
    if obs.shape != space.shape:
        found.add(method, name, "shape", f"has shape {obs.shape}; observation_space has shape {space.shape}")
        return
    if not np.issubdtype(obs.dtype, np.number):
        return
    finite = np.isfinite(obs)
    if not finite.all():
        at = tuple(int(i) for i in np.argwhere(~finite)[0])
        found.add(method, name, "non-finite", f"holds {obs[at]} at index {list(at)}; observations must be finite")
    below, above = finite & (obs < space.low), finite & (obs > space.high)
    if below.any() or above.any():
        side, limit = ("below", space.low) if below.any() else ("above", space.high)
        at = tuple(int(i) for i in np.argwhere(below if below.any() else above)[0])
        found.add(method, name, "bounds", f"holds {obs[at]} at index {list(at)}, {side} observation_space bound {limit[at]}")


def _check_reward(reward: Any, found: _Found) -> None:
    scalar = isinstance(reward, numbers.Real) or (isinstance(reward, np.ndarray) and reward.ndim == 0 and np.issubdtype(reward.dtype, np.number))
    if not scalar or isinstance(reward, (bool, np.bool_)):
        found.add("step", "reward", "type", f"is {_kind(reward)}; expected a float")
    elif not math.isfinite(float(reward)):
        found.add("step", "reward", "non-finite", f"is {float(reward)}; rewards must be finite")


def _check_flag(name: str, value: Any, found: _Found) -> None:
    if not isinstance(value, (bool, np.bool_)):
        found.add("step", name, "type", f"is {_kind(value)}; expected a bool")


def _check_info(method: str, info: Any, found: _Found) -> None:
    if not isinstance(info, dict):
        found.add(method, "info", "type", f"is {_kind(info)}; expected a dict")


# -- small helpers -------------------------------------------------------------------------------------


def _binds(fn: Callable, *args: Any, **kwargs: Any) -> bool:
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): assume it fits
        return True
    return True


def _signature(fn: Callable) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(...)"


def _kind(value: Any) -> str:
    """How a value is named in messages: its type, with its shape or value where that helps."""
    if isinstance(value, np.ndarray):
        return f"a numpy.ndarray of shape {value.shape} and dtype {value.dtype}"
    if value is None:
        return "None"
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    shown = repr(value)
    article = "an" if name[0] in "aeiou" else "a"
    return f"{article} {name} ({shown if len(shown) <= 40 else shown[:37] + '...'})"


def _shape_of(result: Any) -> str:
    return f"a tuple of {len(result)} values" if isinstance(result, tuple) else _kind(result)


def _exception(exc: BaseException) -> str:
    """`Type: message (at file:line in function)`, pointing at the innermost frame; a constructor's
    exception is unwrapped from the factory's EnvError."""
    if isinstance(exc, EnvError) and exc.__cause__ is not None:
        exc = exc.__cause__
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _brief(space: gym.Space | None) -> str:
    """A space in a few words: a Box by shape and dtype, without its bounds."""
    if isinstance(space, gym.spaces.Box):
        return f"Box{space.shape} {space.dtype}"
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {_brief(s)}" for k, s in space.spaces.items()) + ")"
    return str(space)


def _truthy(flag: Any) -> bool:
    try:
        return bool(flag)
    except Exception:  # noqa: BLE001 (an array of several values, reported as a wrong type already)
        return False


def _copy(obs: Any) -> Any:
    if isinstance(obs, Mapping):
        return {k: _copy(v) for k, v in obs.items()}
    return np.array(obs, copy=True)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape):
        return False
    try:
        return bool(np.array_equal(a, b, equal_nan=True))
    except TypeError:  # a dtype without NaN
        return bool(np.array_equal(a, b))
