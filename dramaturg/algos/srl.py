"""Sequence Reinforcement Learning (SRL; Patel & Siegelmann, "Overcoming Slow Decision Frequencies in
Continuous Control: Model-Based Sequence Reinforcement Learning for Model-Free Control",
arXiv:2410.08979, ICLR 2025).

The agent decides only every J steps: from the state s_t its actor emits J actions a_t..a_{t+J-1}
(a GRU unrolled from s_t, so it "can produce sequences of arbitrary lengths given a single state",
paper Fig. 1), played open loop. SAC's soft twin critics learn from the real primitive transitions,
and so does a model m(s, a) -> s'. The actor learns by temporal recall: the model predicts the states
s^_{t+j} its sequence would pass through and the critic values each action there
(`losses/srl.py:sequence_actor`). The model is used in training only, never to act.

Not verified against the paper's body (no code was released): the GRU's input (the previous
action), the model's output (s + a learned difference), the loss weights (equal, summed) and the
gradient path. By default the predicted states are constants to the actor: each action is improved
at the state it is predicted to meet, while Q(s^_{t+j}, a_{t+j}) already values everything after it;
`model_gradient` lets the critic's gradient also flow back through the model into earlier actions.

`frequency_averaged_score` and `interval_returns` measure a trained policy across decision intervals.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from dramaturg.algos.common import require_box_actions, train_off_policy
from dramaturg.config import OffPolicyConfig, layer_widths, positive, require
from dramaturg.envs.spaces import flat_dim
from dramaturg.functional import polyak_
from dramaturg.losses.q import q_regression, td_target, temperature
from dramaturg.losses.srl import model_regression, sequence_actor
from dramaturg.nn import Adam, QEnsemble
from dramaturg.nn.heads import TanhGaussianHead
from dramaturg.nn.mlp import flatten_obs, mlp
from dramaturg.runtime.session import Result


@dataclass(frozen=True)
class Config(OffPolicyConfig):
    sequence_length: int = 4
    """Actions per decision J: the actor decides every J steps and plays its J actions open loop."""
    learning_rate: float = 3e-4
    """Adam step size of actor, critics and temperature."""
    model_learning_rate: float = 3e-4
    """Adam step size of the model m(s, a) -> s'."""
    ent_coef_init: float = 1.0
    """Initial entropy temperature alpha."""
    autotune_entropy: bool = True
    """Tune alpha toward target_entropy; False keeps it at ent_coef_init."""
    target_entropy: float | None = None
    """Target entropy of each action of a sequence (None: -dim(A))."""
    net_arch: tuple[int, ...] = (256, 256)
    """Hidden widths of the critics and of the actor's state encoder (its last width is the GRU's)."""
    model_arch: tuple[int, ...] = (256, 256)
    """Hidden widths of the model."""
    n_critics: int = 2
    """Q-networks in the ensemble; the target takes their minimum."""
    model_gradient: bool = False
    """Let the critic's gradient at predicted states flow through the model into earlier actions."""

    def __post_init__(self) -> None:
        super().__post_init__()
        layer_widths(self, "net_arch", "model_arch")
        require(self, len(self.net_arch) >= 1, "net_arch", "needs at least one layer (its width is the GRU's)")
        positive(self, "sequence_length", "learning_rate", "model_learning_rate", "ent_coef_init", "n_critics")
        require(self, not self.env.startswith("dramaturg/"), "env",
                "srl needs a Gymnasium environment (it reads episode starts to align decisions), not a native one")


class SequenceActor(nn.Module):
    """pi(a_t..a_{t+L-1} | s_t): an MLP encodes s_t into the GRU's first hidden state; each GRU step
    takes the previous action (zeros first) and a tanh-Gaussian head gives the next action."""

    action_map = "scale"

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.torso = mlp(obs_dim, hidden, None, activation="relu")
        self.gru = nn.GRUCell(act_dim, hidden[-1])
        self.head = TanhGaussianHead(hidden[-1], act_dim)
        self.act_dim = act_dim

    def unroll(self, obs, length: int, draw: Callable) -> tuple[Tensor, Tensor | None]:
        h = self.torso(flatten_obs(obs))  # [N, H]
        previous = h.new_zeros(h.shape[0], self.act_dim)
        actions, logps = [], []
        for _ in range(length):
            h = self.gru(previous, h)
            previous, logp = draw(self.head(h))
            actions.append(previous)
            logps.append(logp)
        return torch.stack(actions, 1), (torch.stack(logps, 1) if logps[0] is not None else None)  # [N, L, A], [N, L]

    def rsample_sequence(self, obs, length: int) -> tuple[Tensor, Tensor]:
        """Reparameterised actions [N, L, A] and their log-probabilities [N, L]."""
        return self.unroll(obs, length, self.head.rsample)

    def sequence(self, obs, length: int, deterministic: bool = False) -> Tensor:
        pick = self.head.mode if deterministic else self.head.sample
        return self.unroll(obs, length, lambda params: (pick(params), None))[0]

    def sample(self, obs) -> tuple[Tensor, Tensor]:
        actions, logp = self.rsample_sequence(obs, 1)
        return actions[:, 0], logp[:, 0]

    def act(self, obs, deterministic: bool = False) -> Tensor:
        """The first action of the sequence: the policy at full decision frequency."""
        return self.sequence(obs, 1, deterministic)[:, 0]


