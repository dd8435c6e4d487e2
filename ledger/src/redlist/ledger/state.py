"""The state the points semantics reads and writes, and an in-memory implementation.

``LedgerState`` is the seam between the pure semantics (``points``) and where the
state lives: the node keeps it in LMDB tables written in the same transaction as
the leaves (``store``), the verifier keeps it in memory (``MemoryState``). Records
are frozen values with ``to_bytes``/``from_bytes`` so a store can persist them; the
two made for every award and redemption, ``Balance`` and ``TargetRecord``, are named
tuples (a tenth of a dataclass value's cost to make, read and free; ADR 0039).

``MemoryState`` keeps what it holds per entry (entry ids, target records) packed in
arrays (``packed``, ADR 0030): an audit's memory grows by about 60 bytes an entry
beyond what it holds per account, key and rule. Per account it holds the id once
(interned), the balance in arrays and the monthly counts under integer keys
(ADR 0035): some 200 bytes an account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from mypy_extensions import mypyc_attr

from redlist.ledger import codec
from redlist.ledger.entry import Grade, TownConfig
from redlist.ledger.errors import FormatError
from redlist.ledger.packed import (
    AccountTable,
    BalanceTable,
    IdTable,
    MonthCountTable,
    TargetTable,
)


@dataclass(frozen=True)
class KeyRecord:
    """A registered staff key: who holds it, what it may sign, and when it stopped."""

    key_id: bytes
    public: bytes
    name: str
    roles: frozenset[str]
    added: int
    revoked: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def to_bytes(self) -> bytes:
        return codec.encode(
            [self.key_id, self.public, self.name, sorted(self.roles), self.added, self.revoked]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyRecord:
        key_id, public, name, roles, added, revoked = _array(data, 6, "key record")
        return cls(key_id, public, name, frozenset(roles), added, revoked)


@dataclass(frozen=True)
class RuleRecord:
    """A rule of the village catalogue as last set (or retired) in the log."""

    code: str
    title: str
    module: str
    points: int
    council: bool
    active: bool
    seq: int
    max_qty: int | None = None
    max_per_month: int | None = None

    def to_bytes(self) -> bytes:
        return codec.encode(
            [
                self.code,
                self.title,
                self.module,
                self.points,
                self.council,
                self.active,
                self.seq,
                self.max_qty,
                self.max_per_month,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RuleRecord:
        return cls(*_array(data, 9, "rule record"))


class Balance(NamedTuple):
    """An account's running totals; everything else is derived from these.

    A named tuple, not a dataclass: one or two are made for every award and redemption
    a node or an auditor applies. ``tuple.__new__(Balance, (earned, redeemed, entries))``
    makes one without the generated ``__new__``.
    """

    earned: int = 0
    redeemed: int = 0
    entries: int = 0

    @property
    def spendable(self) -> int:
        return self.earned - self.redeemed

    def score(self, config: TownConfig) -> int:
        """The town's base score plus every point earned (DESIGN 3.4)."""
        return config.base + self.earned

    def grade(self, config: TownConfig) -> str:
        """The grade of :meth:`score` on the town's scale."""
        return config.grade_of(self.score(config))

    def to_bytes(self) -> bytes:
        return codec.encode([self.earned, self.redeemed, self.entries])

    @classmethod
    def from_bytes(cls, data: bytes) -> Balance:
        return cls._make(_array(data, 3, "balance record"))


def balance_totals_from_bytes(data: bytes) -> tuple[int, int, int]:
    """``(earned, redeemed, entries)`` of a balance record, as ``Balance.from_bytes`` reads
    them (the store's writer keeps balances as such plain tuples, ``sealmemo``)."""
    earned, redeemed, entries = _array(data, 3, "balance record")
    return earned, redeemed, entries


