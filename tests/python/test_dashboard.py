"""The dashboard (web/, served by the gateway at /) in a real browser:
Debian's Chromium driven by Playwright, against test meshes. Each test reads
what the page shows and compares it with what the mesh answers; screenshots
go to target/dashboard/ for a person to look at."""

import re
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from conftest import ROOT, MeshProcess
from test_browser import CHROMIUM

playwright_api = pytest.importorskip("playwright.sync_api")

SCREENSHOTS = ROOT / "target" / "dashboard"
DASHBOARD = ROOT / "web" / "dist"
# The feed trades these two only, so every other symbol's candles are the
# ones a test writes.
FEED = ["--feed-symbols", "BTC/USDT,ETH/USDT", "--dashboard-dir", str(DASHBOARD)]
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "chromium is not installed: run `make tools`"
    assert (DASHBOARD / "index.html").exists(), "the dashboard is not built: run `make web`"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def dashboard_mesh():
    process = MeshProcess([*FEED, "--rate-limit-anonymous", "100000/1m", "--rate-limit-per-service", "100000/1m"])
    yield process
    process.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 850})
    opened = context.new_page()
    yield opened
    context.close()


def open_dashboard(page, mesh, query=""):
    page.goto(f"{mesh.gateway_url}/{query}")
    page.wait_for_function("() => window.wizdata !== undefined", timeout=WAIT_MS)


# Records every call the page sends (when, in ms since navigation, and to
# which method), before any of the page's own scripts run.
RECORD_CALLS = """
window.calls = [];
const sendFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  const url = typeof input === "string" ? input : input.url;
  if (url.includes("/wizdata.")) window.calls.push({ at: performance.now(), method: url.split("/").pop() });
  return sendFetch(input, init);
};
"""


def calls_sent(page):
    return page.evaluate("() => window.calls")


