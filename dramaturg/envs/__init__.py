"""Environments: Gymnasium adapters that speak batched torch tensors.

Import from the submodules: `factory` (torch-free: env_factory, EnvError, EpisodeSeeding), `make`
(make_vec_env), `vec` (TorchVecEnv), `spaces`.
"""
