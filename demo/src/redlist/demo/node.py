"""The town's node as a real process: ``redlist-node serve`` on loopback.

The node runs as its own process, exactly as a town runs it, with its output
(the ``serving ... on HOST:PORT`` line, then its log lines) in a file the reader
can look at. The port is picked by the system (``--listen 127.0.0.1:0``) and read
back from that line. It is stopped the way an operator stops it, with SIGTERM,
and must then exit 0 after shutting down gracefully.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger.errors import RedlistError

SERVING = re.compile(r"^serving log (?P<origin>\S+) \((?P<size>\d+) entries\) on (?P<address>\S+)$")
#: What ``redlist-node mirror`` prints for each log it mirrors, once serving.
MIRRORING = re.compile(
    r"^mirroring log (?P<origin>\S+) \((?P<size>\d+) entries\) from (?P<source>\S+) "
    r"on (?P<address>\S+)$"
)
#: How long the node may take to start serving, and to stop after SIGTERM. Starting
#: takes about a second; a shared machine under load has been seen to need a minute.
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.05
#: Lines of the node's output quoted when it fails.
TAIL_LINES = 12


def serve_argv(data: Path) -> list[str]:
    """The ``redlist-node`` arguments that serve ``data`` on a free loopback port."""
    return ["serve", "--data", str(data), "--listen", "127.0.0.1:0"]


@dataclass
class NodeProcess:
    """A running ``redlist-node serve`` and the address it serves on."""

    process: subprocess.Popen[bytes]
    output: Path
    #: The node's ``serving log ... on HOST:PORT`` line, and the address in it.
    banner: str = ""
    address: str = ""

    @classmethod
    def start(
        cls,
        data: Path,
        output: Path,
        argv: Sequence[str] | None = None,
        *,
        banner: re.Pattern[str] = SERVING,
        banners: int = 1,
    ) -> NodeProcess:
        """Start serving ``data``; return once the node says where it listens.

        ``argv``: the ``redlist-node`` arguments, when not just ``serve_argv(data)``.
        ``banner``: the line saying where it serves (its group ``address``), printed
        ``banners`` times (a mirror of several logs prints one per log); ``banner`` and
        ``address`` are then the first. The node's output and errors both go to ``output``.
        """
        arguments = serve_argv(data) if argv is None else list(argv)
        command = [sys.executable, "-m", "redlist.node.cli", *arguments]
        with output.open("wb") as sink:
            process = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
            )
        node = cls(process, output)
        try:
            node.banner, node.address = node._wait_for_banner(banner, banners)
        except BaseException:
            node.close()
            raise
        return node

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """Send SIGTERM and wait for the node to exit; its exit status."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RedlistError(
                f"the node (process {self.pid}) did not stop within {STOP_TIMEOUT_S:.0f} s "
                f"of SIGTERM and was killed; {self.tail()}"
            ) from None

    def close(self) -> None:
        """Make sure the process is gone (after a failure): SIGTERM, then SIGKILL."""
        if not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self) -> str:
        """The node's last output lines, for an error message."""
        try:
            lines = self.output.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        if not lines:
            return f"it printed nothing (see {self.output})"
        return f"its last words ({self.output}): " + " | ".join(lines[-TAIL_LINES:])

    def _wait_for_banner(self, banner: re.Pattern[str], count: int) -> tuple[str, str]:
        deadline = time.monotonic() + START_TIMEOUT_S
        found: list[tuple[str, re.Match[str]]] = []
        while time.monotonic() < deadline:
            text = self.output.read_text(encoding="utf-8", errors="replace")
            found = [(line, match) for line in text.splitlines() if (match := banner.match(line))]
            if len(found) >= count:
                line, match = found[0]
                return line, match["address"]
            if not self.running:
                raise RedlistError(
                    f"the node exited with status {self.process.returncode} before serving; "
                    f"{self.tail()}"
                )
            time.sleep(POLL_S)
        raise RedlistError(
            f"the node did not start serving within {START_TIMEOUT_S:.0f} s (it said where it "
            f"serves {len(found)} of {count} times); {self.tail()}"
        )
