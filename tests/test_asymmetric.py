"""Asymmetric actor-critic (`actor_keys`): the actor never reads the privileged keys while the
critics do, for PPO, SAC and TD3; the privileged-observation wrappers; config validation; runs
that train, evaluate from the saved policy alone, repeat and resume exactly."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dramaturg
from dramaturg import algos, api, cli
from dramaturg.algos import ppo, sac, td3
from dramaturg.config import ConfigError
from dramaturg.envs.privileged import (
    NoisyPartialObservation,
    PrivilegedObservation,
    partially_observed,
)
from tests.helpers import assert_same_state, final_state, metric_rows
from tests.helpers import dramaturg as run_cli

TASK = "dramaturg.envs.privileged:partially_observed"
SPACE = gym.spaces.Dict(
    {
        "obs": gym.spaces.Box(-np.inf, np.inf, (2,)),
        "privileged": gym.spaces.Box(-np.inf, np.inf, (3,)),
    }
)
ACTIONS = gym.spaces.Box(-2.0, 2.0, (1,))
MODULES = {"ppo": ppo, "sac": sac, "td3": td3}


def batch(n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(n, 2, generator=g), "privileged": torch.randn(n, 3, generator=g)}


def critic_value(name: str, state, obs) -> torch.Tensor:
    if name == "ppo":
        return state.critic(obs)
    return state.critic(obs, torch.zeros(obs["obs"].shape[0], 1))


# -- the actor sees only its keys -------------------------------------------------------------


@pytest.mark.parametrize("name", ["ppo", "sac", "td3"])
def test_privileged_input_moves_the_critic_but_never_the_actor(name):
    module = MODULES[name]
    torch.manual_seed(0)
    state = module.make(module.Config(actor_keys="obs"), SPACE, ACTIONS, torch.device("cpu"))
    first = next(p for p in state.actor.parameters() if p.dim() == 2)
    assert first.shape[1] == 2, "the actor's input is the 2-d 'obs' key alone"
    obs = batch()
    changed = {"obs": obs["obs"], "privileged": obs["privileged"] + 5.0}
    torch.testing.assert_close(
        state.actor.act(obs, deterministic=True), state.actor.act(changed, deterministic=True)
    )
    assert not torch.allclose(critic_value(name, state, obs), critic_value(name, state, changed))
    # no gradient path from the privileged input into the actor's output
    leaf = {k: v.clone().requires_grad_(True) for k, v in obs.items()}
    state.actor.act(leaf, deterministic=True).sum().backward()
    assert leaf["privileged"].grad is None and leaf["obs"].grad is not None
    # the actor runs on its keys alone
    torch.testing.assert_close(
        state.actor.act({"obs": obs["obs"]}, deterministic=True),
        state.actor.act(obs, deterministic=True),
    )


@pytest.mark.parametrize("name", ["ppo", "sac", "td3"])
def test_without_actor_keys_the_actor_reads_every_key(name):
    module = MODULES[name]
    state = module.make(module.Config(), SPACE, ACTIONS, torch.device("cpu"))
    first = next(p for p in state.actor.parameters() if p.dim() == 2)
    assert first.shape[1] == 5


# -- wrappers ----------------------------------------------------------------------------------


def test_noisy_partial_observation_keeps_entries_adds_seeded_noise_and_reports_the_truth():
    env = NoisyPartialObservation(gym.make("Pendulum-v1"), keep=[0, 2], noise_std=0.5)
    assert env.observation_space.shape == (2,) and env.privileged_space.shape == (3,)
    obs, info = env.reset(seed=3)
    noise = obs - info["privileged"][[0, 2]]
    assert 0 < np.abs(noise).max() < 5 * 0.5 * 3
    again, info2 = env.reset(seed=3)
    np.testing.assert_array_equal(obs, again)
    np.testing.assert_array_equal(info["privileged"], info2["privileged"])
    quiet = NoisyPartialObservation(gym.make("Pendulum-v1"), keep=[1])
    obs, info = quiet.reset(seed=3)
    np.testing.assert_array_equal(obs, info["privileged"][[1]])


def test_privileged_observation_from_info_or_from_a_function_of_the_env():
    env = partially_observed(keep=[0, 1], noise_std=0.0)
    assert set(env.observation_space.spaces) == {"obs", "privileged"}
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    theta, speed = env.unwrapped.state
    np.testing.assert_allclose(obs["privileged"], [np.cos(theta), np.sin(theta), speed], rtol=1e-6)
    np.testing.assert_array_equal(obs["obs"], obs["privileged"][:2])
    obs, *_ = env.step(np.array([1.0], dtype=np.float32))
    theta, speed = env.unwrapped.state
    np.testing.assert_allclose(obs["privileged"][2], speed, rtol=1e-6)

    state = gym.spaces.Box(-np.inf, np.inf, (2,))
    custom = PrivilegedObservation(gym.make("Pendulum-v1"), lambda e: e.unwrapped.state, state)
    obs, _ = custom.reset(seed=1)
    np.testing.assert_allclose(obs["privileged"], custom.unwrapped.state, rtol=1e-6)
    assert obs["obs"].shape == (3,)


def test_privileged_observation_errors_name_what_is_missing():
    with pytest.raises(ValueError, match="needs privileged_space"):
        PrivilegedObservation(gym.make("Pendulum-v1"))
    env = PrivilegedObservation(
        gym.make("Pendulum-v1"), privileged_space=gym.spaces.Box(-1, 1, (1,))
    )
    with pytest.raises(KeyError, match="no 'privileged' entry"):
        env.reset(seed=0)
    with pytest.raises(ValueError, match=r"keep = \[3\] is invalid"):
        NoisyPartialObservation(gym.make("Pendulum-v1"), keep=[3])


def test_the_task_passes_the_environment_checker():
    from dramaturg.envs.check import inspect_env

    report = inspect_env(TASK, {"keep": [0, 1], "noise_std": 0.1}, steps=50, seed=0)
    assert not report.problems, report


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ppo", "sac", "td3"])
@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        (" ", "must be empty (every key) or name at least one key, comma-separated, e.g. obs"),
        ("obs,", "must be empty (every key) or name at least one key, comma-separated, e.g. obs"),
        ("obs, obs", "names a key twice"),
    ],
)
def test_config_rejects_malformed_actor_keys(name, value, allowed):
    with pytest.raises(ConfigError) as err:
        MODULES[name].Config(actor_keys=value)
    assert str(err.value) == f"{name}: actor_keys = {value!r} is invalid: {allowed}"


@pytest.mark.parametrize("name", ["ppo", "sac", "td3"])
def test_make_rejects_unknown_keys_and_observations_without_keys(name):
    module = MODULES[name]
    with pytest.raises(ConfigError) as err:
        module.make(module.Config(actor_keys="obs,state"), SPACE, ACTIONS, torch.device("cpu"))
    assert str(err.value) == (
        f"{name}: actor_keys = 'obs,state' is invalid: 'state' is not a key of the observation, whose keys are obs, privileged"
    )
    with pytest.raises(
        ConfigError, match=rf"^{name}: actor_keys = 'obs' is invalid: needs a Dict observation"
    ):
        module.make(
            module.Config(actor_keys="obs"),
            gym.spaces.Box(-1, 1, (3,)),
            ACTIONS,
            torch.device("cpu"),
        )


@pytest.mark.parametrize("name", ["ppo", "sac", "td3"])
def test_help_documents_the_option(name):
    text = " ".join(cli.field_parser(name).format_help().split())
    assert "--actor-keys" in text and "asymmetric actor-critic" in text


# -- runs --------------------------------------------------------------------------------------

COMMON = [
    "--env",
    TASK,
    "--env-kwargs",
    '{"keep": [0, 1], "noise_std": 0.1}',
    "--actor-keys",
    "obs",
    "--progress",
    "false",
    "--torch-threads",
    "1",
    "--eval-episodes",
    "1",
]
PPO = [
    "ppo",
    *COMMON,
    "--seed",
    "3",
    "--n-steps",
    "64",
    "--num-envs",
    "2",
    "--batch-size",
    "64",
    "--n-epochs",
    "2",
    "--normalize-obs",
    "true",
    "--eval-every",
    "256",
    "--log-every",
    "128",
    "--checkpoint-every",
    "128",
]
TD3 = [
    "td3",
    *COMMON,
    "--seed",
    "4",
    "--learning-starts",
    "100",
    "--batch-size",
    "32",
    "--net-arch",
    "32,32",
    "--eval-every",
    "300",
    "--log-every",
    "50",
    "--checkpoint-every",
    "150",
]
SAC = [
    "sac",
    *COMMON,
    "--seed",
    "5",
    "--learning-starts",
    "100",
    "--batch-size",
    "32",
    "--net-arch",
    "32,32",
    "--eval-every",
    "300",
    "--log-every",
    "50",
    "--checkpoint-every",
    "150",
]


@pytest.mark.parametrize(
    ("argv", "total", "stop_at"),
    [(PPO, 512, 256), (TD3, 600, 300), (SAC, 600, 300)],
    ids=["ppo", "td3", "sac"],
)
def test_cli_stop_and_resume_in_new_process_is_exact(tmp_path: Path, capsys, argv, total, stop_at):
    """The whole run and the interrupted one are trained here from the command line's flags; the
    resume runs in a new process."""
    whole, part = tmp_path / "whole", tmp_path / "part"

    def train(*flags: str) -> None:
        fields, _ = cli.parse_fields(argv[0], [*argv[1:], "--total-steps", str(total), *flags])
        cfg, sources = api.resolve(argv[0], fields, preset=False)
        algos.get(argv[0]).train(cfg, sources=sources)

    train("--run-dir", str(whole))
    train("--run-dir", str(part), "--stop-at-return=-1e9")
    assert json.loads((part / "summary.json").read_text())["steps_done"] == stop_at
    run_cli("train", "--resume", str(part), "--stop-at-return", "none")
    assert_same_state(final_state(whole), final_state(part))
    assert metric_rows(whole) == metric_rows(part)
    # `dramaturg eval` runs the saved policy, which reads the actor's key alone
    capsys.readouterr()
    assert cli.main(["eval", str(whole), "--episodes", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["episodes"] == 2 and np.isfinite(report["mean_return"])
    # ... also on an environment that gives the actor's view alone, without the privileged key
    actor_view = json.dumps({"keep": [0, 1], "noise_std": 0.1, "privileged": False})
    assert (
        cli.main(
            [
                "eval",
                str(whole),
                "--episodes",
                "2",
                "--env",
                TASK,
                "--env-kwargs",
                actor_view,
                "--json",
            ]
        )
        == 0
    )
    alone = json.loads(capsys.readouterr().out)
    assert alone["returns"] == report["returns"]
    policy = dramaturg.load(whole)
    obs = partially_observed(keep=[0, 1], noise_std=0.1).reset(seed=0)[0]
    np.testing.assert_array_equal(policy.act(obs), policy.act({"obs": obs["obs"]}))
    np.testing.assert_array_equal(policy.act(obs), policy.act(obs["obs"]))


@pytest.mark.parametrize("algo", ["ppo", "td3"])
def test_same_seed_same_parameters_and_the_loaded_policy_acts_like_the_result(tmp_path: Path, algo):
    fields = {
        "env": TASK,
        "env_kwargs": {"keep": [0, 1], "noise_std": 0.1},
        "actor_keys": "obs",
        "seed": 11,
        "total_steps": 400,
        "eval_every": 400,
        "eval_episodes": 1,
        "progress": False,
        "torch_threads": 1,
    }
    if algo == "ppo":
        fields |= {"n_steps": 100, "num_envs": 2, "batch_size": 50, "n_epochs": 2}
    else:
        fields |= {"learning_starts": 200, "batch_size": 32, "net_arch": (32, 32)}
    a = dramaturg.train(algo, run_dir=str(tmp_path / "a"), **fields)
    b = dramaturg.train(algo, run_dir=str(tmp_path / "b"), **fields)
    c = dramaturg.train(algo, run_dir=str(tmp_path / "c"), **(fields | {"seed": 12}))
    pa, pb, pc = (dict(r.policy.named_parameters()) for r in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa), (
        "a different seed should give different parameters"
    )
    assert_same_state(final_state(a.run_dir), final_state(b.run_dir))
    loaded = dramaturg.load(a.run_dir)
    obs = torch.randn(5, 2)
    torch.testing.assert_close(loaded.act(obs), a.policy.act(obs))


@pytest.mark.learning
def test_asymmetric_ppo_balances_cartpole_from_noisy_observations(tmp_path: Path):
    """The actor sees CartPole's state with sensor noise, the critic the true state."""
    result = dramaturg.train(
        "ppo",
        env=TASK,
        env_kwargs={"env": "CartPole-v1", "noise_std": 0.05},
        actor_keys="obs",
        seed=0,
        num_envs=8,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        learning_rate=1e-3,
        lr_schedule="linear",
        clip_range_schedule="linear",
        total_steps=60_000,
        eval_every=5_000,
        eval_episodes=10,
        stop_at_return=400.0,
        checkpoint_every=0,
        progress=False,
        torch_threads=1,
        run_dir=str(tmp_path),
    )
    assert result.summary["solved_step"] is not None, result.summary
