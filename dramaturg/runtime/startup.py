"""Keep the command's start-up lean: import only what the run uses."""

from __future__ import annotations

import sys

import torch

_MARKED = ("add_param_group", "state_dict", "load_state_dict", "zero_grad")


def optimizers_without_compiler() -> None:
    """Let torch's optimizers be built without importing the compiler.

    `torch.optim.Optimizer` marks four bookkeeping methods as not to be traced by torch.compile, and
    applies the mark by importing `torch._dynamo` the first time each one is called: about 0.7 s,
    half of a small run's start-up. In a process that compiles nothing the mark has no effect, so
    this answers it in advance with the plain method. The command calls it unless `--compile` is on;
    the Python API never does (its caller may compile).
    """
    if "torch._dynamo" in sys.modules:
        return
    for name in _MARKED:
        fn = getattr(getattr(torch.optim.Optimizer, name), "__wrapped__", None)
        if fn is not None and getattr(fn, "__dynamo_disable", None) is None:
            setattr(fn, "__dynamo_disable", fn)  # what torch._compile._disable_dynamo caches
