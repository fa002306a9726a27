"""Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347).

Clipped surrogate, GAE, optional value clipping, advantage normalisation per minibatch, entropy
bonus, global gradient clipping, linear annealing of the step size and clip range, and an
optional early stop of the epochs when the approximate KL passes `target_kl`. Details follow
"The 37 Implementation Details of PPO" (Huang et al. 2022) and SB3, whose defaults these are.

`policy="gmm"` makes the actor a mixture of `components` Gaussians (PMOE, Ren et al. 2021,
arXiv:2104.09122), as the authors' PPO version: the clipped surrogate uses the mixture's density,
a Q-network is regressed on the GAE returns of the rollout's actions, and the routing weights are
regressed toward the expert whose sampled action has the highest Q-value.

`reward_components=K` learns from a vector reward (multi-critic, SLIM, Emukpere et al. 2024,
arXiv:2402.00823): the environment puts K components in info["reward_vector"], the critic has one
value per component, each with its own GAE, and the clipped surrogate uses sum_k w_k norm(A_k)
(`losses/multi_critic.py`).

`actor_keys="obs"` makes it an asymmetric actor-critic (Pinto et al. 2018, arXiv:1710.06542; as the
motion-retargeting and TacSL papers use with PPO): the actor reads only the named keys of a Dict
observation, V(s) reads all of them, privileged state included (`envs/privileged.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch

from dramaturg.algos.common import actor_view, compiled, scheduled, train_on_policy
from dramaturg.config import (
    ConfigError,
    RunConfig,
    key_list,
    layer_widths,
    non_negative,
    one_of,
    positive,
    require,
    unit_interval,
)
from dramaturg.envs.multi_reward import (
    check_reward_vector,
    require_reward_vector,
    validate_reward_components,
    weights_of,
)
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import explained_variance, gae, tree_map
from dramaturg.losses.mixture import routing_loss
from dramaturg.losses.multi_critic import combine_advantages, component_value_loss
from dramaturg.losses.policy import entropy_bonus, ppo_clip
from dramaturg.losses.q import q_regression
from dramaturg.losses.value import clipped_value, value_mse
from dramaturg.nn import Adam, QEnsemble, StochasticActor, ValueCritic
from dramaturg.nn.critics import MultiValueCritic
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(RunConfig):
    learning_rate: float = 3e-4
    """Adam step size (start value when lr_schedule is linear)."""
    lr_schedule: str = "constant"
    """constant, or linear decay to 0 over total_steps."""
    n_steps: int = 2048
    """Rollout length per environment between updates."""
    batch_size: int = 64
    """Minibatch size (the whole rollout if it is smaller)."""
    n_epochs: int = 10
    """Passes over each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is one-step TD, 1 is Monte Carlo."""
    clip_range: float = 0.2
    """Clip range epsilon of the probability ratio."""
    clip_range_schedule: str = "constant"
    """constant, or linear decay of clip_range to 0 over total_steps."""
    clip_range_vf: float | None = None
    """Clip range of the value prediction around the old one (None: no value clipping)."""
    normalize_advantage: bool = True
    """Normalise advantages to zero mean and unit std per minibatch."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this."""
    target_kl: float | None = None
    """Stop the epochs early when the approximate KL exceeds 1.5 times this (None: never)."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor (and of the critic unless critic_arch is set)."""
    critic_arch: tuple[int, ...] | None = None
    """Hidden layer widths of the critic (None: same as net_arch)."""
    activation: str = "tanh"
    """Hidden activation: tanh, relu, elu or gelu."""
    ortho_init: bool = True
    """Orthogonal initialisation (hidden gain sqrt 2, policy output 0.01, value output 1)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of a Gaussian policy."""
    policy: str = "gaussian"
    """Policy over Box actions: gaussian, or gmm, a mixture of Gaussian experts (PMOE)."""
    components: int = 4
    """Experts K of the gmm policy (unused by gaussian)."""
    actor_keys: str = ""
    """Dict observation keys the actor sees, comma-separated; the critic sees all (asymmetric actor-critic). Empty: all."""
    reward_components: int = 0
    """K > 0: one critic per component of the vector reward info["reward_vector"], advantages combined (multi-critic, SLIM)."""
    reward_weights: str = ""
    """Weights w_k of the K reward components in the combined advantage, comma-separated, e.g. 1,0.5 (empty: 1 each)."""
    normalize_components: bool = True
    """Standardise each component's advantage per minibatch before weighting (SLIM); False: the raw weighted sum."""
    shared_critic_trunk: bool = False
    """With reward_components: one critic network with K value heads instead of K networks."""

    def __post_init__(self) -> None:
        super().__post_init__()
        layer_widths(self, "net_arch", "critic_arch")
        positive(self, "learning_rate", "n_steps", "batch_size", "n_epochs", "clip_range", "max_grad_norm")
        unit_interval(self, "gamma", "gae_lambda")
        non_negative(self, "ent_coef", "vf_coef")
        one_of(self, "lr_schedule", ("constant", "linear"))
        one_of(self, "clip_range_schedule", ("constant", "linear"))
        one_of(self, "activation", ("tanh", "relu", "elu", "gelu"))
        one_of(self, "policy", ("gaussian", "gmm"))
        require(self, self.components >= 1, "components", "must be >= 1")
        validate_reward_components(self)
        require(self, self.reward_components == 0 or type(self) is Config, "reward_components", "must be 0: an option of ppo and sac only")
        key_list(self, "actor_keys")
        if self.clip_range_vf is not None:
            positive(self, "clip_range_vf")
        if self.target_kl is not None:
            positive(self, "target_kl")
        require(
            self,
            not (self.normalize_advantage and min(self.batch_size, self.n_steps * self.num_envs) < 2),
            "batch_size",
            "must be >= 2 (with num_envs * n_steps >= 2) when normalize_advantage is on",
        )


