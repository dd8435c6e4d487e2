"""``redlist-node``: create, run and export a town's log.

Subcommands live in ``redlist.node.commands``, one module each; this module
lists them and says which errors are refusals. ``redlist.ledger.console`` builds the
parser and is the one place where errors become output:

* exit 0: done;
* exit 1: the operation was refused (the ledger's rules refused an entry, or the
  stored log fails its own checks);
* exit 2: it could not start: bad arguments (argparse), a missing or unusable
  file, key, data directory or destination.

Errors print as ``error: <explanation>`` on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from redlist.ledger import console
from redlist.ledger.errors import RegisterError, TextError
from redlist.ledger.i18n import N_
from redlist.node.commands import (
    alarms,
    check,
    export,
    init,
    mirror,
    objections,
    recognise,
    residents,
    serve,
    texts,
    witness_reset,
)

# Adding a subcommand: write its module under redlist.node.commands and list it here.
_COMMANDS = (
    init,
    export,
    serve,
    mirror,
    check,
    alarms,
    witness_reset,
    recognise,
    residents,
    objections,
    texts,
)

#: Errors that mean "refused", not "could not start": the ledger's, the register's, and
#: the free texts' (an entry without the text asked for).
REFUSALS = (*console.REFUSALS, RegisterError, TextError)


def build_parser() -> argparse.ArgumentParser:
    return console.build_parser(
        "redlist-node",
        N_(
            "Run a town's credit-point ledger: create the log, serve it, export bundles for "
            "auditors and check the stored data."
        ),
        _COMMANDS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``redlist-node`` with ``argv`` (default: the process arguments); return the exit code."""
    return console.main(build_parser, argv, REFUSALS)


if __name__ == "__main__":
    sys.exit(main())
