"""The one helper that takes a lock file, against real processes and odd files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from redlist.ledger.errors import StoreError
from redlist.ledger.filelock import lock_file

_HOLD = """
import sys, time
from pathlib import Path
from redlist.ledger.filelock import lock_file
lock_file(Path(sys.argv[1]), busy=lambda: "busy", exclusive=sys.argv[2] == "x")
print("held", flush=True)
time.sleep(600)
"""


def _holder(path: Path, *, exclusive: bool = True) -> subprocess.Popen[str]:
    """Another process holding the lock on ``path`` until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), "x" if exclusive else "s"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "held\n"
    return process


def _busy() -> str:
    return "the store is busy"


def test_another_process_holding_the_lock_is_refused_and_its_death_frees_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lock"
    holder = _holder(path)
    try:
        with pytest.raises(StoreError, match="the store is busy"):
            lock_file(path, busy=_busy)
        with pytest.raises(StoreError, match="the store is busy"):
            lock_file(path, busy=_busy, exclusive=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    os.close(lock_file(path, busy=_busy))  # the kernel dropped it with the process


def test_shared_locks_coexist_and_keep_an_exclusive_one_out(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = _holder(path, exclusive=False)
    try:
        os.close(lock_file(path, busy=_busy, exclusive=False))
        with pytest.raises(StoreError, match="busy"):
            lock_file(path, busy=_busy)
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_is_waited_for_up_to_the_time_given(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = _holder(path)
    started = time.monotonic()
    with pytest.raises(StoreError, match="busy"):
        lock_file(path, busy=_busy, wait_s=0.3)
    assert time.monotonic() - started >= 0.3
    freeing = subprocess.Popen(  # frees it while the next call waits
        [sys.executable, "-c", f"import os, time; time.sleep(0.3); os.kill({holder.pid}, 9)"]
    )
    try:
        os.close(lock_file(path, busy=_busy, wait_s=30))
    finally:
        freeing.wait()
        holder.wait()


def test_what_is_no_lock_file_is_refused_with_its_name(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    with pytest.raises(StoreError, match=f"cannot open the lock file {directory}"):
        lock_file(directory, busy=_busy)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing" / "lock")
    with pytest.raises(StoreError, match=f"the lock file {dangling} is a symbolic link"):
        lock_file(dangling, busy=_busy)


def test_a_lock_file_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    # Opened for reading and writing, a FIFO with no one at its other end opens at once.
    fifo = tmp_path / "lock"
    os.mkfifo(fifo)
    checking = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from pathlib import Path; "
            "from redlist.ledger.filelock import lock_file; "
            "os.close(lock_file(Path(sys.argv[1]), busy=str))",
            str(fifo),
        ],
        timeout=60,
        check=False,
    )
    assert checking.returncode == 0


def test_the_descriptor_is_not_inherited_by_a_child(tmp_path: Path) -> None:
    # A child (a signature worker) that outlived its parent would keep the lock.
    path = tmp_path / "lock"
    descriptor = lock_file(path, busy=_busy)
    try:
        assert not os.get_inheritable(descriptor)
    finally:
        os.close(descriptor)


def test_a_lock_file_that_is_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "file"
    elsewhere.parent.mkdir()
    path = tmp_path / "lock"
    path.symlink_to(elsewhere)
    for exclusive in (True, False):
        with pytest.raises(StoreError, match=r"the lock file .*lock is a symbolic link"):
            lock_file(path, busy=_busy, exclusive=exclusive)
    assert not elsewhere.exists()  # nothing was created through it


_READ_ONLY = """
import os, sys
from pathlib import Path
from redlist.ledger.errors import StoreError
from redlist.ledger.filelock import lock_file
if os.getuid() == 0:
    os.setgid(65534)
    os.setuid(65534)  # root writes anything: read-only for nobody instead
for exclusive in (False, True):
    try:
        os.close(lock_file(Path(sys.argv[1]), busy=lambda: "busy", exclusive=exclusive))
        print("locked", flush=True)
    except StoreError as error:
        print(error, flush=True)
"""


def test_a_reader_locks_a_lock_file_it_cannot_write_and_a_writer_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # A copy of a store on read-only media, or another user's files.
    directory = Path(tempfile.mkdtemp(prefix="redlist-readonly-"))
    try:
        path = directory / "lock"
        path.write_bytes(b"")
        path.chmod(0o444)
        directory.chmod(0o555)
        answer = subprocess.run(
            [sys.executable, "-c", _READ_ONLY, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        shared, exclusive = answer.stdout.splitlines()
        assert shared == "locked"
        assert exclusive == f"cannot open the lock file {path}: Permission denied"
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)
