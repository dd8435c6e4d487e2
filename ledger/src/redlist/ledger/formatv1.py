"""The constants of format v1 (DESIGN 3.1-3.4, docs/format.md): its version, the sizes
and limits of its fields, its kinds and roles, and the shape of an account id. Pure.

Everything that reads or writes the format takes these from here (``redlist.ledger.entry``
re-exports them), so a size is written down once.
"""

from __future__ import annotations

import re

FORMAT_VERSION = 1
ID_SIZE = 16
KEY_ID_SIZE = 8
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
HASH_SIZE = 32
MAX_ENVELOPE_SIZE = 64 * 1024
#: An author's clock may run ahead of the node's by at most this much.
MAX_FUTURE_MS = 10 * 60 * 1000
#: The ``prev`` of leaf 0: the hash chain starts from 32 zero bytes.
ZERO_HASH = bytes(HASH_SIZE)

ROLES = frozenset({"admin", "grid", "council", "cashier"})
KINDS = ("genesis", "key", "rule", "award", "redeem", "objection", "reverse")
#: The fields every body has, whatever its kind.
COMMON_FIELDS = frozenset({"v", "kind", "log", "id", "at"})
#: Account ids are lower case only, so one resident is one account: the staff tools
#: case-fold what people type (``DGC-0019`` becomes ``dgc-0019``), the format refuses
#: anything else.
#: 1 to ``MAX_ACCOUNT_LENGTH`` of ``ACCOUNT_CHARACTERS``, the first a letter or digit.
MAX_ACCOUNT_LENGTH = 64
ACCOUNT_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
ACCOUNT_PATTERN = re.compile(rf"[a-z0-9][a-z0-9._-]{{0,{MAX_ACCOUNT_LENGTH - 1}}}")


def is_valid_account(account: str) -> bool:
    """True when ``account`` is an opaque account id of the allowed shape (lower case)."""
    return ACCOUNT_PATTERN.fullmatch(account) is not None
