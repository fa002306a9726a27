"""Learning curves of run folders: one line per group of seeds, with a min-max band.

A run folder holds `config.json` ({"algo", "config", "sources"}) and `metrics.csv` (long format:
`step,time_s,key,value`). Runs whose configs differ only in `seed` and `run_dir` form one group.
matplotlib is imported inside `plot_runs`, so importing this module stays cheap.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from dramaturg.config import ConfigError

__all__ = ["group_runs", "plot_runs", "read_curve", "mean_band"]

PER_RUN_FIELDS = ("seed", "run_dir")  # fields that differ between seeds of one experiment
X_COLUMNS = {  # x argument -> (metrics.csv column, axis label)
    "steps": ("step", "environment steps"),
    "time": ("time_s", "seconds since training start"),
}


def _run_folder(run_dir: str) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"run folder not found: {path}")
    return path


def read_config(run_dir: str) -> tuple[str, dict]:
    """(algo, config) from RUN_DIR/config.json."""
    from dramaturg.api import read_run_config

    record = read_run_config(_run_folder(run_dir))
    return record["algo"], record["config"]


def read_curve(
    run_dir: str, key: str = "eval/mean_return", x: str = "steps"
) -> tuple[np.ndarray, np.ndarray]:
    """(x, value) of one metric of one run, sorted by x (environment steps or seconds)."""
    if x not in X_COLUMNS:
        raise ValueError(f"x must be one of {', '.join(X_COLUMNS)}, got {x!r}")
    path = _run_folder(run_dir) / "metrics.csv"
    if not path.is_file():
        raise ConfigError(f"no metrics.csv in run folder {path.parent}")
    column = X_COLUMNS[x][0]
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [(float(r[column]), float(r["value"])) for r in csv.DictReader(f) if r["key"] == key]
    except (UnicodeDecodeError, KeyError, TypeError, ValueError, csv.Error) as exc:
        raise ConfigError(f"{path}: not a dramaturg metrics file ({exc!r})") from exc
    rows = sorted(r for r in rows if np.isfinite(r).all())
    if not rows:
        raise ConfigError(f"{path} has no rows for key {key!r}")
    xs, values = np.array(rows).T
    return xs, values


def group_runs(run_dirs: list[str]) -> dict[str, list[str]]:
    """Label -> run folders whose configs are equal but for `seed` and `run_dir`.

    A label is `algo env`, plus `field=value` for each field that differs from another group
    of the same algorithm and environment."""
    groups: dict[str, tuple[str, dict, list[str]]] = {}
    for run_dir in run_dirs:
        algo, config = read_config(run_dir)
        shared = {k: v for k, v in config.items() if k not in PER_RUN_FIELDS}
        identity = json.dumps([algo, shared], sort_keys=True, default=str)
        groups.setdefault(identity, (algo, shared, []))[2].append(str(run_dir))

    labelled: dict[str, list[str]] = {}
    for algo, config, runs in groups.values():
        env = config.get("env")
        peers = [c for a, c, _ in groups.values() if a == algo and c.get("env") == env]
        differing = [k for k in sorted(config) if any(c.get(k) != config[k] for c in peers)]
        label = f"{algo} {env}"
        if differing:
            label += " (" + ", ".join(f"{k}={config[k]}" for k in differing) + ")"
        if label in labelled:  # configs that differ only in fields their peers lack
            label += f" #{sum(name.startswith(label) for name in labelled) + 1}"
        labelled[label] = runs
    return labelled


def mean_band(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """(x, mean, min, max) over runs on the union of their x values.

    Each run is linearly interpolated inside its own x range only; past the end of a run
    (e.g. one that stopped early) the statistics use the runs that reach that far."""
    grid = np.unique(np.concatenate([xs for xs, _ in curves]))
    stacked = np.full((len(curves), len(grid)), np.nan)  # [runs, points]
    for i, (xs, values) in enumerate(curves):
        inside = (grid >= xs[0]) & (grid <= xs[-1])
        stacked[i, inside] = np.interp(grid[inside], xs, values)
    return grid, np.nanmean(stacked, 0), np.nanmin(stacked, 0), np.nanmax(stacked, 0)


def plot_runs(
    run_dirs: list[str], x: str = "steps", out: str = "curves.png", key: str = "eval/mean_return"
) -> str:
    """Draw `key` against environment steps (x="steps") or training seconds (x="time") for
    every group of runs (mean line, min-max band) into the PNG `out`; return its path."""
    if not run_dirs:
        raise ValueError("plot_runs needs at least one run folder")
    groups = group_runs(run_dirs)
    curves = {label: [read_curve(r, key, x) for r in runs] for label, runs in groups.items()}

    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the backend alone

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for label, runs in curves.items():
        grid, mean, low, high = mean_band(runs)
        seeds = f"{len(runs)} seed" + "s" * (len(runs) > 1)
        marker = "." if len(grid) < 30 else None
        (line,) = ax.plot(grid, mean, marker=marker, label=f"{label}, {seeds}")
        if len(runs) > 1:
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(X_COLUMNS[x][1])
    ax.xaxis.set_major_formatter("{x:,.0f}" if x == "steps" else "{x:,.4g}")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(title="mean, min-max band", fontsize="small", title_fontsize="small")
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=120)
    return str(out_path)
