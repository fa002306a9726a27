"""Actor and critic as gradient-boosted trees (GBRL: Fuhrer, Tessler & Dalal, ICML 2025, arXiv:2407.08250).

The policy's distribution parameters theta(s) (logits, or Gaussian means) and the value V(s) are
the outputs of tree ensembles, f(s) = b + sum_k h_k(s), from NVIDIA's optional `gbrl` package
(`pip install 'dramaturg[gbrl]'`). Learning is gradient descent in function space: the loss is
computed on the outputs with autograd, and one new tree is fitted to the per-sample output gradients
and appended, each leaf holding -lr times the mean gradient of the samples that reach it. With
`shared=True` one ensemble carries both outputs: every tree has one split structure, chosen on the
joint gradient [g_theta, g_V], and separate leaf values and step sizes for policy and value.

A Gaussian policy's log std is a state-independent torch parameter (learned by Adam), as the
authors' code. The trees live on the CPU; their outputs are moved to the observations' device.
Checkpoints hold the ensemble in gbrl's own binary model format (its files' bytes as uint8
tensors in the safetensors file), which restores it bit for bit; no pickle is involved.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dramaturg.config import ConfigError
from dramaturg.nn.heads import LOG_2PI, diag_gaussian_log_prob
from dramaturg.nn.mlp import flatten_obs
from dramaturg.types import Obs

GBRL_VERSION = "1.1.9"
INSTALL_HINT = (
    "ppo-gbrl needs the optional gbrl package (NVIDIA's gradient-boosted trees for RL; its licence "
    f"terms are in docs/gbrl.md): pip install 'dramaturg[gbrl]', or pip install gbrl=={GBRL_VERSION}"
)


class MissingDependency(ConfigError, ImportError):
    """An optional package the run needs is not installed; the message says how to install it."""


def import_gbrl() -> Any:
    """gbrl's ActorCritic model class, imported on first use so that the core never needs gbrl."""
    try:
        from gbrl.models.actor_critic import ActorCritic
    except ImportError as exc:
        raise MissingDependency(INSTALL_HINT) from exc
    return ActorCritic


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence what gbrl prints while loading a model (its C++ part writes to file descriptor 1)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(io.StringIO()):
            os.dup2(null.fileno(), 1)
            try:
                yield
            finally:
                ctypes.CDLL(None).fflush(None)
                os.dup2(saved, 1)
    finally:
        os.close(saved)


def clip_per_sample(grads: Tensor, max_norm: float | None) -> Tensor:
    """Each row scaled down to L2 norm <= max_norm (None: unchanged), as gbrl's per-sample clipping."""
    if max_norm is None:
        return grads
    norms = grads.norm(dim=-1, keepdim=True)  # [N, 1]
    return grads * (max_norm / norms.clamp_min(max_norm))


