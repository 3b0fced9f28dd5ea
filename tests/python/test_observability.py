"""Every metric an alert rule (helm/wizdata/files/alerts.yaml) or a dashboard
panel (helm/wizdata/files/grafana-*.json) names is one the mesh exports: the
names are read out of each expression and looked up in a real /metrics
scrape of a running mesh after traffic through the gateway."""

import json
import re
import time
import urllib.request
from pathlib import Path

import grpc
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "helm" / "wizdata" / "files"

# PromQL words that look like metric names in an expression.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without",
    "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "scalar", "bool", "offset",
}
# Suffixes Prometheus adds to a histogram's name.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expression):
    """Identifiers of an expression that are metric names: not PromQL words,
    not label names inside braces or after by/on, not template variables."""
    without_labels = re.sub(r"\{[^}]*\}", "", expression)
    without_groupings = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_groupings)
    without_strings = re.sub(r'"[^"]*"', "", without_ranges)
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", without_strings)) - PROMQL_WORDS
    return {name for name in names if not re.fullmatch(r"\d.*", name)}


def rule_expressions():
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def panel_expressions():
    expressions = {}
    for path in FILES.glob("grafana-*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expressions[f"{path.name}: {panel['title']} ({target['refId']})"] = target["expr"]
    return expressions


def exported_names(metrics_port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            names.add(name)
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix):
                    names.add(name[: -len(suffix)])
    return names


def test_the_name_reader_finds_metrics_and_nothing_else():
    expression = ('sum by (grpc_service, le) (rate(grpc_server_handling_seconds_bucket{component="service", '
                  'grpc_method!~"Subscribe|Session"}[5m])) / ignoring (reason) group_left '
                  'max(gateway_breaker_open) and on (instance) (dependency_up == 0)')
    assert metric_names(expression) == {"grpc_server_handling_seconds_bucket", "gateway_breaker_open", "dependency_up"}


def test_every_rule_and_panel_names_only_metrics_the_mesh_exports(mesh, stubs):
    from wizdata.marketdata.v1 import market_data_service_pb2, market_data_service_pb2_grpc
    from wizdata.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
    from wizdata.streaming.v1 import streaming_service_pb2, streaming_service_pb2_grpc

    # Traffic through the gateway: reads, a failure, a stream.
    with grpc.insecure_channel(mesh.gateway_target) as channel:
        registry = registry_service_pb2_grpc.RegistryServiceStub(channel)
        market = market_data_service_pb2_grpc.MarketDataServiceStub(channel)
        for _ in range(5):
            registry.GetSymbol(registry_service_pb2.GetSymbolRequest(ticker="AAPL"), timeout=10)
            market.GetCandles(market_data_service_pb2.GetCandlesRequest(symbol="BTC/USDT", interval=1), timeout=10)
        try:
            registry.GetSymbol(registry_service_pb2.GetSymbolRequest(ticker="NOPE.XX"), timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
        streaming = streaming_service_pb2_grpc.StreamingServiceStub(channel)
        events = streaming.Subscribe(streaming_service_pb2.SubscribeRequest(
            symbols=["BTC/USDT"], channels=[streaming_service_pb2.CHANNEL_TRADES]), timeout=30)
        next(iter(events))
        events.cancel()
    # The health checks and dependency probes report within a couple of seconds.
    time.sleep(2.5)

    exported = exported_names(mesh.metrics_port)
    assert "grpc_server_handled_total" in exported, sorted(exported)
    expressions = {**rule_expressions(), **panel_expressions()}
    assert len(rule_expressions()) >= 9 and len(panel_expressions()) >= 15
    missing = {
        where: sorted(metric_names(expression) - exported)
        for where, expression in expressions.items()
        if metric_names(expression) - exported
    }
    assert not missing, f"names no /metrics line carries: {missing}"
