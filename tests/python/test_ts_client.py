"""The TypeScript client package (`clients/ts`, `@wizdata/client`) from Node
against a test mesh: connect-web's gRPC-Web and Connect transports, and
connect-node's native gRPC, each with rich errors and a live stream."""

import json
import subprocess

import pytest

from conftest import ROOT, MeshProcess


@pytest.fixture(scope="module")
def ts_mesh():
    # Two anonymous calls a minute, so the third shows a refusal's details.
    process = MeshProcess(extra_args=["--rate-limit-anonymous", "2/1m"])
    yield process
    process.stop()


def test_the_typescript_client_from_node(ts_mesh):
    assert (ROOT / "clients" / "ts" / "dist" / "index.js").exists(), "run `make clients/ts/dist/index.js`"
    ran = subprocess.run(
        ["node", str(ROOT / "tests" / "node" / "wizdata_client.mjs"), ts_mesh.gateway_url, ts_mesh.admin_key],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert ts_mesh.admin_key not in ran.stdout + ran.stderr

    for transport in ("grpc_web", "connect", "grpc"):
        answer = seen[transport]
        assert answer["ticker"] == "AAPL", (transport, answer)
        assert answer["notFound"]["codeName"] == "NOT_FOUND"
        assert answer["notFound"]["resourceInfo"] == {
            "resourceType": "symbol", "resourceName": "NOPE.XX", "description": answer["notFound"]["resourceInfo"]["description"]}
        assert answer["invalid"]["codeName"] == "INVALID_ARGUMENT"
        assert [v["field"] for v in answer["invalid"]["fieldViolations"]] == ["page_size"]
        assert "SBK" in answer["search"], answer["search"]
        assert answer["quotes"] == ["BTC/USDT", "BTC/USDT"]

    assert seen["wrong_key"]["codeName"] == "UNAUTHENTICATED"
    assert seen["anonymous"][:2] == [None, None]
    refused = seen["anonymous"][2]
    assert refused["codeName"] == "RESOURCE_EXHAUSTED", refused
    assert 0 < refused["retryDelayMs"] <= 60_000
    assert refused["quotaViolations"], refused
    assert seen["rate_limit"]["limit"] == 2 and seen["rate_limit"]["remaining"] == 0
