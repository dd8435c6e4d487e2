"""Admission on a real node: limits on calls and streams, the byte rate, unread streams,
and refusals that leave no reference cycles behind.

The node listens on ``localhost:0``, which gRPC binds on 127.0.0.1 and ::1 with one
port, so two clients with different addresses (``127.0.0.1`` and ``::1``) can talk
to it: one to reach a limit, the other to show that it is still served.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import platform
import re
import socket
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc import aio
from tests.builders import RuleSpec, Town, corrupt_signature, create_log, submit_request
from tests.node.serving import metadata_of, rpc_error

from redlist.ledger.errors import FormatError, RedlistError
from redlist.ledger.log import Log
from redlist.node import config, leafreads
from redlist.node.admission import CallLimits
from redlist.node.allocator import limit_arenas
from redlist.node.config import ServeSettings
from redlist.node.configfile import load_config_file, resolve_settings
from redlist.node.ratelimit import PUSHBACK_METADATA, RateLimit
from redlist.node.server import NodeServer
from redlist.node.serveroptions import ServerOptions
from redlist.proto.contract import (
    BYTE_RATE_LIMIT_CHECK,
    CHECK_KEY,
    LIMIT_KEY,
    MAX_CALLS_CHECK,
    MAX_CALLS_PER_CLIENT_CHECK,
    MAX_STREAMS_CHECK,
    MAX_STREAMS_PER_CLIENT_CHECK,
    RETRY_AFTER_KEY,
    STREAM_WRITE_TIMEOUT_CHECK,
)
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

Code = grpc.StatusCode


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_two_addresses = pytest.mark.skipif(
    not _has_ipv6_loopback(), reason="needs ::1 beside 127.0.0.1 for a second client"
)


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    with create_log(tmp_path / "data", town, setup=True) as opened:
        yield opened


@pytest.fixture
def long_log(tmp_path: Path, town: Town) -> Iterator[Log]:
    """About 24 MB of leaves: more than gRPC's buffers on both sides take in, so a
    stream nobody reads stalls long before its end."""
    with create_log(tmp_path / "data", town, setup=True) as opened:
        for first in range(0, 400, 100):
            rules = [RuleSpec(f"long-{n}", "x" * 60_000, "m", 1) for n in range(first, first + 100)]
            opened.append([town.set_rule(rule) for rule in rules], now_ms=town.now_ms)
        yield opened


@dataclass
class Clients:
    """One node and two clients of it with different addresses."""

    node: NodeServer
    first: ledger_pb2_grpc.LedgerAsyncStub  # 127.0.0.1
    second: ledger_pb2_grpc.LedgerAsyncStub  # ::1
    first_channel: aio.Channel


def limits(**changed: float) -> CallLimits:
    values: dict[str, float] = {
        "max_calls": 32,
        "max_calls_per_client": 16,
        "max_streams": 16,
        "max_streams_per_client": 4,
        "stream_write_seconds": 30.0,
    }
    values.update(changed)
    return CallLimits(**values)  # type: ignore[arg-type]


def serve(log: Log, options: ServerOptions, body: Callable[[Clients], Awaitable[None]]) -> None:
    async def main() -> None:
        node = await NodeServer.start(log, "localhost:0", options)
        try:
            async with (
                aio.insecure_channel(f"127.0.0.1:{node.port}") as first,
                aio.insecure_channel(f"[::1]:{node.port}") as second,
            ):
                clients = Clients(
                    node,
                    ledger_pb2_grpc.LedgerStub(first),
                    ledger_pb2_grpc.LedgerStub(second),
                    first,
                )
                await asyncio.wait_for(body(clients), 60)
        finally:
            await node.stop(grace=1.0)

    asyncio.run(main())


async def open_follow(stub: ledger_pb2_grpc.LedgerAsyncStub, start: int) -> AsyncIterator[object]:
    """A Follow stream that has delivered its first event and now waits for the log."""
    stream = stub.Follow(pb.FollowRequest(start=start))
    await stream.read()  # the checkpoint at ``start``: the call is admitted and open
    return stream


async def until_answered(call: Callable[[], Awaitable[object]]) -> None:
    """Retry ``call`` while it is refused for a limit (places are given back a moment
    after a call ends); the test's own timeout bounds the wait."""
    while True:
        try:
            await call()
            return
        except aio.AioRpcError as error:
            if error.code() is not Code.RESOURCE_EXHAUSTED:
                raise
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------
# Calls and streams


