"""Algorithms, one file each: a Config, make, update and train."""

from __future__ import annotations

import importlib
from types import ModuleType

ALGORITHMS = {
    "a2c": "Advantage actor-critic, synchronous (Mnih et al. 2016)",
    "mdpo": "Mirror descent policy optimization, on-policy (Tomar et al. 2022)",
    "mdpo-off": "Mirror descent policy optimization, off-policy, SAC-like (Tomar et al. 2022)",
    "ppo": "Proximal policy optimization, clipped (Schulman et al. 2017)",
    "ppo-gbrl": "PPO with gradient-boosted trees as actor and critic, optional gbrl extra (Fuhrer et al. 2024)",
    "ppo-lagrangian": "PPO on the Lagrangian of a cost-constrained MDP (Ray, Achiam & Amodei 2019)",
    "props": "PPO on data from an adaptive behaviour policy that cuts sampling error (Corrado & Hanna 2023)",
    "sac": "Soft actor-critic, twin Q and automatic temperature (Haarnoja et al. 2018)",
    "srl": "Sequence RL: action sequences at a slow decision rate, model-based temporal recall (Patel & Siegelmann 2025)",
    "td3": "Twin delayed DDPG (Fujimoto et al. 2018)",
    "tscac": "Two-stage constrained actor-critic: auxiliary policies, then a main policy kept near them (Cai et al. 2023)",
}


def get(name: str) -> ModuleType:
    if name not in ALGORITHMS:
        from dramaturg.config import ConfigError, suggest

        raise ConfigError(f"unknown algorithm {name!r}{suggest(name, ALGORITHMS)}; known: {', '.join(ALGORITHMS)}")
    return importlib.import_module(f"dramaturg.algos.{name.replace('-', '_')}")  # mdpo-off -> mdpo_off.py
