"""SRL: the temporal-recall and model losses by hand and in their limiting case (SAC at J = 1), the
model's predicted states and gradient path, open-loop decisions, FAS on a hand-made case, config
validation, and runs that repeat and resume exactly (the model and the sequences being played are
part of the checkpoint)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import dramaturg
from dramaturg import cli
from dramaturg.algos import srl
from dramaturg.algos.common import make_policy
from dramaturg.config import ConfigError
from dramaturg.losses.q import sac_actor
from dramaturg.losses.srl import model_regression, sequence_actor
from dramaturg.nn import ObsNormalizer
from tests.helpers import assert_same_state, final_state, metric_rows
from tests.helpers import dramaturg as run_cli

F64 = torch.float64


def t(*xs, grad: bool = False) -> torch.Tensor:
    return torch.tensor(xs, dtype=F64, requires_grad=grad)


def close(actual, expected, atol=1e-12):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64), rtol=0.0, atol=atol)


# -- losses --------------------------------------------------------------------------------------


def test_sequence_actor_hand_value_and_gradient():
    # two states, J = 2: q [[1, 2], [-1, 0.5]], logp [[-0.5, -1], [0, -2]], alpha 0.5
    q = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=F64, requires_grad=True)
    logp = torch.tensor([[-0.5, -1.0], [0.0, -2.0]], dtype=F64, requires_grad=True)
    loss, m = sequence_actor(q, logp, torch.tensor(0.5, dtype=F64))
    per_state = [(-0.25 - 1.0) + (-0.5 - 2.0), (0.0 + 1.0) + (-1.0 - 0.5)]  # sum over the sequence
    close(loss, sum(per_state) / 2)
    close(m["train/entropy"], 3.5 / 4)
    close(m["train/q_first"], 0.0)
    close(m["train/q_last"], 1.25)
    loss.backward()
    close(q.grad, torch.full((2, 2), -0.5))  # -1 / N at every position: equal weights
    close(logp.grad, torch.full((2, 2), 0.25))  # alpha / N


def test_sequence_actor_with_one_action_is_sacs_actor_loss():
    g = torch.Generator().manual_seed(0)
    q, logp = torch.randn(7, 1, generator=g, dtype=F64), torch.randn(7, 1, generator=g, dtype=F64)
    alpha = torch.tensor(0.3, dtype=F64)
    close(sequence_actor(q, logp, alpha)[0], sac_actor(q[:, 0], logp[:, 0], alpha)[0])


def test_model_regression_hand_value():
    predicted = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64, requires_grad=True)
    loss, m = model_regression(predicted, t(1.0, 0.0, 0.0, 4.0).view(2, 2))
    close(loss, (0 + 4 + 9 + 0) / 4)
    close(m["loss/model"], 13 / 4)
    loss.backward()
    close(predicted.grad.view(-1), [0.0, 1.0, 1.5, 0.0])  # 2 (pred - target) / 4


def adding_model(dim: int) -> srl.Model:
    """m(s, a) = s + a, exactly."""
    model = srl.Model(dim, dim, ()).double()
    with torch.no_grad():
        model.net[0].weight.copy_(torch.cat([torch.zeros(dim, dim), torch.eye(dim)], 1))
        model.net[0].bias.zero_()
    return model


@pytest.mark.parametrize("through_model", [False, True])
def test_predicted_states_by_hand_and_their_gradient_path(through_model):
    model = adding_model(2)
    obs = t(1.0, -1.0).view(1, 2)
    actions = torch.tensor([[[0.5, 0.0], [0.25, 1.0], [1.0, 1.0]]], dtype=F64, requires_grad=True)  # [1, J=3, 2]
    states = srl.predicted_states(model, obs, actions, through_model=through_model)
    close(states[0], [[1.0, -1.0], [1.5, -1.0], [1.75, 0.0]])  # s, s + a0, s + a0 + a1
    if through_model:
        # a critic that reads only the state: the last state's value reaches a_0 and a_1 through the model
        states[0, 2].sum().backward()
        close(actions.grad[0], [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    else:
        assert not states.requires_grad  # constants to the actor


# -- acting open loop ---------------------------------------------------------------------------------


def small_state(num_envs: int, length: int) -> srl.State:
    cfg = srl.Config(env="Pendulum-v1", num_envs=num_envs, sequence_length=length, net_arch=(8,), model_arch=(8,))
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    return srl.make(cfg, gym.spaces.Box(-1.0, 1.0, (3,), np.float32), space, torch.device("cpu"))


def test_explore_plays_each_sequence_open_loop_and_decides_anew_at_episode_starts():
    torch.manual_seed(0)
    state = small_state(num_envs=2, length=3)
    obs = torch.randn(2, 3)
    first = srl.explore(state, obs, torch.tensor([True, True]))
    plan = state.plan.clone()
    torch.testing.assert_close(first, plan[:, 0])
    # the observation is ignored until the sequence is played out, unless an episode starts
    second = srl.explore(state, torch.randn(2, 3), torch.tensor([False, True]))
    torch.testing.assert_close(second[0], plan[0, 1])
    assert not torch.equal(state.plan[1], plan[1]) and torch.equal(second[1], state.plan[1, 0])
    assert state.plan_step.tolist() == [2, 1]
    third = srl.explore(state, torch.randn(2, 3), torch.tensor([False, False]))
    torch.testing.assert_close(third[0], plan[0, 2])
    fourth = srl.explore(state, torch.randn(2, 3), torch.tensor([False, False]))
    assert state.plan_step.tolist() == [1, 1 + 2]  # env 0 decided after 3 actions; env 1 is on its third
    torch.testing.assert_close(fourth[0], state.plan[0, 0])


def test_actor_emits_sequences_of_any_length_whose_first_action_is_the_policy():
    torch.manual_seed(1)
    state = small_state(num_envs=1, length=4)
    obs = torch.randn(5, 3)
    long = state.actor.sequence(obs, 7, deterministic=True)
    assert long.shape == (5, 7, 2) and long.abs().max() < 1
    torch.testing.assert_close(state.actor.sequence(obs, 2, deterministic=True), long[:, :2])
    torch.testing.assert_close(state.actor.act(obs, deterministic=True), long[:, 0])
    actions, logp = state.actor.rsample_sequence(obs, 4)
    assert actions.shape == (5, 4, 2) and logp.shape == (5, 4) and actions.requires_grad


# -- FAS ---------------------------------------------------------------------------------------------


def test_frequency_averaged_score_by_hand():
    # returns -100, -200, -400 at J = 1, 2, 4, i.e. at frequencies 1, 1/2, 1/4
    # trapezoids: (-400 - 200) / 2 * 1/4 + (-200 - 100) / 2 * 1/2 = -150 over a range of 3/4
    close(srl.frequency_averaged_score([1, 2, 4], [-100.0, -200.0, -400.0]), -200.0)
    close(srl.frequency_averaged_score([4, 1, 2], [-400.0, -100.0, -200.0]), -200.0)  # any order
    close(srl.frequency_averaged_score([1, 2, 4], [-100.0, -200.0, -400.0], axis="grid"), -700.0 / 3)
    # a return that does not depend on the frequency is its own score, on either axis
    for axis in ("frequency", "grid"):
        close(srl.frequency_averaged_score([1, 2, 4, 8, 16], [5.0] * 5, axis=axis), 5.0)
    # the frequency axis weighs the fast end: losing only at J = 16 costs little there
    drop = [0.0, 0.0, 0.0, 0.0, -100.0]
    assert srl.frequency_averaged_score([1, 2, 4, 8, 16], drop) > srl.frequency_averaged_score([1, 2, 4, 8, 16], drop, axis="grid")


@pytest.mark.parametrize(("intervals", "returns", "axis"), [([1], [0.0], "frequency"), ([1, 1], [0.0, 1.0], "grid"),
                                                            ([1, 2], [0.0], "grid"), ([1, 2], [0.0, 1.0], "time")])
def test_frequency_averaged_score_rejects_bad_input(intervals, returns, axis):
    with pytest.raises(ValueError):
        srl.frequency_averaged_score(intervals, returns, axis=axis)


class Clock(gym.Env):
    """o_t = (t,); reward = the action; 6 steps."""

    observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), float(action[0]), False, self.t >= 6, {}


class HoldTime(nn.Module):
    """A one-action policy: a = t / 10."""

    action_map = "none"

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.1))

    def act(self, obs, deterministic=True):
        return obs * self.w


class CountOn(srl.SequenceActor):
    """A sequence policy: from o_t = t it emits t/10, t/10 + 1, t/10 + 2, ..."""

    action_map = "none"

    def sequence(self, obs, length, deterministic=False):
        return (obs * 0.1 + torch.arange(length, dtype=obs.dtype)).unsqueeze(-1)  # [1, L, 1]


def test_interval_returns_hold_one_action_or_play_the_sequence():
    space = Clock.observation_space
    hold = make_policy(HoldTime(), ObsNormalizer(None), space, Clock.action_space)
    # J = 2: decisions at t = 0, 2, 4 hold 0, 0.2, 0.4 twice each
    np.testing.assert_allclose(srl.interval_returns(hold, Clock, 2, 2, seed=0), [1.2, 1.2], atol=1e-6)
    np.testing.assert_allclose(srl.interval_returns(hold, Clock, 1, 1, seed=0), [1.5], atol=1e-6)  # 0 + .1 + ... + .5
    count = make_policy(CountOn(1, 1, (4,)), ObsNormalizer(None), space, Clock.action_space)
    # J = 4: from t = 0 play 0, 1, 2, 3; from t = 4 play 0.4, 1.4 (the episode ends)
    np.testing.assert_allclose(srl.interval_returns(count, Clock, 4, 1, seed=0), [6.0 + 1.8], atol=1e-6)


# -- config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sequence_length": 0}, "srl: sequence_length = 0 is invalid: must be > 0 and finite"),
        ({"sequence_length": 2.0}, "srl: sequence_length = 2.0 is invalid: must be of type int"),
        ({"model_learning_rate": -1e-3}, "srl: model_learning_rate = -0.001 is invalid: must be > 0 and finite"),
        ({"learning_rate": math.inf}, "srl: learning_rate = inf is invalid: must be > 0 and finite"),
        ({"ent_coef_init": 0.0}, "srl: ent_coef_init = 0.0 is invalid: must be > 0 and finite"),
        ({"n_critics": 0}, "srl: n_critics = 0 is invalid: must be > 0 and finite"),
        ({"net_arch": ()}, "srl: net_arch = () is invalid: needs at least one layer (its width is the GRU's)"),
        ({"model_arch": (64, 0)}, "srl: model_arch = (64, 0) is invalid: layer widths must be >= 1"),
        ({"env": "dramaturg/Pendulum-v1"}, ("srl: env = 'dramaturg/Pendulum-v1' is invalid: srl needs a Gymnasium "
                                            "environment (it reads episode starts to align decisions), not a native one")),
        ({"tau": 0.0}, "srl: tau = 0.0 is invalid: must be in (0, 1]"),
    ],
)
def test_config_rejects_bad_values_naming_field_value_and_range(overrides, message):
    with pytest.raises(ConfigError) as info:
        srl.Config(**overrides)
    assert str(info.value) == message


def test_every_field_has_a_one_line_doc_shown_by_help():
    help_text = " ".join(cli.field_parser("srl").format_help().split())
    for flag in ("--sequence-length", "--model-learning-rate", "--model-arch", "--model-gradient", "--trend"):
        assert flag in help_text
    assert "plays its J actions open loop" in help_text


def test_srl_refuses_discrete_actions(tmp_path: Path):
    with pytest.raises(ConfigError, match="srl needs a 1-D Box"):
        dramaturg.train("srl", env="CartPole-v1", total_steps=10, progress=False, run_dir=str(tmp_path / "r"))


# -- runs ------------------------------------------------------------------------------------------------

SRL = ["srl", "--env", "Pendulum-v1", "--seed", "5", "--sequence-length", "4", "--learning-starts", "100",
       "--batch-size", "32", "--net-arch", "32,32", "--model-arch", "32", "--eval-every", "300", "--eval-episodes", "1",
       "--log-every", "50", "--checkpoint-every", "150", "--progress", "false", "--torch-threads", "1"]


def test_cli_stop_and_resume_in_new_process_is_exact(tmp_path: Path):
    """The checkpoint at step 150 falls mid-episode and mid-sequence (150 = 4 * 37 + 2): the plan
    being played, the model and its optimiser must come back with it."""
    whole, part = tmp_path / "whole", tmp_path / "part"
    out = run_cli("train", *SRL, "--total-steps", "450", "--run-dir", str(whole)).stdout
    assert "srl on Pendulum-v1: 450 steps" in out
    run_cli("train", *SRL, "--total-steps", "150", "--run-dir", str(part))
    from dramaturg.runtime.checkpoint import load_latest

    parts = load_latest(part / "checkpoints")["parts"]["state"]
    assert parts["plan_step"].tolist() == [2] and "model" in parts and "model_opt" in parts
    run_cli("train", "--resume", str(part), "--total-steps", "450")
    assert_same_state(final_state(whole), final_state(part))
    assert metric_rows(whole) == metric_rows(part)
    keys = {row[1] for row in metric_rows(whole)}
    assert {"loss/model", "loss/actor", "train/q_last", "eval/mean_return"} <= keys


def test_same_seed_same_parameters(tmp_path: Path):
    fields = {"env": "Pendulum-v1", "seed": 11, "total_steps": 300, "sequence_length": 3, "learning_starts": 150,
              "batch_size": 32, "net_arch": (16,), "model_arch": (16,), "eval_every": 300, "eval_episodes": 1,
              "progress": False, "torch_threads": 1}
    a = dramaturg.train("srl", run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train("srl", run_dir=str(tmp_path / "b"), **fields)
    c = dramaturg.train("srl", run_dir=str(tmp_path / "c"), **(fields | {"seed": 12}))
    pa, pb, pc = (dict(r.policy.named_parameters()) for r in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa), "a different seed should give different parameters"
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))
    record = json.loads((a.run_dir / "config.json").read_text())
    assert record["algo"] == "srl" and record["config"]["sequence_length"] == 3


@pytest.mark.learning
def test_srl_swings_up_pendulum_deciding_every_eighth_step(tmp_path: Path):
    """SRL with J = 8 (benchmarks/claims/srl.py's settings, seed 1) reaches -250 at full rate after 10k
    steps, trained only with open-loop sequences of 8 (a random policy returns about -1200). About two
    minutes on an idle core."""
    result = dramaturg.train("srl", env="Pendulum-v1", seed=1, total_steps=10_000, sequence_length=8,
                             learning_rate=1e-3, model_learning_rate=1e-3, net_arch=(64, 64), model_arch=(64, 64),
                             eval_every=10_000, eval_episodes=10, checkpoint_every=0, progress=False, torch_threads=1,
                             run_dir=str(tmp_path / "run"), preset=False)
    assert result.summary["final_eval"]["mean_return"] >= -250.0, result.summary
