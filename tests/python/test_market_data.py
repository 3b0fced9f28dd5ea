"""Market data through the real binary: the simulated feed that `make run`
starts, and `wizdata import candles` loading a CSV history."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BINARY, buf_curl

MARKET = "wizdata.marketdata.v1.MarketDataService"
SAMPLE_DATA = os.environ.get("WIZDATA_SAMPLE_DATA")


def call(mesh, method, request):
    return json.loads(buf_curl("-d", json.dumps(request), f"{mesh.url}/{method}", key=mesh.admin_key))


def wizdata(*args):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=120)


def test_the_simulated_feed_backfills_history_and_moves_quotes(mesh):
    deadline = time.monotonic() + 30
    while True:
        answer = call(mesh, f"{MARKET}/GetQuotes", {"symbols": ["AAPL", "BTC/USDT"]})
        if len(answer.get("quotes", [])) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [quote["symbol"] for quote in answer["quotes"]] == ["AAPL", "BTC/USDT"]
    first = answer["quotes"][0]
    assert first["lastPrice"] > 0 and first["bid"] < first["ask"]

    # Two days of backfilled minutes, so the mesh has history to show.
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 36 * 3600))
    bars = call(mesh, f"{MARKET}/GetCandles",
                {"symbol": "AAPL", "interval": "INTERVAL_ONE_HOUR", "startTime": start})
    assert len(bars["candles"]) >= 30

    # Live ticks keep coming: the quote's update time moves on.
    later = first
    while later["updateTime"] == first["updateTime"] and time.monotonic() < deadline + 10:
        time.sleep(0.3)
        later = call(mesh, f"{MARKET}/GetQuote", {"symbol": "AAPL"})["quote"]
    assert later["updateTime"] > first["updateTime"]


def test_import_cli_reports_bad_rows_by_line_and_imports_nothing(mesh, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2001-01-02,2.0,2.5,1.5,2.2,2.2,100\n"
        "2001-01-03,2.0,,1.5,2.2,2.2,100\n"
        "2001-01-04,2.0,1.0,1.5,2.2,2.2,100\n"
        "2001-01-02,2.0,2.5,1.5,2.2,2.2,100\n")
    result = wizdata("import", "candles", str(bad), "--symbol", "MTN", "--interval", "1d", "--target", mesh.url, "--api-key", mesh.admin_key)
    assert result.returncode == 1
    assert f"{bad}:line 3: high is missing" in result.stderr
    assert f"{bad}:line 4: high 1 is below low 1.5" in result.stderr
    assert f"{bad}:line 5: duplicates the bar of line 2" in result.stderr
    answer = call(mesh, f"{MARKET}/GetCandles", {"symbol": "MTN", "interval": "INTERVAL_ONE_DAY",
                                                "startTime": "2001-01-01T00:00:00Z",
                                                "endTime": "2001-02-01T00:00:00Z"})
    assert answer.get("candles", []) == []


@pytest.mark.skipif(not SAMPLE_DATA, reason="WIZDATA_SAMPLE_DATA is unset")
def test_import_cli_loads_the_orcl_history(mesh):
    call(mesh, "wizdata.registry.v1.RegistryService/CreateSymbol", {"symbol": {
        "ticker": "ORCL", "name": "Oracle Corporation", "exchange": "NYSE",
        "assetClass": "ASSET_CLASS_EQUITY", "currency": "USD"}})
    csv_file = Path(SAMPLE_DATA) / "orcl-1995-2014.csv"
    result = wizdata("import", "candles", str(csv_file), "--symbol", "ORCL", "--interval", "1d",
                     "--target", mesh.url, "--api-key", mesh.admin_key)
    assert result.returncode == 0, result.stderr
    rows = csv_file.read_text().strip().splitlines()[1:]
    assert result.stdout.strip() == f"imported {len(rows)} candles of ORCL (0 replaced)"
    answer = call(mesh, f"{MARKET}/GetCandles", {"symbol": "ORCL", "interval": "INTERVAL_ONE_DAY",
                                                "startTime": "1995-01-01T00:00:00Z", "pageSize": 2})
    date, open_, high, low, close, _, volume = rows[0].split(",")
    first = answer["candles"][0]
    assert first["openTime"] == f"{date}T00:00:00Z"
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        float(open_), float(high), float(low), float(close), float(volume))
    assert answer["nextPageToken"]
