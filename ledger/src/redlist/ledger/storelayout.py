"""The ledger store's layout: its tables, its metadata records and how keys are encoded.

Only the store's own modules (``store``, ``storeview``, ``storestate``, ``idindex``)
import this one: everything above the store reads and writes through their methods and never
builds a key or opens a table (import-linter contract ``store-seam``). The layout
itself is documented, table by table, in ``store``'s docstring.

Every integer in a key is 8 bytes big-endian, so keys sort in numeric order. The
decoders (``seq_from_key``, ``node_from_key``) return None for a key of the wrong
shape, which only a damaged store holds; the store's scans turn that into an
``IntegrityError`` naming the key.

Sealed records. Every record of the state the node derives from the log (``keys``,
``rules``, ``balances``, ``targets``, ``ids``, ``month_counts``, ``account_links``,
``account_heads`` and the town configuration in ``meta``) is stored sealed (``seal``)::

    payload ‖ seq (8 bytes, big-endian) ‖ tag (16 bytes)
    tag = BLAKE2b-128(table ‖ 0x00 ‖ len(key) (2 bytes, big-endian) ‖ key ‖ payload ‖ seq),
          personalised with the format marker

``payload`` is the record's own bytes (empty for ``ids``, whose seq says it all),
``seq`` the entry that last changed the record. A record of ``id_runs`` is the ``ids``
record of its id, moved as it is (its tag binds the id, not the run: the full check
knows which run each entry's id belongs in), and the index's run list is sealed in
``meta`` under ``id_runs``. The tag binds the payload to its table, its key and that
seq, so a flipped bit, a record moved under another key or table, or a record of
another format fails ``unseal``.
It is a checksum against damage, not a signature: it has no secret (ADR 0016).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from hashlib import blake2b

import lmdb

#: Written into ``meta`` at creation; opening refuses an environment without it.
#: Format 2 seals every state record (see the module docstring); format 3 adds the
#: monthly counts of the rules' caps and the caps and deed months in rule and target
#: records (format v1's deed dates and caps).
#: Format 4 keeps the accounts' entry lists as links keyed by seq (``account_links``,
#: ``account_heads``) instead of one record per (account, seq) (ADR 0043), and the
#: entry-id index log-structured (level 0 in ``ids``, runs in ``id_runs``; ADR 0044).
FORMAT_MARKER = b"redlist-ledger/4"
#: Markers of earlier formats: such a store is refused with advice, never read.
OLD_FORMAT_MARKERS = frozenset({b"redlist-ledger/1", b"redlist-ledger/2", b"redlist-ledger/3"})

META_FORMAT = b"format"
META_ORIGIN = b"origin"
META_SIZE = b"size"
META_LAST_TIME = b"last_time"
META_LAST_LEAF_HASH = b"last_leaf_hash"
META_CHECKPOINT = b"checkpoint"
META_CONFIG = b"config"
META_LOG_VERIFIER_KEY = b"log_verifier_key"
#: The entry-id index's shape and live runs (``idruns.RunList``), sealed.
META_ID_RUNS = b"id_runs"
#: Every record ``meta`` may hold.
META_NAMES = frozenset(
    {
        META_FORMAT,
        META_ORIGIN,
        META_SIZE,
        META_LAST_TIME,
        META_LAST_LEAF_HASH,
        META_CHECKPOINT,
        META_CONFIG,
        META_LOG_VERIFIER_KEY,
        META_ID_RUNS,
    }
)

TABLE_NAMES = (
    "meta",
    "leaves",
    "nodes",
    "ids",
    "keys",
    "rules",
    "balances",
    "targets",
    "month_counts",
    "checkpoints",
    "account_links",
    "account_heads",
    "id_runs",
)

INT_SIZE = 8
NODE_KEY_SIZE = 1 + INT_SIZE
# LMDB's default key limit is 511 bytes; rule codes are the only unbounded key.
_MAX_PLAIN_RULE_KEY = 255
# 0xFF never occurs in UTF-8, so a hashed key can never equal a plain one.
_HASHED_RULE_PREFIX = b"\xff"


def int_key(value: int) -> bytes:
    """An integer as an 8-byte big-endian key (seq, tree size)."""
    return value.to_bytes(INT_SIZE, "big")


def int_from_key(data: bytes) -> int:
    return int.from_bytes(data, "big")


def seq_from_key(key: bytes) -> int | None:
    """The integer of an 8-byte key, or None for a key of another length."""
    return int.from_bytes(key, "big") if len(key) == INT_SIZE else None


#: A ``nodes`` key: 1-byte level, 8-byte index, big-endian (``node_key``).
NODE_KEY = struct.Struct(">BQ")


def node_key(level: int, index: int) -> bytes:
    """The key of the perfect subtree ``(level, index)``: 1-byte level, 8-byte index."""
    if not (0 <= level < 0x100 and 0 <= index < 1 << 64):
        raise OverflowError(f"no node key for level {level}, index {index}")
    return NODE_KEY.pack(level, index)


def node_from_key(key: bytes) -> tuple[int, int] | None:
    """``(level, index)`` of a ``nodes`` key, or None for a key of another length."""
    if len(key) != NODE_KEY_SIZE:
        return None
    return key[0], int.from_bytes(key[1:], "big")


def id_run_prefix(number: int) -> bytes:
    """The common prefix of every ``id_runs`` key of run ``number``."""
    return int_key(number)


def id_run_key(number: int, entry_id: bytes) -> bytes:
    """The ``id_runs`` key of ``entry_id`` in run ``number``: the run's 8 bytes, the id."""
    return int_key(number) + entry_id


