"""Claim check for multi-critic learning (SLIM, Emukpere et al. 2024): where the reward's components
have very different scales, one critic per component with normalised advantages learns the summed
reward at least as well as one critic on the sum.

Task: `dramaturg.envs.multi_reward:CartPoleWithNoise` with scale 30: CartPole's reward (1 per step)
plus a component 30 times larger, mean 0, that the agent cannot influence. The summed reward's
expected return is CartPole's; one critic on the sum sees advantages whose spread comes almost all
from the second component. Four PPO settings, identical except for the critic and the advantage
(shared/methods-verified/props-tscac-slim.md §3, "better check", arms A-D):
  single      A: one critic on the summed reward r_1 + r_2 (plain PPO, advantages standardised)
  rescaled    B: one critic on r_1 + r_2 / 30, each component divided by its known scale (the control
                 the notes ask for: does reward rescaling alone explain the gain?)
  multi-raw   C: two critics, advantages summed without normalisation (equals A up to the critics)
  multi       D: two critics, each advantage standardised per minibatch, then summed (SLIM)
The score of a run is the expected summed return of its final deterministic policy, estimated on 20
episodes of the same task with the second component's scale set to 0 (its mean is 0 and the policy
cannot change it, so the expectation is the same and the estimate is free of its noise).
Pass (the notes' rule): mean(multi) > mean(single) + 0.5 pooled std and
mean(multi) >= mean(rescaled) - 0.5 pooled std.

A diagnostic, not run by default (`--settings sac-single,sac-multi`): SAC on Pendulum-v1 whose reward
is split into its three terms (`PendulumRewardComponents`: angle, velocity and a torque term a
thousand times smaller), one critic on the sum (SAC itself) against one per term with normalised
Q-values; scored on Pendulum's own return. Normalising every term to the same spread changes the
objective (the torque term weighs as much as the angle), so here multi-critic need not win.

    python benchmarks/claims/multi_critic.py                   # seeds 1,2,3: ~4 min on 2 quiet cores
    python benchmarks/claims/multi_critic.py --seeds 1,2,3,4,5 --json multi-critic-claim.json
    python benchmarks/claims/multi_critic.py --settings sac-single,sac-multi    # the diagnostic
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # claim_tools.py, also when imported as a module
from claim_tools import ROOT, dramaturg_cli, pooled_std  # noqa: E402

NOISY = "dramaturg.envs.multi_reward:CartPoleWithNoise"
PENDULUM = "dramaturg.envs.multi_reward:PendulumRewardComponents"
# rl-zoo3's tuned PPO CartPole-v1 and SAC Pendulum-v1 entries (SAC with 64x64 networks), spelled out
PPO_CARTPOLE = [
    "--num-envs",
    "8",
    "--n-steps",
    "32",
    "--batch-size",
    "256",
    "--gae-lambda",
    "0.8",
    "--gamma",
    "0.98",
    "--n-epochs",
    "20",
    "--ent-coef",
    "0.0",
    "--learning-rate",
    "1e-3",
    "--lr-schedule",
    "linear",
    "--clip-range",
    "0.2",
    "--clip-range-schedule",
    "linear",
]
SAC_PENDULUM = ["--learning-rate", "1e-3", "--net-arch", "64,64"]
SETTINGS = {
    # name: (task, algo, flags, scalar weights of the env's reward: None for the plain sum)
    "single": ("noisy", "ppo", PPO_CARTPOLE, None),
    "rescaled": ("noisy", "ppo", PPO_CARTPOLE, "1/scale"),
    "multi-raw": (
        "noisy",
        "ppo",
        [*PPO_CARTPOLE, "--reward-components", "2", "--normalize-components", "false"],
        None,
    ),
    "multi": ("noisy", "ppo", [*PPO_CARTPOLE, "--reward-components", "2"], None),
    # a diagnostic, not run by default: Pendulum's own reward split into its three terms, SAC
    "sac-single": ("pendulum", "sac", SAC_PENDULUM, None),
    "sac-multi": ("pendulum", "sac", [*SAC_PENDULUM, "--reward-components", "3"], None),
}
DEFAULT_SETTINGS = ("single", "rescaled", "multi-raw", "multi")
CHECKS = [
    ("multi", "single", "greater"),
    ("multi", "rescaled", "no-worse"),
    ("sac-multi", "sac-single", "no-worse"),
]


def run_one(name: str, seed: int, steps: dict, scale: float, episodes: int, run_root: Path) -> dict:
    task, algo, flags, weights = SETTINGS[name]
    if task == "noisy":
        env_id, score_kwargs = NOISY, {"scale": 0.0}
        env_kwargs = {"scale": scale} | ({"scalar_weights": [1.0, 1.0 / scale]} if weights else {})
    else:
        env_id, env_kwargs, score_kwargs = PENDULUM, {}, {}
    run_dir = run_root / f"{name}-{seed}"
    # fmt: off
    train = ["train", algo, "--env", env_id, "--env-kwargs", json.dumps(env_kwargs),
             *flags, "--seed", str(seed), "--total-steps", str(steps[algo]), "--eval-every", "0",
             "--checkpoint-every", "0", "--progress", "false", "--torch-threads", "1", "--run-dir", str(run_dir),
             "--no-preset"]
    score = ["eval", str(run_dir), "--env", env_id, "--env-kwargs",
             json.dumps(score_kwargs), "--episodes", str(episodes), "--seed", "100000", "--json"]
    # fmt: on
    t0 = time.perf_counter()
    dramaturg_cli(train)
    report = json.loads(dramaturg_cli(score).strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "setting": name,
        "seed": seed,
        "steps": steps[algo],
        "return": report["mean_return"],
        "train_s": summary["train_time_s"],
        "wall_s": time.perf_counter() - t0,
    }


def report(results: list[dict], seeds: list[int]) -> tuple[str, bool]:
    by = {
        name: [
            r["return"] for r in sorted(results, key=lambda r: r["seed"]) if r["setting"] == name
        ]
        for name in SETTINGS
    }
    lines = [
        "| setting | steps | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std |",
        "|---" * (len(seeds) + 4) + "|",
    ]
    for name, values in by.items():
        if values:
            steps = next(r["steps"] for r in results if r["setting"] == name)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells = " | ".join(f"{v:.1f}" for v in values)
            lines.append(
                f"| {name} | {steps:,} | {cells} | {statistics.mean(values):.1f} | {sd:.1f} |"
            )
    lines += ["", "| check | rule | measured | result |", "|---|---|---|---|"]
    passed = True
    for cand, base, kind in CHECKS:
        c, b = by[cand], by[base]
        if not c or not b:
            continue
        margin = 0.5 * pooled_std(c, b)
        if kind == "greater":
            ok = statistics.mean(c) > statistics.mean(b) + margin
            rule, bound = (
                f"mean({cand}) > mean({base}) + 0.5 pooled std",
                statistics.mean(b) + margin,
            )
        else:
            ok = statistics.mean(c) >= statistics.mean(b) - margin
            rule, bound = (
                f"mean({cand}) >= mean({base}) - 0.5 pooled std",
                statistics.mean(b) - margin,
            )
        passed &= ok
        lines.append(
            f"| {cand} vs {base} | {rule} | {statistics.mean(c):.1f} vs {bound:.1f} | {'pass' if ok else 'FAIL'} |"
        )
    return "\n".join(lines), passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs side by side, one torch thread each (default 2)"
    )
    parser.add_argument("--steps", type=int, default=50_000, help="PPO steps per run (default 50k)")
    parser.add_argument(
        "--sac-steps", type=int, default=20_000, help="SAC steps per run (default 20k)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=30.0,
        help="scale of the second reward component (default 30)",
    )
    parser.add_argument(
        "--episodes", type=int, default=20, help="evaluation episodes per run (default 20)"
    )
    parser.add_argument(
        "--settings", default=",".join(DEFAULT_SETTINGS), help=f"any of {','.join(SETTINGS)}"
    )
    parser.add_argument(
        "--run-root",
        default=None,
        help="folder for the run folders (default runs/claim-multi-critic-TIME)",
    )
    parser.add_argument("--json", default=None, help="write every run's numbers here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = [n for n in args.settings.split(",") if n]
    unknown = set(names) - set(SETTINGS)
    if unknown or len(seeds) < 2 or args.scale <= 0:
        parser.error(
            f"unknown settings {sorted(unknown)}"
            if unknown
            else "give at least 2 seeds and a scale > 0"
        )
    run_root = Path(
        args.run_root or ROOT / "runs" / time.strftime("claim-multi-critic-%Y%m%d-%H%M%S")
    )
    steps = {"ppo": args.steps, "sac": args.sac_steps}
    # the long SAC runs first, so the pool ends with short ones
    jobs = sorted(((n, s) for s in seeds for n in names), key=lambda j: SETTINGS[j[0]][1] != "sac")
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(
            pool.map(
                lambda j: run_one(j[0], j[1], steps, args.scale, args.episodes, run_root), jobs
            )
        )
    table, passed = report(results, seeds)
    print(
        f"CartPoleWithNoise(scale={args.scale:g}) with PPO, PendulumRewardComponents with SAC; score: expected "
        f"summed return of the final deterministic policy ({args.episodes} episodes)\n"
    )
    print(table)
    print(
        f"\n{len(results)} runs in {time.perf_counter() - t0:.0f} s with {args.jobs} jobs; "
        f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "passed": passed}, indent=2) + "\n"
        )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
