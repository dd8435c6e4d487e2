"""Building frozen dataclass values fast, for the few made once per entry. Pure.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``
(its own ``__setattr__`` refuses): a tenth of a microsecond a field, so an award's
``Award`` costs over a microsecond to build. An audit builds a body for every entry,
and on two cores each microsecond of that is about 2% of the audit's speed against
the limit (DESIGN 6, ADR 0039). The other values made for every entry (the leaf, its
envelope and signatures, the new balance, the target record, the effect) are named
tuples, cheaper still (ADR 0039's addendum); the bodies, a class hierarchy, cannot be.

``builder(cls)`` returns a function taking every field of ``cls`` positionally, in
the order of ``dataclasses.fields``, that writes them straight into the new value's
``__dict__``: the same value ``cls(...)`` makes (equal, and as frozen), in about a
third of the time. It only accepts classes whose ``__init__`` does nothing else: a
dataclass with a ``__dict__``, no ``__post_init__``, no ``InitVar`` and no field
left out of ``__init__``; anything else raises ``TypeError`` when the builder is
made, not when it is used. The function is generated as source, as ``dataclasses``
itself makes ``__init__``; the field names come from the class, never from data.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


def builder(cls: type[_T]) -> Callable[..., _T]:
    """A function building ``cls`` values from all their fields, positionally; see above."""
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(f"{cls!r} is not a dataclass")
    if "__mypyc_attrs__" in cls.__dict__:
        # A class compiled by mypyc (ADR 0057): its own __init__ is already native code.
        return cls
    if hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__}: a builder needs a plain __init__ and a __dict__")
    fields = dataclasses.fields(cls)
    names = [field.name for field in fields]
    if any(not field.init for field in fields) or any(
        not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") for name in names
    ):
        raise TypeError(f"{cls.__name__}: a builder takes only plain fields set by __init__")
    lines = [f"def build_{cls.__name__}({', '.join(names)}):"]
    lines.append("    value = new(cls)")
    lines.append("    fields = value.__dict__")
    lines.extend(f"    fields[{name!r}] = {name}" for name in names)
    lines.append("    return value")
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    exec("\n".join(lines), namespace)  # noqa: S102 - source made from the class's field names
    built: Callable[..., _T] = namespace[f"build_{cls.__name__}"]
    built.__qualname__ = f"builder({cls.__name__})"
    return built


__all__ = ["builder"]
