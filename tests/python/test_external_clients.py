"""The mesh as clients in other languages see it: Python grpcio and `buf curl`."""

import json
import signal

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from conftest import MeshProcess, buf_curl

WIZDATA_SERVICES = {
    "wizdata.auth.v1.AuthService",
    "wizdata.indicator.v1.IndicatorService",
    "wizdata.marketdata.v1.MarketDataService",
    "wizdata.registry.v1.RegistryService",
    "wizdata.streaming.v1.StreamingService",
}
PLATFORM_SERVICES = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


@pytest.mark.parametrize("service", [""] + sorted(WIZDATA_SERVICES))
def test_grpcio_health_check_is_serving(mesh, service):
    with grpc.insecure_channel(mesh.target) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_grpcio_health_check_of_unknown_service_is_not_found(mesh):
    with grpc.insecure_channel(mesh.target) as channel, pytest.raises(grpc.RpcError) as error:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
def test_buf_curl_lists_every_service_by_reflection(mesh, protocol):
    listed = set(buf_curl("--reflect-protocol", protocol, "--list-services", mesh.url).split())
    assert listed == WIZDATA_SERVICES | PLATFORM_SERVICES


def test_buf_curl_calls_the_registry_by_reflection(mesh):
    answer = json.loads(buf_curl(
        "-d", '{"exchange": "JSE", "pageSize": 3}',
        f"{mesh.url}/wizdata.registry.v1.RegistryService/ListSymbols"))
    assert [s["ticker"] for s in answer["symbols"]] == ["AGL", "BHG", "FSR"]
    assert answer["symbols"][0]["assetClass"] == "ASSET_CLASS_EQUITY"
    assert answer["nextPageToken"]


def test_buf_curl_lists_the_methods_of_a_service(mesh):
    methods = buf_curl("--list-methods", f"{mesh.url}").split()
    assert "wizdata.registry.v1.RegistryService/UpdateSymbol" in methods
    assert "wizdata.streaming.v1.StreamingService/Subscribe" in methods


def expect_error_detail(mesh, method, request, code, detail):
    """Calls `method` with raw request bytes, expects `code`, and returns the
    status detail of `detail`'s type. Raw bytes in and out: a client with no
    generated code at all still gets the codes and rich details."""
    with grpc.insecure_channel(mesh.target) as channel, pytest.raises(grpc.RpcError) as error:
        channel.unary_unary(method, request_serializer=None, response_deserializer=None)(request, timeout=5)
    assert error.value.code() == code
    status = rpc_status.from_call(error.value)
    assert any(packed.Unpack(detail) for packed in status.details), status.details
    return detail


def test_grpcio_sees_not_found_with_resource_info(mesh):
    info = expect_error_detail(
        mesh, "/wizdata.registry.v1.RegistryService/GetSymbol",
        b"\x0a\x03XYZ",  # GetSymbolRequest{ticker: "XYZ"}
        grpc.StatusCode.NOT_FOUND, error_details_pb2.ResourceInfo())
    assert (info.resource_type, info.resource_name) == ("symbol", "XYZ")


def test_grpcio_sees_field_violations(mesh):
    bad_request = expect_error_detail(
        mesh, "/wizdata.registry.v1.RegistryService/ListSymbols",
        b"\x08" + b"\xff" * 9 + b"\x01",  # ListSymbolsRequest{page_size: -1}
        grpc.StatusCode.INVALID_ARGUMENT, error_details_pb2.BadRequest())
    assert [v.field for v in bad_request.field_violations] == ["page_size"]


def test_sigterm_stops_the_process_cleanly():
    process = MeshProcess()
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=30) == 0
    process.stop()
