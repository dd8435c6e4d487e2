"""Per-client rate limiting: the token buckets on a fake clock, and the interceptor on a real node.

The limiter never admits more than ``burst + per_second * elapsed`` calls from one
client, never lets one client's calls cost another anything, always admits a
client that waited as long as it was told, and forgets idle clients. On a node,
a client over its limit gets RESOURCE_EXHAUSTED with the wait in words and in
trailing metadata, on every kind of call; health checks are never limited; and a
node without a configured limit has none.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tests.builders import Town, create_log
from tests.node.serving import Running, metadata_of, rpc_error, run_node

from redlist.ledger.errors import FormatError
from redlist.ledger.log import Log
from redlist.node.admission import CallLimits
from redlist.node.configfile import load_config_file, resolve_settings
from redlist.node.ratelimit import (
    PUSHBACK_METADATA,
    RateLimit,
    RateLimiter,
    peer_host,
)
from redlist.node.server import LEDGER_SERVICE
from redlist.node.serveroptions import ServerOptions
from redlist.proto.contract import CHECK_KEY, RATE_LIMIT_CHECK, RETRY_AFTER_KEY
from redlist.proto.errors import NodeError
from redlist.staff.client import LedgerClient
from redlist.v1 import ledger_pb2 as pb


class FakeClock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(per_second: float, burst: int) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(RateLimit(per_second, burst), clock), clock


# ---------------------------------------------------------------------------
# The buckets


def test_a_quiet_client_gets_its_burst_then_waits() -> None:
    limits, clock = limiter(per_second=2, burst=3)
    assert [limits.admit("a").admitted for _ in range(3)] == [True, True, True]
    refused = limits.admit("a")
    assert not refused.admitted
    assert refused.wait_seconds == pytest.approx(0.5)
    assert refused.wait_ms == 500
    clock.now += 0.5
    assert limits.admit("a").admitted
    assert not limits.admit("a").admitted


def test_refused_calls_take_no_token_and_only_the_first_is_news() -> None:
    limits, clock = limiter(per_second=1, burst=2)
    assert limits.admit("a").admitted and limits.admit("a").admitted
    first, second = limits.admit("a"), limits.admit("a")
    assert (first.first_refusal, second.first_refusal) == (True, False)
    assert first.wait_seconds == second.wait_seconds == pytest.approx(1.0)
    clock.now += 1.0
    assert limits.admit("a").admitted  # the refusals did not push the wait further
    assert limits.admit("a").first_refusal  # a new episode


def test_clients_have_separate_buckets() -> None:
    limits, _ = limiter(per_second=1, burst=2)
    assert limits.admit("a").admitted and limits.admit("a").admitted
    assert not limits.admit("a").admitted
    assert limits.admit("b").admitted and limits.admit("b").admitted


def test_a_bucket_never_holds_more_than_the_burst() -> None:
    limits, clock = limiter(per_second=10, burst=2)
    limits.admit("a")
    clock.now += 3600
    assert [limits.admit("a").admitted for _ in range(3)] == [True, True, False]


def test_idle_clients_are_forgotten() -> None:
    limits, clock = limiter(per_second=1, burst=5)  # a bucket refills within 5 s
    for client in ("a", "b", "c"):
        limits.admit(client)
    assert limits.tracked_clients == 3
    clock.now += 2
    limits.admit("a")  # a sweep is due only after 5 s
    assert limits.tracked_clients == 3
    clock.now += 4
    limits.admit("d")  # "a" was busy 4 s ago and is full again, as are "b" and "c"
    assert limits.tracked_clients == 1


def test_a_clock_going_backwards_grants_nothing() -> None:
    limits, clock = limiter(per_second=1, burst=1)
    assert limits.admit("a").admitted
    clock.now -= 100
    assert not limits.admit("a").admitted


calls = st.lists(
    st.tuples(st.floats(min_value=0, max_value=3), st.sampled_from(["a", "b"])),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(
    per_second=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
    schedule=calls,
)
def test_no_client_ever_exceeds_burst_plus_rate_times_time(
    per_second: float, burst: int, schedule: list[tuple[float, str]]
) -> None:
    limits, clock = limiter(per_second, burst)
    start = clock.now
    admitted = {"a": 0, "b": 0}
    for pause, client in schedule:
        clock.now += pause
        if limits.admit(client).admitted:
            admitted[client] += 1
        allowance = burst + per_second * (clock.now - start)
        assert admitted[client] <= allowance + 1e-9


@settings(max_examples=150, deadline=None)
@given(
    per_second=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
    schedule=calls,
)
@example(per_second=2.5, burst=1, schedule=[(0.0, "a"), (0.0, "a")])  # refill rounding
def test_waiting_as_told_always_gets_in(
    per_second: float, burst: int, schedule: list[tuple[float, str]]
) -> None:
    limits, clock = limiter(per_second, burst)
    for pause, client in schedule:
        clock.now += pause
        decision = limits.admit(client)
        if not decision.admitted:
            clock.now += decision.wait_ms / 1000  # what the client is told, rounded up
            assert limits.admit(client).admitted


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:10.0.0.5:51234", "10.0.0.5"),
        ("ipv6:[::1]:51234", "::1"),
        ("ipv6:%5B2001:db8::7%5D:443", "2001:db8::7"),
        ("unix:/run/redlist.sock", "unix:/run/redlist.sock"),
        ("ipv4:10.0.0.5", "10.0.0.5"),
    ],
)
def test_a_client_address_drops_the_port(peer: str, host: str) -> None:
    assert peer_host(peer) == host


@pytest.mark.parametrize(
    ("per_second", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (float("nan"), 1), (1, 0)]
)
def test_nonsense_limits_are_refused(per_second: float, burst: int) -> None:
    with pytest.raises(FormatError):
        RateLimit(per_second, burst)


def test_the_burst_defaults_to_one_seconds_worth() -> None:
    assert RateLimit.with_default_burst(50).burst == 50
    assert RateLimit.with_default_burst(2.5).burst == 3
    assert RateLimit.with_default_burst(0.1).burst == 1
    assert RateLimit.with_default_burst(50, 7).burst == 7


# ---------------------------------------------------------------------------
# Settings


def test_the_limit_is_off_unless_configured(tmp_path: Path) -> None:
    settings = resolve_settings({}, {"data": tmp_path, "listen": "127.0.0.1:0"})
    assert ServerOptions.from_settings(settings).rate_limit is None


def test_the_limit_comes_from_the_file_or_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text("rate_limit = 20\nrate_burst = 100\n", encoding="utf-8")
    values = load_config_file(path)
    from_file = resolve_settings(values, {"data": tmp_path, "listen": "h:1"})
    assert ServerOptions.from_settings(from_file).rate_limit == RateLimit(20.0, 100)
    overridden = resolve_settings(values, {"data": tmp_path, "listen": "h:1", "rate_limit": 5.0})
    assert ServerOptions.from_settings(overridden).rate_limit == RateLimit(5.0, 100)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rate_limit": 0.0}, "'rate_limit' must be a positive number"),
        ({"rate_limit": -3.0}, "'rate_limit' must be a positive number"),
        ({"rate_limit": 1.0, "rate_burst": 0}, "'rate_burst' must be at least 1"),
        ({"rate_burst": 10}, "'rate_burst' needs 'rate_limit'"),
    ],
)
def test_bad_limits_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        resolve_settings({"data": "d", "listen": "h:1", **values}, {})


# ---------------------------------------------------------------------------
# On a real node


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    with create_log(tmp_path / "data", Town.generate(), setup=True) as opened:
        yield opened


#: Three calls at once, then one every 1000 s: nothing refills during a test.
TIGHT = ServerOptions(rate_limit=RateLimit(0.001, 3))


def run_limited(log: Log, body: Callable[[Running], Awaitable[None]]) -> None:
    run_node(log, body, options=TIGHT)


def test_a_client_over_its_limit_is_told_when_to_retry(log: Log) -> None:
    async def body(running: Running) -> None:
        for _ in range(3):
            await running.checkpoint()
        error = await rpc_error(running.checkpoint())
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        details = error.details() or ""
        assert details.startswith("too many calls from the client at 127.0.0.1: ")
        assert "at most 0.001 calls per second (bursts of 3) from one client" in details
        assert re.search(r"; retry in \d+\.\d s \[rate-limit\]$", details), details
        metadata = metadata_of(error)
        assert metadata[CHECK_KEY] == RATE_LIMIT_CHECK
        assert metadata[RETRY_AFTER_KEY] == metadata[PUSHBACK_METADATA]
        # A token every 1000 s, and the last one was taken a moment ago.
        assert 990_000 < int(metadata[RETRY_AFTER_KEY]) <= 1_000_000

    run_limited(log, body)


def test_every_kind_of_call_is_limited(log: Log) -> None:
    async def body(running: Running) -> None:
        # Admitted: a unary call, a response stream and a bidirectional stream.
        await running.checkpoint()
        leaves = [leaf async for leaf in running.stub.GetLeaves(pb.GetLeavesRequest(end=2))]
        assert [leaf.seq for leaf in leaves] == [0, 1]
        # The reflection and health stubs' type hints lag behind grpc.aio.
        channel: Any = running.channel
        reflection: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        answers = [answer async for answer in reflection.ServerReflectionInfo(iter([request]))]
        listed = {service.name for service in answers[0].list_services_response.service}
        assert LEDGER_SERVICE in listed
        # The bucket is empty now: each kind is refused.
        stream = running.stub.GetLeaves(pb.GetLeavesRequest(end=2))
        refused_stream = await rpc_error(_drain(stream))
        assert refused_stream.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        follow = running.stub.Follow(pb.FollowRequest(start=0))
        assert (await rpc_error(_drain(follow))).code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        submit = await rpc_error(running.submit([b"\x90"]))
        assert submit.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many calls" in (submit.details() or "")
        reflected = reflection.ServerReflectionInfo(iter([request]))
        refused_reflection = await rpc_error(_drain(reflected))
        assert refused_reflection.code() is grpc.StatusCode.RESOURCE_EXHAUSTED

    run_limited(log, body)


async def _drain(stream: AsyncIterable[object]) -> None:
    async for _ in stream:
        pass


def test_health_checks_are_never_limited(log: Log) -> None:
    async def body(running: Running) -> None:
        health: Any = health_pb2_grpc.HealthStub(running.channel)
        for _ in range(10):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=LEDGER_SERVICE))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        for _ in range(3):
            await running.checkpoint()  # the health checks took none of these

    run_limited(log, body)


def test_a_node_without_a_limit_takes_every_call(log: Log) -> None:
    async def body(running: Running) -> None:
        await asyncio.gather(*(running.checkpoint() for _ in range(200)))

    # Room for all 200 at once: this is about rates, not about concurrency.
    room = CallLimits(200, 200, 16, 4, 30.0)
    run_node(log, body, options=ServerOptions(call_limits=room))


def test_the_staff_client_reports_the_limit_as_a_refusal(log: Log) -> None:
    def read_three_times(address: str) -> None:
        with LedgerClient(address, log_key=log.verifier_key) as client:
            for _ in range(4):
                client.latest()

    async def body(running: Running) -> None:
        with pytest.raises(NodeError) as refused:
            await asyncio.to_thread(read_three_times, running.node.address)
        error = refused.value
        assert (error.code, error.check) == ("RESOURCE_EXHAUSTED", RATE_LIMIT_CHECK)
        assert error.retry_after_ms is not None and error.retry_after_ms > 0
        assert "retry in" in error.diagnostics()

    run_limited(log, body)
