"""dramaturg vs Stable-Baselines3 and Tianshou: seconds and steps to solve.

Tasks: PPO CartPole-v1 (threshold 475) and SAC Pendulum-v1 (-200). Four contestants: SB3 with
rl-zoo3's hyperparameters (evaluation every 10k / 2k steps), Tianshou with the same
hyperparameters (benchmarks/peer_tianshou.py), `dramaturg` with the same hyperparameters on
Gymnasium's environments, and `dramaturg-native` on dramaturg's batched torch version of the task
with its own preset (`dramaturg train ALGO --env dramaturg/...`), judged by evaluations on
Gymnasium's environment like the others. Every run is a child process, launched by this script and
timed from Popen to exit, and stops at the first deterministic 10-episode evaluation whose mean
return reaches the threshold. Contestants alternate seed by seed (the order rotates too). A peer
library that is not installed is left out unless named in --only. Conventions follow
shared/peers/README.md; see benchmarks/README.md.

    python benchmarks/sb3_vs_dramaturg.py --seeds 1,2,3 --json bench.json
    python benchmarks/sb3_vs_dramaturg.py --only sb3 --tasks sac-pendulum
    python benchmarks/sb3_vs_dramaturg.py --only tianshou,dramaturg-native --seeds 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("dramaturg-native", "dramaturg", "sb3", "tianshou", "sb3-native-hp")
# contestant: the module it needs. sb3-native-hp: SB3 on Gymnasium's task with dramaturg-native's
# preset (instances, epochs, batch, learning rate, tau, ...): separates what the hyperparameters
# give from what the library and its environment give.
PEERS = {"sb3": "stable_baselines3", "tianshou": "tianshou", "sb3-native-hp": "stable_baselines3"}
SHORT = {"sb3": "SB3", "dramaturg-native": "native", "sb3-native-hp": "SB3 native-hp"}
EVAL_EPISODES = 10
MAX_FOREIGN_CORES = 0.25  # a run during which other processes used more CPU is not comparable
# total_steps: rl-zoo3's n_timesteps (hyperparams/ppo.yml, sac.yml); lin_X schedules decay over it
TASKS = {
    "ppo-cartpole": {
        "algo": "ppo",
        "env": "CartPole-v1",
        "native": "dramaturg/CartPole-v1",
        "threshold": 475.0,
        "eval_every": 10_000,
        "total_steps": 100_000,
        # the native preset solves at 16-53k steps depending on the seed: three seeds put the
        # ratio anywhere from 1/4.6 to 1/9.5, so ten by default
        "seeds": tuple(range(1, 11)),
    },
    "sac-pendulum": {
        "algo": "sac",
        "env": "Pendulum-v1",
        "native": "dramaturg/Pendulum-v1",
        "threshold": -200.0,
        "eval_every": 2_000,
        "total_steps": 20_000,
        "seeds": (1, 2, 3),
    },
}


class RunFailed(RuntimeError):
    pass


# -- SB3 side: runs in its own process, prints one JSON line ------------------------------------


def sb3_worker(
    task: str, seed: int, total_steps: int, launched_at: float | None, hp: dict | None = None
) -> dict:
    """SB3 with rl-zoo3's hyperparameters, or with `hp`, dramaturg's preset for the native task."""
    t_import = time.perf_counter()
    import numpy as np
    import torch
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    import_s = time.perf_counter() - t_import
    spec = TASKS[task]
    torch.manual_seed(seed)
    np.random.seed(seed)

    t_setup = time.perf_counter()
    eval_every = hp["eval_every"] if hp else spec["eval_every"]
    eval_env = make_vec_env(spec["env"], n_envs=1, seed=seed + 10_000)
    if hp and spec["algo"] == "ppo":  # constant schedules, as the preset's
        env = make_vec_env(spec["env"], n_envs=hp["num_envs"], seed=seed)
        keys = ("n_steps", "batch_size", "n_epochs", "gae_lambda", "gamma", "ent_coef")
        kwargs = {k: hp[k] for k in (*keys, "learning_rate", "clip_range")}
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", **kwargs)
    elif hp:  # SAC; one gradient step per vector step of num_envs instances, as dramaturg's
        env = make_vec_env(spec["env"], n_envs=hp["num_envs"], seed=seed)
        kwargs = {k: hp[k] for k in ("learning_rate", "batch_size", "tau")}
        net = {"net_arch": list(hp["net_arch"])}
        model = SAC("MlpPolicy", env, policy_kwargs=net, seed=seed, device="cpu", **kwargs)
    elif spec["algo"] == "ppo":  # zoo CartPole-v1; lin_X = X * progress_remaining
        env = make_vec_env(spec["env"], n_envs=8, seed=seed)  # DummyVecEnv + Monitor, as rl-zoo3
        hp = {"n_steps": 32, "batch_size": 256, "n_epochs": 20, "gae_lambda": 0.8, "gamma": 0.98}
        hp |= {"ent_coef": 0.0}
        hp |= {"learning_rate": lambda p: p * 1e-3, "clip_range": lambda p: p * 0.2}
        model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hp)
    else:  # zoo Pendulum-v1: learning_rate 1e-3, SB3 defaults otherwise
        env = make_vec_env(spec["env"], n_envs=1, seed=seed)
        model = SAC("MlpPolicy", env, learning_rate=1e-3, seed=seed, device="cpu", verbose=0)
    setup_s = time.perf_counter() - t_setup

    class StopAtReturn(BaseCallback):
        """Evaluate when num_timesteps crosses each multiple of eval_every; stop once solved."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval, self.eval_s, self.evals, self.solved = eval_every, 0.0, [], None

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += eval_every
            t = time.perf_counter()
            mean, std = evaluate_policy(
                self.model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True
            )
            now = time.perf_counter()
            self.eval_s += now - t
            self.evals.append(
                {"step": self.num_timesteps, "mean_return": float(mean), "std_return": float(std)}
                | {"time_s": now - t_learn}
            )
            if mean < spec["threshold"]:
                return True
            self.solved = self.evals[-1] | {
                "since_launch_s": time.time() - launched_at if launched_at else None
            }
            return False

    callback = StopAtReturn()
    t_learn = time.perf_counter()
    model.learn(total_timesteps=total_steps, callback=callback)
    learn_s = time.perf_counter() - t_learn
    solved = callback.solved or {}
    return {
        "solved_step": solved.get("step"),
        "train_s": solved.get("time_s"),  # learn() start to end of the solving eval, evals included
        "launch_to_solved_s": solved.get("since_launch_s"),
        "steps_done": int(model.num_timesteps),
        "steps_per_s": model.num_timesteps / learn_s,  # evaluation time included
        "learn_s": learn_s,
        "eval_s": callback.eval_s,
        "import_s": import_s,
        "setup_s": setup_s,
        "evals": callback.evals,
        "torch_threads": torch.get_num_threads(),
    }


