"""Raw access to a ledger's LMDB tables, bypassing the store: for tests that damage a
store on purpose, the way a disk error or a hostile operator would.

The keys and the seals of state records are encoded here from the layout documented
in ``redlist.ledger.store`` and ``redlist.ledger.storelayout``, written down again
rather than imported, so these tests also hold that document to the truth. Open it
only while no ``LmdbStore`` of the same directory is open in this process (LMDB
allows one open per process).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from hashlib import blake2b
from pathlib import Path

import lmdb

ENV_DIR_NAME = "ledger.lmdb"
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

META_ORIGIN = b"origin"
META_SIZE = b"size"
META_LAST_TIME = b"last_time"
META_LAST_LEAF_HASH = b"last_leaf_hash"
META_CHECKPOINT = b"checkpoint"
META_CONFIG = b"config"
META_LOG_VERIFIER_KEY = b"log_verifier_key"
META_ID_RUNS = b"id_runs"


#: The store's format marker, which also personalises the seals' tags.
FORMAT_MARKER = b"redlist-ledger/4"
#: The tables whose records are sealed ("meta" for its config record only).
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


def seal(table: str, key: bytes, seq: int, payload: bytes = b"") -> bytes:
    """A sealed state record: payload ‖ seq (8 bytes) ‖ BLAKE2b-128 tag over
    table ‖ 0x00 ‖ len(key) (2 bytes) ‖ key ‖ payload ‖ seq, personalised with the
    format marker."""
    assert table in SEALED_TABLES
    seq_bytes = seq.to_bytes(8, "big")
    message = table.encode() + b"\x00" + len(key).to_bytes(2, "big") + key + payload + seq_bytes
    return payload + seq_bytes + blake2b(message, digest_size=16, person=FORMAT_MARKER).digest()


def unseal(value: bytes) -> tuple[bytes, int]:
    """The payload and seq of a sealed record (its tag unchecked: for building damage)."""
    return value[:-24], int.from_bytes(value[-24:-16], "big")


def int_key(value: int) -> bytes:
    """A seq or tree size: 8 bytes big-endian."""
    return value.to_bytes(8, "big")


def node_key(level: int, index: int) -> bytes:
    """A Merkle node: 1-byte level, 8-byte index."""
    return level.to_bytes(1, "big") + int_key(index)


def account_links(*links: tuple[str, int | None]) -> bytes:
    """The payload of an entry's ``account_links`` record (keyed by its seq): per account
    it links, the account's length (1 byte), its UTF-8, and the seq of its previous
    linked entry (8 bytes; all ones for none)."""
    return b"".join(
        len(account).to_bytes(1, "big")
        + account.encode()
        + int_key((1 << 64) - 1 if previous is None else previous)
        for account, previous in links
    )


def account_head(count: int) -> bytes:
    """The payload of an account's ``account_heads`` record (keyed by the account's
    UTF-8, sealed with its latest linked entry): its count of links, 8 bytes."""
    return int_key(count)


def id_run_key(run: int, entry_id: bytes) -> bytes:
    """An entry id in a run of the entry-id index: the run's number (8 bytes), the id.
    Its value is the id's ``ids`` record, ``seal("ids", entry_id, seq)``."""
    return int_key(run) + entry_id


def id_runs_list(
    level0_max: int,
    fanout: int,
    top_tier: int,
    next_run: int,
    runs: list[tuple[int, int, int, int]],
) -> bytes:
    """The payload of the index's run list (``meta`` ``id_runs``): level0_max (4 bytes),
    fanout, top tier (1 byte each), the next run number (8), then per run its number (8),
    tier (1), first seq (8) and count (8)."""
    header = level0_max.to_bytes(4, "big") + bytes([fanout, top_tier]) + int_key(next_run)
    return header + b"".join(
        int_key(number) + bytes([tier]) + int_key(first) + int_key(count)
        for number, tier, first, count in runs
    )


def month_count_key(account: str, month: str, rule: str) -> bytes:
    """An account's qty under a rule in a month of deed dates: the account's UTF-8, 0x00,
    the month ``YYYY-MM``, the rule code's UTF-8 (a short code)."""
    return account.encode() + b"\x00" + month.encode() + rule.encode()


class RawTables:
    """Gets, puts and deletes of raw records in one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction[bytes], tables: dict[str, lmdb._Database]) -> None:
        self._txn = txn
        self._tables = tables

    def get(self, table: str, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._tables[table])

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self._txn.put(key, value, db=self._tables[table])

    def delete(self, table: str, key: bytes) -> None:
        assert self._txn.delete(key, db=self._tables[table]), f"no {key!r} in {table}"

    def keys(self, table: str) -> list[bytes]:
        return list(self._txn.cursor(db=self._tables[table]).iternext(values=False))

    def records(self, table: str) -> list[tuple[bytes, bytes]]:
        return list(self._txn.cursor(db=self._tables[table]))


@contextmanager
def raw_tables(env_dir: Path, *, write: bool = True) -> Iterator[RawTables]:
    """The tables of the ledger environment ``env_dir`` (a data directory's
    ``ledger.lmdb``), in one transaction, committed when the block ends normally."""
    env = lmdb.open(
        str(env_dir), readonly=not write, max_dbs=len(TABLE_NAMES), lock=write, map_size=1 << 30
    )
    try:
        with env.begin(write=write) as txn:
            tables = {
                name: env.open_db(name.encode(), txn=txn, create=False) for name in TABLE_NAMES
            }
            yield RawTables(txn, tables)
    finally:
        env.close()
