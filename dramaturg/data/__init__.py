"""Device-resident experience storage."""

from dramaturg.data.replay import ReplayBuffer
from dramaturg.data.rollout import RolloutStorage

__all__ = ["ReplayBuffer", "RolloutStorage"]
