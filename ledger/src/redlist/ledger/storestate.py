"""``LedgerState`` over the LMDB tables of one transaction: the points semantics' view of
the store.

The node's appends decide each entry against this state inside their write
transaction, so a batch's entries see each other and an aborted batch leaves nothing.

Every record is stored sealed (``storelayout.seal``: a checksum bound to its table,
its key and the entry that last changed it) and checked on every read: a record
that does not match raises ``StateDamageError`` before the semantics sees it, so a
damaged balance, key or rule never decides an entry the node then signs. The store
stops taking writes when one is met (``LmdbStore``). A write transaction's reads of
balances, monthly counts and entry-list heads whose stored bytes are exactly those
the writer last sealed or checked take the value it remembers (``sealmemo``, ADR
0047): the same answer, without computing the checksum again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import lmdb
import msgpack

from redlist.ledger import codec
from redlist.ledger.entry import TownConfig
from redlist.ledger.errors import FormatError, StateDamageError
from redlist.ledger.idindex import IdIndex, SharedIdMemory
from redlist.ledger.sealmemo import SealedMemo
from redlist.ledger.state import (
    Balance,
    KeyRecord,
    RuleRecord,
    TargetRecord,
    balance_totals_from_bytes,
    config_from_bytes,
    config_to_bytes,
    month_count_from_bytes,
)
from redlist.ledger.storelayout import (
    INT_SIZE,
    META_CONFIG,
    META_SIZE,
    Tables,
    account_head_key,
    account_link_bytes,
    int_from_key,
    int_key,
    month_count_key,
    record_name,
    rule_key,
    seal,
    sealed_body,
    unseal,
)

_T = TypeVar("_T")

#: The seq the town configuration is sealed with: the genesis sets it.
CONFIG_SEQ = 0


class LmdbState:
    """``LedgerState`` over the tables of one transaction.

    Over a write transaction it reads its own uncommitted writes, so the entries of
    a batch see each other; an aborted transaction takes all of them back. Over a
    read transaction it serves reads only.

    Records read or written are remembered for the life of the object (one
    transaction, so at most what one batch touches): a batch of awards under one
    rule by one signer decodes the rule and the key once. Every write still goes
    straight to the transaction. Create one per transaction and let no one else
    write the same tables in it. A write transaction may also be given the store's
    ``SealedMemo``: a balance, monthly count or entry-list head whose stored bytes
    are those the writer last sealed or opened is then not opened again.

    Each record is sealed with the seq of the entry that changed it. Key, rule,
    target, entry-id and account records carry or are given that seq; a balance is
    sealed with the seq of the entry being applied, which this object counts: the
    log's size in this transaction, moved on by ``put_entry_id`` (the last write of
    every accepted entry, ``points.apply_entry``). The full check compares every
    record's seq with its replay, so a drift would not go unnoticed.
    """

    def __init__(
        self,
        txn: lmdb.Transaction[bytes],
        tables: Tables,
        shared_ids: SharedIdMemory | None = None,
        *,
        writing: bool = False,
        memo: SealedMemo | None = None,
    ) -> None:
        self._txn = txn
        self._tables = tables
        self._shared_ids = shared_ids
        self._writing = writing
        self._memo = memo
        self._config: TownConfig | None = None
        self._keys: dict[bytes, KeyRecord | None] = {}
        self._rules: dict[str, RuleRecord | None] = {}
        self._balances: dict[str, Balance] = {}
        self._months: dict[bytes, int] = {}
        self._last_month_key: tuple[str, str, str, bytes] | None = None
        self._applying: int | None = None
        self._link_heads: dict[str, tuple[int, int] | None] = {}
        #: The entry linked last and its ``account_links`` payload so far.
        self._linking: tuple[int, bytes] | None = None
        self._ids: IdIndex | None = None
        # The canonical encoder of the flat records this state writes (``_flat``).
        self._pack: Callable[[object], bytes] | None = None

    def _flat(self, fields: Sequence[object]) -> bytes:
        """``codec.encode(fields)`` of a flat list of scalars (a balance, a target, a
        monthly count: what their ``to_bytes`` encode), through this state's own packer.

        For such a list ``codec.encode`` is exactly a msgpack ``Packer`` with
        ``use_bin_type`` (nothing to sort); one kept per state (one transaction, one
        thread) spares the codec's per-thread packer and checks for every record an
        award writes. The stored bytes are the same (``tests/ledger/test_store.py``; ADR
        0049).
        """
        pack = self._pack
        if pack is None:
            pack = self._pack = msgpack.Packer(use_bin_type=True).pack
        try:
            return pack(fields)
        except OverflowError:
            raise FormatError(codec.OUT_OF_RANGE) from None

    def _entry_seq_now(self) -> int:
        """The seq of the entry being applied (see the class docstring)."""
        if self._applying is None:
            size = self._txn.get(META_SIZE, db=self._tables.meta)
            self._applying = 0 if size is None else int_from_key(size)
        return self._applying

    def config(self) -> TownConfig | None:
        if self._config is None:
            data = self._txn.get(META_CONFIG, db=self._tables.meta)
            if data is not None:
                payload = _payload("meta", META_CONFIG, data)
                self._config = _decoded(config_from_bytes, payload, "meta", META_CONFIG)
        return self._config

    def set_config(self, config: TownConfig) -> None:
        sealed = seal("meta", META_CONFIG, CONFIG_SEQ, config_to_bytes(config))
        self._txn.put(META_CONFIG, sealed, db=self._tables.meta)
        self._config = config

    def key(self, key_id: bytes) -> KeyRecord | None:
        if key_id not in self._keys:
            data = self._txn.get(key_id, db=self._tables.keys)
            self._keys[key_id] = (
                None
                if data is None
                else _decoded(KeyRecord.from_bytes, _payload("keys", key_id, data), "keys", key_id)
            )
        return self._keys[key_id]

    def put_key(self, record: KeyRecord) -> None:
        seq = record.added if record.revoked is None else record.revoked
        sealed = seal("keys", record.key_id, seq, record.to_bytes())
        self._txn.put(record.key_id, sealed, db=self._tables.keys)
        self._keys[record.key_id] = record

    def rule(self, code: str) -> RuleRecord | None:
        if code not in self._rules:
            key = rule_key(code)
            data = self._txn.get(key, db=self._tables.rules)
            self._rules[code] = (
                None
                if data is None
                else _decoded(RuleRecord.from_bytes, _payload("rules", key, data), "rules", key)
            )
        return self._rules[code]

    def put_rule(self, record: RuleRecord) -> None:
        key = rule_key(record.code)
        self._txn.put(key, seal("rules", key, record.seq, record.to_bytes()), db=self._tables.rules)
        self._rules[record.code] = record

    def has_rules(self) -> bool:
        if any(record is not None for record in self._rules.values()):
            return True
        with self._txn.cursor(db=self._tables.rules) as cursor:
            return bool(cursor.first())

    def balance(self, account: str) -> Balance:
        balance = self._balances.get(account)
        if balance is None:
            key = account.encode("utf-8")
            data = self._txn.get(key, db=self._tables.balances)
            if data is None:
                # Every entry that links an account first writes its balance, so a
                # missing balance beside a link is a record lost to damage (a damaged
                # key, a deleted record): no seal can show that, this can.
                if self._has_links(account):
                    raise StateDamageError(
                        "balances",
                        record_name("balances", key),
                        "is missing although the account has entries",
                    )
                balance = _ZERO_BALANCE
            else:
                memo = self._memo
                if memo is None:
                    balance = Balance._make(_open_balance(key, data))
                else:
                    balance = Balance._make(memo.balances.recall(key, data, _open_balance))
                # And the other way round: a stored balance counts an entry at least,
                # which linked the account. Read as "no entries", a lost head would start
                # the account's list again without them (ADR 0046).
                if not self._has_links(account):
                    raise StateDamageError(
                        "account_heads",
                        record_name("account_heads", account_head_key(account)),
                        "is missing although the account has a balance",
                    )
            self._balances[account] = balance
        return balance

    def _has_links(self, account: str) -> bool:
        return self.link_head(account) is not None

    def put_balance(self, account: str, balance: Balance) -> None:
        key = account.encode("utf-8")
        payload = self._flat([balance.earned, balance.redeemed, balance.entries])
        sealed = seal("balances", key, self._entry_seq_now(), payload)
        self._txn.put(key, sealed, db=self._tables.balances)
        self._balances[account] = balance
        if self._memo is not None:
            self._memo.balances.put(key, sealed, _totals(balance))

    def target(self, seq: int) -> TargetRecord | None:
        key = int_key(seq)
        data = self._txn.get(key, db=self._tables.targets)
        if data is None:
            return None
        payload = _payload("targets", key, data)
        return _decoded(TargetRecord.from_bytes, payload, "targets", key)

    def put_target(self, seq: int, record: TargetRecord) -> None:
        key = int_key(seq)
        changed = seq if record.reversed_by is None else record.reversed_by
        payload = self._flat(record.fields())
        self._txn.put(key, seal("targets", key, changed, payload), db=self._tables.targets)

    def _month_key(self, account: str, rule: str, month: str) -> bytes:
        """``month_count_key``, kept for the last count asked: an award reads its count,
        then writes it."""
        last = self._last_month_key
        if last is not None and last[0] == account and last[1] == rule and last[2] == month:
            return last[3]
        key = month_count_key(account, month, rule)
        self._last_month_key = (account, rule, month, key)
        return key

    def month_qty(self, account: str, rule: str, month: str) -> int:
        key = self._month_key(account, rule, month)
        qty = self._months.get(key)
        if qty is None:
            data = self._txn.get(key, db=self._tables.month_counts)
            if data is None:
                qty = 0
            else:
                memo = self._memo
                if memo is None:
                    count = _open_month_count(key, data)
                else:
                    count = memo.month_counts.recall(key, data, _open_month_count)
                stored_rule, qty = count
                if stored_rule != rule or qty < 1:
                    raise StateDamageError("month_counts", record_name("month_counts", key))
            self._months[key] = qty
        return qty

    def put_month_qty(self, account: str, rule: str, month: str, qty: int) -> None:
        key = self._month_key(account, rule, month)
        if qty:
            sealed = seal("month_counts", key, self._entry_seq_now(), self._flat([rule, qty]))
            self._txn.put(key, sealed, db=self._tables.month_counts)
            if self._memo is not None:
                self._memo.month_counts.put(key, sealed, (rule, qty))
        else:
            self._txn.delete(key, db=self._tables.month_counts)
        self._months[key] = qty

    def id_index(self) -> IdIndex:
        """The entry-id index of this transaction (``idindex``)."""
        if self._ids is None:
            self._ids = IdIndex(
                self._txn, self._tables, self._shared_ids, writing=self._writing, memo=self._memo
            )
        return self._ids

    def entry_seq(self, entry_id: bytes) -> int | None:
        return self.id_index().seq(entry_id)

    def put_entry_id(self, entry_id: bytes, seq: int) -> None:
        self.id_index().put(entry_id, seq)
        self._applying = seq + 1

    def link_account(self, account: str, seq: int) -> None:
        """Add entry ``seq`` to ``account``'s entry list (ADR 0043).

        Two writes, neither at a random place in a large table: the ``account_links``
        record of ``seq`` (the newest key of a table keyed by seq, so LMDB appends it)
        names the account's previous linked entry, and the account's ``account_heads``
        record (one per account, like ``balances``) moves on to ``seq``. A second link
        of the same entry rewrites the entry's record with both.
        """
        head = self.link_head(account)
        if head is None:
            self.balance(account)  # a balance without a head is damage (``balance``)
        previous, count = (None, 0) if head is None else head
        if previous is not None and previous >= seq:
            raise StateDamageError(
                "account_heads",
                record_name("account_heads", account_head_key(account)),
                f"names entry {previous}, not before entry {seq}",
            )
        key = int_key(seq)
        head_key = account_head_key(account)
        link = account_link_bytes(head_key, previous)
        linking = self._linking
        if linking is not None and linking[0] == seq:
            payload = linking[1] + link
            sealed = seal("account_links", key, seq, payload)
            self._txn.put(key, sealed, db=self._tables.account_links)
        else:
            payload = link
            sealed = seal("account_links", key, seq, payload)
            if not self._txn.put(
                key, sealed, overwrite=False, append=True, db=self._tables.account_links
            ):
                raise StateDamageError(
                    "account_links",
                    record_name("account_links", key),
                    "is already stored, or a later entry's is",
                )
        self._linking = (seq, payload)
        head_sealed = seal("account_heads", head_key, seq, int_key(count + 1))
        self._txn.put(head_key, head_sealed, db=self._tables.account_heads)
        self._link_heads[account] = (seq, count + 1)
        if self._memo is not None:
            self._memo.account_heads.put(head_key, head_sealed, (seq, count + 1))

    def link_head(self, account: str) -> tuple[int, int] | None:
        """``(latest linked seq, count of links)`` of ``account``, or None before its first."""
        if account in self._link_heads:
            return self._link_heads[account]
        key = account_head_key(account)
        data = self._txn.get(key, db=self._tables.account_heads)
        head = None
        if data is not None:
            memo = self._memo
            if memo is None:
                head = _link_head(key, data)
            else:
                head = memo.account_heads.recall(key, data, _link_head)
        self._link_heads[account] = head
        return head


def _decoded(decode: Callable[[bytes], _T], payload: bytes, table: str, key: bytes) -> _T:
    """``decode(payload)``; a sealed payload that does not decode is damage too (it was
    sealed by something other than this version), never the entry's fault."""
    try:
        return decode(payload)
    except FormatError:
        raise StateDamageError(table, record_name(table, key)) from None


