"""Look-ups a clerk's tool makes before sending a sheet, read from one store snapshot.

Each function takes a ``StoreReader`` (one read transaction) and answers as of its tree
size: which entry ids the log holds (``find_entries``), the rule catalogue
(``catalogue``), and how much qty awards not reversed already count towards the rules'
monthly caps (``month_counts``). They only read what the validator keeps for its own
checks (the entry-id index, the rules, the monthly counts), so each answer costs a
key look-up per item, never a scan of the log. ``Log`` serves them; the node's
``FindEntries``, ``GetRules`` and ``GetMonthCounts`` calls are these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redlist.ledger.entry import ID_SIZE, is_valid_account
from redlist.ledger.errors import FormatError
from redlist.ledger.state import KeyRecord, RuleRecord
from redlist.ledger.storeview import StoreReader
from redlist.ledger.text import rule_code_problem

#: Most ids or keys one look-up takes: bounds the work and the answer of one call.
MAX_LOOKUP_ITEMS = 10_000


@dataclass(frozen=True)
class MonthKey:
    """An account's awards under one rule with deed dates in one month (``YYYY-MM``)."""

    account: str
    rule: str
    month: str

    def check(self) -> MonthKey:
        """This key, if its parts are well formed (``FormatError`` naming the bad part)."""
        if not is_valid_account(self.account):
            raise FormatError(f"account id {self.account!r} is not valid")
        problem = rule_code_problem(self.rule) if self.rule else "must not be empty"
        if problem is not None:
            raise FormatError(f"rule code {self.rule!r} {problem}")
        month = self.month
        if not (
            len(month) == 7
            and month[4] == "-"
            and month[:4].isascii()
            and month[:4].isdigit()
            and month[5:].isascii()
            and month[5:].isdigit()
            and 1 <= int(month[5:]) <= 12
        ):
            raise FormatError(f"month {month!r} is not of the form YYYY-MM")
        return self


def _check_count(items: Sequence[object], what: str) -> None:
    if len(items) > MAX_LOOKUP_ITEMS:
        raise FormatError(
            f"{len(items)} {what} in one request; at most {MAX_LOOKUP_ITEMS} are taken"
        )


def find_entries(reader: StoreReader, ids: Sequence[bytes]) -> tuple[int, dict[bytes, int]]:
    """The tree size, and the seq of each of ``ids`` the log holds (absent ones left out)."""
    _check_count(ids, "entry ids")
    for entry_id in ids:
        if len(entry_id) != ID_SIZE:
            raise FormatError(f"an entry id is {ID_SIZE} bytes, not {len(entry_id)}")
    size = reader.size()
    state = reader.state()
    found: dict[bytes, int] = {}
    for entry_id in ids:
        seq = state.entry_seq(entry_id)
        if seq is not None and seq < size:
            found[entry_id] = seq
    return size, found


def catalogue(reader: StoreReader) -> tuple[int, tuple[RuleRecord, ...]]:
    """The tree size, and every rule ever set (retired ones too), in code order."""
    state = reader.state()
    rules = [state.rule(code) for code, _ in reader.stored_rules()]
    return reader.size(), tuple(sorted((r for r in rules if r is not None), key=_code))


def staff_keys(reader: StoreReader) -> tuple[int, tuple[KeyRecord, ...]]:
    """The tree size, and every staff key ever registered (revoked ones too), in key id
    order."""
    state = reader.state()
    keys = [state.key(key_id) for key_id, _ in reader.stored_keys()]
    return reader.size(), tuple(key for key in keys if key is not None)


def _code(rule: RuleRecord) -> str:
    return rule.code


def month_counts(reader: StoreReader, keys: Sequence[MonthKey]) -> tuple[int, tuple[int, ...]]:
    """The tree size, and for each of ``keys`` the qty its awards not reversed count."""
    _check_count(keys, "month keys")
    checked = [key.check() for key in keys]
    state = reader.state()
    counts = tuple(state.month_qty(key.account, key.rule, key.month) for key in checked)
    return reader.size(), counts


__all__ = [
    "MAX_LOOKUP_ITEMS",
    "MonthKey",
    "catalogue",
    "find_entries",
    "month_counts",
    "staff_keys",
]
