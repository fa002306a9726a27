"""Advantage Actor-Critic, synchronous (Mnih et al. 2016, arXiv:1602.01783).

One gradient step per rollout of n_steps x num_envs on the policy gradient with an advantage
baseline, value regression and an entropy bonus; RMSprop as in the paper and SB3 (whose defaults
these are; SB3's A2C uses GAE with lambda 1, i.e. n-step returns).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch

from dramaturg.algos.common import scheduled, train_on_policy
from dramaturg.config import RunConfig, layer_widths, non_negative, one_of, positive, require, unit_interval
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import explained_variance, gae, tree_map
from dramaturg.losses.policy import entropy_bonus, policy_gradient
from dramaturg.losses.value import value_mse
from dramaturg.nn import Adam, StochasticActor, ValueCritic
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(RunConfig):
    learning_rate: float = 7e-4
    """Step size (start value when lr_schedule is linear)."""
    lr_schedule: str = "constant"
    """constant, or linear decay to 0 over total_steps."""
    n_steps: int = 5
    """Rollout length per environment between updates."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda (1: n-step returns as in the paper)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this."""
    normalize_advantage: bool = False
    """Normalise advantages over the rollout."""
    optimizer: str = "rmsprop"
    """rmsprop (alpha 0.99, as the paper) or adam."""
    rms_prop_eps: float = 1e-5
    """RMSprop epsilon."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of actor and critic."""
    activation: str = "tanh"
    """Hidden activation: tanh, relu, elu or gelu."""
    ortho_init: bool = True
    """Orthogonal initialisation (hidden gain sqrt 2, policy output 0.01, value output 1)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of a Gaussian policy."""

    def __post_init__(self) -> None:
        super().__post_init__()
        layer_widths(self, "net_arch")
        positive(self, "learning_rate", "n_steps", "max_grad_norm", "rms_prop_eps")
        unit_interval(self, "gamma", "gae_lambda")
        non_negative(self, "ent_coef", "vf_coef")
        one_of(self, "lr_schedule", ("constant", "linear"))
        one_of(self, "optimizer", ("rmsprop", "adam"))
        one_of(self, "activation", ("tanh", "relu", "elu", "gelu"))
        require(
            self,
            not (self.normalize_advantage and self.n_steps * self.num_envs < 2),
            "normalize_advantage",
            "needs num_envs * n_steps >= 2 to normalise over",
        )


@dataclass
class State:
    actor: StochasticActor
    critic: ValueCritic
    optimizer: torch.optim.Optimizer


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    obs_dim = flat_dim(obs_space)
    actor = StochasticActor(
        obs_dim, action_space, cfg.net_arch, activation=cfg.activation, ortho_init=cfg.ortho_init, log_std_init=cfg.log_std_init
    ).to(device)
    critic = ValueCritic(obs_dim, cfg.net_arch, activation=cfg.activation, ortho_init=cfg.ortho_init).to(device)
    params = [*actor.parameters(), *critic.parameters()]
    if cfg.optimizer == "rmsprop":
        optimizer: torch.optim.Optimizer = torch.optim.RMSprop(params, lr=cfg.learning_rate, alpha=0.99, eps=cfg.rms_prop_eps)
    else:
        optimizer = Adam(params, lr=cfg.learning_rate)
    return State(actor, critic, optimizer)


def update(state: State, cfg: Config, rollout, progress: float) -> dict[str, torch.Tensor]:
    lr = scheduled(cfg.learning_rate, cfg.lr_schedule, progress)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    advantages = gae(
        rollout.rewards, rollout.values, rollout.next_values, rollout.terminated, rollout.dones,
        gamma=cfg.gamma, lam=cfg.gae_lambda,
    )  # [T, B]
    returns = (advantages + rollout.values).flatten()
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [T, B, ...] -> [T*B, ...]
    b_obs = tree_map(flat, rollout.obs)
    adv = advantages.flatten()
    if cfg.normalize_advantage:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    logp, entropy = state.actor.log_prob_entropy(b_obs, flat(rollout.actions))
    pg_loss, pg_metrics = policy_gradient(logp, adv)
    values = state.critic(b_obs)
    v_loss, v_metrics = value_mse(values, returns)
    ent_loss, ent_metrics = entropy_bonus(entropy)
    loss = pg_loss + cfg.vf_coef * v_loss + cfg.ent_coef * ent_loss
    params = [p for group in state.optimizer.param_groups for p in group["params"]]
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    state.optimizer.step()
    return pg_metrics | v_metrics | ent_metrics | {
        "train/grad_norm": grad_norm,
        "train/explained_variance": explained_variance(flat(rollout.values), returns),
    }


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    return train_on_policy("a2c", cfg, make, update, sources=sources, resume=resume)
