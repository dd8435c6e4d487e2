"""The message catalogue of every command line (docs/adr/0034), with Babel.

Usage:
  python scripts/i18n.py extract   # add the marked messages of the source to the .po
                                   # (translations kept, messages no longer marked dropped)
  python scripts/i18n.py compile   # compile the .po into the committed .mo
  python scripts/i18n.py check     # fail if the .mo is stale or the .po misses a message

``make lint`` runs ``check``, as it checks the generated protobuf code: the ``.mo`` is
committed, so an install needs no build step, and CI fails when it is not the
compilation of the ``.po``. Messages are marked ``_()``, ``N_()``, ``ngettext()`` or
``pgettext()`` (a word with two meanings, told apart by a context) in the six ``src``
folders; argparse's own words are listed below, as argparse marks them
in the standard library.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / name / "src" for name in ("ledger", "proto", "node", "verifier", "staff")]
LOCALE = ROOT / "ledger" / "src" / "redlist" / "ledger" / "locale"
PO = LOCALE / "zh_CN" / "LC_MESSAGES" / "redlist.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}

#: The words argparse marks with gettext (Python 3.11), shown in every command's help
#: and usage errors.
ARGPARSE = (
    "usage: ",
    "argument %(argument_name)s: %(message)s",
    "positional arguments",
    "options",
    "show this help message and exit",
    "unrecognized arguments: %s",
    "not allowed with argument %s",
    "ignored explicit argument %r",
    "the following arguments are required: %s",
    "one of the arguments %s is required",
    "expected one argument",
    "expected at most one argument",
    "expected at least one argument",
    "ambiguous option: %(option)s could match %(matches)s",
    "invalid %(type)s value: %(value)r",
    "invalid choice: %(value)r (choose from %(choices)s)",
    "%(prog)s: error: %(message)s\n",
    "can't open '%(filename)s': %(error)s",
)


class Marked(NamedTuple):
    """A marked message: its msgid (a pair for ``ngettext``), where it is marked, and its
    context (``pgettext``; None for the others)."""

    msgid: str | tuple[str, ...]
    where: str
    line: int
    context: str | None = None


def marked() -> Iterator[Marked]:
    """Every marked message of the source."""
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            if "redlist/v1" in path.as_posix():
                continue
            for line, message, _comments, context in extract_from_file(
                "python", str(path), keywords=KEYWORDS
            ):
                yield Marked(message, path.relative_to(ROOT).as_posix(), line, context)
    for message in ARGPARSE:
        yield Marked(message, "argparse", 0)


def read_catalogue(path: Path = PO) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale="zh_CN", domain="redlist")


def extract() -> None:
    old = read_catalogue() if PO.exists() else Catalog(locale="zh_CN", domain="redlist")
    catalogue = Catalog(
        locale="zh_CN",
        domain="redlist",
        project="redlist",
        version="0.1.0",
        fuzzy=False,
        header_comment="# Simplified Chinese messages of redlist's command lines (docs/adr/0034).",
    )
    for msgid, where, line, context in marked():
        existing = old.get(msgid, context)
        string = existing.string if existing is not None and existing.string else ""
        known = catalogue.get(msgid, context)
        if known is not None:
            known.locations.append((where, line))
            continue
        catalogue.add(msgid, string, locations=[(where, line)], context=context)
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as file:
        write_po(file, catalogue, width=100, omit_header=False, no_location=False)
    missing = [message.id for message in catalogue if message.id and not message.string]
    print(f"{PO.relative_to(ROOT)}: {len(catalogue)} messages, {len(missing)} untranslated")


def compiled() -> bytes:
    output = io.BytesIO()
    write_mo(output, read_catalogue(), use_fuzzy=False)
    return output.getvalue()


def compile_mo() -> None:
    MO.write_bytes(compiled())
    print(f"compiled {MO.relative_to(ROOT)}")


def check() -> int:
    if not MO.exists() or MO.read_bytes() != compiled():
        print(
            f"{MO.relative_to(ROOT)} is stale: run python scripts/i18n.py compile", file=sys.stderr
        )
        return 1
    catalogue = read_catalogue()
    missing = sorted(
        {one.msgid for one in marked() if not _translated(catalogue, one.msgid, one.context)},
        key=repr,
    )
    for msgid in missing:
        print(f"untranslated: {msgid!r}", file=sys.stderr)
    if missing:
        print("run python scripts/i18n.py extract, translate, compile", file=sys.stderr)
        return 1
    print("message catalogue is fresh and complete")
    return 0


def _translated(
    catalogue: Catalog, msgid: str | tuple[str, ...], context: str | None = None
) -> bool:
    message = catalogue.get(msgid, context)
    if message is None:
        return False
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings) and not message.fuzzy


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "extract":
        extract()
    elif command == "compile":
        compile_mo()
    elif command == "check":
        sys.exit(check())
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
