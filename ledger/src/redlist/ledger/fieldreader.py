"""Typed reading of a decoded msgpack map, for the general decoders of format v1. Pure.

The general decoders (``bodydecode``, ``TownConfig.from_value``) read a body field by
field through a :class:`FieldReader`: each read checks the field's type and range and
raises ``FormatError`` naming the field, and :meth:`FieldReader.done` refuses the fields
nobody read. The fast paths do not use it: they check exact types inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redlist.ledger.deeddate import parse_date
from redlist.ledger.errors import FormatError
from redlist.ledger.formatv1 import is_valid_account
from redlist.ledger.text import text_problem


def is_int(value: Any) -> bool:
    """True for an integer that is not a boolean (msgpack keeps the two apart)."""
    return isinstance(value, int) and not isinstance(value, bool)


class FieldReader:
    """Typed access to a decoded map that remembers which keys were read.

    ``what`` names the map in every error (``"award entry"``, ``"genesis config"``); a
    decoder may sharpen it once it knows more (the kind of a body).
    """

    def __init__(self, value: Any, what: str) -> None:
        if not isinstance(value, dict):
            raise FormatError(f"{what}: must be a map")
        self.value: dict[str, Any] = value
        self.what = what
        self.seen: set[str] = set()

    def _get(self, name: str) -> Any:
        if name not in self.value:
            raise FormatError(f"{self.what}: missing field '{name}'")
        self.seen.add(name)
        return self.value[name]

    def integer(self, name: str, minimum: int | None = None) -> int:
        value = self._get(name)
        if not is_int(value):
            raise FormatError(f"{self.what}: '{name}' must be an integer")
        if minimum is not None and value < minimum:
            raise FormatError(f"{self.what}: '{name}' must be at least {minimum}")
        result: int = value
        return result

    def boolean(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise FormatError(f"{self.what}: '{name}' must be true or false")
        return value

    def text(self, name: str) -> str:
        value = self.optional_text(name) if name in self.value else self._get(name)
        if not value:
            raise FormatError(f"{self.what}: '{name}' must not be empty")
        return value

    def optional_text(self, name: str) -> str | None:
        if name not in self.value:
            return None
        value = self._get(name)
        if not isinstance(value, str):
            raise FormatError(f"{self.what}: '{name}' must be text")
        if (problem := text_problem(value)) is not None:
            raise FormatError(f"{self.what}: '{name}' {problem}")
        return value

    def account(self, name: str) -> str:
        value = self.text(name)
        if not is_valid_account(value):
            raise FormatError(
                f"{self.what}: account id {value!r} is not valid (lower-case letters, digits, "
                "'.', '_', '-'; 1-64 characters, starting with a letter or digit)"
            )
        return value

    def optional_integer(self, name: str, minimum: int | None = None) -> int | None:
        return self.integer(name, minimum) if name in self.value else None

    def date(self, name: str) -> str:
        """A deed date, strictly ``YYYY-MM-DD`` and a real day (``deeddate.parse_date``)."""
        value = self._get(name)
        if not isinstance(value, str):
            raise FormatError(f"{self.what}: '{name}' must be text (a date YYYY-MM-DD)")
        try:
            parse_date(value)
        except FormatError as exc:
            raise FormatError(f"{self.what}: '{name}': {exc.diagnostics()}") from None
        return value

    def choice(self, name: str, options: Sequence[str]) -> str:
        value = self.text(name)
        if value not in options:
            raise FormatError(f"{self.what}: '{name}' must be one of {', '.join(options)}")
        return value

    def bin(self, name: str, size: int) -> bytes:
        value = self._get(name)
        if not isinstance(value, bytes) or len(value) != size:
            raise FormatError(f"{self.what}: '{name}' must be {size} bytes (msgpack bin)")
        return value

    def array(self, name: str) -> list[Any]:
        value = self._get(name)
        if not isinstance(value, list):
            raise FormatError(f"{self.what}: '{name}' must be an array")
        return value

    def map(self, name: str) -> dict[str, Any]:
        value = self._get(name)
        if not isinstance(value, dict):
            raise FormatError(f"{self.what}: '{name}' must be a map")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.value) - self.seen)
        if unknown:
            raise FormatError(f"{self.what}: unknown field(s) {', '.join(map(repr, unknown))}")
