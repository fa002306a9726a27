"""PPO-Lagrangian (Ray, Achiam & Amodei 2019, "Benchmarking Safe Exploration in Deep Reinforcement
Learning", the `ppo_lagrangian` agent of openai/safety-starter-agents).

A constrained MDP: maximise the return subject to E[sum_t c_k(s_t, a_t)] <= d_k for each of K costs
that the environment reports as `info["cost"]`. PPO runs on the Lagrangian: the clipped surrogate of
    A = (A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k),
with A_c,k the GAE advantage of a cost critic V_c,k. Once per rollout, before the policy epochs, each
multiplier takes a step (Adam, or plain SGD) of gradient ascent on lambda_k (J_c,k - d_k), with J_c,k the mean
undiscounted cost of the episodes that ended in the rollout, and is projected onto lambda_k >= 0
(OmniSafe's PPOLag, Ji et al. 2024; safety-starter-agents parametrises lambda = softplus(p) instead,
which never reaches 0). The reward advantage is standardised per minibatch as in PPO; the cost
advantage is only centred (safety-starter-agents' CPOBuffer: "center, but do NOT rescale"). Every
PPO setting (clipping, schedules, target_kl, ...) behaves as in `ppo`; the gradient norm of the cost
critics is clipped apart from that of the policy and reward critic, so with lambda = 0 the policy
learns as PPO's does.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor, nn

from dramaturg.algos import ppo
from dramaturg.algos.common import compiled, scheduled, train_on_policy
from dramaturg.config import ConfigError, layer_widths, non_negative, one_of, positive, unit_interval
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import explained_variance, gae, tree_map
from dramaturg.losses.constrained import (
    episode_cost_estimate,
    finished_episode_costs,
    lagrangian_advantage,
    multiplier_loss,
    project_multiplier_,
)
from dramaturg.losses.policy import entropy_bonus, ppo_clip
from dramaturg.losses.value import clipped_value, value_mse
from dramaturg.nn import Adam, StochasticActor, ValueCritic
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(ppo.Config):
    cost_limit: float = 25.0
    """Limit d on the expected undiscounted episode cost, the same for each constraint."""
    num_constraints: int = 1
    """K: how many costs the environment reports in info["cost"] (a float counts as 1)."""
    multiplier_lr: float = 0.05
    """Step size of the Lagrange multipliers (0.05 as safety-starter-agents)."""
    multiplier_optimizer: str = "adam"
    """adam (as safety-starter-agents and OmniSafe), or sgd: plain projected gradient ascent."""
    multiplier_init: float = 0.0
    """Initial value of each Lagrange multiplier."""
    cost_gamma: float = 0.99
    """Discount factor of the cost critics."""
    cost_gae_lambda: float = 0.95
    """GAE lambda of the cost advantages."""
    cost_critic_arch: tuple[int, ...] | None = None
    """Hidden layer widths of each cost critic (None: as the reward critic)."""
    standardize_cost_advantage: bool = False
    """Divide the centred cost advantages by their std per minibatch (False: centre only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        layer_widths(self, "cost_critic_arch")
        non_negative(self, "cost_limit", "multiplier_init")
        positive(self, "num_constraints", "multiplier_lr")
        one_of(self, "multiplier_optimizer", ("adam", "sgd"))
        if hasattr(self, "policy"):  # PPO's PMOE mixture policy needs its Q-network, which this update does not fit
            one_of(self, "policy", ("gaussian",))
        unit_interval(self, "cost_gamma", "cost_gae_lambda")


class RewardCostCritic(nn.Module):
    """V(s) and K cost values V_c,k(s), each its own network, as one [N, 1 + K] output."""

    def __init__(self, reward: ValueCritic, costs: list[ValueCritic]):
        super().__init__()
        self.reward, self.costs = reward, nn.ModuleList(costs)

    def forward(self, obs) -> Tensor:
        return torch.stack([self.reward(obs), *(critic(obs) for critic in self.costs)], -1)  # [N, 1 + K]


@dataclass
class State:
    actor: StochasticActor
    critic: RewardCostCritic
    optimizer: torch.optim.Optimizer
    multiplier: Tensor  # [K] lambda >= 0, a leaf stepped by multiplier_optimizer
    multiplier_optimizer: torch.optim.Optimizer
    episode_cost: Tensor  # [K] the latest estimate of J_c
    running_cost: Tensor  # [B, K] cost so far of each environment's episode under way


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    base = ppo.make(cfg, obs_space, action_space, device)
    obs_dim, K = flat_dim(obs_space), cfg.num_constraints
    arch = cfg.cost_critic_arch or cfg.critic_arch or cfg.net_arch
    costs = [ValueCritic(obs_dim, arch, activation=cfg.activation, ortho_init=cfg.ortho_init).to(device) for _ in range(K)]
    critic = RewardCostCritic(base.critic, costs)
    optimizer = Adam([*base.actor.parameters(), *critic.parameters()], lr=cfg.learning_rate, eps=1e-5)
    multiplier = torch.full((K,), cfg.multiplier_init, device=device, requires_grad=True)
    # J_c starts at the limit, so the multipliers stay put until the first episodes end
    episode_cost = torch.full((K,), cfg.cost_limit, device=device)
    running = torch.zeros(cfg.num_envs, K, device=device)
    step = Adam if cfg.multiplier_optimizer == "adam" else torch.optim.SGD
    return State(base.actor, critic, optimizer, multiplier, step([multiplier], lr=cfg.multiplier_lr), episode_cost, running)


def minibatch_loss(
    state: State, cfg: Config, obs, actions, logp_old, adv_r, adv_c, returns, values_old, clip_eps: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate of the Lagrangian advantage, reward and cost value losses, entropy bonus."""
    logp, entropy = state.actor.log_prob_entropy(obs, actions)
    if cfg.normalize_advantage:
        adv_r = (adv_r - adv_r.mean()) / (adv_r.std() + 1e-8)
    adv_c = adv_c - adv_c.mean(0)  # [N, K]
    if cfg.standardize_cost_advantage:
        adv_c = adv_c / (adv_c.std(0) + 1e-8)
    adv, adv_metrics = lagrangian_advantage(adv_r, adv_c, state.multiplier)
    pg_loss, pg_metrics = ppo_clip(logp, logp_old, adv, clip_eps=clip_eps)
    values = state.critic(obs)  # [N, 1 + K]
    if cfg.clip_range_vf is None:
        v_loss, _ = value_mse(values[:, 0], returns[:, 0])
        c_loss, _ = value_mse(values[:, 1:], returns[:, 1:])
    else:
        v_loss, _ = clipped_value(values[:, 0], values_old[:, 0], returns[:, 0], clip=cfg.clip_range_vf)
        c_loss, _ = clipped_value(values[:, 1:], values_old[:, 1:], returns[:, 1:], clip=cfg.clip_range_vf)
    c_loss = c_loss * cfg.num_constraints  # the sum over the K cost critics of their mean squared errors
    ent_loss, ent_metrics = entropy_bonus(entropy)
    loss = pg_loss + cfg.vf_coef * (v_loss + c_loss) + cfg.ent_coef * ent_loss
    value_metrics = {"loss/value": v_loss.detach(), "loss/cost_value": c_loss.detach()}
    return loss, pg_metrics | value_metrics | ent_metrics | adv_metrics


def update_multiplier(state: State, cfg: Config, costs: Tensor, dones: Tensor) -> dict[str, Tensor]:
    """J_c from the episodes that ended in the rollout, then one projected ascent step on lambda."""
    total, count, state.running_cost = finished_episode_costs(costs, dones, state.running_cost)
    state.episode_cost = episode_cost_estimate(total, count, state.episode_cost)
    limit = torch.full_like(state.episode_cost, cfg.cost_limit)
    loss, metrics = multiplier_loss(state.multiplier, state.episode_cost, limit)
    state.multiplier_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.multiplier_optimizer.step()
    project_multiplier_(state.multiplier)
    K = cfg.num_constraints
    for k in range(K):
        suffix = "" if K == 1 else f"_{k}"
        metrics[f"rollout/ep_cost{suffix}"] = state.episode_cost[k].clone()
        metrics[f"train/lagrange_multiplier{suffix}"] = state.multiplier.detach()[k].clone()
    return metrics


def update(state: State, cfg: Config, rollout, progress: float) -> dict[str, Tensor]:
    """The multiplier step, then GAE for reward and costs and n_epochs of PPO on the Lagrangian."""
    if rollout.costs is None or rollout.costs.shape[-1] != cfg.num_constraints:
        found = "no info['cost']" if rollout.costs is None else f"{rollout.costs.shape[-1]} costs per step"
        raise ConfigError(
            f"ppo_lagrangian: num_constraints = {cfg.num_constraints} but the environment {cfg.env!r} reports {found}; "
            "it must put a float (or a sequence of num_constraints floats) in info['cost'] at every step, "
            "e.g. dramaturg.envs.costs:CartPoleWithPositionCost"
        )
    metrics = update_multiplier(state, cfg, rollout.costs, rollout.dones)
    lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
    clip_eps = scheduled(cfg.clip_range, cfg.clip_range_schedule, progress)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    values, next_values = rollout.values, rollout.next_values  # [T, B, 1 + K]
    adv_r = gae(
        rollout.rewards, values[..., 0], next_values[..., 0], rollout.terminated, rollout.dones,
        gamma=cfg.gamma, lam=cfg.gae_lambda,
    )  # [T, B]
    adv_c = gae(
        rollout.costs, values[..., 1:], next_values[..., 1:], rollout.terminated.unsqueeze(-1), rollout.dones.unsqueeze(-1),
        gamma=cfg.cost_gamma, lam=cfg.cost_gae_lambda,
    )  # [T, B, K]
    returns = torch.cat([adv_r.unsqueeze(-1), adv_c], -1) + values  # [T, B, 1 + K]
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [T, B, ...] -> [T*B, ...]
    b_obs = tree_map(flat, rollout.obs)
    b_actions, b_logp, b_values = flat(rollout.actions), flat(rollout.logp), flat(values)
    b_adv_r, b_adv_c, b_returns = flat(adv_r), flat(adv_c), flat(returns)
    n = b_adv_r.shape[0]
    size = min(cfg.batch_size, n)
    loss_fn = compiled(minibatch_loss) if cfg.compile else minibatch_loss
    clip = torch.tensor(clip_eps, device=b_adv_r.device)
    # clipped apart: the cost critics' gradients must not scale down the policy's (PPO's global clip)
    params = [*state.actor.parameters(), *state.critic.reward.parameters()]
    cost_params = list(state.critic.costs.parameters())
    for _ in range(cfg.n_epochs):
        for idx in torch.randperm(n, device=b_adv_r.device).split(size):
            mb_obs = tree_map(lambda x: x[idx], b_obs)
            loss, mb_metrics = loss_fn(
                state, cfg, mb_obs, b_actions[idx], b_logp[idx], b_adv_r[idx], b_adv_c[idx], b_returns[idx], b_values[idx], clip
            )
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            mb_metrics["train/grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            mb_metrics["train/cost_grad_norm"] = torch.nn.utils.clip_grad_norm_(cost_params, cfg.max_grad_norm)
            state.optimizer.step()
        if cfg.target_kl is not None and mb_metrics["train/approx_kl"] > 1.5 * cfg.target_kl:
            break  # early stop as SB3 (a host sync, only when target_kl is set)
    metrics |= mb_metrics
    metrics["train/explained_variance"] = explained_variance(b_values[:, 0], b_returns[:, 0])
    metrics["train/cost_explained_variance"] = explained_variance(b_values[:, 1:].flatten(), b_returns[:, 1:].flatten())
    metrics["train/learning_rate"] = torch.tensor(lr)
    metrics["train/clip_range"] = torch.tensor(clip_eps)
    return metrics


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    return train_on_policy("ppo-lagrangian", cfg, make, update, sources=sources, resume=resume)