# -- the parent: launch, time, compare --------------------------------------------------------


def busy_cpu_s() -> float:
    """CPU-seconds all processes of the machine have used (from /proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def wait_until_idle(patience_s: float, max_cores: float = MAX_FOREIGN_CORES) -> float:
    """Wait (up to patience_s) until other processes use < max_cores; return the last reading.
    Two torch processes on few cores slow each other down by far more than 2x."""
    deadline = time.time() + patience_s
    while True:
        busy = busy_cpu_s()
        time.sleep(2.0)
        cores = (busy_cpu_s() - busy) / 2.0
        if cores < max_cores or time.time() > deadline:
            return cores
        print(f"  waiting: other processes use {cores:.2f} cores", flush=True)
        time.sleep(8.0)


def launch(cmd: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `cmd` from the repo root; time it from Popen to exit, and measure the CPU other
    processes used meanwhile (`foreign_cores`)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, t0 = busy_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    foreign = max(0.0, (busy_cpu_s() - busy - own) / wall)
    return proc, {"process_s": wall, "child_cores": own / wall, "foreign_cores": foreign}


def failure(library: str, cmd: list, proc: subprocess.CompletedProcess, hint: str = ""):
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    return RunFailed(
        f"{library} run failed (exit code {proc.returncode}): {' '.join(cmd)}\n"
        f"--- last lines of its output ---\n{tail}\n{hint}"
    )


def native_preset(task: str) -> dict:
    """dramaturg-native's hyperparameters for the task (read here, in the parent, so that the
    SB3 worker's measured process imports nothing of dramaturg)."""
    from dramaturg.presets import preset_for

    spec = TASKS[task]
    return preset_for(spec["algo"], spec["native"])


