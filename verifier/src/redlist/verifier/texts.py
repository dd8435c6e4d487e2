"""Checking free texts against the commitments in a bundle (``redlist-verify bundle --texts``).

A body holds a salted commitment to each free text (DESIGN 9.2); the texts travel apart,
as a texts file (``texts.jsonl``, ``textcommit.decode_texts_file``) that the town exports
only when asked. Given one, the verifier checks every line: its entry is in the bundle,
the entry commits to that field, and SHA-256("redlist/text/v1" ‖ 0x00 ‖ salt ‖ text) is
the commitment. Every mismatch is reported, by seq and field, as one failure (check
``text``, the verifier's exit 1). Without a texts file the verifier checks only that each
commitment is 32 bytes, which decoding the bodies already does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger.entry import Envelope, Leaf, decode_body
from redlist.ledger.errors import FormatError, SourceError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.textcommit import TEXTS_FILE, BundleText, commitments_of, decode_texts_file

#: Mismatches named in the failure's message; the rest are counted.
_NAMED = 20


@dataclass(frozen=True)
class TextsChecked:
    """A texts file that matched: how many texts it held."""

    path: Path
    count: int


def read_texts_file(path: Path) -> tuple[Path, list[BundleText]]:
    """The texts file at ``path`` (a file, or a directory holding ``texts.jsonl``).

    ``SourceError`` when it cannot be read (exit 2); a malformed file is a
    ``VerificationError`` (exit 1), check ``text``."""
    file = path / TEXTS_FILE if path.is_dir() else path
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise SourceError(_("there is no texts file {file}").format(file=file)) from None
    except OSError as error:
        raise SourceError(
            _("cannot read the texts file {file}: {strerror}").format(
                file=file, strerror=error.strerror
            )
        ) from None
    try:
        return file, decode_texts_file(data)
    except FormatError as error:
        raise VerificationError("text", str(error)) from None


def check_texts(
    path: Path, texts: list[BundleText], leaves: Iterable[bytes], start: int
) -> TextsChecked:
    """Check ``texts`` against the bundle's ``leaves`` (from seq ``start``; already
    verified by the audit). ``VerificationError`` naming every mismatch by seq and field."""
    wanted: dict[int, list[BundleText]] = {}
    for text in texts:
        wanted.setdefault(text.seq, []).append(text)
    problems: list[tuple[int, str]] = []
    end = start
    for offset, leaf in enumerate(leaves):
        seq = start + offset
        end = seq + 1
        given = wanted.pop(seq, None)
        if not given:
            continue
        body = decode_body(Envelope.from_bytes(Leaf.from_bytes(leaf).envelope).body)
        committed = commitments_of(body)
        seen: set[str] = set()
        for text in given:
            if text.field in seen:
                problems.append((seq, f"entry {seq}: the {text.field} is given twice"))
            elif text.field not in committed:
                problems.append(
                    (seq, f"entry {seq} ({body.kind}) holds no commitment '{text.field}'")
                )
            elif text.text.commitment != committed[text.field]:
                problems.append(
                    (seq, f"entry {seq}: the {text.field} does not match its commitment")
                )
            seen.add(text.field)
    for seq in sorted(wanted):
        problems.append((seq, f"entry {seq} is not in the bundle (entries {start} to {end - 1})"))
    if problems:
        problems.sort(key=lambda problem: problem[0])
        named = "; ".join(message for _, message in problems[:_NAMED])
        more = f"; and {len(problems) - _NAMED} more" if len(problems) > _NAMED else ""
        raise VerificationError(
            "text",
            f"{len(problems)} of the {len(texts)} texts in {path} do not match the log: "
            f"{named}{more}",
            seq=problems[0][0],
        )
    return TextsChecked(path, len(texts))
