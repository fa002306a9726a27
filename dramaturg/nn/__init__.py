"""Networks: MLPs, observation encoders and normalisers, actor heads, critics, the policy, Adam."""

from dramaturg.nn.actors import DeterministicActor, StochasticActor
from dramaturg.nn.critics import QEnsemble, ValueCritic
from dramaturg.nn.mlp import mlp
from dramaturg.nn.normalize import ObsNormalizer
from dramaturg.nn.optim import Adam
from dramaturg.nn.policy import Policy

__all__ = [
    "Adam",
    "DeterministicActor",
    "ObsNormalizer",
    "Policy",
    "QEnsemble",
    "StochasticActor",
    "ValueCritic",
    "mlp",
]
