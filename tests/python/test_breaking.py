"""The breaking-change gate (`make breaking`, run by `make lint` in CI): a
changed copy of the contract is held to the released one
(proto/baseline.binpb). A removed or renumbered field fails the gate, naming
what broke; an added field or message passes."""

import re
import shutil
import subprocess

import pytest

from conftest import ROOT

SYMBOL = "wizdata/registry/v1/registry_service.proto"


def gate(contract):
    return subprocess.run(["make", "-s", "breaking", f"CONTRACT={contract}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def contract(tmp_path):
    """A copy of proto/ to change, as a commit would."""
    copy = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", copy, ignore=shutil.ignore_patterns("*.binpb"))
    return copy


def change(contract, old, new):
    path = contract / SYMBOL
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_the_contract_as_committed_passes(contract):
    ran = gate(contract)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_an_additive_change_passes(contract):
    change(contract, "  string ticker = 1;\n}\n\nmessage GetSymbolResponse {",
           "  string ticker = 1;\n  // Added: older clients never send it.\n  bool include_delisted = 2;\n}\n\n"
           "message GetSymbolResponse {")
    (contract / "wizdata" / "registry" / "v1" / "extra.proto").write_text(
        'syntax = "proto3";\n\npackage wizdata.registry.v1;\n\nmessage Watchlist {\n  repeated string tickers = 1;\n}\n')
    ran = gate(contract)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_removed_field_fails_naming_it(contract):
    change(contract, '  // Human-readable name, e.g. "Naspers Ltd".\n  string name = 2;\n', "")
    ran = gate(contract)
    assert ran.returncode != 0
    assert re.search(r'Previously present field "2" with name "name" on message "Symbol" was deleted', ran.stdout), ran.stdout


def test_a_renumbered_field_fails_naming_it(contract):
    change(contract, "  string exchange = 3;", "  string exchange = 30;")
    ran = gate(contract)
    assert ran.returncode != 0
    assert 'field "3" with name "exchange" on message "Symbol" was deleted' in ran.stdout, ran.stdout


def test_a_retyped_field_fails_naming_it(contract):
    change(contract, "  string currency = 5;", "  int32 currency = 5;")
    ran = gate(contract)
    assert ran.returncode != 0
    assert 'Field "5" with name "currency" on message "Symbol" changed type from "string" to "int32"' in ran.stdout, ran.stdout