class Model(nn.Module):
    """m(s, a) = s + f(s, a): the next (flattened, normalised) observation."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden, obs_dim, activation="relu")

    def forward(self, obs, action: Tensor) -> Tensor:
        x = flatten_obs(obs)
        return x + self.net(torch.cat([x, action], -1))


@dataclass
class State:
    actor: SequenceActor
    critic: QEnsemble
    critic_target: QEnsemble
    model: Model
    log_alpha: torch.Tensor
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    model_opt: torch.optim.Optimizer
    alpha_opt: torch.optim.Optimizer
    target_entropy: float
    plan: torch.Tensor  # [B, J, A] the sequence each environment is playing
    plan_step: torch.Tensor  # [B] index of the next action to play; J: decide anew


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    require_box_actions("srl", action_space)
    obs_dim, act_dim = flat_dim(obs_space), int(action_space.shape[0])
    actor = SequenceActor(obs_dim, act_dim, cfg.net_arch).to(device)
    critic = QEnsemble(obs_dim, act_dim, cfg.net_arch, members=cfg.n_critics).to(device)
    model = Model(obs_dim, act_dim, cfg.model_arch).to(device)
    log_alpha = torch.tensor(math.log(cfg.ent_coef_init), device=device, requires_grad=True)
    return State(
        actor,
        critic,
        copy.deepcopy(critic).requires_grad_(False),
        model,
        log_alpha,
        Adam(actor.parameters(), lr=cfg.learning_rate),
        Adam(critic.parameters(), lr=cfg.learning_rate),
        Adam(model.parameters(), lr=cfg.model_learning_rate),
        Adam([log_alpha], lr=cfg.learning_rate),
        -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy,
        torch.zeros(cfg.num_envs, cfg.sequence_length, act_dim, device=device),
        torch.full((cfg.num_envs,), cfg.sequence_length, dtype=torch.long, device=device),
    )


def predicted_states(model: Model, obs, actions: Tensor, *, through_model: bool) -> Tensor:
    """s^_t = s_t and s^_{t+j+1} = m(s^_{t+j}, a_{t+j}) for j < J - 1: [N, J, D]. Without
    `through_model` the states are constants to the actor's loss."""
    with torch.set_grad_enabled(through_model):
        states = [flatten_obs(obs)]
        for j in range(actions.shape[1] - 1):
            states.append(model(states[-1], actions[:, j] if through_model else actions[:, j].detach()))
    return torch.stack(states, 1)


def update(state: State, cfg: Config, batch) -> dict[str, torch.Tensor]:
    """One gradient step of temperature, critics, model and actor, then the target critics."""
    actions, logp = state.actor.rsample_sequence(batch.obs, cfg.sequence_length)  # [N, J, A], [N, J]
    metrics: dict[str, torch.Tensor] = {}
    if cfg.autotune_entropy:
        alpha_loss, metrics = temperature(state.log_alpha, logp, target_entropy=state.target_entropy)
        state.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        state.alpha_opt.step()
    alpha = state.log_alpha.detach().exp()

    # critic and model: real primitive transitions only
    with torch.no_grad():
        next_action, next_logp = state.actor.sample(batch.next_obs)
        next_q = state.critic_target(batch.next_obs, next_action).min(0).values  # [N]
        target = td_target(batch.rewards, next_q - alpha * next_logp, batch.terminated, gamma=cfg.gamma)
    q_loss, q_metrics = q_regression(state.critic(batch.obs, batch.actions), target)
    state.critic_opt.zero_grad(set_to_none=True)
    q_loss.backward()
    state.critic_opt.step()
    model_loss, model_metrics = model_regression(state.model(batch.obs, batch.actions), flatten_obs(batch.next_obs))
    state.model_opt.zero_grad(set_to_none=True)
    model_loss.backward()
    state.model_opt.step()

    # actor: temporal recall over the model's predicted states
    n, j = logp.shape
    states = predicted_states(state.model, batch.obs, actions, through_model=cfg.model_gradient)  # [N, J, D]
    q = state.critic(states.flatten(0, 1), actions.flatten(0, 1), detach_params=True).min(0).values.view(n, j)
    actor_loss, actor_metrics = sequence_actor(q, logp, alpha)
    state.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    state.actor_opt.step()

    polyak_(list(state.critic_target.parameters()), list(state.critic.parameters()), cfg.tau)
    return metrics | q_metrics | model_metrics | actor_metrics


