"""A circular replay buffer of preallocated tensors, sampled uniformly with torch's RNG."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dramaturg.functional import tree_map
from dramaturg.types import Obs, Transition


class ReplayBuffer:
    def __init__(self, capacity: int, device: torch.device | str = "cpu"):
        self.capacity, self.device = capacity, torch.device(device)
        self.storage: dict[str, Any] | None = None
        self.pos = 0  # next row to write
        self.size = 0

    def _allocate(self, items: dict[str, Any]) -> None:
        self.storage = self._allocated(items)

    def _allocated(self, items: dict[str, Any]) -> dict[str, Any]:
        return {
            k: tree_map(lambda x: torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype, device=self.device), v)
            for k, v in items.items()
        }

    def add(
        self, obs: Obs, actions: Tensor, rewards: Tensor, next_obs: Obs, terminated: Tensor, reward_vector: Tensor | None = None
    ) -> None:
        """Insert a batch of B transitions (B <= capacity); `reward_vector` [B, K] where the env gives one."""
        items = {"obs": obs, "actions": actions, "rewards": rewards, "next_obs": next_obs, "terminated": terminated}
        if reward_vector is not None:
            items["reward_vector"] = reward_vector
        if self.storage is None:
            self._allocate(items)
        elif not items.keys() <= self.storage.keys():  # an item first seen after the first add reads 0 before it
            new = {k: v for k, v in items.items() if k not in self.storage}
            self.storage |= self._allocated(new)
        n = actions.shape[0]
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        for k, v in items.items():
            tree_map(lambda buf, x: buf.index_copy_(0, idx, x.to(buf.dtype)), self.storage[k], v)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> Transition:
        idx = torch.randint(0, self.size, (batch_size,), device=self.device)
        s = self.storage
        pick = lambda x: x[idx]  # noqa: E731
        return Transition(
            tree_map(pick, s["obs"]),
            s["actions"][idx],
            s["rewards"][idx],
            tree_map(pick, s["next_obs"]),
            s["terminated"][idx],
            s["reward_vector"][idx] if "reward_vector" in s else None,
        )

    def state_dict(self) -> dict[str, Any]:
        # only the filled rows travel, so a checkpoint of a young buffer stays small
        rows = {k: tree_map(lambda x: x[: self.size].clone(), v) for k, v in self.storage.items()} if self.storage else None
        return {"rows": rows, "pos": self.pos, "size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.size = state["pos"], state["size"]
        if state["rows"] is None:
            return
        self._allocate({k: tree_map(lambda x: x[:1], v) for k, v in state["rows"].items()})
        for k, v in state["rows"].items():
            tree_map(lambda buf, x: buf[: self.size].copy_(x), self.storage[k], v)
