"""Refusals of the pure core that a command shows in its reader's language. Pure.

The core loads no translations (``i18n`` reads the catalogue's file, above it), yet a
clerk reads some of its refusals word for word: what is wrong with a cell of the
resident register. Such a refusal is a ``WordedError``: an English sentence marked
for the catalogue with ``N_``, and the values to put in it. ``str()`` of the error is
the English sentence (for logs, tests and callers that show no other language); a
command shows ``i18n.in_words(error)``, the same sentence in its reader's language.
"""

from __future__ import annotations

from redlist.ledger.errors import FormatError


def N_(message: str) -> str:
    """``message`` unchanged: marks a message defined here and translated where shown."""
    return message


class WordedError(FormatError):
    """A refusal worded for translation: ``template`` (marked ``N_``) with ``values``
    in its ``{name}`` fields."""

    def __init__(self, template: str, **values: object) -> None:
        super().__init__(template.format(**values))
        self.template = template
        self.values = values


__all__ = ["N_", "WordedError"]
