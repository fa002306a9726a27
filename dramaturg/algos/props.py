"""Proximal Robust On-Policy Sampling (Corrado & Hanna, "On-Policy Policy Gradient Reinforcement
Learning Without On-Policy Sampling", arXiv:2311.08290; the authors' code NicholasCorrado/PPOROS,
`PROPS/ppo_props_continuous.py`).

PPO whose data comes from a separate behaviour policy pi_phi. A buffer holds the last b target
batches of n steps per environment. Every m steps (m divides n) the loop hands over the newest
m-step chunk, and:
  1. every n steps, PPO updates the target pi_theta on the whole buffer as if it were on-policy:
     log pi_theta and V are recomputed on every buffered transition, GAE runs across the buffer,
     and the ratio's "old" policy is the current pi_theta (no correction for pi_phi);
  2. pi_phi is reset to pi_theta and refitted on the buffer, less its oldest chunk once the buffer
     is full (it leaves before the next update), minimising `losses/props.py:props_behaviour` for up
     to `props_epochs` x `props_minibatches` steps, stopping once KL(pi_theta || pi_phi) > delta_P.
pi_phi then raises the probability of actions that the buffer holds too few of under pi_theta,
so that the buffer's action distribution comes closer to pi_theta's than on-policy sampling gets.
`sampling = on_policy` collects with pi_theta itself (PPO with the same buffer, "PPO-Buffer").
Evaluation and the saved policy use pi_theta.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from dramaturg.algos import ppo
from dramaturg.algos.common import make_policy
from dramaturg.config import non_negative, one_of, positive, require
from dramaturg.functional import tree_map
from dramaturg.loops import run_on_policy
from dramaturg.losses.mirror import categorical_kl, gaussian_kl
from dramaturg.losses.props import (
    fitted_categorical_sampling_error,
    fitted_gaussian_sampling_error,
    props_behaviour,
)
from dramaturg.nn import Adam, StochasticActor, ValueCritic
from dramaturg.nn.heads import CategoricalHead, GaussianHead, MultiCategoricalHead
from dramaturg.runtime.session import Result, Session
from dramaturg.types import Rollout


@dataclass(frozen=True)
class Config(ppo.Config):
    sampling: str = "props"
    """props: collect with the adaptive behaviour policy; on_policy: with the target (PPO-Buffer)."""
    buffer_batches: int = 2
    """b: target batches of n_steps per environment kept in the buffer that PPO learns from."""
    props_steps: int = 256
    """m: steps per environment between behaviour updates; must divide n_steps."""
    props_clip_range: float = 0.3
    """epsilon_PROPS: clip range of the behaviour ratio pi_phi / pi_theta."""
    props_lambda: float = 0.1
    """lambda: weight of the regulariser KL(pi_phi || pi_theta) in the behaviour loss."""
    props_target_kl: float | None = 0.05
    """delta_PROPS: stop the behaviour fit once KL(pi_theta || pi_phi) on a minibatch exceeds this (None: never)."""
    props_learning_rate: float = 1e-4
    """Adam step size of the behaviour policy."""
    props_epochs: int = 16
    """Passes over the buffer per behaviour fit."""
    props_minibatches: int = 16
    """Minibatches per pass of the behaviour fit."""
    props_max_grad_norm: float = 0.5
    """Clip the behaviour policy's gradient norm to this."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self, "sampling", ("props", "on_policy"))
        # the regulariser is a closed-form KL, which PMOE's mixture policy has not
        one_of(self, "policy", ("gaussian",))
        positive(self, "buffer_batches", "props_steps", "props_clip_range", "props_learning_rate")
        positive(self, "props_epochs", "props_minibatches", "props_max_grad_norm")
        non_negative(self, "props_lambda")
        if self.props_target_kl is not None:
            positive(self, "props_target_kl")
        require(
            self,
            self.n_steps % self.props_steps == 0,
            "props_steps",
            f"must divide n_steps ({self.n_steps})",
        )
        require(
            self,
            self.sampling == "on_policy" or self.buffer_batches * self.n_steps > self.props_steps,
            "props_steps",
            "must be < buffer_batches * n_steps, so the behaviour fit has data once the oldest chunk is left out",
        )


