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
        self._groups: dict[tuple[str, ...], slice] = {}
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

    def _group(self, names: tuple[str, ...]) -> slice:
        """Contiguous flag rows for a set of names watched together (the same set at every step, so
        marking it touches views, not gathered copies). A name in two sets has a row in each."""
        rows = self._groups.get(names)
        if rows is None:
            n, start = len(names), len(self.names)
            self.names += names
            self._bad = torch.cat([self._bad, torch.zeros(n, dtype=torch.bool, device=self.device)])
            self._first = torch.cat([self._first, torch.full((n, 2), -1, dtype=torch.long, device=self.device)])
            rows = self._groups[names] = slice(start, start + n)
        return rows

    @torch.no_grad()
    def _mark(self, names: tuple[str, ...], tensors: list[Tensor]) -> None:
        """AND each tensor's finiteness into its flag; where a flag turns, record (step, update)."""
        # max |x| is non-finite iff some entry is (torch's _foreach_norm takes a per-tensor path for
        # the inf-norm, at twice the cost)
        norms = torch._foreach_max(torch._foreach_abs(tensors))
        broken = torch.stack(norms).isfinite().logical_not_()
        rows = self._group(names)
        bad, first = self._bad[rows], self._first[rows]
        stamp = torch.tensor([self.step, self.updates], device=self.device)
        first.copy_(torch.where((broken & ~bad).unsqueeze(-1), stamp, first))
        bad.logical_or_(broken)

    def watch(self, tensors: dict[str, Any]) -> None:
        """Named tensors (or nested dicts of them) that must be finite."""
        if self.enabled:
            self._watch(_leaves(tensors))

    def _watch(self, named: Iterable[tuple[str, Any]]) -> None:
        flat = [(k, v) for k, v in named if isinstance(v, Tensor) and v.is_floating_point() and v.numel()]
        if flat:  # (a model without torch parameters, gradient-boosted trees, may leave nothing)
            self._mark(tuple(k for k, _ in flat), [v for _, v in flat])

    def watch_update(self, metrics: dict[str, Any]) -> None:
        """An update's losses and metrics, and every tracked parameter and gradient, as one set."""
        if not self.enabled:
            return
        self.updates += 1
        grads = [(f"gradient of {n}", p.grad) for n, p in self.params if p.grad is not None]
        self._watch([*_leaves(metrics), *self.params, *grads])

    def verify(self, where: str = "") -> None:
        """Raise NonFiniteError if any watched tensor was ever non-finite (one host read)."""
        if not self.enabled or not self.names:
            return
        bad = self._bad.tolist()
        if not any(bad):
            return
        first: dict[str, tuple[int, int]] = {}  # a name watched in two sets: its earliest
        for name, b, when in zip(self.names, bad, self._first.tolist()):
            if b:
                first[name] = min(first.get(name, tuple(when)), tuple(when))
        found = sorted((s, u, name) for name, (s, u) in first.items())
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
