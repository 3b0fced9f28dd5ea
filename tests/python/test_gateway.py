"""The gateway as clients in other languages see it: grpcio over native
gRPC, and `buf curl` over gRPC-Web (HTTP/1.1), both answered as the services
answer directly."""

import json
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from conftest import buf_curl


def test_buf_curl_over_grpc_web_gets_what_native_grpc_gets(mesh):
    path = "wizdata.registry.v1.RegistryService/ListSymbols"
    body = '{"exchange": "JSE", "pageSize": 3}'
    direct = json.loads(buf_curl("-d", body, f"{mesh.url}/{path}"))
    through_gateway = json.loads(buf_curl("-d", body, f"{mesh.gateway_url}/{path}", grpc_web=True))
    assert through_gateway == direct
    assert [s["ticker"] for s in through_gateway["symbols"]] == ["AGL", "BHG", "FSR"]


def test_buf_curl_over_grpc_web_sees_errors_with_their_code(mesh):
    result = buf_curl("-d", '{"ticker": "NOPE"}', f"{mesh.gateway_url}/wizdata.registry.v1.RegistryService/GetSymbol",
                      grpc_web=True, check=False)
    assert result.returncode != 0
    assert '"code": "not_found"' in result.stderr, result.stderr


def test_grpcio_through_the_gateway_matches_direct_and_sees_rate_limit_headers(mesh, stubs):
    from wizdata.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
    request = registry_service_pb2.GetSymbolRequest(ticker="AAPL")
    with grpc.insecure_channel(mesh.target) as direct:
        expected = registry_service_pb2_grpc.RegistryServiceStub(direct).GetSymbol(request, timeout=10)
    with grpc.insecure_channel(mesh.gateway_target) as gateway:
        answer, call = registry_service_pb2_grpc.RegistryServiceStub(gateway).GetSymbol.with_call(request, timeout=10)
    assert answer == expected
    headers = dict(call.initial_metadata())
    assert int(headers["ratelimit-limit"]) == 60
    assert 0 <= int(headers["ratelimit-remaining"]) < 60


def test_grpcio_unknown_method_through_the_gateway_is_unimplemented(mesh):
    with grpc.insecure_channel(mesh.gateway_target) as gateway, pytest.raises(grpc.RpcError) as error:
        gateway.unary_unary("/wizdata.registry.v1.RegistryService/Steal")(b"", timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpcio_bad_credentials_are_refused_at_the_gateway_with_details(mesh, stubs):
    from wizdata.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
    with grpc.insecure_channel(mesh.gateway_target) as gateway, pytest.raises(grpc.RpcError) as error:
        auth_service_pb2_grpc.AuthServiceStub(gateway).WhoAmI(
            auth_service_pb2.WhoAmIRequest(), metadata=[("x-api-key", "wiz_not-a-real-key")], timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status = rpc_status.from_call(error.value)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "API_KEY_INVALID"


def test_the_gateway_has_health_of_its_own_for_probes(mesh):
    with grpc.insecure_channel(mesh.gateway_target) as gateway:
        answer = health_pb2_grpc.HealthStub(gateway).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with urllib.request.urlopen(f"{mesh.gateway_url}/healthz", timeout=5) as alive:
        assert alive.status == 200
    with urllib.request.urlopen(f"{mesh.gateway_url}/readyz", timeout=5) as ready:
        state = json.load(ready)
    assert state["ready"] is True
    assert state["backends"]["wizdata.registry.v1.RegistryService"]["healthy_endpoints"] == 1
