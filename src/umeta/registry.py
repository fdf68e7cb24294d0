"""Name -> factory registries for backbones, learners and task builders."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from umeta.errors import UmetaError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; an unknown name raises an error that lists the valid ones.

    Parameters
    ----------
    kind : str
        What the registry holds ("backbone", "learner", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers ``factory`` under ``name``."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorate

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory registered under ``name``."""
        try:
            return self._factories[name]
        except KeyError:
            valid = ", ".join(sorted(self._factories))
            raise UmetaError(f"unknown {self.kind} {name!r}; choose one of: {valid}") from None

    def build(self, name: str, **kwargs) -> T:
        """Call the factory registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
