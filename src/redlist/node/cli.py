"""``redlist-node``: create, run and export a town's log.

Subcommands live in ``redlist.node.commands``, one module each; this module
builds the parser from them and is the one place where errors become output:

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

from redlist.ledger.errors import (
    BatchError,
    ConflictError,
    IntegrityError,
    RedlistError,
    RuleViolation,
    VerificationError,
)
from redlist.node.commands import check, export, init, serve

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

# Adding a subcommand: write its module under redlist.node.commands and list it here.
_COMMANDS = (init, export, serve, check)

#: Errors that mean "refused", not "could not start".
REFUSALS = (RuleViolation, BatchError, ConflictError, IntegrityError, VerificationError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redlist-node",
        description="Run a town's credit-point ledger: create the log, export bundles.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``redlist-node`` with ``argv`` (default: the process arguments); return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except RedlistError as error:
        print(f"error: {error.diagnostics()}", file=sys.stderr)
        return EXIT_REFUSED if isinstance(error, REFUSALS) else EXIT_USAGE
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
