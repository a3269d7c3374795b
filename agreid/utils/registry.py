"""Name → object registries: the only way agreid finds its components."""
from __future__ import annotations

import difflib
from typing import Any, Dict, Iterator, Optional, TypeVar

from agreid.utils.errors import UserError

T = TypeVar("T")


class RegistryError(UserError, KeyError):
    """A name is not registered (usually a typo in a config value); the message lists the registered names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry:
    """Map names to classes or builder functions.

    Use as a decorator (``@REG.register()`` or ``@REG.register("Name")``) or call
    ``REG.register(obj)``. A lookup miss raises ``KeyError`` listing every registered
    name and the closest match, so a typo or a module that was never imported is obvious.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._map: Dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    def _add(self, name: str, obj: Any) -> None:
        if name in self._map and self._map[name] is not obj:
            raise KeyError(f"'{name}' is already registered in the {self._name} registry")
        self._map[name] = obj

    def register(self, obj: Any = None, name: Optional[str] = None) -> Any:
        """Register ``obj`` under ``name`` (default ``obj.__name__``); without ``obj``, return a decorator."""
        if isinstance(obj, str):
            obj, name = None, obj
        if obj is None:
            def deco(fn_or_cls: T) -> T:
                self._add(name or fn_or_cls.__name__, fn_or_cls)
                return fn_or_cls
            return deco
        self._add(name or obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        if name not in self._map:
            names = sorted(self._map)
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RegistryError(
                f"No object named '{name}' in the {self._name} registry.{hint} "
                f"Registered: {', '.join(names) or '(none)'}. A component defined outside agreid must be "
                f"imported before it is looked up so that its @register decorator runs."
            )
        return self._map[name]

    def __contains__(self, name: str) -> bool:
        return name in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._map))

    def __len__(self) -> int:
        return len(self._map)

    def names(self) -> list:
        return sorted(self._map)

    def __repr__(self) -> str:
        return f"Registry({self._name!r}, {self.names()})"