def shot(page, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def metadata(mesh):
    return [("authorization", f"Bearer {mesh.admin_key}")]


def seed_history(mesh, stubs, symbol, minutes):
    """One trade a minute for `minutes` closed 1m bars of `symbol`, ending
    ten minutes ago; returns their prices."""
    from wizdata.marketdata.v1 import market_data_service_pb2 as pb
    from wizdata.marketdata.v1 import market_data_service_pb2_grpc as rpc

    end = (int(time.time()) // 60 - 10) * 60
    prices = [100 + (i * 7919 % 23) * 0.5 for i in range(minutes)]
    ticks = [pb.Tick(symbol=symbol, time=Timestamp(seconds=end - (minutes - i) * 60 + 5),
                     trade=pb.Trade(price=price, size=1 + i % 3)) for i, price in enumerate(prices)]
    with grpc.insecure_channel(mesh.target) as channel:
        answer = rpc.MarketDataServiceStub(channel).IngestTicks(
            iter([pb.IngestTicksRequest(ticks=ticks)]), metadata=metadata(mesh), timeout=30)
    assert answer.accepted == minutes, answer
    return prices


def test_the_gateway_serves_the_built_page(dashboard_mesh):
    import urllib.request

    with urllib.request.urlopen(f"{dashboard_mesh.gateway_url}/") as answer:
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["cache-control"] == "no-cache"
        assert b'<div id="chart"' in answer.read()


def test_search_finds_sbk_for_bank_and_filters_by_exchange(page, dashboard_mesh):
    open_dashboard(page, dashboard_mesh)
    page.fill("#search", "bank")
    page.wait_for_selector('#results li[data-ticker="SBK"]', timeout=WAIT_MS)
    page.click('#exchanges button[data-exchange="NASDAQ"]')
    page.wait_for_selector("#results li.empty", timeout=WAIT_MS)
    page.click('#exchanges button[data-exchange="JSE"]')
    page.wait_for_selector('#results li[data-ticker="SBK"]', timeout=WAIT_MS)
    shot(page, "search")


def test_a_search_with_characters_that_need_escaping_is_answered(page, dashboard_mesh):
    open_dashboard(page, dashboard_mesh)
    page.fill("#search", 'a&b=%2F?#"<x>')
    page.wait_for_selector("#results li.empty", timeout=WAIT_MS)
    page.fill("#search", "BTC/USDT")
    page.wait_for_selector('#results li[data-ticker="BTC/USDT"]', timeout=WAIT_MS)
    assert page.is_hidden("#notice") or page.get_attribute("#notice", "data-kind") != "error"


def test_the_quote_board_and_the_open_bar_move(page, dashboard_mesh):
    open_dashboard(page, dashboard_mesh, "?symbol=BTC/USDT&watch=BTC/USDT,ETH/USDT")
    page.wait_for_function("() => wizdata.quotes()['BTC/USDT'].last !== '–'", timeout=WAIT_MS)
    first = page.evaluate("() => wizdata.quotes()['BTC/USDT'].last")
    page.wait_for_function(f"() => wizdata.quotes()['BTC/USDT'].last !== {first!r}", timeout=WAIT_MS)
    page.wait_for_selector("#quotes tr.flash-up, #quotes tr.flash-down", state="attached", timeout=WAIT_MS)
    assert page.evaluate("() => wizdata.quotes()['BTC/USDT'].stale") is False
    assert page.text_content("#connection") == "live"
    shot(page, "quotes")

    # The chart's open bar follows the trades: its close moves, its open time stays
    # (or a new bar opens at the minute).
    open_bar = page.evaluate("() => wizdata.chart().candles.at(-1)")
    page.wait_for_function(
        f"() => {{ const bar = wizdata.chart().candles.at(-1); return bar.close !== {open_bar['close']}"
        f" || bar.time > {open_bar['time']}; }}", timeout=WAIT_MS)


def test_the_chart_holds_exactly_the_candles_of_get_candles_and_the_overlay_matches(page, dashboard_mesh, stubs):
    from wizdata.indicator.v1 import indicator_service_pb2 as ipb
    from wizdata.indicator.v1 import indicator_service_pb2_grpc as irpc
    from wizdata.marketdata.v1 import market_data_service_pb2 as pb
    from wizdata.marketdata.v1 import market_data_service_pb2_grpc as rpc
    from wizdata.type.v1 import market_pb2

    seed_history(dashboard_mesh, stubs, "SBK", 40)
    open_dashboard(page, dashboard_mesh, "?symbol=SBK&interval=1m&indicators=SMA:time_period=5;RSI:time_period=7")
    page.wait_for_function(
        "() => { const c = wizdata.chart(); return c.candles.length > 0 && Object.keys(c.overlays).length === 2"
        " && Object.values(c.overlays).every((o) => Object.keys(o).length > 0); }",
        timeout=WAIT_MS)
    drawn = page.evaluate("() => wizdata.chart()")
    shot(page, "chart")

    def compare_with_the_mesh():
        drawn = page.evaluate("() => wizdata.chart()")
        with grpc.insecure_channel(dashboard_mesh.target) as channel:
            candles = rpc.MarketDataServiceStub(channel).GetCandles(pb.GetCandlesRequest(
                symbol="SBK", interval=market_pb2.INTERVAL_ONE_MINUTE,
                start_time=Timestamp(seconds=drawn["startSeconds"]), page_size=1000), timeout=10).candles
            computed = irpc.IndicatorServiceStub(channel).ComputeIndicators(ipb.ComputeIndicatorsRequest(
                symbol="SBK", interval=market_pb2.INTERVAL_ONE_MINUTE, start_time=Timestamp(seconds=drawn["startSeconds"]),
                indicators=[ipb.IndicatorSpec(name="SMA", parameters={"time_period": 5}),
                            ipb.IndicatorSpec(name="RSI", parameters={"time_period": 7})]), timeout=10)
        assert [(bar["time"], bar["open"], bar["high"], bar["low"], bar["close"]) for bar in drawn["candles"]] == [
            (c.open_time.seconds, c.open, c.high, c.low, c.close) for c in candles]
        for label, result in zip(["SMA(5)", "RSI(7)"], computed.results):
            output = result.outputs[0]
            assert drawn["overlays"][label] == {output.name: output.values[-1]}, (label, drawn["overlays"])
        return candles

    assert len(compare_with_the_mesh()) == 40

    # A trade now opens a bar: the chart draws it from the stream, the bar
    # before it is closed, and the overlays are computed again.
    with grpc.insecure_channel(dashboard_mesh.target) as channel:
        rpc.MarketDataServiceStub(channel).IngestTicks(iter([pb.IngestTicksRequest(ticks=[pb.Tick(
            symbol="SBK", time=Timestamp(seconds=int(time.time())), trade=pb.Trade(price=150.0, size=2))])]),
            metadata=metadata(dashboard_mesh), timeout=10)
    page.wait_for_function("() => wizdata.chart().candles.length === 41 && wizdata.chart().candles.at(-1).close === 150",
                           timeout=WAIT_MS)
    page.wait_for_function("() => Object.values(wizdata.chart().overlays).every((o) => Object.values(o)[0] !== undefined)"
                           f" && wizdata.chart().overlays['SMA(5)'].real !== {drawn['overlays']['SMA(5)']['real']}",
                           timeout=WAIT_MS)
    assert len(compare_with_the_mesh()) == 41
    shot(page, "chart-live-bar")


def test_an_unknown_symbol_says_so(page, dashboard_mesh):
    open_dashboard(page, dashboard_mesh, "?symbol=NOPE.XX")
    page.wait_for_selector("#chart-message:not([hidden])", timeout=WAIT_MS)
    assert "Unknown symbol NOPE.XX" in page.text_content("#chart-message")
    shot(page, "unknown-symbol")


def test_an_interval_with_no_candles_yet_says_so(page, dashboard_mesh):
    open_dashboard(page, dashboard_mesh, "?symbol=MSFT&interval=1d")
    page.wait_for_selector("#chart-message:not([hidden])", timeout=WAIT_MS)
    assert page.text_content("#chart-message") == "No 1d candles for MSFT yet: the chart fills as trades arrive."
    assert page.evaluate("() => wizdata.chart().candles.length") == 0


def test_a_wrong_or_revoked_key_is_refused_and_the_page_carries_on_anonymously(page, dashboard_mesh, stubs):
    from wizdata.auth.v1 import auth_service_pb2 as apb
    from wizdata.auth.v1 import auth_service_pb2_grpc as arpc

    with grpc.insecure_channel(dashboard_mesh.target) as channel:
        auth = arpc.AuthServiceStub(channel)
        created = auth.CreateApiKey(apb.CreateApiKeyRequest(name="revoked", scopes=["registry:read"], tier=apb.TIER_STANDARD),
                                    metadata=metadata(dashboard_mesh), timeout=10)
        auth.RevokeApiKey(apb.RevokeApiKeyRequest(key_id=created.api_key.key_id), metadata=metadata(dashboard_mesh), timeout=10)

    open_dashboard(page, dashboard_mesh)
    for key in ("wiz_not_a_key", created.secret):
        page.fill("#api-key", key)
        page.click("#key-form button[type=submit]")
        # The page takes the key at once and drops it when WhoAmI refuses it.
        page.wait_for_function("() => wizdata.mesh.apiKey === undefined"
                               " && document.querySelector('#notice').textContent.startsWith('API key refused')",
                               timeout=WAIT_MS)
        assert page.evaluate("() => sessionStorage.getItem('wizdata.apiKey')") is None
    # Anonymous calls still work.
    page.fill("#search", "bank")
    page.wait_for_selector('#results li[data-ticker="SBK"]', timeout=WAIT_MS)

    page.fill("#api-key", dashboard_mesh.admin_key)
    page.click("#key-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#notice').textContent.startsWith('Signed in as')", timeout=WAIT_MS)
    assert page.evaluate("() => sessionStorage.getItem('wizdata.apiKey')") == dashboard_mesh.admin_key
    shot(page, "signed-in")


def test_a_refusal_waits_its_retry_delay_and_does_not_hammer(browser):
    mesh = MeshProcess([*FEED, "--rate-limit-anonymous", "4/1m"])
    try:
        context = browser.new_context()
        page = context.new_page()
        page.add_init_script(RECORD_CALLS)
        open_dashboard(page, mesh, "?watch=BTC/USDT")
        page.wait_for_function("() => document.querySelector('#notice').textContent.startsWith('Rate limit reached')",
                               timeout=WAIT_MS)
        refused_at = page.evaluate("() => performance.now()")
        shot(page, "rate-limited")
        assert re.fullmatch(r"[0-4]/4 calls left", page.text_content("#allowance")), page.text_content("#allowance")
        # 4 a minute: the next call is allowed 15 s after a refusal; nothing
        # is sent meanwhile however much the page has to do.
        page.fill("#search", "bank")
        page.wait_for_timeout(5000)
        sent = calls_sent(page)
        assert len(sent) >= 4, sent
        assert [call for call in sent if call["at"] > refused_at + 500] == [], sent
        context.close()
    finally:
        mesh.stop()


def test_a_backend_down_shows_unavailable_and_retries_with_backoff(browser):
    # Nothing listens on the registry's port: the search cannot be answered.
    mesh = MeshProcess([*FEED, "--backend", "registry=http://127.0.0.1:9"])
    try:
        context = browser.new_context()
        page = context.new_page()
        page.add_init_script(RECORD_CALLS)
        open_dashboard(page, mesh)
        page.wait_for_function("() => document.querySelector('#notice').textContent.startsWith('The mesh is unavailable')",
                               timeout=WAIT_MS)
        shot(page, "backend-down")
        page.wait_for_timeout(4000)
        attempts = [call["at"] / 1000 for call in calls_sent(page) if call["method"] == "ListExchanges"]
        # One call's attempts: 0.5 s, 1 s, 2 s … apart (±25% jitter), never a burst.
        gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:])]
        assert len(gaps) >= 2, gaps
        assert all(gap > 0.3 for gap in gaps) and gaps == sorted(gaps), gaps
        context.close()
    finally:
        mesh.stop()


def test_the_streams_come_back_after_the_mesh_restarts(browser):
    mesh = MeshProcess([*FEED, "--rate-limit-anonymous", "100000/1m"])
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 850})
        page = context.new_page()
        open_dashboard(page, mesh, "?symbol=BTC/USDT&watch=BTC/USDT,ETH/USDT")
        page.wait_for_function("() => document.querySelector('#connection').textContent === 'live'", timeout=WAIT_MS)
        mesh.restart()
        page.wait_for_function("() => document.querySelector('#connection').dataset.state === 'reconnecting'"
                               " || document.querySelector('#notice').textContent.includes('stream is back')",
                               timeout=WAIT_MS)
        page.wait_for_function("() => document.querySelector('#connection').textContent === 'live'", timeout=30_000)
        first = page.evaluate("() => wizdata.quotes()['BTC/USDT'].last")
        page.wait_for_function(f"() => wizdata.quotes()['BTC/USDT'].last !== {first!r}", timeout=WAIT_MS)
        bars = page.evaluate("() => wizdata.chart().candles.length")
        assert bars > 0
        shot(page, "after-restart")
        context.close()
    finally:
        mesh.stop()