@needs_two_addresses
def test_a_client_at_its_call_limit_is_refused_and_others_are_served(log: Log) -> None:
    options = ServerOptions(call_limits=limits(max_calls_per_client=2))

    async def body(clients: Clients) -> None:
        held = [await open_follow(clients.first, log.size) for _ in range(2)]
        refused = await rpc_error(clients.first.GetCheckpoint(pb.GetCheckpointRequest()))
        assert refused.code() is Code.RESOURCE_EXHAUSTED
        assert refused.details() == (
            "the client at 127.0.0.1 has 2 calls in progress, the most this node serves "
            "for one client at once; wait for one to finish [max-calls-per-client]"
        )
        assert metadata_of(refused) == {CHECK_KEY: MAX_CALLS_PER_CLIENT_CHECK, LIMIT_KEY: "2"}
        await clients.second.GetCheckpoint(pb.GetCheckpointRequest())  # another client
        held[0].cancel()  # type: ignore[attr-defined]
        await until_answered(lambda: clients.first.GetCheckpoint(pb.GetCheckpointRequest()))

    serve(log, options, body)


@needs_two_addresses
def test_the_node_wide_call_limit_counts_every_client(log: Log) -> None:
    options = ServerOptions(call_limits=limits(max_calls=3, max_calls_per_client=2))

    async def body(clients: Clients) -> None:
        for stub in (clients.first, clients.first, clients.second):
            await open_follow(stub, log.size)
        for stub in (clients.first, clients.second):
            refused = await rpc_error(stub.GetCheckpoint(pb.GetCheckpointRequest()))
            assert refused.code() is Code.RESOURCE_EXHAUSTED
        assert "serving its limit of 3 calls at once" in (refused.details() or "")
        assert metadata_of(refused) == {CHECK_KEY: MAX_CALLS_CHECK, LIMIT_KEY: "3"}

    serve(log, options, body)


@needs_two_addresses
def test_streams_are_limited_per_client_and_in_all(log: Log) -> None:
    options = ServerOptions(call_limits=limits(max_streams=3, max_streams_per_client=2))

    async def body(clients: Clients) -> None:
        for _ in range(2):
            await open_follow(clients.first, log.size)
        refused = await rpc_error(open_follow(clients.first, log.size))
        assert refused.code() is Code.RESOURCE_EXHAUSTED
        assert "has 2 streams open" in (refused.details() or "")
        assert metadata_of(refused)[CHECK_KEY] == MAX_STREAMS_PER_CLIENT_CHECK
        await clients.first.GetCheckpoint(pb.GetCheckpointRequest())  # a call, not a stream
        await open_follow(clients.second, log.size)
        refused = await rpc_error(open_follow(clients.second, log.size))
        assert "limit of 3 streams open" in (refused.details() or "")
        assert metadata_of(refused) == {CHECK_KEY: MAX_STREAMS_CHECK, LIMIT_KEY: "3"}

    serve(log, options, body)


