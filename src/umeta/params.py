"""Parameter limits declared once, checked on entry (scikit-learn's ``_parameter_constraints``).

A constraint table maps a parameter name to the list of values it may take; a value passes if any
entry accepts it. Entries are :class:`Interval` (numbers in a range), :class:`OneOf` (a choice of
names), :class:`Pair` (two numbers, e.g. ``k_range``), a type (``bool``, ``str``, ...) or
``None``. :func:`check_params` raises :class:`ParamError`, a `UmetaError` that also carries the
parameter's name, so that the command line can say ``--n-clusters`` where Python says
``n_clusters``.

>>> from umeta.params import Interval, OneOf, check_params
>>> limits = {"n_clusters": [Interval(int, 1, None), None], "refine": [OneOf("none", "soft")]}
>>> check_params({"n_clusters": 3, "refine": "soft"}, limits)
>>> check_params({"n_clusters": 0}, limits)
Traceback (most recent call last):
...
umeta.params.ParamError: n_clusters=0 must be an integer >= 1 or None
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any, Iterator, Mapping, Sequence

from umeta.errors import UmetaError


class ParamError(UmetaError):
    """A parameter outside its limits; ``param`` and ``value`` name it.

    The message is ``template`` with ``{setting}`` (``"n_clusters=0"``) and ``{param}`` (the
    bare name) filled in, so that the same error can name the parameter another way
    (:meth:`renamed`: an estimator's name for a function's argument, a command-line flag).
    """

    def __init__(self, param: str, value: Any, template: str) -> None:
        self.param, self.value, self.template = param, value, template
        super().__init__(self.render(param, f"{param}={value!r}"))

    def render(self, param: str, setting: str) -> str:
        """The message with the parameter called ``param`` and its setting written ``setting``."""
        return self.template.format(param=param, setting=setting)

    def renamed(self, param: str) -> "ParamError":
        """The same error for a parameter called ``param``."""
        return ParamError(param, self.value, self.template)


def literal(value: Any) -> str:
    """``repr(value)`` made safe inside a `ParamError` template (braces doubled)."""
    return repr(value).replace("{", "{{").replace("}", "}}")


@contextlib.contextmanager
def renamed_params(names: Mapping[str, str]) -> Iterator[None]:
    """Inside, a `ParamError` about a parameter in ``names`` is raised again under its new name
    (e.g. ``{"d": "n_components"}`` where an estimator calls a function)."""
    try:
        yield
    except ParamError as err:
        if err.param not in names:
            raise
        raise err.renamed(names[err.param]) from None


class Interval:
    """Numbers of ``kind`` (``int`` or ``float``; ``float`` also takes integers) in a range.

    ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``; ``None`` bounds are open.
    """

    def __init__(self, kind: type, low: float | None, high: float | None, *,
                 closed: str = "both") -> None:
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if not math.isfinite(value):
            return False
        low_ok = self.low is None or (value >= self.low if self.closed in ("both", "left")
                                      else value > self.low)
        high_ok = self.high is None or (value <= self.high if self.closed in ("both", "right")
                                        else value < self.high)
        return low_ok and high_ok

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        low, high = (f"{b}" if isinstance(b, (int, type(None))) else f"{b:g}"
                     for b in (self.low, self.high))
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            return f"{what} in {left}{low}, {high}{right}"
        if self.low is not None:
            return f"{what} {'>=' if self.closed in ('both', 'left') else '>'} {low}"
        if self.high is not None:
            return f"{what} {'<=' if self.closed in ('both', 'right') else '<'} {high}"
        return what


class OneOf:
    """One of the given strings."""

    def __init__(self, *values: str) -> None:
        self.values = values

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


class Pair:
    """Two values, each accepted by ``item``, with ``first <= second``."""

    def __init__(self, item: Interval) -> None:
        self.item = item

    def accepts(self, value: Any) -> bool:
        return (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
                and all(self.item.accepts(v) for v in value) and value[0] <= value[1])

    def __str__(self) -> str:
        return f"a pair (low, high) with low <= high, each {self.item}"


def _accepts(constraint: Any, value: Any) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.accepts(value)


def _describe(constraint: Any) -> str:
    if constraint is None:
        return "None"
    if isinstance(constraint, type):
        return {bool: "True or False", str: "a string"}.get(constraint, f"a {constraint.__name__}")
    return str(constraint)


def check_params(values: Mapping[str, Any], constraints: Mapping[str, list]) -> None:
    """Raise :class:`ParamError` for the first value that no constraint of its name accepts.

    Names without an entry in ``constraints`` are not checked.
    """
    for name, value in values.items():
        allowed = constraints.get(name)
        if allowed is None or any(_accepts(c, value) for c in allowed):
            continue
        if len(allowed) == 1 and isinstance(allowed[0], OneOf):
            raise ParamError(name, value, f"unknown {{param}} {literal(value)}; choose one of: "
                                          f"{', '.join(allowed[0].values)}")
        raise ParamError(name, value, "{setting} must be "
                         + " or ".join(_describe(c) for c in allowed).replace("{", "{{")
                         .replace("}", "}}"))


__all__ = ["Interval", "OneOf", "Pair", "ParamError", "check_params", "literal", "renamed_params"]
