"""Multi-critic learning from a vector reward (SLIM, Emukpere, Wu, Perez and Renders, "SLIM: Skill
Learning with Multiple Critics", ICRA 2024, arXiv:2402.00823).

The environment reports K reward components r_k; each has its own critic, trained on r_k alone, and
the actor follows a weighted combination of the critics' feedback instead of one critic on the summed
reward, so that a component of large scale cannot drown the others. The paper's code is not public.
What is taken from public sources: one value head per reward function and a policy updated from the
weighted values of the critics (US 12,393,175 B2, claim 1; US 2025/0370432 A1, claims 2-3, a shared
network with one value output per reward); each critic's advantage normalised before the weighted sum
(secondary summaries of the paper). Per-minibatch standardisation is this library's reading of
"normalised", as PPO standardises its advantage.
"""

from __future__ import annotations

import torch
from torch import Tensor


def combine_advantages(
    adv: Tensor, weights: Tensor, *, normalize: bool
) -> tuple[Tensor, dict[str, Tensor]]:
    """sum_k w_k norm(A_k), [N], from per-component advantages A [N, K] and weights w [K].

    norm(A_k) = (A_k - mean A_k) / (std A_k + 1e-8) over the batch when `normalize` (SLIM's
    normalised combination: every component enters with the same spread, whatever its reward's
    scale), else the identity, which gives the advantage of one critic on the weighted sum sum_k w_k r_k
    (GAE is linear in the rewards and values). With K = 1 and w = 1 it is PPO's standardised
    advantage.
    """
    spread = adv.std(0) if adv.shape[0] > 1 else torch.ones_like(adv[0])  # [K]
    if normalize:
        adv = (adv - adv.mean(0)) / (spread + 1e-8)
    combined = (adv * weights).sum(-1)  # [N]
    return combined, {
        "train/component_advantage_std_max": spread.detach().max(),
        "train/component_advantage_std_min": spread.detach().min(),
    }


def combine_q(q: Tensor, weights: Tensor, *, normalize: bool) -> tuple[Tensor, dict[str, Tensor]]:
    """sum_k u_k Q_k, [N], from per-component Q-values [K, N] and weights w [K], with
    u_k = (w_k / s_k) / sum_j (w_j / s_j) and s_k the batch std of Q_k (a constant) when `normalize`,
    s_k = 1 otherwise.

    The off-policy counterpart of `combine_advantages` for SAC: scaling each Q_k by 1 / s_k gives the
    components the same spread over the batch; dividing by sum_j u_j makes the weights convex, so the
    entropy bonus that every component's soft target carries enters the combination exactly once and
    the combination is the soft Q-value of the reward sum_k u_k r_k. With K = 1 it is Q_1, SAC's.
    """
    spread = q.detach().std(1) if q.shape[1] > 1 else torch.ones_like(q[:, 0])  # [K]
    scaled = weights / (spread + 1e-8) if normalize else weights
    u = scaled / scaled.sum()  # [K]
    return (q * u.unsqueeze(-1)).sum(0), {
        "train/component_weight_max": u.detach().max(),
        "train/component_weight_min": u.detach().min(),
    }


def component_value_loss(
    values: Tensor, returns: Tensor, values_old: Tensor | None = None, *, clip: float | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """sum_k mean_N (V_k - R_k)^2 over values and returns [N, K]: each critic regresses its own
    component's return; with `clip`, PPO's clipped value loss per component. K = 1 is PPO's loss."""
    err = (values - returns).square()
    if clip is not None:
        clipped = values_old + (values - values_old).clamp(-clip, clip)
        err = torch.maximum(err, (clipped - returns).square())
    loss = err.mean(0).sum()
    return loss, {"loss/value": loss.detach()}


def component_q_regression(q: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """0.5 sum_e sum_k mean_N (Q_e,k - y_k)^2 over Q [E, K, N] and targets y [K, N]: each
    component's ensemble regresses its own TD target; K = 1 is `losses.q.q_regression`."""
    loss = 0.5 * (q - target.detach().unsqueeze(0)).square().mean(-1).sum()
    return loss, {"loss/q": loss.detach(), "train/q_mean": q.detach().mean()}
