"""Run a real node on 127.0.0.1:0: in-process, talking to it with the generated stubs, or
as a ``redlist-node serve`` subprocess."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from grpc import aio
from tests.builders import submit_request

from redlist.ledger.log import Log
from redlist.node.metrics import NodeMetrics
from redlist.node.server import NodeServer
from redlist.node.serveroptions import ServerOptions
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc


@dataclass
class Running:
    """A node serving ``log``, and an async stub connected to it."""

    node: NodeServer
    channel: aio.Channel
    stub: ledger_pb2_grpc.LedgerAsyncStub
    log: Log

    async def submit(self, envelopes: list[bytes]) -> pb.SubmitResponse:
        return await self.stub.Submit(submit_request(envelopes))

    async def checkpoint(self) -> str:
        return (await self.stub.GetCheckpoint(pb.GetCheckpointRequest())).checkpoint


def run_node(
    log: Log,
    body: Callable[[Running], Awaitable[None]],
    *,
    options: ServerOptions | None = None,
    metrics: NodeMetrics | None = None,
    timeout: float = 20.0,
) -> None:
    """Start a node for ``log``, run ``body`` against it, stop the node (not the log)."""

    async def main() -> None:
        node = await NodeServer.start(log, "127.0.0.1:0", options, metrics)
        try:
            async with aio.insecure_channel(node.address) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                await asyncio.wait_for(body(Running(node, channel, stub, log)), timeout)
        finally:
            await node.stop(grace=1.0)

    asyncio.run(main())


async def rpc_error(awaitable: Awaitable[object]) -> aio.AioRpcError:
    """The error an RPC fails with (the test fails if it succeeds)."""
    try:
        await awaitable
    except aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded, but it should have failed")


def metadata_of(error: aio.AioRpcError) -> dict[str, str]:
    trailing = error.trailing_metadata() or ()
    return {str(key): str(value) for key, value in trailing}


#: Where the console scripts of this environment are.
BIN = Path(sys.executable).parent


@contextmanager
def serve_in_subprocess(
    data_dir: Path,
    *flags: str | Path,
    output: Path,
    listen: str = "127.0.0.1:0",
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> Iterator[str]:
    """``redlist-node serve --data DATA_DIR --listen LISTEN FLAGS...`` in a subprocess.

    Yields the address it serves on. Its stdout and stderr are written to
    ``serve.out`` and ``serve.err`` in the directory ``output``; it is stopped on exit.
    ``started`` is given the process once it serves (to watch it, say).
    """
    stdout = output / "serve.out"
    with stdout.open("wb") as out, (output / "serve.err").open("wb") as err:
        process = subprocess.Popen(
            [BIN / "redlist-node", "serve", "--data", data_dir, "--listen", listen, *flags],
            stdout=out,
            stderr=err,
        )
    try:
        address = _wait_for_address(process, stdout)
        if started is not None:
            started(process)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_address(process: subprocess.Popen[bytes], stdout: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"^serving log .* on (\S+)$", stdout.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"the node did not start: {stdout.read_text()}")
