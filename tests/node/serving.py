"""Run a real node in-process on 127.0.0.1:0 and talk to it with the generated stubs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from grpc import aio

from redlist.ledger.log import Log
from redlist.node.metrics import NodeMetrics
from redlist.node.server import NodeServer, ServerOptions
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
        return await self.stub.Submit(pb.SubmitRequest(envelopes=envelopes))

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
