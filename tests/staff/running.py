"""Run ``redlist`` in this process and capture what it prints and returns."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from redlist.staff.cli import main


@dataclass(frozen=True)
class Run:
    """The exit code and the output of one ``redlist`` run."""

    code: int
    out: str
    err: str


def redlist(*argv: str) -> Run:
    """``redlist argv...`` as the console script runs it (argparse exits become codes)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_info:
            code = exit_info.code if isinstance(exit_info.code, int) else 2
    return Run(code, out.getvalue(), err.getvalue())
