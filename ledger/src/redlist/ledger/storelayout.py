"""The ledger store's layout: its tables, its metadata records and how keys are encoded.

Only the store's own modules (``store``, ``storeview``, ``storestate``) import this
one: everything above the store reads and writes through their methods and never
builds a key or opens a table (import-linter contract ``store-seam``). The layout
itself is documented, table by table, in ``store``'s docstring.

Every integer in a key is 8 bytes big-endian, so keys sort in numeric order. The
decoders (``seq_from_key``, ``node_from_key``) return None for a key of the wrong
shape, which only a damaged store holds; the store's scans turn that into an
``IntegrityError`` naming the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import lmdb

#: Written into ``meta`` at creation; opening refuses an environment without it.
FORMAT_MARKER = b"redlist-ledger/1"

META_FORMAT = b"format"
META_ORIGIN = b"origin"
META_SIZE = b"size"
META_LAST_TIME = b"last_time"
META_LAST_LEAF_HASH = b"last_leaf_hash"
META_CHECKPOINT = b"checkpoint"
META_CONFIG = b"config"
META_LOG_VERIFIER_KEY = b"log_verifier_key"
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
    "account_entries",
    "checkpoints",
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


def node_key(level: int, index: int) -> bytes:
    """The key of the perfect subtree ``(level, index)``: 1-byte level, 8-byte index."""
    return level.to_bytes(1, "big") + index.to_bytes(INT_SIZE, "big")


def node_from_key(key: bytes) -> tuple[int, int] | None:
    """``(level, index)`` of a ``nodes`` key, or None for a key of another length."""
    if len(key) != NODE_KEY_SIZE:
        return None
    return key[0], int.from_bytes(key[1:], "big")


def account_prefix(account: str) -> bytes:
    """The common prefix of every ``account_entries`` key of ``account``."""
    return account.encode("utf-8") + b"\x00"


def account_entry_key(account: str, seq: int) -> bytes:
    return account_prefix(account) + int_key(seq)


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
    account_entries: lmdb._Database
    checkpoints: lmdb._Database
