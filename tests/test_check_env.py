"""The environment checker: one faulty environment per defect, each named by its own message; good
environments pass; `dramaturg check-env` prints every problem and exits 1, or "ok" and exits 0."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import dramaturg
from dramaturg import cli
from dramaturg.envs.check import EnvCheckError, check_env, inspect_env
from dramaturg.envs.factory import EnvError

BOX = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)


class Good(gym.Env):
    """Box(3) float32 observations in [-1, 1], Discrete(2) actions, episodes of 5 steps."""

    observation_space = BOX
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.obs(), {}

    def step(self, action):
        self.t += 1
        return self.obs(), self.reward(), self.t >= 5, False, self.info()

    def obs(self):
        return self.np_random.uniform(-1.0, 1.0, 3).astype(np.float32)

    def reward(self):
        return 1.0

    def info(self):
        return {}


# -- one defect each ---------------------------------------------------------------------------------


class ResetWithoutSeed(Good):
    def reset(self):  # the pre-0.26 Gym signature
        return super().reset()


class StepWithTwoArguments(Good):
    def step(self, action, speed):
        return super().step(action)


class ResetReturnsObservationOnly(Good):
    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)[0]


class StepReturnsDone(Good):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated or truncated, info


class ObservationFloat64(Good):
    def obs(self):
        return super().obs().astype(np.float64)


class ObservationWrongShape(Good):
    def obs(self):
        return super().obs()[:2]


class ObservationList(Good):
    def obs(self):
        return super().obs().tolist()


class ObservationOutOfBounds(Good):
    def obs(self):
        obs = super().obs()
        obs[1] = 5.0
        return obs


class ObservationNaN(Good):
    def obs(self):
        obs = super().obs()
        obs[2] = np.nan
        return obs


class RewardNaN(Good):
    def reward(self):
        return float("nan")


class RewardInfinite(Good):
    def reward(self):
        return float("-inf")


class RewardArray(Good):
    def reward(self):
        return np.array([1.0])


class TerminatedInt(Good):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, int(terminated), truncated, info


class TruncatedNone(Good):
    def step(self, action):
        obs, reward, terminated, _, info = super().step(action)
        return obs, reward, terminated, None, info


class ResetInfoNone(Good):
    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)[0], None


class StepInfoList(Good):
    def info(self):
        return ["lives", 3]


class TupleActions(Good):
    action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))


class DiscreteActionsFromOne(Good):
    action_space = gym.spaces.Discrete(2, start=1)


class MatrixBoxActions(Good):
    action_space = gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32)


class DiscreteObservations(Good):
    observation_space = gym.spaces.Discrete(4)


class NoObservationSpace(gym.Env):
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


class DictMissingKey(Good):
    observation_space = gym.spaces.Dict({"position": BOX, "goal": BOX})

    def obs(self):
        return {"position": super().obs()}


class DictWrongDtype(DictMissingKey):
    def obs(self):
        return {"position": super().obs()["position"], "goal": np.zeros(3, np.int64)}


class UnseededRandomness(Good):
    def obs(self):
        return np.random.uniform(-1.0, 1.0, 3).astype(np.float32)  # global RNG: not replayable


class RaisesInStep(Good):
    def step(self, action):
        if self.t >= 2:
            raise IndexError("grid cell 9 out of range")
        return super().step(action)


class RaisesInConstructor(Good):
    def __init__(self, size: int = 3):
        raise ValueError(f"size {size} is too small")


DEFECTS = [
    # (environment, the problem's text)
    ("ResetWithoutSeed", "reset: signature: reset() does not accept the keywords seed and options"),
    ("StepWithTwoArguments", "step: signature: step(action, speed) cannot be called as step(action)"),
    ("ResetReturnsObservationOnly", "reset: return value: returned a numpy.ndarray of shape (3,) and dtype float32; expected a tuple (observation, info)"),
    ("StepReturnsDone", "step: return value: returned a tuple of 4 values (observation, reward, done, info): the old Gym API"),
    ("ObservationFloat64", "reset: observation: has dtype float64; observation_space has dtype float32"),
    ("ObservationWrongShape", "reset: observation: has shape (2,); observation_space has shape (3,)"),
    ("ObservationList", "reset: observation: is a list ("),
    ("ObservationOutOfBounds", "reset: observation: holds 5.0 at index [1], above observation_space bound 1.0"),
    ("ObservationNaN", "reset: observation: holds nan at index [2]; observations must be finite"),
    ("RewardNaN", "step: reward: is nan; rewards must be finite"),
    ("RewardInfinite", "step: reward: is -inf; rewards must be finite"),
    ("RewardArray", "step: reward: is a numpy.ndarray of shape (1,) and dtype float64; expected a float"),
    ("TerminatedInt", "step: terminated: is an int (0); expected a bool"),
    ("TruncatedNone", "step: truncated: is None; expected a bool"),
    ("ResetInfoNone", "reset: info: is None; expected a dict"),
    ("StepInfoList", "step: info: is a list (['lives', 3]); expected a dict"),
    ("TupleActions", "action_space: type: Tuple(Discrete(2), Discrete(3)) is not supported; dramaturg takes Discrete, MultiDiscrete or Box actions"),
    ("DiscreteActionsFromOne", "action_space: start: Discrete(2, start=1) starts at 1"),
    ("MatrixBoxActions", "action_space: shape: Box(-1.0, 1.0, (2, 2), float32) has shape (2, 2); Box actions must be 1-D"),
    ("DiscreteObservations", "observation_space: type: Discrete(4) is not supported; dramaturg takes Box or Dict (of Box) observations"),
    ("NoObservationSpace", "observation_space: type: is None; expected a gymnasium.spaces.Box or Dict"),
    ("DictMissingKey", "reset: observation: has keys ['position']; observation_space has ['goal', 'position']"),
    ("DictWrongDtype", "reset: observation['goal']: has dtype int64; observation_space has dtype float32"),
    ("UnseededRandomness", "reset: seed: reset(seed=0) twice, then the same actions, gave different values for the first observation"),
    ("RaisesInStep", "step: call: raised IndexError: grid cell 9 out of range (at"),
    ("RaisesInConstructor", "constructor: call: raised ValueError: size 3 is too small (at"),
]


@pytest.mark.parametrize(("name", "text"), DEFECTS, ids=[d[0] for d in DEFECTS])
def test_each_defect_is_named_by_method_and_field(name, text):
    report = inspect_env(f"tests.test_check_env:{name}", steps=30)
    messages = [str(p) for p in report.problems]
    assert any(text in m for m in messages), messages
    assert not report.ok
    # the same defect seen on every step is reported once
    assert len(messages) == len({(p.method, p.field, p.defect) for p in report.problems})


def test_every_problem_is_listed_not_only_the_first():
    class Many(Good):
        def step(self, action):
            obs, _, terminated, truncated, _ = super().step(action)
            return obs.astype(np.float64), float("nan"), int(terminated), truncated, None

    fields = {(p.method, p.field) for p in inspect_env(Many, steps=10).problems}
    assert {("step", "observation"), ("step", "reward"), ("step", "terminated"), ("step", "info")} <= fields


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1", "tests.envs:DictTarget", "tests.envs:make_short_corridor", "tests.test_check_env:Good"])
def test_good_environments_pass(env):
    report = check_env(env, steps=200)
    assert report.ok and report.steps == 200 and report.episodes_ended >= 1
    assert report.summary().startswith(f"{env}: ok (200 steps, ")


def test_check_env_raises_an_env_error_listing_the_problems():
    with pytest.raises(EnvCheckError) as info:
        check_env("tests.test_check_env:RewardNaN", steps=10)
    assert isinstance(info.value, EnvError)
    assert "step: reward: is nan" in str(info.value)
    assert [p.field for p in info.value.report.problems] == ["reward"]


def test_env_kwargs_reach_the_constructor():
    report = inspect_env("tests.test_check_env:RaisesInConstructor", {"size": 7})
    assert "size 7 is too small" in str(report.problems[0])


def test_cli_prints_every_problem_and_exits_1(capsys):
    assert cli.main(["check-env", "tests.test_check_env:DictWrongDtype", "--steps", "20"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "tests.test_check_env:DictWrongDtype: 2 problems:",
        "  reset: observation['goal']: has dtype int64; observation_space has dtype float32",
        "  step: observation['goal']: has dtype int64; observation_space has dtype float32",
    ]


def test_cli_says_ok_and_exits_0(capsys):
    assert cli.main(["check-env", "tests.envs:make_short_corridor", "--env-kwargs", '{"length": 3, "limit": 2}']) == 0
    out = capsys.readouterr().out
    assert out.startswith("tests.envs:make_short_corridor: ok (200 steps, 100 episodes ended; observations Box(1,) float32, actions Discrete(2))")


@pytest.mark.parametrize(("argv", "message"), [
    (["CartPol-v1"], "unknown environment id 'CartPol-v1'"),
    (["CartPole-v1", "--env-kwargs", "{size: 3}"], "--env-kwargs is not valid JSON"),
    (["CartPole-v1", "--env-kwargs", "[3]"], "--env-kwargs must be a JSON object"),
])
def test_cli_bad_input_exits_2(argv, message, capsys):
    assert cli.main(["check-env", *argv]) == 2
    assert message in capsys.readouterr().err


def test_training_checks_the_environment_before_writing_anything(tmp_path: Path):
    run_dir = tmp_path / "run"
    from tests.helpers import dramaturg as run_cli

    proc = run_cli("train", "ppo", "--env", "tests.test_check_env:RewardNaN", "--run-dir", str(run_dir), check=False)
    assert proc.returncode == 2 and "step: reward:" in proc.stderr, proc.stderr
    assert not run_dir.exists()


def test_training_warns_when_episodes_do_not_replay(tmp_path: Path):
    with pytest.warns(UserWarning, match="will differ from an uninterrupted one"):
        dramaturg.train("ppo", env="tests.test_check_env:UnseededRandomness", total_steps=64, n_steps=32, batch_size=32,
                        n_epochs=1, eval_every=0, eval_episodes=1, progress=False, run_dir=str(tmp_path))
