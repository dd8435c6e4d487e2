"""``redlist``: the staff command line.

Subcommands live in ``redlist.staff.commands``, one module each; this module
lists them and says which errors are refusals. ``redlist.ledger.console`` builds the
parser and is the one place where errors become output:

* exit 0: done;
* exit 1: the operation was refused (the node refused an entry, a rule of the
  ledger, a conflicting entry, a log that fails its own checks);
* exit 2: it could not start: bad arguments (argparse), a missing or unusable
  file or key, a malformed value, a node that cannot be reached.

Errors print as ``error: <explanation>`` on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from redlist.ledger import console
from redlist.ledger.i18n import N_
from redlist.proto.errors import NodeError
from redlist.staff.commands import (
    account,
    approve,
    award,
    key,
    keygen,
    keys,
    objection,
    propose,
    redeem,
    reject,
    reverse,
    review,
    rule,
    rules,
    submit,
)

# Adding a subcommand: write its module under redlist.staff.commands and list it here.
_COMMANDS = (
    *(keygen, key, keys, rule, rules, award, redeem, objection, reverse, submit, account),
    *(propose, review, approve, reject),
)

#: Errors that mean "refused", not "could not start": a node's refusal is one too.
REFUSALS = (*console.REFUSALS, NodeError)


def build_parser() -> argparse.ArgumentParser:
    return console.build_parser(
        "redlist",
        N_("Staff tools for a town's credit-point ledger: keys and signed entries."),
        _COMMANDS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``redlist`` with ``argv`` (default: the process arguments); return the exit code."""
    return console.main(build_parser, argv, REFUSALS)


if __name__ == "__main__":
    sys.exit(main())