class TargetRecord(NamedTuple):
    """What a later objection or reversal needs to know about an award or redeem.

    ``points`` is the signed change to ``earned`` for an award and the amount
    taken from ``spendable`` for a redeem. An award's ``qty`` and the ``month``
    (``YYYY-MM``) of its deed date say which monthly count a reversal gives back
    (a redeem has 0 and ""). A named tuple, as ``Balance`` is (one is made for every
    award and redemption); its fields are in the order the store keeps them.
    """

    kind: str
    account: str
    points: int
    rule: str
    reversed_by: int | None = None
    qty: int = 0
    month: str = ""

    def reversed(self, seq: int) -> TargetRecord:
        return self._replace(reversed_by=seq)

    def fields(self) -> list[str | int | None]:
        """The fields in the order they are stored (``to_bytes``, the store's record)."""
        return list(self)

    def to_bytes(self) -> bytes:
        return codec.encode(self.fields())

    @classmethod
    def from_bytes(cls, data: bytes) -> TargetRecord:
        return cls._make(_array(data, 7, "target record"))


def month_count_to_bytes(rule: str, qty: int) -> bytes:
    """A stored monthly count: ``[rule, qty]`` (the rule code, since a long code's key
    in a store is a hash)."""
    return codec.encode([rule, qty])


def month_count_from_bytes(data: bytes) -> tuple[str, int]:
    rule, qty = _array(data, 2, "monthly count record")
    if not isinstance(rule, str) or not isinstance(qty, int) or isinstance(qty, bool):
        raise FormatError("monthly count record: expected [rule, qty]")
    return rule, qty


def config_to_bytes(config: TownConfig) -> bytes:
    return codec.encode(config.to_value())


def config_from_bytes(data: bytes) -> TownConfig:
    return TownConfig.from_value(codec.decode(data, "town config"))


class LedgerState(Protocol):
    """Everything the semantics needs to decide on the next entry."""

    def config(self) -> TownConfig | None: ...
    def set_config(self, config: TownConfig) -> None: ...
    def key(self, key_id: bytes) -> KeyRecord | None: ...
    def put_key(self, record: KeyRecord) -> None: ...
    def rule(self, code: str) -> RuleRecord | None: ...
    def put_rule(self, record: RuleRecord) -> None: ...
    def has_rules(self) -> bool:
        """Whether any ``rule`` entry was applied yet (the log's set-up is over)."""
        ...

    def balance(self, account: str) -> Balance: ...
    def put_balance(self, account: str, balance: Balance) -> None: ...
    def target(self, seq: int) -> TargetRecord | None: ...
    def put_target(self, seq: int, record: TargetRecord) -> None: ...
    def month_qty(self, account: str, rule: str, month: str) -> int:
        """The qty of ``account``'s unreversed awards under ``rule`` whose deed date lies
        in ``month`` (``YYYY-MM``); 0 when there are none."""
        ...

    def put_month_qty(self, account: str, rule: str, month: str, qty: int) -> None:
        """Set that count; 0 removes the record (the state holds only counts above 0)."""
        ...

    def entry_seq(self, entry_id: bytes) -> int | None: ...
    def put_entry_id(self, entry_id: bytes, seq: int) -> None: ...
    def link_account(self, account: str, seq: int) -> None:
        """Record that entry ``seq`` touched ``account`` (for statements)."""
        ...


class Targets(Mapping[int, TargetRecord]):
    """seq -> ``TargetRecord``, stored as packed fields (``packed.TargetTable``)."""

    def __init__(self, accounts: AccountTable | None = None) -> None:
        self._table = TargetTable(accounts)
        #: ``put(seq, record)``: the table's own, a record being the tuple of its fields.
        self.put: Callable[[int, TargetRecord], None] = self._table.put

    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, seq: int) -> TargetRecord:
        fields = self._table.get(seq)
        if fields is None:
            raise KeyError(seq)
        return _new_tuple(TargetRecord, fields)

    def __iter__(self) -> Iterator[int]:
        return self._table.seqs()

    def get(self, seq: int, default: TargetRecord | None = None) -> TargetRecord | None:  # type: ignore[override]
        fields = self._table.get(seq)
        return default if fields is None else _new_tuple(TargetRecord, fields)


