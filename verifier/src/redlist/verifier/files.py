"""Reading the auditor's input files with bounds, before trusting a byte of them.

A bundle comes from the town being checked, so its files may be anything: a named
pipe that never ends (``open`` would wait forever), a device, a 3 GB "checkpoint".
Every file the verifier reads goes through here:

* it is opened without blocking and must be a **regular file** (``fstat`` on the open
  descriptor, so a file swapped after the check is not read instead);
* a small file (checkpoint, manifest, key, state) has a **size limit checked before
  reading**, and at most ``limit + 1`` bytes are ever read, so a file that grows while
  it is read is refused too;
* large files (the leaves) are streamed by the caller from the descriptor returned by
  :func:`open_regular`.

Errors are ``SourceError`` (the check cannot start: exit 2) naming the file and what
to do, except where the caller decides a bad file is a defect of the data.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from redlist.ledger.errors import SourceError, VerificationError
from redlist.ledger.i18n import _

#: A signed note (checkpoint, previous checkpoint): the core refuses larger ones too.
NOTE_LIMIT = 1 << 20
#: A bundle manifest or ``left`` file, a log key file: a few hundred bytes in practice.
SMALL_LIMIT = 64 * 1024
#: A state file: a checkpoint and a few figures.
STATE_LIMIT = 4 << 20


def open_regular(path: Path, what: str) -> BinaryIO:
    """``path`` opened for reading, after checking it is a regular file.

    Raises ``FileNotFoundError`` for a missing file (callers word that case
    themselves) and ``SourceError`` for anything else that cannot be read.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SourceError(
            _("cannot read {what} {path}: {value}").format(
                what=what, path=path, value=exc.strerror or exc
            )
        ) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = _("a directory") if stat.S_ISDIR(mode) else _("not a regular file")
            raise SourceError(
                _("{what} {path} is {kind}; give a file copied from the bundle").format(
                    what=what, path=path, kind=kind
                )
            )
        # Back to blocking reads: a regular file never blocks, and buffered reads expect it.
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, refused when it holds more than ``limit``."""
    with open_regular(path, what) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > limit:
            raise SourceError(
                _(
                    "{what} {path} is {size:,} bytes, more than the {limit:,} "
                    "such a file can hold: it is not what it should be"
                ).format(what=what, path=path, size=size, limit=limit)
            )
        try:
            data = stream.read(limit + 1)
        except OSError as exc:
            raise SourceError(
                _("cannot read {what} {path}: {value}").format(
                    what=what, path=path, value=exc.strerror or exc
                )
            ) from None
    if len(data) > limit:
        raise SourceError(
            _("{what} {path} grew past {limit:,} bytes while it was read").format(
                what=what, path=path, limit=limit
            )
        )
    return data


def read_publicity_file(directory: Path, name: str, limit: int) -> bytes:
    """The bytes of a monthly bundle's publicity file ``name`` (at most ``limit``); a
    bundle without it fails ``--publicity`` (check ``publicity``)."""
    try:
        return read_limited(directory / name, limit, _("the bundle's {name}").format(name=name))
    except FileNotFoundError:
        raise VerificationError("publicity", f"--publicity: the bundle has no {name}") from None
