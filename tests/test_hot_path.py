"""With a native environment, training moves no value from tensors to Python between the
session's log, evaluation and checkpoint points: no `.item()`, `.tolist()`, `bool(tensor)` or
numpy conversion in the loops, the environment or the updates (each would be a host round trip on
a GPU)."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import dramaturg

SCHEDULE = "runtime/session.py"  # logging, evaluation and checkpoints may read values


class HostReads(TorchDispatchMode):
    """Records where a tensor's value was read on the host (aten::_local_scalar_dense)."""

    def __init__(self):
        super().__init__()
        self.sites: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            frames = traceback.extract_stack()
            if not any(f.filename.endswith(SCHEDULE) for f in frames):
                ours = [f for f in frames if "/dramaturg/" in f.filename]
                self.sites.append(f"{ours[-1].filename}:{ours[-1].lineno} {ours[-1].line}" if ours else "?")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    ("algo", "env", "fields"),
    [
        ("ppo", "dramaturg/CartPole-v1", dict(n_steps=16, batch_size=64, n_epochs=2)),
        ("sac", "dramaturg/Pendulum-v1", dict(learning_starts=64, batch_size=32, net_arch=(16, 16))),
        ("td3", "dramaturg/Pendulum-v1", dict(learning_starts=64, batch_size=32, net_arch=(16, 16))),
    ],
)
def test_native_training_reads_nothing_on_the_host(tmp_path: Path, algo: str, env: str, fields: dict):
    reads = HostReads()
    with reads:
        dramaturg.train(algo, env=env, num_envs=8, total_steps=512, eval_every=0, eval_episodes=1,
                        log_every=10_000, checkpoint_every=0, progress=False, run_dir=str(tmp_path), **fields)
    assert not reads.sites, f"host reads outside the session's schedule: {sorted(set(reads.sites))[:5]}"
