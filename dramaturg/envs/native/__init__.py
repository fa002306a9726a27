"""Native batched torch environments, registered under `dramaturg/` ids.

    dramaturg train ppo --env dramaturg/CartPole-v1 --num-envs 64
"""

from __future__ import annotations

import importlib

NATIVE = {
    "dramaturg/CartPole-v1": "dramaturg.envs.native.classic:CartPole",
    "dramaturg/Pendulum-v1": "dramaturg.envs.native.classic:Pendulum",
    "dramaturg/Acrobot-v1": "dramaturg.envs.native.classic:Acrobot",
    "dramaturg/MountainCarContinuous-v0": "dramaturg.envs.native.classic:MountainCarContinuous",
    "dramaturg/Quadrotor-v0": "dramaturg.envs.native.quadrotor:Quadrotor",
}


def is_native(env_id: str) -> bool:
    return env_id in NATIVE


def native_class(env_id: str) -> type:
    module, _, name = NATIVE[env_id].partition(":")
    return getattr(importlib.import_module(module), name)


def gym_counterpart(env_id: str) -> str | None:
    """Gymnasium's own id of a native task (for evaluation and presets), if it has one."""
    return native_class(env_id).gym_id if is_native(env_id) else None