def account_prefix(account: str) -> bytes:
    """The common prefix of every ``month_counts`` key of ``account``."""
    return account.encode("utf-8") + b"\x00"


# ---------------------------------------------------------------------------
# The accounts' entry lists (``account_links``, ``account_heads``; ADR 0043)

#: The ``previous`` of an account's first link, as stored: no seq is this large.
NO_PREVIOUS = (1 << 64) - 1


@dataclass(frozen=True)
class AccountLink:
    """One account an entry links (``account_links``): the account, and the seq of the
    account's previous linked entry (None for its first).

    An ``account_links`` record, keyed by the entry's seq, holds one per account the
    entry links, in the order they were linked; its payload is, for each,
    ``len(account) (1 byte) ‖ account (UTF-8) ‖ previous (8 bytes; NO_PREVIOUS for
    none)``. Entries that link no account have no record.
    """

    account: str
    previous: int | None


def account_links_to_bytes(links: tuple[AccountLink, ...]) -> bytes:
    """The payload of an ``account_links`` record (``AccountLink``)."""
    return b"".join(
        [account_link_bytes(link.account.encode("utf-8"), link.previous) for link in links]
    )


def account_link_bytes(account: bytes, previous: int | None) -> bytes:
    """One link of an ``account_links`` payload: ``account`` is the account's UTF-8
    bytes (its ``account_head_key``). A record's payload is its links' bytes one after
    the other, so an append builds it without ``AccountLink`` values."""
    return (
        len(account).to_bytes(1, "big")
        + account
        + (NO_PREVIOUS if previous is None else previous).to_bytes(INT_SIZE, "big")
    )


def account_links_from_bytes(seq: int, payload: bytes) -> tuple[AccountLink, ...] | None:
    """The links of entry ``seq``'s ``account_links`` payload, or None when it is not one
    a store writes: empty, cut short, an account that is not UTF-8 or appears twice, a
    previous seq not below ``seq`` (only a damaged store holds such a payload)."""
    links: list[AccountLink] = []
    offset = 0
    while offset < len(payload):
        length = payload[offset]
        end = offset + 1 + length + INT_SIZE
        if length == 0 or end > len(payload):
            return None
        try:
            account = payload[offset + 1 : offset + 1 + length].decode("utf-8")
        except UnicodeDecodeError:
            return None
        previous = int_from_key(payload[end - INT_SIZE : end])
        if previous == NO_PREVIOUS:
            links.append(AccountLink(account, None))
        elif previous < seq:
            links.append(AccountLink(account, previous))
        else:
            return None
        offset = end
    if not links or len({link.account for link in links}) != len(links):
        return None
    return tuple(links)


def account_head_key(account: str) -> bytes:
    """The ``account_heads`` key of ``account``: its UTF-8 bytes (as in ``balances``)."""
    return account.encode("utf-8")


#: The length of a month (``YYYY-MM``) in a ``month_counts`` key.
MONTH_SIZE = 7


def month_count_key(account: str, month: str, rule: str) -> bytes:
    """The ``month_counts`` key of an account's qty under a rule in a month:
    account (UTF-8) ‖ 0x00 ‖ month (``YYYY-MM``) ‖ ``rule_key(rule)``, so an account's
    counts sit together, month by month."""
    return account_prefix(account) + month.encode("ascii") + rule_key(rule)


def month_count_key_parts(key: bytes) -> tuple[str, str, bytes] | None:
    """``(account, month, rule key)`` of a ``month_counts`` key, or None for a key of
    another shape (only a damaged store holds one)."""
    account, separator, rest = key.partition(b"\x00")
    if not separator or len(rest) <= MONTH_SIZE:
        return None
    try:
        return account.decode("utf-8"), rest[:MONTH_SIZE].decode("ascii"), rest[MONTH_SIZE:]
    except UnicodeDecodeError:
        return None