class Window:
    """The buffer: the last b n / m rollout chunks of m steps, oldest first (checkpointed).

    Each chunk may carry `reference` actions [m, B]: at every step of collection, one action drawn
    from the target policy of that moment at the same state as the behaviour's action, and not
    taken. Their sampling error is a reference at the same states, a biased one: on CartPole even
    on-policy data scores above it (docs/props.md).
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.chunks: list[dict[str, Any]] = []
        # reference actions of the chunk under way, one [B] per step
        self.pending: list[Tensor] = []
        # the metrics of the last target update, logged with every chunk until the next
        self.target_metrics: dict[str, Tensor] = {}

    def push(self, chunk: Rollout) -> None:
        """Copies the chunk (the loop's storage is overwritten by the next one), with the pending
        reference actions when there is one per step."""
        keep = ("obs", "actions", "rewards", "next_values", "terminated", "dones")
        copy = {k: tree_map(torch.clone, getattr(chunk, k)) for k in keep}
        if len(self.pending) == chunk.rewards.shape[0]:
            copy["reference"] = torch.stack(self.pending)
        self.chunks, self.pending = [*self.chunks, copy][-self.capacity :], []

    def cat(self, key: str, start: int = 0) -> Any:
        """Chunks `start`.. of one item, joined in time: [T, B, ...]."""
        parts = [c[key] for c in self.chunks[start:]]
        return tree_map(lambda *xs: torch.cat(xs), parts[0], *parts[1:])

    def state_dict(self) -> dict[str, Any]:
        # taken between chunks, when nothing is pending; the metrics are copied because the same
        # tensors are also among the session's pending metrics
        metrics = {k: v.clone() for k, v in self.target_metrics.items()}
        return {"chunks": list(self.chunks), "target_metrics": metrics}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.chunks, self.pending = list(state["chunks"]), []
        self.target_metrics = dict(state["target_metrics"])


@dataclass
class State:
    actor: StochasticActor  # the target pi_theta
    critic: ValueCritic
    optimizer: torch.optim.Optimizer
    behaviour: StochasticActor  # pi_phi
    behaviour_optimizer: torch.optim.Optimizer  # kept across fits, as the authors' code
    window: Window = field(default_factory=lambda: Window(1))
    chunks_seen: int = 0


def make(cfg: Config, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> State:
    base = ppo.make(cfg, obs_space, action_space, device)
    behaviour = copy.deepcopy(base.actor)  # pi_phi = pi_theta at the start
    window = Window(cfg.buffer_batches * cfg.n_steps // cfg.props_steps)
    return State(
        base.actor,
        base.critic,
        base.optimizer,
        behaviour,
        Adam(behaviour.parameters(), lr=cfg.props_learning_rate, eps=1e-5),
        window,
    )


def regulariser(head: torch.nn.Module, params: Any, params_target: Any) -> Tensor:
    """KL(pi_phi(.|s) || pi_theta(.|s)) per state [N], closed form. Gaussian: averaged over the action
    dimensions, as the authors' `kl_regularizer_loss`; categorical: exact (their discrete file uses
    the sampled term pi_theta(a|s) (log pi_theta - log pi_phi) instead)."""
    if isinstance(head, GaussianHead):
        return gaussian_kl(*params, *params_target) / params[0].shape[-1]
    if isinstance(head, MultiCategoricalHead):
        return sum(categorical_kl(p, q) for p, q in zip(params, params_target))
    if isinstance(head, CategoricalHead):
        return categorical_kl(params, params_target)
    raise TypeError(f"props has no closed-form KL for a {type(head).__name__}")


def sampling_error(actor: StochasticActor, obs: Any, actions: Tensor) -> Tensor:
    """The paper's sampling error of (obs, actions) [N, ...] against pi_theta: KL(pi_D || pi_theta)
    with pi_D the target with its output layer refitted to the data (`losses/props.py`)."""
    seen: list[Tensor] = []  # the head's input: the last hidden features h(s)
    hook = actor.head.register_forward_hook(lambda _module, inputs, _output: seen.append(inputs[0]))
    try:
        params = actor(obs)
    finally:
        hook.remove()
    features = seen[0]
    if isinstance(actor.head, GaussianHead):
        return fitted_gaussian_sampling_error(actions, *params, features)
    if isinstance(actor.head, MultiCategoricalHead):
        return sum(
            fitted_categorical_sampling_error(actions[:, i], p, features)
            for i, p in enumerate(params)
        )
    return fitted_categorical_sampling_error(actions, params, features)


def take(tree: Any, idx: Tensor) -> Any:
    if isinstance(tree, tuple):
        return tuple(take(x, idx) for x in tree)
    return tree_map(lambda x: x[idx], tree)


def fit_behaviour(state: State, cfg: Config, obs: Any, actions: Tensor) -> dict[str, Tensor]:
    """phi <- theta, then minimise the PROPS loss on (obs, actions) [N, ...] (the authors'
    `update_props`); the early stop reads KL(pi_theta || pi_phi) before each minibatch step."""
    state.behaviour.load_state_dict(state.actor.state_dict())
    with torch.no_grad():
        target = state.actor(obs)  # pi_theta after this step's PPO update, so r = 1 at the start
        logp_target = state.actor.head.log_prob(target, actions)
    n = actions.shape[0]
    size = max(n // cfg.props_minibatches, 1)
    params = list(state.behaviour.parameters())
    metrics: dict[str, Tensor] = {}
    steps = 0
    for _ in range(cfg.props_epochs):
        for idx in torch.randperm(n, device=actions.device).split(size):
            mb_params = state.behaviour(take(obs, idx))
            logp = state.behaviour.head.log_prob(mb_params, actions[idx])
            kl = regulariser(state.behaviour.head, mb_params, take(target, idx))
            loss, step_metrics = props_behaviour(
                logp, logp_target[idx], kl, clip_eps=cfg.props_clip_range, kl_coef=cfg.props_lambda
            )
            if (
                cfg.props_target_kl is not None
                and step_metrics["train/behaviour_kl"] > cfg.props_target_kl
            ):
                break  # a host sync per minibatch, as the authors' early stop
            metrics = step_metrics
            state.behaviour_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            metrics["train/behaviour_grad_norm"] = torch.nn.utils.clip_grad_norm_(
                params, cfg.props_max_grad_norm
            )
            state.behaviour_optimizer.step()
            steps += 1
        else:
            continue
        break
    metrics["train/behaviour_steps"] = torch.tensor(float(steps))
    return metrics


def buffer_rollout(state: State, cfg: Config) -> Rollout:
    """The whole buffer as one rollout under the current pi_theta and V: log-probabilities and values
    recomputed, next values V(s_{t+1}) from the recomputed values, except where an episode was cut
    off, whose V(final observation) stays the one computed at collection."""
    w = state.window
    obs, actions, rewards = w.cat("obs"), w.cat("actions"), w.cat("rewards")
    terminated, dones, next_values_seen = w.cat("terminated"), w.cat("dones"), w.cat("next_values")
    T, B = rewards.shape
    flat = tree_map(lambda x: x.reshape(T * B, *x.shape[2:]), obs)
    with torch.no_grad():
        logp = state.actor.head.log_prob(
            state.actor(flat), actions.reshape(T * B, *actions.shape[2:])
        ).reshape(T, B)
        values = state.critic(flat).reshape(T, B)
    # the newest chunk's bootstrap V(s_T) was computed by this critic
    next_values = torch.cat([values[1:], next_values_seen[-1:]])
    next_values = torch.where(dones > terminated, next_values_seen, next_values)  # truncated
    return Rollout(obs, actions, logp, values, rewards, next_values, terminated, dones)


def update(state: State, cfg: Config, chunk: Rollout, progress: float) -> dict[str, Tensor]:
    """One m-step chunk in: a PPO update of pi_theta every n steps, then (props) the behaviour fit."""
    w = state.window
    w.push(chunk)
    state.chunks_seen += 1
    if state.chunks_seen % (cfg.n_steps // cfg.props_steps) == 0:
        rollout = buffer_rollout(state, cfg)
        T, B = rollout.rewards.shape
        flat_obs = tree_map(lambda x: x.reshape(T * B, *x.shape[2:]), rollout.obs)
        flat_actions = rollout.actions.reshape(T * B, *rollout.actions.shape[2:])
        with torch.no_grad():
            errors = {"train/sampling_error": sampling_error(state.actor, flat_obs, flat_actions)}
            if all("reference" in c for c in w.chunks):
                reference = w.cat("reference").reshape(flat_actions.shape)
                errors["train/sampling_error_resampled"] = sampling_error(
                    state.actor, flat_obs, reference
                )
        ppo_metrics = ppo.update(
            ppo.State(state.actor, state.critic, state.optimizer), cfg, rollout, progress
        )
        w.target_metrics = (
            errors | ppo_metrics | {"train/buffer_transitions": torch.tensor(float(T * B))}
        )
    metrics = dict(w.target_metrics)
    if cfg.sampling == "props":
        # once the buffer is full its oldest chunk leaves before the next fit, so it is left out
        start = 1 if len(w.chunks) == w.capacity else 0
        obs = tree_map(lambda x: x.reshape(-1, *x.shape[2:]), w.cat("obs", start))
        metrics |= fit_behaviour(state, cfg, obs, w.cat("actions", start).flatten(0, 1))
    return metrics


def train(cfg: Config, *, sources: dict[str, str] | None = None, resume: bool = False) -> Result:
    session = Session("props", cfg, sources=sources, resume=resume)
    env = session.make_env(gamma=cfg.gamma)
    state = make(cfg, env.observation_space, env.action_space, session.device)
    policy = make_policy(state.actor, env.obs_norm, env.observation_space, env.action_space)
    sampler = state.behaviour if cfg.sampling == "props" else state.actor

    def act(obs):
        action, logp = sampler.sample(obs)
        # the target's own draw at this state, not taken: the resampled reference
        state.window.pending.append(state.actor.act(obs))
        return action, logp, state.critic(obs)

    session.start(policy, {"state": state, "buffer": state.window})
    with session.explaining_errors():
        run_on_policy(
            env,
            act,
            state.critic,
            lambda chunk: update(state, cfg, chunk, session.step / cfg.total_steps),
            rollout_len=cfg.props_steps,
            session=session,
        )
    return session.finish()
