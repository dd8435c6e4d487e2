"""``redlist-verify``'s entry point: a long audit's signature workers start first.

The command's own modules take about a tenth of a second to load (ADR 0041). An
audit of a bundle long enough to verify on worker processes
(``sigschedule.PROCESS_MIN_ENTRIES`` entries) starts them here, before that: each
worker's interpreter then starts on the core the loading leaves idle, and is ready
when the first leaves are read (ADR 0048). Everything else is ``cli.main``'s.

Once the command has finished, the process ends without the interpreter's teardown
(``end_without_teardown``): an audit holds every account's state, and freeing it
object by object took about 30 ms of a 4-second audit, after the report was written.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Sequence

#: ``bundle.LEAVES_FILE``, named here so that deciding loads nothing.
LEAVES_FILE = "leaves"
#: ``sigschedule.PROCESS_MIN_ENTRIES`` (a test holds the two equal).
PROCESS_MIN_ENTRIES = 20_000
#: Fewer bytes than any leaf takes (seq, time, the previous hash, an envelope with a
#: body and a signature): a leaves file this many times the entries holds at least
#: that many.
MIN_LEAF_BYTES = 200
#: ``cli.PROGRAM`` and ``cli.EXIT_INTERRUPTED``, for a Ctrl-C before ``cli`` is loaded.
PROGRAM = "redlist-verify"
EXIT_INTERRUPTED = 130


def main() -> int:
    """Start the workers of a long bundle audit, then run the verifier."""
    status = end_without_teardown()
    try:
        workers = early_workers(sys.argv[1:])
        if workers is not None:
            from redlist.ledger.sigworkers import start_early

            start_early(workers or None)
        from redlist.verifier.cli import main as run
    except KeyboardInterrupt:  # Ctrl-C before the command could answer it itself
        _say_interrupted()
        status.append(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    status.append(run())
    return status[-1]


def _say_interrupted() -> None:
    """The command's own words for Ctrl-C, in the language it would have used."""
    from redlist.ledger.i18n import _, setup_from_argv

    with contextlib.suppress(Exception):  # a --lang it refuses: the locale's language
        setup_from_argv(None)
    message = _("{program}: interrupted; nothing was verified").format(program=PROGRAM)
    sys.stderr.write("\n" + message + "\n")


def end_without_teardown() -> list[int]:
    """A list to put the command's exit status in: once it holds one, the process
    ends with it as soon as every other exit handler has run.

    Registered first, the handler runs last (``atexit`` runs handlers in reverse),
    after the interpreter has waited for the threads that are not daemons; it flushes
    the standard streams and calls ``os._exit``, skipping only the freeing of every
    object and module. The command closes every file it writes itself. When the
    command ends by an exception (no status put), the interpreter ends as usual.
    """
    status: list[int] = []

    def end() -> None:
        if not status:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a reader gone (| head): nothing to do
                stream.flush()
        os._exit(status[-1])

    atexit.register(end)
    return status


def early_workers(args: Sequence[str]) -> int | None:
    """The workers to start ahead for ``args`` (0: one per core), or None.

    Only ``bundle`` with a directory whose leaves file is long enough, signatures
    checked (no ``--structure-only``) and no help asked; a wrong guess costs only
    idle workers, stopped at exit. Options are read as the command's parser reads
    them, an unambiguous prefix included (``--work 3``, ``--struct``), and a run the
    command will refuse (``--workers 0``, a count ``int`` does not read) starts none.
    """
    args = _after_language(args)
    if not args or args[0] != "bundle":
        return None
    workers = 0
    for index, arg in enumerate(args):
        if arg == "-h":
            return None
        name, equals, value = arg.partition("=")
        if not name.startswith("--") or len(name) < 3:
            continue
        if _abbreviates(name, "--help") or _abbreviates(name, "--structure-only"):
            return None
        if not _abbreviates(name, "--workers"):
            continue
        if _abbreviates(name, "--witness"):
            return None  # ambiguous: the command refuses it
        if not equals:
            if index + 1 >= len(args):
                return None
            value = args[index + 1]
        # ``str.isdigit`` holds for digits ``int`` refuses (superscripts): ASCII only.
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            return None  # the command refuses it
        from redlist.ledger.cores import most_workers

        if int(value) > most_workers():
            return None  # the command refuses it
        workers = int(value)
    threshold = PROCESS_MIN_ENTRIES * MIN_LEAF_BYTES
    for arg in args[1:]:
        if arg.startswith("-"):
            continue
        try:
            size = os.stat(os.path.join(arg, LEAVES_FILE)).st_size
        except (OSError, ValueError):
            continue
        if size >= threshold:
            return workers
    return None


def _after_language(args: Sequence[str]) -> Sequence[str]:
    """``args`` after a ``--lang`` given before the command (the one option there)."""
    while args and _abbreviates(args[0].partition("=")[0], "--lang"):
        args = args[1:] if "=" in args[0] else args[2:]
    return args


def _abbreviates(name: str, option: str) -> bool:
    """Whether the command's parser takes ``name`` for ``option`` (argparse accepts a
    prefix of a long option, at least one letter of it)."""
    return len(name) > 2 and option.startswith(name)


if __name__ == "__main__":
    sys.exit(main())
