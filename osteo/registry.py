"""One registry mechanism for every model family (segmentation networks, backbones, heads).

As timm's ``_registry``: a family registers its factories by name with a decorator, builds one
by name through its own ``create_*`` function, and lists the valid names; an unknown name is
an error that lists them.

    NETWORKS = Registry("segmentation network")

    @NETWORKS.register("unet")
    def unet(...): ...

    NETWORKS.get("vnet")  # ValueError: unknown segmentation network 'vnet'; choose one of [...]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind, each with optional metadata (e.g. a head's inputs)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        """Decorator: register the factory under ``name``; a name is registered only once."""

        def decorator(factory: T) -> T:
            self.add(name, factory, **info)
            return factory

        return decorator

    def add(self, name: str, factory: T, **info: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = factory
        self._info[name] = dict(info)

    def get(self, name: str) -> T:
        """The factory registered as ``name``; a ValueError listing the valid names if none."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of {self.names()}"
            ) from None

    def info(self, name: str) -> dict[str, Any]:
        self.get(name)  # the same error for an unknown name
        return self._info[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
