"""Pure tensor maths: returns, advantages, running statistics, target-network updates."""

from dramaturg.functional.returns import gae, n_step_returns
from dramaturg.functional.stats import explained_variance, update_moments
from dramaturg.functional.tree import tree_index, tree_map
from dramaturg.functional.targets import polyak_

__all__ = [
    "explained_variance",
    "gae",
    "n_step_returns",
    "polyak_",
    "tree_index",
    "tree_map",
    "update_moments",
]
