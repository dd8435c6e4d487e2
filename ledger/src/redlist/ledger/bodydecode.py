"""Decoding format v1's entry bodies from their canonical bytes (DESIGN 3.1). Pure.

:func:`decode_body` accepts only canonical bytes (``codec``) and validates the structure:
field names, types and ranges, per kind; ``FormatError`` names the bad field. Whether an
entry is *allowed* (keys, roles, rules, balances) is the points semantics' job.

The common shapes (awards and redemptions, almost every entry of a log) go through a fast
path first, which decides exactly as the general decoder does
(``tests/ledger/test_fast_paths.py`` checks both, value for value and message for message):
read straight from the bytes (``canonicalbytes``, ADR 0059), else unpacked with exact type
checks and one re-encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from redlist.ledger import codec
from redlist.ledger.bodies import (
    AnyBody,
    Award,
    Genesis,
    KeyChange,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
    TownConfig,
)
from redlist.ledger.canonicalbytes import FAIL, expect, read_binary, read_text, read_uint
from redlist.ledger.deeddate import is_valid_date
from redlist.ledger.errors import FormatError
from redlist.ledger.fieldreader import FieldReader
from redlist.ledger.formatv1 import (
    ACCOUNT_PATTERN,
    COMMON_FIELDS,
    FORMAT_VERSION,
    HASH_SIZE,
    ID_SIZE,
    KINDS,
    PUBLIC_KEY_SIZE,
)
from redlist.ledger.frozen import builder
from redlist.ledger.text import key_name_problem, rule_code_problem, text_problem


def decode_body(data: bytes) -> AnyBody:
    """Parse and validate canonical body bytes; FormatError names the bad field."""
    quick = decode_common_body(data, codec.thread_pack())
    if quick is not None:
        return quick
    value = codec.decode(data, "entry body")
    if not isinstance(value, dict):
        raise FormatError("entry body: must be a msgpack map")
    fields = FieldReader(value, "entry body")
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


def _decode_genesis(f: FieldReader, log: str, entry_id: bytes, at: int) -> Genesis:
    return Genesis(
        log, entry_id, at, f.bin("admin", PUBLIC_KEY_SIZE), TownConfig.from_value(f.map("config"))
    )


def _decode_key(f: FieldReader, log: str, entry_id: bytes, at: int) -> KeyChange:
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


def _decode_rule(f: FieldReader, log: str, entry_id: bytes, at: int) -> RuleChange:
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
        max_qty = f.optional_integer("max_qty", minimum=1)
        max_per_month = f.optional_integer("max_per_month", minimum=1)
    else:
        # A retirement names the rule; caps belong to a rule in force ("set" only).
        title = f.optional_text("title")
        module = f.optional_text("module")
        points = f.integer("points") if "points" in f.value else None
        council = f.boolean("council") if "council" in f.value else None
        max_qty = max_per_month = None
    decided = f.bin("decided", HASH_SIZE) if "decided" in f.value else None
    return RuleChange(
        log, entry_id, at, op, code, title, module, points, council, max_qty, max_per_month, decided
    )


def _decode_award(f: FieldReader, log: str, entry_id: bytes, at: int) -> Award:
    account = f.account("account")
    deed_date = f.date("date")
    rule = f.text("rule")
    qty = f.integer("qty", minimum=1)
    note = f.bin("note", HASH_SIZE) if "note" in f.value else None
    evidence = f.bin("evidence", HASH_SIZE) if "evidence" in f.value else None
    declared = f.boolean("declared") if "declared" in f.value else False
    if "declared" in f.value and not declared:
        raise FormatError(f"{f.what}: 'declared' is written only as true (leave it out otherwise)")
    return Award(
        log, entry_id, at, account, rule, qty, note, evidence, date=deed_date, declared=declared
    )


def _decode_redeem(f: FieldReader, log: str, entry_id: bytes, at: int) -> Redeem:
    return Redeem(
        log,
        entry_id,
        at,
        f.account("account"),
        f.integer("points", minimum=1),
        f.bin("item", HASH_SIZE),
    )


def _decode_objection(f: FieldReader, log: str, entry_id: bytes, at: int) -> Objection:
    return Objection(log, entry_id, at, f.integer("target", minimum=0), f.bin("text", HASH_SIZE))


def _decode_reverse(f: FieldReader, log: str, entry_id: bytes, at: int) -> Reverse:
    return Reverse(log, entry_id, at, f.integer("target", minimum=0), f.bin("reason", HASH_SIZE))


# Fast paths for the kinds that make up almost every log (DESIGN 6). A body whose
# keys are exactly one of the layouts below (in canonical order) is checked field by
# field with exact types, then re-encoded and compared with its bytes; what passes
# is accepted by the general decoder too, as the same value. Anything else (another
# kind, a missing, unknown or ill-typed field, non-canonical bytes) goes to the
# general decoder, which refuses it with its precise message. ``type(x) is int``
# also keeps booleans out, as ``fieldreader.is_int`` does; the exact types and the
# layout are what ``codec.encodes_to`` requires of a value.


@lru_cache(maxsize=4096)
def _plain_text(value: str) -> bool:
    """``text_problem`` finds nothing in ``value``: remembered, since a log's name and
    its rule codes come back in every entry."""
    return text_problem(value) is None


_account_fullmatch = ACCOUNT_PATTERN.fullmatch
#: Deed dates come back for every award of a day: each is parsed once.
_date_ok = lru_cache(maxsize=4096)(is_valid_date)


def _fast_common(value: dict[str, Any], kind: str) -> bool:
    """The common fields of a ``kind`` body hold exactly the types and ranges allowed."""
    version, entry_id, at, log, account = (
        value["v"],
        value["id"],
        value["at"],
        value["log"],
        value["account"],
    )
    return (
        value["kind"] == kind
        and type(version) is int
        and version == FORMAT_VERSION
        and type(log) is str
        and type(entry_id) is bytes
        and type(at) is int
        and at >= 0
        and type(account) is str
        and _common_allowed(log, entry_id, account)
    )


def _common_allowed(log: str, entry_id: bytes, account: str) -> bool:
    """The common fields' values allowed, their types given: what every fast path
    (from a map or from the bytes) checks of them beyond their types."""
    return (
        bool(log)
        and _plain_text(log)
        and len(entry_id) == ID_SIZE
        # Not remembered: a town has more residents than a cache would hold, and
        # they come round in turn, which an LRU cache answers with misses only.
        and _account_fullmatch(account) is not None
    )


def _award_allowed(
    deed_date: str, rule: str, qty: int, note: bytes | None, evidence: bytes | None
) -> bool:
    """An award's own fields' values allowed, their types given (as ``_common_allowed``)."""
    return (
        _date_ok(deed_date)
        and bool(rule)
        and _plain_text(rule)
        and qty >= 1
        and (note is None or len(note) == HASH_SIZE)
        and (evidence is None or len(evidence) == HASH_SIZE)
    )


def _fast_award(value: dict[str, Any]) -> Award | None:
    rule, qty, deed_date = value["rule"], value["qty"], value["date"]
    note, evidence = value.get("note"), value.get("evidence")
    declared = "declared" in value
    if (
        not _fast_common(value, "award")
        or type(deed_date) is not str
        or type(rule) is not str
        or type(qty) is not int
        or ("note" in value and type(note) is not bytes)
        or ("evidence" in value and type(evidence) is not bytes)
        or (declared and value["declared"] is not True)
        or not _award_allowed(deed_date, rule, qty, note, evidence)
    ):
        return None
    return _build_award(
        value["log"],
        value["id"],
        value["at"],
        value["account"],
        rule,
        qty,
        note,
        evidence,
        deed_date,
        declared,
    )


def _fast_redeem(value: dict[str, Any]) -> Redeem | None:
    points, item = value["points"], value["item"]
    if (
        not _fast_common(value, "redeem")
        or type(points) is not int
        or points < 1
        or type(item) is not bytes
        or len(item) != HASH_SIZE
    ):
        return None
    return _build_redeem(value["log"], value["id"], value["at"], value["account"], points, item)


# An award's keys in canonical order, each with its msgpack header (fixstr), and the
# fields whose values are fixed: ``_award_from_bytes`` compares them byte for byte.
_ACCOUNT_KEY: Final = b"\xa7account"
_AT_KEY: Final = b"\xa2at"
_DATE_KEY: Final = b"\xa4date"
_DECLARED_TRUE: Final = b"\xa8declared\xc3"
_EVIDENCE_KEY: Final = b"\xa8evidence"
_ID_KEY: Final = b"\xa2id"
_KIND_AWARD: Final = b"\xa4kind\xa5award"
_LOG_KEY: Final = b"\xa3log"
_NOTE_KEY: Final = b"\xa4note"
_QTY_KEY: Final = b"\xa3qty"
_RULE_KEY: Final = b"\xa4rule"
_VERSION_1: Final = b"\xa1v\x01"
#: fixmap headers of the award layouts: 9 fields, and one or two of the optional ones.
_AWARD_MAPS: Final = (0x89, 0x8A, 0x8B)
# A redemption's own keys and kind, and its fixmap header (8 fields).
_ITEM_KEY: Final = b"\xa4item"
_KIND_REDEEM: Final = b"\xa4kind\xa6redeem"
_POINTS_KEY: Final = b"\xa6points"
_REDEEM_MAP: Final = 0x88


def _award_from_bytes(data: bytes) -> Award | None:
    """An award of one of the fast layouts read straight from its bytes
    (``canonicalbytes``): the value ``_fast_award`` gives, or None wherever it would
    give None or the bytes are other than those it re-encodes to (then the unpacking
    path decides). No map, key or re-encoding is made."""
    if not data or data[0] not in _AWARD_MAPS:
        return None
    fields = data[0] - 0x80
    account, pos = read_text(data, expect(data, 1, _ACCOUNT_KEY))
    at, pos = read_uint(data, expect(data, pos, _AT_KEY))
    deed_date, pos = read_text(data, expect(data, pos, _DATE_KEY))
    read = 9
    declared = False
    after = expect(data, pos, _DECLARED_TRUE)
    if after != FAIL:
        pos, declared, read = after, True, read + 1
    evidence: bytes | None = None
    after = expect(data, pos, _EVIDENCE_KEY)
    if after != FAIL:
        evidence, pos = read_binary(data, after)
        read += 1
    entry_id, pos = read_binary(data, expect(data, pos, _ID_KEY))
    log, pos = read_text(data, expect(data, expect(data, pos, _KIND_AWARD), _LOG_KEY))
    note: bytes | None = None
    after = expect(data, pos, _NOTE_KEY)
    if after != FAIL:
        note, pos = read_binary(data, after)
        read += 1
    qty, pos = read_uint(data, expect(data, pos, _QTY_KEY))
    rule, pos = read_text(data, expect(data, pos, _RULE_KEY))
    pos = expect(data, pos, _VERSION_1)
    if (
        pos != len(data)
        or read != fields
        or (declared and evidence is not None)  # not one of ``_FAST_LAYOUTS``
        or not _common_allowed(log, entry_id, account)
        or not _award_allowed(deed_date, rule, qty, note, evidence)
    ):
        return None
    return _build_award(log, entry_id, at, account, rule, qty, note, evidence, deed_date, declared)


def _redeem_from_bytes(data: bytes) -> Redeem | None:
    """A redemption read straight from its bytes, as ``_award_from_bytes`` reads an
    award: the value ``_fast_redeem`` gives, or None (then the unpacking path decides)."""
    if not data or data[0] != _REDEEM_MAP:
        return None
    account, pos = read_text(data, expect(data, 1, _ACCOUNT_KEY))
    at, pos = read_uint(data, expect(data, pos, _AT_KEY))
    entry_id, pos = read_binary(data, expect(data, pos, _ID_KEY))
    item, pos = read_binary(data, expect(data, pos, _ITEM_KEY))
    log, pos = read_text(data, expect(data, expect(data, pos, _KIND_REDEEM), _LOG_KEY))
    points, pos = read_uint(data, expect(data, pos, _POINTS_KEY))
    pos = expect(data, pos, _VERSION_1)
    if (
        pos != len(data)
        or not _common_allowed(log, entry_id, account)
        or points < 1
        or len(item) != HASH_SIZE
    ):
        return None
    return _build_redeem(log, entry_id, at, account, points, item)


# Built without ``__init__`` (``frozen``), in the order of their fields: the same values.
_build_award = builder(Award)
_build_redeem = builder(Redeem)


def _layout(*fields: str) -> tuple[str, ...]:
    """The keys of a body with ``fields`` besides the common ones, in canonical order."""
    return tuple(sorted(COMMON_FIELDS | set(fields), key=lambda name: name.encode("utf-8")))


_FAST_LAYOUTS: Mapping[tuple[str, ...], Callable[[dict[str, Any]], AnyBody | None]] = {
    _layout("account", "date", "rule", "qty"): _fast_award,
    _layout("account", "date", "rule", "qty", "note"): _fast_award,
    _layout("account", "date", "rule", "qty", "evidence"): _fast_award,
    _layout("account", "date", "rule", "qty", "note", "evidence"): _fast_award,
    _layout("account", "date", "declared", "rule", "qty"): _fast_award,
    _layout("account", "date", "declared", "rule", "qty", "note"): _fast_award,
    _layout("account", "points", "item"): _fast_redeem,
}


def decode_common_body(data: bytes, pack: codec.Pack) -> AnyBody | None:
    """The body in ``data`` when it has one of the fast layouts and is valid; else None.
    ``pack`` is the calling thread's ``codec.thread_pack()``."""
    if type(data) is not bytes:
        return None
    # Most entries, read without unpacking (each reader refuses the other's header).
    body: AnyBody | None = _award_from_bytes(data)
    if body is None:
        body = _redeem_from_bytes(data)
    if body is not None:
        return body
    value = codec.try_unpack(data)
    if type(value) is not dict:
        return None
    decode = _FAST_LAYOUTS.get(tuple(value))
    if decode is None:
        return None
    body = decode(value)
    if body is None or pack(value) != data:  # ``codec.encodes_to``
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
