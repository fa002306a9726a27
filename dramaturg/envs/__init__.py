"""Environments: Gymnasium adapters that speak batched torch tensors."""

from dramaturg.envs.make import env_factory, make_vec_env
from dramaturg.envs.spaces import space_from_json, space_to_json
from dramaturg.envs.vec import StepResult, TorchVecEnv

__all__ = ["StepResult", "TorchVecEnv", "env_factory", "make_vec_env", "space_from_json", "space_to_json"]
