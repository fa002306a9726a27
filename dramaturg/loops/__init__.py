"""The learning loops. They collect experience and call an update; they know no loss."""

from dramaturg.loops.off_policy import run_off_policy
from dramaturg.loops.on_policy import run_on_policy

__all__ = ["run_off_policy", "run_on_policy"]
