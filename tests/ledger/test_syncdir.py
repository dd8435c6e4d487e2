"""The one helper that makes a new directory entry durable."""

from __future__ import annotations

from pathlib import Path

import pytest

from redlist.ledger.syncdir import sync_directory


def test_a_directory_is_synced(tmp_path: Path) -> None:
    (tmp_path / "new").write_bytes(b"x")
    sync_directory(tmp_path)  # no error: the entry is durable
    sync_directory(tmp_path, required=False)


def test_what_cannot_be_synced_fails_only_where_it_is_required(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(FileNotFoundError):
        sync_directory(missing)
    sync_directory(missing, required=False)  # an auditor's copy: left as it is
    plain = tmp_path / "file"
    plain.write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        sync_directory(plain)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs procfs")
def test_a_file_system_that_does_not_sync_directories_is_not_an_error() -> None:
    # procfs, like some network and FUSE file systems, answers EINVAL to a directory's
    # fsync: there is nothing more to make durable, and the file written stands.
    sync_directory(Path("/proc/self"))
    sync_directory(Path("/proc/self"), required=False)