class TreeActorCritic(nn.Module):
    """pi(a|s) and V(s) from gradient-boosted trees over the flattened observation.

    Discrete actions: theta(s) are the logits of a categorical. 1-D Box actions: theta(s) is the
    mean of a diagonal Gaussian with a learned state-independent log std (actions clipped to the
    bounds by the policy, as PPO's).
    """

    def __init__(
        self,
        obs_dim: int,
        action_space: gym.Space,
        *,
        shared: bool = True,
        max_depth: int = 4,
        n_bins: int = 256,
        min_data_in_leaf: int = 0,
        split_score: str = "cosine",
        generator: str = "quantile",
        policy_lr: float = 5.2e-3,
        value_lr: float = 9.0e-3,
        log_std_init: float = -2.0,
    ):
        super().__init__()
        ActorCritic = import_gbrl()
        if isinstance(action_space, gym.spaces.Discrete):
            self.kind, self.policy_dim, self.action_map = "categorical", int(action_space.n), "none"
            # no parameter of its own; an empty one tells Policy.act which device to use
            self.log_std = nn.Parameter(torch.zeros(0), requires_grad=False)
        elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            self.kind, self.policy_dim, self.action_map = (
                "gaussian",
                int(action_space.shape[0]),
                "clip",
            )
            self.log_std = nn.Parameter(torch.full((self.policy_dim,), float(log_std_init)))
        else:
            raise TypeError(
                f"tree policies support Discrete and 1-D Box actions, not {action_space}"
            )
        self.shared, self.obs_dim = shared, obs_dim
        p = self.policy_dim
        self.model = ActorCritic(
            tree_struct={
                "max_depth": max_depth,
                "n_bins": n_bins,
                "min_data_in_leaf": min_data_in_leaf,
                "par_th": 2,
            },
            input_dim=obs_dim,
            output_dim=p + 1,  # theta (p outputs) then V
            policy_optimizer={
                "policy_algo": "SGD",
                "policy_lr": policy_lr,
                "start_idx": 0,
                "stop_idx": p,
            },
            value_optimizer={
                "value_algo": "SGD",
                "value_lr": value_lr,
                "start_idx": p if shared else 0,
                "stop_idx": p + 1 if shared else 1,
            },
            shared_tree_struct=shared,
            params={"split_score_func": split_score, "generator_type": generator.capitalize()},
            device="cpu",
        )

    # -- the trees ----------------------------------------------------------------------------

    def tree_input(self, obs: Obs) -> Tensor:
        """The flattened observation as gbrl reads it: float32, contiguous, on the CPU. [N, D]"""
        return flatten_obs(obs).detach().to("cpu", torch.float32).contiguous()

    def raw(self, obs: Obs) -> tuple[Tensor, Tensor]:
        """The ensemble's outputs (theta [N, P], V [N]) on the observations' device, without grad."""
        x = self.tree_input(obs)
        theta, values = self.model(x, requires_grad=False, tensor=True)
        device = self.log_std.device
        return theta.reshape(x.shape[0], self.policy_dim).to(device), values.reshape(x.shape[0]).to(
            device
        )

    def boost(self, obs: Obs, policy_grads: Tensor, value_grads: Tensor) -> None:
        """Append one tree fitted to per-sample output gradients (policy [N, P], value [N])."""
        x = self.tree_input(obs)
        g_theta = (
            policy_grads.detach()
            .to("cpu", torch.float32)
            .reshape(x.shape[0], self.policy_dim)
            .contiguous()
        )
        g_value = value_grads.detach().to("cpu", torch.float32).reshape(x.shape[0]).contiguous()
        self.model.step(x, g_theta, g_value)

    def num_trees(self) -> tuple[int, int]:
        """Trees of the policy and of the value (the same count when shared)."""
        n = self.model.get_num_trees()
        return (int(n), int(n)) if isinstance(n, int) else (int(n[0]), int(n[1]))

    def ensemble(self) -> dict[str, Tensor]:
        """Every tree's structure and leaf values, and the biases, as tensors (for comparisons; the
        saved files also hold allocation sizes, which differ between a grown and a loaded model)."""
        learner = self.model.learner
        models = [learner._cpp_model] if self.shared else list(learner._cpp_models)
        out = {}
        for i, cpp in enumerate(models):
            for key, value in cpp.get_ensemble_data().items():
                # categorical split values are byte strings: compare their bytes
                if key != "alloc_data_size":
                    array = np.asarray(value)
                    out[f"{i}/{key}"] = torch.as_tensor(
                        array
                        if array.dtype.kind in "biuf"
                        else np.frombuffer(bytearray(array.tobytes()), np.uint8)
                    )
        return out

    # -- the distribution over actions --------------------------------------------------------

    def dist(self, theta: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Distribution parameters from theta: normalised log-probabilities, or (mean, log std)."""
        if self.kind == "categorical":
            return F.log_softmax(theta, dim=-1)
        return theta, self.log_std.expand_as(theta)

    def log_prob(self, params: Any, action: Tensor) -> Tensor:
        if self.kind == "categorical":
            return params.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        return diag_gaussian_log_prob(action, *params)

    def entropy(self, params: Any) -> Tensor:
        if self.kind == "categorical":
            return -(params.exp() * params).sum(-1)
        return (0.5 + 0.5 * LOG_2PI + params[1]).sum(-1)

    def sample_from(self, params: Any) -> Tensor:
        if self.kind == "categorical":
            return torch.multinomial(params.exp(), 1).squeeze(-1)
        mean, log_std = params
        return mean + log_std.exp() * torch.randn_like(mean)

    def mode(self, params: Any) -> Tensor:
        return params.argmax(-1) if self.kind == "categorical" else params[0]

    def forward(self, obs: Obs) -> Any:
        return self.dist(self.raw(obs)[0])

    def act(self, obs: Obs, deterministic: bool = False) -> Tensor:
        params = self(obs)
        return self.mode(params) if deterministic else self.sample_from(params)

    # -- checkpoints: gbrl's own model files, carried as bytes ---------------------------------

    def get_extra_state(self) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as folder, quiet():
            self.model.save_learner(os.path.join(folder, "trees"))
            files = {
                p.name: torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)
                for p in sorted(Path(folder).iterdir())
            }
        return {"format": "gbrl-model", "shared": self.shared, "files": files}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != "gbrl-model" or bool(state.get("shared")) != self.shared:
            raise ValueError(
                f"tree checkpoint does not match this model (shared = {self.shared}): {state.get('format')!r}, shared = {state.get('shared')!r}"
            )
        ActorCritic = import_gbrl()
        with tempfile.TemporaryDirectory() as folder:
            for name, data in state["files"].items():
                Path(folder, Path(name).name).write_bytes(data.cpu().numpy().tobytes())
            with quiet():
                self.model = ActorCritic.load_learner(os.path.join(folder, "trees"), "cpu")
