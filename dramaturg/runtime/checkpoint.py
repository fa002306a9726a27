"""Checkpoints: tensors in safetensors, everything else in JSON; never pickle.

A nested state (dicts, lists, tensors, numbers, strings) is split into a flat dict of tensors and
a JSON skeleton that names them. A checkpoint is a folder written under a temporary name, fsynced
and renamed into place; `latest` then points at it (atomic replace). A checksum of the tensor file
is kept in the JSON, so a truncated or altered checkpoint is refused with the file named.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dramaturg.config import read_json

TENSORS, META = "state.safetensors", "state.json"
FORMAT = "dramaturg-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file and what is wrong."""


def flatten(state: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replace each tensor by {"__tensor__": key} and collect it; dict keys keep their type."""
    if isinstance(state, torch.Tensor):
        key = prefix or "root"
        tensors[key] = state.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(state, dict):
        if all(isinstance(k, str) for k in state):
            return {k: flatten(v, tensors, f"{prefix}/{k}") for k, v in state.items()}
        return {"__items__": [[k, flatten(v, tensors, f"{prefix}/{k}")] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        out = [flatten(v, tensors, f"{prefix}/{i}") for i, v in enumerate(state)]
        return {"__tuple__": out} if isinstance(state, tuple) else out
    if isinstance(state, (np.integer, np.floating)):
        return state.item()
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"cannot checkpoint a {type(state).__name__} at {prefix or 'root'}")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__items__" in skeleton:
            return {k: unflatten(v, tensors) for k, v in skeleton["__items__"]}
        if "__tuple__" in skeleton:
            return tuple(unflatten(v, tensors) for v in skeleton["__tuple__"])
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Write `state` into `folder` (created) as state.safetensors + state.json, fsynced."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    save_file(tensors, str(folder / TENSORS))
    digest = hashlib.sha256((folder / TENSORS).read_bytes()).hexdigest()
    meta = json.dumps({"format": FORMAT, "sha256": digest, "state": skeleton})
    with open(folder / META, "w") as f:
        f.write(meta)
        f.flush()
        os.fsync(f.fileno())
    with open(folder / TENSORS, "rb+") as f:
        os.fsync(f.fileno())


def read_state(folder: Path) -> dict[str, Any]:
    """Read a folder written by `write_state`, verifying it first; raises CheckpointError."""
    from safetensors.torch import load as load_bytes

    meta_path, tensor_path = folder / META, folder / TENSORS
    for path in (meta_path, tensor_path):
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
    meta = read_json(meta_path, CheckpointError)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not a dramaturg checkpoint (format {FORMAT!r} expected)")
    blob = tensor_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"{tensor_path}: checksum mismatch (truncated or altered)")
    try:
        tensors = load_bytes(blob)
        return unflatten(meta["state"], tensors)
    except Exception as exc:  # a well-formed checksum over a malformed file
        raise CheckpointError(f"{tensor_path}: cannot be read ({exc})") from exc


def save_checkpoint(root: Path, name: str, state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `root/name` atomically, point `root/latest` at it, prune old ones."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    write_state(tmp, state)
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    pointer = root / ".latest.tmp"
    pointer.write_text(name)
    os.replace(pointer, root / "latest")
    _fsync_dir(root)
    done = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), key=_step_of)
    for old in done[:-keep]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _step_of(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[1])
    except ValueError:
        return -1


def load_latest(root: Path) -> dict[str, Any]:
    pointer = root / "latest"
    if not pointer.is_file():
        raise CheckpointError(f"{pointer}: missing; the run has no complete checkpoint to resume from")
    name = pointer.read_bytes().decode("utf-8", errors="replace").strip()
    if not name.startswith("step-") or "/" in name or name.startswith("."):
        raise CheckpointError(f"{pointer}: does not name a checkpoint ({name!r})")
    if not (root / name).is_dir():
        raise CheckpointError(f"{pointer}: names {name!r}, which is not in {root}")
    return read_state(root / name)


# -- random number generators -------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(),
        "python": [version, list(internal), gauss],
    }


def _numpy_state() -> list[Any]:
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return [name, key.tolist(), int(pos), int(has_gauss), float(cached)]


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
