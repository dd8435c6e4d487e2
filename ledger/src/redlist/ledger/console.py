"""What ``redlist`` and ``redlist-node`` share: a parser built from one module per
subcommand, and the one place where errors become output and an exit code.

* exit 0: done (or whatever the subcommand's ``run`` returns);
* exit 1: the operation was refused: the error is one of the program's refusals;
* exit 2: it could not start: bad arguments (argparse), any other ``RedlistError``,
  an ``OSError``;
* exit 130: interrupted (Ctrl-C), as shells report a command stopped by SIGINT;
* exit 141: the reader of the output went away (``redlist account ... | head``):
  the output ends silently, as for a command stopped by SIGPIPE.

Errors print as ``error: <explanation>`` on stderr, never as a traceback.
``redlist-verify`` reports its own way (``--json``, its own exit statuses) and does
not use this module.

Messages are in the language chosen by ``--lang`` or the locale (``redlist.ledger.i18n``,
docs/adr/0034).

This module sits above every package (``redlist.node`` and ``redlist.staff`` import
it), so it imports only the ledger's errors, its i18n and the standard library.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from redlist.ledger import i18n
from redlist.ledger.errors import (
    BatchError,
    ConflictError,
    IntegrityError,
    RedlistError,
    RuleViolation,
    VerificationError,
)
from redlist.ledger.i18n import _

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
#: 128 + SIGINT: what a shell reports for a command stopped with Ctrl-C.
EXIT_INTERRUPTED = 130
#: 128 + SIGPIPE: what a shell reports for a command whose reader went away.
EXIT_BROKEN_PIPE = 141

#: Errors that mean "refused", not "could not start", to every program.
REFUSALS: tuple[type[RedlistError], ...] = (
    RuleViolation,
    BatchError,
    ConflictError,
    IntegrityError,
    VerificationError,
)


class Command(Protocol):
    """A subcommand's module: it adds its parser, with a ``run`` default, to ``subparsers``.

    ``run(args)`` returns the exit code; errors it raises are reported by :func:`run`.
    """

    def add_parser(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add the subcommand's parser to ``subparsers``."""


def build_parser(
    prog: str, description: str, commands: Iterable[Command]
) -> argparse.ArgumentParser:
    """The parser of ``prog``, with one subcommand from each of ``commands``, in order."""
    parser = argparse.ArgumentParser(prog=prog, description=_(description))
    i18n.add_option(parser)
    subparsers = parser.add_subparsers(title=_("commands"), metavar="COMMAND", required=True)
    for command in commands:
        command.add_parser(subparsers)
    return parser


def run(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    refusals: tuple[type[RedlistError], ...],
) -> int:
    """Parse ``argv`` (default: the process arguments), run the subcommand, return its exit code.

    An error of one of the ``refusals`` exits 1; any other error exits 2. The language
    was chosen before the parser was built (:func:`main`); ``--lang`` is dropped here.
    """
    args = parser.parse_args(i18n.split_option(sys.argv[1:] if argv is None else argv)[1])
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit as a traceback
    except RedlistError as error:
        print(_("error: {diagnostics}").format(diagnostics=i18n.in_words(error)), file=sys.stderr)
        return EXIT_REFUSED if isinstance(error, refusals) else EXIT_USAGE
    except KeyboardInterrupt:
        print(_("\nerror: interrupted (Ctrl-C)"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, less) has what it wanted; Python must not try again at exit.
        discard_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        print(
            _("error: {value}{where}").format(value=error.strerror or error, where=where),
            file=sys.stderr,
        )
        return EXIT_USAGE
    return code


def main(
    build: Callable[[], argparse.ArgumentParser],
    argv: Sequence[str] | None,
    refusals: tuple[type[RedlistError], ...],
) -> int:
    """Choose the language from ``argv`` (``--lang``, else the locale), then build the
    parser with ``build`` and :func:`run` it: help texts are translated as they are added.
    """
    words = i18n.setup_from_argv(argv)
    return run(build(), words, refusals)


def discard_stdout() -> None:
    """Point stdout at the null device, so the flush at exit finds no closed pipe."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):  # stdout is no real file (tests): nothing to flush
        pass
