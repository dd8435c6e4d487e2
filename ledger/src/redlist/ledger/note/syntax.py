"""The textual rules every part of a signed note follows. Pure.

Key names (non-empty, no whitespace, no ``+``, no control character), single
lines of note text, note text as a whole, and base64 in its one canonical
spelling. Every violation is a ``NoteError`` whose message says which part is
wrong; ``name_problem`` returns the reason instead, for callers that raise
another error type (private key strings raise ``KeyFileError``).
"""

from __future__ import annotations

import base64
import re

from redlist.ledger.errors import NoteError

#: A verifier refuses notes larger than this many bytes.
MAX_NOTE_SIZE = 1 << 20

FORBIDDEN_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
# Key names: no '+', no control characters, no whitespace. In a str pattern \s is
# exactly str.isspace(): Unicode White_Space (what Go's unicode.IsSpace tests) plus
# U+001C..U+001F, which are control characters anyway.
_NAME_FORBIDDEN = re.compile(r"[\s+\x00-\x1f]")


def check_note_text(text: str) -> None:
    """Note text: ends in a newline, valid UTF-8, no control character but newline."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("note text is not valid UTF-8") from None
    if FORBIDDEN_CONTROL.search(text):
        raise NoteError("note text may contain no control characters other than newline")


def check_line(line: str, what: str) -> None:
    """A non-empty line of note text: no newline, no control character, valid UTF-8."""
    if not isinstance(line, str) or not line:
        raise NoteError(f"{what} must be non-empty text")
    if "\n" in line or FORBIDDEN_CONTROL.search(line):
        raise NoteError(f"{what} may not contain a newline or control character")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError(f"{what} is not valid UTF-8") from None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a key name (empty, whitespace, '+', control), or None."""
    if not isinstance(name, str):
        return "must be text"
    if not name:
        return "must not be empty"
    forbidden = _NAME_FORBIDDEN.search(name)
    if forbidden is not None:
        kind = "'+'" if forbidden.group() == "+" else "spaces or control characters"
        return f"{excerpt(name)!r} must not contain {kind}"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


def check_name(name: str, what: str) -> None:
    """Raise ``NoteError`` when ``name`` cannot be a key name; ``what`` names the field."""
    problem = name_problem(name)
    if problem is not None:
        raise NoteError(f"the {what} {problem}")


def decode_base64(text: str, what: str) -> bytes:
    """Strict, canonical standard base64 (padding required, no stray bits)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise NoteError(f"{what} is not valid base64") from None
    # A decoder ignores the unused low bits of the last character; requiring the
    # canonical spelling gives every value exactly one encoding.
    if encode_base64(raw) != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def encode_base64(raw: bytes) -> str:
    """Standard base64 with padding: the spelling ``decode_base64`` accepts."""
    return base64.b64encode(raw).decode("ascii")


def excerpt(text: str, limit: int = 64) -> str:
    """``text`` cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