class Balances(Mapping[str, Balance]):
    """account -> ``Balance``, over the packed balances (``packed.BalanceTable``).

    ``snapshot`` copies the arrays, so it keeps the balances of the moment while the
    state moves on (the audit's result holds one).
    """

    def __init__(self, accounts: AccountTable, table: BalanceTable | None = None) -> None:
        self._accounts = accounts
        self._table = BalanceTable() if table is None else table

    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, account: str) -> Balance:
        balance = self.get(account)
        if balance is None:
            raise KeyError(account)
        return balance

    def __iter__(self) -> Iterator[str]:
        name = self._accounts.name
        return (name(number) for number in self._table.numbers())

    def __contains__(self, account: object) -> bool:
        number = self._accounts.find(account) if isinstance(account, str) else None
        return number is not None and self._table.has(number)

    def get(self, account: str, default: Balance | None = None) -> Balance | None:  # type: ignore[override]
        number = self._accounts.find(account)
        fields = None if number is None else self._table.get(number)
        return default if fields is None else _new_tuple(Balance, fields)

    def snapshot(self) -> Balances:
        return Balances(self._accounts, self._table.copy())


class MonthCounts(Mapping[tuple[str, str, str], int]):
    """(account, rule, month) -> qty, over the packed counts (``packed.MonthCountTable``)."""

    def __init__(self, accounts: AccountTable, table: MonthCountTable) -> None:
        self._accounts = accounts
        self._table = table

    def __len__(self) -> int:
        return len(self._table)

    def __getitem__(self, key: tuple[str, str, str]) -> int:
        account, rule, month = key
        number = self._accounts.find(account)
        qty = 0 if number is None else self._table.get(number, rule, month)
        if not qty:
            raise KeyError(key)
        return qty

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        name = self._accounts.name
        return ((name(number), rule, month) for number, rule, month, _ in self._table.items())


