"""Mirror Descent Policy Optimization, off-policy (Tomar et al. 2022, arXiv:2005.09814, Sec. 4.2).

SAC-shaped: a replay buffer, twin Q-networks regressed on r + gamma V'(s'), a state-value network V
regressed on min_i Q_i(s, a~) - lambda log pi(a~|s) with a Polyak-averaged target V', and a
tanh-Gaussian actor trained through the reparameterisation trick. The actor's loss adds the
mirror-descent proximity term (1/t_k) KL(pi_theta || pi_theta_k) to a frozen copy pi_theta_k of the
policy, refreshed every `old_policy_every` gradient steps, and linearises the entropy regulariser at
pi_theta_k. The critics follow the authors' code (`mdpo_off`, on Stable-Baselines' SAC with a value
network, as in Haarnoja et al. 2018, arXiv:1801.01290); lambda is tuned toward a target entropy as
in SAC (Haarnoja et al. 2018b, arXiv:1812.05905) unless autotune_entropy is off.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import Tensor

from dramaturg.algos.common import compiled, require_box_actions, train_off_policy
from dramaturg.config import OffPolicyConfig, layer_widths, non_negative, positive
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import polyak_
from dramaturg.losses.mirror import mdpo_off_actor, tanh_gaussian_log_prob
from dramaturg.losses.q import q_regression, td_target, temperature
from dramaturg.losses.value import value_mse
from dramaturg.nn import Adam, QEnsemble, StochasticActor, ValueCritic
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(OffPolicyConfig):
    learning_rate: float = 3e-4
    """Adam step size of actor, critics and temperature."""
    kl_coef: float = 1.0
    """Weight 1/t_k of the KL to the previous policy in the actor loss (0: no proximity term)."""
    old_policy_every: int = 1000
    """Gradient steps between copies pi_theta_k <- pi_theta (the paper's m; 1 is SAC-like)."""
    ent_coef_init: float = 1.0
    """Initial entropy weight lambda."""
    autotune_entropy: bool = True
    """Tune lambda toward target_entropy; False keeps it at ent_coef_init."""
    target_entropy: float | None = None
    """Target entropy (None: -dim(A))."""
    net_arch: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor, Q- and value networks."""
    n_critics: int = 2
    """Q-networks in the ensemble; the value target takes their minimum."""
    log_std_init: float = 0.0
    """Initial bias of the actor's log standard deviation output."""

    def __post_init__(self) -> None:
        super().__post_init__()
        layer_widths(self, "net_arch")
        positive(self, "learning_rate", "old_policy_every", "ent_coef_init", "n_critics")
        non_negative(self, "kl_coef")


@dataclass
class State:
    actor: StochasticActor
    actor_old: StochasticActor  # pi_theta_k, frozen between copies (checkpointed)
    critic: QEnsemble
    value: ValueCritic
    value_target: ValueCritic
    log_alpha: Tensor
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer  # Q-networks and V together, as the authors' code
    alpha_opt: torch.optim.Optimizer
    target_entropy: float
    updates: int = 0  # gradient steps done; pi_theta_k is refreshed when it reaches a multiple of m


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    require_box_actions("mdpo-off", action_space)
    obs_dim, act_dim = flat_dim(obs_space), int(action_space.shape[0])
    actor = StochasticActor(
        obs_dim, action_space, cfg.net_arch, activation="relu", ortho_init=False, log_std_init=cfg.log_std_init, squash=True
    ).to(device)
    critic = QEnsemble(obs_dim, act_dim, cfg.net_arch, members=cfg.n_critics).to(device)
    value = ValueCritic(obs_dim, cfg.net_arch, activation="relu", ortho_init=False).to(device)
    log_alpha = torch.tensor(math.log(cfg.ent_coef_init), device=device, requires_grad=True)
    return State(
        actor,
        copy.deepcopy(actor).requires_grad_(False),
        critic,
        value,
        copy.deepcopy(value).requires_grad_(False),
        log_alpha,
        Adam(actor.parameters(), lr=cfg.learning_rate),
        Adam([*critic.parameters(), *value.parameters()], lr=cfg.learning_rate),
        Adam([log_alpha], lr=cfg.learning_rate),
        -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy,
    )


def critic_loss(
    state: State, cfg: Config, batch, action: Tensor, logp: Tensor, alpha: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Q-networks on r + gamma V'(s') (SAC v1, eqs. 7-8) and V on the soft value
    E_a[min_i Q_i(s, a) - lambda log pi(a|s)] at the actor's sample a (eq. 5), halved as eq. 5."""
    with torch.no_grad():
        q_target = td_target(batch.rewards, state.value_target(batch.next_obs), batch.terminated, gamma=cfg.gamma)
        v_target = state.critic(batch.obs, action).min(0).values - alpha * logp  # [N]
    q_loss, q_metrics = q_regression(state.critic(batch.obs, batch.actions), q_target)
    v_loss, v_metrics = value_mse(state.value(batch.obs), v_target)
    return q_loss + 0.5 * v_loss, q_metrics | v_metrics


def update(state: State, cfg: Config, batch) -> dict[str, Tensor]:
    """One gradient step of temperature, actor, Q- and value networks; then the target value
    network, and every old_policy_every steps the previous policy pi_theta_k."""
    mean, log_std = state.actor(batch.obs)  # [N, A] each
    pre_tanh = mean + log_std.exp() * torch.randn_like(mean)  # reparameterised u; the action is tanh(u)
    action = torch.tanh(pre_tanh)
    logp = tanh_gaussian_log_prob(mean, log_std, pre_tanh)  # [N]
    metrics: dict[str, Tensor] = {}
    if cfg.autotune_entropy:
        alpha_loss, metrics = temperature(state.log_alpha, logp, target_entropy=state.target_entropy)
        state.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        state.alpha_opt.step()
    alpha = state.log_alpha.detach().exp()

    with torch.no_grad():
        mean_old, log_std_old = state.actor_old(batch.obs)
    # the old density at the current policy's action: gradient flows through u, not into pi_theta_k
    logp_old = tanh_gaussian_log_prob(mean_old, log_std_old, pre_tanh)  # [N]
    q_pi = state.critic(batch.obs, action, detach_params=True)[0]  # Q1, as the authors' code
    actor_loss, actor_metrics = mdpo_off_actor(q_pi, logp, logp_old, alpha, kl_coef=cfg.kl_coef)
    state.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    state.actor_opt.step()

    loss_fn = compiled(critic_loss) if cfg.compile else critic_loss
    loss, critic_metrics = loss_fn(state, cfg, batch, action.detach(), logp.detach(), alpha)
    state.critic_opt.zero_grad(set_to_none=True)
    loss.backward()
    state.critic_opt.step()

    polyak_(list(state.value_target.parameters()), list(state.value.parameters()), cfg.tau)
    state.updates += 1
    if state.updates % cfg.old_policy_every == 0:
        state.actor_old.load_state_dict(state.actor.state_dict())  # pi_theta_{k+1} <- pi_theta
    return metrics | actor_metrics | critic_metrics | {"train/alpha": alpha}


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    explore = lambda state, obs: state.actor.act(obs)  # noqa: E731  sampling explores, as SAC
    return train_off_policy("mdpo-off", cfg, make, update, explore, sources=sources, resume=resume)