def _payload(table: str, key: bytes, value: bytes) -> bytes:
    """The payload of a stored record; ``StateDamageError`` unless its seal matches."""
    body = sealed_body(table, key, value)
    if body is None:
        raise StateDamageError(table, record_name(table, key))
    return body[:-INT_SIZE]


# The openers of the records the writer's memo keeps (``SealedMemo``), each a plain
# tuple: what ``recall`` remembers, and what a read without a memo opens.


def _open_balance(key: bytes, value: bytes) -> tuple[int, int, int]:
    """``(earned, redeemed, entries)`` of a stored ``balances`` record."""
    payload = _payload("balances", key, value)
    return _decoded(balance_totals_from_bytes, payload, "balances", key)


def _open_month_count(key: bytes, value: bytes) -> tuple[str, int]:
    """``(rule, qty)`` of a stored ``month_counts`` record."""
    payload = _payload("month_counts", key, value)
    return _decoded(month_count_from_bytes, payload, "month_counts", key)


def _link_head(key: bytes, value: bytes) -> tuple[int, int]:
    """``(latest seq, count)`` of a stored ``account_heads`` record; ``StateDamageError``
    unless it is sound (a count of at least 1, in 8 bytes)."""
    opened = unseal("account_heads", key, value)
    if opened is None or len(opened[0]) != INT_SIZE or int_from_key(opened[0]) < 1:
        raise StateDamageError("account_heads", record_name("account_heads", key))
    return opened[1], int_from_key(opened[0])


_ZERO_BALANCE = Balance()


def _totals(balance: Balance) -> tuple[int, int, int]:
    """A balance as the memo keeps it: plain integers (``sealmemo``: the garbage
    collector stops tracking them)."""
    return (balance.earned, balance.redeemed, balance.entries)
