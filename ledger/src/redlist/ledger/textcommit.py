"""Free text as salted commitments (DESIGN 9.2, docs/format.md "Texts"). Pure.

A body never holds free text. Each free-text field holds a **commitment** to it,
bin(32)::

    SHA-256("redlist/text/v1" || 0x00 || salt || UTF-8 text)

with a fresh random 16-byte ``salt`` per field. The fields are ``decided`` (rule, optional),
``note`` (award, optional), ``item`` (redeem), ``text`` (objection) and ``reason``
(reverse): :data:`TEXT_FIELDS`. The text and its salt travel beside the envelope
(``SubmitRequest.texts``) and stay in the town's node, which may erase them; the log, its
leaves, bundles and mirrors hold only the commitments. Without the salt, a commitment
tells nothing of its text, not even whether two entries say the same thing; with it,
anyone holding the text can show that the entry committed to exactly that text.

A text obeys the rules of every text field (``text.text_problem``: no control or
invisible characters, NFC) and is 1 to :data:`MAX_TEXT_BYTES` bytes of UTF-8.

:func:`check_texts` decides whether the texts given for one entry are exactly the ones
it commits to; it raises :class:`~redlist.ledger.errors.TextError` naming the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redlist.ledger import codec
from redlist.ledger.bodies import AnyBody, Award, Objection, Redeem, Reverse, RuleChange
from redlist.ledger.errors import FormatError, TextError
from redlist.ledger.formatv1 import HASH_SIZE
from redlist.ledger.text import text_problem

#: The domain of a text commitment; a 0x00 byte follows it.
TEXT_DOMAIN = b"redlist/text/v1"
SALT_SIZE = 16
COMMITMENT_SIZE = HASH_SIZE
#: The longest text, in UTF-8 bytes (a note, an item, an objection in a resident's words).
MAX_TEXT_BYTES = 16 * 1024

#: The free-text fields of each kind that has any (in the order they are shown).
TEXT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "rule": ("decided",),
    "award": ("note",),
    "redeem": ("item",),
    "objection": ("text",),
    "reverse": ("reason",),
}
#: Every free-text field name, whatever the kind.
ALL_TEXT_FIELDS = frozenset(name for names in TEXT_FIELDS.values() for name in names)


def commit(text: str, salt: bytes) -> bytes:
    """The commitment to ``text`` under ``salt`` (no checks: see :class:`EntryText`)."""
    return hashlib.sha256(TEXT_DOMAIN + b"\x00" + salt + text.encode("utf-8")).digest()


def text_value_problem(text: str) -> str | None:
    """Why ``text`` may not be committed to, in words; None if it may."""
    if not text:
        return "is empty"
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_TEXT_BYTES:
        return f"is {size} bytes long, more than the {MAX_TEXT_BYTES} allowed"
    return text_problem(text)


@dataclass(frozen=True)
class EntryText:
    """One free text and its salt; a value of this class is always well formed
    (``TextError`` otherwise)."""

    text: str
    salt: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TextError("a text must be text")
        if not isinstance(self.salt, bytes) or len(self.salt) != SALT_SIZE:
            raise TextError(f"a text's salt must be {SALT_SIZE} bytes")
        if (problem := text_value_problem(self.text)) is not None:
            raise TextError(f"the text {problem}")

    @property
    def commitment(self) -> bytes:
        return commit(self.text, self.salt)

    def to_bytes(self) -> bytes:
        """Canonical msgpack ``[salt, text]``: how a store keeps it."""
        return codec.encode([self.salt, self.text])

    @classmethod
    def from_bytes(cls, data: bytes) -> EntryText:
        try:
            value: Any = codec.decode(data, "stored text")
        except FormatError as error:
            raise TextError(f"a stored text cannot be read: {error}") from None
        if not (isinstance(value, list) and len(value) == 2):
            raise TextError("a stored text is not [salt, text]")
        salt, text = value
        return cls(text, salt)


def commitments_of(body: AnyBody) -> dict[str, bytes]:
    """The text commitments ``body`` holds, by field name (empty for kinds without any)."""
    if isinstance(body, Award):
        return {} if body.note is None else {"note": body.note}
    if isinstance(body, Redeem):
        return {"item": body.item}
    if isinstance(body, Objection):
        return {"text": body.text}
    if isinstance(body, Reverse):
        return {"reason": body.reason}
    if isinstance(body, RuleChange) and body.decided is not None:
        return {"decided": body.decided}
    return {}


def check_texts(body: AnyBody, texts: Mapping[str, EntryText]) -> None:
    """Refuse (``TextError``, naming the field) unless ``texts`` gives exactly one text
    for each commitment of ``body``, each matching it."""
    commitments = commitments_of(body)
    if not texts and not commitments:
        return  # the common case: no commitment, no text
    for name in sorted(texts):
        if name not in commitments:
            raise TextError(
                f"a text is given for the field '{name}', but the {body.kind} entry holds no "
                f"commitment '{name}'",
                field=name,
            )
    for name, committed in commitments.items():
        given = texts.get(name)
        if given is None:
            raise TextError(
                f"the {body.kind} entry commits to a text '{name}', but no text was sent with "
                "it; send its text and salt beside the envelope",
                field=name,
            )
        if given.commitment != committed:
            raise TextError(
                f"the text sent for '{name}' does not match the entry's commitment (another "
                "text or another salt than the one signed)",
                field=name,
            )


# ---- the texts file beside a bundle ---------------------------------------------------

#: A texts file's name in a directory given to ``redlist-verify --texts`` (older exports
#: wrote it into the bundle; ``redlist-node export --texts FILE`` now names the file).
TEXTS_FILE = "texts.jsonl"


@dataclass(frozen=True)
class BundleText:
    """One line of a texts file: the text of field ``field`` of entry ``seq``."""

    seq: int
    field: str
    text: EntryText

    def to_line(self) -> str:
        value = {
            "seq": self.seq,
            "field": self.field,
            "text": self.text.text,
            "salt": self.text.salt.hex(),
        }
        return json.dumps(value, ensure_ascii=False, sort_keys=True)


def encode_texts_file(texts: Iterable[BundleText]) -> bytes:
    """A texts file: UTF-8, one JSON object per line (``seq``, ``field``, ``text``, ``salt``
    as hex), in the order given (the exporter writes seq order, fields by name)."""
    return "".join(text.to_line() + "\n" for text in texts).encode("utf-8")


def decode_texts_file(data: bytes) -> list[BundleText]:
    """The lines of a texts file; ``FormatError`` naming the line of the first bad one."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise FormatError(f"{TEXTS_FILE} is not UTF-8 text") from None
    found: list[BundleText] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{TEXTS_FILE} line {number}"
        try:
            value = json.loads(line)
        except ValueError:
            raise FormatError(f"{where} is not a JSON object") from None
        if not isinstance(value, dict) or set(value) != {"seq", "field", "text", "salt"}:
            raise FormatError(f"{where} must be an object with seq, field, text and salt")
        seq, name, text, salt = value["seq"], value["field"], value["text"], value["salt"]
        if type(seq) is not int or seq < 0:
            raise FormatError(f"{where}: seq must be an entry number")
        if name not in ALL_TEXT_FIELDS:
            raise FormatError(f"{where}: {name!r} is not a free-text field")
        if not isinstance(text, str) or not isinstance(salt, str):
            raise FormatError(f"{where}: text and salt must be strings")
        try:
            if len(salt) != 2 * SALT_SIZE:
                raise ValueError(salt)
            entry_text = EntryText(text, bytes.fromhex(salt))
        except ValueError:
            raise FormatError(f"{where}: the salt must be {SALT_SIZE} bytes in hex") from None
        except TextError as error:
            raise FormatError(f"{where}: {error.message}") from None
        found.append(BundleText(seq, name, entry_text))
    return found
