"""Claim check for PROPS (Corrado & Hanna, arXiv:2311.08290): collecting with the adaptive behaviour
policy (1) lowers the sampling error of the data with respect to the target policy below what
on-policy sampling gives, and (2) learns at least as fast as PPO on the same buffer (PPO-Buffer).

The checks follow the verified notes (shared/methods-verified/props-tscac-slim.md, "Better check"):
1. Fixed target: a 5-armed bandit with a frozen target pi_theta = (.4, .25, .15, .12, .08); n actions
   are drawn m = 8 at a time, on-policy or from the PROPS behaviour policy refitted on all actions
   so far after every draw (`props.fit_behaviour`, the library's own update). Sampling error is the
   tabular KL(pi_D || pi_theta) of the n actions. Pass: PROPS's mean is below on-policy's by more
   than 3 standard errors at every n.
2. CartPole-v1, n = 256 steps per target batch, b = 2 batches in the buffer, m = 128: `props`,
   `ppo-buffer` (`--sampling on_policy`, the same buffer) and `ppo` (b = 1). Sampling error is the
   paper's measure, KL(pi_D || pi_theta) with pi_D the target refitted by maximum likelihood on its
   last hidden features, of the buffer at every target update (also shown: the same measure for
   actions the target drew at the same states without taking them, "resampled"). Pass: props' mean
   sampling error is below ppo-buffer's by more than 1 standard error of the difference, and the
   mean evaluation return over the run (the area under the curve) of props is >= ppo-buffer's - 1
   standard error of the difference.
Every RL run is its own `python -m dramaturg train` process with one torch thread; `--jobs` of them
run side by side (2 on a 2-core machine).

    python benchmarks/claims/props.py                  # seeds 1-5: 31 min under a load of 12-24,
                                                       # an estimated 5-10 min on 2 quiet cores
    python benchmarks/claims/props.py --seeds 1,2,3 --json props-claim.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # claim_tools.py, also when imported as a module
from claim_tools import ROOT, dramaturg_cli  # noqa: E402

sys.path.insert(0, str(ROOT))

PROBS = [0.4, 0.25, 0.15, 0.12, 0.08]
COMMON = [
    "--env",
    "CartPole-v1",
    "--n-steps",
    "256",
    "--props-steps",
    "128",
    "--eval-every",
    "1000",
    "--eval-episodes",
    "5",
    "--log-every",
    "256",
    "--checkpoint-every",
    "0",
    "--progress",
    "false",
    "--torch-threads",
    "1",
]
SETTINGS = {
    "props": ["--sampling", "props", "--buffer-batches", "2"],
    "ppo-buffer": ["--sampling", "on_policy", "--buffer-batches", "2"],
    "ppo": ["--sampling", "on_policy", "--buffer-batches", "1", "--props-steps", "256"],
}


# -- 1. fixed target ---------------------------------------------------------------------------------


def fixed_target(job: tuple[str, int, int, int]) -> float:
    """Tabular sampling error of n actions drawn m at a time from a frozen bandit target."""
    sampling, n, m, seed = job
    import gymnasium as gym
    import torch

    from dramaturg.algos import props
    from dramaturg.losses.props import categorical_sampling_error

    torch.set_num_threads(1)
    cfg = props.Config(net_arch=(), props_learning_rate=1e-2)
    state = props.make(
        cfg, gym.spaces.Box(-1.0, 1.0, (1,)), gym.spaces.Discrete(len(PROBS)), torch.device("cpu")
    )
    with torch.no_grad():
        state.actor.head.logits.weight.zero_()
        state.actor.head.logits.bias.copy_(torch.tensor(PROBS).log())
        state.behaviour.load_state_dict(state.actor.state_dict())
    torch.manual_seed(seed)
    actions = torch.zeros(0, dtype=torch.long)
    for _ in range(n // m):
        with torch.no_grad():
            a, _ = (state.behaviour if sampling == "props" else state.actor).sample(
                torch.ones(m, 1)
            )
        actions = torch.cat([actions, a])
        if sampling == "props":
            props.fit_behaviour(state, cfg, torch.ones(len(actions), 1), actions)
    with torch.no_grad():
        return float(categorical_sampling_error(actions, state.actor(torch.ones(n, 1))))


def fixed_target_table(
    seeds: list[int], trials: int, sizes: list[int], m: int, jobs: int
) -> tuple[str, bool]:
    work = [
        (s, n, m, 1000 * seed + i)
        for seed in seeds
        for i in range(trials)
        for n in sizes
        for s in ("on_policy", "props")
    ]
    with ProcessPoolExecutor(jobs) as pool:
        values = list(pool.map(fixed_target, work, chunksize=4))
    by: dict[tuple[str, int], list[float]] = {}
    for (s, n, _, _), v in zip(work, values):
        by.setdefault((s, n), []).append(v)
    lines = [
        f"| n | on-policy SE | PROPS SE (m = {m}) | PROPS / on-policy | difference / its s.e. | result |",
        "|---|---|---|---|---|---|",
    ]
    passed = True
    for n in sizes:
        on, pr = by[("on_policy", n)], by[("props", n)]
        se_on, se_pr = statistics.stdev(on) / len(on) ** 0.5, statistics.stdev(pr) / len(pr) ** 0.5
        se_diff = (se_on**2 + se_pr**2) ** 0.5
        z = (statistics.mean(on) - statistics.mean(pr)) / se_diff
        ok = z > 3.0
        passed &= ok
        lines.append(
            f"| {n} | {statistics.mean(on):.4f} ± {se_on:.4f} | {statistics.mean(pr):.4f} ± {se_pr:.4f} | "
            f"{statistics.mean(pr) / statistics.mean(on):.2f} | {z:.1f} | {'pass' if ok else 'FAIL'} |"
        )
    return "\n".join(lines), passed


# -- 2. CartPole ----------------------------------------------------------------------------------------


def run_one(name: str, seed: int, steps: int, run_root: Path) -> dict:
    run_dir = run_root / f"{name}-{seed}"
    argv = [
        "train",
        "props",
        *COMMON,
        *SETTINGS[name],
        "--seed",
        str(seed),
        "--total-steps",
        str(steps),
        "--run-dir",
        str(run_dir),
        "--no-preset",
    ]
    t0 = time.perf_counter()
    dramaturg_cli(argv)
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    series = lambda key: [float(r["value"]) for r in rows if r["key"] == key]  # noqa: E731
    se, ref, returns = (
        series("train/sampling_error"),
        series("train/sampling_error_resampled"),
        series("eval/mean_return"),
    )
    return {
        "setting": name,
        "seed": seed,
        "auc": statistics.mean(returns),
        "final": returns[-1],
        "se": statistics.mean(se),
        "se_ref": statistics.mean(ref),
        "below": sum(a < b for a, b in zip(se, ref)),
        "pairs": len(ref),
        "wall_s": time.perf_counter() - t0,
    }


def difference_se(a: list[float], b: list[float]) -> float:
    """Standard error of mean(a) - mean(b) for independent samples."""
    if min(len(a), len(b)) < 2:
        return 0.0
    return (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5


def rl_table(results: list[dict], seeds: list[int]) -> tuple[str, bool]:
    by = {
        name: sorted((r for r in results if r["setting"] == name), key=lambda r: r["seed"])
        for name in SETTINGS
    }
    lines = [
        "| setting | return AUC per seed | AUC mean ± s.e. | final return | SE (buffer) ± s.e. "
        + "| SE (resampled) | updates with SE < resampled |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in by.items():
        if not runs:
            continue
        auc = [r["auc"] for r in runs]
        sd = statistics.stdev(auc) / len(auc) ** 0.5 if len(auc) > 1 else 0.0
        below, pairs = sum(r["below"] for r in runs), sum(r["pairs"] for r in runs)
        se = [r["se"] for r in runs]
        se_sd = statistics.stdev(se) / len(se) ** 0.5 if len(se) > 1 else 0.0
        lines.append(
            f"| {name} | {', '.join(f'{a:.0f}' for a in auc)} | {statistics.mean(auc):.1f} ± {sd:.1f} | "
            f"{statistics.mean(r['final'] for r in runs):.1f} | {statistics.mean(se):.4f} ± {se_sd:.4f} | "
            f"{statistics.mean(r['se_ref'] for r in runs):.4f} | {below}/{pairs} ({below / max(pairs, 1):.0%}) |"
        )
    passed = True
    lines += ["", "| check | rule | measured | result |", "|---|---|---|---|"]
    if by["props"] and by["ppo-buffer"]:
        a, b = [r["se"] for r in by["props"]], [r["se"] for r in by["ppo-buffer"]]
        se = difference_se(a, b)
        ok = statistics.mean(a) < statistics.mean(b) - se
        passed &= ok
        lines.append(
            f"| sampling error | SE(props) < SE(ppo-buffer) - 1 s.e. | {statistics.mean(a):.4f} vs "
            f"{statistics.mean(b) - se:.4f} | {'pass' if ok else 'FAIL'} |"
        )
        a, b = [r["auc"] for r in by["props"]], [r["auc"] for r in by["ppo-buffer"]]
        se = difference_se(a, b)
        ok = statistics.mean(a) >= statistics.mean(b) - se
        passed &= ok
        lines.append(
            f"| return | AUC(props) >= AUC(ppo-buffer) - 1 s.e. | {statistics.mean(a):.1f} vs "
            f"{statistics.mean(b) - se:.1f} | {'pass' if ok else 'FAIL'} |"
        )
    return "\n".join(lines), passed


# -- 3. frozen CartPole target (a diagnostic, not run by default) ---------------------------------------


def frozen_cartpole(job: tuple[str, int, float]) -> float:
    """The paper's fitted sampling error of 256 CartPole steps taken 32 at a time with a frozen target
    (a random network whose output weights are drawn with std 0.3), on-policy or with PROPS."""
    sampling, seed, lr = job
    import gymnasium as gym
    import torch

    from dramaturg.algos import props

    torch.set_num_threads(1)
    env = gym.make("CartPole-v1")
    cfg = props.Config(props_learning_rate=lr)
    torch.manual_seed(seed)
    state = props.make(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    torch.manual_seed(seed)
    with torch.no_grad():
        state.actor.head.logits.weight.normal_(0.0, 0.3)
        state.behaviour.load_state_dict(state.actor.state_dict())
    obs, _ = env.reset(seed=seed)
    observations, actions = [], []
    for _ in range(256 // 32):
        for _ in range(32):
            o = torch.as_tensor(obs, dtype=torch.float32)[None]
            with torch.no_grad():
                a, _ = (state.behaviour if sampling == "props" else state.actor).sample(o)
            observations.append(o[0])
            actions.append(a[0])
            obs, _, terminated, truncated, _ = env.step(int(a))
            if terminated or truncated:
                obs, _ = env.reset()
        if sampling == "props":
            props.fit_behaviour(state, cfg, torch.stack(observations), torch.stack(actions))
    with torch.no_grad():
        return float(
            props.sampling_error(state.actor, torch.stack(observations), torch.stack(actions))
        )


def frozen_table(trials: int, rates: list[float], jobs: int) -> str:
    work = [("on_policy", s, rates[0]) for s in range(trials)] + [
        ("props", s, lr) for lr in rates for s in range(trials)
    ]
    with ProcessPoolExecutor(jobs) as pool:
        values = list(pool.map(frozen_cartpole, work))
    by: dict[tuple[str, float], list[float]] = {}
    for (sampling, _, lr), v in zip(work, values):
        by.setdefault((sampling, lr), []).append(v)
    lines = ["| sampling | behaviour lr | fitted SE ± s.e. |", "|---|---|---|"]
    for (sampling, lr), v in by.items():
        shown = "-" if sampling == "on_policy" else f"{lr:g}"
        lines.append(
            f"| {sampling} | {shown} | {statistics.mean(v):.4f} ± {statistics.stdev(v) / len(v) ** 0.5:.4f} |"
        )
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds (default 1-5)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs side by side, one torch thread each (default 2)"
    )
    parser.add_argument(
        "--steps", type=int, default=12_000, help="CartPole budget per run (default 12k)"
    )
    parser.add_argument(
        "--trials", type=int, default=20, help="fixed-target trials per seed and n (default 20)"
    )
    parser.add_argument(
        "--sizes", default="16,64,128", help="fixed-target sample sizes n (default 16,64,128)"
    )
    parser.add_argument(
        "--parts", default="fixed,rl", help="any of fixed, rl, frozen (default fixed,rl)"
    )
    parser.add_argument(
        "--frozen-rates", default="1e-3,1e-4,3e-5", help="behaviour lrs of the frozen part"
    )
    parser.add_argument(
        "--run-root",
        default=None,
        help="folder for the run folders (default runs/claim-props-TIME)",
    )
    parser.add_argument("--json", default=None, help="write every run's numbers here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if len(seeds) < 2:
        parser.error("give at least 2 seeds (3 or more to check)")
    parts = set(args.parts.split(","))
    run_root = Path(args.run_root or ROOT / "runs" / time.strftime("claim-props-%Y%m%d-%H%M%S"))
    t0, load0, passed, record = time.perf_counter(), os.getloadavg()[0], True, {}
    if "fixed" in parts:
        table, ok = fixed_target_table(
            seeds, args.trials, [int(n) for n in args.sizes.split(",")], 8, args.jobs
        )
        print(
            f"1. Fixed target, {len(seeds) * args.trials} trials per cell\n\n{table}\n", flush=True
        )
        passed &= ok
    if "frozen" in parts:
        rates = [float(x) for x in args.frozen_rates.split(",")]
        print(
            f"3. Frozen CartPole target, 12 trials\n\n{frozen_table(12, rates, args.jobs)}\n",
            flush=True,
        )
    if "rl" in parts:
        jobs = [(n, s) for n in ("props", "ppo-buffer", "ppo") for s in seeds]
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(
                pool.map(lambda job: run_one(job[0], job[1], args.steps, run_root), jobs)
            )
        table, ok = rl_table(results, seeds)
        print(f"2. CartPole-v1, {args.steps:,} steps, seeds {args.seeds}\n\n{table}\n")
        passed &= ok
        record["results"] = results
    print(
        f"{time.perf_counter() - t0:.0f} s with {args.jobs} jobs; load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(record | {"passed": passed}, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
