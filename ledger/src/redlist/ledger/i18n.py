"""The language of every command line: English, or Simplified Chinese (docs/adr/0034).

One mechanism for ``redlist``, ``redlist-node`` and ``redlist-verify``: Python's
:mod:`gettext`, with one catalogue (domain ``redlist``) compiled from
``locale/zh_CN/LC_MESSAGES/redlist.po`` beside this module into the ``.mo`` next to it
(``scripts/i18n.py compile``; ``make lint`` fails when the committed ``.mo`` is stale).

* A message is written in English in the source and marked: ``_("...")`` where it is
  shown, ``N_("...")`` where it is only defined (a module constant, translated where it
  is used). A message with values is one template, ``_("{n} rows").format(n=...)``, so
  that the translation can put the values where its grammar wants them.
* The language is chosen once, before the parser is built (help texts are translated
  as they are added): ``--lang zh_CN|en`` anywhere on the command line, else the
  locale (the first of ``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` that is set;
  one starting with ``zh`` means Chinese), else English.
* A message missing from the catalogue is shown in English.
* One English word with two meanings is told apart by a context:
  ``pgettext("rules table", "council")``.
* Machine output stays English whatever the language: ``--json`` keys and values, CSV
  files written for programs, and the node's log lines for operators' log tools.

argparse's own words (``usage:``, ``options``, ``the following arguments are
required``) come from the same catalogue: :func:`setup` hands argparse our lookup.
"""

from __future__ import annotations

import argparse
import datetime
import gettext
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from redlist.ledger.errors import RedlistError
from redlist.ledger.wording import N_ as N_  # marks where defined; re-exported for the edges
from redlist.ledger.wording import Words

DOMAIN = "redlist"
LOCALE_DIR = Path(__file__).with_name("locale")

ENGLISH = "en"
CHINESE = "zh_CN"
#: What ``--lang`` accepts.
LANGUAGES = (CHINESE, ENGLISH)
#: The option, the same on every command line.
OPTION = "--lang"
#: The locale variables, in the order gettext reads them.
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = ENGLISH


def _(message: str) -> str:
    """``message`` in the chosen language (English when the catalogue lacks it)."""
    return _translation.gettext(message)


def in_words(error: BaseException) -> str:
    """What ``error`` says, in the chosen language where the core worded it for that
    (``wording``); otherwise its own words."""
    if isinstance(error, RedlistError):
        return error.diagnostics() if error.words is None else say(error.words)
    return str(error)


def say(said: Words) -> str:
    """``said`` in the chosen language, its values that are ``Words`` said in turn."""
    values = {
        name: say(value) if isinstance(value, Words) else value
        for name, value in said.values.items()
    }
    return _(said.template).format(**values)


def pgettext(context: str, message: str) -> str:
    """``message`` in the chosen language, as meant in ``context``: for an English word
    with two meanings ("council": the role, and a rule table's column whether a rule
    needs the council), each translated on its own."""
    return _translation.pgettext(context, message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """``singular`` or ``plural`` for ``count``, in the chosen language."""
    return _translation.ngettext(singular, plural, count)


def language() -> str:
    """The chosen language: ``zh_CN`` or ``en``."""
    return _language


def is_chinese() -> bool:
    return _language == CHINESE


def from_environment(environ: Mapping[str, str]) -> str:
    """The language the locale asks for: Chinese for ``zh*``, else English.

    ``LANGUAGE`` is a colon-separated list of preferences; its first item counts. The
    first variable that is set and not empty decides, as for gettext.
    """
    for variable in LOCALE_VARIABLES:
        value = environ.get(variable, "")
        first = value.split(":", 1)[0].strip()
        if first:
            return CHINESE if first.lower().startswith("zh") else ENGLISH
    return ENGLISH


def normalise(value: str) -> str:
    """``zh_CN``, ``zh-CN``, ``zh``, ``zh_CN.UTF-8`` → ``zh_CN``; ``en*`` → ``en``.

    Raises :class:`ValueError` for anything else.
    """
    folded = value.strip().lower()
    if folded.startswith("zh"):
        return CHINESE
    if folded == "c" or folded.startswith("en"):
        return ENGLISH
    raise ValueError(value)


def split_option(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The value of ``--lang`` in ``argv`` (the last one given), and ``argv`` without it.

    ``--lang X`` and ``--lang=X`` are taken anywhere before a ``--`` that ends the
    options, so the switch works in front of or after the subcommand. A value that is
    not a language is left in place for the parser to refuse.
    """
    chosen: str | None = None
    rest: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            rest.extend(argv[index:])
            break
        value: str | None = None
        width = 1
        if word == OPTION and index + 1 < len(argv):
            value, width = argv[index + 1], 2
        elif word.startswith(OPTION + "="):
            value = word[len(OPTION) + 1 :]
        if value is not None:
            try:
                chosen = normalise(value)
            except ValueError:
                rest.extend(argv[index : index + width])
            index += width
            continue
        rest.append(word)
        index += 1
    return chosen, rest


def setup(lang: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Choose the language (``lang``, else the locale of ``environ``), return it.

    Loads the catalogue for Chinese (English needs none) and hands argparse the same
    lookup, so its own words follow. Safe to call again: the last call decides.
    """
    global _translation, _language
    chosen = lang if lang is not None else from_environment(environ or os.environ)
    if chosen == CHINESE:
        _translation = gettext.translation(
            DOMAIN, localedir=LOCALE_DIR, languages=[CHINESE], fallback=True
        )
    else:
        _translation = gettext.NullTranslations()
    _language = chosen
    # argparse looks its words up with module globals ``_`` and ``ngettext`` at call time.
    setattr(argparse, "_", _)  # noqa: B010 - argparse's stub does not declare them
    setattr(argparse, "ngettext", ngettext)  # noqa: B010
    return chosen


def setup_from_argv(argv: Sequence[str] | None) -> list[str] | None:
    """Choose the language from ``argv``'s ``--lang`` (else the locale); return ``argv``
    without the switch (``None`` stays ``None``: the process arguments, read here)."""
    words = list(sys.argv[1:] if argv is None else argv)
    chosen, rest = split_option(words)
    setup(chosen)
    return rest


def add_option(parser: argparse.ArgumentParser) -> None:
    """Declare ``--lang`` on ``parser``, for its help (the value is read before parsing)."""
    parser.add_argument(
        OPTION,
        choices=LANGUAGES,
        metavar="zh_CN|en",
        help=_("language of messages and help (default: from the locale, LANG=zh_CN.UTF-8)"),
    )


def prose_date(day: datetime.date | str) -> str:
    """A day as a sentence writes it: ``2026-05-03``, in Chinese ``2026年5月3日``.

    Tables keep ``YYYY-MM-DD``; a string that is not a date is returned unchanged.
    """
    if isinstance(day, str):
        try:
            parsed = datetime.date.fromisoformat(day)
        except ValueError:
            return day
    else:
        parsed = day
    if _language == CHINESE:
        return f"{parsed.year}年{parsed.month}月{parsed.day}日"
    return parsed.isoformat()
