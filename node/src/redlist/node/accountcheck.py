"""``CheckAccounts``: which accounts of a sheet the town's resident register does not hold.

The register is personal data (ADR 0025) and the list of its accounts is not public, so
the call is the staff's alone, authenticated exactly as a read of free texts is
(``readers.ReadAuthority``, ADR 0031), and it answers only about the accounts asked:
whether each is held, never who the resident is, and nothing that lists the register.
A request names at most ``contract.MAX_CHECK_ACCOUNTS`` accounts, so what one call holds
in memory is bounded whatever the sheet's length; a client sends a long sheet in chunks.

The node does not keep the register open (imports run while it serves): each call opens
it to read, under its shared lock, and waits at most ``REGISTER_WAIT_S`` for an import
or an erasure to finish, so a read thread is never held for long. Calls take turns: one
opening of the register at a time in the node's process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger.entry import is_valid_account
from redlist.ledger.registerstore import RegisterStore
from redlist.proto.contract import MAX_CHECK_ACCOUNTS

#: How long a check waits for a writer of the register (an import, an erasure), seconds.
REGISTER_WAIT_S = 5.0


@dataclass(frozen=True)
class AccountCheck:
    """The answer: whether the town keeps a register, and the accounts asked that it
    does not hold (empty when it keeps none: nothing was checked)."""

    register: bool
    unknown: tuple[str, ...]


def request_problem(accounts: Sequence[str]) -> str | None:
    """Why a request for ``accounts`` is malformed, in words; None when it is not."""
    if len(accounts) > MAX_CHECK_ACCOUNTS:
        return (
            f"{len(accounts)} accounts in one request; at most {MAX_CHECK_ACCOUNTS} are "
            "taken: send them in chunks"
        )
    for index, account in enumerate(accounts):
        if not is_valid_account(account):
            return (
                f"account {index} ({account[:80]!r}) is not a valid account id (lower-case "
                "letters, digits, '.', '_', '-'; 1-64 characters, starting with a letter or digit)"
            )
    return None


class RegisterCheck:
    """Checks accounts against the register of the data directory ``data_dir``."""

    def __init__(self, data_dir: Path, *, wait_s: float = REGISTER_WAIT_S) -> None:
        self._data_dir = data_dir
        self._wait_s = wait_s
        # LMDB must not have one environment open twice in a process (closing one copy
        # would drop the other's locks): calls on the read pool take turns.
        self._lock = threading.Lock()

    def check(self, accounts: Sequence[str]) -> AccountCheck:
        """The register's answer for ``accounts`` (a well-formed request); ``StoreError``
        when the register cannot be read or stays locked longer than the wait."""
        with self._lock, RegisterStore.open(self._data_dir, wait_s=self._wait_s) as register:
            if not register.kept():
                return AccountCheck(register=False, unknown=())
            return AccountCheck(register=True, unknown=tuple(register.unknown(accounts)))