def test_an_unread_stream_is_ended_with_a_status_saying_so(
    long_log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    log = long_log
    options = ServerOptions(call_limits=limits(stream_write_seconds=0.5))
    caplog.set_level(logging.INFO, logger="redlist.node.admission")

    async def body(clients: Clients) -> None:
        stream = clients.first.GetLeaves(pb.GetLeavesRequest(start=0, end=log.size))
        first = await stream.read()  # the call is under way; now it is left unread
        assert first.seq == 0
        while not any("did not read it for 0.5 s" in r.message for r in caplog.records):
            await asyncio.sleep(0.05)
        seqs = [first.seq]
        with pytest.raises(aio.AioRpcError) as ended:
            while (leaf := await stream.read()) is not aio.EOF:
                seqs.append(leaf.seq)
        assert ended.value.code() is Code.RESOURCE_EXHAUSTED
        assert ended.value.details() == (
            "this stream was not read for 0.5 s, so the node ended it; "
            "ask again from the last answer received [stream-write-timeout]"
        )
        assert metadata_of(ended.value)[CHECK_KEY] == STREAM_WRITE_TIMEOUT_CHECK
        assert seqs == list(range(len(seqs))) and len(seqs) < log.size  # whole, in order
        # Asking again from there gets the rest.
        rest = clients.first.GetLeaves(pb.GetLeavesRequest(start=len(seqs), end=log.size))
        assert [leaf.seq async for leaf in rest] == list(range(len(seqs), log.size))

    serve(log, options, body)


# ---------------------------------------------------------------------------
# The byte rate


def test_a_client_that_sent_too_many_bytes_waits_until_its_debt_is_repaid(log: Log) -> None:
    options = ServerOptions(rate_limit_bytes=RateLimit(1000, 1000))

    async def body(clients: Clients) -> None:
        junk = clients.first_channel.unary_unary("/redlist.v1.Ledger/Submit")
        admitted = await rpc_error(junk(b"\xff" * 5000))  # read, then refused as junk
        assert admitted.code() is Code.INVALID_ARGUMENT
        refused = await rpc_error(clients.first.GetCheckpoint(pb.GetCheckpointRequest()))
        assert refused.code() is Code.RESOURCE_EXHAUSTED
        details = refused.details() or ""
        assert details.startswith(
            "too many request bytes from the client at 127.0.0.1: this node takes at most "
            "1000 bytes per second (bursts of 1000) from one client; retry in "
        )
        # 4,000 bytes of debt at 1,000 a second, less the moment since.
        metadata = metadata_of(refused)
        assert metadata[CHECK_KEY] == BYTE_RATE_LIMIT_CHECK
        wait_ms = int(metadata[RETRY_AFTER_KEY])
        assert 3_000 < wait_ms <= 4_000
        assert metadata[PUSHBACK_METADATA] == str(wait_ms)
        assert re.search(r"retry in [34]\.\d s \[rate-limit-bytes\]$", details), details

    serve(log, options, body)


# ---------------------------------------------------------------------------
# Refusals leave nothing for the cycle collector


def test_refused_requests_leave_no_reference_cycles(log: Log, town: Town) -> None:
    """Every kind of refusal, then a full collection that must find no frame, traceback
    or exception: those are what kept refused requests alive (docs/reliability.md)."""
    junk_signatures = [corrupt_signature(town.award("resident-1", "clean-pond"))] * 50

    async def body(clients: Clients) -> None:
        junk = clients.first_channel.unary_unary("/redlist.v1.Ledger/Submit")
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                await rpc_error(junk(b"\xff" * 100_000))  # not protobuf
                await rpc_error(clients.first.Submit(submit_request([b"\x90"])))
                await rpc_error(clients.first.Submit(submit_request(junk_signatures)))
                await rpc_error(clients.first.GetLeaves(pb.GetLeavesRequest(start=9, end=1)).read())
            await asyncio.sleep(0.2)  # let gRPC finish with the calls
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            garbage = list(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        # gRPC's own per-call cycles remain (its call state, the context and the done
        # callback bound to it; the abort it keeps, frames dropped): small, request-free.
        frames = [
            item
            for item in garbage
            if isinstance(item, types.FrameType) and "redlist" in item.f_code.co_filename
        ]
        errors = [item for item in garbage if isinstance(item, RedlistError)]
        kept_bytes = sum(len(item) for item in garbage if isinstance(item, bytes))
        assert (frames, errors) == ([], [])
        assert kept_bytes < 10_000

    serve(log, ServerOptions(), body)


# ---------------------------------------------------------------------------
# Settings


def test_the_default_memory_ceiling_is_modest(tmp_path: Path) -> None:
    settings = resolve_settings({}, {"data": tmp_path, "listen": "127.0.0.1:0"})
    assert settings.max_message_bytes == 4 << 20 and settings.max_batch == 1000
    assert settings.memory_ceiling() == ServerOptions.from_settings(settings).memory_ceiling()
    assert settings.memory_ceiling() < 700 * 1024 * 1024
    # A stream reads ahead one chunk, which is what the ceiling allows for.
    assert config.STREAM_CHUNK_BYTES == leafreads.CHUNK_BYTES


def test_the_limits_come_from_the_file_or_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(
        "max_calls = 10\nmax_calls_per_client = 5\nmax_streams = 4\n"
        "max_streams_per_client = 2\nstream_write_seconds = 5\n"
        "rate_limit_bytes = 100000\n",
        encoding="utf-8",
    )
    settings = resolve_settings(
        load_config_file(path),
        {"data": tmp_path, "listen": "h:1", "max_streams": 6, "max_message_bytes": 1 << 20},
    )
    options = ServerOptions.from_settings(settings)
    assert options.call_limits == CallLimits(10, 5, 6, 2, 5.0)
    # The byte burst lets a quiet client send one request of the largest size.
    assert options.rate_limit_bytes == RateLimit(100_000.0, 1 << 20)
    assert settings.memory_ceiling() == (
        config.BASE_MEMORY + 10 * config.REQUEST_COPIES * (1 << 20) + 6 * (1 << 20)
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_calls": 0}, "'max_calls' must be at least 1"),
        ({"max_streams_per_client": 0}, "'max_streams_per_client' must be at least 1"),
        ({"stream_write_seconds": 0.0}, "'stream_write_seconds' must be a positive number"),
        ({"rate_limit_bytes": -1.0}, "'rate_limit_bytes' must be a positive number"),
        ({"rate_burst_bytes": 10}, "'rate_burst_bytes' needs 'rate_limit_bytes'"),
        ({"rate_limit_bytes": 10.0, "rate_burst_bytes": 0}, "'rate_burst_bytes' must be at"),
    ],
)
def test_bad_limits_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        ServeSettings(data=Path("d"), listen="h:1", **values)  # type: ignore[arg-type]


def test_the_allocator_limit_leaves_an_operators_choice_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_arenas() is False


@pytest.mark.skipif(
    not (sys.platform == "linux" and platform.libc_ver()[0] == "glibc"), reason="glibc's mallopt"
)
def test_the_allocator_limit_is_set_where_the_c_library_is_glibc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas() is True