def explore(state: State, obs, episode_start: Tensor) -> Tensor:
    """The next action of each environment's sequence; a new sequence (sampled) at an episode's
    first step and after J actions."""
    length = state.plan.shape[1]
    decide = (state.plan_step >= length) | episode_start  # [B]
    if bool(decide.any()):
        fresh = state.actor.sequence(obs, length)  # [B, J, A]
        state.plan = torch.where(decide.view(-1, 1, 1), fresh, state.plan)
        state.plan_step = torch.where(decide, torch.zeros_like(state.plan_step), state.plan_step)
    action = state.plan[torch.arange(state.plan.shape[0], device=state.plan.device), state.plan_step]
    state.plan_step = state.plan_step + 1
    return action


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    def act(state: State, obs, env) -> Tensor:
        episode_start = torch.as_tensor(env.ep_length == 0, device=state.plan_step.device)  # obs is an episode's first
        return explore(state, obs, episode_start)

    return train_off_policy("srl", cfg, make, update, act, sources=sources, resume=resume, explore_sees_env=True)


# -- measuring across decision frequencies --------------------------------------------------------


def frequency_averaged_score(intervals: Sequence[int], returns: Sequence[float], *, axis: str = "frequency") -> float:
    """FAS of the mean returns measured when deciding every J in `intervals` steps.

    `axis="frequency"`: the area under return against decision frequency f = 1/J (trapezoids),
    divided by the range of f, so it reads as a return: the definition the paper's reviewers quote
    ("the area under the curve of the reward vs decision frequency plot"). `axis="grid"`: the plain
    mean over the intervals (the catalogue's "mean over J"). Assumed, not verified: the paper's grid,
    axis scaling and return normalisation (a fixed affine normalisation would not change which of
    two agents scores higher).
    """
    if len(intervals) != len(returns) or len(intervals) < 2 or len(set(intervals)) != len(intervals):
        raise ValueError("FAS needs at least two distinct intervals, one return each")
    if axis == "grid":
        return float(np.mean(returns))
    if axis != "frequency":
        raise ValueError(f"axis = {axis!r} is invalid: must be frequency or grid")
    order = np.argsort([1.0 / j for j in intervals])
    f = np.array([1.0 / intervals[i] for i in order])
    r = np.array([returns[i] for i in order], dtype=np.float64)
    return float(np.sum((r[1:] + r[:-1]) / 2 * np.diff(f)) / (f[-1] - f[0]))


@torch.no_grad()
def interval_returns(policy, make_env: Callable[[], gym.Env], interval: int, episodes: int, *, seed: int) -> np.ndarray:
    """Returns of `episodes` deterministic episodes in which the agent decides every `interval` steps.

    A policy whose actor emits sequences (SRL) plays the first `interval` actions it emits from the
    decision's observation; any other policy holds its action for `interval` steps (action repeat).
    """
    returns = np.zeros(episodes)
    device = next(policy.parameters()).device
    for episode in range(episodes):
        env = make_env()
        obs, _ = env.reset(seed=seed + episode)
        done, plan, step = False, None, interval
        while not done:
            if step == interval:
                x = policy.obs_norm(torch.as_tensor(np.asarray(obs), device=device).unsqueeze(0))
                if isinstance(policy.actor, SequenceActor):
                    plan = policy.to_env(policy.actor.sequence(x, interval, deterministic=True)[0])  # [J, A]
                else:
                    plan = policy.to_env(policy.actor.act(x, deterministic=True)).expand(interval, -1)
                step = 0
            obs, reward, terminated, truncated, _ = env.step(plan[step].cpu().numpy().astype(env.action_space.dtype))
            returns[episode] += reward
            step += 1
            done = terminated or truncated
        env.close()
    return returns