@dataclass
class State:
    actor: StochasticActor
    critic: ValueCritic
    optimizer: torch.optim.Optimizer
    q: QEnsemble | None = None  # Q(s, a) that scores the experts of a gmm policy (PMOE)


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    obs_dim = flat_dim(obs_space)
    if cfg.policy == "gmm" and not (isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1):
        raise ConfigError(f"ppo: policy = 'gmm' needs a 1-D Box (continuous) action space; this environment has {action_space}")
    actor_keys, actor_dim = actor_view("ppo", cfg.actor_keys, obs_space)
    actor = StochasticActor(
        actor_dim, action_space, cfg.net_arch, activation=cfg.activation, ortho_init=cfg.ortho_init, log_std_init=cfg.log_std_init,
        components=cfg.components if cfg.policy == "gmm" else None, obs_keys=actor_keys,
    ).to(device)
    if cfg.reward_components:  # V_k(s), one per reward component (multi-critic, SLIM)
        critic = MultiValueCritic(
            obs_dim, cfg.critic_arch or cfg.net_arch, cfg.reward_components, shared=cfg.shared_critic_trunk,
            activation=cfg.activation, ortho_init=cfg.ortho_init,
        ).to(device)
    else:
        critic = ValueCritic(obs_dim, cfg.critic_arch or cfg.net_arch, activation=cfg.activation, ortho_init=cfg.ortho_init).to(device)
    params = [*actor.parameters(), *critic.parameters()]
    if cfg.policy == "gmm":
        q = QEnsemble(obs_dim, int(action_space.shape[0]), cfg.critic_arch or cfg.net_arch, members=1).to(device)
        optimizer = Adam([*params, *q.parameters()], lr=cfg.learning_rate, eps=1e-5)  # one optimiser, as the authors' code
        return State(actor, critic, optimizer, q)
    optimizer = Adam(params, lr=cfg.learning_rate, eps=1e-5)  # eps as baselines / SB3
    return State(actor, critic, optimizer)