def run_peer(library: str, task: str, seed: int, total_steps: int) -> dict:
    """A peer's worker (this script with --sb3-worker / --tianshou-worker) as its own process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--{library}-worker", task]
    if library == "sb3-native-hp":  # with the native preset's budget, as dramaturg-native
        hp = native_preset(task)
        total_steps = hp["total_steps"]
        cmd += ["--hp", json.dumps(hp)]
    cmd += ["--seeds", str(seed), "--max-steps", str(total_steps)]
    cmd += ["--launched-at", repr(time.time())]
    proc, timing = launch(cmd)
    if proc.returncode != 0:
        raise failure(library, cmd, proc)
    return json.loads(proc.stdout.strip().splitlines()[-1]) | timing


def run_dramaturg(
    task: str, seed: int, total_steps: int, run_dir: Path, native: bool = False
) -> dict:
    """`dramaturg train` on Gymnasium's task with the zoo's schedule, or on the native task with
    the native preset (its budget and evaluation interval included)."""
    spec = TASKS[task]
    env_id = spec["native" if native else "env"]
    cmd = [sys.executable, "-m", "dramaturg", "train", spec["algo"], "--env", env_id]
    cmd += ["--seed", str(seed), "--run-dir", str(run_dir)]
    cmd += ["--stop-at-return", str(spec["threshold"])]
    if not native:
        cmd += ["--total-steps", str(total_steps), "--eval-every", str(spec["eval_every"])]
    cmd += ["--eval-episodes", str(EVAL_EPISODES), "--checkpoint-every", "0"]
    cmd += ["--progress", "false", "--device", "cpu"]
    proc, timing = launch(cmd)
    summary_path = run_dir / "summary.json"
    if proc.returncode != 0 or not summary_path.is_file():
        hint = (
            "`python -m dramaturg train` comes with the package core (dramaturg/cli.py, "
            "dramaturg/__main__.py) and must write RUN_DIR/summary.json; until it works, "
            "measure the SB3 side alone with --only sb3."
        )
        if proc.returncode == 0:
            hint = f"It exited cleanly but wrote no {summary_path}. " + hint
        raise failure("dramaturg", cmd, proc, hint)
    summary = json.loads(summary_path.read_text())
    return timing | {
        "solved_step": summary["solved_step"],
        "train_s": summary["solved_time_s"],  # first env step to end of the solving eval
        "launch_to_solved_s": summary["solved_process_s"],
        "steps_done": summary["steps_done"],
        "steps_per_s": summary["steps_per_s"],
        "summary": summary,
        "run_dir": str(run_dir),
    }


ROWS = (  # (label, result field, decimals, show the peer / dramaturg ratios); see README.md
    ("launch to exit, s", "process_s", 1, True),
    ("launch to solved, s", "launch_to_solved_s", 1, True),
    ("training to solved, s", "train_s", 1, True),
    ("env steps at solved", "solved_step", 0, False),
    ("steps/s", "steps_per_s", 0, False),
)


def clean(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["foreign_cores"] <= MAX_FOREIGN_CORES]


def tally(runs: list[dict]) -> str:
    ok = clean(runs)
    return f"{sum(r['solved_step'] is not None for r in ok)}/{len(ok)}/{len(runs)}"


def median(runs: list[dict], field: str) -> float | None:
    """Median over the clean solved runs (for steps/s: over all clean runs)."""
    counted = [r for r in clean(runs) if field == "steps_per_s" or r["solved_step"] is not None]
    values = [r[field] for r in counted if r.get(field) is not None]
    return statistics.median(values) if values else None


def print_table(task: str, results: dict[str, list[dict]]) -> None:
    """The medians, then (when a peer and dramaturg both ran) peer / dramaturg ratios of the
    times: above 1, dramaturg is faster. Two tables, so each fits 80 columns."""
    from rich.console import Console
    from rich.table import Table

    spec = TASKS[task]
    libraries = [lib for lib in LIBRARIES if results[lib]]
    title = f"{task}: first eval >= {spec['threshold']:g}, medians of clean solved runs"
    table = Table("", *libraries, title=title)
    table.add_row("runs solved/clean/all", *(tally(results[lib]) for lib in libraries))
    medians = {}
    for label, field, digits, _ in ROWS:
        medians[field] = m = {lib: median(results[lib], field) for lib in libraries}
        table.add_row(label, *("-" if v is None else f"{v:,.{digits}f}" for v in m.values()))
    Console().print(table)

    ours = [lib for lib in libraries if lib not in PEERS]
    pairs = [(peer, lib) for peer in PEERS if peer in libraries for lib in ours]
    if not pairs:
        return
    names = (f"{SHORT.get(peer, peer)} /\n{SHORT.get(lib, lib)}" for peer, lib in pairs)
    table = Table("", *names, title="peer / dramaturg, above 1: dramaturg faster")
    for label, field, _, ratio in ROWS:
        m = medians[field]
        if ratio:
            table.add_row(
                label, *(f"{m[a] / m[b]:.2f}" if m[a] and m[b] else "-" for a, b in pairs)
            )
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated: {', '.join(TASKS)}")
    p.add_argument("--seeds", help="comma-separated seeds, for every task (default: ppo-cartpole 1-10, sac-pendulum 1-3)")
    p.add_argument(
        "--only", help=f"comma-separated contestants (default all): {', '.join(LIBRARIES)}"
    )
    p.add_argument("--max-steps", type=int, help="cap on each run's budget (zoo's n_timesteps)")
    p.add_argument("--json", help="write every raw number here")
    p.add_argument("--run-root", help="for dramaturg's run folders (default runs/bench-DATE-TIME)")
    p.add_argument("--wait-idle", type=float, default=900, help="max s to wait for an idle CPU")
    p.add_argument("--retries", type=int, default=2, help="reruns of a run disturbed by others")
    p.add_argument("--sb3-worker", choices=TASKS, help=argparse.SUPPRESS)
    p.add_argument("--tianshou-worker", choices=TASKS, help=argparse.SUPPRESS)
    p.add_argument("--sb3-native-hp-worker", choices=TASKS, help=argparse.SUPPRESS)
    p.add_argument("--hp", type=json.loads, help=argparse.SUPPRESS)
    p.add_argument("--launched-at", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    if args.sb3_worker or args.sb3_native_hp_worker:
        task = args.sb3_worker or args.sb3_native_hp_worker
        print(json.dumps(sb3_worker(task, seeds[0], args.max_steps, args.launched_at, args.hp)))
        return
    if args.tianshou_worker:
        from peer_tianshou import tianshou_worker  # beside this script, which runs as the worker

        spec = TASKS[args.tianshou_worker]
        r = tianshou_worker(spec, seeds[0], args.max_steps, args.launched_at, EVAL_EPISODES)
        print(json.dumps(r))
        return

    tasks = args.tasks.split(",")
    if unknown := set(tasks) - set(TASKS):
        p.error(f"unknown task(s) {', '.join(sorted(unknown))}; choose from {', '.join(TASKS)}")
    libraries = args.only.split(",") if args.only else list(LIBRARIES)
    if unknown := set(libraries) - set(LIBRARIES):
        p.error(
            f"unknown contestant(s) {', '.join(sorted(unknown))}; choose from {', '.join(LIBRARIES)}"
        )
    missing = [lib for lib in libraries if lib in PEERS and not find_spec(PEERS[lib])]
    if missing and args.only:
        p.error(f"{', '.join(missing)} not installed: pip install -e '.[bench]'")
    if missing:
        print(f"left out, not installed: {', '.join(missing)} (pip install -e '.[bench]')")
        libraries = [lib for lib in libraries if lib not in missing]
    run_root = Path(args.run_root or ROOT / "runs" / time.strftime("bench-%Y%m%d-%H%M%S"))
    results = {task: {lib: [] for lib in LIBRARIES} for task in tasks}
    meta = {"argv": sys.argv, "nproc": os.cpu_count(), "loadavg_at_start": os.getloadavg()}
    try:
        for task in tasks:
            total_steps = min(TASKS[task]["total_steps"], args.max_steps or sys.maxsize)
            for i, seed in enumerate(seeds or TASKS[task]["seeds"]):
                for lib in libraries[i % len(libraries) :] + libraries[: i % len(libraries)]:
                    for attempt in range(args.retries + 1):
                        idle = wait_until_idle(args.wait_idle)
                        if lib in PEERS:
                            r = run_peer(lib, task, seed, total_steps)
                        else:
                            retry = f"-retry{attempt}" if attempt else ""
                            run_dir = run_root / f"{task}-{lib}-seed{seed}{retry}"
                            native = lib == "dramaturg-native"
                            r = run_dramaturg(task, seed, total_steps, run_dir, native=native)
                        r |= {"seed": seed, "total_steps": total_steps, "idle_before": idle}
                        results[task][lib].append(r)
                        print(
                            f"{task} seed {seed} {lib:>16}: solved at {r['solved_step']} steps, "
                            f"train {r['train_s'] or float('nan'):.1f}s, "
                            f"process {r['process_s']:.1f}s, {r['steps_per_s']:,.0f} steps/s, "
                            f"foreign cores {r['foreign_cores']:.2f}",
                            flush=True,
                        )
                        if r["foreign_cores"] <= MAX_FOREIGN_CORES:
                            break
                        print("  other processes used CPU meanwhile: left out of the table")
            print_table(task, results[task])
    except RunFailed as e:
        sys.exit(f"error: {e}")
    finally:
        if args.json:
            raw = {"meta": meta, "tasks": TASKS, "results": results}
            Path(args.json).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
