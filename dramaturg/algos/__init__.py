"""Algorithms, one file each: a Config, make, update and train."""

from __future__ import annotations

import importlib
from types import ModuleType

ALGORITHMS = {
    "a2c": "Advantage actor-critic, synchronous (Mnih et al. 2016)",
    "ppo": "Proximal policy optimization, clipped (Schulman et al. 2017)",
    "sac": "Soft actor-critic, twin Q and automatic temperature (Haarnoja et al. 2018)",
    "td3": "Twin delayed DDPG (Fujimoto et al. 2018)",
}


def get(name: str) -> ModuleType:
    if name not in ALGORITHMS:
        from dramaturg.config import ConfigError, suggest

        raise ConfigError(f"unknown algorithm {name!r}{suggest(name, ALGORITHMS)}; known: {', '.join(ALGORITHMS)}")
    return importlib.import_module(f"dramaturg.algos.{name}")
