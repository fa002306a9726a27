"""Constrained RL: the Lagrangian relaxation of a CMDP and its multipliers.

A CMDP asks for max_pi J_r(pi) subject to J_c,k(pi) <= d_k for each constraint k, with J_c,k the
expected undiscounted episode cost. The Lagrangian L(pi, lambda) = J_r - sum_k lambda_k (J_c,k - d_k),
lambda >= 0, is maximised over pi and minimised over lambda (Altman 1999; for deep RL, Ray, Achiam
& Amodei 2019, "Benchmarking Safe Exploration in Deep Reinforcement Learning", PPO-Lagrangian).
"""

from __future__ import annotations

import torch
from torch import Tensor


def lagrangian_advantage(
    reward_adv: Tensor, cost_adv: Tensor, multiplier: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """(A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k), [N], from A_r [N], A_c [N, K], lambda [K].

    The policy gradient of the Lagrangian, divided by 1 + sum lambda so that the step size stays
    comparable as the multipliers grow (Ray et al. 2019, safety-starter-agents `pi_objective /=
    (1 + penalty)`; OmniSafe's PPOLag `_compute_adv_surrogate`, Ji et al. 2024). The multiplier is a
    constant here: the policy does not move it.
    """
    lam = multiplier.detach()
    adv = (reward_adv - (cost_adv * lam).sum(-1)) / (1.0 + lam.sum())
    return adv, {"train/cost_advantage": cost_adv.detach().mean()}


def multiplier_loss(
    multiplier: Tensor, episode_cost: Tensor, cost_limit: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """-sum_k lambda_k (J_c,k - d_k): descending it is gradient ascent on the Lagrangian's dual,
    which raises lambda_k while constraint k is violated and lowers it while it holds (Ray et al.
    2019, `penalty_loss = -penalty_param * (cur_cost - cost_lim)`). `episode_cost` [K] is the
    estimate of J_c, `cost_limit` [K] is d; both are constants here."""
    violation = (episode_cost - cost_limit).detach()  # [K]
    loss = -(multiplier * violation).sum()
    return loss, {"loss/multiplier": loss.detach(), "train/constraint_violation": violation.max()}


def pid_multiplier(
    episode_cost: Tensor,
    previous_cost: Tensor,
    cost_limit: Tensor,
    integral: Tensor,
    *,
    kp: float,
    ki: float,
    kd: float,
) -> tuple[Tensor, Tensor]:
    """PID-controlled multipliers (Stooke, Achiam & Abbeel 2020, "Responsive Safety in Reinforcement
    Learning by PID Lagrangian Methods", Algorithm 2), all [K]:
        Delta = J_c - d,  partial = max(J_c - J_c,prev, 0),  I <- max(I + K_I Delta, 0),
        lambda = max(K_P Delta + I + K_D partial, 0).
    `integral` holds K_I times the paper's I (so K_I may change without a jump, as OmniSafe's
    CPPOPID); with K_P = K_D = 0 this is projected gradient ascent with step K_I. Returns (lambda,
    the new integral)."""
    violation = episode_cost - cost_limit
    integral = (integral + ki * violation).clamp(min=0.0)
    rise = (episode_cost - previous_cost).clamp(min=0.0)
    return (kp * violation + integral + kd * rise).clamp(min=0.0), integral


def project_multiplier_(multiplier: Tensor, upper: float | None = None) -> Tensor:
    """Project lambda in place onto [0, upper] (upper None: [0, inf)) after a gradient step, so a
    satisfied constraint drives its multiplier to exactly 0 and never below (OmniSafe's
    `Lagrange.update_lagrange_multiplier`, a clamp after Adam)."""
    with torch.no_grad():
        return multiplier.clamp_(min=0.0, max=upper)


def finished_episode_costs(
    costs: Tensor, dones: Tensor, running: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Undiscounted costs of the episodes that ended in a rollout, without a Python loop over time.

    costs [T, B, K], dones [T, B] float, running [B, K]: each environment's cost so far in the episode
    under way when the rollout began. Returns (sum over the finished episodes [K], how many finished
    [], the new running sums [B, K] of the episodes still under way at the end).
    """
    done = dones.bool()
    # 1 at step t of environment b if some episode of b ends at t or later in this rollout
    ends_later = done.flip(0).cummax(0).values.flip(0).unsqueeze(-1)  # [T, B, 1]
    any_done = done.any(0).unsqueeze(-1)  # [B, 1]
    finished = (costs * ends_later).sum(0) + running * any_done  # [B, K]
    still_running = (costs * ~ends_later).sum(0) + running * ~any_done  # [B, K]
    return finished.sum(0), done.sum().to(costs.dtype), still_running


def episode_cost_estimate(total: Tensor, count: Tensor, previous: Tensor) -> Tensor:
    """Mean cost per finished episode [K], or `previous` when no episode ended (no host sync)."""
    return torch.where(count > 0, total / count.clamp(min=1.0), previous)
