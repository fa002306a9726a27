"""Tests for dramaturg.plotting on fake run folders written by the run-folder contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dramaturg.plotting import group_runs, mean_band, plot_runs, read_curve

BASE = {"env": "CartPole-v1", "total_steps": 40_000, "learning_rate": 1e-3, "eval_every": 10_000}


def make_run(root, name, seed, evals, **overrides):
    """A run folder with config.json and a metrics.csv holding eval and other keys."""
    run = root / name
    run.mkdir()
    config = BASE | overrides | {"seed": seed, "run_dir": str(run)}
    sources = {k: "flag" if k in overrides else "default" for k in config}
    meta = {"algo": "ppo", "config": config, "sources": sources}
    (run / "config.json").write_text(json.dumps(meta))
    lines = ["step,time_s,key,value"]
    for step, ret in evals:
        t = step / 2000
        lines += [
            f"{step},{t},rollout/ep_return,{ret - 20}",
            f"{step},{t},eval/mean_return,{ret}",
            f"{step},{t},eval/std_return,5.0",
            f"{step},{t},time/steps_per_s,2000",
        ]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    return str(run)


@pytest.fixture
def runs(tmp_path):
    k = 10_000
    return [
        make_run(tmp_path, "seed1", 1, [(k, 100), (2 * k, 300), (3 * k, 480)]),
        make_run(tmp_path, "seed2", 2, [(k, 150), (2 * k, 350), (3 * k, 490), (4 * k, 500)]),
        make_run(tmp_path, "lr", 1, [(k, 50), (2 * k, 120), (4 * k, 400)], learning_rate=3e-4),
    ]


def test_group_runs_puts_seeds_together(runs):
    groups = group_runs(runs)
    assert sorted(groups.values()) == sorted([[runs[0], runs[1]], [runs[2]]])
    assert set(groups) == {
        "ppo CartPole-v1 (learning_rate=0.001)",
        "ppo CartPole-v1 (learning_rate=0.0003)",
    }


def test_group_runs_labels_only_algo_and_env_for_one_config(runs):
    assert group_runs(runs[:2]) == {"ppo CartPole-v1": runs[:2]}


def test_read_curve_filters_key_and_picks_x(runs):
    steps, values = read_curve(runs[0])
    np.testing.assert_array_equal(steps, [10_000, 20_000, 30_000])
    np.testing.assert_array_equal(values, [100, 300, 480])
    seconds, _ = read_curve(runs[0], x="time")
    np.testing.assert_array_equal(seconds, [5, 10, 15])


def test_mean_band_interpolates_on_union_of_steps():
    a = (np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    b = (np.array([0.0, 5.0, 20.0]), np.array([2.0, 4.0, 20.0]))
    grid, mean, low, high = mean_band([a, b])
    np.testing.assert_array_equal(grid, [0, 5, 10, 20])
    # at 10, b is interpolated to 4 + (20 - 4) * 5/15; at 20 only b reaches that far
    b10 = 4 + 16 / 3
    np.testing.assert_allclose(mean, [1, 4.5, (10 + b10) / 2, 20])
    np.testing.assert_allclose(low, [0, 4, b10, 20])
    np.testing.assert_allclose(high, [2, 5, 10, 20])


@pytest.mark.parametrize("x", ["steps", "time"])
def test_plot_runs_writes_png(runs, tmp_path, x):
    out = plot_runs(runs, x=x, out=str(tmp_path / "plots" / f"curves-{x}.png"))
    data = open(out, "rb").read()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="run folder not found: .*nowhere"):
        plot_runs([str(tmp_path / "nowhere")], out=str(tmp_path / "x.png"))


def test_missing_metrics(runs, tmp_path):
    (tmp_path / "seed2" / "metrics.csv").unlink()
    with pytest.raises(ValueError, match="no metrics.csv in run folder .*seed2"):
        plot_runs(runs, out=str(tmp_path / "x.png"))


def test_no_rows_for_key(runs, tmp_path):
    with pytest.raises(ValueError, match=r"seed1.metrics\.csv has no rows for key 'eval/nothing'"):
        plot_runs(runs, key="eval/nothing", out=str(tmp_path / "x.png"))
