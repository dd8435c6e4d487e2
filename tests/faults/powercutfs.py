"""A FUSE file system that keeps unsynced writes in memory: a disk whose power can be cut.

Run as a program (``python powercutfs.py BACKING MOUNT CONTROL``), in its own process;
``tests/faults/powercut.py`` mounts it, sends it commands and unmounts it. Needs
libfuse 3 (Debian ``fuse3``) and mfusepy.

The model, which is what POSIX promises and no more:

* **File data reaches the backing directory only when synced**: ``fsync`` or
  ``fdatasync`` of the file, or a write through a descriptor opened with ``O_SYNC`` or
  ``O_DSYNC`` (LMDB writes its meta page that way). Until then writes live in a page
  cache here (4 KiB pages), and every read sees them, as the kernel's page cache would.
  Size changes (``ftruncate``, a write past the end) are data too.
* **Names are durable at once**: create, mkdir, rename, unlink and rmdir go straight to
  the backing directory, as a journalling file system orders them. So a file renamed
  into place before its data was synced is found after a cut with its old or no data:
  exactly the failure a careful writer must survive.
* **A power cut** (the ``cut`` command) drops every unsynced write. With ``tear`` it
  first writes a random whole number of 512-byte sectors of the last unsynced write
  (never all of it): a disk that lost power in the middle of a write. From the cut on
  every operation fails with ``EIO``; the process is then unmounted and a new one
  mounted over the same backing directory, with an empty page cache.
* **Injected errors** (the ``fail`` command): the chosen call (``write``, a write
  through a synchronous descriptor, ``write-sync``, or ``fsync``) on files whose name
  ends with a suffix fails with ``EIO`` or ``ENOSPC``, after a number of successful
  calls, for a number of calls. A failed write stores nothing. A failed fsync drops
  the file's unsynced pages, as Linux does after a writeback error (the pages are
  marked clean): a second fsync then succeeds with nothing to write. That is
  PostgreSQL's "fsyncgate" (2018), and why a failed fsync must never be retried.

The control socket (a Unix socket at ``CONTROL``) takes one JSON object per line and
answers one: ``{"op": "cut", "tear": bool, "seed": int}``, ``{"op": "fail", "call":
..., "errno": "EIO"|"ENOSPC", "suffix": ..., "after": int, "count": int|null}``,
``{"op": "clear"}`` (no more injected errors), ``{"op": "stats"}``.
"""

from __future__ import annotations

import errno
import json
import os
import random
import socket
import stat
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import mfusepy  # type: ignore[import-untyped]

PAGE = 4096
SECTOR = 512
_SYNC_FLAGS = os.O_SYNC | os.O_DSYNC
_ERRNOS = {"EIO": errno.EIO, "ENOSPC": errno.ENOSPC}


@dataclass
class Pending:
    """One file's unsynced state: pages written since its last sync, and its size."""

    size: int  # the size every reader sees
    durable_from: int  # backing bytes at and past this offset read as zeros (truncated)
    pages: dict[int, bytearray] = field(default_factory=dict)


@dataclass
class Handle:
    fd: int
    key: tuple[int, int]  # the backing file's (st_dev, st_ino)
    sync: bool


@dataclass
class Rule:
    call: str
    errno: int
    suffix: str
    after: int
    count: int | None
    path_seen: int = 0


@dataclass
class Stats:
    writes: int = 0
    sync_writes: int = 0
    fsyncs: int = 0
    synced_bytes: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    dropped_bytes: int = 0
    torn_bytes: int = 0
    #: Calls that reached a file, by the file's name and the call ("write", "fsync").
    calls: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, path: str, call: str) -> None:
        per_file = self.calls.setdefault(os.path.basename(path), {})
        per_file[call] = per_file.get(call, 0) + 1


