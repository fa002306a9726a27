"""Claim check for PPO-Lagrangian (Ray, Achiam & Amodei 2019): where unconstrained PPO exceeds a cost
limit, PPO-Lagrangian keeps its average episode cost under the limit, giving up some return.

Task: `dramaturg.envs.costs:CartPoleWithPositionCost` (CartPole-v1, cost 1 per step with |x| > bound).
Both algorithms train with rl-zoo3's tuned CartPole-v1 PPO settings, spelled out below, for the same
number of steps; PPO-Lagrangian adds only its cost critic and multiplier, with its default settings
(`--lagrangian-args` changes them, e.g. '--multiplier-optimizer pid --multiplier-kp 0.1'). Each final
policy is then evaluated for `--episodes` episodes, sampling its actions (the stochastic policy is the
one the constraint was imposed on; the deterministic mode of a policy can behave differently),
summing reward and cost. Pass rule: mean final episode cost of PPO-Lagrangian <= limit (over seeds),
and the mean of PPO > limit (otherwise the task does not test the constraint). Every run is its own
`python -m dramaturg train` process with one torch thread; `--jobs` run side by side.

    python benchmarks/claims/constrained.py                 # seeds 1-5, ~3 min on 2 idle cores
    python benchmarks/claims/constrained.py --seeds 1,2,3 --json constrained-claim.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # claim_tools.py, also when imported as a module
from claim_tools import ROOT, dramaturg_cli  # noqa: E402

sys.path.insert(0, str(ROOT))

ENV = "dramaturg.envs.costs:CartPoleWithPositionCost"
# rl-zoo3's tuned PPO CartPole-v1 entry, so that both sides read alike, but with constant step size and
# clip range: annealed to 0 they would freeze the policy while the multiplier is still moving
PPO_CARTPOLE = shlex.split(
    "--num-envs 8 --n-steps 32 --batch-size 256 --gae-lambda 0.8 --gamma 0.98 --n-epochs 20 "
    "--ent-coef 0.0 --learning-rate 1e-3 --lr-schedule constant --clip-range 0.2 "
    "--clip-range-schedule constant"
)
COMMON = shlex.split(
    "--eval-episodes 2 --checkpoint-every 0 --progress false --torch-threads 1 --no-preset"
)
# the cost critic discounts and averages as the reward critic (rl-zoo3's gamma and gae_lambda)
LAGRANGIAN = shlex.split("--cost-gamma 0.98 --cost-gae-lambda 0.8")


def run_one(algo: str, seed: int, args: argparse.Namespace, run_root: Path) -> dict:
    run_dir = run_root / f"{algo}-{seed}"
    extra = []
    if algo == "ppo-lagrangian":
        extra = ["--cost-limit", str(args.limit), *LAGRANGIAN, *shlex.split(args.lagrangian_args)]
    argv = ["train", algo, "--env", ENV, *COMMON, *PPO_CARTPOLE]
    argv += [*extra, "--seed", str(seed), "--env-kwargs", json.dumps({"bound": args.bound})]
    argv += ["--total-steps", str(args.steps), "--eval-every", str(args.steps)]
    argv += ["--log-every", "5000", "--run-dir", str(run_dir)]
    t0 = time.perf_counter()
    dramaturg_cli(argv)
    ret, cost = evaluate_with_cost(run_dir, args.bound, args.episodes, seed=10_000 + seed)
    wall = time.perf_counter() - t0
    return {"algo": algo, "seed": seed, "return": ret, "cost": cost, "wall_s": wall}


def evaluate_with_cost(
    run_dir: Path, bound: float, episodes: int, *, seed: int
) -> tuple[float, float]:
    """Mean undiscounted return and cost of `episodes` episodes of the final policy, actions sampled."""
    import gymnasium as gym
    import torch

    import dramaturg
    from dramaturg.envs.costs import CartPoleWithPositionCost

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    policy = dramaturg.load(run_dir)
    envs = gym.vector.SyncVectorEnv(
        [lambda: CartPoleWithPositionCost(bound=bound) for _ in range(episodes)]
    )
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    returns, costs = np.zeros(episodes), np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        action = policy.act(obs, False)
        obs, rewards, terminated, truncated, info = envs.step(action)
        returns += rewards * running
        costs += np.asarray(info["cost"], dtype=np.float64) * running
        running &= ~(terminated | truncated)
    envs.close()
    return float(returns.mean()), float(costs.mean())


def report(results: list[dict], seeds: list[int], limit: float) -> tuple[str, bool]:
    lines = [
        "| algorithm | metric | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
        "|---" * (len(seeds) + 3) + "|",
    ]
    means: dict[tuple[str, str], float] = {}
    for algo in ("ppo", "ppo-lagrangian"):
        rows = sorted((r for r in results if r["algo"] == algo), key=lambda r: r["seed"])
        for metric in ("cost", "return"):
            values = [r[metric] for r in rows]
            means[algo, metric] = statistics.mean(values)
            cells = " | ".join(f"{v:.1f}" for v in values)
            lines.append(f"| {algo} | episode {metric} | {cells} | {means[algo, metric]:.1f} |")
    ppo_violates = means["ppo", "cost"] > limit
    lag_keeps = means["ppo-lagrangian", "cost"] <= limit
    lines += [
        "",
        "| check | rule | measured | result |",
        "|---|---|---|---|",
        f"| the task binds | mean PPO cost > {limit:g} | {means['ppo', 'cost']:.1f} | {'pass' if ppo_violates else 'FAIL'} |",
        (
            f"| constraint kept | mean PPO-Lagrangian cost <= {limit:g} | {means['ppo-lagrangian', 'cost']:.1f} | "
            f"{'pass' if lag_keeps else 'FAIL'} |"
        ),
    ]
    return "\n".join(lines), ppo_violates and lag_keeps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", default="1,2,3,4,5", help="comma-separated seeds (default 1,2,3,4,5)"
    )
    parser.add_argument(
        "--steps", type=int, default=60_000, help="environment steps per run (default 60000)"
    )
    parser.add_argument(
        "--bound", type=float, default=0.05, help="cost when |x| > bound (default 0.05)"
    )
    parser.add_argument(
        "--limit", type=float, default=100.0, help="cost limit per episode (default 100)"
    )
    parser.add_argument(
        "--episodes", type=int, default=20, help="evaluation episodes per final policy (default 20)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2)")
    parser.add_argument(
        "--lagrangian-args",
        default="",
        help="more ppo-lagrangian flags, e.g. '--multiplier-lr 0.1'",
    )
    parser.add_argument("--run-root", default="runs/claims-constrained", help="where the runs go")
    parser.add_argument("--json", default=None, help="also write the per-run results here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    run_root = Path(args.run_root)
    jobs = [(algo, seed) for seed in seeds for algo in ("ppo", "ppo-lagrangian")]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: run_one(*job, args, run_root), jobs))
    table, ok = report(results, seeds, args.limit)
    print(
        f"{ENV} (bound {args.bound:g}), limit {args.limit:g}, {args.steps:,} steps, "
        f"{args.episodes} evaluation episodes (actions sampled) per run, {time.perf_counter() - t0:.0f} s"
    )
    print(f"ppo-lagrangian: {' '.join([*LAGRANGIAN, *shlex.split(args.lagrangian_args)])}\n")
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
