"""Twin Delayed DDPG (Fujimoto et al. 2018, arXiv:1802.09477).

Clipped double-Q learning with twin critics (one ensemble), target policy smoothing (clipped
Gaussian noise on the target action), and actor and target updates every `policy_delay` critic
steps. Gaussian exploration noise on the [-1, 1] action. Defaults are SB3's.

`actor_keys="obs"` makes it an asymmetric actor-critic, as Learning to Fly in Seconds (Eschmann et
al. 2023, arXiv:2311.13081): mu reads only the named keys of a Dict observation, the twin critics
read all of them, privileged state included (`envs/privileged.py`); the target
r + gamma min_j Q'_j(s'_priv, mu'(o')) and the actor loss -Q_1(s_priv, mu(o)).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import gymnasium as gym
import torch

from dramaturg.algos.common import actor_view, compiled, require_box_actions, train_off_policy
from dramaturg.config import OffPolicyConfig, key_list, layer_widths, non_negative, one_of, positive
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import polyak_
from dramaturg.losses.q import deterministic_actor, q_regression, td_target
from dramaturg.nn import Adam, DeterministicActor, QEnsemble
from dramaturg.nn.mlp import ACTIVATIONS
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(OffPolicyConfig):
    learning_rate: float = 1e-3
    """Adam step size of actor and critics."""
    policy_delay: int = 2
    """Critic steps per actor and target update."""
    target_policy_noise: float = 0.2
    """Std of the smoothing noise on the target action."""
    target_noise_clip: float = 0.5
    """Clip of the smoothing noise."""
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise on the [-1, 1] action."""
    net_arch: tuple[int, ...] = (400, 300)
    """Hidden layer widths of actor and critics."""
    actor_keys: str = ""
    """Dict observation keys the actor sees, comma-separated; the critics see all (asymmetric actor-critic). Empty: all."""
    activation: str = "relu"
    """Hidden activation of actor and critics: relu, tanh, elu or gelu."""

    def __post_init__(self) -> None:
        super().__post_init__()
        layer_widths(self, "net_arch")
        positive(self, "learning_rate", "policy_delay")
        non_negative(self, "target_policy_noise", "target_noise_clip", "exploration_noise")
        key_list(self, "actor_keys")
        one_of(self, "activation", tuple(ACTIVATIONS))


@dataclass
class State:
    actor: DeterministicActor
    actor_target: DeterministicActor
    critic: QEnsemble
    critic_target: QEnsemble
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    critic_steps: int = 0


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    require_box_actions("td3", action_space)
    obs_dim, act_dim = flat_dim(obs_space), int(action_space.shape[0])
    actor_keys, actor_dim = actor_view("td3", cfg.actor_keys, obs_space)
    actor = DeterministicActor(actor_dim, act_dim, cfg.net_arch, activation=cfg.activation, obs_keys=actor_keys).to(device)
    critic = QEnsemble(obs_dim, act_dim, cfg.net_arch, members=2, activation=cfg.activation).to(device)
    return State(
        actor,
        copy.deepcopy(actor).requires_grad_(False),
        critic,
        copy.deepcopy(critic).requires_grad_(False),
        Adam(actor.parameters(), lr=cfg.learning_rate),
        Adam(critic.parameters(), lr=cfg.learning_rate),
    )


def critic_loss(state: State, cfg: Config, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """TD regression of both critics onto the clipped double-Q target with a smoothed target action."""
    with torch.no_grad():
        next_action = state.actor_target(batch.next_obs)
        noise = (torch.randn_like(next_action) * cfg.target_policy_noise).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
        next_action = (next_action + noise).clamp(-1.0, 1.0)  # target policy smoothing (eq. 14)
        next_q = state.critic_target(batch.next_obs, next_action).min(0).values  # clipped double Q (eq. 10)
        target = td_target(batch.rewards, next_q, batch.terminated, gamma=cfg.gamma)
    return q_regression(state.critic(batch.obs, batch.actions), target)


def update(state: State, cfg: Config, batch) -> dict[str, torch.Tensor]:
    q_loss, metrics = (compiled(critic_loss) if cfg.compile else critic_loss)(state, cfg, batch)
    state.critic_opt.zero_grad(set_to_none=True)
    q_loss.backward()
    state.critic_opt.step()
    state.critic_steps += 1

    if state.critic_steps % cfg.policy_delay == 0:  # delayed policy updates (sec. 5.2)
        q_pi = state.critic(batch.obs, state.actor(batch.obs), detach_params=True)[0]  # Q_1 as the paper
        actor_loss, actor_metrics = deterministic_actor(q_pi)
        state.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        state.actor_opt.step()
        polyak_(list(state.critic_target.parameters()), list(state.critic.parameters()), cfg.tau)
        polyak_(list(state.actor_target.parameters()), list(state.actor.parameters()), cfg.tau)
        metrics |= actor_metrics
    return metrics


def explore(state: State, cfg: Config, obs) -> torch.Tensor:
    action = state.actor(obs)
    return (action + cfg.exploration_noise * torch.randn_like(action)).clamp(-1.0, 1.0)


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    return train_off_policy(
        "td3", cfg, make, update, lambda state, obs: explore(state, cfg, obs), sources=sources, resume=resume
    )
