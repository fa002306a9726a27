"""Mirror Descent Policy Optimization, on-policy (Tomar et al. 2022, arXiv:2005.09814, Sec. 4.1).

Each iteration k collects a rollout with pi_theta_k, estimates GAE advantages and takes sgd_steps
Adam steps on that one batch, all on the same objective: the importance-weighted advantage minus
(1/t_k) KL(pi_theta || pi_theta_k), with the step size annealed as t_k = 1 - k/K over the K
iterations of the run. There is no ratio clipping and no line search; the KL term alone is the
trust region. The critic is then fit with PPO's clipped value loss. Defaults follow the authors'
code (`mdpo_on`, built on OpenAI baselines' TRPO): full-batch policy steps, linear step-size decay,
gradient clipping at 0.5, a value step of 5 epochs of minibatches of 128.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from dramaturg.algos.common import compiled, scheduled, train_on_policy
from dramaturg.config import RunConfig, layer_widths, non_negative, one_of, positive, require, unit_interval
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import explained_variance, gae, tree_map
from dramaturg.losses.mirror import categorical_kl, gaussian_kl, mdpo_kl
from dramaturg.losses.policy import entropy_bonus
from dramaturg.losses.value import clipped_value, value_mse
from dramaturg.nn import Adam, StochasticActor, ValueCritic
from dramaturg.nn.heads import CategoricalHead, GaussianHead, MultiCategoricalHead
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(RunConfig):
    learning_rate: float = 3e-4
    """Adam step size of the policy (start value when lr_schedule is linear)."""
    lr_schedule: str = "linear"
    """constant, or linear decay of both step sizes to 0 over total_steps."""
    n_steps: int = 2048
    """Rollout length per environment between updates."""
    sgd_steps: int = 10
    """Passes over each rollout on the MDPO objective (the paper's m)."""
    batch_size: int | None = None
    """Minibatch size of those passes (None: one full-batch step per pass, as the authors' code)."""
    step_size: float = 1.0
    """Mirror-descent step size t_0; the KL term is weighted by 1/t_k."""
    step_size_schedule: str = "linear"
    """linear: t_k = t_0 (1 - k/K) over the K iterations of the run, as the paper; or constant."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is one-step TD, 1 is Monte Carlo."""
    normalize_advantage: bool = True
    """Normalise advantages to zero mean and unit std over the rollout."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm of each policy and value step to this."""
    vf_learning_rate: float = 3e-4
    """Adam step size of the critic (start value when lr_schedule is linear)."""
    vf_epochs: int = 5
    """Passes over each rollout fitting the critic."""
    vf_batch_size: int = 128
    """Minibatch size of the critic's passes (the whole rollout if it is smaller)."""
    clip_range_vf: float | None = 0.2
    """Clip range of the value prediction around the old one (None: plain squared error)."""
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

    def __post_init__(self) -> None:
        super().__post_init__()
        layer_widths(self, "net_arch", "critic_arch")
        positive(self, "learning_rate", "n_steps", "sgd_steps", "step_size", "max_grad_norm")
        positive(self, "vf_learning_rate", "vf_epochs", "vf_batch_size")
        unit_interval(self, "gamma", "gae_lambda")
        non_negative(self, "ent_coef")
        one_of(self, "lr_schedule", ("constant", "linear"))
        one_of(self, "step_size_schedule", ("constant", "linear"))
        one_of(self, "activation", ("tanh", "relu", "elu", "gelu"))
        if self.batch_size is not None:
            positive(self, "batch_size")
        if self.clip_range_vf is not None:
            positive(self, "clip_range_vf")
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
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    iteration: int = 0  # mirror-descent iterations k done; t_k is read from it (checkpointed)


def iterations(cfg: Config) -> int:
    """K, the number of rollouts (mirror-descent iterations) of the run."""
    return math.ceil(cfg.total_steps / (cfg.n_steps * cfg.num_envs))


def mirror_step_size(t0: float, schedule: str, k: int, total: int) -> float:
    """t_k for iteration k = 0..K-1: t_0 (1 - k/K) when linear (the paper's t_k = 1 - (k-1)/K with
    k counted from 1, and the authors' code), so 1/t_k grows from 1/t_0 to K/t_0 and the late
    steps stay close to the previous policy. Floored at t_0/K so a run extended past K keeps a
    finite weight."""
    if schedule == "constant":
        return t0
    return t0 * max(1.0 - k / total, 1.0 / total)


def policy_kl(head: torch.nn.Module, params: Any, params_old: Any) -> Tensor:
    """KL(pi(.|s) || pi_old(.|s)) per state [N] in closed form for the actor's head."""
    if isinstance(head, GaussianHead):
        return gaussian_kl(*params, *params_old)
    if isinstance(head, MultiCategoricalHead):
        return sum(categorical_kl(p, q) for p, q in zip(params, params_old))
    if isinstance(head, CategoricalHead):
        return categorical_kl(params, params_old)
    raise TypeError(f"mdpo has no closed-form KL for a {type(head).__name__}")


def take(tree: Any, idx: Tensor | None) -> Any:
    """Rows `idx` of a tensor, a dict observation or a tuple of distribution parameters; None: all."""
    if idx is None:
        return tree
    if isinstance(tree, tuple):
        return tuple(take(x, idx) for x in tree)
    return tree_map(lambda x: x[idx], tree)


def minibatches(n: int, size: int | None, device: torch.device) -> list[Tensor | None]:
    """A random split of n rows into minibatches, or [None] (the whole batch) when size covers it."""
    if size is None or size >= n:
        return [None]
    return list(torch.randperm(n, device=device).split(size))


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    obs_dim = flat_dim(obs_space)
    actor = StochasticActor(
        obs_dim, action_space, cfg.net_arch, activation=cfg.activation, ortho_init=cfg.ortho_init, log_std_init=cfg.log_std_init
    ).to(device)
    critic = ValueCritic(obs_dim, cfg.critic_arch or cfg.net_arch, activation=cfg.activation, ortho_init=cfg.ortho_init).to(device)
    return State(
        actor,
        critic,
        Adam(actor.parameters(), lr=cfg.learning_rate, eps=1e-5),
        Adam(critic.parameters(), lr=cfg.vf_learning_rate, eps=1e-5),
    )


def policy_loss(
    state: State, cfg: Config, obs, actions: Tensor, logp_old: Tensor, adv: Tensor, params_old: Any, step_size: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """The MDPO objective of a (mini)batch plus the weighted entropy bonus; t_k comes as a tensor so
    that a compiled version serves every iteration."""
    params = state.actor(obs)
    logp, entropy = state.actor.head.log_prob(params, actions), state.actor.head.entropy(params)
    kl = policy_kl(state.actor.head, params, params_old)  # [N]
    pg_loss, pg_metrics = mdpo_kl(logp, logp_old, adv, kl, step_size=step_size)
    ent_loss, ent_metrics = entropy_bonus(entropy)
    return pg_loss + cfg.ent_coef * ent_loss, pg_metrics | ent_metrics


def update(state: State, cfg: Config, rollout, progress: float) -> dict[str, Tensor]:
    """One mirror-descent iteration: sgd_steps passes on the MDPO objective, then the critic."""
    decay = scheduled(1.0, cfg.lr_schedule, progress)
    for opt, lr in ((state.actor_opt, cfg.learning_rate), (state.critic_opt, cfg.vf_learning_rate)):
        for group in opt.param_groups:
            group["lr"] = lr * decay
    t_k = mirror_step_size(cfg.step_size, cfg.step_size_schedule, state.iteration, iterations(cfg))
    advantages = gae(
        rollout.rewards, rollout.values, rollout.next_values, rollout.terminated, rollout.dones,
        gamma=cfg.gamma, lam=cfg.gae_lambda,
    )  # [T, B]
    returns = advantages + rollout.values
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  [T, B, ...] -> [T*B, ...]
    b_obs = tree_map(flat, rollout.obs)
    b_actions, b_logp, b_values = flat(rollout.actions), flat(rollout.logp), flat(rollout.values)
    b_adv, b_returns = flat(advantages), flat(returns)  # [N]
    if cfg.normalize_advantage:
        b_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)
    n, device = b_adv.shape[0], b_adv.device
    with torch.no_grad():
        params_old = state.actor(b_obs)  # pi_theta_k on the batch, the anchor of every step below
    loss_fn = compiled(policy_loss) if cfg.compile else policy_loss
    step_size = torch.tensor(t_k, device=device)
    actor_params, critic_params = list(state.actor.parameters()), list(state.critic.parameters())

    metrics: dict[str, Tensor] = {}
    for _ in range(cfg.sgd_steps):
        for idx in minibatches(n, cfg.batch_size, device):
            loss, metrics = loss_fn(
                state, cfg, take(b_obs, idx), take(b_actions, idx), take(b_logp, idx), take(b_adv, idx),
                take(params_old, idx), step_size,
            )
            state.actor_opt.zero_grad(set_to_none=True)
            loss.backward()
            metrics["train/grad_norm"] = torch.nn.utils.clip_grad_norm_(actor_params, cfg.max_grad_norm)
            state.actor_opt.step()

    for _ in range(cfg.vf_epochs):
        for idx in minibatches(n, cfg.vf_batch_size, device):
            values = state.critic(take(b_obs, idx))
            if cfg.clip_range_vf is None:
                v_loss, v_metrics = value_mse(values, take(b_returns, idx))
            else:
                v_loss, v_metrics = clipped_value(values, take(b_values, idx), take(b_returns, idx), clip=cfg.clip_range_vf)
            state.critic_opt.zero_grad(set_to_none=True)
            v_loss.backward()
            torch.nn.utils.clip_grad_norm_(critic_params, cfg.max_grad_norm)
            state.critic_opt.step()
    state.iteration += 1
    metrics |= v_metrics
    metrics["train/explained_variance"] = explained_variance(b_values, b_returns)
    metrics["train/learning_rate"] = torch.tensor(cfg.learning_rate * decay)
    metrics["train/step_size"] = torch.tensor(t_k)
    return metrics


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    return train_on_policy("mdpo", cfg, make, update, sources=sources, resume=resume)
