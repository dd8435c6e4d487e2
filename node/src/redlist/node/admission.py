"""Admission: what a node lets in before reading a request, so its memory has a ceiling.

Every call passes :class:`AdmissionInterceptor`, the outermost interceptor, which
decides before a single byte of the request is read (the call's handler is given
to gRPC as a request-streaming one, so gRPC hands over the call unread):

* **concurrent calls**, at most ``max_calls`` in all and ``max_calls_per_client``
  from one client;
* **open streams** (calls answered with a stream: ``GetLeaves``, ``Follow``, health
  ``Watch``, reflection), at most ``max_streams`` in all and
  ``max_streams_per_client`` from one client; a stream also counts as a call;
* the client's **rate limits** when configured (:mod:`redlist.node.ratelimit`):
  one token per call, and, for request bytes, a client in debt (it sent more bytes
  than its byte bucket held) waits until the debt is repaid. The request's size is
  known only once read, so it is charged then.

A call over any limit is answered ``RESOURCE_EXHAUSTED`` at once, in words saying
which limit, with its check (``max-calls``, ``max-calls-per-client``,
``max-streams``, ``max-streams-per-client``, ``rate-limit``, ``rate-limit-bytes``;
``redlist.proto.contract``) in the message and the trailing metadata, and the
limit's value in ``redlist-limit``; a rate refusal carries the wait instead, in
milliseconds, in ``redlist-retry-after-ms`` and ``grpc-retry-pushback-ms`` (gRFC A6). A call
holds its places until gRPC has finished with it (its status sent or the client
gone), not merely until its handler returns.

**Slow readers.** A stream is written one message at a time: the next answer is
made only once the previous one was taken by the transport (the stream is paced
by its reader). A write that has not completed within ``stream_write_seconds``
ends the stream (``RESOURCE_EXHAUSTED``, "not read for N s", check
``stream-write-timeout``); what the client
received so far is whole, and it may ask again from there.

**Refusals leave no garbage.** ``context.abort`` raises an exception that gRPC
keeps with the call, and its traceback keeps the handler's frames, which keep the
call and the request: a reference cycle per refused call, freed only by the cyclic
garbage collector. The interceptor drops that traceback as the exception leaves
the handler (:mod:`redlist.node.detach`).

Which client a call comes from: :func:`redlist.node.ratelimit.client_of`.
Health checks count towards the concurrency limits (a health request is read like
any other, so it takes memory like any other) but never towards the rate limits.

The interceptor runs on the server's event loop only, so its counts need no lock.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from grpc import aio

from redlist.ledger.errors import FormatError
from redlist.node.detach import without_frames
from redlist.node.ratelimit import EXEMPT_SERVICES, PUSHBACK_METADATA, RateLimiter, client_of
from redlist.proto.contract import (
    BYTE_RATE_LIMIT_CHECK,
    MAX_CALLS_CHECK,
    MAX_CALLS_PER_CLIENT_CHECK,
    MAX_STREAMS_CHECK,
    MAX_STREAMS_PER_CLIENT_CHECK,
    RATE_LIMIT_CHECK,
    STREAM_WRITE_TIMEOUT_CHECK,
    RefusalDetails,
)

logger = logging.getLogger(__name__)

_Context = aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class CallLimits:
    """How many calls and streams a node serves at once, and how long a write may wait."""

    max_calls: int
    max_calls_per_client: int
    max_streams: int
    max_streams_per_client: int
    #: Seconds one message of a stream may wait for the client to read it.
    stream_write_seconds: float

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_calls_per_client", "max_streams", "max_streams_per_client"):
            if getattr(self, name) < 1:
                raise FormatError(f"'{name}' must be at least 1, not {getattr(self, name)}")
        if not (self.stream_write_seconds > 0 and math.isfinite(self.stream_write_seconds)):
            raise FormatError(
                f"'stream_write_seconds' must be a positive number of seconds, "
                f"not {self.stream_write_seconds}"
            )

    def describe(self) -> str:
        return (
            f"{self.max_calls} calls ({self.max_calls_per_client} per client), "
            f"{self.max_streams} streams ({self.max_streams_per_client} per client), "
            f"writes wait {self.stream_write_seconds:g} s"
        )


@dataclass(frozen=True)
class _Refusal:
    """A refusal in words, and its details for programs (``redlist.proto.contract``)."""

    words: str
    details: RefusalDetails

    @property
    def message(self) -> str:
        return f"{self.words} [{self.details.check}]"

    def metadata(self) -> tuple[tuple[str, str], ...]:
        metadata = self.details.to_metadata()
        if self.details.retry_after_ms is None:
            return metadata
        return (*metadata, (PUSHBACK_METADATA, str(self.details.retry_after_ms)))


class _Counts:
    """Calls and streams in progress, in all and per client."""

    def __init__(self) -> None:
        self.calls = 0
        self.streams = 0
        self.client_calls: dict[str, int] = {}
        self.client_streams: dict[str, int] = {}

    def enter(self, client: str, streaming: bool) -> None:
        self.calls += 1
        self.client_calls[client] = self.client_calls.get(client, 0) + 1
        if streaming:
            self.streams += 1
            self.client_streams[client] = self.client_streams.get(client, 0) + 1

    def leave(self, client: str, streaming: bool) -> None:
        self.calls -= 1
        _decrement(self.client_calls, client)
        if streaming:
            self.streams -= 1
            _decrement(self.client_streams, client)


def _decrement(counts: dict[str, int], client: str) -> None:
    left = counts[client] - 1
    if left:
        counts[client] = left
    else:
        del counts[client]  # only clients with calls in progress are kept


class AdmissionInterceptor(aio.ServerInterceptor):
    """Admits a call only within the node's limits (see the module docstring)."""

    def __init__(
        self,
        limits: CallLimits,
        *,
        calls: RateLimiter | None = None,
        request_bytes: RateLimiter | None = None,
        rate_exempt_services: frozenset[str] = EXEMPT_SERVICES,
    ) -> None:
        self.limits = limits
        self._calls = calls
        self._bytes = request_bytes
        self._rate_exempt = tuple(f"/{service}/" for service in rate_exempt_services)
        self._counts = _Counts()

    @property
    def calls_in_progress(self) -> int:
        return self._counts.calls

    @property
    def streams_in_progress(self) -> int:
        return self._counts.streams

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        rated = not handler_call_details.method.startswith(self._rate_exempt)
        return _Call(self, handler, rated).handler()

    # -- the decisions (each call is one _Call) ----------------------------------

    def _admit(self, client: str, streaming: bool, rated: bool) -> _Refusal | None:
        limits, counts = self.limits, self._counts
        if counts.calls >= limits.max_calls:
            return _Refusal(
                f"the node is serving its limit of {limits.max_calls} calls at once; "
                "try again shortly",
                RefusalDetails(MAX_CALLS_CHECK, limit=limits.max_calls),
            )
        if counts.client_calls.get(client, 0) >= limits.max_calls_per_client:
            return _Refusal(
                f"{client} has {limits.max_calls_per_client} calls in progress, the most "
                "this node serves for one client at once; wait for one to finish",
                RefusalDetails(MAX_CALLS_PER_CLIENT_CHECK, limit=limits.max_calls_per_client),
            )
        if streaming:
            if counts.streams >= limits.max_streams:
                return _Refusal(
                    f"the node has its limit of {limits.max_streams} streams open; "
                    "try again shortly",
                    RefusalDetails(MAX_STREAMS_CHECK, limit=limits.max_streams),
                )
            if counts.client_streams.get(client, 0) >= limits.max_streams_per_client:
                return _Refusal(
                    f"{client} has {limits.max_streams_per_client} streams open, the most "
                    "this node keeps open for one client; finish or cancel one first",
                    RefusalDetails(
                        MAX_STREAMS_PER_CLIENT_CHECK, limit=limits.max_streams_per_client
                    ),
                )
        if rated:
            if self._bytes is not None:
                debt = self._bytes.admit(client, cost=0)
                if not debt.admitted:
                    if debt.first_refusal:
                        logger.info("byte rate limit reached by %s", client)
                    return _Refusal(
                        f"too many request bytes from {client}: this node takes at most "
                        f"{self._bytes.limit.describe('bytes')} from one client; retry in "
                        f"{debt.wait_ms / 1000:.1f} s",
                        RefusalDetails(BYTE_RATE_LIMIT_CHECK, retry_after_ms=debt.wait_ms),
                    )
            if self._calls is not None:
                decision = self._calls.admit(client)
                if not decision.admitted:
                    if decision.first_refusal:
                        logger.info("rate limit reached by %s", client)
                    return _Refusal(
                        f"too many calls from {client}: this node takes at most "
                        f"{self._calls.limit.describe()} from one client; retry in "
                        f"{decision.wait_ms / 1000:.1f} s",
                        RefusalDetails(RATE_LIMIT_CHECK, retry_after_ms=decision.wait_ms),
                    )
        self._counts.enter(client, streaming)
        return None

    def _leave(self, client: str, streaming: bool) -> None:
        self._counts.leave(client, streaming)

    def _charge(self, client: str, size: int, rated: bool) -> None:
        if rated and self._bytes is not None and size:
            self._bytes.charge(client, size)