def minibatch_loss(
    state: State, cfg: Config, obs, actions, logp_old, adv, returns, values_old, clip_eps: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped objective, value loss and entropy bonus of a minibatch, weighted and summed."""
    logp, entropy = state.actor.log_prob_entropy(obs, actions)
    multi = adv.dim() > 1  # [N, K]: one advantage per reward component (multi-critic, SLIM)
    mc_metrics: dict[str, torch.Tensor] = {}
    if multi:
        adv, mc_metrics = combine_advantages(adv, adv.new_tensor(weights_of(cfg)), normalize=cfg.normalize_components)
    if cfg.normalize_advantage and not (multi and cfg.normalize_components):
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss, pg_metrics = ppo_clip(logp, logp_old, adv, clip_eps=clip_eps)
    values = state.critic(obs)
    if multi:
        v_loss, v_metrics = component_value_loss(values, returns, values_old, clip=cfg.clip_range_vf)
    elif cfg.clip_range_vf is None:
        v_loss, v_metrics = value_mse(values, returns)
    else:
        v_loss, v_metrics = clipped_value(values, values_old, returns, clip=cfg.clip_range_vf)
    ent_loss, ent_metrics = entropy_bonus(entropy)
    loss = pg_loss + cfg.vf_coef * v_loss + cfg.ent_coef * ent_loss
    if state.q is not None:
        pmoe_loss, pmoe_metrics = pmoe_losses(state, obs, actions, returns)
        return loss + pmoe_loss, pg_metrics | v_metrics | ent_metrics | pmoe_metrics
    return loss, pg_metrics | v_metrics | ent_metrics | mc_metrics


def pmoe_losses(state: State, obs, actions, returns) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PMOE-PPO's extra terms, as the authors' code: Q(s, a) regressed on the GAE returns of the
    rollout's actions, and the routing weights regressed toward the expert whose sampled action
    has the highest Q (Ren et al. 2021, the frequency approximate gradient)."""
    params = state.actor(obs)
    with torch.no_grad():
        candidates = state.actor.head.component_samples(params)  # [N, K, A]
        n, k = candidates.shape[:2]
        repeated = tree_map(lambda x: x.repeat_interleave(k, dim=0), obs)  # [N*K, ...]
        q_experts = state.q(repeated, candidates.flatten(0, 1))[0].view(n, k)  # [N, K]
    route_loss, route_metrics = routing_loss(params[0].exp(), q_experts)
    q_loss, q_metrics = q_regression(state.q(obs, actions), returns)
    return route_loss + q_loss, route_metrics | q_metrics


def update(state: State, cfg: Config, rollout, progress: float) -> dict[str, torch.Tensor]:
    """Advantages from the rollout, then n_epochs of minibatch steps on the clipped objective."""
    lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
    clip_eps = scheduled(cfg.clip_range, cfg.clip_range_schedule, progress)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    rewards, terminated, dones = rollout.rewards, rollout.terminated, rollout.dones
    if cfg.reward_components:  # one GAE per reward component (multi-critic, SLIM)
        rewards, terminated, dones = require_reward_vector("ppo", cfg, rollout.reward_vector), terminated[..., None], dones[..., None]
    advantages = gae(
        rewards, rollout.values, rollout.next_values, terminated, dones,
        gamma=cfg.gamma, lam=cfg.gae_lambda,
    )  # [T, B] ([T, B, K] with reward components)
    returns = advantages + rollout.values
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [T, B, ...] -> [T*B, ...]
    b_obs = tree_map(flat, rollout.obs)
    b_actions, b_logp, b_values = flat(rollout.actions), flat(rollout.logp), flat(rollout.values)
    b_adv, b_returns = flat(advantages), flat(returns)
    n = b_adv.shape[0]
    size = min(cfg.batch_size, n)
    loss_fn = compiled(minibatch_loss) if cfg.compile else minibatch_loss
    clip = torch.tensor(clip_eps, device=b_adv.device)
    params = [p for group in state.optimizer.param_groups for p in group["params"]]
    metrics: dict[str, torch.Tensor] = {}
    for _ in range(cfg.n_epochs):
        for idx in torch.randperm(n, device=b_adv.device).split(size):
            mb_obs = tree_map(lambda x: x[idx], b_obs)
            loss, metrics = loss_fn(state, cfg, mb_obs, b_actions[idx], b_logp[idx], b_adv[idx], b_returns[idx], b_values[idx], clip)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            metrics["train/grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            state.optimizer.step()
        if cfg.target_kl is not None and metrics["train/approx_kl"] > 1.5 * cfg.target_kl:
            break  # early stop as SB3 (a host sync, only when target_kl is set)
    metrics["train/explained_variance"] = explained_variance(b_values, b_returns)
    for k in range(cfg.reward_components):
        metrics[f"train/explained_variance_{k}"] = explained_variance(b_values[:, k], b_returns[:, k])
    metrics["train/learning_rate"] = torch.tensor(lr)
    metrics["train/clip_range"] = torch.tensor(clip_eps)
    return metrics


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    if cfg.reward_components:
        check_reward_vector("ppo", cfg)
    return train_on_policy("ppo", cfg, make, update, sources=sources, resume=resume)
