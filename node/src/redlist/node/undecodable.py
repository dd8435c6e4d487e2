"""Requests that are not protobuf at all, answered INVALID_ARGUMENT in words.

:class:`UndecodableRequestInterceptor` moves the decoding of a Ledger request into the
call, where a request that is not the method's protobuf message can be refused like any
other; the status message is cut as every refusal's is (``refusals.bounded_message``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from redlist.node.refusals import bounded_message
from redlist.v1 import ledger_pb2 as pb

# Any call's context: the handlers only abort with it.
_AnyContext = aio.ServicerContext[Any, Any]

LEDGER_METHOD_PREFIX = f"/{pb.DESCRIPTOR.services_by_name['Ledger'].full_name}/"


@dataclass(frozen=True)
class _Undecodable:
    """Stands in for a request whose bytes are not the method's protobuf message."""

    reason: str


class UndecodableRequestInterceptor(aio.ServerInterceptor):
    """Answers a Ledger request that is not valid protobuf with INVALID_ARGUMENT, in words.

    Left to itself, gRPC answers such a request UNKNOWN ("Unexpected <class
    'DecodeError'>") and logs a traceback, which reads as a fault of the node
    rather than of the request. Every Ledger method takes one request message, so
    the decoding is moved into the call, where a refusal can be answered.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[object, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (
            handler is None
            or handler.request_streaming
            or not method.startswith(LEDGER_METHOD_PREFIX)
        ):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _tolerant_handler(handler, method.removeprefix(LEDGER_METHOD_PREFIX))
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _tolerant_handler(
    handler: grpc.RpcMethodHandler[Any, Any], name: str
) -> grpc.RpcMethodHandler[Any, Any]:
    deserializer = handler.request_deserializer
    if deserializer is None:
        return handler

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as error:
            return _Undecodable(str(error))

    async def refuse(request: _Undecodable, context: _AnyContext) -> NoReturn:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            bounded_message(
                f"the {name} request is not a valid protobuf message: {request.reason}"
            ),
        )

    serializers: dict[str, Any] = {
        "request_deserializer": deserialize,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary: Callable[..., Awaitable[Any]] = handler.unary_unary

        async def call(request: Any, context: _AnyContext) -> Any:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(call, **serializers)
    if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
        stream: Callable[..., AsyncIterator[Any]] = handler.unary_stream

        async def call_stream(request: Any, context: _AnyContext) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await refuse(request, context)
            async for response in stream(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(call_stream, **serializers)
    return handler
