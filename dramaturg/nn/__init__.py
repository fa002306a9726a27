"""Networks: MLPs, observation encoders and normalisers, actor heads, critics, the policy."""

from dramaturg.nn.actors import DeterministicActor, StochasticActor
from dramaturg.nn.critics import QEnsemble, ValueCritic
from dramaturg.nn.mlp import mlp
from dramaturg.nn.normalize import ObsNormalizer
from dramaturg.nn.policy import Policy

__all__ = [
    "DeterministicActor",
    "ObsNormalizer",
    "Policy",
    "QEnsemble",
    "StochasticActor",
    "ValueCritic",
    "mlp",
]
