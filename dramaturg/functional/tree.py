"""Observations are tensors or dicts of tensors; these apply a function to either."""

from __future__ import annotations

from typing import Any, Callable


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    if isinstance(tree, dict):
        return {k: fn(v, *(r[k] for r in rest)) for k, v in tree.items()}
    return fn(tree, *rest)


def tree_index(tree: Any, index: Any) -> Any:
    return tree_map(lambda x: x[index], tree)
