"""`connect`: a gRPC channel to the mesh (a service or the gateway) whose
every call carries the API key, and one generated stub per service."""

from __future__ import annotations

from typing import Optional

import grpc

from wizdata.auth.v1 import auth_service_pb2_grpc
from wizdata.indicator.v1 import indicator_service_pb2_grpc
from wizdata.marketdata.v1 import market_data_service_pb2_grpc
from wizdata.registry.v1 import registry_service_pb2_grpc
from wizdata.streaming.v1 import streaming_service_pb2_grpc


class _BearerKey(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <key>` to every call. An interceptor rather
    than call credentials, which gRPC only sends over TLS: the mesh on
    loopback speaks plaintext."""

    def __init__(self, api_key: str):
        self._header = ("authorization", f"Bearer {api_key}")

    def _with_key(self, details):
        return _CallDetails(details, [*(details.metadata or ()), self._header])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_key(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_key(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with_key(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_key(details), requests)

    def __repr__(self) -> str:
        # The key is a secret: never in a repr, a log or a traceback.
        return "_BearerKey(<redacted>)"


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata):
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class Mesh:
    """A channel to the mesh and a stub per service. Close it, or use it as a
    context manager."""

    def __init__(self, channel: grpc.Channel):
        self.channel = channel
        self.registry = registry_service_pb2_grpc.RegistryServiceStub(channel)
        self.market_data = market_data_service_pb2_grpc.MarketDataServiceStub(channel)
        self.indicators = indicator_service_pb2_grpc.IndicatorServiceStub(channel)
        self.streaming = streaming_service_pb2_grpc.StreamingServiceStub(channel)
        self.auth = auth_service_pb2_grpc.AuthServiceStub(channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Mesh":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def connect(
    target: str,
    api_key: Optional[str] = None,
    *,
    credentials: Optional[grpc.ChannelCredentials] = None,
    options: tuple = (),
) -> Mesh:
    """Opens a channel to `target` (host:port of a service or the gateway).
    With `api_key`, every call is made as that key's owner; without, the
    caller is anonymous (reads only, at the anonymous rate limit). Plaintext
    unless `credentials` (e.g. `grpc.ssl_channel_credentials()`) are given."""
    channel = (grpc.secure_channel(target, credentials, options) if credentials
               else grpc.insecure_channel(target, options))
    if api_key:
        channel = grpc.intercept_channel(channel, _BearerKey(api_key))
    return Mesh(channel)
