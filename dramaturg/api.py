"""The Python entry points behind `dramaturg.train` and `dramaturg.load`, shared by the CLI."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import Any

from dramaturg import algos
from dramaturg.config import ConfigError, from_dict, read_json


def resolve(algo: str, flags: dict[str, Any], *, preset: bool = True, base: dict[str, Any] | None = None):
    """Config of `algo` from defaults, then the env's preset, then `base` (a saved config), then
    `flags`; returns (config, sources) where sources names where each value came from."""
    module = algos.get(algo)
    names = {f.name for f in dataclasses.fields(module.Config)}
    values: dict[str, Any] = {}
    sources = {name: "default" for name in names}
    for origin, layer in (("config", base or {}), ("flag", flags)):
        for key in layer:
            if key not in names:
                from dramaturg.config import suggest

                raise ConfigError(f"{algo}: unknown field {key!r}{suggest(key, names)}")
    env = flags.get("env", (base or {}).get("env", module.Config.env))
    if preset and base is None:
        from dramaturg.presets import preset_for

        for key, value in preset_for(algo, env).items():
            values[key], sources[key] = value, "preset"
    for origin, layer in (("config", base or {}), ("flag", flags)):
        for key, value in layer.items():
            values[key], sources[key] = value, origin
    return from_dict(module.Config, values), dict(sorted(sources.items()))


def train(algo: str, *, preset: bool = True, resume: bool = False, **fields: Any):
    cfg, sources = resolve(algo, fields, preset=preset)
    return algos.get(algo).train(cfg, sources=sources, resume=resume)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {run_dir} a dramaturg run folder?")
    record = read_json(path)
    if not (isinstance(record, dict) and isinstance(record.get("algo"), str) and isinstance(record.get("config"), dict)):
        raise ConfigError(f"{path}: not a dramaturg run config (an object with 'algo' and 'config' expected)")
    return record


def check_run_env(run_dir: str | Path, record: dict[str, Any], allow_import: Collection[str]) -> None:
    """The environment a run folder's config names may import only dramaturg.envs and `allow_import`."""
    from dramaturg.envs.factory import check_recorded_env

    cfg = record["config"]
    check_recorded_env(Path(run_dir) / "config.json", cfg.get("env", ""), cfg.get("env_kwargs"), allow_import)


def resume(run_dir: str | Path, *, allow_import: Collection[str] = (), **overrides: Any):
    """Continue the run in `run_dir` from its last checkpoint (overrides: e.g. total_steps).

    An environment of the user's own (`package.module:Name`) is imported only if its package is
    in `allow_import`: config.json is a file, and building the environment runs the code it names."""
    record = read_run_config(run_dir)
    check_run_env(run_dir, record, allow_import)
    values = dict(record["config"]) | overrides | {"run_dir": str(run_dir)}
    cfg = from_dict(algos.get(record["algo"]).Config, values)
    return algos.get(record["algo"]).train(cfg, sources=record.get("sources"), resume=True)


def read_run_spaces(run_dir: str | Path):
    """(observation space, action space) of a run folder, from spaces.json."""
    from dramaturg.envs.spaces import space_from_json
    from dramaturg.runtime.checkpoint import CheckpointError

    path = Path(run_dir) / "spaces.json"
    spaces = read_json(path, CheckpointError)
    try:
        return space_from_json(spaces["observation"]), space_from_json(spaces["action"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not the spaces of a dramaturg run ({exc!r})") from exc


def load(run_dir: str | Path, device: str = "cpu", *, record: dict[str, Any] | None = None):
    """Rebuild the run's actor from config.json (or `record`, as read from it) and spaces.json
    and load policy/ weights."""
    import torch

    from dramaturg.algos.common import make_policy
    from dramaturg.envs.spaces import obs_shape
    from dramaturg.nn import ObsNormalizer
    from dramaturg.runtime.checkpoint import read_state

    record = read_run_config(run_dir) if record is None else record
    module = algos.get(record["algo"])
    cfg = from_dict(module.Config, record["config"])
    obs_space, act_space = read_run_spaces(run_dir)
    state = module.make(cfg, obs_space, act_space, torch.device(device))
    obs_norm = ObsNormalizer(obs_shape(obs_space) if cfg.normalize_obs else None).to(device)
    policy = make_policy(state.actor, obs_norm, obs_space, act_space)
    policy.load_state_dict(read_state(Path(run_dir) / "policy")["policy"])
    return policy.eval()


def evaluate_run(
    run_dir: str | Path,
    *,
    episodes: int = 10,
    seed: int = 0,
    env: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    deterministic: bool = True,
    allow_import: Collection[str] = (),
) -> tuple[str, Any]:
    """(environment id, returns) of `episodes` episodes of the run's final policy, on the
    environment it trained on (its kwargs, or `env_kwargs`), or on `env` with the same spaces.

    The environment config.json names may import only dramaturg.envs and `allow_import` (building it
    runs the code it names); one named by the caller is the caller's choice. An environment whose
    spaces differ from the run's is refused before any episode runs.
    """
    from dramaturg.envs.factory import env_factory
    from dramaturg.envs.trend import with_trend
    from dramaturg.runtime.evaluation import evaluate

    record = read_run_config(run_dir)
    cfg = record["config"]
    if env is None:  # the environment comes from the run folder's config.json
        check_run_env(run_dir, record, allow_import)
        env, env_kwargs = cfg["env"], cfg["env_kwargs"] if env_kwargs is None else env_kwargs
    env_id, kwargs = with_trend(env, env_kwargs or {}, cfg.get("trend", 0), cfg.get("trend_form", "differences"))  # as trained
    policy = load(run_dir, record=record)
    make_env = env_factory(env_id, kwargs)
    check_policy_fits(policy, make_env, run_dir, env, seed)
    return env, evaluate(policy, make_env, episodes, seed=seed, deterministic=deterministic)


def check_policy_fits(policy, make_env, run_dir: str | Path, env: str, seed: int) -> None:
    """Refuse an environment whose actions differ from the run's, or whose first observation the
    policy cannot read, naming both sides (instead of a shape error deep inside a layer)."""
    import numpy as np
    import torch

    from dramaturg.envs.factory import EnvError

    _, act_space = read_run_spaces(run_dir)
    probe = make_env()
    try:
        acts = probe.action_space
        if not (type(acts) is type(act_space) and acts.shape == act_space.shape and getattr(acts, "n", None) == getattr(act_space, "n", None)):
            raise EnvError(f"environment {env!r} acts in {acts}; the policy of {run_dir} acts in {act_space}")
        obs, _ = probe.reset(seed=seed)
        batch = {k: torch.as_tensor(np.asarray(v)[None]) for k, v in obs.items()} if isinstance(obs, dict) else torch.as_tensor(np.asarray(obs)[None])
        try:
            with torch.inference_mode():
                policy(batch, True)
        except (RuntimeError, KeyError, ValueError, IndexError) as exc:
            raise EnvError(
                f"environment {env!r} observes {probe.observation_space}, which the policy of {run_dir} cannot read: {exc}"
            ) from exc
    finally:
        probe.close()
