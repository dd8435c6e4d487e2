"""Format v1 objects: entry bodies, envelopes and leaves (DESIGN 3.1-3.4).

Each class converts to and from bytes; ``from_bytes`` accepts only canonical
bytes and validates the structure (field names, types and ranges), so a value
of these classes is always well formed. Whether an entry is *allowed* (keys,
roles, rules, balances) is the points semantics' job (``points``).

The original bytes are kept next to the decoded value (``Envelope.body``,
``Leaf.envelope``): hashes and signatures are always computed over them, never
over a re-encoding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redlist.ledger import codec
from redlist.ledger.errors import FormatError
from redlist.ledger.text import key_name_problem, rule_code_problem, text_problem

FORMAT_VERSION = 1
ID_SIZE = 16
KEY_ID_SIZE = 8
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
HASH_SIZE = 32
MAX_ENVELOPE_SIZE = 64 * 1024
#: An author's clock may run ahead of the node's by at most this much.
MAX_FUTURE_MS = 10 * 60 * 1000

ROLES = frozenset({"admin", "grid", "council", "cashier"})
KINDS = ("genesis", "key", "rule", "award", "redeem", "objection", "reverse")
ACCOUNT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
COMMON_FIELDS = frozenset({"v", "kind", "log", "id", "at"})


def is_valid_account(account: str) -> bool:
    """True when ``account`` is an opaque account id of the allowed shape."""
    return ACCOUNT_PATTERN.fullmatch(account) is not None


# ---------------------------------------------------------------------------
# Bodies


@dataclass(frozen=True)
class Grade:
    """A grade and the lowest score that reaches it (``None``: every score)."""

    name: str
    min: int | None


@dataclass(frozen=True)
class TownConfig:
    """The genesis ``config`` map: how a town scores its residents."""

    base: int
    grades: tuple[Grade, ...]
    quorum: int
    publicity_days: int
    tz: str

    def grade_of(self, score: int) -> str:
        """The first grade whose minimum the score reaches."""
        for grade in self.grades:
            if grade.min is None or score >= grade.min:
                return grade.name
        return self.grades[-1].name  # unreachable: the last grade is a catch-all

    def to_value(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "grades": [[grade.name, grade.min] for grade in self.grades],
            "quorum": self.quorum,
            "publicity_days": self.publicity_days,
            "tz": self.tz,
        }

    @classmethod
    def from_value(cls, value: Any) -> TownConfig:
        fields = _Fields(value, "genesis config")
        base = fields.integer("base")
        quorum = fields.integer("quorum", minimum=1)
        publicity_days = fields.integer("publicity_days", minimum=0)
        tz = fields.text("tz")
        raw_grades = fields.array("grades")
        fields.done()
        if not raw_grades:
            raise FormatError("genesis config: 'grades' must list at least one grade")
        grades: list[Grade] = []
        for number, raw in enumerate(raw_grades):
            where = f"genesis config: grade {number + 1}"
            if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str)):
                raise FormatError(f"{where} must be [name, min]")
            name, minimum = raw
            if not name:
                raise FormatError(f"{where} has an empty name")
            if (problem := text_problem(name)) is not None:
                raise FormatError(f"{where}: the name {problem}")
            last = number == len(raw_grades) - 1
            if last and minimum is not None:
                raise FormatError(f"{where}: the last grade's min must be nil (the catch-all)")
            if not last and not _is_int(minimum):
                raise FormatError(f"{where}: min must be an integer (only the last grade's is nil)")
            if (
                grades
                and grades[-1].min is not None
                and minimum is not None
                and (minimum >= grades[-1].min)
            ):
                raise FormatError(f"{where}: grade minimums must strictly descend")
            grades.append(Grade(name, minimum))
        if len({grade.name for grade in grades}) != len(grades):
            raise FormatError("genesis config: grade names must be distinct")
        return cls(base, tuple(grades), quorum, publicity_days, tz)


@dataclass(frozen=True)
class Body:
    """Fields common to every entry body."""

    log: str
    id: bytes
    at: int

    kind = ""

    def to_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "kind": self.kind,
            "log": self.log,
            "id": self.id,
            "at": self.at,
        }
        value.update(self._own_fields())
        return value

    def to_bytes(self) -> bytes:
        return codec.encode(self.to_value())

    def _own_fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Genesis(Body):
    admin: bytes
    config: TownConfig
    kind = "genesis"

    def _own_fields(self) -> dict[str, Any]:
        return {"admin": self.admin, "config": self.config.to_value()}


@dataclass(frozen=True)
class KeyChange(Body):
    op: str  # "add" or "revoke"
    pub: bytes
    name: str | None = None
    roles: tuple[str, ...] | None = None
    kind = "key"

    def _own_fields(self) -> dict[str, Any]:
        value: dict[str, Any] = {"op": self.op, "pub": self.pub}
        if self.name is not None:
            value["name"] = self.name
        if self.roles is not None:
            value["roles"] = list(self.roles)
        return value


@dataclass(frozen=True)
class RuleChange(Body):
    op: str  # "set" or "retire"
    code: str
    title: str | None = None
    module: str | None = None
    points: int | None = None
    council: bool | None = None
    kind = "rule"

    def _own_fields(self) -> dict[str, Any]:
        value: dict[str, Any] = {"op": self.op, "code": self.code}
        for name in ("title", "module", "points", "council"):
            if getattr(self, name) is not None:
                value[name] = getattr(self, name)
        return value


@dataclass(frozen=True)
class Award(Body):
    account: str
    rule: str
    qty: int = 1
    note: str | None = None
    evidence: bytes | None = None
    kind = "award"

    def _own_fields(self) -> dict[str, Any]:
        value: dict[str, Any] = {"account": self.account, "rule": self.rule, "qty": self.qty}
        if self.note is not None:
            value["note"] = self.note
        if self.evidence is not None:
            value["evidence"] = self.evidence
        return value


@dataclass(frozen=True)
class Redeem(Body):
    account: str
    points: int
    item: str
    kind = "redeem"

    def _own_fields(self) -> dict[str, Any]:
        return {"account": self.account, "points": self.points, "item": self.item}


@dataclass(frozen=True)
class Objection(Body):
    target: int
    text: str
    kind = "objection"

    def _own_fields(self) -> dict[str, Any]:
        return {"target": self.target, "text": self.text}


@dataclass(frozen=True)
class Reverse(Body):
    target: int
    reason: str
    kind = "reverse"

    def _own_fields(self) -> dict[str, Any]:
        return {"target": self.target, "reason": self.reason}


AnyBody = Genesis | KeyChange | RuleChange | Award | Redeem | Objection | Reverse


def decode_body(data: bytes) -> AnyBody:
    """Parse and validate canonical body bytes; FormatError names the bad field."""
    quick = _decode_common_body(data)
    if quick is not None:
        return quick
    value = codec.decode(data, "entry body")
    if not isinstance(value, dict):
        raise FormatError("entry body: must be a msgpack map")
    fields = _Fields(value, "entry body")
    version = fields.integer("v")
    if version != FORMAT_VERSION:
        raise FormatError(f"entry body: format version {version} is not supported (expected 1)")
    kind = fields.text("kind")
    if kind not in KINDS:
        raise FormatError(f"entry body: unknown kind {kind!r}")
    fields.what = f"{kind} entry"
    log = fields.text("log")
    entry_id = fields.bin("id", ID_SIZE)
    at = fields.integer("at", minimum=0)
    body: AnyBody = _DECODERS[kind](fields, log, entry_id, at)
    fields.done()
    return body


def _decode_genesis(f: _Fields, log: str, entry_id: bytes, at: int) -> Genesis:
    return Genesis(
        log, entry_id, at, f.bin("admin", PUBLIC_KEY_SIZE), TownConfig.from_value(f.map("config"))
    )


def _decode_key(f: _Fields, log: str, entry_id: bytes, at: int) -> KeyChange:
    op = f.choice("op", ("add", "revoke"))
    pub = f.bin("pub", PUBLIC_KEY_SIZE)
    name: str | None
    roles: list[Any] | None
    if op == "add":
        name = f.text("name")
        roles = f.array("roles")
    else:
        name = f.optional_text("name")
        roles = f.array("roles") if "roles" in f.value else None
    if name is not None and (problem := key_name_problem(name)) is not None:
        raise FormatError(f"{f.what}: the key's name {name!r} {problem}")
    if roles is not None:
        for role in roles:
            if not isinstance(role, str):
                raise FormatError(f"{f.what}: 'roles' must be a list of text")
        if len(set(roles)) != len(roles):
            raise FormatError(f"{f.what}: 'roles' lists a role twice")
        if op == "add" and not roles:
            raise FormatError(f"{f.what}: a key must be given at least one role")
    return KeyChange(log, entry_id, at, op, pub, name, tuple(roles) if roles is not None else None)


def _decode_rule(f: _Fields, log: str, entry_id: bytes, at: int) -> RuleChange:
    op = f.choice("op", ("set", "retire"))
    code = f.text("code")
    if (problem := rule_code_problem(code)) is not None:
        raise FormatError(f"{f.what}: rule code {code!r} {problem}")
    if op == "set":
        title: str | None = f.text("title")
        module: str | None = f.text("module")
        points: int | None = f.integer("points")
        council: bool | None = f.boolean("council")
        if points == 0:
            raise FormatError(f"{f.what}: 'points' must not be zero")
    else:
        title = f.optional_text("title")
        module = f.optional_text("module")
        points = f.integer("points") if "points" in f.value else None
        council = f.boolean("council") if "council" in f.value else None
    return RuleChange(log, entry_id, at, op, code, title, module, points, council)


def _decode_award(f: _Fields, log: str, entry_id: bytes, at: int) -> Award:
    account = f.account("account")
    rule = f.text("rule")
    qty = f.integer("qty", minimum=1)
    note = f.optional_text("note")
    evidence = f.bin("evidence", HASH_SIZE) if "evidence" in f.value else None
    return Award(log, entry_id, at, account, rule, qty, note, evidence)


def _decode_redeem(f: _Fields, log: str, entry_id: bytes, at: int) -> Redeem:
    return Redeem(
        log, entry_id, at, f.account("account"), f.integer("points", minimum=1), f.text("item")
    )


def _decode_objection(f: _Fields, log: str, entry_id: bytes, at: int) -> Objection:
    return Objection(log, entry_id, at, f.integer("target", minimum=0), f.text("text"))


def _decode_reverse(f: _Fields, log: str, entry_id: bytes, at: int) -> Reverse:
    return Reverse(log, entry_id, at, f.integer("target", minimum=0), f.text("reason"))


# Fast paths for the kinds that make up almost every log (DESIGN 6). A body whose
# keys are exactly one of the layouts below (in canonical order) is checked field by
# field with exact types, then re-encoded and compared with its bytes; what passes
# is accepted by the general decoder too, as the same value. Anything else (another
# kind, a missing, unknown or ill-typed field, non-canonical bytes) goes to the
# general decoder, which refuses it with its precise message. ``type(x) is int``
# also keeps booleans out, as ``_is_int`` does; the exact types and the layout are
# what ``codec.encodes_to`` requires of a value.


def _fast_common(value: dict[str, Any], kind: str) -> bool:
    """The common fields of a ``kind`` body hold exactly the types and ranges allowed."""
    version, entry_id, at, log = value["v"], value["id"], value["at"], value["log"]
    return (
        value["kind"] == kind
        and type(version) is int
        and version == FORMAT_VERSION
        and type(log) is str
        and bool(log)
        and text_problem(log) is None
        and type(entry_id) is bytes
        and len(entry_id) == ID_SIZE
        and type(at) is int
        and at >= 0
        and type(value["account"]) is str
        and ACCOUNT_PATTERN.fullmatch(value["account"]) is not None
    )


def _fast_award(value: dict[str, Any]) -> Award | None:
    rule, qty = value["rule"], value["qty"]
    note, evidence = value.get("note"), value.get("evidence")
    if (
        not _fast_common(value, "award")
        or type(rule) is not str
        or not rule
        or text_problem(rule) is not None
        or type(qty) is not int
        or qty < 1
        or ("note" in value and (type(note) is not str or text_problem(note) is not None))
        or ("evidence" in value and (type(evidence) is not bytes or len(evidence) != HASH_SIZE))
    ):
        return None
    return Award(
        value["log"], value["id"], value["at"], value["account"], rule, qty, note, evidence
    )


def _fast_redeem(value: dict[str, Any]) -> Redeem | None:
    points, item = value["points"], value["item"]
    if (
        not _fast_common(value, "redeem")
        or type(points) is not int
        or points < 1
        or type(item) is not str
        or not item
        or text_problem(item) is not None
    ):
        return None
    return Redeem(value["log"], value["id"], value["at"], value["account"], points, item)


def _layout(*fields: str) -> tuple[str, ...]:
    """The keys of a body with ``fields`` besides the common ones, in canonical order."""
    return tuple(sorted(COMMON_FIELDS | set(fields), key=lambda name: name.encode("utf-8")))


_FAST_LAYOUTS: Mapping[tuple[str, ...], Callable[[dict[str, Any]], AnyBody | None]] = {
    _layout("account", "rule", "qty"): _fast_award,
    _layout("account", "rule", "qty", "note"): _fast_award,
    _layout("account", "rule", "qty", "evidence"): _fast_award,
    _layout("account", "rule", "qty", "note", "evidence"): _fast_award,
    _layout("account", "points", "item"): _fast_redeem,
}


def _decode_common_body(data: bytes) -> AnyBody | None:
    """The body in ``data`` when it has one of the fast layouts and is valid; else None."""
    value = codec.try_unpack(data) if type(data) is bytes else None
    if type(value) is not dict:
        return None
    decode = _FAST_LAYOUTS.get(tuple(value))
    if decode is None:
        return None
    body = decode(value)
    if body is None or not codec.encodes_to(value, data):
        return None
    return body


_DECODERS: Mapping[str, Any] = {
    "genesis": _decode_genesis,
    "key": _decode_key,
    "rule": _decode_rule,
    "award": _decode_award,
    "redeem": _decode_redeem,
    "objection": _decode_objection,
    "reverse": _decode_reverse,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Fields:
    """Typed access to a decoded map that remembers which keys were read."""

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
        if not _is_int(value):
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
                f"{self.what}: account id {value!r} is not valid (letters, digits, '.', '_', '-'; "
                "1-64 characters, starting with a letter or digit)"
            )
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


# ---------------------------------------------------------------------------
# Envelopes and leaves


@dataclass(frozen=True)
class EntrySignature:
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Envelope:
    """What an author submits: body bytes and signatures over them (DESIGN 3.2)."""

    body: bytes
    signatures: tuple[EntrySignature, ...]
    raw: bytes = field(default=b"", compare=False, repr=False)

    def to_bytes(self) -> bytes:
        if self.raw:
            return self.raw
        return codec.encode([self.body, [[sig.key_id, sig.signature] for sig in self.signatures]])

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        if len(data) > MAX_ENVELOPE_SIZE:
            raise FormatError(
                f"envelope: {len(data)} bytes is larger than the {MAX_ENVELOPE_SIZE}-byte limit"
            )
        quick = _envelope_fast(data)
        if quick is not None:
            return quick
        value = codec.decode(data, "envelope")
        if not (isinstance(value, list) and len(value) == 2):
            raise FormatError("envelope: must be an array [body, signatures]")
        body, raw_sigs = value
        if not isinstance(body, bytes):
            raise FormatError("envelope: the body must be msgpack bin")
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise FormatError("envelope: must carry at least one signature")
        signatures: list[EntrySignature] = []
        for number, raw in enumerate(raw_sigs):
            if not (
                isinstance(raw, list)
                and len(raw) == 2
                and isinstance(raw[0], bytes)
                and len(raw[0]) == KEY_ID_SIZE
                and isinstance(raw[1], bytes)
                and len(raw[1]) == SIGNATURE_SIZE
            ):
                raise FormatError(
                    f"envelope: signature {number + 1} must be [key_id: 8 bytes, sig: 64 bytes]"
                )
            if signatures and raw[0] <= signatures[-1].key_id:
                raise FormatError(
                    "envelope: signatures must be in strictly increasing key id order"
                )
            signatures.append(EntrySignature(raw[0], raw[1]))
        return cls(body, tuple(signatures), bytes(data))


@dataclass(frozen=True)
class Leaf:
    """What the node appends: sequence, integration time, chain link, envelope (DESIGN 3.3)."""

    seq: int
    time: int
    prev: bytes
    envelope: bytes

    def to_bytes(self) -> bytes:
        return codec.encode([self.seq, self.time, self.prev, self.envelope])

    @classmethod
    def from_bytes(cls, data: bytes) -> Leaf:
        # The fast path: exact types make the value plain (see ``codec.try_unpack``),
        # and the checks are those below; anything else is refused below, precisely.
        value = codec.try_unpack(data) if type(data) is bytes else None
        if type(value) is list and len(value) == 4:
            seq, time, prev, envelope = value
            if (
                type(seq) is int
                and type(time) is int
                and type(prev) is bytes
                and type(envelope) is bytes
                and seq >= 0
                and time >= 0
                and len(prev) == HASH_SIZE
                and codec.encodes_to(value, data)
            ):
                return cls(seq, time, prev, envelope)
        value = codec.decode(data, "leaf")
        if not (
            isinstance(value, list)
            and len(value) == 4
            and _is_int(value[0])
            and _is_int(value[1])
            and isinstance(value[2], bytes)
            and isinstance(value[3], bytes)
        ):
            raise FormatError("leaf: must be an array [seq, time, prev: bin, envelope: bin]")
        seq, time, prev, envelope = value
        if seq < 0 or time < 0:
            raise FormatError("leaf: seq and time must not be negative")
        if len(prev) != HASH_SIZE:
            raise FormatError(f"leaf: prev must be {HASH_SIZE} bytes")
        return cls(seq, time, prev, envelope)


def _envelope_fast(data: bytes) -> Envelope | None:
    """``Envelope.from_bytes``'s fast path: the same checks with exact types (which make
    the value plain, see ``codec.try_unpack``); None leaves the verdict to the general path.
    """
    value = codec.try_unpack(data) if type(data) is bytes else None
    if type(value) is not list or len(value) != 2:
        return None
    body, raw_sigs = value
    if type(body) is not bytes or type(raw_sigs) is not list or not raw_sigs:
        return None
    signatures: list[EntrySignature] = []
    previous = b""
    for raw in raw_sigs:
        if type(raw) is not list or len(raw) != 2:
            return None
        key_id, signature = raw
        if (
            type(key_id) is not bytes
            or len(key_id) != KEY_ID_SIZE
            or type(signature) is not bytes
            or len(signature) != SIGNATURE_SIZE
            or key_id <= previous
        ):
            return None
        signatures.append(EntrySignature(key_id, signature))
        previous = key_id
    if not codec.encodes_to(value, data):
        return None
    return Envelope(body, tuple(signatures), data)


ZERO_HASH = bytes(HASH_SIZE)
