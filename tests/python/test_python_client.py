"""The Python client package (`clients/python`, `wizdata-client`) as a user
gets it: pip-installed into a fresh virtual environment, then used against a
test mesh directly and through the gateway."""

import json
import shutil
import subprocess
import sys
import textwrap
import venv

import pytest

from conftest import ROOT, MeshProcess

# Run inside the fresh environment: nothing from this repository is on its
# path but what pip installed. Prints one JSON object of what it saw.
CLIENT_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import grpc
    import wizdata, wizdata_client
    from wizdata_client import connect, error_details
    from wizdata.registry.v1 import registry_service_pb2 as registry
    from wizdata.streaming.v1 import streaming_service_pb2 as streaming

    direct, gateway, admin_key = sys.argv[1:4]
    seen = {"installed_at": str(Path(wizdata_client.__file__).parent.parent)}
    seen["stubs"] = sorted(p.name for p in Path(list(wizdata.__path__)[0]).rglob("*.pyi"))

    def failure(call):
        try:
            call()
        except grpc.RpcError as error:
            found = error_details(error)
            return {
                "code": found.code.name, "message": found.message,
                "field_violations": [[v.field, v.description] for v in found.field_violations],
                "resource_info": found.resource_info and [found.resource_info.resource_type, found.resource_info.resource_name],
                "retry_delay": found.retry_delay,
                "quota_violations": [v.subject for v in found.quota_violations],
            }
        return None

    with connect(direct, api_key=admin_key) as mesh:
        seen["direct"] = mesh.registry.GetSymbol(registry.GetSymbolRequest(ticker="AAPL"), timeout=10).symbol.ticker
    with connect(gateway, api_key=admin_key) as mesh:
        seen["gateway"] = mesh.registry.GetSymbol(registry.GetSymbolRequest(ticker="AAPL"), timeout=10).symbol.ticker
        seen["not_found"] = failure(lambda: mesh.registry.GetSymbol(registry.GetSymbolRequest(ticker="NOPE.XX"), timeout=10))
        seen["invalid"] = failure(lambda: mesh.registry.ListSymbols(registry.ListSymbolsRequest(page_size=-1), timeout=10))
        events = mesh.streaming.Subscribe(streaming.SubscribeRequest(
            symbols=["BTC/USDT"], channels=[streaming.CHANNEL_QUOTES]), timeout=30)
        quotes = []
        for answer in events:
            if answer.HasField("event"):
                quotes.append(answer.event.quote.symbol)
            if len(quotes) == 2:
                break
        events.cancel()
        seen["quotes"] = quotes
    with connect(gateway, api_key="wiz_not_a_key") as mesh:
        seen["wrong_key"] = failure(lambda: mesh.registry.GetSymbol(registry.GetSymbolRequest(ticker="AAPL"), timeout=10))
    with connect(gateway) as anonymous:
        refusals = [failure(lambda: anonymous.registry.GetSymbol(registry.GetSymbolRequest(ticker="AAPL"), timeout=10))
                    for _ in range(4)]
        seen["anonymous"] = refusals
    print(json.dumps(seen))
""")


@pytest.fixture(scope="module")
def client_environment(tmp_path_factory):
    """A fresh virtual environment with the package pip-installed from
    clients/python, as a user installs it."""
    home = tmp_path_factory.mktemp("client-venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    # From a copy: pip's build writes into the tree it builds.
    source = tmp_path_factory.mktemp("client-source") / "python"
    shutil.copytree(ROOT / "clients" / "python", source)
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    return python


@pytest.fixture(scope="module")
def client_mesh():
    # Two anonymous calls a minute, so the third shows a refusal's details.
    process = MeshProcess(extra_args=["--rate-limit-anonymous", "2/1m"])
    yield process
    process.stop()


def test_the_installed_package_calls_the_mesh_and_decodes_rich_errors(client_environment, client_mesh):
    ran = subprocess.run(
        [str(client_environment), "-c", CLIENT_SCRIPT, client_mesh.target, client_mesh.gateway_target,
         client_mesh.admin_key],
        capture_output=True, text=True, timeout=120, cwd=client_environment.parent,
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)

    assert str(ROOT) not in seen["installed_at"], "the package must come from the fresh environment"
    assert "registry_service_pb2.pyi" in seen["stubs"] and "market_pb2.pyi" in seen["stubs"]
    assert seen["direct"] == seen["gateway"] == "AAPL"
    assert seen["not_found"]["code"] == "NOT_FOUND"
    assert seen["not_found"]["resource_info"] == ["symbol", "NOPE.XX"]
    assert seen["invalid"]["code"] == "INVALID_ARGUMENT"
    assert [field for field, _ in seen["invalid"]["field_violations"]] == ["page_size"]
    assert seen["quotes"] == ["BTC/USDT", "BTC/USDT"]
    assert seen["wrong_key"]["code"] == "UNAUTHENTICATED"
    assert admin_key_not_echoed(seen, client_mesh.admin_key)

    # Two anonymous calls pass, the next are refused with when to retry.
    assert seen["anonymous"][:2] == [None, None]
    refused = seen["anonymous"][2]
    assert refused["code"] == "RESOURCE_EXHAUSTED", refused
    assert 0 < refused["retry_delay"] <= 60
    assert refused["quota_violations"], refused


def admin_key_not_echoed(seen, key):
    return key not in json.dumps(seen)

