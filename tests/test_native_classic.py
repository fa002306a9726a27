"""The native classic-control tasks against Gymnasium's own: from the same state, with the same
actions, every step's observation, reward and termination must agree (bit for bit on CPU)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from dramaturg.envs.native import NATIVE, gym_counterpart, native_class

CLASSIC = ["dramaturg/CartPole-v1", "dramaturg/Pendulum-v1", "dramaturg/Acrobot-v1",
           "dramaturg/MountainCarContinuous-v0"]
STEPS = 300


def gym_state(task, env) -> np.ndarray:
    state = np.asarray(env.unwrapped.state, dtype=np.float64)
    if task.gym_id == "MountainCarContinuous-v0":  # (position, velocity) plus the "fresh" flag
        state = np.append(state, 1.0 if env.unwrapped.state.dtype == np.float64 else 0.0)
    return state


def random_actions(space: gym.Space, rng: np.random.Generator, n: int) -> list:
    if isinstance(space, gym.spaces.Discrete):
        return [int(a) for a in rng.integers(0, space.n, n)]
    # beyond the bounds too: clipping is part of the dynamics
    return [rng.uniform(2 * space.low, 2 * space.high).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("env_id", CLASSIC)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_native_steps_match_gymnasium(env_id: str, seed: int):
    task = native_class(env_id)
    env = gym.make(task.gym_id).unwrapped  # no time limit: episodes run on after termination too
    native = task(1, seed=seed)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    native.state = torch.from_numpy(gym_state(task, env)).unsqueeze(0)
    for t, action in enumerate(random_actions(env.action_space, rng, STEPS)):
        obs, reward, terminated, _, _ = env.step(action)
        torch_action = torch.tensor([action]) if isinstance(action, int) else torch.from_numpy(action)[None]
        next_state, native_reward, native_terminated = native.dynamics(native.state, torch_action)
        assert torch.equal(native.observe(next_state)[0], torch.from_numpy(np.asarray(obs, np.float32))), (
            f"{env_id} step {t}: observation differs"
        )
        assert native_reward.item() == float(reward), f"{env_id} step {t}: reward {native_reward.item()} != {reward}"
        assert bool(native_terminated.item()) == terminated, f"{env_id} step {t}: termination differs"
        native.state = next_state
        if terminated:  # restart both from a fresh gym state to keep covering the dynamics
            env.reset(seed=seed + 1000 + t)
            native.state = torch.from_numpy(gym_state(task, env)).unsqueeze(0)


@pytest.mark.parametrize("env_id", CLASSIC)
def test_initial_states_follow_gymnasium_distribution(env_id: str):
    task = native_class(env_id)
    env = gym.make(task.gym_id).unwrapped
    gym_states = []
    for s in range(2000):
        env.reset(seed=s)
        gym_states.append(gym_state(task, env))
    gym_states = np.stack(gym_states)
    native = task(2000, seed=0)
    native.reset()
    ours = native.state.numpy()
    lo, hi = gym_states.min(0), gym_states.max(0)
    span = np.maximum(hi - lo, 1e-12)
    assert np.all(ours.min(0) >= lo - 0.01 * span) and np.all(ours.max(0) <= hi + 0.01 * span)
    np.testing.assert_allclose(ours.mean(0), gym_states.mean(0), atol=0.05 * span.max())


@pytest.mark.parametrize("env_id", CLASSIC)
def test_spaces_match_gymnasium(env_id: str):
    task = native_class(env_id)
    env = gym.make(task.gym_id)
    native = task(2)
    assert native.observation_space == env.observation_space
    assert native.action_space == env.action_space
    assert native.max_episode_steps == env.spec.max_episode_steps


def test_float32_squares_round_as_numpy_scalars():
    from dramaturg.envs.native.classic import _powf_square

    values = np.random.default_rng(0).uniform(-3, 3, 50_000).astype(np.float32)
    expected = np.array([v**2 for v in values], dtype=np.float32)  # NumPy scalars: the C library's powf
    assert np.array_equal(_powf_square(torch.from_numpy(values)).numpy(), expected)


def test_auto_reset_truncation_and_episode_records():
    env = native_class("dramaturg/Pendulum-v1")(3, seed=0)
    env.reset()
    action = torch.zeros(3, 1)
    for t in range(200):
        step = env.step(action)
        if t < 199:
            assert not step.truncated.any()
    assert step.truncated.all() and not step.terminated.any()
    assert not torch.equal(step.obs, step.final_obs)  # obs is the fresh episode's first observation
    finished = env.pop_finished()
    assert len(finished) == 3 and all(length == 200 for _, length in finished)
    assert env.pop_finished() == []


def test_terminated_episodes_restart_and_are_counted():
    env = native_class("dramaturg/CartPole-v1")(64, seed=0)
    env.reset()
    ones = torch.ones(64, dtype=torch.long)
    lengths = []
    for _ in range(60):
        step = env.step(ones)  # always push right: falls within ~10 steps
        lengths += [length for _, length in env.pop_finished()]
        assert torch.equal(step.terminated.bool() | step.truncated.bool(), env.elapsed == 0)
    assert len(lengths) >= 64 and all(5 <= n <= 60 for n in lengths)


def test_same_seed_same_trajectory_and_state_dict_round_trip():
    task = native_class("dramaturg/Acrobot-v1")
    a, b = task(8, seed=5), task(8, seed=5)
    a.reset(), b.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        act = torch.randint(0, 3, (8,), generator=gen)
        assert torch.equal(a.step(act).obs, b.step(act).obs)
    saved = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in a.state_dict().items()}
    act = torch.randint(0, 3, (8,), generator=gen)
    first = [a.step(act).obs for _ in range(600)]
    c = task(8, seed=99)
    c.load_state_dict(saved)
    assert all(torch.equal(x, c.step(act).obs) for x in first)


def test_every_native_id_is_registered_with_its_counterpart():
    for env_id in NATIVE:
        task = native_class(env_id)
        assert gym_counterpart(env_id) == task.gym_id
    assert gym_counterpart("CartPole-v1") is None
