"""``once``: a property computed on first read and kept, for objects that never change.

Type checkers see ``functools.cached_property``; at run time it is a lock-free equivalent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

__all__ = ["once"]

_T = TypeVar("_T")


class _Once(Generic[_T]):
    """``functools.cached_property`` without its lock (Python 3.11 takes one per access
    until the value is stored, which costs more than the figures it saves here)."""

    def __init__(self, compute: Callable[[Any], _T]) -> None:
        self._compute = compute
        self._name = compute.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, instance: object, owner: type | None = None) -> _T:
        if instance is None:  # looked up on the class (introspection, documentation)
            return self  # type: ignore[return-value]
        value = self._compute(instance)
        instance.__dict__[self._name] = value  # later reads find it without the descriptor
        return value


if TYPE_CHECKING:
    from functools import cached_property as once
else:
    once = _Once