def rule_key(code: str) -> bytes:
    """The ``rules`` key of a rule code: its UTF-8 bytes, or 0xFF + SHA-256 when too long."""
    encoded = code.encode("utf-8")
    if len(encoded) <= _MAX_PLAIN_RULE_KEY:
        return encoded
    return _HASHED_RULE_PREFIX + hashlib.sha256(encoded).digest()


def is_hashed_rule_key(key: bytes) -> bool:
    """Whether a ``rules`` key is a hash (its code is then only in the record)."""
    return key.startswith(_HASHED_RULE_PREFIX)


@dataclass(frozen=True)
class Tables:
    """Handles of the named tables of one open environment."""

    meta: lmdb._Database
    leaves: lmdb._Database
    nodes: lmdb._Database
    ids: lmdb._Database
    keys: lmdb._Database
    rules: lmdb._Database
    balances: lmdb._Database
    targets: lmdb._Database
    month_counts: lmdb._Database
    checkpoints: lmdb._Database
    account_links: lmdb._Database
    account_heads: lmdb._Database
    id_runs: lmdb._Database


# ---------------------------------------------------------------------------
# Sealed state records

#: The tables whose records are sealed ("meta" only for its ``config`` record).
SEALED_TABLES = (
    "meta",
    "ids",
    "keys",
    "rules",
    "balances",
    "targets",
    "month_counts",
    "account_links",
    "account_heads",
)
TAG_SIZE = 16
#: What ``seal`` appends to a payload: the seq and the tag.
SEAL_SIZE = INT_SIZE + TAG_SIZE
# Each table's hash state after "table ‖ 0x00", personalised with the format marker
# (tags of another format never verify in this one). A tag copies its table's state:
# half the cost of a new personalised hash for records this short, and this runs
# for every state record the node reads or writes.
_TABLE_HASHES = {
    name: blake2b(name.encode("ascii") + b"\x00", digest_size=TAG_SIZE, person=FORMAT_MARKER)
    for name in SEALED_TABLES
}


def seal(table: str, key: bytes, seq: int, payload: bytes) -> bytes:
    """The stored value of a state record: ``payload ‖ seq ‖ tag`` (module docstring).

    ``seq`` is the entry that last changed the record; ``key`` the record's key in
    ``table``, exactly as stored.
    """
    body = payload + seq.to_bytes(INT_SIZE, "big")
    tag = _TABLE_HASHES[table].copy()
    tag.update(len(key).to_bytes(2, "big") + key + body)
    return body + tag.digest()


def unseal(table: str, key: bytes, value: bytes) -> tuple[bytes, int] | None:
    """``(payload, seq)`` of a record stored under ``key`` in ``table``, or None when
    its tag does not match (the record is damaged, or was not written sealed)."""
    body = sealed_body(table, key, value)
    if body is None:
        return None
    return body[:-INT_SIZE], int.from_bytes(body[-INT_SIZE:], "big")


def sealed_body(table: str, key: bytes, value: bytes) -> bytes | None:
    """``payload ‖ seq`` of a sealed record whose tag matches, else None (``unseal``
    without taking the two apart: the node's reads need the payload only)."""
    if len(value) < SEAL_SIZE:
        return None
    body = value[:-TAG_SIZE]
    tag = _TABLE_HASHES[table].copy()
    tag.update(len(key).to_bytes(2, "big") + key + body)
    return body if tag.digest() == value[-TAG_SIZE:] else None


def record_name(table: str, key: bytes) -> str:
    """Words naming the record under ``key`` in state table ``table``, for messages.

    Never fails, whatever the key: it names records of a damaged store too.
    """
    text = key.decode("utf-8", "replace")
    if table == "balances":
        return f"account {text}"
    if table == "keys":
        return f"staff key {key.hex()}"
    if table == "rules":
        return f"a rule (hashed key {key.hex()})" if is_hashed_rule_key(key) else f"rule {text!r}"
    if table == "targets" and len(key) == INT_SIZE:
        return f"award or redemption {int_from_key(key)}"
    if table == "ids":
        return f"entry id {key.hex()}"
    if table == "account_links" and len(key) == INT_SIZE:
        return f"the accounts linked by entry {int_from_key(key)}"
    if table == "account_heads":
        return f"account {text}'s latest entry"
    if table == "month_counts":
        parts = month_count_key_parts(key)
        if parts is not None:
            account, month, rule = parts
            code = (
                f"hashed key {rule.hex()}"
                if is_hashed_rule_key(rule)
                else repr(rule.decode("utf-8", "replace"))
            )
            return f"account {account}'s count under rule {code} in {month}"
    if table == "meta":
        return f"'{text}'"
    return f"key {key.hex()}"
