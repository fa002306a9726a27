"""PPO-Lagrangian (Ray, Achiam & Amodei 2019, "Benchmarking Safe Exploration in Deep Reinforcement
Learning", the `ppo_lagrangian` agent of openai/safety-starter-agents).

A constrained MDP: maximise the return subject to E[sum_t c_k(s_t, a_t)] <= d_k for each of K costs
that the environment reports as `info["cost"]`. PPO runs on the Lagrangian: the clipped surrogate of
    A = (A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k),
with A_c,k the GAE advantage of a cost critic V_c,k, and d_k the k-th `cost_limit`. Once per rollout,
before the policy epochs, each multiplier takes a step (Adam, or plain SGD) of gradient ascent on
lambda_k (J_c,k - d_k), with J_c,k the mean undiscounted cost of the episodes that ended in the
rollout, and is projected onto lambda_k >= 0 (OmniSafe's PPOLag, Ji et al. 2024; safety-starter-agents
parametrises lambda = softplus(p) instead, which never reaches 0); lambda starts at 1, as
safety-starter-agents' penalty_init. With `multiplier_optimizer` pid, lambda_k is set by the
PID controller of Stooke, Achiam & Abbeel 2020 (Algorithm 2) on the same J_c,k. The reward advantage
is standardised per minibatch as in PPO, and so is the cost advantage (OmniSafe's
`standardized_cost_adv`; with `standardize_cost_advantage` False it is only centred, as in
safety-starter-agents' CPOBuffer: "center, but do NOT rescale"). Every PPO setting (clipping,
schedules, target_kl, ...) behaves as in `ppo`; the gradient norm of the cost critics is clipped
apart from that of the policy and reward critic, so with lambda = 0 the policy learns as PPO's does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor, nn

from dramaturg.algos import ppo
from dramaturg.algos.common import compiled, scheduled, train_on_policy
from dramaturg.config import (
    ConfigError,
    layer_widths,
    non_negative,
    one_of,
    positive,
    require,
    unit_interval,
)
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import explained_variance, gae, tree_map
from dramaturg.losses.constrained import (
    episode_cost_estimate,
    finished_episode_costs,
    lagrangian_advantage,
    multiplier_loss,
    pid_multiplier,
    project_multiplier_,
)
from dramaturg.losses.policy import entropy_bonus, ppo_clip
from dramaturg.losses.value import clipped_value, value_mse
from dramaturg.nn import Adam, StochasticActor, ValueCritic
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(ppo.Config):
    cost_limit: tuple[float, ...] = (25.0,)
    """Limit d_k on the expected undiscounted episode cost of each constraint, e.g. 25 or 25,10."""
    num_constraints: int | None = None
    """K, how many costs info["cost"] holds (None: one per cost_limit; one cost_limit applies to all K)."""
    multiplier_lr: float = 0.05
    """Step size of the Lagrange multipliers (0.05 as safety-starter-agents); with pid, the gain K_I."""
    multiplier_optimizer: str = "adam"
    """adam (as safety-starter-agents and OmniSafe), sgd (projected gradient ascent), or pid."""
    multiplier_init: float = 1.0
    """Initial value of each Lagrange multiplier (1 as safety-starter-agents' penalty_init)."""
    multiplier_kp: float = 0.0
    """With pid: proportional gain K_P on the violation J_c - d (Stooke et al. 2020)."""
    multiplier_kd: float = 0.0
    """With pid: derivative gain K_D on the rise of J_c since the previous update (Stooke et al. 2020)."""
    cost_gamma: float = 0.99
    """Discount factor of the cost critics."""
    cost_gae_lambda: float = 0.95
    """GAE lambda of the cost advantages."""
    cost_critic_arch: tuple[int, ...] | None = None
    """Hidden layer widths of each cost critic (None: as the reward critic)."""
    standardize_cost_advantage: bool = True
    """Divide the centred cost advantages by their std per minibatch, as OmniSafe (False: centre only)."""

    def __post_init__(self) -> None:
        if isinstance(self.cost_limit, (int, float)) and not isinstance(self.cost_limit, bool):
            # a single limit, as configs written before limits per constraint
            object.__setattr__(self, "cost_limit", (float(self.cost_limit),))
        super().__post_init__()
        layer_widths(self, "cost_critic_arch")
        limits = self.cost_limit
        require(
            self,
            len(limits) >= 1 and all(0 <= d < math.inf for d in limits),
            "cost_limit",
            "must be one or more limits, each >= 0 and finite, comma-separated, e.g. 25 or 25,10",
        )
        if self.num_constraints is not None:
            positive(self, "num_constraints")
            require(
                self,
                len(limits) in (1, self.num_constraints),
                "cost_limit",
                f"must hold one limit or num_constraints = {self.num_constraints} limits",
            )
        non_negative(self, "multiplier_init", "multiplier_kp", "multiplier_kd")
        positive(self, "multiplier_lr")
        one_of(self, "multiplier_optimizer", ("adam", "sgd", "pid"))
        for name in ("multiplier_kp", "multiplier_kd"):
            require(
                self,
                self.multiplier_optimizer == "pid" or getattr(self, name) == 0,
                name,
                "must be 0 unless multiplier_optimizer is pid",
            )
        # PPO's PMOE mixture policy needs its Q-network, which this update does not fit
        if hasattr(self, "policy"):
            one_of(self, "policy", ("gaussian",))
        unit_interval(self, "cost_gamma", "cost_gae_lambda")

    @property
    def limits(self) -> tuple[float, ...]:
        """d_k for each of the K constraints."""
        return (
            self.cost_limit * (self.num_constraints or 1)
            if len(self.cost_limit) == 1
            else self.cost_limit
        )


class RewardCostCritic(nn.Module):
    """V(s) and K cost values V_c,k(s), each its own network, as one [N, 1 + K] output."""

    def __init__(self, reward: ValueCritic, costs: list[ValueCritic]):
        super().__init__()
        self.reward, self.costs = reward, nn.ModuleList(costs)

    def forward(self, obs) -> Tensor:
        values = [self.reward(obs), *(critic(obs) for critic in self.costs)]
        return torch.stack(values, -1)  # [N, 1 + K]


@dataclass
class State:
    actor: StochasticActor
    critic: RewardCostCritic
    optimizer: torch.optim.Optimizer
    multiplier: Tensor  # [K] lambda >= 0, a leaf stepped by multiplier_optimizer
    multiplier_optimizer: torch.optim.Optimizer | None  # None with pid
    integral: Tensor  # [K] with pid: the integral term K_I sum_t (J_c - d), kept >= 0
    episode_cost: Tensor  # [K] the latest estimate of J_c
    running_cost: Tensor  # [B, K] cost so far of each environment's episode under way


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    base = ppo.make(cfg, obs_space, action_space, device)
    obs_dim, K = flat_dim(obs_space), len(cfg.limits)
    arch = cfg.cost_critic_arch or cfg.critic_arch or cfg.net_arch
    costs = [
        ValueCritic(obs_dim, arch, activation=cfg.activation, ortho_init=cfg.ortho_init).to(device)
        for _ in range(K)
    ]
    critic = RewardCostCritic(base.critic, costs)
    optimizer = Adam(
        [*base.actor.parameters(), *critic.parameters()], lr=cfg.learning_rate, eps=1e-5
    )
    multiplier = torch.full((K,), cfg.multiplier_init, device=device, requires_grad=True)
    # J_c starts at the limit, so the multipliers stay put until the first episodes end
    episode_cost = torch.tensor(cfg.limits, device=device)
    running = torch.zeros(cfg.num_envs, K, device=device)
    step = {"adam": Adam, "sgd": torch.optim.SGD, "pid": None}[cfg.multiplier_optimizer]
    multiplier_optimizer = step([multiplier], lr=cfg.multiplier_lr) if step else None
    integral = multiplier.detach().clone()
    return State(
        base.actor,
        critic,
        optimizer,
        multiplier,
        multiplier_optimizer,
        integral,
        episode_cost,
        running,
    )


def minibatch_loss(
    state: State,
    cfg: Config,
    obs,
    actions,
    logp_old,
    adv_r,
    adv_c,
    returns,
    values_old,
    clip_eps: Tensor,
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
        v_loss, _ = clipped_value(
            values[:, 0], values_old[:, 0], returns[:, 0], clip=cfg.clip_range_vf
        )
        c_loss, _ = clipped_value(
            values[:, 1:], values_old[:, 1:], returns[:, 1:], clip=cfg.clip_range_vf
        )
    c_loss = c_loss * (
        values.shape[-1] - 1
    )  # the sum over the K cost critics of their mean squared errors
    ent_loss, ent_metrics = entropy_bonus(entropy)
    loss = pg_loss + cfg.vf_coef * (v_loss + c_loss) + cfg.ent_coef * ent_loss
    value_metrics = {"loss/value": v_loss.detach(), "loss/cost_value": c_loss.detach()}
    return loss, pg_metrics | value_metrics | ent_metrics | adv_metrics


def update_multiplier(state: State, cfg: Config, costs: Tensor, dones: Tensor) -> dict[str, Tensor]:
    """J_c from the episodes that ended in the rollout, then one projected ascent step on lambda
    (or, with pid, lambda from the PI(D) controller)."""
    total, count, state.running_cost = finished_episode_costs(costs, dones, state.running_cost)
    previous = state.episode_cost
    state.episode_cost = episode_cost_estimate(total, count, previous)
    limit = torch.tensor(cfg.limits, device=state.episode_cost.device)
    loss, metrics = multiplier_loss(state.multiplier, state.episode_cost, limit)
    if state.multiplier_optimizer is None:
        lam, state.integral = pid_multiplier(
            state.episode_cost,
            previous,
            limit,
            state.integral,
            kp=cfg.multiplier_kp,
            ki=cfg.multiplier_lr,
            kd=cfg.multiplier_kd,
        )
        with torch.no_grad():
            state.multiplier.copy_(lam)
    else:
        state.multiplier_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.multiplier_optimizer.step()
        project_multiplier_(state.multiplier)
    K = len(cfg.limits)
    for k in range(K):
        suffix = "" if K == 1 else f"_{k}"
        metrics[f"rollout/ep_cost{suffix}"] = state.episode_cost[k].clone()
        metrics[f"train/lagrange_multiplier{suffix}"] = state.multiplier.detach()[k].clone()
    return metrics


def update(state: State, cfg: Config, rollout, progress: float) -> dict[str, Tensor]:
    """The multiplier step, then GAE for reward and costs and n_epochs of PPO on the Lagrangian."""
    K = len(cfg.limits)
    if rollout.costs is None or rollout.costs.shape[-1] != K:
        found = (
            "no info['cost']"
            if rollout.costs is None
            else f"{rollout.costs.shape[-1]} costs per step"
        )
        raise ConfigError(
            f"ppo_lagrangian: cost_limit = {cfg.cost_limit!r} asks for K = {K} costs but the environment {cfg.env!r} "
            f"reports {found}; it must put a float (or a sequence of K floats, one per cost_limit) in info['cost'] "
            "at every step, e.g. dramaturg.envs.costs:CartPoleWithPositionCost"
        )
    metrics = update_multiplier(state, cfg, rollout.costs, rollout.dones)
    lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
    clip_eps = scheduled(cfg.clip_range, cfg.clip_range_schedule, progress)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    values, next_values = rollout.values, rollout.next_values  # [T, B, 1 + K]
    adv_r = gae(
        rollout.rewards,
        values[..., 0],
        next_values[..., 0],
        rollout.terminated,
        rollout.dones,
        gamma=cfg.gamma,
        lam=cfg.gae_lambda,
    )  # [T, B]
    adv_c = gae(
        rollout.costs,
        values[..., 1:],
        next_values[..., 1:],
        rollout.terminated.unsqueeze(-1),
        rollout.dones.unsqueeze(-1),
        gamma=cfg.cost_gamma,
        lam=cfg.cost_gae_lambda,
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
            mb_obs = tree_map(lambda x, idx=idx: x[idx], b_obs)
            loss, mb_metrics = loss_fn(
                state,
                cfg,
                mb_obs,
                b_actions[idx],
                b_logp[idx],
                b_adv_r[idx],
                b_adv_c[idx],
                b_returns[idx],
                b_values[idx],
                clip,
            )
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            mb_metrics["train/grad_norm"] = torch.nn.utils.clip_grad_norm_(
                params, cfg.max_grad_norm
            )
            mb_metrics["train/cost_grad_norm"] = torch.nn.utils.clip_grad_norm_(
                cost_params, cfg.max_grad_norm
            )
            state.optimizer.step()
        if cfg.target_kl is not None and mb_metrics["train/approx_kl"] > 1.5 * cfg.target_kl:
            break  # early stop as SB3 (a host sync, only when target_kl is set)
    metrics |= mb_metrics
    metrics["train/explained_variance"] = explained_variance(b_values[:, 0], b_returns[:, 0])
    metrics["train/cost_explained_variance"] = explained_variance(
        b_values[:, 1:].flatten(), b_returns[:, 1:].flatten()
    )
    metrics["train/learning_rate"] = torch.tensor(lr)
    metrics["train/clip_range"] = torch.tensor(clip_eps)
    return metrics


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    return train_on_policy("ppo-lagrangian", cfg, make, update, sources=sources, resume=resume)
