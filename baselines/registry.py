"""A registry of lazily imported entries: names map to "module:attribute" strings until first use."""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class LazyRegistry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str | Callable[..., T]] = {}
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: str | Callable[..., T]) -> None:
        """`target`: the entry itself, "module:attribute", or "module:factory()" (called with the name on first
        use, so that one factory serves a table of entries)."""
        if name in self._targets:
            raise ValueError(f"duplicate {self.kind} name {name!r}")
        if name != name.lower() or " " in name or "_" in name:
            raise ValueError(f"{self.kind} names are kebab-case: {name!r}")
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: str) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def resolve(self, name: str) -> Any:
        """The registered object (class, factory or function), importing its module on first use."""
        if name not in self._targets:
            close = difflib.get_close_matches(name, self._targets, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(self.names())}"
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}")
        if name not in self._loaded:
            target = self._targets[name]
            if isinstance(target, str):
                module_name, _, attr = target.partition(":")
                if attr.endswith("()"):  # "module:factory()": a function of the name returns the entry
                    target = getattr(importlib.import_module(module_name), attr[:-2])(name)
                else:
                    target = getattr(importlib.import_module(module_name), attr)
            self._loaded[name] = target
        return self._loaded[name]
