"""Environment factories and the per-episode seeding wrapper.

Kept free of torch: subprocess workers of async vector environments import only this module.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np


class EnvError(ValueError):
    """An environment that cannot be found or built; the message says which and why."""


# package.module:Name, the one form env_factory imports; imported_modules finds exactly these, so
# that what a file names is checked by the same rule that would build it
_IMPORT_SPEC = re.compile(r"^([A-Za-z_][\w.]*):([A-Za-z_]\w*)$")
_ENV_MODULE = re.compile(r"^dramaturg\.envs(\.[\w.]+)?$")  # code a file may name without --allow-import


def env_factory(env: str, env_kwargs: dict[str, Any] | None = None) -> Callable[[], gym.Env]:
    """`env` is a Gymnasium id or `package.module:Name` (an Env class or a factory function)."""
    kwargs = dict(env_kwargs or {})
    spec = _IMPORT_SPEC.match(env)
    if spec:
        module_name, attr = spec.groups()
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise EnvError(f"environment {env!r}: cannot import {attr!r} from {module_name!r}: {exc}") from exc
        if not callable(target):
            raise EnvError(f"environment {env!r}: {attr} is not a class or factory function")
        if inspect.isclass(target) and not issubclass(target, gym.Env):
            raise EnvError(f"environment {env!r}: {attr} is a class but not a gymnasium.Env")
        return lambda: _build(env, target, kwargs)
    if env not in gym.registry:
        close = difflib.get_close_matches(env, list(gym.registry), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EnvError(f"unknown environment id {env!r}{hint}")
    return lambda: _build(env, gym.make, kwargs, env)


def imported_modules(env: str, env_kwargs: Any = None) -> list[str]:
    """The modules outside dramaturg's environments that building `env` with `env_kwargs` imports by
    name: `env`'s own and those of any `package.module:Name` inside the kwargs (wrappers build those
    too). The rest of dramaturg counts as outside: `dramaturg.cli:main` named as an environment would
    run a command line from the file (one that imports a module in a shape no check sees)."""
    found: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, str):
            match = _IMPORT_SPEC.match(value)
            if match and not _ENV_MODULE.match(match.group(1)) and match.group(1) not in found:
                found.append(match.group(1))
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(env)
    visit(env_kwargs)
    return found


def check_recorded_env(source: Path, env: str, env_kwargs: Any, allow_import: Collection[str]) -> None:
    """Refuse to import code that a file names (a run folder's config.json), unless the user allows
    its package: building the environment runs that code."""
    for module in imported_modules(env, env_kwargs):
        if not any(module == a or module.startswith(f"{a}.") for a in allow_import):
            top = module.split(".")[0]
            raise EnvError(
                f"{source}: environment {env!r} imports {module!r}, code named by this file; "
                f"pass --allow-import {top} if you trust it (allow_import=[{top!r}] from Python)"
            )


def _build(name: str, constructor: Callable[..., Any], kwargs: dict[str, Any], *args: Any) -> gym.Env:
    """Call the constructor; an exception it raises is re-raised naming the environment."""
    try:
        made = constructor(*args, **kwargs)
    except Exception as exc:
        raise EnvError(f"environment {name!r} failed to construct: {type(exc).__name__}: {exc}") from exc
    if not isinstance(made, gym.Env):
        raise EnvError(f"environment {name!r}: the factory returned a {type(made).__name__}, not a gymnasium.Env")
    return made


class EpisodeSeeding(gym.Wrapper):
    """Seeds every episode of sub-environment `index` from (seed, index, episode number) and keeps
    the actions taken since, so that its exact state can be rebuilt by replay on resume."""

    def __init__(self, env: gym.Env, seed: int, index: int):
        super().__init__(env)
        self.base_seed, self.index = seed, index
        self.episode = -1
        self.actions: list[Any] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        replay = options.pop("replay", None)
        if replay is not None:
            self.episode = replay[self.index]["episode"] - 1
        self.episode += 1
        self.actions = []
        episode_seed = int(np.random.SeedSequence([self.base_seed, self.index, self.episode]).generate_state(1)[0])
        obs, info = self.env.reset(seed=episode_seed, options=options or None)
        if replay is not None:
            for action in replay[self.index]["actions"]:
                obs, *_ = self.step(np.asarray(action, dtype=self.action_space.dtype))
        return obs, info

    def step(self, action):
        self.actions.append(action.tolist() if isinstance(action, np.ndarray) else int(action))
        return self.env.step(action)

    @property
    def replay_state(self) -> dict[str, Any]:
        return {"episode": self.episode, "actions": self.actions}
