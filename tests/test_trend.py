"""The trend observation (TBSAC): its history by hand across steps and resets, its spaces, the
config field's validation, the wiring into training and evaluation, exact resume and repeatability."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dramaturg
from dramaturg import cli
from dramaturg.algos import ppo, sac
from dramaturg.config import ConfigError
from dramaturg.envs.factory import EnvError, EpisodeSeeding
from dramaturg.envs.trend import TrendObservation, trend_env, with_trend
from tests.helpers import assert_resume_is_exact, assert_same_state, final_state
from tests.helpers import dramaturg as run_cli


class Readings(gym.Env):
    """o_t = (100 e + t, -(t^2)) in episode e at step t; the action is ignored; 4 steps per episode."""

    observation_space = gym.spaces.Box(np.array([0.0, -100.0], np.float32), np.array([1000.0, 0.0], np.float32))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.episode = -1

    def _obs(self):
        return np.array([100.0 * self.episode + self.t, -float(self.t**2)], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 4, {}


A = np.zeros(1, np.float32)


def test_differences_history_by_hand_across_steps_and_a_reset():
    env = TrendObservation(Readings(), readings=3)
    obs, _ = env.reset()
    # only o_0 = (0, 0): the earlier readings equal it, so both differences are 0
    np.testing.assert_array_equal(obs, [0, 0, 0, 0, 0, 0])
    obs, *_ = env.step(A)  # o_1 = (1, -1): [o_0 - o_0, o_1 - o_0, o_1]
    np.testing.assert_array_equal(obs, [0, 0, 1, -1, 1, -1])
    obs, *_ = env.step(A)  # o_2 = (2, -4): [o_1 - o_0, o_2 - o_1, o_2]
    np.testing.assert_array_equal(obs, [1, -1, 1, -3, 2, -4])
    obs, *_ = env.step(A)  # o_3 = (3, -9)
    np.testing.assert_array_equal(obs, [1, -3, 1, -5, 3, -9])
    obs, _ = env.reset()  # episode 1: o_0 = (100, 0); nothing of episode 0 remains
    np.testing.assert_array_equal(obs, [0, 0, 0, 0, 100, 0])
    obs, *_ = env.step(A)  # o_1 = (101, -1)
    np.testing.assert_array_equal(obs, [0, 0, 1, -1, 101, -1])
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)


def test_readings_history_by_hand_with_four_readings():
    env = TrendObservation(Readings(), readings=4, form="readings")
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, [0, 0] * 4)
    for _ in range(2):
        obs, *_ = env.step(A)
    np.testing.assert_array_equal(obs, [0, 0, 0, 0, 1, -1, 2, -4])  # oldest first
    for _ in range(2):
        obs, *_ = env.step(A)
    np.testing.assert_array_equal(obs, [1, -1, 2, -4, 3, -9, 4, -16])
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, [100, 0] * 4)


def test_two_differences_and_the_value_are_the_paper_input():
    # TBSAC: [bpm_last_delta, bpm_cur_delta, bpm_cur_observation] from three consecutive readings
    env = TrendObservation(Readings(), readings=3)
    env.reset()
    readings = [env.unwrapped._obs()]
    for _ in range(3):
        obs, *_ = env.step(A)
        readings.append(env.unwrapped._obs())
    o1, o2, o3 = readings[-3:]
    np.testing.assert_array_equal(obs, np.hstack((o2 - o1, o3 - o2, o3)))


def test_spaces_bound_the_differences_and_tile_the_readings():
    diff = TrendObservation(Readings(), readings=3).observation_space
    np.testing.assert_array_equal(diff.low, [-1000, -100, -1000, -100, 0, -100])
    np.testing.assert_array_equal(diff.high, [1000, 100, 1000, 100, 1000, 0])
    stacked = TrendObservation(Readings(), readings=2, form="readings").observation_space
    np.testing.assert_array_equal(stacked.low, [0, -100, 0, -100])
    pendulum = TrendObservation(gym.make("Pendulum-v1"), readings=3).observation_space
    assert pendulum.shape == (9,) and pendulum.dtype == np.float32
    unbounded = TrendObservation(gym.make("MountainCarContinuous-v0"), readings=2).observation_space
    assert np.isfinite(unbounded.high).all()
    half = gym.spaces.Box(np.array([0.0], np.float32), np.array([np.inf], np.float32))
    env = Readings()
    env.observation_space = half
    open_space = TrendObservation(env, readings=2).observation_space
    np.testing.assert_array_equal(open_space.low, [-np.inf, 0])
    np.testing.assert_array_equal(open_space.high, [np.inf, np.inf])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"readings": 1}, "trend: readings = 1 is invalid: must be >= 2"),
        ({"form": "deltas"}, "trend: form = 'deltas' is invalid: must be one of differences, readings"),
    ],
)
def test_wrapper_rejects_bad_arguments(kwargs, message):
    with pytest.raises(EnvError, match=message):
        TrendObservation(Readings(), **kwargs)


def test_wrapper_rejects_observations_that_are_not_flat_boxes():
    from tests.envs import DictTarget

    with pytest.raises(EnvError, match=r"trend: the observation space Dict\(.*is not a flat \(1-D\) Box"):
        TrendObservation(DictTarget())


def test_factory_spec_and_unchanged_spec_without_trend():
    assert with_trend("Pendulum-v1", {"g": 9.0}, 0, "differences") == ("Pendulum-v1", {"g": 9.0})
    env, kwargs = with_trend("Pendulum-v1", {"g": 9.0}, 4, "readings")
    assert env == "dramaturg.envs.trend:trend_env"
    assert kwargs == {"env": "Pendulum-v1", "env_kwargs": {"g": 9.0}, "readings": 4, "form": "readings"}
    made = trend_env(**kwargs)
    assert made.observation_space.shape == (12,) and made.unwrapped.g == 9.0


def test_replaying_an_episode_rebuilds_the_history():
    """Resume rebuilds each sub-environment by replaying its episode under EpisodeSeeding, which
    sits outside the trend wrapper: the history comes back with it."""
    first = EpisodeSeeding(TrendObservation(gym.make("Pendulum-v1"), readings=3), seed=4, index=0)
    first.reset()
    rng = np.random.default_rng(0)
    for _ in range(7):
        obs, *_ = first.step(rng.uniform(-2, 2, 1).astype(np.float32))
    again = EpisodeSeeding(TrendObservation(gym.make("Pendulum-v1"), readings=3), seed=4, index=0)
    rebuilt, _ = again.reset(options={"replay": [first.replay_state]})
    np.testing.assert_array_equal(rebuilt, obs)
    np.testing.assert_array_equal(again.env.history, first.env.history)


# -- the config field ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "overrides", "message"),
    [
        (sac, {"trend": 1}, "sac: trend = 1 is invalid: must be 0 (off) or >= 2 readings"),
        (sac, {"trend": -3}, "sac: trend = -3 is invalid: must be 0 (off) or >= 2 readings"),
        (ppo, {"trend": 2.5}, "ppo: trend = 2.5 is invalid: must be of type int"),
        (sac, {"trend_form": "deltas"}, "sac: trend_form = 'deltas' is invalid: must be one of differences, readings"),
        (sac, {"trend": 3, "env": "dramaturg/Pendulum-v1"},
         "sac: trend = 3 is invalid: needs a Gymnasium environment, not the native dramaturg/Pendulum-v1"),
    ],
)
def test_config_rejects_bad_values_naming_field_value_and_range(module, overrides, message):
    with pytest.raises(ConfigError) as info:
        module.Config(**overrides)
    assert str(info.value) == message


def test_help_documents_the_fields():
    help_text = " ".join(cli.field_parser("sac").format_help().split())
    assert "--trend INT" in help_text and "(TBSAC, Chen et al. 2023)" in help_text
    assert "--trend-form STR" in help_text and "(default: 'differences')" in help_text


def test_training_and_evaluation_observe_the_trend(tmp_path: Path):
    seen = []

    def policy_probe(module):
        original = module.Policy.forward

        def forward(self, obs, deterministic=True):
            seen.append(tuple(obs.shape))
            return original(self, obs, deterministic)

        return forward

    from dramaturg.nn import policy as policy_module

    forward = policy_module.Policy.forward
    policy_module.Policy.forward = policy_probe(policy_module)
    try:
        result = dramaturg.train("sac", env="Pendulum-v1", trend=3, total_steps=120, learning_starts=60, batch_size=16,
                                 net_arch=(8,), eval_every=120, eval_episodes=2, progress=False, torch_threads=1,
                                 run_dir=str(tmp_path / "run"), checkpoint_every=0)
    finally:
        policy_module.Policy.forward = forward
    spaces = json.loads((result.run_dir / "spaces.json").read_text())
    assert spaces["observation"]["shape"] == [9]
    assert seen and set(seen) == {(2, 9)}  # the evaluation's 2 episodes, trend observations
    state = final_state(result.run_dir)
    assert state["/parts/buffer/rows/obs"].shape == (120, 9)
    obs = state["/parts/buffer/rows/obs"]
    # inside an episode, the stored differences are differences of the stored readings
    torch.testing.assert_close(obs[1:40, 3:6], obs[1:40, 6:9] - obs[:39, 6:9])
    torch.testing.assert_close(obs[1:40, 0:3], obs[:39, 3:6])
    # `dramaturg eval` rebuilds the environment as trained, trend included
    assert cli.main(["eval", str(result.run_dir), "--episodes", "1", "--json"]) == 0


# -- runs: exact resume and repeatability ------------------------------------------------------------

SAC_TREND = ["sac", "--env", "Pendulum-v1", "--trend", "3", "--seed", "5", "--learning-starts", "100", "--batch-size",
             "32", "--net-arch", "32,32", "--eval-every", "300", "--eval-episodes", "1", "--log-every", "50",
             "--checkpoint-every", "150", "--progress", "false", "--torch-threads", "1"]


def test_cli_stop_and_resume_in_new_process_is_exact(tmp_path: Path):
    """Checkpoints fall mid-episode (step 150 of 200), so the resumed environments must rebuild their
    trend history; the stopped run is continued in a new process."""
    assert_resume_is_exact(run_cli, SAC_TREND, 450, 150, tmp_path)


def test_same_seed_same_parameters(tmp_path: Path):
    fields = {"env": "Pendulum-v1", "trend": 3, "trend_form": "readings", "seed": 11, "total_steps": 300,
              "learning_starts": 150, "batch_size": 32, "net_arch": (16,), "eval_every": 300, "eval_episodes": 1,
              "progress": False, "torch_threads": 1}
    a = dramaturg.train("sac", run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train("sac", run_dir=str(tmp_path / "b"), **fields)
    c = dramaturg.train("sac", run_dir=str(tmp_path / "c"), **(fields | {"seed": 12}))
    pa, pb, pc = (dict(r.policy.named_parameters()) for r in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa), "a different seed should give different parameters"
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))


@pytest.mark.learning
def test_sac_with_the_trend_learns_orbit_correction(tmp_path: Path):
    """SAC on the trend of the claim check's orbit-correction task (benchmarks/claims/trend_sac.py,
    its settings, seed 1) returns >= 50 after 10k steps: most episodes end with the success bonus
    (a random policy returns about -120). About a minute on an idle core."""
    from benchmarks.claims.trend_sac import ENV

    result = dramaturg.train("sac", env=ENV, trend=3, seed=1, total_steps=10_000, learning_rate=1e-3, batch_size=256,
                             net_arch=(64, 64), learning_starts=500, buffer_size=3000, eval_every=10_000,
                             eval_episodes=10, progress=False, torch_threads=1, run_dir=str(tmp_path / "run"),
                             checkpoint_every=0, preset=False)
    assert result.summary["final_eval"]["mean_return"] >= 50.0, result.summary
