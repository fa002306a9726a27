"""Adam as one fused kernel per step, with torch.optim.Adam's state layout (checkpoints agree)."""

from __future__ import annotations

from typing import Iterable

import torch


class Adam(torch.optim.Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) without weight decay or AMSGrad.

    The step is `torch._fused_adam_`: all parameters of a group in one kernel, no Python loop over
    tensors and no per-step import of the compiler (torch.optim's `step` imports `torch._dynamo`
    to mark a graph break, which costs a short run most of a second). The state per parameter is
    torch.optim.Adam's: `step` (a float32 scalar tensor), `exp_avg`, `exp_avg_sq`.
    """

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None) -> None:  # type: ignore[override]
        if closure is not None:
            raise ValueError("Adam.step takes no closure")
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self._state_of(p) for p in params]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1.0)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(
                params,
                [p.grad for p in params],
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [],
                steps,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=group["eps"],
                amsgrad=False,
                maximize=False,
            )

    def _state_of(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state
