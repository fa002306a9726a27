"""Action-value losses and the entropy temperature, for SAC and TD3."""

from __future__ import annotations

from torch import Tensor


def td_target(
    rewards: Tensor, next_q: Tensor, terminated: Tensor, *, gamma: float
) -> Tensor:
    """One-step target r + gamma (1 - terminal) Q'(s', a'), [N]; next_q already reduced (min, soft)."""
    return rewards + gamma * (1.0 - terminated) * next_q


def q_regression(q: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Squared TD error summed over the ensemble [E, N] and averaged over the batch, as in SAC's
    J_Q for each of the twin critics (Haarnoja et al. 2018, eq. 5) and TD3 (Fujimoto et al. 2018)."""
    loss = 0.5 * (q - target.detach().unsqueeze(0)).square().mean(1).sum()
    return loss, {"loss/q": loss.detach(), "train/q_mean": q.detach().mean()}


def sac_actor(q: Tensor, logp: Tensor, alpha: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """E[alpha log pi(a|s) - Q(s, a)] with a ~ pi reparameterised (Haarnoja et al. 2018, eq. 7)."""
    loss = (alpha.detach() * logp - q).mean()
    return loss, {"loss/actor": loss.detach(), "train/entropy": -logp.detach().mean()}


def temperature(log_alpha: Tensor, logp: Tensor, *, target_entropy: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Automatic entropy tuning, J(alpha) = E[-alpha (log pi + H_target)] (Haarnoja et al. 2018b,
    eq. 18), written on log alpha as the authors' code does."""
    loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
    return loss, {"loss/alpha": loss.detach(), "train/alpha": log_alpha.detach().exp()}


def deterministic_actor(q: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """-E[Q(s, mu(s))] (DDPG/TD3 deterministic policy gradient)."""
    loss = -q.mean()
    return loss, {"loss/actor": loss.detach()}
