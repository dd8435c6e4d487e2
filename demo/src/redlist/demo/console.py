"""Run the project's commands as a reader would type them, and show them being typed.

The demo runs ``redlist``, ``redlist-node`` (except ``serve``) and
``redlist-verify`` through their ``main(argv)``, in this process: it is the code
the console scripts run, without a Python start-up per command. Each command is
echoed as a shell line the reader can copy, followed by what it printed.
"""

from __future__ import annotations

import contextlib
import io
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from redlist.ledger.errors import RedlistError

#: Shell lines longer than this are continued before ``--node`` (with `` \``).
WRAP_AT = 88
INDENT = "  "


@dataclass(frozen=True)
class Program:
    """A console script: the name a reader types and the function it runs."""

    name: str
    main: Callable[[Sequence[str] | None], int]


class Show(Enum):
    """How much of a command the reader sees."""

    ALL = "the command line and its output"
    OUTPUT = "its output only"
    NOTHING = "nothing (the demo reads the output itself)"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    #: Both, in the order they were written: what a terminal would show.
    shown: str


def shell_line(program: str, argv: Sequence[str]) -> str:
    """``program argv...`` quoted for a POSIX shell, continued before ``--node`` if long."""
    line = shlex.join([program, *argv])
    if len(line) <= WRAP_AT or "--node" not in argv:
        return line
    split = list(argv).index("--node")
    head = shlex.join([program, *argv[:split]])
    tail = shlex.join(argv[split:])
    return f"{head} \\\n{INDENT}    {tail}"


class Console:
    """Runs commands in-process and tells the reader about them through ``say``."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def run(
        self,
        program: Program,
        argv: Sequence[str],
        *,
        show: Show = Show.ALL,
        expect: int = 0,
    ) -> str:
        """Run ``program argv``; its standard output. Fails unless it exits with ``expect``.

        What it wrote to stderr (a notice, or the error of a command expected to fail)
        is shown after its output, as a terminal would.
        """
        ran = capture(program, argv)
        if show is Show.ALL:
            for number, line in enumerate(shell_line(program.name, argv).splitlines()):
                self.say(f"{INDENT}{'$ ' if number == 0 else ''}{line}")
        if show is not Show.NOTHING:
            for line in ran.shown.splitlines():
                self.say(f"{INDENT}  {line}".rstrip())
        if ran.code != expect:
            what = "succeeded" if ran.code == 0 else f"exited with status {ran.code}"
            detail = (ran.err or ran.out).strip()
            raise RedlistError(
                f"'{shell_line(program.name, argv[:2])} ...' {what}, expected status {expect}"
                + (f": {detail}" if detail else "")
            )
        return ran.out


def capture(program: Program, argv: Sequence[str]) -> Ran:
    """Run ``program argv`` with its output captured; argparse's exits become codes."""
    shown = io.StringIO()
    out, err = _Copying(shown), _Copying(shown)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = program.main(list(argv))
        except SystemExit as exit_info:
            code = exit_info.code if isinstance(exit_info.code, int) else 2
    return Ran(code, out.getvalue(), err.getvalue(), shown.getvalue())


class _Copying(io.StringIO):
    """A text buffer that also copies what is written to ``also``."""

    def __init__(self, also: io.StringIO) -> None:
        super().__init__()
        self._also = also

    def write(self, text: str) -> int:
        self._also.write(text)
        return super().write(text)
