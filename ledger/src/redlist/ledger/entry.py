"""Format v1 objects: entry bodies, envelopes and leaves (DESIGN 3.1-3.4).

The public vocabulary of the format, in one place: import it from here. It is written
in five modules, one concern each, and re-exported unchanged (the very same objects, so
the decoders are called with no indirection):

* ``formatv1``: the constants (version, sizes, limits, kinds, roles, the account id);
* ``deeddate``: the deed date's text form (and the days and months of a log's zone);
* ``bodies``: the entry bodies as frozen values and their canonical encoding;
* ``bodydecode``: ``decode_body``, bytes to a body, with its fast paths;
* ``envelope``: ``Envelope`` and ``Leaf``, to and from bytes, with their fast paths;

and ``fieldreader``, the typed map reader the general decoders share.

Each class converts to and from bytes; ``from_bytes`` and ``decode_body`` accept only
canonical bytes and validate the structure (field names, types and ranges), so a value
of these classes is always well formed. Whether an entry is *allowed* (keys, roles,
rules, balances) is the points semantics' job (``points``).

The original bytes are kept next to the decoded value (``Envelope.body``,
``Leaf.envelope``): hashes and signatures are always computed over them, never over a
re-encoding.
"""

from __future__ import annotations

from redlist.ledger.bodies import (
    AnyBody,
    Award,
    Body,
    Genesis,
    Grade,
    KeyChange,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
    TownConfig,
)
from redlist.ledger.bodydecode import decode_body
from redlist.ledger.deeddate import DEFAULT_BACKDATE_DAYS, is_valid_date, parse_date
from redlist.ledger.envelope import EntrySignature, Envelope, Leaf
from redlist.ledger.formatv1 import (
    ACCOUNT_CHARACTERS,
    ACCOUNT_PATTERN,
    COMMON_FIELDS,
    FORMAT_VERSION,
    HASH_SIZE,
    ID_SIZE,
    KEY_ID_SIZE,
    KINDS,
    MAX_ACCOUNT_LENGTH,
    MAX_ENVELOPE_SIZE,
    MAX_FUTURE_MS,
    PUBLIC_KEY_SIZE,
    ROLES,
    SIGNATURE_SIZE,
    ZERO_HASH,
    is_valid_account,
)

__all__ = [
    "ACCOUNT_CHARACTERS",
    "ACCOUNT_PATTERN",
    "COMMON_FIELDS",
    "DEFAULT_BACKDATE_DAYS",
    "FORMAT_VERSION",
    "HASH_SIZE",
    "ID_SIZE",
    "KEY_ID_SIZE",
    "KINDS",
    "MAX_ACCOUNT_LENGTH",
    "MAX_ENVELOPE_SIZE",
    "MAX_FUTURE_MS",
    "PUBLIC_KEY_SIZE",
    "ROLES",
    "SIGNATURE_SIZE",
    "ZERO_HASH",
    "AnyBody",
    "Award",
    "Body",
    "EntrySignature",
    "Envelope",
    "Genesis",
    "Grade",
    "KeyChange",
    "Leaf",
    "Objection",
    "Redeem",
    "Reverse",
    "RuleChange",
    "TownConfig",
    "decode_body",
    "is_valid_account",
    "is_valid_date",
    "parse_date",
]
