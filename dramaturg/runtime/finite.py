"""Non-finite numbers found at the update where they appear, without a host sync per step.

The loops hand every observation batch, reward batch and update (its metrics, which hold the
losses, and the parameters and gradients it left behind) to `FiniteGuard.watch*`. Each watch ANDs
an `isfinite` into a flag that stays on the device and records the first step and update at which
a tensor went bad. `verify` reads all the flags at once (one host sync) and raises
`NonFiniteError` naming the tensors; the session calls it after every on-policy update, at every
log, evaluation and checkpoint, and before anything is written, so a checkpoint never holds a
non-finite number.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor, nn


class NonFiniteError(RuntimeError):
    pass


class FiniteGuard:
    def __init__(self, device: torch.device, enabled: bool = True):
        self.device, self.enabled = device, enabled
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._bad = torch.zeros(0, dtype=torch.bool, device=device)
        self._first = torch.zeros(0, 2, dtype=torch.long, device=device)  # (step, update) first seen
        self.params: list[tuple[str, Tensor]] = []
        self.step = 0
        self.updates = 0

    def track(self, modules: dict[str, Any]) -> None:
        """Watch the parameters (and their gradients) of every nn.Module in these objects' fields."""
        seen: set[int] = set()
        for owner, obj in modules.items():
            fields = vars(obj) if not isinstance(obj, nn.Module) else {"": obj}
            for field, value in fields.items():
                if isinstance(value, nn.Module):
                    for name, p in value.named_parameters():
                        if id(p) not in seen and p.requires_grad:
                            seen.add(id(p))
                            self.params.append((f"{owner}.{field}.{name}".replace("..", "."), p))
                elif isinstance(value, Tensor) and value.requires_grad and id(value) not in seen:
                    seen.add(id(value))
                    self.params.append((f"{owner}.{field}", value))

    def _slot(self, name: str) -> int:
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)
            self._bad = torch.cat([self._bad, torch.zeros(1, dtype=torch.bool, device=self.device)])
            self._first = torch.cat([self._first, torch.full((1, 2), -1, dtype=torch.long, device=self.device)])
        return self._index[name]

    def _mark(self, slots: list[int], finite: Tensor) -> None:
        """finite: [len(slots)] bool, computed on the device."""
        idx = torch.tensor(slots, device=self.device)
        newly = ~finite & ~self._bad[idx]
        where = torch.tensor([self.step, self.updates], device=self.device).expand(len(slots), 2)
        self._first[idx] = torch.where(newly.unsqueeze(-1), where, self._first[idx])
        self._bad[idx] = self._bad[idx] | ~finite

    def watch(self, tensors: dict[str, Any]) -> None:
        """Named tensors (or nested dicts of them) that must be finite."""
        if not self.enabled:
            return
        flat = {k: v for k, v in _leaves(tensors) if isinstance(v, Tensor) and v.is_floating_point()}
        if flat:
            self._mark([self._slot(k) for k in flat], torch.stack([torch.isfinite(v).all() for v in flat.values()]))

    def watch_update(self, metrics: dict[str, Any]) -> None:
        """An update's losses and metrics, then every tracked parameter and gradient."""
        if not self.enabled:
            return
        self.updates += 1
        self.watch(metrics)
        params = [p for _, p in self.params]
        names = [n for n, _ in self.params]
        self._watch_norms(names, params)
        grads = [(f"gradient of {n}", p.grad) for n, p in self.params if p.grad is not None]
        if grads:
            self._watch_norms([n for n, _ in grads], [g for _, g in grads])

    def _watch_norms(self, names: list[str], tensors: Iterable[Tensor]) -> None:
        if not names:  # a model without torch parameters (gradient-boosted trees)
            return
        norms = torch._foreach_norm(list(tensors), float("inf"))  # non-finite iff some entry is
        self._mark([self._slot(n) for n in names], torch.isfinite(torch.stack(norms)))

    def verify(self, where: str = "") -> None:
        """Raise NonFiniteError if any watched tensor was ever non-finite (one host read)."""
        if not self.enabled or not self.names:
            return
        bad = self._bad.tolist()
        if not any(bad):
            return
        first = self._first.tolist()
        found = sorted((first[i][0], first[i][1], self.names[i]) for i, b in enumerate(bad) if b)
        step, update, _ = found[0]
        listing = ", ".join(name for s, u, name in found if (s, u) == (step, update))
        later = len(found) - sum((s, u) == (step, update) for s, u, _ in found)
        raise NonFiniteError(
            f"non-finite values (nan or inf) in {listing}: first seen at environment step {step} "
            f"(after {update} updates)" + (f"; {later} more tensors went non-finite after it" if later else "")
            + (f"; found {where}" if where else "")
            + ". Nothing non-finite was written; the last checkpoint is intact (resume from it with "
            "other settings, e.g. a lower learning rate, or --check-finite false to train on)."
        )


def _leaves(tree: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}" if prefix else str(k))
    else:
        yield prefix, tree
