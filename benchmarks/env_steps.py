"""Raw environment steps/s, random actions, no learning: native batched CartPole vs Gymnasium.

Rows: dramaturg's native CartPole (torch, auto-reset included) at several batch sizes, against
Gymnasium's SyncVectorEnv of CartPole-v1 (gym.make defaults, autoreset by the vector env) at the
same size, all measured in this process one after the other. The target ratio at 4096 instances
is 50x.

    python benchmarks/env_steps.py --sizes 8,256,4096 --json env_steps.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from dramaturg.envs.native import native_class

GYM_MAX_S = 4.0  # the Gymnasium side stops after this long: its rate is flat in the batch size


def native_rate(env_id: str, n: int, seconds: float, device: str) -> float:
    env = native_class(env_id)(n, seed=0, device=device)
    env.reset()
    generator = torch.Generator(device=device).manual_seed(0)
    space = env.action_space
    sample = (
        (lambda: torch.randint(0, int(space.n), (n,), generator=generator, device=device))
        if isinstance(space, gym.spaces.Discrete)
        else (lambda: torch.rand(n, *space.shape, generator=generator, device=device) * 2 - 1)
    )
    for _ in range(20):  # warm-up
        env.step(sample())
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            env.step(sample())
        steps += 50
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n * steps / (time.perf_counter() - t0)


def gym_rate(env_id: str, n: int, seconds: float) -> float:
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n)])
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    space = envs.action_space
    sample = (
        (lambda: rng.integers(0, space.nvec, dtype=np.int64))
        if isinstance(space, gym.spaces.MultiDiscrete)
        else (lambda: rng.uniform(space.low, space.high).astype(np.float32))
    )
    for _ in range(5):
        envs.step(sample())
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min(seconds, GYM_MAX_S):
        envs.step(sample())
        steps += 1
    rate = n * steps / (time.perf_counter() - t0)
    envs.close()
    return rate


def measure(env_id: str, sizes: list[int], seconds: float, device: str) -> list[dict]:
    counterpart = native_class(env_id).gym_id
    rows = []
    for n in sizes:
        ours = native_rate(env_id, n, seconds, device)
        theirs = gym_rate(counterpart, n, seconds)
        rows.append({"env": env_id, "instances": n, "native_steps_per_s": ours, "gym_steps_per_s": theirs,
                     "ratio": ours / theirs, "device": device, "torch_threads": torch.get_num_threads()})
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"{'environment':<28} {'instances':>9} {'native steps/s':>15} {'Gymnasium steps/s':>18} {'ratio':>8}")
    for r in rows:
        print(f"{r['env']:<28} {r['instances']:>9} {r['native_steps_per_s']:>15,.0f} "
              f"{r['gym_steps_per_s']:>18,.0f} {r['ratio']:>7.1f}x")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="dramaturg/CartPole-v1", help="comma-separated native ids")
    p.add_argument("--sizes", default="8,256,4096", help="comma-separated instance counts")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per row and side")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [r for env_id in args.envs.split(",") for r in measure(env_id, sizes, args.seconds, args.device)]
    print_rows(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
