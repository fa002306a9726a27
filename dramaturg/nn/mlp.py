"""Multi-layer perceptrons and observation flattening."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from dramaturg.types import Obs


def _logistic_tanh(x: Tensor) -> Tensor:
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


class _LogisticTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = _logistic_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2)


class Tanh(nn.Module):
    """tanh(x) = 2 sigmoid(2x) - 1 (to 2e-7): torch's CPU tanh kernel takes over three times as long
    as its sigmoid, and tanh is a third of a small PPO update's time. The same formula acts and
    learns, so a policy's log-probabilities at acting and at its first update agree bit for bit.
    On other devices, torch.tanh."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return torch.tanh(x)
        if not torch.is_grad_enabled():  # acting, evaluating: no autograd node to pay for
            return _logistic_tanh(x)
        return _LogisticTanh.apply(x)


ACTIVATIONS = {"tanh": Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int | None,
    *,
    activation: str = "relu",
    ortho_init: bool = False,
    out_gain: float = 1.0,
) -> nn.Sequential:
    """Linear layers with `activation` between them; orthogonal init as in OpenAI baselines
    (hidden gain sqrt(2), output gain `out_gain`) when `ortho_init`."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    if out_dim is not None:
        layers.append(nn.Linear(dims[-1], out_dim))
    if ortho_init:
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        for i, layer in enumerate(linears):
            last = out_dim is not None and i == len(linears) - 1
            nn.init.orthogonal_(layer.weight, gain=out_gain if last else math.sqrt(2))
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def flatten_obs(obs: Obs, batch_dims: int = 1, keys: Sequence[str] | None = None) -> Tensor:
    """A Box observation flattened past the batch dims; a Dict one concatenated in key order,
    only its `keys` where given (what an asymmetric actor may see)."""
    if isinstance(obs, dict):
        return torch.cat([flatten_obs(obs[k], batch_dims) for k in sorted(obs if keys is None else keys)], dim=-1)
    return obs.flatten(batch_dims).float() if obs.dim() > batch_dims else obs.float().unsqueeze(-1)