# Compiled (ADR 0057), the full check and the publicity replay it in subclasses of their own.
@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryState:
    """``LedgerState`` in memory: for the verifier, the full check and tests.

    Keys and rules are dictionaries; ``balances``, ``month_counts``, ``targets`` and
    ``entry_ids`` are read-only mappings over packed arrays (write them with
    ``put_balance``, ``put_month_qty``, ``put_target`` and ``put_entry_id``). Every
    account id is kept once (``packed.AccountTable``), whichever table refers to it.
    """

    def __init__(self) -> None:
        self._config: TownConfig | None = None
        self.keys: dict[bytes, KeyRecord] = {}
        self.rules: dict[str, RuleRecord] = {}
        self._accounts = AccountTable()
        self._balances = BalanceTable()
        self.balances = Balances(self._accounts, self._balances)
        self.targets = Targets(self._accounts)
        self._month_counts = MonthCountTable()
        self.month_counts = MonthCounts(self._accounts, self._month_counts)
        self.entry_ids = IdTable()
        self.account_entries: dict[str, list[int]] = {}
        self.keep_account_entries = False
        self._bind_tables()

    def _bind_tables(self) -> None:
        """Bind the look-ups and records the points rules make for every entry to the
        tables' own methods: each then costs one Python frame less (ADR 0039). A
        subclass that overrides one of them keeps its override. Compiled (ADR 0057), the
        methods are native calls already, and the instances take no new attributes."""
        if _COMPILED:
            return
        for name, table_method in self._table_methods().items():
            if getattr(type(self), name) is getattr(MemoryState, name):
                setattr(self, name, table_method)

    def _table_methods(self) -> dict[str, Callable[..., Any]]:
        return {
            "key": self.keys.get,
            "rule": self.rules.get,
            "entry_seq": self.entry_ids.get,
            "put_entry_id": self.entry_ids.put,
            "put_target": self.targets.put,
        }

    def __getstate__(self) -> dict[str, Any]:
        # A copy (``copy.deepcopy``, ``pickle``) binds its own tables' methods: a
        # dictionary's bound ``get`` would be copied as it is, still reading the
        # original's dictionary. (Compiled, ADR 0057, a state is not copied: nothing does.)
        bound = self._table_methods()
        return {name: value for name, value in vars(self).items() if name not in bound}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._bind_tables()

    def config(self) -> TownConfig | None:
        return self._config

    def set_config(self, config: TownConfig) -> None:
        self._config = config

    def key(self, key_id: bytes) -> KeyRecord | None:
        return self.keys.get(key_id)

    def put_key(self, record: KeyRecord) -> None:
        self.keys[record.key_id] = record

    def rule(self, code: str) -> RuleRecord | None:
        return self.rules.get(code)

    def put_rule(self, record: RuleRecord) -> None:
        self.rules[record.code] = record

    def has_rules(self) -> bool:
        return bool(self.rules)

    def balance(self, account: str) -> Balance:
        number = self._accounts.find(account)
        fields = None if number is None else self._balances.get(number)
        return _ZERO if fields is None else _new_tuple(Balance, fields)

    def put_balance(self, account: str, balance: Balance) -> None:
        number = self._accounts.find(account)
        if number is None:
            number = self._accounts.number(account)
        self._balances.put(number, *balance)

    def target(self, seq: int) -> TargetRecord | None:
        return self.targets.get(seq)

    def put_target(self, seq: int, record: TargetRecord) -> None:
        self.targets.put(seq, record)

    def month_qty(self, account: str, rule: str, month: str) -> int:
        number = self._accounts.find(account)
        return 0 if number is None else self._month_counts.get(number, rule, month)

    def put_month_qty(self, account: str, rule: str, month: str, qty: int) -> None:
        number = self._accounts.find(account)
        if number is None:
            if not qty:
                return
            number = self._accounts.number(account)
        self._month_counts.put(number, rule, month, qty)

    def reserve(self, entries: int) -> None:
        """Expect a log of about ``entries`` entries (only saves time)."""
        self.entry_ids.reserve(entries)

    def entry_seq(self, entry_id: bytes) -> int | None:
        return self.entry_ids.get(entry_id)

    def put_entry_id(self, entry_id: bytes, seq: int) -> None:
        self.entry_ids.put(entry_id, seq)

    def link_account(self, account: str, seq: int) -> None:
        if self.keep_account_entries:
            self.account_entries.setdefault(account, []).append(seq)


_ZERO = Balance()
# ``Balance(...)`` and ``TargetRecord(...)`` of a tuple of their fields without their
# generated ``__new__``: the same value, one Python call less (made for every award).
_new_tuple = tuple.__new__
_FLAT_TYPES = frozenset({type(None), bool, int, str, bytes})


def _array(data: bytes, length: int, what: str) -> list[Any]:
    # Fast path for the flat records read for every entry (balances, targets): exact
    # scalar types make the value plain for ``codec.encodes_to``; anything else is
    # left to ``codec.decode``, which decides and says why.
    quick = codec.try_unpack(data) if type(data) is bytes else None
    if (
        type(quick) is list
        and len(quick) == length
        and all(type(item) in _FLAT_TYPES for item in quick)
        and codec.encodes_to(quick, data)
    ):
        return quick
    value = codec.decode(data, what)
    if not isinstance(value, list) or len(value) != length:
        raise FormatError(f"{what}: expected an array of {length} items")
    return value


#: Whether this module runs compiled by mypyc (ADR 0057), not from its source.
_COMPILED = __file__.endswith((".so", ".pyd"))

__all__ = [
    "Balance",
    "Balances",
    "Grade",
    "KeyRecord",
    "LedgerState",
    "MemoryState",
    "MonthCounts",
    "RuleRecord",
    "TargetRecord",
    "Targets",
    "config_from_bytes",
    "config_to_bytes",
    "month_count_from_bytes",
    "month_count_to_bytes",
]
