"""Name -> factory registries (backbones, learners, task builders, data sets) with checked options.

Every registry builds the same way: the run supplies some arguments itself (``provided``: the
backbone of a learner, the images of a task builder, ...) and the user supplies ``options`` (a
config's ``options`` table). Options are checked against the factory's signature before it is
called: a misspelled key, an option the run already sets, or a value of the wrong simple type is
one `UmetaError` that names the key and lists the valid ones. A provided argument that the
factory does not take is simply not passed (ProtoNets needs no ``n_way``, MAML does).
"""

from __future__ import annotations

import inspect
import numbers
import types
import typing
from typing import Any, Callable, Generic, Mapping, TypeVar

from umeta.errors import UmetaError

T = TypeVar("T")

_SIMPLE = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _accepted(factory: Callable) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``factory`` takes (its ``__init__``'s for a class)."""
    params = inspect.signature(factory).parameters
    return {n: p for n, p in params.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _simple_types(hint: Any) -> tuple[type, ...] | None:
    """The simple types (int, float, bool, str, None) a hint allows, or None if it allows more."""
    if hint in _SIMPLE:
        return (hint,)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        allowed: list[type] = []
        for arg in typing.get_args(hint):
            if arg is type(None):
                allowed.append(type(None))
            elif arg in _SIMPLE:
                allowed.append(arg)
            else:
                return None
        return tuple(allowed)
    return None


def _fits(value: Any, kind: type) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real)
    if kind is int:
        return isinstance(value, numbers.Integral)
    return isinstance(value, kind)


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

    def options(self, name: str, provided: typing.Iterable[str] = ()) -> list[str]:
        """The option names a user may set for ``name`` (its arguments minus ``provided``)."""
        return sorted(set(_accepted(self.get(name))) - set(provided))

    def check_options(self, name: str, options: Mapping[str, Any],
                      provided: typing.Iterable[str] = ()) -> None:
        """Raise `UmetaError` for an option ``name``'s factory does not take, one that the run
        provides itself, or a value of the wrong simple type (int, float, bool, str)."""
        factory = self.get(name)
        accepted = _accepted(factory)
        provided = set(provided)
        valid = self.options(name, provided)
        for key, value in options.items():
            if key in provided and key in accepted:
                raise UmetaError(f"{self.kind} option {key!r} of {name!r} is set by the run itself, "
                                 f"not in options; remove it (its options are: {', '.join(valid)})")
            if key not in accepted:
                raise UmetaError(f"{self.kind} {name!r} has no option {key!r}; its options are: "
                                 f"{', '.join(valid) or 'none'}")
        try:
            hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
        except (NameError, TypeError):  # an annotation that cannot be resolved: names only
            hints = {}
        for key, value in options.items():
            kinds = _simple_types(hints.get(key))
            if kinds is not None and not any(_fits(value, k) for k in kinds):
                expected = " or ".join(_SIMPLE.get(k, "null") for k in kinds)
                raise UmetaError(f"{self.kind} {name!r} option {key}={value!r} must be {expected}")

    def build(self, name: str, options: Mapping[str, Any] | None = None, /,
              **provided: Any) -> T:
        """Call the factory ``name`` with the checked ``options`` and those ``provided``
        arguments it takes."""
        options = dict(options or {})
        self.check_options(name, options, provided)
        accepted = _accepted(self.get(name))
        return self.get(name)(**{k: v for k, v in provided.items() if k in accepted}, **options)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
