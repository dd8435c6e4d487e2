"""Mounting the power-cut file system (``powercutfs.py``) for a test, and talking to it.

:class:`PowerCutMount` runs the file system in its own process over a backing
directory, waits until the mount answers, and sends it commands: cut the power, fail
the next fsync, report its figures. :func:`require_fuse` says whether this machine
can mount it: outside CI a test skips with the reason, in CI (``CI=true``) it fails,
because CI installs what the suite needs (``.ci/install-fuse``).
"""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

FS_PROGRAM = Path(__file__).with_name("powercutfs.py")
MOUNT_TIMEOUT_S = 20.0


def fuse_problem() -> str | None:
    """Why a FUSE file system cannot be mounted here (None: it can)."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian package fuse3; .ci/install-fuse)"
    if ctypes.util.find_library("fuse3") is None:
        return "libfuse3 is missing (Debian package libfuse3-3; .ci/install-fuse)"
    try:
        import mfusepy  # type: ignore[import-untyped]  # noqa: F401
    except (ImportError, OSError) as error:
        return f"mfusepy cannot be loaded (pip install -e '.[test]'): {error}"
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not accessible to this user"
    return None


def require_fuse() -> None:
    """Skip (outside CI) or fail (in CI) the calling test when FUSE cannot be mounted."""
    problem = fuse_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the power-cut file system needs FUSE, and CI must have it: {problem}")
    pytest.skip(f"the power-cut file system needs FUSE: {problem}")


class PowerCutMount:
    """``powercutfs.py`` mounted at ``mount`` over ``backing``, until :meth:`unmount`."""

    def __init__(self, backing: Path, mount: Path, logs: Path, name: str = "fs") -> None:
        self.backing = backing
        self.mount = mount
        backing.mkdir(parents=True, exist_ok=True)
        mount.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to about 100 bytes: keep it short.
        self.control = Path(tempfile.gettempdir()) / f"powercut-{os.getpid()}-{id(self):x}.sock"
        self.control.unlink(missing_ok=True)
        self.stderr_path = logs / f"{name}.err"
        with self.stderr_path.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, FS_PROGRAM, backing, mount, self.control],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self._socket: socket.socket | None = None
        self._wait_mounted()

    def _wait_mounted(self) -> None:
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the power-cut file system exited ({self.process.returncode}): "
                    f"{self.stderr_path.read_text(errors='replace')[-2000:]}"
                )
            if os.path.ismount(self.mount) and self.control.exists():
                return
            time.sleep(0.01)
        self.unmount()
        raise AssertionError(f"the power-cut file system did not mount within {MOUNT_TIMEOUT_S} s")

    def command(self, **command: Any) -> dict[str, Any]:
        """Send one command to the file system and return its answer."""
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._socket.connect(str(self.control))
            self._socket.settimeout(30)
        self._socket.sendall(json.dumps(command).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = self._socket.recv(65536)
            if not chunk:
                raise AssertionError("the power-cut file system closed its control socket")
            answer += chunk
        reply: dict[str, Any] = json.loads(answer)
        if "error" in reply:
            raise AssertionError(f"the power-cut file system refused {command}: {reply['error']}")
        return reply

    def cut(self, *, tear: bool = False, seed: int = 0) -> dict[str, Any]:
        """Cut the power: unsynced writes are gone (``tear``: the last one partly written)."""
        return self.command(op="cut", tear=tear, seed=seed)

    def fail(
        self, call: str, error: str, *, suffix: str = "", after: int = 0, count: int | None = 1
    ) -> None:
        """Fail ``call`` (write, write-sync, fsync) with ``error`` on files ending ``suffix``."""
        self.command(op="fail", call=call, errno=error, suffix=suffix, after=after, count=count)

    def stats(self) -> dict[str, Any]:
        return self.command(op="stats")

    def unmount(self) -> None:
        """Unmount (lazily, so a dead mount goes too) and end the file system's process."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        subprocess.run(
            ["fusermount3", "-u", "-z", str(self.mount)], capture_output=True, check=False
        )
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.control.unlink(missing_ok=True)

    def __enter__(self) -> PowerCutMount:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unmount()
