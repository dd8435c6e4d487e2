"""Making a new directory entry durable, for every writer of files.

POSIX makes a created or renamed file's name durable only once its directory has been
synced as well: each writer that writes a file to a temporary name, syncs it and renames
it (the node's key files and exports, the resident register, a witness's journal, an
auditor's state file and attestations) syncs the directory afterwards, through this.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

#: Opening a directory for syncing refuses anything else where the platform can tell.
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: What ``fsync`` of a directory answers on a file system that does not sync
#: directories (some network and FUSE file systems, procfs): nothing is left to do.
_CANNOT_SYNC_DIRECTORIES = frozenset({errno.EINVAL, errno.EBADF})


def sync_directory(path: Path, *, required: bool = True) -> None:
    """Sync the directory ``path``, so that the entries made in it survive a power cut.

    ``required=False`` is for files worth keeping but not at any price (an auditor's
    state file and attestations): where the platform cannot open or sync a directory,
    the entry is left as the file system keeps it, with no error. A file system that
    does not sync directories at all (``fsync`` answers EINVAL) is no error either way,
    as PostgreSQL's ``fsync_fname`` decides: the entry is as durable as it can make it.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | _DIRECTORY)
    except OSError:
        if required:
            raise
        return
    try:
        os.fsync(descriptor)
    except OSError as exc:
        if required and exc.errno not in _CANNOT_SYNC_DIRECTORIES:
            raise
    finally:
        os.close(descriptor)


__all__ = ["sync_directory"]
