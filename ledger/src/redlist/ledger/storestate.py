"""``LedgerState`` over the LMDB tables of one transaction: the points semantics' view of
the store.

The node's appends decide each entry against this state inside their write
transaction, so a batch's entries see each other and an aborted batch leaves nothing.
"""

from __future__ import annotations

import lmdb

from redlist.ledger.entry import TownConfig
from redlist.ledger.state import (
    Balance,
    KeyRecord,
    RuleRecord,
    TargetRecord,
    config_from_bytes,
    config_to_bytes,
)
from redlist.ledger.storelayout import (
    META_CONFIG,
    Tables,
    account_entry_key,
    int_from_key,
    int_key,
    rule_key,
)


class LmdbState:
    """``LedgerState`` over the tables of one transaction.

    Over a write transaction it reads its own uncommitted writes, so the entries of
    a batch see each other; an aborted transaction takes all of them back. Over a
    read transaction it serves reads only.

    Records read or written are remembered for the life of the object (one
    transaction, so at most what one batch touches): a batch of awards under one
    rule by one signer decodes the rule and the key once. Every write still goes
    straight to the transaction. Create one per transaction and let no one else
    write the same tables in it.
    """

    def __init__(self, txn: lmdb.Transaction[bytes], tables: Tables) -> None:
        self._txn = txn
        self._tables = tables
        self._config: TownConfig | None = None
        self._keys: dict[bytes, KeyRecord | None] = {}
        self._rules: dict[str, RuleRecord | None] = {}
        self._balances: dict[str, Balance] = {}

    def config(self) -> TownConfig | None:
        if self._config is None:
            data = self._txn.get(META_CONFIG, db=self._tables.meta)
            if data is not None:
                self._config = config_from_bytes(data)
        return self._config

    def set_config(self, config: TownConfig) -> None:
        self._txn.put(META_CONFIG, config_to_bytes(config), db=self._tables.meta)
        self._config = config

    def key(self, key_id: bytes) -> KeyRecord | None:
        if key_id not in self._keys:
            data = self._txn.get(key_id, db=self._tables.keys)
            self._keys[key_id] = None if data is None else KeyRecord.from_bytes(data)
        return self._keys[key_id]

    def put_key(self, record: KeyRecord) -> None:
        self._txn.put(record.key_id, record.to_bytes(), db=self._tables.keys)
        self._keys[record.key_id] = record

    def rule(self, code: str) -> RuleRecord | None:
        if code not in self._rules:
            data = self._txn.get(rule_key(code), db=self._tables.rules)
            self._rules[code] = None if data is None else RuleRecord.from_bytes(data)
        return self._rules[code]

    def put_rule(self, record: RuleRecord) -> None:
        self._txn.put(rule_key(record.code), record.to_bytes(), db=self._tables.rules)
        self._rules[record.code] = record

    def balance(self, account: str) -> Balance:
        balance = self._balances.get(account)
        if balance is None:
            data = self._txn.get(account.encode("utf-8"), db=self._tables.balances)
            balance = _ZERO_BALANCE if data is None else Balance.from_bytes(data)
            self._balances[account] = balance
        return balance

    def put_balance(self, account: str, balance: Balance) -> None:
        self._txn.put(account.encode("utf-8"), balance.to_bytes(), db=self._tables.balances)
        self._balances[account] = balance

    def target(self, seq: int) -> TargetRecord | None:
        data = self._txn.get(int_key(seq), db=self._tables.targets)
        return None if data is None else TargetRecord.from_bytes(data)

    def put_target(self, seq: int, record: TargetRecord) -> None:
        self._txn.put(int_key(seq), record.to_bytes(), db=self._tables.targets)

    def entry_seq(self, entry_id: bytes) -> int | None:
        data = self._txn.get(entry_id, db=self._tables.ids)
        return None if data is None else int_from_key(data)

    def put_entry_id(self, entry_id: bytes, seq: int) -> None:
        self._txn.put(entry_id, int_key(seq), db=self._tables.ids)

    def link_account(self, account: str, seq: int) -> None:
        self._txn.put(account_entry_key(account, seq), b"", db=self._tables.account_entries)


_ZERO_BALANCE = Balance()