class PowerCutFS(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, backing: str) -> None:
        self.backing = os.path.realpath(backing)
        self._mutex = threading.RLock()
        self.pending: dict[tuple[int, int], Pending] = {}
        self.handles: dict[int, Handle] = {}
        self.next_handle = 1
        self.rules: list[Rule] = []
        self.last_write: tuple[tuple[int, int], int, bytes] | None = None
        self.dead = False
        self.stats = Stats()

    # -- helpers -------------------------------------------------------------

    def _real(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def _alive(self) -> None:
        if self.dead:
            raise mfusepy.FuseOSError(errno.EIO)

    def _inject(self, call: str, path: str) -> None:
        for rule in self.rules:
            if rule.call != call or not path.endswith(rule.suffix):
                continue
            rule.path_seen += 1
            if rule.path_seen <= rule.after:
                continue
            if rule.count is not None:
                if rule.count == 0:
                    continue
                rule.count -= 1
            name = f"{call}:{errno.errorcode[rule.errno]}"
            self.stats.injected[name] = self.stats.injected.get(name, 0) + 1
            raise mfusepy.FuseOSError(rule.errno)

    def _key_of(self, fd: int) -> tuple[int, int]:
        info = os.fstat(fd)
        return (info.st_dev, info.st_ino)

    def _state(self, key: tuple[int, int], fd: int) -> Pending:
        state = self.pending.get(key)
        if state is None:
            size = os.fstat(fd).st_size
            state = self.pending[key] = Pending(size=size, durable_from=size)
        return state

    def _read_through(self, fd: int, state: Pending | None, size: int, offset: int) -> bytes:
        if state is None:
            return os.pread(fd, size, offset)
        end = min(offset + size, state.size)
        if end <= offset:
            return b""
        data = bytearray(end - offset)
        durable_end = min(end, state.durable_from)
        if durable_end > offset:
            chunk = os.pread(fd, durable_end - offset, offset)
            data[: len(chunk)] = chunk
        first, last = offset // PAGE, (end - 1) // PAGE
        for number in range(first, last + 1):
            page = state.pages.get(number)
            if page is None:
                continue
            start = max(offset, number * PAGE)
            stop = min(end, (number + 1) * PAGE)
            data[start - offset : stop - offset] = page[
                start - number * PAGE : stop - number * PAGE
            ]
        return bytes(data)

    def _page(self, fd: int, state: Pending, number: int) -> bytearray:
        page = state.pages.get(number)
        if page is None:
            base = number * PAGE
            page = bytearray(self._read_through(fd, state, PAGE, base).ljust(PAGE, b"\0"))
            state.pages[number] = page
        return page

    def _buffer(self, fd: int, state: Pending, data: bytes, offset: int) -> None:
        position = 0
        while position < len(data):
            number, within = divmod(offset + position, PAGE)
            take = min(PAGE - within, len(data) - position)
            page = self._page(fd, state, number)
            page[within : within + take] = data[position : position + take]
            position += take
        state.size = max(state.size, offset + len(data))

    def _sync(self, fd: int, key: tuple[int, int]) -> None:
        """Write the file's page cache through to the backing file, durably."""
        state = self.pending.pop(key, None)
        if state is not None:
            if state.durable_from < os.fstat(fd).st_size:
                os.ftruncate(fd, state.durable_from)
            for number, page in sorted(state.pages.items()):
                base = number * PAGE
                chunk = bytes(page[: max(0, min(PAGE, state.size - base))])
                os.pwrite(fd, chunk, base)
                self.stats.synced_bytes += len(chunk)
            os.ftruncate(fd, state.size)
        os.fsync(fd)
        if self.last_write is not None and self.last_write[0] == key:
            self.last_write = None

    # -- the power cut -----------------------------------------------------------

    def cut(self, tear: bool, seed: int) -> dict[str, Any]:
        with self._mutex:
            torn = 0
            if tear and self.last_write is not None:
                key, offset, data = self.last_write
                sectors = len(data) // SECTOR
                if sectors > 1:
                    torn = random.Random(seed).randrange(1, sectors) * SECTOR  # noqa: S311
                    fd = self._fd_of(key)
                    if fd is not None:
                        os.pwrite(fd, data[:torn], offset)
                        os.fsync(fd)
            dropped = sum(
                len(page) for state in self.pending.values() for page in state.pages.values()
            )
            self.pending.clear()
            self.dead = True
            self.stats.dropped_bytes += dropped
            self.stats.torn_bytes += torn
            return {"dropped_bytes": dropped, "torn_bytes": torn}

    def _unsynced_bytes(self) -> int:
        return sum(len(page) for state in self.pending.values() for page in state.pages.values())

    def _fd_of(self, key: tuple[int, int]) -> int | None:
        for handle in self.handles.values():
            if handle.key == key:
                return handle.fd
        return None

    # -- files -----------------------------------------------------------------

    def _new_handle(self, fd: int, flags: int) -> int:
        number = self.next_handle
        self.next_handle += 1
        self.handles[number] = Handle(fd, self._key_of(fd), bool(flags & _SYNC_FLAGS))
        return number

    def open(self, path: str, flags: int) -> int:
        with self._mutex:
            self._alive()
            mode = os.O_RDWR if flags & (os.O_WRONLY | os.O_RDWR) else os.O_RDONLY
            fd = os.open(self._real(path), mode | os.O_CLOEXEC)
            return self._new_handle(fd, flags)

    def create(self, path: str, mode: int, flags: int = os.O_RDWR) -> int:
        with self._mutex:
            self._alive()
            fd = os.open(self._real(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
            return self._new_handle(fd, flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._mutex:
            self._alive()
            handle = self.handles[fh]
            return self._read_through(handle.fd, self.pending.get(handle.key), size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._mutex:
            self._alive()
            handle = self.handles[fh]
            self.stats.count(path, "write")
            self._inject("write", path)
            if handle.sync:
                self._inject("write-sync", path)
                self.stats.sync_writes += 1
                # Written and synced now; a cached copy of those bytes must agree.
                state = self.pending.get(handle.key)
                if state is not None:
                    self._buffer(handle.fd, state, data, offset)
                os.pwrite(handle.fd, data, offset)
                os.fdatasync(handle.fd)
                return len(data)
            self.stats.writes += 1
            self._buffer(handle.fd, self._state(handle.key, handle.fd), data, offset)
            self.last_write = (handle.key, offset, bytes(data))
            return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._mutex:
            self._alive()
            if fh is not None:
                handle = self.handles[fh]
                fd, owned = handle.fd, False
            else:
                fd, owned = os.open(self._real(path), os.O_RDWR | os.O_CLOEXEC), True
            try:
                state = self._state(self._key_of(fd), fd)
                for number in [n for n in state.pages if n * PAGE >= length]:
                    del state.pages[number]
                page = state.pages.get(length // PAGE)
                if page is not None:
                    page[length % PAGE :] = bytes(PAGE - length % PAGE)
                state.durable_from = min(state.durable_from, length)
                state.size = length
            finally:
                if owned:
                    os.close(fd)
            return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self._mutex:
            self._alive()
            handle = self.handles[fh]
            self.stats.fsyncs += 1
            self.stats.count(path, "fsync")
            try:
                self._inject("fsync", path)
            except mfusepy.FuseOSError:
                # Linux marks the pages clean after a writeback error: they are gone.
                state = self.pending.pop(handle.key, None)
                if state is not None:
                    self.stats.dropped_bytes += sum(len(p) for p in state.pages.values())
                raise
            self._sync(handle.fd, handle.key)
            return 0

    def flush(self, path: str, fh: int) -> int:
        return 0  # close() makes nothing durable

    def release(self, path: str, fh: int) -> int:
        with self._mutex:
            handle = self.handles.pop(fh, None)
            if handle is not None:
                os.close(handle.fd)
            return 0

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        with self._mutex:
            self._alive()
            info = os.lstat(self._real(path))
            attrs = {
                key: getattr(info, key)
                for key in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino")
            }
            attrs["st_atime"] = info.st_atime_ns
            attrs["st_mtime"] = info.st_mtime_ns
            attrs["st_ctime"] = info.st_ctime_ns
            if stat.S_ISREG(info.st_mode):
                state = self.pending.get((info.st_dev, info.st_ino))
                if state is not None:
                    attrs["st_size"] = state.size
            return attrs

    # -- names (durable at once) ----------------------------------------------

    def readdir(self, path: str, fh: int) -> list[str]:
        with self._mutex:
            self._alive()
            return [".", "..", *os.listdir(self._real(path))]

    def mkdir(self, path: str, mode: int) -> int:
        with self._mutex:
            self._alive()
            os.mkdir(self._real(path), mode)
            return 0

    def rmdir(self, path: str) -> int:
        with self._mutex:
            self._alive()
            os.rmdir(self._real(path))
            return 0

    def _forget_if_last_link(self, real: str) -> None:
        try:
            info = os.lstat(real)
        except FileNotFoundError:
            return
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            # Its inode number may be reused by the next file created.
            self.pending.pop((info.st_dev, info.st_ino), None)

    def unlink(self, path: str) -> int:
        with self._mutex:
            self._alive()
            real = self._real(path)
            self._forget_if_last_link(real)
            os.unlink(real)
            return 0

    def rename(self, old: str, new: str) -> int:
        with self._mutex:
            self._alive()
            self._forget_if_last_link(self._real(new))
            os.rename(self._real(old), self._real(new))
            return 0

    def chmod(self, path: str, mode: int) -> int:
        with self._mutex:
            self._alive()
            os.chmod(self._real(path), mode)
            return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        with self._mutex:
            self._alive()
            os.utime(self._real(path), ns=times)
            return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        with self._mutex:
            self._alive()
            return 0  # names are durable at once

    def statfs(self, path: str) -> dict[str, int]:
        info = os.statvfs(self.backing)
        return {
            key: getattr(info, key)
            for key in (
                "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                "f_files", "f_ffree", "f_favail", "f_namemax",
            )
        }  # fmt: skip


# -- the control socket ----------------------------------------------------------


def serve_control(fs: PowerCutFS, path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=_converse, args=(fs, connection), daemon=True).start()


def _converse(fs: PowerCutFS, connection: socket.socket) -> None:
    with connection, connection.makefile("rwb") as stream:
        for line in stream:
            try:
                answer = _command(fs, json.loads(line))
            except Exception as error:  # a bad command is answered, not fatal
                answer = {"error": repr(error)}
            stream.write(json.dumps(answer).encode() + b"\n")
            stream.flush()


def _command(fs: PowerCutFS, command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    if op == "cut":
        return fs.cut(bool(command.get("tear")), int(command.get("seed", 0)))
    if op == "fail":
        if command["call"] not in ("write", "write-sync", "fsync"):
            raise ValueError(f"unknown call {command['call']!r}")
        rule = Rule(
            command["call"],
            _ERRNOS[command["errno"]],
            command.get("suffix", ""),
            int(command.get("after", 0)),
            command.get("count", 1),
        )
        with fs._mutex:
            fs.rules.append(rule)
        return {"ok": True}
    if op == "clear":
        with fs._mutex:
            fs.rules.clear()
        return {"ok": True}
    if op == "stats":
        with fs._mutex:
            stats = fs.stats
            return {**stats.__dict__, "unsynced_bytes": fs._unsynced_bytes(), "dead": fs.dead}
    raise ValueError(f"unknown op {op!r}")


def main(argv: list[str]) -> None:
    backing, mount, control = argv
    fs = PowerCutFS(backing)
    threading.Thread(target=serve_control, args=(fs, control), daemon=True).start()
    # Every read and write reaches this process (no kernel write-back cache): the page
    # cache that matters is ours.
    mfusepy.FUSE(fs, mount, foreground=True, fsname="powercut", attr_timeout=0.0,
                 entry_timeout=0.0, negative_timeout=0.0)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
