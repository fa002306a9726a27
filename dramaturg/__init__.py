"""dramaturg: actor-critic learning from rewards, demonstrations and preferences.

    import dramaturg
    result = dramaturg.train("sac", env="Pendulum-v1", seed=0)
    action = result.policy.act(observation)
    agent = dramaturg.load(result.run_dir)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def train(algo: str, *, preset: bool = True, **fields: Any):
    """Train `algo` with the given Config fields; known environments start from rl-zoo3's preset.

    Returns a Result(policy, run_dir, summary).
    """
    from dramaturg.api import train as _train

    return _train(algo, preset=preset, **fields)


def load(run_dir: str, device: str = "cpu"):
    """The trained policy of a run folder (its final policy); `.act(obs)` gives actions."""
    from dramaturg.api import load as _load

    return _load(run_dir, device=device)


__all__ = ["load", "train", "__version__"]
