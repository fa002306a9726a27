"""Fixed-size, time-major storage for one on-policy rollout."""

from __future__ import annotations

import torch
from torch import Tensor

from dramaturg.functional import tree_map
from dramaturg.types import Obs, Rollout


def _like(x: Tensor, T: int) -> Tensor:
    return torch.zeros((T, *x.shape), dtype=x.dtype, device=x.device)


class RolloutStorage:
    """Preallocated [T, B] tensors, filled in place step by step."""

    def __init__(self, T: int):
        self.T = T
        self.buffers: dict[str, object] | None = None

    def add(self, t: int, **items: Obs) -> None:
        if self.buffers is None:
            self.buffers = {}
        for k, v in items.items():
            if k not in self.buffers:  # an item first seen after step 0 (costs) reads 0 before it
                self.buffers[k] = tree_map(lambda x: _like(x, self.T), v)
            tree_map(lambda buf, x: buf[t].copy_(x), self.buffers[k], v)

    def rollout(self, last_values: Tensor, truncation_values: Tensor) -> Rollout:
        """`last_values` [B] = V(s_T); `truncation_values` [T, B] = V(final obs) where truncated.

        Values may carry trailing head dimensions ([B, H], [T, B, H]) for a critic with several heads.
        """
        b = self.buffers
        next_values = torch.cat([b["values"][1:], last_values.unsqueeze(0)])  # [T, B, ...]
        truncated = b["truncated"].bool().reshape(*b["truncated"].shape, *(1,) * (next_values.dim() - 2))
        next_values = torch.where(truncated, truncation_values, next_values)
        dones = torch.maximum(b["terminated"], b["truncated"])
        return Rollout(
            b["obs"], b["actions"], b["logp"], b["values"], b["rewards"], next_values, b["terminated"], dones, b.get("costs"),
            b.get("reward_vector"),
        )
