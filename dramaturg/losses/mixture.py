"""Losses of the probabilistic mixture-of-experts policy (PMOE; Ren et al. 2021, arXiv:2104.09122).

Sampling an expert k ~ Cat(w(s)) has no gradient with respect to the routing weights w(s). PMOE's
frequency approximate gradient replaces it (Ren et al. 2021): draw one action from every
expert, call the expert whose action has the highest Q-value the best one, and regress w(s)
toward the one-hot vector of that expert; each expert meanwhile gets the usual actor gradient on
its own reparameterised samples.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def best_expert(q: Tensor) -> Tensor:
    """One-hot v(s) of argmax_k Q(s, a~_k) over one action per expert; q [N, K] -> [N, K]."""
    return F.one_hot(q.detach().argmax(-1), q.shape[-1]).to(q.dtype)


def routing_loss(weights: Tensor, q: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Frequency approximate gradient of the routing (Ren et al. 2021): the squared error
    between w(s) [N, K] and the one-hot of the expert with the highest Q(s, a~_k) [N, K].

    Averaged over experts and states as the authors' code (`F.mse_loss(mix_coef, one_hot(best))`),
    i.e. ||w - v||^2 / K per state. Its gradient in w is 2 (w - v) / (N K): in expectation over the
    sampled a~_k the weights move toward the frequency with which each expert is the best one.
    Q is only read: no gradient reaches it.
    """
    target = best_expert(q)
    loss = F.mse_loss(weights, target)
    metrics = {
        "loss/routing": loss.detach(),
        "train/best_expert_weight": (weights.detach() * target).sum(-1).mean(),
        "train/max_weight": weights.detach().max(-1).values.mean(),
    }
    return loss, metrics


def pmoe_sac_experts(q: Tensor, logp: Tensor, alpha: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Experts' loss of PMOE-SAC, E_s sum_k [alpha log pi(a~_k|s) - Q(s, a~_k)] with a~_k a
    reparameterised sample of expert k (Ren et al. 2021, SAC version; Haarnoja et al. 2018, eq. 7, for every expert).

    q and logp are [N, K]; with K = 1 this is SAC's actor loss.
    """
    loss = (alpha.detach() * logp - q).sum(-1).mean()
    return loss, {"loss/actor": loss.detach(), "train/entropy": -logp.detach().mean()}
