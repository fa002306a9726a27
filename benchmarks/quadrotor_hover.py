"""Learning to hover: train on dramaturg/Quadrotor-v0, then test the policy from random starts.

    python benchmarks/quadrotor_hover.py --seed 0 1 2
    python benchmarks/quadrotor_hover.py --seed 0 --set '{"total_steps": 400000}'

Each seed runs in a child process of its own, as a user's command would, so the time from
process start (interpreter, imports, set-up) is part of what is measured. The child trains through
`dramaturg.train` with the environment's preset (dramaturg/presets.py) and the fields in `--set`,
without periodic evaluations or checkpoints, then flies the final deterministic policy for one 5 s
episode from `--episodes` random starts at once (the authors' initial states, disturbances and
sensor noise) and scores:

  success  fraction of episodes within 0.1 m of the target for the whole last 2 s (hover_success)
  return   mean return under the authors' evaluation reward weights (40, 5, 1, 0, 1)

A seed counts as solved when success >= --threshold (0.9). `--reference` flies the hand-written
controller on the true state (`HoverController`, disturbance force included) through the same test
instead, without training, acting at 100 Hz: what the task allows, for comparison. One JSON line per seed, then a summary.
Times: `process_s` from the child's start to the end of its test, `train_s` training alone,
`command_s` the parent's clock around the whole child. Before each child the parent waits (up to
--patience seconds) until other processes use < 0.25 cores, and it reports how many cores they
used during the run (`foreign_cores`): on two cores any other job slows training down many times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ENV = "dramaturg/Quadrotor-v0"
SUCCESS_THRESHOLD = 0.9
MAX_FOREIGN_CORES = 0.25
# what a timed run leaves out: periodic evaluations and checkpoints (the final ones still happen)
QUIET = {"eval_every": 0, "checkpoint_every": 0, "eval_episodes": 1, "progress": False}
# environment options that change the reward only; the test scores with the evaluation weights
REWARD_OPTIONS = ("curriculum_interval", "position_cost", "reward_weights", "target_reward", "termination_penalty")


def test_kwargs(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The training environment's options less the reward's, plus the authors' evaluation weights."""
    return {k: v for k, v in env_kwargs.items() if k not in REWARD_OPTIONS} | {"target_reward": True}


def run_child(algo: str, seed: int, episodes: int, threshold: float, overrides: dict[str, Any]) -> dict[str, Any]:
    """Train and test in this process; times count from this process's start."""
    import torch

    import dramaturg
    from dramaturg.envs.native.quadrotor import Quadrotor
    from dramaturg.runtime.session import process_start_time

    started = process_start_time()
    with tempfile.TemporaryDirectory() as run_dir:
        result = dramaturg.train(algo, env=ENV, seed=seed, run_dir=run_dir, **(QUIET | overrides))
        config = json.loads((Path(run_dir) / "config.json").read_text())["config"]
        tested = time.time()
        env = Quadrotor(episodes, seed=1_000_000 + seed, **test_kwargs(config["env_kwargs"]))
        scores = score(algo, seed, env.fly(result.policy), threshold)
        done = time.time()
    return scores | {
        "process_s": done - started,
        "train_s": result.summary["train_time_s"],
        "test_s": done - tested,
        "steps": result.summary["steps_done"],
        "updates": result.summary["updates"],
        "torch_threads": torch.get_num_threads(),
        "config": {k: config[k] for k in sorted(config) if k not in ("run_dir", "progress", "seed")},
    }


def run_reference(seed: int, episodes: int, threshold: float) -> dict[str, Any]:
    """The test of `run_child`, flown by the hand-written controller on the true state at every simulator step."""
    from dramaturg.envs.native.quadrotor import HoverController, Quadrotor
    from dramaturg.presets import preset_for

    kwargs = test_kwargs(preset_for("td3", ENV)["env_kwargs"]) | {"privileged": True, "action_repeat": 1}
    env = Quadrotor(episodes, seed=1_000_000 + seed, **kwargs)
    return score("reference", seed, env.fly(HoverController(env)), threshold)


def score(algo: str, seed: int, flight, threshold: float) -> dict[str, Any]:
    """Hover success, crashes and mean return of the test flight (one episode per start)."""
    from dramaturg.envs.native.quadrotor import hover_success

    rate = float(hover_success(flight.positions[1:]).double().mean())
    return {
        "algo": algo,
        "seed": seed,
        "success": rate,
        "solved": rate >= threshold,
        "terminated": float(flight.terminated.double().mean()),
        "mean_return_target": float(flight.returns.mean()),
        "episodes": flight.returns.shape[0],
    }


def busy_cpu_s() -> float:
    """CPU-seconds all processes of the machine have used (from /proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def wait_until_idle(patience_s: float) -> float:
    """Wait up to `patience_s` until other processes use < MAX_FOREIGN_CORES; the last reading."""
    deadline = time.time() + patience_s
    while True:
        busy = busy_cpu_s()
        time.sleep(2.0)
        cores = (busy_cpu_s() - busy) / 2.0
        if cores < MAX_FOREIGN_CORES or time.time() > deadline:
            return cores
        time.sleep(3.0)


def launch(command: list[str]) -> tuple[str, dict[str, float]]:
    """Run the child; its stdout, the wall time around it and the cores other processes used."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, start = busy_cpu_s(), time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    foreign = max(0.0, (busy_cpu_s() - busy - own) / wall)
    return out, {"command_s": wall, "child_cores": own / wall, "foreign_cores": foreign}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="seeds, each in its own process")
    parser.add_argument("--algo", default="td3", choices=("td3", "sac"))
    parser.add_argument("--episodes", type=int, default=1000, help="test episodes, flown as one batch")
    parser.add_argument("--threshold", type=float, default=SUCCESS_THRESHOLD, help="success fraction that counts as solved")
    parser.add_argument("--set", default="{}", help="JSON of config fields over the preset, e.g. '{\"total_steps\": 400000}'")
    parser.add_argument("--patience", type=float, default=120.0, help="seconds to wait for an idle machine per seed")
    parser.add_argument("--reference", action="store_true", help="fly the hand-written controller instead of training")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    overrides = json.loads(args.set)
    if args.reference:
        for seed in args.seed:
            print(json.dumps(run_reference(seed, args.episodes, args.threshold)), flush=True)
        return
    if args.child:
        print(json.dumps(run_child(args.algo, args.seed[0], args.episodes, args.threshold, overrides)), flush=True)
        return
    rows = []
    for seed in args.seed:
        idle = wait_until_idle(args.patience)
        command = [sys.executable, __file__, "--child", "--seed", str(seed), "--algo", args.algo,
                   "--episodes", str(args.episodes), "--threshold", str(args.threshold), "--set", args.set]
        out, timing = launch(command)
        row = json.loads(out.strip().splitlines()[-1]) | timing | {"foreign_cores_before": idle}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "seeds": len(rows),
        "solved": sum(r["solved"] for r in rows),
        "success": [round(r["success"], 3) for r in rows],
        "mean_return_target": [round(r["mean_return_target"], 1) for r in rows],
        "process_s": [round(r["process_s"], 1) for r in rows],
        "train_s": [round(r["train_s"], 1) for r in rows],
        "command_s": [round(r["command_s"], 1) for r in rows],
        "foreign_cores": [round(r["foreign_cores"], 2) for r in rows],
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
