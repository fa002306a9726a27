"""The command line end to end, each command in a fresh process as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import dramaturg

QUICK = ["--total-steps", "1024", "--eval-every", "512", "--eval-episodes", "2", "--progress", "false"]


def test_train_writes_a_complete_run_folder_and_eval_reads_it(tmp_path: Path):
    run = tmp_path / "run"
    out = dramaturg("train", "ppo", "--env", "CartPole-v1", "--seed", "2", *QUICK, "--run-dir", str(run)).stdout
    assert "ppo on CartPole-v1: 1024 steps" in out
    for name in ("config.json", "spaces.json", "metrics.csv", "summary.json", "policy/state.safetensors", "checkpoints/latest"):
        assert (run / name).exists(), name
    assert list((run / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"
    record = json.loads((run / "config.json").read_text())
    assert record["algo"] == "ppo" and record["config"]["seed"] == 2
    assert record["sources"]["seed"] == "flag" and record["sources"]["n_steps"] == "preset"
    assert record["sources"]["vf_coef"] == "default" and record["config"]["n_steps"] == 32
    keys = {line.split(",")[2] for line in (run / "metrics.csv").read_text().splitlines()[1:]}
    assert {"eval/mean_return", "rollout/ep_return", "train/approx_kl", "time/steps_per_s"} <= keys

    report = json.loads(dramaturg("eval", str(run), "--episodes", "3", "--json").stdout)
    assert report["episodes"] == 3 and len(report["returns"]) == 3
    assert report["mean_return"] == sum(report["returns"]) / 3 and report["std_return"] >= 0
    # another environment with the same spaces
    other = json.loads(dramaturg("eval", str(run), "--episodes", "2", "--env", "CartPole-v0", "--json").stdout)
    assert other["env"] == "CartPole-v0"
    # environments the policy does not fit are refused by name before any episode
    proc = dramaturg("eval", str(run), "--episodes", "1", "--env", "Pendulum-v1", check=False)
    assert proc.returncode == 2 and "acts in Box(-2.0, 2.0, (1,), float32); the policy of" in proc.stderr
    record["config"]["trend"] = 2  # a config.json at odds with the policy: eight readings for four inputs
    (run / "config.json").write_text(json.dumps(record))
    proc = dramaturg("eval", str(run), "--episodes", "1", check=False)
    assert proc.returncode == 2 and "which the policy of" in proc.stderr and "cannot read" in proc.stderr


def test_config_starts_a_new_run_with_the_same_values(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    dramaturg("train", "a2c", "--env", "CartPole-v1", "--ent-coef", "0.01", *QUICK, "--run-dir", str(first))
    dramaturg("train", "--config", str(first / "config.json"), "--seed", "9", "--run-dir", str(second))
    a = json.loads((first / "config.json").read_text())["config"]
    b = json.loads((second / "config.json").read_text())["config"]
    assert b["ent_coef"] == 0.01 and b["seed"] == 9
    assert {k: v for k, v in a.items() if k not in ("seed", "run_dir")} == {
        k: v for k, v in b.items() if k not in ("seed", "run_dir")
    }


def test_list_and_help(tmp_path: Path):
    listing = dramaturg("list").stdout
    for name in ("ppo", "a2c", "sac", "td3", "CartPole-v1", "Pendulum-v1", "HalfCheetah-v5", "dramaturg/Quadrotor-v0",
                 "dramaturg/Acrobot-v1"):
        assert name in listing
    help_text = dramaturg("train", "sac", "--help").stdout
    for flag in ("--learning-rate", "--buffer-size", "--stop-at-return", "--num-envs", "--vector-env"):
        assert flag in help_text
    assert "Replay buffer capacity in transitions" in help_text


def test_bad_input_exits_2_before_training(tmp_path: Path):
    proc = dramaturg("train", "ppo", "--gamma", "1.5", "--run-dir", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "gamma = 1.5 is invalid: must be in [0, 1]" in proc.stderr
    assert not (tmp_path / "r").exists()
    proc = dramaturg("eval", str(tmp_path / "nowhere"), check=False)
    assert proc.returncode == 1 and "config.json: missing" in proc.stderr


def test_plot_draws_curves(tmp_path: Path):
    runs = [tmp_path / f"s{seed}" for seed in (1, 2)]
    for seed, run in zip((1, 2), runs):
        dramaturg("train", "ppo", "--env", "CartPole-v1", "--seed", str(seed), *QUICK, "--run-dir", str(run))
    out = tmp_path / "curves.png"
    dramaturg("plot", *map(str, runs), "--x", "time", "--out", str(out))
    assert out.stat().st_size > 10_000
