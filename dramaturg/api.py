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
    """The environment a run folder's config names may import only dramaturg and `allow_import`."""
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


def load(run_dir: str | Path, device: str = "cpu"):
    """Rebuild the run's actor from config.json and spaces.json and load policy/ weights."""
    import torch

    from dramaturg.algos.common import make_policy
    from dramaturg.envs.spaces import obs_shape, space_from_json
    from dramaturg.nn import ObsNormalizer
    from dramaturg.runtime.checkpoint import CheckpointError, read_state

    record = read_run_config(run_dir)
    module = algos.get(record["algo"])
    cfg = from_dict(module.Config, record["config"])
    path = Path(run_dir) / "spaces.json"
    spaces = read_json(path, CheckpointError)
    try:
        obs_space, act_space = space_from_json(spaces["observation"]), space_from_json(spaces["action"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not the spaces of a dramaturg run ({exc!r})") from exc
    state = module.make(cfg, obs_space, act_space, torch.device(device))
    obs_norm = ObsNormalizer(obs_shape(obs_space) if cfg.normalize_obs else None).to(device)
    policy = make_policy(state.actor, obs_norm, obs_space, act_space)
    policy.load_state_dict(read_state(Path(run_dir) / "policy")["policy"])
    return policy.eval()