class _Release:
    """Gives a call's places back, once (gRPC calls it when the call is over)."""

    __slots__ = ("_admission", "_client", "_streaming")

    def __init__(self, admission: AdmissionInterceptor, client: str, streaming: bool) -> None:
        self._admission: AdmissionInterceptor | None = admission
        self._client = client
        self._streaming = streaming

    def __call__(self, _context: object) -> None:
        if self._admission is not None:
            self._admission._leave(self._client, self._streaming)
            self._admission = None


class _Stalled(Exception):
    """A stream's write did not complete in time."""


class _Call:
    """One call's handler: admission, the request read by hand, paced writes."""

    def __init__(
        self, admission: AdmissionInterceptor, inner: grpc.RpcMethodHandler[Any, Any], rated: bool
    ) -> None:
        self._admission = admission
        self._inner = inner
        self._rated = rated
        self._received = 0  # request bytes read so far
        self._charged = 0
        self._client = ""
        self._admitted = False

    def handler(self) -> grpc.RpcMethodHandler[Any, Any]:
        inner = self._inner
        deserializer = inner.request_deserializer
        serializers: dict[str, Any] = {
            "request_deserializer": self._counting(deserializer),
            "response_serializer": inner.response_serializer,
        }
        # Request-streaming shapes, so that gRPC does not read the request before
        # the call is admitted; the response side keeps its shape.
        if inner.response_streaming:
            return grpc.stream_stream_rpc_method_handler(self._streamed, **serializers)
        return grpc.stream_unary_rpc_method_handler(self._unary, **serializers)

    def _counting(self, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
        def deserialize(data: bytes) -> Any:
            self._received += len(data)
            return data if deserializer is None else deserializer(data)

        return deserialize

    # -- the two shapes -----------------------------------------------------------

    async def _unary(self, requests: Any, context: _Context) -> Any:
        if not self._enter(context, streaming=False):
            return None
        try:
            inner = self._inner
            behaviour: Callable[..., Any]
            argument: Any
            if inner.request_streaming:
                behaviour = _present(inner.stream_unary)
                argument = _Counted(requests, self)
            else:
                behaviour = _present(inner.unary_unary)
                argument = await self._read_one(context)
            result = behaviour(argument, context)
            del argument
            return await result if inspect.isawaitable(result) else result
        except aio.AbortError as error:
            _forget(error)
            return None  # gRPC raises its record of the abort again, frames dropped

    async def _streamed(self, requests: Any, context: _Context) -> None:
        if not self._enter(context, streaming=True):
            return
        inner = self._inner
        behaviour: Callable[..., Any]
        argument: Any
        try:
            if inner.request_streaming:
                behaviour = _present(inner.stream_stream)
                argument = _Counted(requests, self)
            else:
                behaviour = _present(inner.unary_stream)
                argument = await self._read_one(context)
            paced = _PacedContext(context, self._admission.limits.stream_write_seconds)
            if inspect.isasyncgenfunction(behaviour):
                responses = behaviour(argument, paced)
                del argument
                try:
                    async for response in responses:
                        await paced.write(response)
                finally:
                    await responses.aclose()
            else:
                result = behaviour(argument, paced)
                del argument
                await result
        except _Stalled:
            seconds = self._admission.limits.stream_write_seconds
            logger.info("stream ended: %s did not read it for %g s", self._client, seconds)
            context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
            context.set_details(
                f"this stream was not read for {seconds:g} s, so the node ended it; "
                f"ask again from the last answer received [{STREAM_WRITE_TIMEOUT_CHECK}]"
            )
            limit = RefusalDetails(STREAM_WRITE_TIMEOUT_CHECK, limit=math.ceil(seconds))
            context.set_trailing_metadata(limit.to_metadata())
        except aio.AbortError as error:
            _forget(error)

    # -- helpers --------------------------------------------------------------------

    def _enter(self, context: _Context, streaming: bool) -> bool:
        """Admit the call (and arrange to let go of it), or answer it with a refusal."""
        self._client = client_of(context)
        refusal = self._admission._admit(self._client, streaming, self._rated)
        if refusal is not None:
            context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
            context.set_details(refusal.message)
            context.set_trailing_metadata(refusal.metadata())
            return False
        # Places are given back when gRPC is done with the call (its answer sent, or
        # the client gone), which for an answer nobody reads is later than when the
        # handler returns. gRPC keeps the callback with the call's context, which it
        # binds to the callback: a small cycle (no request in it) that the collector
        # frees like any other short-lived garbage.
        release: Any = _Release(self._admission, self._client, streaming)
        context.add_done_callback(release)
        return True

    async def _read_one(self, context: _Context) -> Any:
        request = await context.read()
        self.charge()
        if request is aio.EOF:
            # The call ended before its request arrived: the client went away, or sent
            # more than max_message_bytes and gRPC already answered RESOURCE_EXHAUSTED.
            # There is nothing to answer; this is how gRPC's own unary handling ends
            # such a call (quietly, without sending a second status).
            raise asyncio.CancelledError
        return request

    def charge(self) -> None:
        """Charge the request bytes read since the last charge to the client."""
        fresh, self._charged = self._received - self._charged, self._received
        self._admission._charge(self._client, fresh, self._rated)


def _present(behaviour: Callable[..., Any] | None) -> Callable[..., Any]:
    """The behaviour of the handler's shape (gRPC sets exactly that one)."""
    if behaviour is None:
        raise TypeError("a method handler without the behaviour of its own shape")
    return behaviour


def _forget(error: BaseException) -> None:
    """Drop the frames of an abort that gRPC keeps with the call (see the module docstring)."""
    without_frames(error)


class _Counted:
    """A request stream whose bytes are charged to the client as they are read."""

    def __init__(self, requests: Any, call: _Call) -> None:
        self._requests = requests
        self._call = call

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        async for request in self._requests:
            self._call.charge()
            yield request

    def __iter__(self) -> NoReturn:  # the node's handlers are all async
        raise TypeError("the request stream is asynchronous")


class _PacedContext:
    """A call's context whose ``write`` gives up after ``seconds`` (see the module
    docstring); everything else is the call's own context."""

    def __init__(self, context: _Context, seconds: float) -> None:
        self._context = context
        self._seconds = seconds

    async def write(self, message: Any) -> None:
        try:
            await asyncio.wait_for(self._context.write(message), self._seconds)
        except TimeoutError:
            raise _Stalled from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)
