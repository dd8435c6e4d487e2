"""Refusals of the pure core that a command shows in its reader's language. Pure.

The core loads no translations (``i18n`` reads the catalogue's file, above it), yet its
reader reads some of its refusals word for word: what is wrong with a cell of the
resident register, or with a line of a witness policy. Such a refusal carries
``Words``: an English sentence marked for the catalogue with ``N_``, and the values to
put in it (a value may be ``Words`` itself, said in turn). ``str()`` of the refusal is
the English sentence (for logs, tests and callers that show no other language); a
command shows ``i18n.in_words(error)``, the same sentence in its reader's language.

``WordedError`` is such a ``FormatError``; ``worded`` gives any error its words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from redlist.ledger.errors import FormatError, RedlistError

_Error = TypeVar("_Error", bound=RedlistError)


def N_(message: str) -> str:
    """``message`` unchanged: marks a message defined here and translated where shown."""
    return message


@dataclass(frozen=True)
class Words:
    """``template`` (marked ``N_``) with ``values`` in its ``{name}`` fields."""

    template: str
    values: Mapping[str, object]

    def __str__(self) -> str:
        return self.template.format(**self.values)


def words(template: str, /, **values: object) -> Words:
    """``Words(template, values)``, written as a call with the values named."""
    return Words(template, values)


def worded(error: _Error, said: Words) -> _Error:
    """``error`` (made with ``str(said)`` as its message), carrying ``said`` for
    ``i18n.in_words``."""
    error.words = said
    return error


class WordedError(FormatError):
    """A ``FormatError`` worded for translation: ``template`` with ``values``."""

    def __init__(self, template: str, **values: object) -> None:
        said = Words(template, values)
        super().__init__(str(said))
        self.words = said


__all__ = ["N_", "WordedError", "Words", "worded", "words"]
